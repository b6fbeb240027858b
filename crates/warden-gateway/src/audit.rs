//! The gateway's side of the audit trail: one record per call, handed to the store's writer
//! thread (`warden_store::audit`). Outside compliance mode a record is queued without waiting, and
//! a full queue drops it (counted, alerted) rather than slow the proxy; in compliance mode the
//! response waits until its record is committed, and a call that cannot be recorded gets a 503.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use warden_store::audit::{AuditWriter, RequestRecord};

use crate::alerts::Alerts;
use crate::context::{Decision, RequestCtx};

/// How long a compliance-mode response waits for its record before it is refused instead.
const DURABLE_WAIT: Duration = Duration::from_secs(5);

pub struct Audit {
    writer: Arc<AuditWriter>,
    pub compliance: bool,
    overflowing: AtomicBool,
    /// Write failures already seen, records written when last seen, and whether an alert is up.
    failures_seen: AtomicU64,
    written_mark: AtomicU64,
    failing: AtomicBool,
    alerts: Arc<Alerts>,
}

/// Marks a request already recorded (compliance mode records before the response is sent).
#[derive(Clone, Copy)]
pub struct Recorded;

impl Audit {
    pub fn new(writer: Arc<AuditWriter>, compliance: bool, alerts: Arc<Alerts>) -> Audit {
        Audit {
            writer,
            compliance,
            overflowing: AtomicBool::new(false),
            failures_seen: AtomicU64::new(0),
            written_mark: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            alerts,
        }
    }

    pub fn writer(&self) -> &AuditWriter {
        &self.writer
    }

    /// Raises `audit-write-failed` when records are lost to failed writes, once per episode, and
    /// resolves it when a write succeeds again.
    fn check_failures(&self) {
        let w = &self.writer;
        let failed = w.failed();
        if failed > self.failures_seen.load(Ordering::Relaxed) {
            self.failures_seen.store(failed, Ordering::Relaxed);
            self.written_mark.store(w.written(), Ordering::Relaxed);
            if !self.failing.swap(true, Ordering::Relaxed) {
                self.alerts.raise(
                    "audit-write-failed",
                    "audit",
                    "the audit trail cannot be written; records are being lost",
                );
            }
        } else if self.failing.load(Ordering::Relaxed)
            && w.written() > self.written_mark.load(Ordering::Relaxed)
            && self.failing.swap(false, Ordering::Relaxed)
        {
            self.alerts.resolve("audit-write-failed", "audit");
        }
    }

    /// Queues a record; never waits.
    pub fn record(&self, rec: &RequestRecord<'_>) {
        self.check_failures();
        match self.writer.try_append(rec) {
            Ok(()) => {
                if self.overflowing.load(Ordering::Relaxed)
                    && self.overflowing.swap(false, Ordering::Relaxed)
                {
                    self.alerts.resolve("audit-queue-full", "audit");
                }
            }
            Err(_) => {
                if !self.overflowing.swap(true, Ordering::Relaxed) {
                    self.alerts.raise(
                        "audit-queue-full",
                        "audit",
                        "the audit writer falls behind; records are being dropped",
                    );
                }
            }
        }
    }

    /// Queues a record and waits until it is committed: false if it could not be.
    pub async fn record_durably(&self, rec: &RequestRecord<'_>) -> bool {
        self.check_failures();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let queued = self.writer.append_then(
            rec,
            Box::new(move |ok| {
                let _ = tx.send(ok);
            }),
        );
        if queued.is_err() {
            return false;
        }
        matches!(tokio::time::timeout(DURABLE_WAIT, rx).await, Ok(Ok(true)))
    }
}

/// What the trail keeps about a call: who, what, the decision and why, never a secret or a body.
/// Borrowed from the request: the writer gets it already encoded.
pub fn request_record<'a>(
    ctx: &'a RequestCtx,
    path: &'a str,
    status: u16,
    bytes_in: u64,
    bytes_out: Option<u64>,
    complete: Option<bool>,
    upstream: Option<&'a str>,
) -> RequestRecord<'a> {
    let (phase, reason) = match &ctx.decision {
        Decision::Allowed => ("", ""),
        Decision::Denied { phase, rejection } => (*phase, rejection.recorded_reason()),
        Decision::Failed { rejection } => ("", rejection.recorded_reason()),
    };
    RequestRecord {
        at_ms: crate::traffic::now_ms() as i64,
        request_id: &ctx.request_id,
        consumer: ctx.identity.as_ref().map(|i| i.consumer.as_str()),
        credential_id: ctx.identity.as_ref().map(|i| i.credential_id.as_str()),
        client_ip: ctx.client_ip.to_canonical(),
        method: ctx.method.as_str(),
        route: ctx.route_name.as_deref().unwrap_or("-"),
        path,
        status,
        decision: ctx.decision.label(),
        phase,
        reason,
        findings: ctx
            .findings
            .iter()
            .map(|f| format!("{}:{}@{}:{}", f.check, f.kind, f.location, f.action))
            .collect(),
        bytes_in,
        bytes_out,
        latency_us: ctx.started.elapsed().as_micros() as u64,
        upstream,
        complete,
    }
}
