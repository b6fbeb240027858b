//! Alert detectors through the real proxy: each scripted attack (a burst of bad credentials, a
//! walk through object ids, a scanner's sweep, a bulk download) raises exactly one alert at the
//! webhook, and ordinary traffic raises none.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use warden_gateway::services::Services;
use warden_store::Store;

/// A webhook receiver that keeps every JSON document posted to it.
async fn webhook() -> (SocketAddr, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let g = g.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let g = g.clone();
                    async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        g.lock()
                            .unwrap()
                            .push(serde_json::from_slice(&body).unwrap());
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_detector_raises_one_alert_and_ordinary_traffic_none() {
    let (hook, alerts) = webhook().await;
    let (up, _) = canned_upstream(vec![
        Canned::json("/orders/1", "{\"id\":1}"),
        Canned::json("/big", "x".repeat(300_000)),
    ])
    .await;
    let dir = temp_dir("alerts");
    Store::open(&dir)
        .unwrap()
        .create_key("alice", &[], &[], None, "test")
        .unwrap();
    let text = config_text(
        up,
        &format!(
            "\
trusted_proxies: [127.0.0.1/32]
alerts:
  webhook: \"http://{hook}/hook\"
  auth_failures: {{threshold: 10, window: 1m}}
  object_probing: {{threshold: 10, window: 1m}}
  path_sweep: {{threshold: 10, window: 1m}}
  large_responses: {{bytes: 1MiB, window: 1m}}
upstreams:
  stub:
    targets: [\"http://UP\"]
routes:
  - {{name: api, path_prefix: /api, strip_prefix: true, upstream: stub}}
  - {{name: open, path_prefix: /open, strip_prefix: true, upstream: stub, auth: none}}
"
        ),
    );
    let gw = start_with(&text, Services::with_store(&dir).unwrap()).await;
    let from = |ip: &'static str| [("x-forwarded-for", ip), ("x-api-key", "wdn_nope")];
    let plain = |ip: &'static str| [("x-forwarded-for", ip)];

    // Someone guessing keys: 15 refused, then 10 more later in the burst.
    for _ in 0..25 {
        assert_eq!(
            get_with(&gw, "/api/orders/1", &from("203.0.113.1")).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // Someone walking object ids.
    for i in 2..20 {
        let s = get_with(&gw, &format!("/open/orders/{i}"), &plain("203.0.113.2"))
            .await
            .0;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    // A scanner.
    for p in [
        "/.env",
        "/.git/config",
        "/wp-login.php",
        "/admin",
        "/phpmyadmin",
        "/server-status",
        "/actuator/env",
        "/console",
        "/debug/vars",
        "/backup.zip",
        "/config.json",
        "/.aws/credentials",
    ] {
        assert_eq!(
            get_with(&gw, p, &plain("203.0.113.3")).await.0,
            StatusCode::NOT_FOUND
        );
    }
    // A bulk download.
    for _ in 0..5 {
        assert_eq!(
            get_with(&gw, "/open/big", &plain("203.0.113.4")).await.0,
            StatusCode::OK
        );
    }
    // Ordinary use: reads, a typo, a couple of failed logins.
    for _ in 0..50 {
        assert_eq!(
            get_with(&gw, "/open/orders/1", &plain("198.51.100.9"))
                .await
                .0,
            StatusCode::OK
        );
    }
    get_with(&gw, "/open/ordrs", &plain("198.51.100.9")).await;
    get_with(&gw, "/favicon.ico", &plain("198.51.100.9")).await;
    for _ in 0..3 {
        get_with(
            &gw,
            "/api/orders/1",
            &[
                ("x-forwarded-for", "198.51.100.9"),
                ("x-api-key", "wdn_typo"),
            ],
        )
        .await;
    }

    let deadline = Instant::now() + Duration::from_secs(5);
    while alerts.lock().unwrap().len() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = alerts.lock().unwrap().clone();
    let mut seen: Vec<(String, String)> = got
        .iter()
        .map(|a| {
            (
                a["alert"].as_str().unwrap().to_string(),
                a["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("auth-failures".to_string(), "ip:203.0.113.1".to_string()),
            ("large-responses".into(), "ip:203.0.113.4".into()),
            ("object-probing".into(), "ip:203.0.113.2".into()),
            ("path-sweep".into(), "ip:203.0.113.3".into()),
        ],
        "{got:#?}"
    );
    let auth = got.iter().find(|a| a["alert"] == "auth-failures").unwrap();
    assert_eq!(auth["detail"]["count"], 10);
    assert_eq!(
        auth["detail"]["sample_request_ids"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert!(
        !got.iter().any(|a| a.to_string().contains("wdn_nope")),
        "no credential in an alert"
    );
}
