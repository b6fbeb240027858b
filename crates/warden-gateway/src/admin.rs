//! The admin listener: `/healthz` (the process answers), `/readyz` (config loaded and not draining:
//! what a load balancer should poll), `/metrics` (Prometheus text format). Loopback by default; see
//! `config::Admin`.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use warden_policy::ProblemKind;

use crate::body::{full, GatewayBody};
use crate::shared::Shared;

/// Keeps serving while the gateway drains (so `/readyz` can say so); the gateway aborts this task
/// once draining is over.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(route(&shared, &req)) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), conn).await;
        });
    }
}

fn route(shared: &Shared, req: &Request<Incoming>) -> Response<GatewayBody> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return crate::problem::simple(ProblemKind::NoRoute, "admin-no-route", "admin");
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n", "text/plain"),
        "/readyz" => {
            if shared.draining.load(Ordering::Acquire) {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining\n", "text/plain")
            } else {
                text(StatusCode::OK, "ready\n", "text/plain")
            }
        }
        "/metrics" => {
            let mut out = shared.metrics.encode_with(
                shared.open_connections.load(Ordering::Relaxed),
                shared.in_flight.load(Ordering::Relaxed),
            );
            // Traffic-control series live with their state, which outlives config generations.
            let mut extra = String::new();
            let services = &shared.peek().services;
            services.traffic.encode_metrics(&mut extra);
            if let Some(a) = services.audit() {
                use std::fmt::Write;
                let w = a.writer();
                for (name, help, v) in [
                    ("written", "Audit records committed.", w.written()),
                    (
                        "dropped",
                        "Audit records dropped because the queue was full.",
                        w.dropped(),
                    ),
                    (
                        "failed",
                        "Audit records lost to a failed write.",
                        w.failed(),
                    ),
                ] {
                    let _ = write!(
                        extra,
                        "# HELP warden_audit_{name}_total {help}\n# TYPE warden_audit_{name}_total counter\nwarden_audit_{name}_total {v}\n"
                    );
                }
            }
            match out.rfind("# EOF") {
                Some(at) => out.insert_str(at, &extra),
                None => out.push_str(&extra),
            }
            text(
                StatusCode::OK,
                &out,
                "text/plain; version=0.0.4; charset=utf-8",
            )
        }
        _ => crate::problem::simple(ProblemKind::NoRoute, "admin-no-route", "admin"),
    }
}

fn text(status: StatusCode, body: &str, content_type: &'static str) -> Response<GatewayBody> {
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
