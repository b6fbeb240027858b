//! The `warden` command: parse the arguments, then hand over to one module per subcommand.
#![forbid(unsafe_code)]

mod audit;
mod cli;
mod data_dir;
mod demo;
mod keys;
mod lint;
mod logging;
mod pii;
mod scan;
mod serve;
mod sign;

use std::process::ExitCode;

/// hyper allocates and frees a few small objects per request on each worker thread; mimalloc's
/// thread-local free lists do that cheaper than glibc malloc (measured in bench/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

use cli::{Cli, Command};

/// Prints a line to standard output; a closed pipe (`warden keys list | head -1`) is not an error.
pub fn out(line: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Exit codes: 0 success, 1 runtime failure, 2 bad input (config, arguments).
fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format, &cli.log_level);
    // This runtime only accepts connections, serves the admin API and handles signals and reloads;
    // requests run on the gateway's own per-core worker threads (warden_gateway::workers).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args, cli.data_dir).await,
            Command::CheckConfig(args) => serve::check_config(args),
            Command::Demo(args) => demo::run(args, cli.data_dir).await,
            Command::Pii(cmd) => pii::run(cmd),
            Command::Keys(cmd) => keys::run(cmd, cli.data_dir),
            Command::Audit(cmd) => audit::run(cmd, cli.data_dir),
            Command::Sign(args) => sign::run(args),
            Command::Lint(args) => lint::run(args),
            Command::Scan(args) => scan::run(args).await,
            Command::DemoApi(args) => demo::api::run_standalone(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(cli::Failure::BadInput(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(cli::Failure::Runtime(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
