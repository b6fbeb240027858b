//! Limits shared through Redis, with the real binary: two gateway processes on one Redis admit no
//! more than the limit between them; when Redis dies, each limit's `on_store_error` choice holds
//! (count locally, or refuse), an alert is raised, and all recovers when Redis returns.
//!
//! Each test runs its own `redis-server` on an ephemeral port (never the machine's shared one), so
//! it can kill it. `.ci/run` installs redis-server where it is missing.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A private redis-server, killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(port: Option<u16>) -> Redis {
        let port = port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        let redis = Redis {
            child: Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is needed for these tests (Debian: apt-get install redis-server; .ci/run installs it)"),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if ping(port) {
                return redis;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        assert!(!ping(self.port));
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

fn gateway(dir: &Path, name: &str, text: &str) -> (Proc, SocketAddr, SocketAddr) {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("warden.yaml");
    std::fs::write(&file, text).unwrap();
    let mut gw = Proc::spawn(&["serve", "--config", file.to_str().unwrap()], &dir);
    let addr = gw.addr_of("listening");
    let admin = gw.addr_of("admin listening");
    (gw, addr, admin)
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(|v| v.trim().to_string())
}

#[test]
fn two_gateways_sharing_redis_admit_no_more_than_the_limit() {
    let dir = temp_dir("shared-limit");
    let redis = Redis::start(None);
    let (_api, api) = start_api(&dir);
    let text = format!(
        "listeners:\n  - address: 127.0.0.1:0\n    plain_http: true\nadmin:\n  address: 127.0.0.1:0\n\
         traffic:\n  redis: {{url: \"{}\"}}\n  limits:\n\
         \x20   - {{name: users-rate, key: [route], rate: 20/min, routes: [users]}}\n\
         \x20   - {{name: users-quota, key: [route], quota: 30/day, routes: [quota]}}\n\
         upstreams:\n  api:\n    targets: [\"http://{api}\"]\n\
         routes:\n  - {{name: quota, path_prefix: /q, strip_prefix: true, upstream: api}}\n\
         \x20 - {{name: users, path_prefix: /, upstream: api}}\n",
        redis.url()
    );
    let (_a, a, _) = gateway(&dir, "a", &text);
    let (_b, b, _) = gateway(&dir, "b", &text);

    // Both gateways at once, 30 calls each: alone, each would admit 20.
    let started = Instant::now();
    let run = |addr: SocketAddr, path: &'static str| {
        std::thread::spawn(move || {
            (0..30)
                .map(|_| http_with_head(addr, path).0)
                .collect::<Vec<u16>>()
        })
    };
    let (ja, jb) = (run(a, "/users/1"), run(b, "/users/1"));
    let (sa, sb) = (ja.join().unwrap(), jb.join().unwrap());
    let elapsed = started.elapsed().as_secs();
    let admitted = |s: &[u16]| s.iter().filter(|c| **c == 200).count() as u64;
    let total = admitted(&sa) + admitted(&sb);
    // GCRA refills one call every 3 s: the slack is what refilled while the test ran.
    let slack = elapsed / 3 + 1;
    assert!(
        (20..=20 + slack).contains(&total),
        "admitted {total} across both in {elapsed}s: a={sa:?} b={sb:?}"
    );
    assert!(admitted(&sa) > 0 && admitted(&sb) > 0, "both served some");
    assert!(sa.iter().chain(&sb).all(|c| *c == 200 || *c == 429));
    let (s, head, body) = http_with_head(a, "/users/1");
    assert_eq!(s, 429, "{body}");
    assert_eq!(header(&head, "ratelimit-remaining").as_deref(), Some("0"));
    assert!(header(&head, "retry-after").is_some());

    // A quota is exact across replicas: 30 between them, not 30 each.
    let (ja, jb) = (run(a, "/q/users/1"), run(b, "/q/users/1"));
    let total = admitted(&ja.join().unwrap()) + admitted(&jb.join().unwrap());
    assert_eq!(total, 30);
}

