//! Alerts: raised by the detectors on finished calls (`checks::alerting`), by a shared store that
//! stops answering, by an audit queue that overflows. Every alert goes to the log (target
//! `warden::alert`), `/metrics` (`warden_alerts_total`) and the store's admin events (and so into
//! the audit trail); with `alerts.webhook` and `alerts.syslog`, also there. Delivery never runs on
//! the request path.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use arc_swap::ArcSwap;

use crate::config::AlertsConfig;

/// Where alerts are delivered besides the log and the store (from the current config).
#[derive(Default)]
struct Sinks {
    webhook: Option<String>,
    syslog: Option<(crate::syslog::Target, crate::syslog::Format)>,
}

pub struct Alerts {
    store_dir: Option<PathBuf>,
    raised: Mutex<HashMap<&'static str, u64>>,
    sinks: ArcSwap<Sinks>,
    /// The detectors' windows and cooldowns, kept across config generations.
    pub detectors: Mutex<warden_policy::alerts::Detectors>,
}

impl Alerts {
    pub fn new(store_dir: Option<PathBuf>) -> Alerts {
        Alerts {
            store_dir,
            raised: Mutex::default(),
            sinks: ArcSwap::default(),
            detectors: Mutex::default(),
        }
    }

    /// Takes the delivery targets of a new config generation.
    pub fn configure(&self, cfg: &AlertsConfig) {
        self.sinks.store(std::sync::Arc::new(Sinks {
            webhook: cfg.webhook.as_ref().map(|w| w.0.clone()),
            syslog: cfg.syslog.as_ref().map(|s| (s.target.clone(), s.format)),
        }));
    }

    pub fn raise(&self, alert: &'static str, subject: &str, why: &str) {
        self.raise_with(alert, subject, serde_json::json!({"reason": why}));
    }

    /// Raises `alert` about `subject` with details (counts, sample request ids: never content).
    pub fn raise_with(&self, alert: &'static str, subject: &str, detail: serde_json::Value) {
        tracing::error!(target: "warden::alert", alert, subject, detail = %detail, "alert raised");
        *self
            .raised
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(alert)
            .or_default() += 1;
        let mut doc = serde_json::json!({
            "alert": alert,
            "subject": subject,
            "at_ms": crate::traffic::now_ms(),
            "detail": detail,
        });
        self.admin_event("alert.raised", alert, doc.clone());
        self.deliver(&mut doc);
    }

    pub fn resolve(&self, alert: &'static str, subject: &str) {
        tracing::warn!(target: "warden::alert", alert, subject, "alert resolved");
        let mut doc = serde_json::json!({
            "alert": alert,
            "subject": subject,
            "at_ms": crate::traffic::now_ms(),
            "resolved": true,
        });
        self.admin_event("alert.resolved", alert, doc.clone());
        self.deliver(&mut doc);
    }

    fn deliver(&self, doc: &mut serde_json::Value) {
        let sinks = self.sinks.load();
        if let Some(url) = &sinks.webhook {
            let url = url.clone();
            let body = bytes::Bytes::from(doc.to_string());
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(async move {
                        match crate::fetch::post_json(&url, body).await {
                            Ok(s) if s.is_success() => {}
                            Ok(s) => tracing::error!(webhook = %url, status = %s, "alert webhook refused the alert"),
                            Err(e) => tracing::error!(webhook = %url, error = %e, "alert webhook unreachable"),
                        }
                    });
                }
                Err(_) => tracing::error!("alert webhook skipped: no runtime to send from"),
            }
        }
        if let Some((target, format)) = sinks.syslog.clone() {
            let msg = crate::syslog::alert_message(format, doc);
            std::thread::spawn(move || {
                let sent = crate::syslog::Sender::connect(&target).and_then(|mut s| s.send(&msg));
                if let Err(e) = sent {
                    tracing::error!(syslog = %target.address, error = %e, "cannot send the alert to syslog");
                }
            });
        }
    }

    /// Records something the gateway did (an alert, a config reload) in the store's admin events,
    /// which the audit trail chains. Off the request path: a SQLite write may wait on another
    /// process's lock.
    pub fn admin_event(&self, action: &'static str, subject: &str, detail: serde_json::Value) {
        let Some(dir) = self.store_dir.clone() else {
            return;
        };
        let subject = subject.to_string();
        std::thread::spawn(move || {
            let written = warden_store::Store::open(&dir)
                .and_then(|mut s| s.record_event("warden-gateway", action, &subject, detail));
            if let Err(e) = written {
                tracing::error!(error = %e, action, "cannot record an admin event in the store");
            }
        });
    }

    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        let mut v: Vec<_> = self
            .raised
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        v.sort();
        v
    }
}
