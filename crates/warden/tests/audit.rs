//! The audit trail through the real binary: every call recorded (allowed or refused) with admin
//! events in the same chain, `warden audit verify|query|export`, tampering caught and located, and
//! `kill -9` under load leaving a trail that verifies; in compliance mode, with every answered call
//! in it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

fn serve(dir: &Path, api: SocketAddr, extra: &str) -> (Proc, SocketAddr) {
    let text = format!(
        "listeners:\n  - address: 127.0.0.1:0\n    plain_http: true\nadmin:\n  address: 127.0.0.1:0\n{extra}\
         upstreams:\n  api:\n    targets: [\"http://{api}\"]\n\
         routes:\n  - {{name: api, path_prefix: /, upstream: api}}\n"
    );
    let file = dir.join("warden.yaml");
    std::fs::write(&file, text).unwrap();
    let mut gw = Proc::spawn(&["serve", "--config", file.to_str().unwrap()], dir);
    let addr = gw.addr_of("listening");
    (gw, addr)
}

fn jsonl(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn calls_and_admin_events_are_recorded_verified_and_queried() {
    let dir = temp_dir("audit-trail");
    let (_api, api) = start_api(&dir);
    let (mut gw, addr) = serve(&dir, api, "");
    assert_eq!(http_with_head(addr, "/users/1").0, 200);
    let (s, head, _) = http_with_head(addr, "/users/1?q=1%27%20OR%20%271%27%3D%271");
    assert_eq!(s, 403);
    let refused_id = head
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .unwrap()
        .trim()
        .to_string();
    let (code, _, err) = warden(&dir, &["keys", "create", "--consumer", "carol"]);
    assert_eq!(code, Some(0), "{err}");
    // A key change reaches the trail within a second.
    std::thread::sleep(Duration::from_millis(1200));
    gw.signal("TERM");
    gw.wait_exit();

    let (code, _, err) = warden(&dir, &["audit", "verify"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("audit trail intact"), "{err}");
    let (_, out, _) = warden(&dir, &["audit", "query", "--decision", "denied", "--json"]);
    let denied = jsonl(&out);
    assert_eq!(denied.len(), 1, "{out}");
    let d = &denied[0];
    assert_eq!(d["request_id"], refused_id.as_str());
    assert_eq!(
        (d["status"].as_u64(), d["phase"].as_str()),
        (Some(403), Some("attack_detection"))
    );
    assert_eq!(d["route"], "api");
    assert!(
        d["findings"][0]
            .as_str()
            .unwrap()
            .starts_with("attack_detection:sqli@query.q:block"),
        "{d}"
    );
    assert!(
        !out.contains("OR '1'"),
        "the trail never holds the payload: {out}"
    );
    let (_, out, _) = warden(&dir, &["audit", "export"]);
    let all = jsonl(&out);
    let kinds: Vec<&str> = all.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(
        kinds.iter().filter(|k| **k == "request").count() >= 2,
        "{kinds:?}"
    );
    let actions: Vec<&str> = all.iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(
        actions.contains(&"config.loaded") && actions.contains(&"key.created"),
        "{actions:?}"
    );
    assert!(all
        .windows(2)
        .all(|w| w[1]["seq"].as_u64() == w[0]["seq"].as_u64().map(|s| s + 1)));
    let (_, table, _) = warden(&dir, &["audit", "query", "--kind", "admin"]);
    assert!(table.contains("key.created"), "{table}");

    // The public key pins the signer.
    let (_, key, _) = warden(&dir, &["audit", "public-key"]);
    assert_eq!(
        warden(&dir, &["audit", "verify", "--public-key", key.trim()]).0,
        Some(0)
    );
    let other = "ab".repeat(32);
    let (code, _, err) = warden(&dir, &["audit", "verify", "--public-key", &other]);
    assert_eq!(code, Some(1), "{err}");

    // Edit one entry, as someone with write access to the file could: verify fails and names it.
    let data = dir.join("data");
    let mut entries = warden_store::audit::read_raw(&data).unwrap();
    let denied = entries
        .iter_mut()
        .find(|e| String::from_utf8_lossy(&e.body).contains("\"decision\":\"denied\""))
        .unwrap();
    let seq = denied.seq;
    denied.body = String::from_utf8_lossy(&denied.body)
        .replace("\"denied\"", "\"allowed\"")
        .into_bytes();
    warden_store::audit::write_raw(&data, &entries, 64).unwrap();
    let (code, _, err) = warden(&dir, &["audit", "verify"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("entry {seq} does not match")),
        "{err}"
    );
}

/// A GET that reports failure instead of panicking (the gateway may be killed under it).
fn try_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.get(9..12)?.parse().ok()?;
    let id = out.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("x-request-id: ")
            .map(str::to_string)
    })?;
    Some((status, id.trim().to_string()))
}

