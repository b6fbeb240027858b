//! The audit trail: every call (allowed or not) and every admin event, in one tamper-evident chain.
//!
//! Each entry's hash is SHA-256(previous hash ‖ its canonical JSON), so editing, deleting,
//! inserting or reordering an entry breaks the chain at that entry. Every `checkpoint_every`
//! entries or `checkpoint_interval`, the writer signs (Ed25519) the current sequence number and
//! hash; checkpoints go to the database and to an append-only file beside it, so cutting entries
//! off the end (and the checkpoints with them) is caught too. Entries after the last checkpoint are
//! protected by the chain only: anyone who can write the file can append well-formed entries
//! until the next checkpoint is made.
//!
//! Writing is one thread fed by a bounded channel. It commits whatever has queued up while the
//! previous commit ran (group commit): one transaction, one fsync-free WAL append, per batch.
//! `BEGIN IMMEDIATE` and re-reading the chain's head per batch let several processes share a file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::digest::{Context, SHA256};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::{now_ms, StoreError, FILE_NAME};

/// The signing key, beside the database, readable by its owner only.
pub const KEY_FILE: &str = "audit-ed25519.pk8";
/// Checkpoints, one JSON object per line, appended after each is committed.
pub const CHECKPOINT_FILE: &str = "audit-checkpoints.jsonl";

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_entries(
    seq INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_checkpoints(
    seq INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    at_ms INTEGER NOT NULL,
    public_key BLOB NOT NULL,
    signature BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_state(
    id INTEGER PRIMARY KEY CHECK (id = 1),
    admin_events_seen INTEGER NOT NULL DEFAULT 0,
    anchor_seq INTEGER NOT NULL DEFAULT 0,
    anchor_hash BLOB
);
";

/// One call through the gateway, as the trail keeps it. Field order is the canonical order;
/// empty fields are left out, which keeps entries small (they are hashed, stored and exported).
#[derive(Debug, Clone, Serialize, Default)]
pub struct RequestRecord {
    pub at_ms: i64,
    pub request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    /// The credential's id (key id, token id), never the secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    pub client_ip: String,
    pub method: String,
    pub route: String,
    pub path: String,
    pub status: u16,
    /// `allowed`, `denied` or `failed`.
    pub decision: &'static str,
    /// The check that refused, if one did.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub phase: &'static str,
    /// The reason code (the finer cause where there is one).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: &'static str,
    /// `check:kind@location:action` for each finding: never a value.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
    pub bytes_in: u64,
    /// Sent to the client; in compliance mode, what the response declared when it was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    /// Microseconds from the request's arrival to its record.
    pub latency_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// False when the client or upstream went away before the response was complete; `None` when
    /// recorded before the response was sent (compliance mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complete: Option<bool>,
}

/// What the trail records, in the order it happened.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    Request(RequestRecord),
    /// Key changes, config reloads, alerts: from the store's admin event log.
    Admin {
        at_ms: i64,
        actor: String,
        action: String,
        subject: String,
        detail: serde_json::Value,
    },
}

type Ack = Box<dyn FnOnce(bool) + Send>;

enum Msg {
    Record(Record, Option<Ack>),
}

#[derive(Debug, Clone)]
pub struct WriterOptions {
    pub queue: usize,
    pub checkpoint_every: u64,
    pub checkpoint_interval: Duration,
    /// Entries older than this are dropped (at checkpoint boundaries, so verify still works).
    pub retention: Option<Duration>,
    /// Write the trail to PostgreSQL (shared by several replicas) instead of the local store.
    pub postgres: Option<crate::audit_pg::PgTarget>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            queue: 65_536,
            checkpoint_every: 10_000,
            checkpoint_interval: Duration::from_secs(10),
            retention: None,
            postgres: None,
        }
    }
}

/// How long queued records wait for company before they are written (group commit), unless a
/// compliance-mode call is waiting for one of them.
const GROUP_WINDOW: Duration = Duration::from_millis(5);

/// The sending side of the trail; cheap to share.
pub struct AuditWriter {
    /// Used without a lock: every worker thread sends here.
    tx: SyncSender<Msg>,
    closing: Arc<AtomicBool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// To wake the writer for a call that waits on its record.
    waker: std::thread::Thread,
    dropped: AtomicU64,
    /// Records committed, and records lost to a failed write.
    written: Arc<[AtomicU64; 2]>,
}

/// The queue was full: the record was not taken.
#[derive(Debug)]
pub struct QueueFull;

