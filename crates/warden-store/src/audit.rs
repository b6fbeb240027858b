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
//! Writing is one thread. Callers encode their record into one of a few shard buffers (a thread
//! keeps to its shard, so the lock is uncontended); every `GROUP_WINDOW` the writer swaps the
//! buffers out and commits what they held (group commit): one transaction, one fsync-free WAL
//! append and one compressed block per shard (`audit_block`). `BEGIN IMMEDIATE` and re-reading
//! the chain's head per batch let several processes share a file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::digest::{Context, SHA256};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use rusqlite::{params, Connection, OptionalExtension};

use crate::{audit_block, now_ms, StoreError, FILE_NAME};

/// The signing key, beside the database, readable by its owner only.
pub const KEY_FILE: &str = "audit-ed25519.pk8";
/// Checkpoints, one JSON object per line, appended after each is committed.
pub const CHECKPOINT_FILE: &str = "audit-checkpoints.jsonl";

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_blocks(
    first_seq INTEGER PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    last_hash BLOB NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    raw_len INTEGER NOT NULL,
    data BLOB NOT NULL
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

pub use crate::audit_block::{decode as decode_block, read_raw, write_raw, RawEntry};
pub use crate::audit_record::{Record, RequestRecord};

type Ack = Box<dyn FnOnce(bool) + Send>;

/// Records waiting for the writer, from the threads that share this shard. Each is already a
/// block frame (sequence number and hash left zero for the writer to fill in), so a record is
/// encoded once, straight into the buffer it is stored from: no allocation per call, nothing
/// freed on another thread, no channel operation. The writer swaps the buffer for an empty one.
struct Shard {
    pending: Taken,
    acks: Vec<Ack>,
    /// Set by the writer's last look: nothing more is taken after it.
    closed: bool,
}

/// Framed records for one commit: what a shard holds, or what was read from the admin event log.
struct Taken {
    frames: Vec<u8>,
    count: u64,
    /// Earliest and latest `at_ms` among them.
    ms: (i64, i64),
}

impl Taken {
    fn new(frames: Vec<u8>) -> Taken {
        Taken {
            frames,
            count: 0,
            ms: (i64::MAX, i64::MIN),
        }
    }

    /// Frames one record, written by `encode` (its sequence number and hash are left for
    /// `audit_block::seal`).
    fn push(&mut self, at_ms: i64, encode: impl FnOnce(&mut Vec<u8>)) {
        let start = audit_block::open_frame(&mut self.frames);
        encode(&mut self.frames);
        audit_block::close_frame(&mut self.frames, start);
        self.count += 1;
        self.ms = (self.ms.0.min(at_ms), self.ms.1.max(at_ms));
    }
}

/// Shards per writer: enough that worker threads rarely share one.
const SHARDS: usize = 8;

/// This thread's shard: threads are numbered as they first append, round robin.
fn shard_index() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local!(static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed));
    INDEX.with(|i| *i) % SHARDS
}

