//! The gateway as a value: start it from a config, reload it, shut it down. The `warden` binary and
//! the integration tests both drive it through this API.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sha2::Digest;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, ConfigError};
use crate::metrics::ResultLabels;
use crate::runtime::Runtime;
use crate::server::{self, ConnTracker, ListenerTask};
use crate::shared::Shared;
use crate::workers::Workers;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot start worker threads: {0}")]
    Workers(std::io::Error),
    #[error("{0}")]
    Audit(String),
}

pub struct Gateway {
    shared: Arc<Shared>,
    tracker: Arc<ConnTracker>,
    shutdown_tx: watch::Sender<bool>,
    listen_addrs: Vec<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    workers: Arc<Workers>,
    /// Listener and admin settings are fixed at start; reload warns when they change.
    started_with: Config,
}

impl Gateway {
    /// Binds every listener (failing fast if any cannot be bound) and starts serving.
    pub async fn start(runtime: Runtime) -> Result<Gateway, StartError> {
        let config = runtime.config.clone();
        // Before any listener: a gateway that cannot record what it serves does not serve.
        runtime
            .services
            .start_audit(&config.audit)
            .map_err(StartError::Audit)?;
        runtime.services.traffic.alerts.admin_event(
            "config.loaded",
            "",
            serde_json::json!({"config_hash": runtime.config_hash}),
        );
        let mut bound = Vec::new();
        for l in &config.listeners {
            let tls = match &l.tls {
                Some(t) => Some(TlsAcceptor::from(crate::tls::server_config(t)?)),
                None => None,
            };
            let listener =
                TcpListener::bind(l.address)
                    .await
                    .map_err(|source| StartError::Bind {
                        address: l.address,
                        source,
                    })?;
            bound.push(ListenerTask { listener, tls });
        }
        let admin = match config.admin.address {
            Some(a) => Some(
                TcpListener::bind(a)
                    .await
                    .map_err(|source| StartError::Bind { address: a, source })?,
            ),
            None => None,
        };

        let shared = Arc::new(Shared::new(runtime));
        let tracker = Arc::new(ConnTracker::default());
        let workers = Arc::new(Workers::spawn(config.worker_count()).map_err(StartError::Workers)?);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut listen_addrs = Vec::new();
        let mut tasks = Vec::new();
        for task in bound {
            let addr = task
                .listener
                .local_addr()
                .map_err(|source| StartError::Bind {
                    address: listen_addrs
                        .last()
                        .copied()
                        .unwrap_or(config.listeners[0].address),
                    source,
                })?;
            tracing::info!(address = %addr, tls = task.tls.is_some(), "listening");
            listen_addrs.push(addr);
            tasks.push(tokio::spawn(server::accept_loop(
                task,
                shared.clone(),
                tracker.clone(),
                workers.clone(),
                shutdown_rx.clone(),
            )));
        }
        let admin_addr = match admin {
            Some(l) => {
                let addr = l.local_addr().ok();
                if let Some(a) = addr {
                    tracing::info!(address = %a, "admin listening");
                }
                tasks.push(tokio::spawn(crate::admin::serve(l, shared.clone())));
                addr
            }
            None => None,
        };
        Ok(Gateway {
            shared,
            tracker,
            shutdown_tx,
            listen_addrs,
            admin_addr,
            tasks: std::sync::Mutex::new(tasks),
            workers,
            started_with: config,
        })
    }

    pub fn listen_addrs(&self) -> &[SocketAddr] {
        &self.listen_addrs
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    pub fn config_hash(&self) -> String {
        self.shared.peek().config_hash.clone()
    }

    pub fn open_connections(&self) -> usize {
        self.tracker.live()
    }

    /// Re-reads the config file; on any error the running config stays in place and the error is
    /// returned (and logged) so the caller can report it.
    pub fn reload(&self, path: &Path) -> Result<String, ConfigError> {
        let outcome = std::fs::read_to_string(path)
            .map_err(|e| ConfigError {
                file: path.to_path_buf(),
                line: None,
                column: None,
                field: None,
                message: format!("cannot read the config file: {e}"),
            })
            .and_then(|text| Config::parse(&text, path).map(|cfg| (cfg, text)));
        match outcome {
            Ok((mut cfg, text)) => {
                if cfg.listeners != self.started_with.listeners
                    || cfg.admin != self.started_with.admin
                    || cfg.workers != self.started_with.workers
                {
                    tracing::warn!("listener, admin and workers changes take effect at the next restart; the rest was applied");
                }
                // The worker threads are fixed at start; size the upstream pools for them.
                cfg.workers = self.started_with.workers;
                let rt = Runtime::new(cfg, &text, self.shared.peek().services.clone());
                let hash = rt.config_hash.clone();
                self.shared.swap(rt);
                self.shared
                    .metrics
                    .reloads
                    .get_or_create(&ResultLabels { result: "ok" })
                    .inc();
                tracing::info!(config_hash = %hash, file = %path.display(), "config reloaded");
                self.shared.peek().services.traffic.alerts.admin_event(
                    "config.reloaded",
                    &path.display().to_string(),
                    serde_json::json!({"config_hash": hash}),
                );
                Ok(hash)
            }
            Err(e) => {
                self.shared
                    .metrics
                    .reloads
                    .get_or_create(&ResultLabels { result: "rejected" })
                    .inc();
                tracing::error!(error = %e, "config reload rejected; the previous config keeps serving");
                Err(e)
            }
        }
    }

    /// Stops accepting, lets in-flight requests finish for up to `shutdown_grace`, then cuts the rest.
    pub async fn shutdown(&self) {
        let grace = self.shared.peek().config.limits.shutdown_grace;
        self.shared.draining.store(true, Ordering::Release);
        let _ = self.shutdown_tx.send(true);
        tracing::info!(
            open_connections = self.tracker.live(),
            grace_secs = grace.as_secs_f64(),
            "draining"
        );
        if tokio::time::timeout(grace, self.tracker.wait_idle())
            .await
            .is_err()
        {
            tracing::warn!(
                open_connections = self.tracker.live(),
                "grace period over; closing remaining connections"
            );
        }
        for t in self.tasks.lock().expect("task list lock").drain(..) {
            t.abort();
        }
        self.workers.stop();
        self.shared.peek().services.stop_audit();
        tracing::info!("stopped");
    }
}

impl Drop for Gateway {
    /// A gateway dropped without `shutdown` (tests, embedders) still stops its worker threads.
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        for t in self.tasks.get_mut().expect("task list lock").drain(..) {
            t.abort();
        }
        self.workers.stop();
    }
}

/// Polls the config file and reloads when its content differs from the running config (and from
/// the last version already refused). Comparing with what runs, not with the last poll, means a file
/// edited and restored between two polls is still noticed. Polling rather than inotify also catches
/// editors that replace the file and config managers that swap symlinks.
pub fn watch_file(gateway: Arc<Gateway>, path: PathBuf, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut refused: Option<String> = None;
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let hash = crate::runtime::hex(&sha2::Sha256::digest(&bytes));
            if hash == gateway.config_hash() || refused.as_ref() == Some(&hash) {
                continue;
            }
            refused = gateway.reload(&path).err().map(|_| hash);
        }
    })
}