/// Hammers the gateway from four threads until it is killed; returns the ids of answered calls.
fn load_then_kill(gw: &mut Proc, addr: SocketAddr) -> Vec<String> {
    let answered = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (answered, stop) = (answered.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some((200, id)) = try_get(addr, "/users/1") {
                        answered.lock().unwrap().push(id);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    gw.kill9();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let ids = answered.lock().unwrap().clone();
    assert!(ids.len() > 50, "the load ran: {}", ids.len());
    ids
}

#[test]
fn kill_9_under_load_leaves_a_trail_that_verifies() {
    let dir = temp_dir("audit-kill");
    let (_api, api) = start_api(&dir);
    let (mut gw, addr) = serve(&dir, api, "audit: {checkpoint_every: 50}\n");
    let answered = load_then_kill(&mut gw, addr);
    let (code, _, err) = warden(&dir, &["audit", "verify"]);
    assert_eq!(code, Some(0), "{err}");
    // Outside compliance mode the last records in flight may be lost, never the chain.
    let (_, out, _) = warden(&dir, &["audit", "export"]);
    assert!(
        jsonl(&out).len() * 2 > answered.len(),
        "most calls are on record"
    );
}

#[test]
fn compliance_mode_loses_no_answered_call_to_kill_9() {
    let dir = temp_dir("audit-compliance");
    let (_api, api) = start_api(&dir);
    let (mut gw, addr) = serve(
        &dir,
        api,
        "audit: {compliance: true, checkpoint_every: 50}\n",
    );
    let answered = load_then_kill(&mut gw, addr);
    let (code, _, err) = warden(&dir, &["audit", "verify"]);
    assert_eq!(code, Some(0), "{err}");
    let (_, out, _) = warden(&dir, &["audit", "export"]);
    let recorded: std::collections::HashSet<String> = jsonl(&out)
        .iter()
        .filter_map(|e| e["request_id"].as_str().map(str::to_string))
        .collect();
    let missing: Vec<&String> = answered
        .iter()
        .filter(|id| !recorded.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered calls missing: {:?}",
        missing.len(),
        answered.len(),
        &missing[..missing.len().min(5)]
    );
}

/// A private rsyslogd (Debian's) listening on UDP and TCP, writing what it receives to a file.
struct Rsyslog {
    child: std::process::Child,
    udp: u16,
    tcp: u16,
    out: std::path::PathBuf,
}

impl Rsyslog {
    fn start(dir: &Path) -> Rsyslog {
        let port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (udp, tcp) = (port(), port());
        let out = dir.join("received.log");
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                "global(workDirectory=\"{d}\")\n\
                 module(load=\"imudp\")\nmodule(load=\"imtcp\")\n\
                 input(type=\"imudp\" address=\"127.0.0.1\" port=\"{udp}\")\n\
                 input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{tcp}\")\n\
                 template(name=\"raw\" type=\"string\" string=\"%msgid% %structured-data% %msg%\\n\")\n\
                 action(type=\"omfile\" file=\"{o}\" template=\"raw\")\n",
                d = dir.display(),
                o = out.display()
            ),
        )
        .unwrap();
        let bin = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("rsyslogd is needed for this test (Debian: apt-get install rsyslog; .ci/run installs it)");
        let child = std::process::Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let r = Rsyslog {
            child,
            udp,
            tcp,
            out,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", tcp)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "rsyslogd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    /// Waits until the received file holds `n` lines containing `needle`.
    fn wait_for(&self, needle: &str, n: usize) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&self.out).unwrap_or_default();
            if text.lines().filter(|l| l.contains(needle)).count() >= n {
                return text;
            }
            assert!(std::time::Instant::now() < deadline, "rsyslog got: {text}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn export_reaches_a_real_rsyslog_as_rfc5424_and_cef() {
    let dir = temp_dir("audit-syslog");
    let (_api, api) = start_api(&dir);
    let (mut gw, addr) = serve(&dir, api, "");
    for _ in 0..3 {
        assert_eq!(http_with_head(addr, "/users/1").0, 200);
    }
    assert_eq!(
        http_with_head(addr, "/users/1?q=%3Cscript%3Ealert(1)%3C/script%3E").0,
        403
    );
    gw.signal("TERM");
    gw.wait_exit();
    let (_, out, _) = warden(&dir, &["audit", "export"]);
    let n = jsonl(&out).len();

    let syslog = Rsyslog::start(&dir);
    let udp = format!("udp://127.0.0.1:{}", syslog.udp);
    let (code, _, err) = warden(&dir, &["audit", "export", "--syslog", &udp]);
    assert_eq!(code, Some(0), "{err}");
    let got = syslog.wait_for("[warden@32473 seq=", n);
    // The admin event of the config load may come first: it is picked up every 500 ms.
    assert!(got.contains(" [warden@32473 seq=\"1\" hash=\""), "{got}");
    assert!(got.contains("request [warden@32473 seq="), "{got}");
    assert!(got.contains("\"decision\":\"denied\""), "{got}");

    let tcp = format!("tcp://127.0.0.1:{}", syslog.tcp);
    let (code, _, err) = warden(
        &dir,
        &["audit", "export", "--syslog", &tcp, "--format", "cef"],
    );
    assert_eq!(code, Some(0), "{err}");
    let got = syslog.wait_for("CEF:0|Warden|Warden Gateway|", n);
    assert!(got.contains("|request:denied|GET api denied|5|"), "{got}");
    // The finer cause (the detector) is what the trail records.
    assert!(got.contains("reason=xss"), "{got}");
    assert!(
        !got.contains("<script>"),
        "no payload leaves in an export: {got}"
    );
}

/// The machine's PostgreSQL (trust auth, database `test`); `.ci/run` starts one where it is missing.
fn postgres_url() -> String {
    std::env::var("WARDEN_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

#[test]
fn two_gateways_write_one_trail_in_postgres() {
    let dir = temp_dir("audit-pg");
    let schema = format!("warden_test_{}", std::process::id());
    let url = postgres_url();
    let mut db = postgres::Client::connect(&url, postgres::NoTls)
        .expect("PostgreSQL at 127.0.0.1:5432 (trust, database test) is needed; .ci/run starts it");
    db.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .unwrap();
    let (_api, api) = start_api(&dir);
    let extra = format!(
        "audit: {{postgres: {{url: \"{url}\", schema: {schema}}}, checkpoint_every: 20}}\n"
    );
    let mut gws = Vec::new();
    for name in ["a", "b"] {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        gws.push(serve(&d, api, &extra));
    }
    // Both replicas at once.
    let threads: Vec<_> = gws
        .iter()
        .map(|(_, addr)| {
            let addr = *addr;
            std::thread::spawn(move || {
                for _ in 0..40 {
                    assert_eq!(http_with_head(addr, "/users/1").0, 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for (gw, _) in &mut gws {
        gw.signal("TERM");
        gw.wait_exit();
    }
    let pg = ["--postgres", url.as_str(), "--pg-schema", schema.as_str()];
    let args = |cmd: &[&'static str]| -> Vec<String> {
        cmd.iter()
            .map(|s| s.to_string())
            .chain(pg.iter().map(|s| s.to_string()))
            .collect()
    };
    let run = |cmd: &[&'static str]| {
        let a = args(cmd);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        warden(&dir.join("a"), &a)
    };
    let (code, _, err) = run(&["audit", "verify"]);
    assert_eq!(code, Some(0), "{err}");
    let (_, out, _) = run(&["audit", "export"]);
    let all = jsonl(&out);
    let requests = all.iter().filter(|e| e["kind"] == "request").count();
    assert_eq!(requests, 80, "every call of both replicas, in one chain");
    let loads = all
        .iter()
        .filter(|e| e["action"] == "config.loaded")
        .count();
    assert_eq!(loads, 2, "each replica's admin events join it");
    let (_, out, _) = run(&["audit", "query", "--status", "200", "--json"]);
    assert_eq!(jsonl(&out).len(), 80);
    // Both replicas' keys pin the trail; a stranger's does not.
    let key = |n: &str| {
        warden(&dir.join(n), &["audit", "public-key"])
            .1
            .trim()
            .to_string()
    };
    let (ka, kb) = (key("a"), key("b"));
    assert_eq!(
        run_with(&dir, &pg, &["--public-key", &ka, "--public-key", &kb]).0,
        Some(0)
    );
    assert_eq!(
        run_with(&dir, &pg, &["--public-key", &ka]).0,
        Some(1),
        "b's checkpoints are not by a's key"
    );

    // Tampering in the database is found and located.
    db.execute(
        &format!("UPDATE {schema}.audit_entries SET body = replace(body, '\"status\":200', '\"status\":500') WHERE seq = 33"),
        &[],
    )
    .unwrap();
    let (code, _, err) = run(&["audit", "verify"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("entry 33 does not match"), "{err}");
    db.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}

/// `warden audit verify` on a PostgreSQL trail with extra flags.
fn run_with(dir: &Path, pg: &[&str], extra: &[&str]) -> (Option<i32>, String, String) {
    let mut a = vec!["audit", "verify"];
    a.extend_from_slice(pg);
    a.extend_from_slice(extra);
    warden(&dir.join("a"), &a)
}

#[test]
fn a_trail_that_cannot_be_written_raises_an_alert_until_it_can() {
    let dir = temp_dir("audit-pg-outage");
    let schema = format!("warden_outage_{}", std::process::id());
    let url = postgres_url();
    let mut db = postgres::Client::connect(&url, postgres::NoTls).expect("PostgreSQL is needed");
    db.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .unwrap();
    let (_api, api) = start_api(&dir);
    let extra = format!("audit: {{postgres: {{url: \"{url}\", schema: {schema}}}}}\n");
    let (mut gw, addr) = serve(&dir, api, &extra);
    let admin = gw.addr_of("admin listening");
    assert_eq!(http_with_head(addr, "/users/1").0, 200);
    // The table goes away under the gateway: writes fail, calls are still served (not compliance
    // mode), and the operator hears about it once.
    db.batch_execute(&format!(
        "ALTER TABLE {schema}.audit_entries RENAME TO moved"
    ))
    .unwrap();
    for _ in 0..20 {
        assert_eq!(http_with_head(addr, "/users/1").0, 200);
        std::thread::sleep(Duration::from_millis(20));
    }
    gw.wait_for("\"alert\":\"audit-write-failed\"");
    let m = http_with_head(admin, "/metrics").2;
    let failed: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("warden_audit_failed_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(failed > 0, "{m}");
    // Back: the next calls are written again and the alert is resolved.
    db.batch_execute(&format!(
        "ALTER TABLE {schema}.moved RENAME TO audit_entries"
    ))
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert_eq!(http_with_head(addr, "/users/1").0, 200);
        if gw.seen_contains("alert resolved") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never resolved");
        std::thread::sleep(Duration::from_millis(100));
    }
    gw.signal("TERM");
    gw.wait_exit();
    let (code, _, err) = warden(
        &dir,
        &[
            "audit",
            "verify",
            "--postgres",
            &url,
            "--pg-schema",
            &schema,
        ],
    );
    assert_eq!(
        code,
        Some(0),
        "the lost records leave no hole in the chain: {err}"
    );
    db.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}
