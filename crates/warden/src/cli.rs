//! Command-line arguments (clap derive). Choices are enums, not strings.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "warden",
    version,
    about = "API security gateway: authenticate, authorize, validate, limit, mask and audit every API call"
)]
pub struct Cli {
    /// Folder for the embedded store (keys, audit log, inventory). Default: `warden-data` beside the
    /// config file, or the platform data folder in quick mode.
    #[arg(long, global = true, env = "WARDEN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Json, env = "WARDEN_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `warden=debug` (tracing EnvFilter syntax).
    #[arg(long, global = true, default_value = "info", env = "WARDEN_LOG")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway, from a config file or in quick mode (--listen/--upstream).
    Serve(ServeArgs),
    /// Validate a config file without serving; exits 2 with file:line: field: problem on error.
    CheckConfig(CheckConfigArgs),
    /// Start the bundled example API behind the gateway and print requests to try.
    Demo(DemoArgs),
    /// Run only the bundled example API (deliberately naive; never expose it).
    #[command(hide = true)]
    DemoApi(DemoApiArgs),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// YAML config file. Reloaded on SIGHUP and when the file changes.
    #[arg(long, short, conflicts_with_all = ["listen", "upstream"], required_unless_present = "upstream")]
    pub config: Option<PathBuf>,
    /// Quick mode: address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long, requires = "upstream")]
    pub listen: Option<SocketAddr>,
    /// Quick mode: the API to protect, e.g. http://127.0.0.1:3000.
    #[arg(long, requires = "listen")]
    pub upstream: Option<String>,
    /// Quick mode: the API's OpenAPI spec (enforced once the OpenAPI checks land).
    #[arg(long, requires = "listen")]
    pub spec: Option<PathBuf>,
    /// Quick mode: admin listener address (health, readiness, metrics).
    #[arg(long, default_value = "127.0.0.1:9901", requires = "listen")]
    pub admin: SocketAddr,
    /// Quick mode: serve TLS with this PEM certificate chain.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Quick mode: PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Quick mode: accept unencrypted HTTP on a non-loopback address.
    #[arg(long)]
    pub plain_http: bool,
    /// Worker threads handling connections (overrides the config's `workers`); default: one per core.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,
}

#[derive(Args, Debug)]
pub struct CheckConfigArgs {
    pub file: PathBuf,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where the gateway listens.
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// Where the example API listens (loopback only).
    #[arg(long, default_value = "127.0.0.1:8788")]
    pub api_listen: SocketAddr,
    /// Admin listener.
    #[arg(long, default_value = "127.0.0.1:8789")]
    pub admin: SocketAddr,
}

#[derive(Args, Debug)]
pub struct DemoApiArgs {
    #[arg(long, default_value = "127.0.0.1:8788")]
    pub listen: SocketAddr,
}

/// How a subcommand failed: bad input exits 2, anything else 1.
#[derive(Debug)]
pub enum Failure {
    BadInput(String),
    Runtime(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}
