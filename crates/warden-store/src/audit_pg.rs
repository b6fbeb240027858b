//! The audit trail in PostgreSQL, for several gateway replicas writing one chain. The same entries,
//! hashes and signed checkpoints as in SQLite (`audit`); each batch locks the chain's head row
//! (`SELECT … FOR UPDATE`), so replicas take turns and the chain stays one line. Each replica signs
//! its checkpoints with its own key, which is stored with the checkpoint.
//!
//! Admin events come from each replica's local store and are appended after they are read, so a
//! crash between the append and noting it can repeat one (at least once, never lost).

use std::path::Path;
use std::time::Instant;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};

use crate::audit::{
    chain, checkpoint_message, hex, Checkpoint, Checkpoints, Filter, Report, Verifier,
};
use crate::StoreError;

/// Where the trail lives: a connection URL and the schema holding its tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTarget {
    pub url: String,
    pub schema: String,
}

impl PgTarget {
    /// Checks the schema name: it is written into SQL, so only a plain identifier will do.
    pub fn new(url: &str, schema: &str) -> Result<PgTarget, String> {
        let ok = !schema.is_empty()
            && schema.len() <= 63
            && schema
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
            && schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(format!(
                "schema `{schema}` must be a lower-case identifier (letters, digits, _)"
            ));
        }
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(format!("`{url}` must be a postgres:// URL"));
        }
        Ok(PgTarget {
            url: url.to_string(),
            schema: schema.to_string(),
        })
    }

    fn err(&self, e: postgres::Error) -> StoreError {
        StoreError::Invalid(format!("PostgreSQL audit trail ({}): {e}", self.schema))
    }

    /// Connects to the trail as it is (reading it, or writing after a reconnect: a table that
    /// went missing is an error to report, never something to make again empty).
    pub fn connect(&self) -> Result<Client, StoreError> {
        Client::connect(&self.url, NoTls).map_err(|e| self.err(e))
    }

    /// Connects and makes the tables if needed (serialised across replicas by an advisory lock):
    /// what a writer does once, at start.
    pub fn connect_and_prepare(&self) -> Result<Client, StoreError> {
        let mut client = self.connect()?;
        let s = &self.schema;
        let mut tx = client.transaction().map_err(|e| self.err(e))?;
        tx.execute("SELECT pg_advisory_xact_lock(7365702)", &[])
            .map_err(|e| self.err(e))?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE IF NOT EXISTS {s}.audit_entries(
                 seq BIGINT PRIMARY KEY, hash BYTEA NOT NULL, body TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS {s}.audit_checkpoints(
                 seq BIGINT PRIMARY KEY, hash BYTEA NOT NULL, at_ms BIGINT NOT NULL,
                 public_key BYTEA NOT NULL, signature BYTEA NOT NULL);
             CREATE TABLE IF NOT EXISTS {s}.audit_head(
                 id INT PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL, hash BYTEA NOT NULL);
             INSERT INTO {s}.audit_head VALUES (1, 0, '\\x{zeros}') ON CONFLICT DO NOTHING;",
            zeros = "00".repeat(32)
        ))
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(client)
    }
}

/// The writer's connection; made again after a failure.
pub(crate) struct PgSink {
    pub target: PgTarget,
    client: Option<Client>,
}

impl PgSink {
    pub(crate) fn new(target: PgTarget) -> PgSink {
        PgSink {
            target,
            client: None,
        }
    }

    /// Appends `records` (canonical JSON) in one transaction; signs a checkpoint when `due` says so. Returns the
    /// checkpoint made, if any.
    pub(crate) fn commit(
        &mut self,
        records: &[&[u8]],
        key: &aws_lc_rs::signature::Ed25519KeyPair,
        due: impl Fn(u64, (u64, Instant)) -> bool,
        last_checkpoint: (u64, Instant),
    ) -> Result<Option<Checkpoint>, StoreError> {
        use aws_lc_rs::signature::KeyPair;
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            self.client = Some(self.target.connect()?);
        }
        let target = self.target.clone();
        let client = self.client.as_mut().expect("connected above");
        let result = (|| {
            let s = &target.schema;
            let mut tx = client.transaction()?;
            let head = tx.query_one(
                &format!("SELECT seq, hash FROM {s}.audit_head WHERE id = 1 FOR UPDATE"),
                &[],
            )?;
            let (mut seq, mut prev): (i64, Vec<u8>) = (head.get(0), head.get(1));
            let (mut seqs, mut hashes, mut bodies) = (Vec::new(), Vec::new(), Vec::new());
            for body in records {
                let hash = chain(&prev, body);
                let body = String::from_utf8_lossy(body).into_owned();
                seq += 1;
                seqs.push(seq);
                hashes.push(hash.to_vec());
                bodies.push(body);
                prev = hash.to_vec();
            }
            if !records.is_empty() {
                tx.execute(
                    &format!(
                        "INSERT INTO {s}.audit_entries(seq, hash, body)
                         SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::text[])"
                    ),
                    &[&seqs, &hashes, &bodies],
                )?;
                tx.execute(
                    &format!("UPDATE {s}.audit_head SET seq = $1, hash = $2 WHERE id = 1"),
                    &[&seq, &prev],
                )?;
            }
            let mut made = None;
            if due(seq as u64, last_checkpoint) {
                let at = crate::now_ms();
                let sig = key.sign(&checkpoint_message(seq as u64, &prev, at));
                let public = key.public_key().as_ref().to_vec();
                tx.execute(
                    &format!(
                        "INSERT INTO {s}.audit_checkpoints(seq, hash, at_ms, public_key, signature)
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING"
                    ),
                    &[&seq, &prev, &at, &public, &sig.as_ref().to_vec()],
                )?;
                made = Some(Checkpoint {
                    seq: seq as u64,
                    hash: prev.clone(),
                    at_ms: at,
                    public_key: public,
                    signature: sig.as_ref().to_vec(),
                });
            }
            tx.commit()?;
            Ok::<_, postgres::Error>(made)
        })();
        result.map_err(|e| {
            self.client = None;
            target.err(e)
        })
    }
}

