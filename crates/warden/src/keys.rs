//! `warden keys`: API keys in the embedded store of the data folder. Each change is written with
//! an admin event (who, what, when) that the audit trail chains; secrets are printed once and
//! never stored or logged.

use std::path::PathBuf;

use warden_store::{KeyRecord, Store};

use crate::cli::{Failure, KeysCommand};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Who made a change, for the admin event log.
fn actor() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

fn open(data_dir: Option<PathBuf>) -> Result<Store, Failure> {
    let dir = crate::data_dir::resolve(data_dir, None, None);
    crate::data_dir::prepare(&dir)?;
    Store::open(&dir).map_err(|e| Failure::Runtime(anyhow::anyhow!("{e}")))
}

fn store_err(e: warden_store::StoreError) -> Failure {
    match e {
        warden_store::StoreError::NoSuchKey(_)
        | warden_store::StoreError::Revoked(_)
        | warden_store::StoreError::Invalid(_) => Failure::BadInput(e.to_string()),
        other => Failure::Runtime(anyhow::anyhow!("{other}")),
    }
}

fn time(t: Option<i64>) -> String {
    t.map_or_else(
        || "-".into(),
        |t| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64),
            )
            .to_string()
        },
    )
}

fn status(k: &KeyRecord, now: i64) -> &'static str {
    match (k.revoked_at, k.expires_at) {
        (Some(_), _) => "revoked",
        (None, Some(e)) if e <= now => "expired",
        (None, Some(_)) if k.rotated_to.is_some() => "rotating-out",
        _ => "active",
    }
}

pub fn run(cmd: KeysCommand, data_dir: Option<PathBuf>) -> Result<(), Failure> {
    let mut store = open(data_dir)?;
    match cmd {
        KeysCommand::Create(a) => {
            let expires = a.expires.map(|d| now() + d.as_secs() as i64);
            let (rec, text) = store
                .create_key(&a.consumer, &a.scopes, &a.roles, expires, &actor())
                .map_err(store_err)?;
            eprintln!(
                "created key {} for {} (expires {}); it is shown once, below: store it now",
                rec.id,
                rec.consumer,
                time(rec.expires_at)
            );
            crate::out(&text);
        }
        KeysCommand::List(a) => {
            let keys = store.list_keys().map_err(store_err)?;
            let now = now();
            if a.json {
                for k in &keys {
                    crate::out(format!(
                        "{}",
                        serde_json::json!({
                            "consumer": k.consumer, "key_id": k.id, "prefix": k.prefix,
                            "scopes": k.scopes, "roles": k.roles, "created_at": time(Some(k.created_at)),
                            "expires_at": k.expires_at.map(|e| time(Some(e))), "status": status(k, now),
                            "rotated_to": k.rotated_to,
                        })
                    ));
                }
            } else {
                let rows: Vec<[String; 7]> = keys
                    .iter()
                    .map(|k| {
                        [
                            k.consumer.clone(),
                            k.id.clone(),
                            format!("{}_…", k.prefix),
                            if k.scopes.is_empty() {
                                "-".into()
                            } else {
                                k.scopes.join(",")
                            },
                            time(Some(k.created_at)),
                            time(k.expires_at),
                            status(k, now).into(),
                        ]
                    })
                    .collect();
                let header = [
                    "CONSUMER", "KEY ID", "PREFIX", "SCOPES", "CREATED", "EXPIRES", "STATUS",
                ];
                let widths: Vec<usize> = (0..7)
                    .map(|i| {
                        rows.iter()
                            .map(|r| r[i].chars().count())
                            .chain([header[i].len()])
                            .max()
                            .unwrap_or(0)
                    })
                    .collect();
                let line = |cells: Vec<&str>| {
                    cells
                        .iter()
                        .zip(&widths)
                        .map(|(c, w)| format!("{c:<w$}"))
                        .collect::<Vec<_>>()
                        .join("  ")
                        .trim_end()
                        .to_string()
                };
                crate::out(line(header.to_vec()));
                for r in &rows {
                    crate::out(line(r.iter().map(String::as_str).collect()));
                }
            }
        }
        KeysCommand::Rotate(a) => {
            let (rec, text) = store
                .rotate_key(&a.key_id, a.overlap.as_secs() as i64, &actor())
                .map_err(store_err)?;
            let old = store.key(&a.key_id).map_err(store_err)?;
            eprintln!(
                "rotated {} to {}; the old key stays valid until {}. The new key is shown once, below",
                a.key_id,
                rec.id,
                time(old.and_then(|o| o.expires_at))
            );
            crate::out(&text);
        }
        KeysCommand::Revoke(a) => {
            // Read the config first: a bad path should not leave a half-done revocation.
            let redis = match &a.config {
                None => None,
                Some(file) => {
                    let cfg = warden_gateway::Config::load(file)
                        .map_err(|e| Failure::BadInput(e.to_string()))?;
                    Some(cfg.traffic.redis.ok_or_else(|| {
                        Failure::BadInput(format!(
                            "{}: has no `traffic.redis` to share the revocation through; \
                             leave out --config to revoke in this store only",
                            file.display()
                        ))
                    })?)
                }
            };
            let id = match store.revoke_key(&a.key_id, &actor()) {
                Ok(rec) => {
                    eprintln!(
                        "revoked {} ({}); running gateways on this store refuse it within a second",
                        rec.id, rec.consumer
                    );
                    rec.id
                }
                // Sharing failed last time: share now.
                Err(warden_store::StoreError::Revoked(_)) if redis.is_some() => {
                    eprintln!("{} was already revoked in this store", a.key_id);
                    a.key_id.clone()
                }
                Err(e) => return Err(store_err(e)),
            };
            if let Some(r) = redis {
                warden_gateway::traffic::share_revocation(&r, &id).map_err(|e| {
                    Failure::Runtime(anyhow::anyhow!(
                        "revoked in this store, but not shared through {}: {e}; run the \
                         command again once Redis answers",
                        r.url.0
                    ))
                })?;
                eprintln!(
                    "shared through {}: every gateway using it refuses the key within a second",
                    r.url.0
                );
            }
        }
    }
    Ok(())
}
