//! `warden audit`: verify, query and export the tamper-evident trail in the data folder
//! (`warden_store::audit`). Verify's exit code is the contract outside checks rely on: 0 only for
//! an intact trail.

use std::path::{Path, PathBuf};

use warden_store::audit::{self, Filter};

use crate::cli::{AuditCommand, AuditSource, Failure, SyslogFormat};

fn dir(data_dir: Option<PathBuf>) -> Result<PathBuf, Failure> {
    let dir = crate::data_dir::resolve(data_dir, None, None);
    if !dir.join(warden_store::FILE_NAME).exists() {
        return Err(Failure::BadInput(format!(
            "{}: no store here; pass the gateway's --data-dir",
            dir.display()
        )));
    }
    Ok(dir)
}

fn store_err(e: warden_store::StoreError) -> Failure {
    Failure::Runtime(anyhow::anyhow!("{e}"))
}

/// RFC 3339, or a duration meaning that long ago; in Unix milliseconds.
fn when(flag: &str, s: &str) -> Result<i64, Failure> {
    let now = std::time::SystemTime::now();
    let t = humantime::parse_rfc3339_weak(s)
        .or_else(|_| humantime::parse_duration(s).map(|d| now - d))
        .map_err(|_| {
            Failure::BadInput(format!(
                "--{flag} {s:?}: give a time (2026-11-24T10:00:00Z) or a duration ago (1h, 7d)"
            ))
        })?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64))
}

fn range(
    since: &Option<String>,
    until: &Option<String>,
) -> Result<(Option<i64>, Option<i64>), Failure> {
    Ok((
        since.as_deref().map(|s| when("since", s)).transpose()?,
        until.as_deref().map(|s| when("until", s)).transpose()?,
    ))
}

fn pinned_key(arg: &str) -> Result<Vec<u8>, Failure> {
    let text = if Path::new(arg).is_file() {
        std::fs::read_to_string(arg)
            .map_err(|e| Failure::BadInput(format!("{arg}: cannot read: {e}")))?
    } else {
        arg.to_string()
    };
    let t = text.trim();
    warden_policy::hex::decode(t)
        .filter(|k| k.len() == 32)
        .ok_or_else(|| {
            Failure::BadInput(
                "--public-key: expected 64 hex digits (or a file holding them), as `warden audit \
                 public-key` prints"
                    .to_string(),
            )
        })
}

/// The trail a command reads: the local store, or PostgreSQL (with this machine's checkpoint file
/// when there is a store here).
enum Source {
    Local(PathBuf),
    Pg(warden_store::audit_pg::PgTarget, Option<PathBuf>),
}

fn source(s: &AuditSource, data_dir: Option<PathBuf>) -> Result<Source, Failure> {
    match &s.postgres {
        None => Ok(Source::Local(dir(data_dir)?)),
        Some(url) => Ok(Source::Pg(
            warden_store::audit_pg::PgTarget::new(url, &s.pg_schema).map_err(Failure::BadInput)?,
            dir(data_dir).ok(),
        )),
    }
}

fn for_each(
    src: &Source,
    f: &Filter,
    visit: impl FnMut(audit::Entry) -> Result<(), warden_store::StoreError>,
) -> Result<(), Failure> {
    match src {
        Source::Local(d) => audit::for_each(d, f, visit),
        Source::Pg(t, _) => warden_store::audit_pg::for_each(t, f, visit),
    }
    .map_err(store_err)
}

pub fn run(cmd: AuditCommand, data_dir: Option<PathBuf>) -> Result<(), Failure> {
    // On a thread of its own: the blocking PostgreSQL client starts a runtime, which it cannot do
    // on the CLI's.
    std::thread::spawn(move || run_here(cmd, data_dir))
        .join()
        .unwrap_or_else(|_| {
            Err(Failure::Runtime(anyhow::anyhow!(
                "the audit command failed"
            )))
        })
}

