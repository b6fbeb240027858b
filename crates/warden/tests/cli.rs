//! The real `warden` binary: config errors at the command line, serving from a config file with
//! reload on SIGHUP, draining on SIGTERM, quick mode's secure defaults, and the demo.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_warden");

/// A running `warden` process whose stderr lines are collected as they come.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(args: &[&str], dir: &Path) -> Proc {
        let mut child = Command::new(BIN)
            .args(args)
            .env("WARDEN_DATA_DIR", dir.join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("warden starts");
        let (tx, rx) = mpsc::channel();
        for pipe in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Proc {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `needle`; panics with everything seen after 15 s.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
        }
        panic!("no line with {needle:?}; saw:\n{}", self.seen.join("\n"));
    }

    /// The address of the first JSON log line with `"message":"<msg>"`.
    fn addr_of(&mut self, msg: &str) -> SocketAddr {
        let line = self.wait_for(&format!("\"message\":\"{msg}\""));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        v["address"].as_str().unwrap().parse().unwrap()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([format!("-{sig}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "warden did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("warden-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Plain HTTP/1.1 GET with `Connection: close`; returns (status, body).
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn start_api(dir: &Path) -> (Proc, SocketAddr) {
    let mut api = Proc::spawn(&["demo-api", "--listen", "127.0.0.1:0"], dir);
    let line = api.wait_for("example API listening on http://");
    let addr = line.rsplit("http://").next().unwrap().parse().unwrap();
    (api, addr)
}

fn config(api: SocketAddr, extra_route: &str) -> String {
    format!(
        "listeners:\n  - address: 127.0.0.1:0\n    plain_http: true\nadmin:\n  address: 127.0.0.1:0\nlimits:\n  shutdown_grace: 10s\nupstreams:\n  api:\n    targets: [\"http://{api}\"]\nroutes:\n{extra_route}  - name: all\n    path_prefix: /\n    upstream: api\n"
    )
}

/// Writes `text` to `file`, runs `warden check-config` on it, returns (exit code, stdout, stderr).
fn check_config(file: &Path, text: &str) -> (Option<i32>, String, String) {
    std::fs::write(file, text).unwrap();
    let out = Command::new(BIN)
        .args(["check-config", file.to_str().unwrap()])
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn check_config_names_file_line_and_field() {
    let dir = temp_dir("check");
    let file = dir.join("warden.yaml");
    let good = config("127.0.0.1:9".parse().unwrap(), "");

    let (code, _, err) = check_config(&file, &good.replace("upstream: api", "upstream: nope"));
    assert_eq!(code, Some(2));
    let want = format!(
        "{}:14: routes[0].upstream: unknown upstream `nope`",
        file.display()
    );
    assert!(err.contains(&want), "{err}");

    let (code, _, err) = check_config(&file, &good.replace("    plain_http: true\n", ""));
    assert_eq!(code, Some(2));
    assert!(
        err.contains(&format!("{}:2:", file.display())) && err.contains("plain_http"),
        "{err}"
    );

    let (code, out, err) = check_config(&file, &good);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(": ok (1 listener(s), 1 upstream(s), 1 route(s))"),
        "{out}"
    );
}

#[test]
fn check_config_refuses_a_key_that_does_not_match_its_certificate() {
    let dir = temp_dir("tlspair");
    let a = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), a.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), b.signing_key.serialize_pem()).unwrap();
    let text = config("127.0.0.1:9".parse().unwrap(), "")
        .replace("plain_http: true", "tls: {cert: cert.pem, key: key.pem}");
    let (code, out, err) = check_config(&dir.join("warden.yaml"), &text);
    assert_eq!(code, Some(2), "{out}");
    assert!(err.contains("listeners[0].tls"), "{err}");
}

#[test]
fn serve_reloads_on_sighup_and_keeps_old_config_when_broken() {
    let dir = temp_dir("reload");
    let (_api, api) = start_api(&dir);
    let file = dir.join("warden.yaml");
    std::fs::write(&file, config(api, "")).unwrap();
    let mut gw = Proc::spawn(&["serve", "--config", file.to_str().unwrap()], &dir);
    let addr = gw.addr_of("listening");
    assert_eq!(http(addr, "GET", "/users/1").0, 200);
    // One JSON access log line per request, with what an operator filters on.
    let line = gw.wait_for("\"target\":\"warden::access\"");
    let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["method"], "GET");
    assert_eq!(entry["route"], "all");
    assert_eq!(entry["status"], 200);
    assert_eq!(entry["decision"], "allowed");
    assert_eq!(entry["client_ip"], "127.0.0.1");
    assert_eq!(entry["request_id"].as_str().map(str::len), Some(36));
    assert!(entry["duration_ms"].as_f64().is_some() && entry["bytes_out"].as_u64() > Some(0));
    // The embedded store's folder exists, private to its owner.
    let data = dir.join("data");
    assert!(data.is_dir());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );

    let deny = "  - name: users\n    path_prefix: /users\n    upstream: api\n    ip_rules: {deny: [127.0.0.0/8]}\n";
    std::fs::write(&file, config(api, deny)).unwrap();
    gw.signal("HUP");
    gw.wait_for("config reloaded");
    let (status, body) = http(addr, "GET", "/users/1");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("urn:warden:problem:forbidden"));

    // Broken: the error names file and line, and the previous config keeps serving.
    std::fs::write(
        &file,
        config(api, deny).replace("127.0.0.0/8", "127.0.0.0/99"),
    )
    .unwrap();
    gw.signal("HUP");
    let line = gw.wait_for("config reload rejected");
    assert!(line.contains(&format!("{}:", file.display())), "{line}");
    assert_eq!(http(addr, "GET", "/users/1").0, 403);
    assert_eq!(http(addr, "GET", "/health").0, 200);

    // Editing the file is enough, no signal needed.
    std::fs::write(&file, config(api, "")).unwrap();
    gw.wait_for("config reloaded");
    assert_eq!(http(addr, "GET", "/users/1").0, 200);
}