impl AuditWriter {
    /// Opens the trail in `dir` (making the signing key on first use) and starts the writer.
    pub fn start(dir: &Path, opts: WriterOptions) -> Result<Arc<AuditWriter>, StoreError> {
        let mut trail = Trail::open(dir)?;
        let (tx, rx) = mpsc::sync_channel(opts.queue.max(1));
        let written = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let closing = Arc::new(AtomicBool::new(false));
        let (w, c) = (written.clone(), closing.clone());
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("warden-audit".into())
            .spawn(move || {
                // Connected here, not by the caller: the blocking PostgreSQL client runs its own
                // runtime, which cannot start inside the caller's. Failing here fails the start:
                // a bad URL or schema is a config error, not something to find at the first call.
                if let Some(target) = &opts.postgres {
                    if let Err(e) = target.connect_and_prepare() {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                    trail.pg = Some(crate::audit_pg::PgSink::new(target.clone()));
                }
                let _ = ready_tx.send(Ok(()));
                trail.run(rx, &opts, &w, &c)
            })
            .map_err(|e| StoreError::Invalid(format!("cannot start the audit writer: {e}")))?;
        ready_rx
            .recv()
            .map_err(|_| StoreError::Invalid("the audit writer stopped at start".into()))??;
        Ok(Arc::new(AuditWriter {
            tx,
            closing,
            waker: thread.thread().clone(),
            thread: Mutex::new(Some(thread)),
            dropped: AtomicU64::new(0),
            written,
        }))
    }

    /// Queues a record without waiting; a full queue drops it (counted in `dropped`).
    pub fn try_append(&self, record: Record) -> Result<(), QueueFull> {
        if self.closing.load(Ordering::Relaxed) {
            return Err(QueueFull);
        }
        match self.tx.try_send(Msg::Record(record, None)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Err(QueueFull)
            }
        }
    }

