//! `warden serve` and `warden check-config`.
//!
//! Quick mode (`--listen/--upstream`) writes the equivalent config as YAML and loads it through the
//! same parser and validation as a file, so both modes get exactly the same defaults and checks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};
use warden_gateway::services::Services;
use warden_gateway::{Config, Gateway, Runtime};

use crate::cli::{CheckConfigArgs, Failure, ServeArgs};
use crate::data_dir;

pub async fn run(args: ServeArgs, data_dir_flag: Option<PathBuf>) -> Result<(), Failure> {
    let (config, text, source) = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Failure::BadInput(format!(
                    "{}: cannot read the config file: {e}",
                    path.display()
                ))
            })?;
            let cfg = Config::parse(&text, path).map_err(|e| Failure::BadInput(e.to_string()))?;
            (cfg, text, Some(path.clone()))
        }
        None => {
            let text = quick_config(&args)?;
            let cfg = Config::parse(&text, Path::new("<command line>"))
                .map_err(|e| Failure::BadInput(e.to_string()))?;
            (cfg, text, None)
        }
    };
    let mut config = config;
    if let Some(n) = args.workers {
        config.workers = Some(usize::from(n));
    }
    let data_dir = data_dir::resolve(data_dir_flag, config.data_dir.as_deref(), source.as_deref());
    data_dir::prepare(&data_dir)?;
    tracing::info!(data_dir = %data_dir.display(), "data folder");
    let services = open_services(&data_dir)?;
    if !services.keys().is_empty() {
        tracing::info!(
            keys = services.keys().len(),
            "API keys in the store: routes without `auth: none` require a credential"
        );
    } else if config.auth.jwt.is_empty() && config.auth.signatures.is_none() {
        tracing::warn!("no credentials are configured (no API keys in the store, no JWT issuer, no signing partner): requests are not authenticated. Create a key with `warden keys create --consumer NAME`");
    }
    serve_until_signal(Runtime::new(config, &text, services), source).await
}

/// Runs the gateway until SIGTERM or SIGINT, reloading on SIGHUP and on file change.
pub async fn serve_until_signal(runtime: Runtime, source: Option<PathBuf>) -> Result<(), Failure> {
    let signals = Signals::install()?;
    let gateway = start(runtime).await?;
    run_until_signal(gateway, source, signals).await
}

/// The store in the data folder and the state every config generation shares.
pub fn open_services(data_dir: &Path) -> Result<Arc<Services>, Failure> {
    Services::with_store(data_dir).map_err(|e| Failure::Runtime(anyhow::anyhow!("{e}")))
}

pub async fn start(runtime: Runtime) -> Result<Arc<Gateway>, Failure> {
    tracing::info!(config_hash = %runtime.config_hash, "config loaded");
    let gateway = Gateway::start(runtime)
        .await
        .map_err(|e| Failure::Runtime(e.into()))?;
    Ok(Arc::new(gateway))
}

/// Installed before the gateway starts: until a handler exists, SIGHUP's default action would kill
/// the process, so a config manager reloading during startup must not find that window open.
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    pub fn install() -> Result<Signals, Failure> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            hup: signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?,
        })
    }
}

pub async fn run_until_signal(
    gateway: Arc<Gateway>,
    source: Option<PathBuf>,
    signals: Signals,
) -> Result<(), Failure> {
    let Signals {
        mut term,
        mut int,
        mut hup,
    } = signals;
    let watcher = source
        .clone()
        .map(|p| warden_gateway::gateway::watch_file(gateway.clone(), p, Duration::from_secs(1)));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => match &source {
                Some(path) => { let _ = gateway.reload(path); }
                None => tracing::warn!("SIGHUP ignored: quick mode has no config file to reload"),
            },
        }
    }
    if let Some(w) = watcher {
        w.abort();
    }
    gateway.shutdown().await;
    Ok(())
}

fn quick_config(args: &ServeArgs) -> Result<String, Failure> {
    let listen = args.listen.expect("clap requires --listen in quick mode");
    let upstream = args
        .upstream
        .as_deref()
        .expect("clap requires --upstream in quick mode");
    // JSON strings are valid YAML scalars: quoting user input this way cannot break the document.
    let q = |s: &str| serde_json::to_string(s).expect("strings serialize");
    let listener = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => format!(
            "tls: {{cert: {}, key: {}}}",
            q(&absolute(cert).display().to_string()),
            q(&absolute(key).display().to_string())
        ),
        _ if listen.ip().is_loopback() || args.plain_http => "plain_http: true".to_string(),
        _ => {
            return Err(Failure::BadInput(format!(
            "--listen {listen} is reachable from other machines; give --tls-cert and --tls-key, \
                 or --plain-http to accept unencrypted HTTP on purpose"
        )))
        }
    };
    // With a spec, the route enforces it with the strict defaults: default deny, validation,
    // undeclared and writeOnly response fields removed.
    let contract = match &args.spec {
        Some(spec) => format!(
            "    openapi: {{spec: {}}}\n",
            q(&absolute(spec).display().to_string())
        ),
        None => String::new(),
    };
    Ok(format!(
        "listeners:\n  - address: {}\n    {listener}\nadmin:\n  address: {}\nupstreams:\n  upstream:\n    targets: [{}]\nroutes:\n  - name: default\n    path_prefix: /\n    upstream: upstream\n{contract}",
        q(&listen.to_string()),
        q(&args.admin.to_string()),
        q(upstream),
    ))
}

fn absolute(p: &Path) -> PathBuf {
    std::env::current_dir()
        .map(|d| d.join(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

pub fn check_config(args: CheckConfigArgs) -> Result<(), Failure> {
    let cfg = Config::load(&args.file).map_err(|e| Failure::BadInput(e.to_string()))?;
    // Certificates are part of the config: a key that does not match its certificate should fail
    // here, not at 3 a.m. on the next restart.
    for (i, l) in cfg.listeners.iter().enumerate() {
        if let Some(tls) = &l.tls {
            warden_gateway::tls::server_config(tls).map_err(|e| {
                Failure::BadInput(format!("{}: listeners[{i}].tls: {e}", args.file.display()))
            })?;
        }
    }
    println!(
        "{}: ok ({} listener(s), {} upstream(s), {} route(s))",
        args.file.display(),
        cfg.listeners.len(),
        cfg.upstreams.len(),
        cfg.routes.len()
    );
    Ok(())
}