#[test]
fn sigterm_drains_in_flight_requests() {
    let dir = temp_dir("drain");
    let (_api, api) = start_api(&dir);
    let mut gw = Proc::spawn(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &format!("http://{api}"),
            "--admin",
            "127.0.0.1:0",
        ],
        &dir,
    );
    let addr = gw.addr_of("listening");
    let slow = std::thread::spawn(move || http(addr, "GET", "/slow/1000"));
    std::thread::sleep(Duration::from_millis(300));
    gw.signal("TERM");
    gw.wait_for("draining");
    let (status, body) = slow.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("slept_ms"));
    assert!(gw.wait_exit().success());
}

#[test]
fn quick_mode_refuses_plain_http_beyond_loopback() {
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--upstream",
            "http://127.0.0.1:9",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-cert"));
}

#[test]
fn quick_mode_serves_tls() {
    let dir = temp_dir("quicktls");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    let (_api, api) = start_api(&dir);
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let mut gw = Proc::spawn(
        &[
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--upstream",
            &format!("http://{api}"),
            "--admin",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &dir,
    );
    let line = gw.wait_for("\"message\":\"listening\"");
    assert!(line.contains("\"tls\":true"), "{line}");
}

#[test]
fn demo_starts_and_protects_the_example_api() {
    let dir = temp_dir("demo");
    let port = |p: &str| format!("127.0.0.1:{p}");
    let mut demo = Proc::spawn(
        &[
            "demo",
            "--listen",
            &port("0"),
            "--api-listen",
            &port("0"),
            "--admin",
            &port("0"),
        ],
        &dir,
    );
    let intro = demo.wait_for("gateway      http://");
    let gw: SocketAddr = intro
        .split("http://")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (status, body) = http(gw, "GET", "/users/1");
    assert_eq!(status, 200);
    assert!(body.contains("alice"));
    let (status, body) = http(gw, "DELETE", "/admin/users/2");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("ip-not-allowed"));
    assert_eq!(
        http(gw, "GET", "/users/2").0,
        200,
        "the admin operation never reached the API"
    );
}
