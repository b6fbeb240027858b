//! The phase pipeline through the real proxy: a check that asks for the body gets it whole (up to the
//! route's limit), and its refusal becomes the decision, with its name as the deciding phase.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http::{request, Request, StatusCode};
use http_body_util::BodyExt;
use warden_gateway::context::RequestCtx;
use warden_gateway::pipeline::{Check, Pipeline};
use warden_gateway::{Config, Gateway, Runtime};
use warden_policy::{ProblemKind, Verdict};

/// Refuses bodies containing "evil"; looks only at POSTs.
struct NoEvil;

impl Check for NoEvil {
    fn name(&self) -> &'static str {
        "no_evil"
    }

    fn needs_body(&self, _ctx: &RequestCtx, head: &request::Parts) -> bool {
        head.method == http::Method::POST
    }

    fn request_body(
        &self,
        _ctx: &mut RequestCtx,
        _head: &mut request::Parts,
        body: &Bytes,
    ) -> Verdict {
        if body.windows(4).any(|w| w == b"evil") {
            Verdict::reject(ProblemKind::BadRequest, "evil-body")
        } else {
            Verdict::Continue
        }
    }
}

async fn start_with_check(text: &str) -> Gateway {
    let cfg = Config::parse(text, &PathBuf::from("test.yaml")).unwrap();
    let rt = Runtime::with_pipeline(
        cfg,
        text,
        warden_gateway::services::Services::without_store(),
        Pipeline::from_checks(vec![Arc::new(NoEvil)]),
    );
    Gateway::start(rt).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_check_sees_the_whole_body_and_can_refuse() {
    let up = upstream().await;
    let gw = start_with_check(&config_text(
        up.addr,
        &format!("limits:\n  max_body_bytes: 64KiB\n{BASIC}"),
    ))
    .await;

    // Clean body: buffered, checked, then forwarded intact.
    let body = vec![b'a'; 40_000];
    let req = Request::post(url(&gw, "/upload"))
        .body(warden_gateway::body::full(body.clone()))
        .unwrap();
    let (s, _, echoed_back) = send(&h1_client(), req).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(echoed_back.len(), body.len());

    // The bad word far into the body is still seen: the check gets the whole body, not a prefix.
    let mut bad = vec![b'a'; 50_000];
    bad.extend_from_slice(b"evil");
    let req = Request::post(url(&gw, "/upload"))
        .body(warden_gateway::body::full(bad))
        .unwrap();
    let (s, h, b) = send(&h1_client(), req).await;
    assert_eq!(
        assert_problem(s, &h, &b, 400, "bad-request")["reason"],
        "evil-body"
    );
    assert_eq!(
        up.hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "refused body never reached the upstream"
    );

    // Over the limit while buffering a body of unknown length: 413, not an unbounded buffer.
    let req = Request::post(url(&gw, "/upload"))
        .body(
            Generated {
                left: 100_000,
                chunk: 10_000,
            }
            .boxed_unsync(),
        )
        .unwrap();
    let (s, h, b) = send(&h1_client(), req).await;
    assert_problem(s, &h, &b, 413, "payload-too-large");

    // GETs do not ask for the body and stream as before.
    assert_eq!(get(&gw, "/echo").await.0, StatusCode::OK);
    let m = String::from_utf8(
        send(
            &h1_client(),
            Request::get(format!("http://{}/metrics", gw.admin_addr().unwrap()))
                .body(empty())
                .unwrap(),
        )
        .await
        .2
        .to_vec(),
    )
    .unwrap();
    assert!(
        m.contains("decision=\"denied\",reason=\"evil-body\""),
        "{m}"
    );
}