#[test]
fn redis_outage_follows_each_limits_choice_alerts_and_recovers() {
    let dir = temp_dir("redis-outage");
    let mut redis = Redis::start(None);
    let (_api, api) = start_api(&dir);
    let text = format!(
        "listeners:\n  - address: 127.0.0.1:0\n    plain_http: true\nadmin:\n  address: 127.0.0.1:0\n\
         traffic:\n  redis: {{url: \"{}\", timeout: 200ms, retry_after: 300ms}}\n  limits:\n\
         \x20   - {{name: open, key: [ip], rate: 3/min, routes: [open], on_store_error: local}}\n\
         \x20   - {{name: closed, key: [ip], rate: 100/min, routes: [closed], on_store_error: refuse}}\n\
         upstreams:\n  api:\n    targets: [\"http://{api}\"]\n\
         routes:\n  - {{name: open, path_prefix: /open, strip_prefix: true, upstream: api}}\n\
         \x20 - {{name: closed, path_prefix: /closed, strip_prefix: true, upstream: api}}\n",
        redis.url()
    );
    let (mut gw, addr, admin) = gateway(&dir, "gw", &text);
    let status = |path: &str| http_with_head(addr, path).0;

    // Redis up: the shared counters decide.
    for left in ["2", "1", "0"] {
        let (s, head, _) = http_with_head(addr, "/open/users/1");
        assert_eq!(s, 200);
        assert_eq!(header(&head, "ratelimit-remaining").as_deref(), Some(left));
    }
    assert_eq!(status("/open/users/1"), 429);
    assert_eq!(status("/closed/users/1"), 200);

    redis.kill();
    // Fail-closed: refused at once with a 503 that says when to come back.
    let t = Instant::now();
    let (s, head, body) = http_with_head(addr, "/closed/users/1");
    assert_eq!(s, 503, "{body}");
    assert!(body.contains("limit-store-unavailable"), "{body}");
    assert_eq!(header(&head, "retry-after").as_deref(), Some("1"));
    assert!(t.elapsed() < Duration::from_secs(2));
    // Fail-open to a local limit: this process counts on its own meanwhile (3 per minute).
    let local: Vec<u16> = (0..4).map(|_| status("/open/users/1")).collect();
    assert_eq!(local, [200, 200, 200, 429]);
    gw.wait_for("alert raised");
    let line = gw.wait_for("shared-store-unreachable@limit.open:local");
    assert!(line.contains("\"decision\":\"allowed\""), "{line}");
    let m = http_with_head(admin, "/metrics").2;
    assert!(m.contains("warden_shared_store_up 0"), "{m}");
    assert!(
        m.contains("warden_alerts_total{alert=\"shared-store-unreachable\"} 1"),
        "{m}"
    );

    // Redis returns (empty): shared counting resumes.
    let _redis = Redis::start(Some(redis.port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while status("/closed/users/1") != 200 {
        assert!(
            Instant::now() < deadline,
            "no recovery after Redis came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (s, head, _) = http_with_head(addr, "/open/users/1");
    assert_eq!(s, 200, "the fresh shared counter, not the spent local one");
    assert_eq!(header(&head, "ratelimit-remaining").as_deref(), Some("2"));
    gw.wait_for("alert resolved");
    assert!(http_with_head(admin, "/metrics")
        .2
        .contains("warden_shared_store_up 1"));

    // The alert and its resolution are in the store's admin events.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let store = warden_store::Store::open(&dir.join("gw").join("data")).unwrap();
        let actions: Vec<String> = store
            .admin_events(0)
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        if actions.iter().any(|a| a == "alert.raised")
            && actions.iter().any(|a| a == "alert.resolved")
        {
            break;
        }
        assert!(Instant::now() < deadline, "admin events: {actions:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_signed_request_replayed_to_another_replica_is_refused() {
    let dir = temp_dir("shared-nonces");
    let mut redis = Redis::start(None);
    let (_api, api) = start_api(&dir);
    let secret = dir.join("partner.secret");
    std::fs::write(&secret, "Zq8#uK2!pL9@wE4$rT7^yU1&iO5*aS3(\n").unwrap();
    let text = format!(
        "listeners:\n  - address: 127.0.0.1:0\n    plain_http: true\nadmin:\n  address: 127.0.0.1:0\n\
         auth:\n  signatures:\n    keys:\n      partner-a: {{secret: {{file: {}}}, consumer: partner-a}}\n\
         traffic:\n  redis: {{url: \"{}\", timeout: 200ms}}\n\
         upstreams:\n  api:\n    targets: [\"http://{api}\"]\n\
         routes:\n  - {{name: all, path_prefix: /, upstream: api}}\n",
        secret.display(),
        redis.url()
    );
    let (_a, a, _) = gateway(&dir, "a", &text);
    let (_b, b, _) = gateway(&dir, "b", &text);
    // Signed for one public address, as a load balancer in front of both replicas would see it.
    let sign = || {
        let out = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["sign", "--key-id", "partner-a", "--secret-file"])
            .arg(&secret)
            .arg("http://api.example.test/users/1")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        vec![
            String::from_utf8(out.stdout).unwrap().trim().to_string(),
            "Host: api.example.test".to_string(),
        ]
    };
    let headers = sign();
    assert_eq!(http_raw(a, "GET", "/users/1", &headers, "").0, 200);
    let (s, body) = http_raw(b, "GET", "/users/1", &headers, "");
    assert_eq!(s, 401, "the replay to the other replica is caught: {body}");
    assert_eq!(http_raw(b, "GET", "/users/1", &sign(), "").0, 200);

    // Without Redis, signed requests are refused (the default), not let through unchecked.
    redis.kill();
    let (s, body) = http_raw(a, "GET", "/users/1", &sign(), "");
    assert_eq!(s, 503, "{body}");
    assert!(body.contains("nonce-store-unavailable"), "{body}");
}

#[test]
fn a_key_revoked_throughredis_is_refused_by_every_replica() {
    let dir = temp_dir("shared-revocation");
    let redis = Redis::start(None);
    let (_api, api) = start_api(&dir);
    // A key made on replica a; replica b holds a copy of the store (replicated, or restored).
    let (code, key, _) = warden(&dir.join("a"), &["keys", "create", "--consumer", "alice"]);
    assert_eq!(code, Some(0));
    let key = key.trim().to_string();
    let id = key[4..16].to_string();
    std::fs::create_dir_all(dir.join("b/data")).unwrap();
    for f in std::fs::read_dir(dir.join("a/data")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.join("b/data").join(f.file_name().unwrap())).unwrap();
    }
    let text = format!(
        "listeners:\n  - address: 127.0.0.1:0\n    plain_http: true\nadmin:\n  address: 127.0.0.1:0\n\
         traffic:\n  redis: {{url: \"{}\"}}\n\
         upstreams:\n  api:\n    targets: [\"http://{api}\"]\n\
         routes:\n  - {{name: all, path_prefix: /, upstream: api}}\n",
        redis.url()
    );
    let (_a, a, _) = gateway(&dir, "a", &text);
    let (_b, b, _) = gateway(&dir, "b", &text);
    let with_key = vec![format!("X-Api-Key: {key}")];
    assert_eq!(http_raw(a, "GET", "/users/1", &with_key, "").0, 200);
    assert_eq!(http_raw(b, "GET", "/users/1", &with_key, "").0, 200);

    let config = dir.join("a/warden.yaml");
    let (code, _, err) = warden(
        &dir.join("a"),
        &["keys", "revoke", &id, "--config", config.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("shared through redis://"), "{err}");
    // Replica b never saw the change in its own store: Redis tells it.
    let deadline = Instant::now() + Duration::from_secs(3);
    for gw in [a, b] {
        while http_raw(gw, "GET", "/users/1", &with_key, "").0 != 401 {
            assert!(
                Instant::now() < deadline,
                "{gw} still accepts a revoked key"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // A config without Redis cannot share: said plainly, nothing half done.
    let plain = dir.join("plain.yaml");
    std::fs::write(
        &plain,
        text.replace(
            &format!("  redis: {{url: \"{}\"}}\n", redis.url()),
            "  limits: []\n",
        ),
    )
    .unwrap();
    let (code, _, err) = warden(
        &dir.join("a"),
        &["keys", "revoke", &id, "--config", plain.to_str().unwrap()],
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("traffic.redis"), "{err}");
}