    /// Queues a record and calls `ack(true)` once it is committed (`false`: it could not be).
    /// The queue being full is reported at once, without waiting.
    pub fn append_then(&self, record: Record, ack: Ack) -> Result<(), QueueFull> {
        if self.closing.load(Ordering::Relaxed) {
            return Err(QueueFull);
        }
        self.tx
            .try_send(Msg::Record(record, Some(ack)))
            .map_err(|_| {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                QueueFull
            })?;
        self.waker.unpark();
        Ok(())
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn written(&self) -> u64 {
        self.written[0].load(Ordering::Relaxed)
    }

    /// Records lost because their write failed (the database unreachable or full).
    pub fn failed(&self) -> u64 {
        self.written[1].load(Ordering::Relaxed)
    }

    /// Writes what is queued, makes a last checkpoint and stops the writer.
    pub fn shutdown(&self) {
        self.closing.store(true, Ordering::Release);
        self.waker.unpark();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl Drop for AuditWriter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Trail {
    conn: Connection,
    path: PathBuf,
    dir: PathBuf,
    key: Ed25519KeyPair,
    last_checkpoint: (u64, Instant),
    pg: Option<crate::audit_pg::PgSink>,
}

pub(crate) fn chain(prev: &[u8], body: &[u8]) -> [u8; 32] {
    let mut c = Context::new(&SHA256);
    c.update(prev);
    c.update(body);
    c.finish().as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// What a checkpoint's signature covers.
pub(crate) fn checkpoint_message(seq: u64, hash: &[u8], at_ms: i64) -> Vec<u8> {
    format!(
        "warden-audit-checkpoint v1\n{seq}\n{}\n{at_ms}\n",
        hex(hash)
    )
    .into_bytes()
}

use warden_policy::hex::decode as unhex;
pub use warden_policy::hex::encode as hex;

fn load_or_make_key(dir: &Path) -> Result<Ed25519KeyPair, StoreError> {
    let path = dir.join(KEY_FILE);
    let bad = |what: String| StoreError::Invalid(format!("{}: {what}", path.display()));
    if let Ok(bytes) = std::fs::read(&path) {
        return Ed25519KeyPair::from_pkcs8(&bytes).map_err(|_| {
            bad(
                "is not an Ed25519 PKCS#8 key; restore it, or move it away to start a new trail"
                    .into(),
            )
        });
    }
    let doc = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
        .map_err(|_| StoreError::Random)?;
    let mut f = std::fs::OpenOptions::new();
    f.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut f, 0o600);
    f.open(&path)
        .and_then(|mut file| file.write_all(doc.as_ref()))
        .map_err(|e| bad(format!("cannot write the signing key: {e}")))?;
    Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|_| StoreError::Random)
}

/// The public half of the trail's signing key, for pinning (`warden audit verify --public-key`).
pub fn public_key(dir: &Path) -> Result<Vec<u8>, StoreError> {
    Ok(load_or_make_key(dir)?.public_key().as_ref().to_vec())
}

impl Trail {
    fn open(dir: &Path) -> Result<Trail, StoreError> {
        let key = load_or_make_key(dir)?;
        let store = crate::Store::open(dir)?;
        let mut t = Trail {
            conn: store.conn,
            path: dir.join(FILE_NAME),
            dir: dir.to_path_buf(),
            key,
            last_checkpoint: (0, Instant::now()),
            pg: None,
        };
        let last: Option<i64> = t
            .conn
            .query_row("SELECT max(seq) FROM audit_checkpoints", [], |r| r.get(0))
            .map_err(|e| t.err(e))?;
        t.last_checkpoint.0 = last.unwrap_or(0) as u64;
        Ok(t)
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn run(
        &mut self,
        rx: Receiver<Msg>,
        opts: &WriterOptions,
        written: &[AtomicU64; 2],
        closing: &AtomicBool,
    ) {
        let mut last_admin_poll = Instant::now() - Duration::from_secs(10);
        let mut last_retention = Instant::now() - Duration::from_secs(3600);
        loop {
            // Read before draining: once set, no sender adds more, so an empty queue is the end.
            let stopping = closing.load(Ordering::Acquire);
            let mut batch = Vec::new();
            let mut closed = false;
            while batch.len() < 8192 {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(TryRecvError::Empty) => {
                        closed = stopping;
                        break;
                    }
                    Err(TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            let poll_admin = closed || last_admin_poll.elapsed() >= Duration::from_millis(500);
            if batch.is_empty() && !poll_admin {
                // Senders never wake this thread (a wake-up per call cost the proxy more than the
                // write itself); it looks again after GROUP_WINDOW, or when a compliance-mode call,
                // which waits for its record, unparks it.
                std::thread::park_timeout(GROUP_WINDOW);
                continue;
            }
            if poll_admin {
                last_admin_poll = Instant::now();
            }
            let due = |seq: u64, lc: (u64, Instant)| {
                seq > lc.0
                    && (closed
                        || seq - lc.0 >= opts.checkpoint_every.max(1)
                        || lc.1.elapsed() >= opts.checkpoint_interval)
            };
            let n = batch.len();
            let mut acks = Vec::new();
            let result = if self.pg.is_some() {
                self.commit_pg(batch, &mut acks, poll_admin, due)
            } else {
                self.commit(batch, &mut acks, poll_admin, due)
            };
            let ok = result.is_ok();
            if let Err(e) = result {
                tracing::error!(error = %e, "audit trail write failed; those records are lost");
                written[1].fetch_add(n as u64, Ordering::Relaxed);
            } else {
                written[0].fetch_add(n as u64, Ordering::Relaxed);
            }
            for ack in acks {
                ack(ok);
            }
            if let Some(keep) = opts.retention {
                if last_retention.elapsed() >= Duration::from_secs(3600) {
                    last_retention = Instant::now();
                    if let Err(e) = self.drop_older_than(keep) {
                        tracing::error!(error = %e, "audit retention failed");
                    }
                }
            }
            if closed {
                return;
            }
        }
    }

    /// Appends the batch (and new admin events) in one transaction, checkpointing when `due`.
    fn commit(
        &mut self,
        batch: Vec<Msg>,
        acks: &mut Vec<Ack>,
        poll_admin: bool,
        due: impl Fn(u64, (u64, Instant)) -> bool,
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| StoreError::Sqlite {
                path: self.path.clone(),
                source: e,
            })?;
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        // The chain's head, read again: another process may have appended.
        let (mut seq, mut prev): (u64, Vec<u8>) = tx
            .query_row(
                "SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()
            .map_err(err)?
            .map_or_else(|| anchor(&tx), Ok)
            .map_err(err)?;
        let mut records = Vec::with_capacity(batch.len());
        for Msg::Record(r, ack) in batch {
            records.push(r);
            acks.extend(ack);
        }
        if poll_admin {
            let seen: i64 = tx
                .query_row(
                    "SELECT admin_events_seen FROM audit_state WHERE id = 1",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(err)?
                .unwrap_or(0);
            let mut stmt = tx
                .prepare("SELECT seq, at_ms, actor, action, subject, detail FROM admin_events WHERE seq > ?1 ORDER BY seq LIMIT 1000")
                .map_err(err)?;
            let mut last = seen;
            let rows = stmt.query_map([seen], admin_record).map_err(err)?;
            for row in rows {
                let (s, rec) = row.map_err(err)?;
                last = s;
                records.push(rec);
            }
            drop(stmt);
            if last != seen {
                tx.execute(
                    "INSERT INTO audit_state(id, admin_events_seen) VALUES (1, ?1)
                     ON CONFLICT(id) DO UPDATE SET admin_events_seen = excluded.admin_events_seen",
                    [last],
                )
                .map_err(err)?;
            }
        }
        {
            let mut insert = tx
                .prepare("INSERT INTO audit_entries(seq, hash, body) VALUES (?1, ?2, ?3)")
                .map_err(err)?;
            for r in &records {
                let body = serde_json::to_string(r).expect("records always serialize");
                let hash = chain(&prev, body.as_bytes());
                seq += 1;
                insert
                    .execute(params![seq as i64, &hash[..], body])
                    .map_err(err)?;
                prev = hash.to_vec();
            }
        }
        let mut checkpoint = None;
        if due(seq, self.last_checkpoint) {
            let at = now_ms();
            let sig = self.key.sign(&checkpoint_message(seq, &prev, at));
            let public = self.key.public_key().as_ref().to_vec();
            tx.execute(
                "INSERT OR REPLACE INTO audit_checkpoints(seq, hash, at_ms, public_key, signature) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![seq as i64, &prev, at, &public, sig.as_ref()],
            )
            .map_err(err)?;
            checkpoint = Some(Checkpoint {
                seq,
                hash: prev.clone(),
                at_ms: at,
                public_key: public,
                signature: sig.as_ref().to_vec(),
            });
        }
        tx.commit().map_err(err)?;
        if let Some(cp) = checkpoint {
            self.checkpointed(&cp);
        }
        Ok(())
    }

    /// Notes a committed checkpoint, and appends it to the checkpoint file.
    fn checkpointed(&mut self, cp: &Checkpoint) {
        self.last_checkpoint = (cp.seq, Instant::now());
        let line = serde_json::json!({"seq": cp.seq, "hash": hex(&cp.hash), "at_ms": cp.at_ms,
            "public_key": hex(&cp.public_key), "signature": hex(&cp.signature)});
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(CHECKPOINT_FILE))
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            tracing::error!(error = %e, "cannot append the audit checkpoint file");
        }
    }

    /// The PostgreSQL path: this replica's new admin events join the batch, one transaction there,
    /// then the events are noted as sent in the local store.
    fn commit_pg(
        &mut self,
        batch: Vec<Msg>,
        acks: &mut Vec<Ack>,
        poll_admin: bool,
        due: impl Fn(u64, (u64, Instant)) -> bool,
    ) -> Result<(), StoreError> {
        let mut records = Vec::with_capacity(batch.len());
        for Msg::Record(r, ack) in batch {
            records.push(r);
            acks.extend(ack);
        }
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let mut seen_up_to = None;
        if poll_admin {
            let seen: i64 = self
                .conn
                .query_row(
                    "SELECT admin_events_seen FROM audit_state WHERE id = 1",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(err)?
                .unwrap_or(0);
            let mut stmt = self
                .conn
                .prepare("SELECT seq, at_ms, actor, action, subject, detail FROM admin_events WHERE seq > ?1 ORDER BY seq LIMIT 1000")
                .map_err(err)?;
            let rows = stmt.query_map([seen], admin_record).map_err(err)?;
            for row in rows {
                let (s, rec) = row.map_err(err)?;
                seen_up_to = Some(s);
                records.push(rec);
            }
        }
        let last = self.last_checkpoint;
        let pg = self
            .pg
            .as_mut()
            .expect("commit_pg only with a PostgreSQL sink");
        let cp = pg.commit(&records, &self.key, due, last)?;
        if let Some(s) = seen_up_to {
            self.conn
                .execute(
                    "INSERT INTO audit_state(id, admin_events_seen) VALUES (1, ?1)
                     ON CONFLICT(id) DO UPDATE SET admin_events_seen = excluded.admin_events_seen",
                    [s],
                )
                .map_err(err)?;
        }
        if let Some(cp) = cp {
            self.checkpointed(&cp);
        }
        Ok(())
    }

    /// Drops entries older than `keep`, up to the newest checkpoint among them, which becomes the
    /// anchor verify starts from.
    fn drop_older_than(&mut self, keep: Duration) -> Result<(), StoreError> {
        let cutoff = now_ms() - keep.as_millis() as i64;
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let cp: Option<(i64, Vec<u8>)> = tx
            .query_row(
                "SELECT seq, hash FROM audit_checkpoints WHERE at_ms < ?1 ORDER BY seq DESC LIMIT 1",
                [cutoff],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(err)?;
        if let Some((seq, hash)) = cp {
            tx.execute("DELETE FROM audit_entries WHERE seq <= ?1", [seq])
                .map_err(err)?;
            tx.execute(
                "INSERT INTO audit_state(id, anchor_seq, anchor_hash) VALUES (1, ?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET anchor_seq = excluded.anchor_seq, anchor_hash = excluded.anchor_hash",
                params![seq, hash],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }
}

/// An `admin_events` row as a trail record, with its sequence number there.
fn admin_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Record)> {
    Ok((
        r.get(0)?,
        Record::Admin {
            at_ms: r.get(1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            subject: r.get(4)?,
            detail: serde_json::from_str(&r.get::<_, String>(5)?)
                .unwrap_or(serde_json::Value::Null),
        },
    ))
}

/// Where the chain starts: the retention anchor, or zero.
fn anchor(conn: &Connection) -> rusqlite::Result<(u64, Vec<u8>)> {
    Ok(conn
        .query_row(
            "SELECT anchor_seq, anchor_hash FROM audit_state WHERE id = 1 AND anchor_hash IS NOT NULL",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
        )
        .optional()?
        .unwrap_or((0, vec![0; 32])))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub(crate) seq: u64,
    pub(crate) hash: Vec<u8>,
    pub(crate) at_ms: i64,
    pub(crate) public_key: Vec<u8>,
    pub(crate) signature: Vec<u8>,
}

/// The first thing wrong with a trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Entry `seq` is not there, though later ones are.
    Missing { seq: u64 },
    /// Entry `seq`'s hash does not match its content and the entry before it: it was edited, or
    /// entries were inserted or reordered here.
    Broken { seq: u64 },
    /// A checkpoint's signature does not verify (or is by another key than the pinned one).
    BadCheckpoint { seq: u64 },
    /// The chain up to checkpoint `seq` differs from what was signed: entries after `after` were
    /// rewritten, hashes included.
    Rewritten { after: u64, seq: u64 },
    /// The trail ends at `last`, but checkpoint `checkpoint` vouches for more.
    Truncated { last: u64, checkpoint: u64 },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Missing { seq } => write!(f, "entry {seq} is missing (deleted)"),
            Problem::Broken { seq } => write!(
                f,
                "entry {seq} does not match the chain: it was edited, or entries were inserted or reordered here"
            ),
            Problem::BadCheckpoint { seq } => {
                write!(f, "checkpoint {seq} has a bad signature or an unexpected key")
            }
            Problem::Rewritten { after, seq } => write!(
                f,
                "entries {}..={seq} were rewritten: they differ from what checkpoint {seq} signed",
                after + 1
            ),
            Problem::Truncated { last, checkpoint } => write!(
                f,
                "entries after {last} were cut off: checkpoint {checkpoint} vouches for entries up to {checkpoint}"
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// First and last sequence numbers present.
    pub first: u64,
    pub last: u64,
    pub entries: u64,
    pub checkpoints: u64,
    /// Entries after the last checkpoint (protected by the chain only).
    pub unsigned_tail: u64,
    pub problem: Option<Problem>,
}

/// Checks the whole trail in `dir`: the chain, every checkpoint (from the database and the
/// checkpoint file) and its signature. With `pinned`, checkpoints must be signed by that key.
pub fn verify(dir: &Path, pinned: Option<&[u8]>) -> Result<Report, StoreError> {
    let store = crate::Store::open(dir)?;
    let conn = &store.conn;
    let err = |source| StoreError::Sqlite {
        path: dir.join(FILE_NAME),
        source,
    };
    let mut checkpoints = Checkpoints::new();
    {
        let mut stmt = conn
            .prepare("SELECT seq, hash, at_ms, public_key, signature FROM audit_checkpoints")
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Checkpoint {
                    seq: r.get::<_, i64>(0)? as u64,
                    hash: r.get(1)?,
                    at_ms: r.get(2)?,
                    public_key: r.get(3)?,
                    signature: r.get(4)?,
                })
            })
            .map_err(err)?;
        for cp in rows {
            let cp = cp.map_err(err)?;
            checkpoints.insert(cp.seq, cp);
        }
    }
    let mut v = Verifier::new(
        checkpoints,
        Some(&dir.join(CHECKPOINT_FILE)),
        anchor(conn).map_err(err)?,
        &[pinned],
    );
    let mut stmt = conn
        .prepare("SELECT seq, hash, body FROM audit_entries ORDER BY seq")
        .map_err(err)?;
    let mut rows = stmt.query([]).map_err(err)?;
    while let Some(row) = rows.next().map_err(err)? {
        let seq = row.get::<_, i64>(0).map_err(err)? as u64;
        let stored: Vec<u8> = row.get(1).map_err(err)?;
        let body = row.get_ref(2).map_err(err)?;
        v.row(seq, &stored, body.as_bytes().map_err(|e| err(e.into()))?);
    }
    Ok(v.finish())
}

pub(crate) type Checkpoints = std::collections::BTreeMap<u64, Checkpoint>;

/// The verification walk, whatever the entries are stored in.
pub(crate) struct Verifier {
    checkpoints: Checkpoints,
    problem: Option<Problem>,
    prev: Vec<u8>,
    expected: u64,
    first: u64,
    last: u64,
    entries: u64,
    last_good_checkpoint: u64,
}

impl Verifier {
    /// Checks the checkpoints (those in `file` count too), their signatures (by one of `pinned`
    /// when any is given) and the anchor, ready for the entries from the anchor on.
    pub(crate) fn new(
        mut checkpoints: Checkpoints,
        file: Option<&Path>,
        (anchor_seq, anchor_hash): (u64, Vec<u8>),
        pinned: &[Option<&[u8]>],
    ) -> Verifier {
        let mut problem = None;
        // The file copy: a checkpoint missing from the database (or differing) still counts.
        if let Some(text) = file.and_then(|f| std::fs::read_to_string(f).ok()) {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
                let field = |k: &str| v[k].as_str().and_then(unhex);
                let (Some(seq), Some(hash), Some(at_ms), Some(pk), Some(sig)) = (
                    v["seq"].as_u64(),
                    field("hash"),
                    v["at_ms"].as_i64(),
                    field("public_key"),
                    field("signature"),
                ) else {
                    continue;
                };
                let cp = Checkpoint {
                    seq,
                    hash,
                    at_ms,
                    public_key: pk,
                    signature: sig,
                };
                match checkpoints.get(&seq) {
                    Some(db) if *db != cp => {
                        problem.get_or_insert(Problem::BadCheckpoint { seq });
                    }
                    _ => {
                        checkpoints.insert(seq, cp);
                    }
                }
            }
        }
        let pins: Vec<&[u8]> = pinned.iter().flatten().copied().collect();
        for cp in checkpoints.values() {
            let key_ok = pins.is_empty() || pins.contains(&cp.public_key.as_slice());
            let sig_ok = UnparsedPublicKey::new(&ED25519, &cp.public_key)
                .verify(
                    &checkpoint_message(cp.seq, &cp.hash, cp.at_ms),
                    &cp.signature,
                )
                .is_ok();
            if !key_ok || !sig_ok {
                problem.get_or_insert(Problem::BadCheckpoint { seq: cp.seq });
            }
        }
        if anchor_seq > 0
            && checkpoints
                .get(&anchor_seq)
                .is_none_or(|c| c.hash != anchor_hash)
        {
            // Retention anchors at a checkpoint: one that is not vouched for could hide a rewrite.
            problem.get_or_insert(Problem::BadCheckpoint { seq: anchor_seq });
        }
        Verifier {
            checkpoints,
            problem,
            prev: anchor_hash,
            expected: anchor_seq + 1,
            first: 0,
            last: anchor_seq,
            entries: 0,
            last_good_checkpoint: anchor_seq,
        }
    }

    /// The next entry, in sequence order.
    pub(crate) fn row(&mut self, seq: u64, stored: &[u8], body: &[u8]) {
        if self.entries == 0 {
            self.first = seq;
        }
        self.entries += 1;
        self.last = seq;
        if self.problem.is_some() {
            return;
        }
        if seq != self.expected {
            self.problem = Some(Problem::Missing { seq: self.expected });
            return;
        }
        let hash = chain(&self.prev, body);
        if hash[..] != stored[..] {
            self.problem = Some(Problem::Broken { seq });
            return;
        }
        if let Some(cp) = self.checkpoints.get(&seq) {
            if cp.hash[..] != hash[..] {
                self.problem = Some(Problem::Rewritten {
                    after: self.last_good_checkpoint,
                    seq,
                });
                return;
            }
            self.last_good_checkpoint = seq;
        }
        self.prev = hash.to_vec();
        self.expected += 1;
    }

    pub(crate) fn finish(mut self) -> Report {
        let top = self.checkpoints.keys().next_back().copied().unwrap_or(0);
        if self.problem.is_none() && top > self.last {
            self.problem = Some(Problem::Truncated {
                last: self.last,
                checkpoint: top,
            });
        }
        Report {
            first: self.first,
            last: self.last,
            entries: self.entries,
            checkpoints: self.checkpoints.len() as u64,
            unsigned_tail: self.last.saturating_sub(top),
            problem: self.problem,
        }
    }
}

/// Filters for [`query`]; `None` matches anything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub consumer: Option<String>,
    pub route: Option<String>,
    pub decision: Option<String>,
    pub status: Option<u16>,
    pub reason: Option<String>,
    pub kind: Option<String>,
    pub limit: Option<u64>,
}

/// One entry as stored: its place in the chain and its JSON.
#[derive(Debug, Clone)]
pub struct Entry {
    pub seq: u64,
    pub hash: String,
    pub body: serde_json::Value,
}

/// Entries matching `f`, oldest first.
pub fn query(dir: &Path, f: &Filter) -> Result<Vec<Entry>, StoreError> {
    let mut out = Vec::new();
    for_each(dir, f, |e| {
        out.push(e);
        Ok(())
    })?;
    Ok(out)
}

/// Hands each entry matching `f` to `visit`, oldest first, without holding them all (an export of
/// a long trail); the first error `visit` returns stops the walk.
pub fn for_each(
    dir: &Path,
    f: &Filter,
    mut visit: impl FnMut(Entry) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let store = crate::Store::open(dir)?;
    let err = |source| StoreError::Sqlite {
        path: dir.join(FILE_NAME),
        source,
    };
    let mut sql = String::from("SELECT seq, hash, body FROM audit_entries WHERE 1=1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let mut cond = |clause: &str, v: rusqlite::types::Value| {
        sql.push_str(" AND ");
        sql.push_str(&clause.replace('?', &format!("?{}", args.len() + 1)));
        args.push(v);
    };
    use rusqlite::types::Value as V;
    if let Some(t) = f.since_ms {
        cond("json_extract(body, '$.at_ms') >= ?", V::Integer(t));
    }
    if let Some(t) = f.until_ms {
        cond("json_extract(body, '$.at_ms') < ?", V::Integer(t));
    }
    for (path, v) in [
        ("$.consumer", &f.consumer),
        ("$.route", &f.route),
        ("$.decision", &f.decision),
        ("$.reason", &f.reason),
        ("$.kind", &f.kind),
    ] {
        if let Some(v) = v {
            cond(
                &format!("json_extract(body, '{path}') = ?"),
                V::Text(v.clone()),
            );
        }
    }
    if let Some(s) = f.status {
        cond(
            "json_extract(body, '$.status') = ?",
            V::Integer(i64::from(s)),
        );
    }
    sql.push_str(" ORDER BY seq");
    if let Some(n) = f.limit {
        sql.push_str(&format!(" LIMIT {n}"));
    }
    let mut stmt = store.conn.prepare(&sql).map_err(err)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args)).map_err(err)?;
    while let Some(r) = rows.next().map_err(err)? {
        let body: String = r.get(2).map_err(err)?;
        visit(Entry {
            seq: r.get::<_, i64>(0).map_err(err)? as u64,
            hash: hex(&r.get::<_, Vec<u8>>(1).map_err(err)?),
            body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("warden-audit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn record(i: u64) -> Record {
        Record::Request(RequestRecord {
            at_ms: 1_700_000_000_000 + i as i64,
            request_id: format!("req-{i}"),
            consumer: Some(if i.is_multiple_of(2) { "alice" } else { "bob" }.into()),
            client_ip: "192.0.2.1".into(),
            method: "GET".into(),
            route: "api".into(),
            path: format!("/orders/{i}"),
            status: if i.is_multiple_of(5) { 403 } else { 200 },
            decision: if i.is_multiple_of(5) {
                "denied"
            } else {
                "allowed"
            },
            ..RequestRecord::default()
        })
    }

    /// A trail of `n` entries with a checkpoint every 10.
    fn trail(name: &str, n: u64) -> PathBuf {
        let dir = temp(name);
        let w = AuditWriter::start(
            &dir,
            WriterOptions {
                checkpoint_every: 10,
                ..WriterOptions::default()
            },
        )
        .unwrap();
        for i in 1..=n {
            // Several small batches, as traffic would make.
            while w.try_append(record(i)).is_err() {
                std::thread::sleep(Duration::from_millis(1));
            }
            if i.is_multiple_of(7) {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        w.shutdown();
        dir
    }

    fn sql(dir: &Path, s: &str) {
        Connection::open(dir.join(FILE_NAME))
            .unwrap()
            .execute_batch(s)
            .unwrap();
    }

    fn problem(dir: &Path) -> Option<Problem> {
        verify(dir, None).unwrap().problem
    }

    #[test]
    fn an_untouched_trail_verifies_and_queries() {
        let dir = trail("intact", 95);
        let r = verify(&dir, None).unwrap();
        assert_eq!(r.problem, None);
        assert_eq!((r.first, r.last, r.entries), (1, 95, 95));
        // One per batch once ten entries have gathered: batches vary in size.
        assert!(r.checkpoints >= 5, "{r:?}");
        assert_eq!(r.unsigned_tail, 0, "shutdown checkpoints the tail");
        let denied = query(
            &dir,
            &Filter {
                decision: Some("denied".into()),
                ..Filter::default()
            },
        )
        .unwrap();
        assert_eq!(denied.len(), 19);
        assert_eq!(denied[0].body["request_id"], "req-5");
        let pinned = public_key(&dir).unwrap();
        assert_eq!(verify(&dir, Some(&pinned)).unwrap().problem, None);
        assert!(matches!(
            verify(&dir, Some(&[7; 32])).unwrap().problem,
            Some(Problem::BadCheckpoint { .. })
        ));
    }

    #[test]
    fn each_kind_of_tampering_is_found_and_located() {
        let base = trail("tamper", 60);
        let copy = |name: &str| {
            let d = temp(name);
            for f in [FILE_NAME, CHECKPOINT_FILE, KEY_FILE] {
                std::fs::copy(base.join(f), d.join(f)).unwrap();
            }
            d
        };
        // Edited.
        let d = copy("edit");
        sql(&d, "UPDATE audit_entries SET body = replace(body, '\"status\":200', '\"status\":201') WHERE seq = 22");
        assert_eq!(problem(&d), Some(Problem::Broken { seq: 22 }));
        // Edited, with its own hash fixed up: the next entry no longer follows.
        let d = copy("edit-rehash");
        let body: String = Connection::open(d.join(FILE_NAME))
            .unwrap()
            .query_row("SELECT body FROM audit_entries WHERE seq = 22", [], |r| {
                r.get(0)
            })
            .unwrap();
        let prev: Vec<u8> = Connection::open(d.join(FILE_NAME))
            .unwrap()
            .query_row("SELECT hash FROM audit_entries WHERE seq = 21", [], |r| {
                r.get(0)
            })
            .unwrap();
        let forged = body.replace("\"status\":200", "\"status\":201");
        let h = chain(&prev, forged.as_bytes());
        Connection::open(d.join(FILE_NAME))
            .unwrap()
            .execute(
                "UPDATE audit_entries SET body = ?1, hash = ?2 WHERE seq = 22",
                params![forged, &h[..]],
            )
            .unwrap();
        assert_eq!(problem(&d), Some(Problem::Broken { seq: 23 }));
        // Deleted.
        let d = copy("delete");
        sql(&d, "DELETE FROM audit_entries WHERE seq = 33");
        assert_eq!(problem(&d), Some(Problem::Missing { seq: 33 }));
        // Inserted (later entries renumbered to make room).
        let d = copy("insert");
        sql(&d, "UPDATE audit_entries SET seq = -seq WHERE seq >= 41; UPDATE audit_entries SET seq = -seq + 1 WHERE seq < 0;
                 INSERT INTO audit_entries(seq, hash, body) SELECT 41, hash, body FROM audit_entries WHERE seq = 40;");
        assert_eq!(problem(&d), Some(Problem::Broken { seq: 41 }));
        // Reordered.
        let d = copy("reorder");
        sql(&d, "UPDATE audit_entries SET seq = -1 WHERE seq = 12; UPDATE audit_entries SET seq = 12 WHERE seq = 13;
                 UPDATE audit_entries SET seq = 13 WHERE seq = -1;");
        assert_eq!(problem(&d), Some(Problem::Broken { seq: 12 }));
        // Truncated, checkpoints in the database included: the checkpoint file remembers.
        let d = copy("truncate");
        sql(&d, "DELETE FROM audit_entries WHERE seq > 45; DELETE FROM audit_checkpoints WHERE seq > 45;");
        assert_eq!(
            problem(&d),
            Some(Problem::Truncated {
                last: 45,
                checkpoint: 60
            })
        );
        // Rewritten wholesale from entry 25 on, every hash recomputed: the first signed checkpoint
        // after it no longer matches.
        let d = copy("rewrite");
        let conn = Connection::open(d.join(FILE_NAME)).unwrap();
        let mut prev: Vec<u8> = conn
            .query_row("SELECT hash FROM audit_entries WHERE seq = 24", [], |r| {
                r.get(0)
            })
            .unwrap();
        for seq in 25..=60i64 {
            let body: String = conn
                .query_row(
                    "SELECT body FROM audit_entries WHERE seq = ?1",
                    [seq],
                    |r| r.get(0),
                )
                .unwrap();
            let body = body.replace("alice", "mallory");
            let h = chain(&prev, body.as_bytes());
            conn.execute(
                "UPDATE audit_entries SET body = ?1, hash = ?2 WHERE seq = ?3",
                params![body, &h[..], seq],
            )
            .unwrap();
            prev = h.to_vec();
        }
        let cps: Vec<u64> = {
            let mut st = conn
                .prepare("SELECT seq FROM audit_checkpoints ORDER BY seq")
                .unwrap();
            let v = st
                .query_map([], |r| r.get::<_, i64>(0))
                .unwrap()
                .map(|x| x.unwrap() as u64)
                .collect();
            v
        };
        let at = *cps.iter().find(|c| **c >= 25).unwrap();
        let before = cps.iter().rev().find(|c| **c < 25).copied().unwrap_or(0);
        assert_eq!(
            problem(&d),
            Some(Problem::Rewritten {
                after: before,
                seq: at
            })
        );
    }

    #[test]
    fn retention_keeps_the_trail_verifiable() {
        let dir = trail("retention", 40);
        // Every checkpoint so far is "old" for a zero retention.
        let mut t = Trail::open(&dir).unwrap();
        t.drop_older_than(Duration::ZERO).unwrap();
        let r = verify(&dir, None).unwrap();
        assert_eq!(r.problem, None, "{r:?}");
        assert_eq!(r.entries, 0);
        // New entries chain on from the anchor.
        drop(t);
        let w = AuditWriter::start(&dir, WriterOptions::default()).unwrap();
        w.try_append(record(41)).unwrap();
        w.shutdown();
        let r = verify(&dir, None).unwrap();
        assert_eq!((r.first, r.last, r.problem), (41, 41, None));
    }

    #[test]
    fn admin_events_join_the_chain() {
        let dir = temp("admin");
        let mut s = crate::Store::open(&dir).unwrap();
        s.create_key("alice", &[], &[], None, "cli:test").unwrap();
        let w = AuditWriter::start(&dir, WriterOptions::default()).unwrap();
        w.try_append(record(1)).unwrap();
        w.shutdown();
        let admin = query(
            &dir,
            &Filter {
                kind: Some("admin".into()),
                ..Filter::default()
            },
        )
        .unwrap();
        assert_eq!(admin.len(), 1);
        assert_eq!(admin[0].body["action"], "key.created");
        assert_eq!(verify(&dir, None).unwrap().problem, None);
    }
}
