//! `warden demo`: the example API on loopback with the gateway in front of it, using the config in
//! `examples/demo.yaml` (compiled in, so the demo works from any folder), then a few requests to try.

pub mod api;

use std::path::{Path, PathBuf};

use anyhow::Context;
use warden_gateway::config::Target;
use warden_gateway::{Config, Runtime};

use crate::cli::{DemoArgs, Failure};

const DEMO_CONFIG: &str = include_str!("../../../../examples/demo.yaml");

pub async fn run(args: DemoArgs, data_dir_flag: Option<PathBuf>) -> Result<(), Failure> {
    if !args.api_listen.ip().is_loopback() {
        return Err(Failure::BadInput(
            "--api-listen must be a loopback address: the example API is deliberately insecure"
                .into(),
        ));
    }
    let mut config = Config::parse(DEMO_CONFIG, Path::new("examples/demo.yaml"))
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

    let data_dir = crate::data_dir::resolve(data_dir_flag, None, None).join("demo");
    crate::data_dir::prepare(&data_dir)?;
    let signals = crate::serve::Signals::install()?;
    let gateway = crate::serve::start(Runtime::new(config, DEMO_CONFIG)).await?;
    let admin = gateway.admin_addr().unwrap_or(args.admin);
    print_intro(gateway.listen_addrs()[0], admin, api_addr);
    crate::serve::run_until_signal(gateway, None, signals).await
}

fn print_intro(gw: std::net::SocketAddr, admin: std::net::SocketAddr, api: std::net::SocketAddr) {
    println!(
        "\
Warden demo
  gateway      http://{gw}   (config: examples/demo.yaml, spec: examples/demo-openapi.yaml)
  example API  http://{api}   (deliberately naive: never expose it)
  admin        http://{admin}/metrics

Try:
  curl -i http://{gw}/users/1
      proxied; note the X-Request-Id the gateway adds
  curl -s http://{gw}/echo
      the upstream's view: X-Forwarded-For, Forwarded, hop-by-hop headers gone
  curl -i -X DELETE http://{gw}/admin/users/2
      403 problem+json: /admin only admits 10.20.0.0/16 (the route's ip_rules)
  curl -i http://{gw}/users/../admin/users
      400: dot-segments never reach the router
  head -c 2000000 /dev/zero | curl -i --data-binary @- http://{gw}/orders
      413 once the body passes the route's max_body_bytes (1MiB)
  curl -s http://{admin}/metrics | grep warden_requests

Stop with Ctrl-C (the gateway drains in-flight requests first).
"
    );
}
