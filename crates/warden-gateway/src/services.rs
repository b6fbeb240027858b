//! State that outlives config generations and that the checks share: API keys from the embedded
//! store (watched for changes), lockout counters, spent nonces, tokens issued by login operations,
//! and JWKS caches. Everything here is in process; several replicas share the same facts through
//! Redis once the traffic-control work lands (the methods are the seam).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use warden_policy::auth::api_key::KeySet;
use warden_policy::auth::jwt::KeyRing;
use warden_policy::auth::lockout::{Lockouts, Policy as LockoutPolicy};

/// How often the gateway looks for key changes made by `warden keys` (revocations included).
pub const KEY_POLL: Duration = Duration::from_millis(250);

/// At most this many spent nonces are remembered; past it, signed requests are refused rather than
/// remembered badly (a forgotten nonce is a replay window).
const MAX_NONCES: usize = 1_000_000;

pub struct Services {
    keys: ArcSwap<KeySet>,
    /// Whether the store has ever held a key: API keys then count as configured.
    store_dir: Option<PathBuf>,
    lockouts: Mutex<Lockouts>,
    login_attempts: Mutex<Lockouts>,
    /// `key id:nonce` → when it may be forgotten.
    nonces: Mutex<HashMap<String, i64>>,
    issued: Mutex<HashMap<[u8; 32], (String, i64)>>,
    jwks: Mutex<HashMap<String, Arc<JwksSource>>>,
    stop: Arc<AtomicBool>,
    /// Rate limits, quotas, concurrency, breakers (traffic.rs).
    pub traffic: crate::traffic::TrafficState,
    /// The audit trail's writer, once the gateway has started it (fixed for the process's life).
    audit: std::sync::OnceLock<Arc<crate::audit::Audit>>,
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Services {
    /// No store: API keys are not available (tests, embedders).
    pub fn without_store() -> Arc<Services> {
        Arc::new(Services::new(None))
    }

    /// Opens the store in `dir`, loads its keys, and keeps watching it for changes.
    pub fn with_store(dir: &Path) -> Result<Arc<Services>, warden_store::StoreError> {
        let store = warden_store::Store::open(dir)?;
        let services = Arc::new(Services::new(Some(dir.to_path_buf())));
        services
            .keys
            .store(Arc::new(KeySet::new(store.key_entries()?)));
        let weak = Arc::downgrade(&services);
        let stop = services.stop.clone();
        std::thread::Builder::new()
            .name("warden-keys".into())
            .spawn(move || watch_keys(store, weak, stop))
            .map_err(|e| {
                warden_store::StoreError::Invalid(format!("cannot start the key watcher: {e}"))
            })?;
        Ok(services)
    }

    fn new(store_dir: Option<PathBuf>) -> Services {
        Services {
            traffic: crate::traffic::TrafficState::new(store_dir.clone()),
            keys: ArcSwap::from_pointee(KeySet::default()),
            store_dir,
            lockouts: Mutex::default(),
            login_attempts: Mutex::default(),
            nonces: Mutex::default(),
            issued: Mutex::default(),
            jwks: Mutex::default(),
            stop: Arc::new(AtomicBool::new(false)),
            audit: std::sync::OnceLock::new(),
        }
    }

    /// Starts the audit writer on the store (if there is a store and the config wants one).
    pub fn start_audit(&self, cfg: &crate::config::AuditConfig) -> Result<(), String> {
        let (Some(dir), true) = (&self.store_dir, cfg.enabled) else {
            return Ok(());
        };
        if self.audit.get().is_some() {
            return Ok(());
        }
        let writer = warden_store::audit::AuditWriter::start(dir, cfg.writer_options())
            .map_err(|e| format!("cannot start the audit trail: {e}"))?;
        let _ = self.audit.set(Arc::new(crate::audit::Audit::new(
            writer,
            cfg.compliance,
            self.traffic.alerts.clone(),
        )));
        Ok(())
    }

    pub fn audit(&self) -> Option<&Arc<crate::audit::Audit>> {
        self.audit.get()
    }

    /// Writes what is queued and makes a last checkpoint (shutdown).
    pub fn stop_audit(&self) {
        if let Some(a) = self.audit.get() {
            a.writer().shutdown();
        }
    }

    pub fn store_dir(&self) -> Option<&Path> {
        self.store_dir.as_deref()
    }

    pub fn keys(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.keys.load()
    }

    pub fn locked(&self, keys: &[String]) -> Option<i64> {
        lock(&self.lockouts).locked(keys, now_secs())
    }

    pub fn auth_failed(&self, keys: &[String], p: &LockoutPolicy) {
        let now = now_secs();
        let mut l = lock(&self.lockouts);
        l.fail(keys, now, p);
        if l.len() > 100_000 {
            l.prune(now, p);
        }
    }

    pub fn auth_succeeded(&self, identity_key: &str) {
        lock(&self.lockouts).succeed(identity_key);
    }

    pub fn login_locked(&self, keys: &[String]) -> Option<i64> {
        lock(&self.login_attempts).locked(keys, now_secs())
    }

    pub fn login_failed(&self, keys: &[String], p: &LockoutPolicy) {
        let now = now_secs();
        let mut l = lock(&self.login_attempts);
        l.fail(keys, now, p);
        if l.len() > 100_000 {
            l.prune(now, p);
        }
    }

    pub fn login_succeeded(&self, username_key: &str) {
        lock(&self.login_attempts).succeed(username_key);
    }

    /// Spends a nonce: true the first time within its lifetime, false for a replay (or when the
    /// memory of nonces is full, which fails closed).
    pub fn spend_nonce(&self, nonce: &str, ttl_secs: i64) -> bool {
        let now = now_secs();
        let mut n = lock(&self.nonces);
        if n.len() >= MAX_NONCES {
            n.retain(|_, exp| *exp > now);
            if n.len() >= MAX_NONCES {
                return false;
            }
        }
        let k = nonce.to_string();
        match n.get(&k) {
            Some(exp) if *exp > now => false,
            _ => {
                n.insert(k, now + ttl_secs);
                true
            }
        }
    }

    pub fn record_issued(&self, token: &str, consumer: &str, expires_at: i64) {
        let now = now_secs();
        let mut i = lock(&self.issued);
        if i.len() > 1_000_000 {
            i.retain(|_, (_, exp)| *exp > now);
        }
        i.insert(digest(token), (consumer.to_string(), expires_at));
    }

    /// The consumer a token was issued to, if it was issued through the gateway and is still live.
    pub fn issued_to(&self, token: &str) -> Option<String> {
        let now = now_secs();
        lock(&self.issued)
            .get(&digest(token))
            .filter(|(_, exp)| *exp > now)
            .map(|(c, _)| c.clone())
    }

    /// The JWKS cache for a source (URL or file), shared by config generations.
    pub fn jwks(&self, source: JwksLocation) -> Arc<JwksSource> {
        lock(&self.jwks)
            .entry(source.key())
            .or_insert_with(|| Arc::new(JwksSource::new(source)))
            .clone()
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Tokens are remembered by digest only: a memory dump of the gateway yields no usable token.
fn digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

fn watch_keys(
    store: warden_store::Store,
    services: std::sync::Weak<Services>,
    stop: Arc<AtomicBool>,
) {
    let mut version = store.data_version().ok();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(KEY_POLL);
        let Some(s) = services.upgrade() else { return };
        match store.data_version() {
            Ok(v) if Some(v) != version => match store.key_entries() {
                Ok(entries) => {
                    tracing::info!(keys = entries.len(), "API keys reloaded from the store");
                    s.keys.store(Arc::new(KeySet::new(entries)));
                    version = Some(v);
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot reload API keys; the previous set stays")
                }
            },
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot check the store for key changes"),
        }
    }
}

/// Where an issuer's JWKS comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksLocation {
    Url {
        url: String,
        ca_file: Option<PathBuf>,
    },
    File(PathBuf),
}

impl JwksLocation {
    fn key(&self) -> String {
        match self {
            JwksLocation::Url { url, ca_file } => format!("{url}|{ca_file:?}"),
            JwksLocation::File(p) => format!("file:{}", p.display()),
        }
    }
}

/// One JWKS, cached. Refreshes are serialised and rate limited: a flood of tokens with made-up key
/// ids cannot turn the gateway into a load generator against the identity provider.
pub struct JwksSource {
    pub location: JwksLocation,
    ring: ArcSwap<KeyRing>,
    last_fetch: Mutex<Option<Instant>>,
    fetching: tokio::sync::Mutex<()>,
}

impl JwksSource {
    fn new(location: JwksLocation) -> JwksSource {
        JwksSource {
            location,
            ring: ArcSwap::from_pointee(KeyRing::default()),
            last_fetch: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring.load_full()
    }

    /// Whether a refresh is allowed now (none yet, or the last one at least `min_interval` ago).
    pub fn may_refresh(&self, min_interval: Duration) -> bool {
        lock(&self.last_fetch).is_none_or(|t| t.elapsed() >= min_interval)
    }

    /// Fetches the key set again, unless another refresh did so within `min_interval`.
    pub async fn refresh(&self, min_interval: Duration) {
        let _one_at_a_time = self.fetching.lock().await;
        if !self.may_refresh(min_interval) {
            return;
        }
        *lock(&self.last_fetch) = Some(Instant::now());
        let text = match &self.location {
            JwksLocation::File(p) => tokio::fs::read_to_string(p)
                .await
                .map_err(|e| e.to_string()),
            JwksLocation::Url { url, ca_file } => {
                crate::fetch::get_text(url, ca_file.as_deref()).await
            }
        };
        match text.and_then(|t| KeyRing::from_jwks(&t).map_err(|e| e.to_string())) {
            Ok(ring) => {
                tracing::info!(source = ?self.location, "JWKS refreshed");
                self.ring.store(Arc::new(ring));
            }
            Err(e) => {
                tracing::warn!(source = ?self.location, error = %e, "JWKS refresh failed; the cached keys stay")
            }
        }
    }
}