fn run_here(cmd: AuditCommand, data_dir: Option<PathBuf>) -> Result<(), Failure> {
    match cmd {
        AuditCommand::Verify(a) => {
            let pinned = a
                .public_key
                .iter()
                .map(|k| pinned_key(k))
                .collect::<Result<Vec<_>, _>>()?;
            let src = source(&a.source, data_dir)?;
            let r = match &src {
                Source::Local(d) => {
                    if pinned.len() > 1 {
                        return Err(Failure::BadInput(
                            "a local trail has one signing key: give one --public-key".into(),
                        ));
                    }
                    audit::verify(d, pinned.first().map(Vec::as_slice))
                }
                Source::Pg(t, d) => {
                    let pins: Vec<Option<&[u8]>> =
                        pinned.iter().map(|p| Some(p.as_slice())).collect();
                    let file = d.as_ref().map(|d| d.join(audit::CHECKPOINT_FILE));
                    warden_store::audit_pg::verify(t, file.as_deref(), &pins)
                }
            }
            .map_err(store_err)?;
            let where_ = match &src {
                Source::Local(d) => d.join(warden_store::FILE_NAME).display().to_string(),
                Source::Pg(t, _) => format!("PostgreSQL schema {}", t.schema),
            };
            if a.json {
                crate::out(
                    serde_json::json!({
                        "intact": r.problem.is_none(),
                        "first": r.first, "last": r.last, "entries": r.entries,
                        "checkpoints": r.checkpoints, "unsigned_tail": r.unsigned_tail,
                        "problem": r.problem.as_ref().map(|p| p.to_string()),
                    })
                    .to_string(),
                );
            }
            match r.problem {
                None => {
                    eprintln!(
                        "audit trail intact: entries {}..={} ({}), {} signed checkpoints; {} entries after the last checkpoint",
                        r.first, r.last, r.entries, r.checkpoints, r.unsigned_tail
                    );
                    Ok(())
                }
                Some(p) => Err(Failure::Runtime(anyhow::anyhow!(
                    "audit trail broken: {p} ({where_})"
                ))),
            }
        }
        AuditCommand::Query(a) => {
            let (since_ms, until_ms) = range(&a.since, &a.until)?;
            let src = source(&a.source, data_dir)?;
            let mut entries = Vec::new();
            for_each(
                &src,
                &Filter {
                    since_ms,
                    until_ms,
                    consumer: a.consumer,
                    route: a.route,
                    decision: a.decision,
                    status: a.status,
                    reason: a.reason,
                    kind: a.kind,
                    limit: Some(a.limit),
                },
                |e| {
                    entries.push(e);
                    Ok(())
                },
            )?;
            if a.json {
                for e in &entries {
                    crate::out(line(e).to_string());
                }
                return Ok(());
            }
            crate::out(format!(
                "{:>8}  {:<24}  {:<7}  {:<14}  {:<6}  {:<3}  {:<8}  {:<16}  {}",
                "seq",
                "time",
                "kind",
                "consumer",
                "method",
                "st",
                "decision",
                "reason",
                "route / action"
            ));
            for e in &entries {
                let b = &e.body;
                let s = |k: &str| b[k].as_str().unwrap_or("-").to_string();
                let at = b["at_ms"].as_i64().unwrap_or(0).max(0) as u64;
                let time = humantime::format_rfc3339_millis(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(at),
                );
                let (what, status) = if s("kind") == "admin" {
                    (format!("{} {}", s("action"), s("subject")), "-".to_string())
                } else {
                    (
                        format!("{} {}", s("route"), s("path")),
                        b["status"].to_string(),
                    )
                };
                crate::out(format!(
                    "{:>8}  {:<24}  {:<7}  {:<14}  {:<6}  {:<3}  {:<8}  {:<16}  {}",
                    e.seq,
                    time.to_string(),
                    s("kind"),
                    b["consumer"]
                        .as_str()
                        .or(b["actor"].as_str())
                        .unwrap_or("-"),
                    s("method"),
                    status,
                    s("decision"),
                    b["reason"]
                        .as_str()
                        .filter(|r| !r.is_empty())
                        .unwrap_or("-"),
                    what
                ));
            }
            Ok(())
        }
        AuditCommand::Export(a) => {
            let (since_ms, until_ms) = range(&a.since, &a.until)?;
            let filter = Filter {
                since_ms,
                until_ms,
                ..Filter::default()
            };
            let src = source(&a.source, data_dir)?;
            let Some(target) = a.syslog else {
                return for_each(&src, &filter, |e| {
                    crate::out(line(&e).to_string());
                    Ok(())
                });
            };
            let target =
                warden_gateway::syslog::Target::try_from(target).map_err(Failure::BadInput)?;
            let format = match a.format {
                SyslogFormat::Rfc5424 => warden_gateway::syslog::Format::Rfc5424,
                SyslogFormat::Cef => warden_gateway::syslog::Format::Cef,
            };
            let mut sender = warden_gateway::syslog::Sender::connect(&target)
                .map_err(|e| Failure::Runtime(anyhow::anyhow!("syslog {}: {e}", target.address)))?;
            let mut sent = 0u64;
            for_each(&src, &filter, |e| {
                let msg = warden_gateway::syslog::entry_message(format, e.seq, &e.hash, &e.body);
                sender.send(&msg).map_err(|err| {
                    warden_store::StoreError::Invalid(format!(
                        "syslog {}: stopped at entry {}: {err}",
                        target.address, e.seq
                    ))
                })?;
                sent += 1;
                Ok(())
            })?;
            eprintln!("sent {sent} entries to {}", target.address);
            Ok(())
        }
        AuditCommand::PublicKey => {
            let dir = dir(data_dir)?;
            crate::out(audit::hex(&audit::public_key(&dir).map_err(store_err)?));
            Ok(())
        }
    }
}

/// An entry as one JSON line: its body, with its place in the chain.
fn line(e: &audit::Entry) -> serde_json::Value {
    let mut v = e.body.clone();
    if let Some(o) = v.as_object_mut() {
        o.insert("seq".into(), e.seq.into());
        o.insert("hash".into(), e.hash.clone().into());
    }
    v
}
