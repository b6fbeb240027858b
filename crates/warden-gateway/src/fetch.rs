//! The gateway's own outbound HTTP: fetching a JWKS (HTTPS only), posting alerts to a webhook.
//! Public web roots plus an optional extra CA, TLS 1.2+, a 5 s deadline, no redirects, 1 MiB at most.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

const MAX_BYTES: usize = 1 << 20;
const DEADLINE: Duration = Duration::from_secs(5);

pub async fn get_text(url: &str, extra_ca: Option<&Path>) -> Result<String, String> {
    tokio::time::timeout(DEADLINE, fetch(url, extra_ca))
        .await
        .map_err(|_| format!("{url}: no answer within {DEADLINE:?}"))?
}

async fn fetch(url: &str, extra_ca: Option<&Path>) -> Result<String, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!("{url}: only https:// is fetched"));
    }
    let (status, body) = exchange(&uri, http::Method::GET, None, extra_ca).await?;
    if status != http::StatusCode::OK {
        return Err(format!("{url}: answered {status}"));
    }
    String::from_utf8(body.to_vec()).map_err(|_| format!("{url}: not UTF-8"))
}

/// POSTs a JSON document (alert webhooks); http:// is allowed for collectors on a private network.
pub async fn post_json(url: &str, body: bytes::Bytes) -> Result<http::StatusCode, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let sent = exchange(&uri, http::Method::POST, Some(body), None);
    let (status, _) = tokio::time::timeout(DEADLINE, sent)
        .await
        .map_err(|_| format!("{url}: no answer within {DEADLINE:?}"))??;
    Ok(status)
}

async fn exchange(
    uri: &http::Uri,
    method: http::Method,
    body: Option<bytes::Bytes>,
    extra_ca: Option<&Path>,
) -> Result<(http::StatusCode, bytes::Bytes), String> {
    let url = uri.to_string();
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("{url}: only http:// and https:// URLs")),
    };
    let host = uri
        .host()
        .ok_or_else(|| format!("{url}: no host"))?
        .to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let tcp = tokio::net::TcpStream::connect((bare.as_str(), port))
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(
            http::header::HOST,
            uri.authority().map_or(host.as_str(), |a| a.as_str()),
        )
        .header(http::header::ACCEPT, "application/json")
        .header(
            http::header::USER_AGENT,
            concat!("warden/", env!("CARGO_PKG_VERSION")),
        );
    if body.is_some() {
        req = req.header(http::header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(http_body_util::Full::new(body.unwrap_or_default()))
        .map_err(|e| e.to_string())?;
    if !tls {
        return send_on(TokioIo::new(tcp), req, &url).await;
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = extra_ca {
        for cert in
            CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))?
        {
            let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", ca.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(bare.clone()).map_err(|e| format!("{url}: {e}"))?;
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("{url}: TLS: {e}"))?;
    send_on(TokioIo::new(stream), req, &url).await
}

async fn send_on<IO>(
    io: IO,
    req: http::Request<http_body_util::Full<bytes::Bytes>>,
    url: &str,
) -> Result<(http::StatusCode, bytes::Bytes), String>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_BYTES)
        .collect()
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .to_bytes();
    Ok((status, body))
}
