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
    /// Write the trail to PostgreSQL, one chain shared by every replica, instead of the local store.
    pub postgres: Option<PostgresAudit>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, try_from = "RawPostgresAudit")]
pub struct PostgresAudit(pub warden_store::audit_pg::PgTarget);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPostgresAudit {
    url: String,
    #[serde(default = "default_schema")]
    schema: String,
}

fn default_schema() -> String {
    "warden".into()
}

impl TryFrom<RawPostgresAudit> for PostgresAudit {
    type Error = String;
    fn try_from(r: RawPostgresAudit) -> Result<Self, String> {
        warden_store::audit_pg::PgTarget::new(&r.url, &r.schema).map(PostgresAudit)
    }
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
            postgres: None,
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
            postgres: self.postgres.as_ref().map(|p| p.0.clone()),
        }
    }
}

/// Where alerts go besides the log, `/metrics` and the audit trail, and what raises them.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Each alert is POSTed here as JSON (http:// or https://).
    pub webhook: Option<WebhookUrl>,
    /// Each alert is also sent to this syslog server.
    pub syslog: Option<SyslogSink>,
    /// One alert per detector and caller within this time: one attack, one alert.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    /// 401 answers to one client IP.
    pub auth_failures: DetectorConfig,
    /// Distinct object ids of one path shape (`/orders/{id}`) answered 403/404, to one caller.
    pub object_probing: DetectorConfig,
    /// Distinct path shapes answered 404, to one client IP (scanners).
    pub path_sweep: DetectorConfig,
    /// Bytes sent to one caller in responses of 64 KiB or more.
    pub large_responses: BytesDetectorConfig,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        let d = |threshold| DetectorConfig {
            threshold,
            window: Duration::from_secs(60),
        };
        AlertsConfig {
            webhook: None,
            syslog: None,
            cooldown: Duration::from_secs(600),
            auth_failures: d(20),
            object_probing: d(20),
            path_sweep: d(20),
            large_responses: BytesDetectorConfig {
                bytes: super::ByteSize(100 << 20),
                window: Duration::from_secs(60),
            },
        }
    }
}

/// `threshold` (0: off) within `window`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    pub threshold: u64,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BytesDetectorConfig {
    /// 0: off.
    pub bytes: super::ByteSize,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyslogSink {
    /// `udp://host:port` or `tcp://host:port`.
    pub target: crate::syslog::Target,
    #[serde(default = "rfc5424")]
    pub format: crate::syslog::Format,
}

fn rfc5424() -> crate::syslog::Format {
    crate::syslog::Format::Rfc5424
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct WebhookUrl(pub String);

impl TryFrom<String> for WebhookUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let uri: http::Uri = s.parse().map_err(|e| format!("`{s}` is not a URL: {e}"))?;
        match (uri.scheme_str(), uri.host()) {
            (Some("http" | "https"), Some(_))
                if !uri.authority().is_some_and(|a| a.as_str().contains('@')) =>
            {
                Ok(WebhookUrl(s))
            }
            _ => Err(format!(
                "webhook `{s}` must be an http:// or https:// URL with a host and no credentials"
            )),
        }
    }
}

impl AlertsConfig {
    pub fn rules(&self) -> warden_policy::alerts::Rules {
        use warden_policy::alerts::Rule;
        let r = |d: DetectorConfig| Rule {
            threshold: d.threshold,
            window_ms: d.window.as_millis() as u64,
        };
        warden_policy::alerts::Rules {
            auth_failures: r(self.auth_failures),
            object_probing: r(self.object_probing),
            path_sweep: r(self.path_sweep),
            large_responses: Rule {
                threshold: self.large_responses.bytes.0,
                window_ms: self.large_responses.window.as_millis() as u64,
            },
            cooldown_ms: self.cooldown.as_millis() as u64,
        }
    }

    pub fn any_detector(&self) -> bool {
        self.auth_failures.threshold > 0
            || self.object_probing.threshold > 0
            || self.path_sweep.threshold > 0
            || self.large_responses.bytes.0 > 0
    }
}