fn lock(m: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// About how many records may wait for the writer (as bytes: 512 a record) before new ones
    /// are refused.
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
/// compliance-mode call is waiting for one of them. Each commit has a fixed cost (locks, the
/// chain's head, a WAL append); at 5 ms it was a third of the writer's work under load.
const GROUP_WINDOW: Duration = Duration::from_millis(10);

/// The sending side of the trail; cheap to share.
pub struct AuditWriter {
    shards: Arc<[Mutex<Shard>]>,
    /// Bytes one shard may hold before its records are refused.
    shard_bytes: usize,
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
        let shards: Arc<[Mutex<Shard>]> = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    pending: Taken::new(Vec::new()),
                    acks: Vec::new(),
                    closed: false,
                })
            })
            .collect();
        let written = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let closing = Arc::new(AtomicBool::new(false));
        let (w, c, sh) = (written.clone(), closing.clone(), shards.clone());
        // Two worker threads (two cores) between them may queue `queue` records.
        let shard_bytes = (opts.queue.max(1) * 512 / 2).max(64 << 10);
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
                trail.run(&sh, &opts, &w, &c)
            })
            .map_err(|e| StoreError::Invalid(format!("cannot start the audit writer: {e}")))?;
        ready_rx
            .recv()
            .map_err(|_| StoreError::Invalid("the audit writer stopped at start".into()))??;
        Ok(Arc::new(AuditWriter {
            shards,
            shard_bytes,
            closing,
            waker: thread.thread().clone(),
            thread: Mutex::new(Some(thread)),
            dropped: AtomicU64::new(0),
            written,
        }))
    }

    fn append(&self, record: &RequestRecord<'_>, ack: Option<Ack>) -> Result<(), QueueFull> {
        if self.closing.load(Ordering::Relaxed) {
            return Err(QueueFull);
        }
        let mut s = lock(&self.shards[shard_index()]);
        if s.closed {
            return Err(QueueFull);
        }
        if s.pending.frames.len() >= self.shard_bytes {
            drop(s);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(QueueFull);
        }
        s.pending.push(record.at_ms, |out| record.encode(out));
        s.acks.extend(ack);
        Ok(())
    }

    /// Queues a record without waiting; a full queue drops it (counted in `dropped`).
    pub fn try_append(&self, record: &RequestRecord<'_>) -> Result<(), QueueFull> {
        self.append(record, None)
    }

    /// Queues a record and calls `ack(true)` once it is committed (`false`: it could not be).
    /// The queue being full is reported at once, without waiting.
    pub fn append_then(&self, record: &RequestRecord<'_>, ack: Ack) -> Result<(), QueueFull> {
        self.append(record, Some(ack))?;
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
        shards: &[Mutex<Shard>],
        opts: &WriterOptions,
        written: &[AtomicU64; 2],
        closing: &AtomicBool,
    ) {
        let mut last_admin_poll = Instant::now() - Duration::from_secs(10);
        let mut last_retention = Instant::now() - Duration::from_secs(3600);
        // Buffers handed back to the shards, so that steady traffic allocates none.
        let mut spare: Vec<Vec<u8>> = Vec::new();
        loop {
            // Read before looking: once set, the shards are closed as they are emptied, so what
            // this look takes is the last.
            let closed = closing.load(Ordering::Acquire);
            let mut batch = Vec::new();
            let mut acks = Vec::new();
            for shard in shards {
                let mut s = lock(shard);
                s.closed = closed;
                if s.pending.count > 0 {
                    let fresh = Taken::new(spare.pop().unwrap_or_default());
                    batch.push(std::mem::replace(&mut s.pending, fresh));
                    acks.append(&mut s.acks);
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
            let n: u64 = batch.iter().map(|t| t.count).sum();
            let result = if self.pg.is_some() {
                self.commit_pg(&mut batch, poll_admin, due)
            } else {
                self.commit(&mut batch, poll_admin, due)
            };
            let ok = result.is_ok();
            if let Err(e) = result {
                tracing::error!(error = %e, "audit trail write failed; those records are lost");
                written[1].fetch_add(n, Ordering::Relaxed);
            } else {
                written[0].fetch_add(n, Ordering::Relaxed);
            }
            for ack in acks {
                ack(ok);
            }
            for mut t in batch {
                // A buffer grown by a burst is not kept.
                if spare.len() < SHARDS && t.frames.capacity() <= 4 << 20 {
                    t.frames.clear();
                    spare.push(t.frames);
                }
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

    /// Appends the batch (and new admin events) in one transaction, a block per shard taken,
    /// checkpointing when `due`.
    fn commit(
        &mut self,
        batch: &mut Vec<Taken>,
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
        let (mut seq, prev): (u64, Vec<u8>) = tx
            .prepare_cached(
                "SELECT last_seq, last_hash FROM audit_blocks ORDER BY first_seq DESC LIMIT 1",
            )
            .and_then(|mut st| st.query_row([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))))
            .optional()
            .map_err(err)?
            .map_or_else(|| anchor(&tx), Ok)
            .map_err(err)?;
        let mut prev: [u8; 32] = prev.try_into().unwrap_or([0; 32]);
        if poll_admin {
            let seen = admin_events_seen(&tx).map_err(err)?;
            let (last, admin) = admin_events_after(&tx, seen).map_err(err)?;
            batch.extend(admin);
            if last != seen {
                note_admin_events_seen(&tx, last).map_err(err)?;
            }
        }
        for t in batch.iter_mut() {
            let first = seq + 1;
            audit_block::seal(&mut t.frames, &mut seq, &mut prev);
            audit_block::insert(&tx, first, seq, &prev, t.ms, &t.frames).map_err(err)?;
        }
        let mut checkpoint = None;
        if due(seq, self.last_checkpoint) {
            let at = now_ms();
            let sig = self.key.sign(&checkpoint_message(seq, &prev, at));
            let public = self.key.public_key().as_ref().to_vec();
            tx.execute(
                "INSERT OR REPLACE INTO audit_checkpoints(seq, hash, at_ms, public_key, signature) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![seq as i64, &prev[..], at, &public, sig.as_ref()],
            )
            .map_err(err)?;
            checkpoint = Some(Checkpoint {
                seq,
                hash: prev.to_vec(),
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
        batch: &mut Vec<Taken>,
        poll_admin: bool,
        due: impl Fn(u64, (u64, Instant)) -> bool,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let mut seen_up_to = None;
        if poll_admin {
            let seen = admin_events_seen(&self.conn).map_err(err)?;
            let (last, admin) = admin_events_after(&self.conn, seen).map_err(err)?;
            if last != seen {
                seen_up_to = Some(last);
            }
            batch.extend(admin);
        }
        let bodies: Vec<&[u8]> = batch
            .iter()
            .flat_map(|t| audit_block::entries(&t.frames).flatten())
            .map(|(_, _, body)| body)
            .collect();
        let last = self.last_checkpoint;
        let pg = self
            .pg
            .as_mut()
            .expect("commit_pg only with a PostgreSQL sink");
        let cp = pg.commit(&bodies, &self.key, due, last)?;
        if let Some(s) = seen_up_to {
            note_admin_events_seen(&self.conn, s).map_err(err)?;
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
            // Checkpoints are made at the end of a commit, so no block straddles one.
            tx.execute("DELETE FROM audit_blocks WHERE last_seq <= ?1", [seq])
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

/// How far into the store's admin event log the trail has come.
fn admin_events_seen(conn: &Connection) -> rusqlite::Result<i64> {
    Ok(conn
        .query_row(
            "SELECT admin_events_seen FROM audit_state WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

fn note_admin_events_seen(conn: &Connection, seq: i64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO audit_state(id, admin_events_seen) VALUES (1, ?1)
         ON CONFLICT(id) DO UPDATE SET admin_events_seen = excluded.admin_events_seen",
        [seq],
    )
    .map(drop)
}

/// Admin events after `seen` (at most 1000), framed as trail entries, and the last one's
/// sequence number in the event log (`seen` if there are none).
fn admin_events_after(conn: &Connection, seen: i64) -> rusqlite::Result<(i64, Option<Taken>)> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, at_ms, actor, action, subject, detail FROM admin_events WHERE seq > ?1 ORDER BY seq LIMIT 1000",
    )?;
    let mut rows = stmt.query([seen])?;
    let mut last = seen;
    let mut out = Taken::new(Vec::new());
    while let Some(r) = rows.next()? {
        last = r.get(0)?;
        let rec = Record::Admin {
            at_ms: r.get(1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            subject: r.get(4)?,
            detail: serde_json::from_str(&r.get::<_, String>(5)?)
                .unwrap_or(serde_json::Value::Null),
        };
        out.push(rec.at_ms(), |buf| rec.encode(buf));
    }
    Ok((last, (out.count > 0).then_some(out)))
}

/// Trails written before entries were stored in blocks (one row each in `audit_entries`) move
/// into blocks, bytes and hashes unchanged, the first time the store is opened.
pub(crate) fn migrate_legacy(conn: &Connection) -> rusqlite::Result<()> {
    let legacy = |c: &Connection| {
        c.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'audit_entries'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    if !legacy(conn)? {
        return Ok(());
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    if !legacy(&tx)? {
        return Ok(()); // another process moved it meanwhile
    }
    {
        let mut stmt = tx.prepare("SELECT seq, hash, body FROM audit_entries ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        let mut raw = Vec::new();
        let mut block: Option<(u64, u64, Vec<u8>, i64, i64)> = None;
        let flush = |raw: &mut Vec<u8>, b: &mut Option<(u64, u64, Vec<u8>, i64, i64)>| {
            if let Some((first, last, hash, lo, hi)) = b.take() {
                audit_block::insert(&tx, first, last, &hash, (lo, hi), raw)?;
            }
            raw.clear();
            Ok::<_, rusqlite::Error>(())
        };
        while let Some(r) = rows.next()? {
            let seq = r.get::<_, i64>(0)? as u64;
            let hash: Vec<u8> = r.get(1)?;
            let body: String = r.get(2)?;
            let ms = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["at_ms"].as_i64())
                .unwrap_or(0);
            let mut h = [0u8; 32];
            h[..hash.len().min(32)].copy_from_slice(&hash[..hash.len().min(32)]);
            audit_block::frame(&mut raw, seq, &h, body.as_bytes());
            let b = block.get_or_insert((seq, seq, Vec::new(), ms, ms));
            (b.1, b.2, b.3, b.4) = (seq, hash, b.3.min(ms), b.4.max(ms));
            if raw.len() >= audit_block::BLOCK_BYTES {
                flush(&mut raw, &mut block)?;
            }
        }
        flush(&mut raw, &mut block)?;
    }
    tx.execute_batch("DROP TABLE audit_entries")?;
    tx.commit()
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
    /// The stored block holding the entries from `seq` on is damaged: it cannot be unpacked.
    Unreadable { seq: u64 },
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
            Problem::Unreadable { seq } => write!(
                f,
                "the stored block holding entries from {seq} on is damaged and cannot be read"
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
    each_block(
        conn,
        None,
        |first, raw| {
            let Some(raw) = raw else {
                v.unreadable(first);
                return Ok(true);
            };
            for e in audit_block::entries(raw) {
                match e {
                    Some((seq, hash, body)) => v.row(seq, hash, body),
                    None => v.unreadable(first),
                }
            }
            Ok(true)
        },
        err,
    )?;
    Ok(v.finish())
}

/// Hands each stored block, unpacked (`None`: damaged), to `visit` in chain order, skipping
/// blocks wholly outside `ms` (a time range, end exclusive), until `visit` says `false`.
fn each_block(
    conn: &Connection,
    ms: Option<(i64, i64)>,
    mut visit: impl FnMut(u64, Option<&[u8]>) -> Result<bool, StoreError>,
    sql_err: impl Fn(rusqlite::Error) -> StoreError,
) -> Result<(), StoreError> {
    let (since, until) = ms.unwrap_or((i64::MIN, i64::MAX));
    let mut stmt = conn
        .prepare(
            "SELECT first_seq, raw_len, data FROM audit_blocks
             WHERE last_ms >= ?1 AND first_ms < ?2 ORDER BY first_seq",
        )
        .map_err(&sql_err)?;
    let mut rows = stmt.query([since, until]).map_err(&sql_err)?;
    while let Some(row) = rows.next().map_err(&sql_err)? {
        let first = row.get::<_, i64>(0).map_err(&sql_err)? as u64;
        let data = row.get_ref(2).map_err(&sql_err)?;
        let raw = data
            .as_blob()
            .ok()
            .and_then(|d| audit_block::unpack(d, row.get(1).unwrap_or(-1)));
        if !visit(first, raw.as_deref())? {
            break;
        }
    }
    Ok(())
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

    /// A stored block that cannot be read, the first entry it should hold being `seq`.
    pub(crate) fn unreadable(&mut self, seq: u64) {
        self.problem.get_or_insert(Problem::Unreadable { seq });
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

impl Filter {
    fn matches(&self, body: &serde_json::Value) -> bool {
        let ms = body["at_ms"].as_i64();
        let text = |field: &str, want: &Option<String>| {
            want.as_deref()
                .is_none_or(|w| body[field].as_str() == Some(w))
        };
        self.since_ms.is_none_or(|t| ms.is_some_and(|m| m >= t))
            && self.until_ms.is_none_or(|t| ms.is_some_and(|m| m < t))
            && text("consumer", &self.consumer)
            && text("route", &self.route)
            && text("decision", &self.decision)
            && text("reason", &self.reason)
            && text("kind", &self.kind)
            && self
                .status
                .is_none_or(|s| body["status"].as_u64() == Some(u64::from(s)))
    }
}

/// Hands each entry matching `f` to `visit`, oldest first, without holding them all (an export of
/// a long trail); the first error `visit` returns stops the walk. A damaged block is an error:
/// `warden audit verify` says more.
pub fn for_each(
    dir: &Path,
    f: &Filter,
    mut visit: impl FnMut(Entry) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let store = crate::Store::open(dir)?;
    let range = (f.since_ms.is_some() || f.until_ms.is_some()).then(|| {
        (
            f.since_ms.unwrap_or(i64::MIN),
            f.until_ms.unwrap_or(i64::MAX),
        )
    });
    let mut left = f.limit.unwrap_or(u64::MAX);
    let damaged = |seq| {
        StoreError::Invalid(format!(
            "the audit block holding entries from {seq} on is damaged; `warden audit verify` tells more"
        ))
    };
    each_block(
        &store.conn,
        range,
        |first, raw| {
            let raw = raw.ok_or_else(|| damaged(first))?;
            for e in audit_block::entries(raw) {
                if left == 0 {
                    return Ok(false);
                }
                let (seq, hash, body) = e.ok_or_else(|| damaged(first))?;
                let body: serde_json::Value =
                    serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
                if f.matches(&body) {
                    left -= 1;
                    visit(Entry {
                        seq,
                        hash: hex(hash),
                        body,
                    })?;
                }
            }
            Ok(left > 0)
        },
        |e| store.err(e),
    )
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

    fn append(w: &AuditWriter, i: u64) -> Result<(), QueueFull> {
        let (id, path) = (format!("req-{i}"), format!("/orders/{i}"));
        w.try_append(&RequestRecord {
            at_ms: 1_700_000_000_000 + i as i64,
            request_id: &id,
            consumer: Some(if i.is_multiple_of(2) { "alice" } else { "bob" }),
            client_ip: [192, 0, 2, 1].into(),
            method: "GET",
            route: "api",
            path: &path,
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
            while append(&w, i).is_err() {
                std::thread::sleep(Duration::from_millis(1));
            }
            if i.is_multiple_of(7) {
                std::thread::sleep(GROUP_WINDOW + Duration::from_millis(2));
            }
        }
        w.shutdown();
        dir
    }

    /// Rewrites the stored entries through `f`, as someone with write access to the file could.
    fn tamper(dir: &Path, f: impl FnOnce(&mut Vec<RawEntry>)) {
        let mut entries = read_raw(dir).unwrap();
        f(&mut entries);
        write_raw(dir, &entries, 16).unwrap();
    }

    fn at(entries: &mut [RawEntry], seq: u64) -> &mut RawEntry {
        entries.iter_mut().find(|e| e.seq == seq).unwrap()
    }

    fn replace(body: &[u8], from: &str, to: &str) -> Vec<u8> {
        String::from_utf8_lossy(body).replace(from, to).into_bytes()
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
        tamper(&d, |e| {
            let x = at(e, 22);
            x.body = replace(&x.body, "\"status\":200", "\"status\":201");
        });
        assert_eq!(problem(&d), Some(Problem::Broken { seq: 22 }));
        // Edited, with its own hash fixed up: the next entry no longer follows.
        let d = copy("edit-rehash");
        tamper(&d, |e| {
            let prev = at(e, 21).hash.clone();
            let x = at(e, 22);
            x.body = replace(&x.body, "\"status\":200", "\"status\":201");
            x.hash = chain(&prev, &x.body).to_vec();
        });
        assert_eq!(problem(&d), Some(Problem::Broken { seq: 23 }));
        // Deleted.
        let d = copy("delete");
        tamper(&d, |e| e.retain(|x| x.seq != 33));
        assert_eq!(problem(&d), Some(Problem::Missing { seq: 33 }));
        // Inserted (later entries renumbered to make room).
        let d = copy("insert");
        tamper(&d, |e| {
            let mut copy = at(e, 40).clone();
            copy.seq = 41;
            for x in e.iter_mut().filter(|x| x.seq >= 41) {
                x.seq += 1;
            }
            e.insert(40, copy);
        });
        assert_eq!(problem(&d), Some(Problem::Broken { seq: 41 }));
        // Reordered.
        let d = copy("reorder");
        tamper(&d, |e| {
            let i = e.iter().position(|x| x.seq == 12).unwrap();
            e.swap(i, i + 1);
            (e[i].seq, e[i + 1].seq) = (12, 13);
        });
        assert_eq!(problem(&d), Some(Problem::Broken { seq: 12 }));
        // Truncated, checkpoints in the database included: the checkpoint file remembers.
        let d = copy("truncate");
        tamper(&d, |e| e.retain(|x| x.seq <= 45));
        Connection::open(d.join(FILE_NAME))
            .unwrap()
            .execute("DELETE FROM audit_checkpoints WHERE seq > 45", [])
            .unwrap();
        assert_eq!(
            problem(&d),
            Some(Problem::Truncated {
                last: 45,
                checkpoint: 60
            })
        );
        // A block that is not one (a byte flipped on disk).
        let d = copy("damaged");
        let conn = Connection::open(d.join(FILE_NAME)).unwrap();
        let first: i64 = conn
            .query_row(
                "SELECT first_seq FROM audit_blocks WHERE first_seq > 1 ORDER BY first_seq LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        conn.execute(
            "UPDATE audit_blocks SET data = zeroblob(length(data)) WHERE first_seq = ?1",
            [first],
        )
        .unwrap();
        assert_eq!(problem(&d), Some(Problem::Unreadable { seq: first as u64 }));
        assert!(query(&d, &Filter::default()).is_err());
        // Rewritten wholesale from entry 25 on, every hash recomputed: the first signed checkpoint
        // after it no longer matches.
        let d = copy("rewrite");
        tamper(&d, |e| {
            let mut prev = at(e, 24).hash.clone();
            for x in e.iter_mut().filter(|x| x.seq >= 25) {
                x.body = replace(&x.body, "alice", "mallory");
                x.hash = chain(&prev, &x.body).to_vec();
                prev = x.hash.clone();
            }
        });
        let conn = Connection::open(d.join(FILE_NAME)).unwrap();
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
    fn a_trail_of_one_row_per_entry_moves_into_blocks_unchanged() {
        let dir = trail("legacy", 30);
        let before = read_raw(&dir).unwrap();
        let conn = Connection::open(dir.join(FILE_NAME)).unwrap();
        conn.execute_batch(
            "DELETE FROM audit_blocks;
             CREATE TABLE audit_entries(seq INTEGER PRIMARY KEY, hash BLOB NOT NULL, body TEXT NOT NULL);",
        )
        .unwrap();
        for e in &before {
            conn.execute(
                "INSERT INTO audit_entries(seq, hash, body) VALUES (?1, ?2, ?3)",
                params![
                    e.seq as i64,
                    &e.hash,
                    String::from_utf8(e.body.clone()).unwrap()
                ],
            )
            .unwrap();
        }
        drop(conn);
        let r = verify(&dir, None).unwrap();
        assert_eq!((r.entries, r.problem), (30, None));
        assert_eq!(read_raw(&dir).unwrap(), before);
        // New entries chain on.
        let w = AuditWriter::start(&dir, WriterOptions::default()).unwrap();
        append(&w, 31).unwrap();
        w.shutdown();
        let r = verify(&dir, None).unwrap();
        assert_eq!((r.last, r.problem), (31, None));
        let since = query(
            &dir,
            &Filter {
                since_ms: Some(1_700_000_000_029),
                ..Filter::default()
            },
        )
        .unwrap();
        assert_eq!(
            since.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [29, 30, 31]
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
        append(&w, 41).unwrap();
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
        append(&w, 1).unwrap();
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