/// [`crate::audit::verify`] for a trail in PostgreSQL. `file`: a replica's checkpoint file, which
/// then counts too. `pinned`: the replicas' public keys, if pinned.
pub fn verify(
    target: &PgTarget,
    file: Option<&Path>,
    pinned: &[Option<&[u8]>],
) -> Result<Report, StoreError> {
    let mut client = target.connect()?;
    let s = &target.schema;
    let mut checkpoints = Checkpoints::new();
    for r in client
        .query(
            &format!("SELECT seq, hash, at_ms, public_key, signature FROM {s}.audit_checkpoints"),
            &[],
        )
        .map_err(|e| target.err(e))?
    {
        let seq: i64 = r.get(0);
        checkpoints.insert(
            seq as u64,
            Checkpoint {
                seq: seq as u64,
                hash: r.get(1),
                at_ms: r.get(2),
                public_key: r.get(3),
                signature: r.get(4),
            },
        );
    }
    let mut v = Verifier::new(checkpoints, file, (0, vec![0; 32]), pinned);
    let mut rows = client
        .query_raw(
            &format!("SELECT seq, hash, body FROM {s}.audit_entries ORDER BY seq"),
            std::iter::empty::<i64>(),
        )
        .map_err(|e| target.err(e))?;
    while let Some(r) = rows.next().map_err(|e| target.err(e))? {
        let seq: i64 = r.get(0);
        let hash: &[u8] = r.get(1);
        let body: &str = r.get(2);
        v.row(seq as u64, hash, body.as_bytes());
    }
    Ok(v.finish())
}

/// [`crate::audit::for_each`] for a trail in PostgreSQL.
pub fn for_each(
    target: &PgTarget,
    f: &Filter,
    mut visit: impl FnMut(crate::audit::Entry) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut client = target.connect()?;
    let s = &target.schema;
    let mut sql = format!("SELECT seq, hash, body FROM {s}.audit_entries WHERE true");
    let mut args: Vec<Box<dyn postgres::types::ToSql + Sync>> = Vec::new();
    let mut cond = |sql_part: String, v: Box<dyn postgres::types::ToSql + Sync>| {
        args.push(v);
        sql.push_str(&format!(" AND {sql_part}${}", args.len()));
    };
    if let Some(t) = f.since_ms {
        cond("(body::jsonb->>'at_ms')::bigint >= ".into(), Box::new(t));
    }
    if let Some(t) = f.until_ms {
        cond("(body::jsonb->>'at_ms')::bigint < ".into(), Box::new(t));
    }
    for (field, v) in [
        ("consumer", &f.consumer),
        ("route", &f.route),
        ("decision", &f.decision),
        ("reason", &f.reason),
        ("kind", &f.kind),
    ] {
        if let Some(v) = v {
            cond(format!("body::jsonb->>'{field}' = "), Box::new(v.clone()));
        }
    }
    if let Some(st) = f.status {
        cond(
            "(body::jsonb->>'status')::int = ".into(),
            Box::new(i32::from(st)),
        );
    }
    sql.push_str(" ORDER BY seq");
    if let Some(n) = f.limit {
        sql.push_str(&format!(" LIMIT {n}"));
    }
    let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
        args.iter().map(|b| b.as_ref()).collect();
    let mut rows = client.query_raw(&sql, params).map_err(|e| target.err(e))?;
    while let Some(r) = rows.next().map_err(|e| target.err(e))? {
        let seq: i64 = r.get(0);
        let hash: &[u8] = r.get(1);
        let body: &str = r.get(2);
        visit(crate::audit::Entry {
            seq: seq as u64,
            hash: hex(hash),
            body: serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
        })?;
    }
    Ok(())
}
