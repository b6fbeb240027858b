//! The embedded store: one SQLite file (`warden.db`, WAL) in the data folder. It holds API keys
//! (hashes only, never secrets), the admin event log of every change to them, and the audit trail
//! (`audit`), which chains both calls and admin events. Several processes may use it at once (the
//! gateway reads keys and writes the trail, `warden keys` writes keys); the gateway notices key
//! changes through SQLite's `data_version` without reading the tables.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

pub mod audit;
mod audit_block;
pub mod audit_pg;
mod audit_record;

use rusqlite::{params, Connection, OptionalExtension};
use warden_policy::auth::api_key::{self, KeyEntry};

pub const FILE_NAME: &str = "warden.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("no key with id `{0}`")]
    NoSuchKey(String),
    #[error("key `{0}` is revoked")]
    Revoked(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the system random source failed")]
    Random,
}

/// A key as listed: everything but the secret, which is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: String,
    pub consumer: String,
    /// The recognisable start of the key (`wdn_<id>`), safe to show.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub roles: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The key this one was rotated to, if any.
    pub rotated_to: Option<String>,
}

/// One change to keys or permissions, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminEvent {
    pub seq: i64,
    /// Unix milliseconds.
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    /// JSON with the details; never a secret.
    pub detail: String,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS api_keys(
    id TEXT PRIMARY KEY,
    consumer TEXT NOT NULL,
    hash BLOB NOT NULL,
    scopes TEXT NOT NULL DEFAULT '[]',
    roles TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    rotated_to TEXT
);
CREATE TABLE IF NOT EXISTS admin_events(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL
);
";

fn list(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join(FILE_NAME);
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        conn.execute_batch(audit::SCHEMA).map_err(err)?;
        audit::migrate_legacy(&conn).map_err(err)?;
        Ok(Store { conn, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Runs `f` in one transaction: the change and its admin event land together or not at all.
    fn write<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let out = f(&tx).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(out)
    }

    /// Changes whenever another connection commits: cheap to poll.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    fn event(
        tx: &rusqlite::Transaction<'_>,
        actor: &str,
        action: &str,
        subject: &str,
        detail: serde_json::Value,
    ) -> rusqlite::Result<()> {
        tx.execute(
            "INSERT INTO admin_events(at_ms, actor, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![now_ms(), actor, action, subject, detail.to_string()],
        )?;
        Ok(())
    }

    /// Records something the gateway itself did or saw (an alert raised or resolved) in the admin
    /// event log, beside key changes.
    pub fn record_event(
        &mut self,
        actor: &str,
        action: &str,
        subject: &str,
        detail: serde_json::Value,
    ) -> Result<(), StoreError> {
        self.write(|tx| Self::event(tx, actor, action, subject, detail))
    }

    /// Makes a key for `consumer`; returns its record and its full text, which is never stored.
    pub fn create_key(
        &mut self,
        consumer: &str,
        scopes: &[String],
        roles: &[String],
        expires_at: Option<i64>,
        actor: &str,
    ) -> Result<(KeyRecord, String), StoreError> {
        validate_name("consumer", consumer)?;
        for s in scopes.iter().chain(roles) {
            validate_name("scope or role", s)?;
        }
        let key = api_key::generate().map_err(|_| StoreError::Random)?;
        let created = now_secs();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO api_keys(id, consumer, hash, scopes, roles, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    key.id,
                    consumer,
                    key.hash.to_vec(),
                    serde_json::to_string(scopes).unwrap_or_default(),
                    serde_json::to_string(roles).unwrap_or_default(),
                    created,
                    expires_at
                ],
            )?;
            Self::event(
                tx,
                actor,
                "key.created",
                &key.id,
                serde_json::json!({"consumer": consumer, "scopes": scopes, "roles": roles, "expires_at": expires_at}),
            )
        })?;
        let record = self.key(&key.id)?.expect("just inserted");
        Ok((record, key.text))
    }

    pub fn key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.conn
            .query_row(
                "SELECT id, consumer, scopes, roles, created_at, expires_at, revoked_at, rotated_to FROM api_keys WHERE id = ?1",
                [id],
                row_to_record,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, consumer, scopes, roles, created_at, expires_at, revoked_at, rotated_to FROM api_keys ORDER BY consumer, created_at, id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], row_to_record)
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// A new key for the same consumer and scopes; the old one stays valid for `overlap_secs` (or
    /// until its own expiry, if sooner), so clients can switch without an outage.
    pub fn rotate_key(
        &mut self,
        id: &str,
        overlap_secs: i64,
        actor: &str,
    ) -> Result<(KeyRecord, String), StoreError> {
        let old = self
            .key(id)?
            .ok_or_else(|| StoreError::NoSuchKey(id.to_string()))?;
        if old.revoked_at.is_some() {
            return Err(StoreError::Revoked(id.to_string()));
        }
        if overlap_secs < 0 {
            return Err(StoreError::Invalid("the overlap cannot be negative".into()));
        }
        let (new, text) = self.create_key(
            &old.consumer,
            &old.scopes,
            &old.roles,
            old.expires_at,
            actor,
        )?;
        // Rounded up, so the old key lives at least the overlap asked for.
        let end = (now_ms() + 999) / 1000 + overlap_secs;
        let end = old.expires_at.map_or(end, |e| e.min(end));
        self.write(|tx| {
            tx.execute(
                "UPDATE api_keys SET expires_at = ?1, rotated_to = ?2 WHERE id = ?3",
                params![end, new.id, id],
            )?;
            Self::event(
                tx,
                actor,
                "key.rotated",
                id,
                serde_json::json!({"new_key": new.id, "old_valid_until": end}),
            )
        })?;
        Ok((new, text))
    }

    pub fn revoke_key(&mut self, id: &str, actor: &str) -> Result<KeyRecord, StoreError> {
        let old = self
            .key(id)?
            .ok_or_else(|| StoreError::NoSuchKey(id.to_string()))?;
        if old.revoked_at.is_some() {
            return Ok(old);
        }
        self.write(|tx| {
            tx.execute(
                "UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2",
                params![now_secs(), id],
            )?;
            Self::event(
                tx,
                actor,
                "key.revoked",
                id,
                serde_json::json!({"consumer": old.consumer}),
            )
        })?;
        Ok(self.key(id)?.expect("exists"))
    }

    /// Every key as the gateway verifies against it.
    pub fn key_entries(&self) -> Result<Vec<KeyEntry>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, consumer, hash, scopes, roles, expires_at, revoked_at FROM api_keys",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let hash: Vec<u8> = r.get(2)?;
                Ok(KeyEntry {
                    id: r.get(0)?,
                    consumer: r.get(1)?,
                    hash: hash.try_into().unwrap_or([0; 32]),
                    scopes: list(&r.get::<_, String>(3)?),
                    roles: list(&r.get::<_, String>(4)?),
                    not_after: r.get(5)?,
                    revoked: r.get::<_, Option<i64>>(6)?.is_some(),
                })
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    pub fn admin_events(&self, after_seq: i64) -> Result<Vec<AdminEvent>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, at_ms, actor, action, subject, detail FROM admin_events WHERE seq > ?1 ORDER BY seq")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([after_seq], |r| {
                Ok(AdminEvent {
                    seq: r.get(0)?,
                    at_ms: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    subject: r.get(4)?,
                    detail: r.get(5)?,
                })
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }
}

fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRecord> {
    let id: String = r.get(0)?;
    Ok(KeyRecord {
        prefix: format!("{}{id}", api_key::PREFIX),
        id,
        consumer: r.get(1)?,
        scopes: list(&r.get::<_, String>(2)?),
        roles: list(&r.get::<_, String>(3)?),
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        revoked_at: r.get(6)?,
        rotated_to: r.get(7)?,
    })
}

/// Names end up in headers, logs and claims: keep them printable and short.
fn validate_name(what: &str, s: &str) -> Result<(), StoreError> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@/".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{what} `{s}` must be 1-128 letters, digits or - _ . : @ /"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_policy::auth::api_key::KeySet;

    fn temp() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "warden-store-{}-{}",
            std::process::id(),
            std::thread::current()
                .name()
                .unwrap_or("t")
                .replace("::", "-")
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn keys_are_created_verified_rotated_and_revoked() {
        let dir = temp();
        let mut s = Store::open(&dir).unwrap();
        let (rec, text) = s
            .create_key("alice", &["orders:read".into()], &[], None, "test")
            .unwrap();
        assert!(text.starts_with(&rec.prefix));
        let set = KeySet::new(s.key_entries().unwrap());
        assert_eq!(set.verify(&text, now_secs()).unwrap().consumer, "alice");
        // The secret is nowhere in the file.
        let secret = &text[17..];
        let raw = std::fs::read(dir.join(FILE_NAME)).unwrap();
        assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()));

        let (new, new_text) = s.rotate_key(&rec.id, 3600, "test").unwrap();
        let set = KeySet::new(s.key_entries().unwrap());
        let now = now_secs();
        assert!(
            set.verify(&text, now).is_ok(),
            "old key valid in the overlap"
        );
        assert!(set.verify(&new_text, now).is_ok());
        assert!(
            set.verify(&text, now + 3601).is_err(),
            "old key over after it"
        );
        assert_eq!(
            s.key(&rec.id).unwrap().unwrap().rotated_to.as_deref(),
            Some(new.id.as_str())
        );

        let other = Store::open(&dir).unwrap();
        let v0 = other.data_version().unwrap();
        s.revoke_key(&new.id, "test").unwrap();
        assert_ne!(
            other.data_version().unwrap(),
            v0,
            "another connection sees the change"
        );
        let set = KeySet::new(other.key_entries().unwrap());
        assert!(set.verify(&new_text, now).is_err());
        let actions: Vec<_> = s
            .admin_events(0)
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(
            actions,
            ["key.created", "key.created", "key.rotated", "key.revoked"]
        );
        assert!(matches!(
            s.rotate_key(&new.id, 1, "t"),
            Err(StoreError::Revoked(_))
        ));
        assert!(matches!(
            s.revoke_key("nope", "t"),
            Err(StoreError::NoSuchKey(_))
        ));
        assert!(s.create_key("bad name", &[], &[], None, "t").is_err());
    }
}
