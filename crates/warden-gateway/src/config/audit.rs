//! Config for the audit trail. On by default: every call, allowed or refused, is recorded in the
//! embedded store of the data folder, chained and signed (see `warden_store::audit`).

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    pub enabled: bool,
    /// Refuse (503) a call whose record cannot be written, and send no response before its
    /// record is committed: no answered call is ever missing from the trail. Costs latency.
    pub compliance: bool,
    /// Records waiting to be written at most; past it (outside compliance mode) records are
    /// dropped, counted and alerted on, rather than slowing the proxy.
    pub queue: usize,
    /// A signed checkpoint every this many entries…
    pub checkpoint_every: u64,
    /// …or this often, whichever comes first.
    #[serde(with = "humantime_serde")]
    pub checkpoint_interval: Duration,
    /// Drop entries older than this (at a checkpoint, so `warden audit verify` still works).
    #[serde(with = "humantime_serde")]
    pub retention: Option<Duration>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            compliance: false,
            queue: 65_536,
            checkpoint_every: 10_000,
            checkpoint_interval: Duration::from_secs(10),
            retention: None,
        }
    }
}

impl AuditConfig {
    pub fn validate(&self) -> Option<(String, String)> {
        if self.queue == 0 || self.checkpoint_every == 0 || self.checkpoint_interval.is_zero() {
            return Some((
                "audit".into(),
                "queue, checkpoint_every and checkpoint_interval must be greater than zero".into(),
            ));
        }
        if self
            .retention
            .is_some_and(|r| r < Duration::from_secs(3600))
        {
            return Some((
                "audit.retention".into(),
                "must be at least 1h; an audit trail is kept for days or years".into(),
            ));
        }
        None
    }

    pub fn writer_options(&self) -> warden_store::audit::WriterOptions {
        warden_store::audit::WriterOptions {
            queue: self.queue,
            checkpoint_every: self.checkpoint_every,
            checkpoint_interval: self.checkpoint_interval,
            retention: self.retention,
        }
    }
}
