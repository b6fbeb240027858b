//! HTTP/1.1 towards upstreams, the wire format only (RFC 9112): how a request's body is framed and
//! its head written, how a response head is parsed and its body delimited, and chunked decoding.
//! No I/O here: `upstream::conn` drives it over a socket, and the fuzz target `upstream_response`
//! feeds it arbitrary bytes.
//!
//! Strict where laxness lets an upstream smuggle a second response past the gateway: one
//! Content-Length value (or identical repeats), CRLF line ends everywhere, no `Transfer-Encoding`
//! in HTTP/1.0, a message with both `Transfer-Encoding` and `Content-Length` loses the latter and
//! its connection, bare LF or control bytes in a chunk line are refused.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};

/// A response head (status line, fields, blank line) longer than this is refused. nginx refuses
/// past its 4–8 KiB `proxy_buffer_size`; this leaves room for cookie-heavy answers.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Header fields per response head, as many as hyper accepts by default.
pub const MAX_HEADERS: usize = 100;
/// A chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 1024;

/// How a message body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes the connection (responses only).
    UntilClose,
}

/// An upstream spoke HTTP/1.1 in a way the gateway will not pass on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("response head longer than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    #[error("response head with more than {MAX_HEADERS} fields")]
    TooManyHeaders,
    #[error("malformed response head ({0})")]
    MalformedHead(&'static str),
    #[error("invalid or conflicting Content-Length")]
    BadContentLength,
    #[error("Transfer-Encoding in an HTTP/1.0 response")]
    TransferEncodingInHttp10,
    #[error("protocol switch (status 101 or a tunnel), which the gateway does not relay")]
    Upgrade,
    #[error("malformed chunked body ({0})")]
    BadChunk(&'static str),
    #[error("request refused before sending: {0}")]
    BadRequest(&'static str),
}

/// Decides how a request body goes upstream, the way hyper's client does, and sets the framing
/// headers to match: a `Content-Length` the request carries is kept; a body of known size gets
/// one; a body of unknown size is chunked, except on GET, HEAD and CONNECT, which go without
/// one. `Transfer-Encoding` from the client never passes (it is hop-by-hop); the gateway chooses.
pub fn request_framing(
    method: &Method,
    headers: &mut HeaderMap,
    body_empty: bool,
    exact: Option<u64>,
) -> Result<Framing, ProtocolError> {
    if method == Method::CONNECT {
        return Err(ProtocolError::BadRequest("CONNECT is not relayed"));
    }
    headers.remove(header::TRANSFER_ENCODING);
    let declared = if headers.contains_key(header::CONTENT_LENGTH) {
        Some(
            content_length(headers.get_all(header::CONTENT_LENGTH).iter())
                .ok_or(ProtocolError::BadRequest("invalid Content-Length"))?,
        )
    } else {
        None
    };
    if body_empty {
        return match declared {
            Some(n) if n != 0 => Err(ProtocolError::BadRequest(
                "Content-Length does not match the body",
            )),
            _ => Ok(Framing::Empty),
        };
    }
    match (declared, exact) {
        (Some(n), Some(e)) if n != e => Err(ProtocolError::BadRequest(
            "Content-Length does not match the body",
        )),
        (Some(n), _) => Ok(Framing::Length(n)),
        (None, Some(n)) => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
            Ok(Framing::Length(n))
        }
        (None, None) if matches!(*method, Method::GET | Method::HEAD) => Ok(Framing::Empty),
        (None, None) => {
            headers.insert(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
            Ok(Framing::Chunked)
        }
    }
}

/// Writes the request line and header fields, names in lower case as hyper writes them.
pub fn encode_request_head(method: &Method, target: &str, headers: &HeaderMap, out: &mut BytesMut) {
    let fields: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    out.reserve(method.as_str().len() + target.len() + 13 + fields + 2);
    out.extend_from_slice(method.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(if target.is_empty() { "/" } else { target }.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The size line that starts a chunk of `len` bytes.
pub fn chunk_size_line(len: usize) -> Bytes {
    Bytes::from(format!("{len:x}\r\n"))
}

/// The end of a chunked body: the last chunk and no trailer fields.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub version: Version,
    /// The reason phrase, when it is not the status code's usual one.
    pub reason: Option<Bytes>,
    /// The fields, minus the hop-by-hop ones and those the `Connection` field names: they
    /// described this connection, which ends here.
    pub headers: HeaderMap,
    pub framing: Framing,
    /// Whether the connection can carry another request once this response has been read.
    pub keep_alive: bool,
}

/// Parses the response head at the start of `buf` and takes it out of `buf`. `Ok(None)`: the head
/// is not complete yet, read more. Interim responses (1xx but 101) come back like any other; the
/// caller skips them. `method` is the request's: a response to HEAD has no body.
pub fn parse_response_head(
    buf: &mut BytesMut,
    method: &Method,
) -> Result<Option<ResponseHead>, ProtocolError> {
    // Offsets of each field's name and value in the head, so that values can share the head's
    // bytes once it is split off `buf` (httparse's slices borrow `buf`).
    let mut spans = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS];
    let (len, status, version, reason, count) = {
        // Uninitialised: filling a hundred empty fields first showed in profiles.
        let mut fields = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut resp,
            buf,
            &mut fields,
        ) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
                return Err(ProtocolError::HeadTooLarge)
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(ProtocolError::TooManyHeaders),
            Err(e) => return Err(ProtocolError::MalformedHead(parse_error(e))),
        };
        if len > MAX_HEAD_BYTES {
            return Err(ProtocolError::HeadTooLarge);
        }
        let code = resp.code.ok_or(ProtocolError::MalformedHead("status"))?;
        let status =
            StatusCode::from_u16(code).map_err(|_| ProtocolError::MalformedHead("status"))?;
        let version = match resp.version {
            Some(0) => Version::HTTP_10,
            _ => Version::HTTP_11,
        };
        let reason = resp
            .reason
            .filter(|r| !r.is_empty() && Some(*r) != status.canonical_reason())
            .map(|r| offset_of(buf, r.as_bytes()));
        let base = buf.as_ptr() as usize;
        let count = resp.headers.len();
        for (span, h) in spans.iter_mut().zip(resp.headers.iter()) {
            *span = (
                (h.name.as_ptr() as usize - base) as u32,
                h.name.len() as u32,
                (h.value.as_ptr() as usize - base) as u32,
                h.value.len() as u32,
            );
        }
        (len, status, version, reason, count)
    };
    let head = buf.split_to(len).freeze();
    let reason = reason.map(|(at, n)| head.slice(at..at + n));

    let mut headers = HeaderMap::with_capacity(count);
    let mut close = false;
    let mut keep_alive_token = false;
    let mut listed: Vec<HeaderName> = Vec::new();
    let mut te_seen = false;
    let mut te_chunked = false;
    // `Some(None)`: present but invalid or conflicting.
    let mut length: Option<Option<u64>> = None;
    for &(n_at, n_len, v_at, v_len) in &spans[..count] {
        let name = &head[n_at as usize..(n_at + n_len) as usize];
        let value = head.slice(v_at as usize..(v_at + v_len) as usize);
        let name = match common_name(name) {
            Some(n) => n,
            None => HeaderName::from_bytes(name)
                .map_err(|_| ProtocolError::MalformedHead("field name"))?,
        };
        if name == header::CONNECTION {
            for token in value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive_token = true;
                } else if let Ok(n) = HeaderName::from_bytes(token) {
                    listed.push(n);
                }
            }
            continue;
        }
        if name == header::TRANSFER_ENCODING {
            te_seen = true;
            // Only the last coding says whether the body is chunked.
            if let Some(last) = value
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .next_back()
            {
                te_chunked = last.eq_ignore_ascii_case(b"chunked");
            }
            continue;
        }
        if crate::headers::is_hop_by_hop(name.as_str()) {
            continue;
        }
        let value = HeaderValue::from_maybe_shared(value)
            .map_err(|_| ProtocolError::MalformedHead("field value"))?;
        if name == header::CONTENT_LENGTH {
            let this = content_length(std::iter::once(&value));
            length = match length {
                None => Some(this),
                Some(before) if before == this => Some(this),
                Some(_) => Some(None),
            };
        }
        headers.append(name, value);
    }
    // A Content-Length named in Connection still delimits this body; it stays.
    for name in listed.into_iter().filter(|n| n != header::CONTENT_LENGTH) {
        headers.remove(name);
    }

    let mut keep_alive = match version {
        Version::HTTP_10 => keep_alive_token && !close,
        _ => !close,
    };
    let framing = if status == StatusCode::SWITCHING_PROTOCOLS
        || (*method == Method::CONNECT && status.is_success())
    {
        return Err(ProtocolError::Upgrade);
    } else if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::Empty
    } else if te_seen {
        if version == Version::HTTP_10 {
            return Err(ProtocolError::TransferEncodingInHttp10);
        }
        if headers.remove(header::CONTENT_LENGTH).is_some() {
            // Both framings at once: a smuggling attempt or a broken server. The body is read as
            // chunked (RFC 9112 §6.3), the length goes, and so does the connection.
            keep_alive = false;
        }
        if te_chunked {
            Framing::Chunked
        } else {
            keep_alive = false;
            Framing::UntilClose
        }
    } else if let Some(n) = length {
        Framing::Length(n.ok_or(ProtocolError::BadContentLength)?)
    } else {
        keep_alive = false;
        Framing::UntilClose
    };
    Ok(Some(ResponseHead {
        status,
        version,
        reason,
        headers,
        framing,
        keep_alive,
    }))
}

/// The fields nearly every answer carries, recognised by length and a case-blind compare:
/// `HeaderName::from_bytes` lower-cases every name into a scratch buffer first, which showed in
/// profiles at five or six names per answer.
fn common_name(raw: &[u8]) -> Option<HeaderName> {
    let (candidate, name) = match raw.len() {
        4 if raw[0] | 0x20 == b'e' => (&b"etag"[..], header::ETAG),
        4 => (&b"date"[..], header::DATE),
        6 => (&b"server"[..], header::SERVER),
        10 if raw[0] | 0x20 == b'c' => (&b"connection"[..], header::CONNECTION),
        10 => (&b"set-cookie"[..], header::SET_COOKIE),
        12 => (&b"content-type"[..], header::CONTENT_TYPE),
        13 if raw[0] | 0x20 == b'c' => (&b"cache-control"[..], header::CACHE_CONTROL),
        13 => (&b"last-modified"[..], header::LAST_MODIFIED),
        14 => (&b"content-length"[..], header::CONTENT_LENGTH),
        17 => (&b"transfer-encoding"[..], header::TRANSFER_ENCODING),
        _ => return None,
    };
    // Case-blind for letters only, without a branch per byte (`eq_ignore_ascii_case` cost more
    // than the parse it replaces).
    let diff = raw.iter().zip(candidate).fold(0u8, |acc, (&r, &c)| {
        let fold = if c.is_ascii_lowercase() { 0x20 } else { 0 };
        acc | ((r | fold) ^ c)
    });
    (diff == 0).then_some(name)
}

fn offset_of(buf: &[u8], part: &[u8]) -> (usize, usize) {
    (part.as_ptr() as usize - buf.as_ptr() as usize, part.len())
}

fn parse_error(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "field name",
        httparse::Error::HeaderValue => "field value",
        httparse::Error::NewLine => "line end",
        httparse::Error::Status => "status",
        httparse::Error::Token => "token",
        httparse::Error::Version => "version",
        _ => "syntax",
    }
}

/// The value of one or more `Content-Length` fields: digits only, and every value the same
/// (`5, 5` is one length; `5, 6` is none).
pub fn content_length<'a>(values: impl Iterator<Item = &'a HeaderValue>) -> Option<u64> {
    let mut found = None;
    for value in values {
        for part in value.as_bytes().split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let n = part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            match found {
                Some(f) if f != n => return None,
                _ => found = Some(n),
            }
        }
    }
    found
}

/// What a decoder made of the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// The body is complete.
    Done,
    /// Nothing can be decoded until more bytes arrive.
    NeedMore,
}

/// Decodes a chunked body incrementally, taking what it uses out of the buffer. Trailer fields
/// are checked for syntax and dropped: the gateway does not forward trailers.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a chunk-size line.
    #[default]
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer fields, then a blank line.
    Trailers,
    Done,
}

impl ChunkedDecoder {
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ProtocolError> {
        loop {
            match self.state {
                ChunkState::Done => return Ok(Decoded::Done),
                ChunkState::Size => {
                    let Some(lf) = buf.iter().take(MAX_CHUNK_LINE).position(|&b| b == b'\n') else {
                        return if buf.len() >= MAX_CHUNK_LINE {
                            Err(ProtocolError::BadChunk("size line too long"))
                        } else {
                            Ok(Decoded::NeedMore)
                        };
                    };
                    let size = parse_chunk_line(&buf[..=lf])?;
                    buf.advance(lf + 1);
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                    return Ok(Decoded::Data(buf.split_to(take).freeze()));
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ProtocolError::BadChunk("data not followed by CRLF"));
                    }
                    buf.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    if buf.len() >= 2 && &buf[..2] == b"\r\n" {
                        buf.advance(2);
                        self.state = ChunkState::Done;
                        continue;
                    }
                    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    match httparse::parse_headers(buf, &mut fields) {
                        Ok(httparse::Status::Complete((len, _))) => {
                            if !buf[..len].ends_with(b"\r\n\r\n") {
                                return Err(ProtocolError::BadChunk("trailer line end"));
                            }
                            buf.advance(len);
                            self.state = ChunkState::Done;
                        }
                        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
                            return Err(ProtocolError::BadChunk("trailers too long"))
                        }
                        Ok(httparse::Status::Partial) => return Ok(Decoded::NeedMore),
                        Err(_) => return Err(ProtocolError::BadChunk("trailer fields")),
                    }
                }
            }
        }
    }
}

/// The size in a chunk-size line (`1a;name=value\r\n`): hex digits, then optional extensions,
/// which are ignored but may not hold control bytes; the line ends in CRLF.
fn parse_chunk_line(line: &[u8]) -> Result<u64, ProtocolError> {
    let Some(line) = line.strip_suffix(b"\r\n") else {
        return Err(ProtocolError::BadChunk("size line not ended by CRLF"));
    };
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(ProtocolError::BadChunk("no chunk size"));
    }
    if digits > 16 {
        return Err(ProtocolError::BadChunk("chunk size too large"));
    }
    let size = line[..digits].iter().fold(0u64, |n, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => d - b'A' + 10,
        };
        (n << 4) | u64::from(v)
    });
    let rest = &line[digits..];
    let ext = rest.trim_ascii_start();
    if !ext.is_empty() && ext[0] != b';' {
        return Err(ProtocolError::BadChunk("junk after chunk size"));
    }
    if rest.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(ProtocolError::BadChunk("control byte in chunk extension"));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str, method: &Method) -> Result<Option<ResponseHead>, ProtocolError> {
        let mut buf = BytesMut::from(text.as_bytes());
        parse_response_head(&mut buf, method)
    }

    fn ok(text: &str) -> ResponseHead {
        head(text, &Method::GET).unwrap().unwrap()
    }

    #[test]
    fn a_plain_response_head() {
        let h = ok("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\nConnection: keep-alive\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n{\"ok\":true}\n");
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.framing, Framing::Length(12));
        assert!(h.keep_alive);
        assert!(h.reason.is_none());
        assert_eq!(h.headers["content-type"], "application/json");
        assert_eq!(h.headers.get_all("set-cookie").iter().count(), 2);
        assert!(!h.headers.contains_key("connection"));
    }

    #[test]
    fn the_head_is_taken_out_of_the_buffer() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\n"[..]);
        let h = parse_response_head(&mut buf, &Method::GET)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Empty);
        assert_eq!(&buf[..], b"HTTP/1.1 200 OK\r\n");
        assert_eq!(
            parse_response_head(&mut buf, &Method::GET)
                .unwrap()
                .map(|h| h.status),
            None
        );
    }

    #[test]
    fn hop_by_hop_and_connection_listed_fields_stay_behind() {
        let h = ok("HTTP/1.1 200 OK\r\nConnection: close, X-Internal\r\nKeep-Alive: timeout=5\r\nX-Internal: secret\r\nUpgrade: h2c\r\nProxy-Authenticate: Basic\r\nTrailer: x\r\nX-Kept: yes\r\nContent-Length: 0\r\n\r\n");
        assert!(!h.keep_alive);
        let mut names: Vec<&str> = h.headers.keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "x-kept"]);
    }

    #[test]
    fn keep_alive_by_version() {
        assert!(!ok("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
        assert!(
            ok("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n").keep_alive
        );
        assert!(
            !ok("HTTP/1.1 200 OK\r\nConnection: CLOSE\r\nContent-Length: 0\r\n\r\n").keep_alive
        );
    }

    #[test]
    fn body_framing_follows_rfc_9112() {
        assert_eq!(
            ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").framing,
            Framing::Chunked
        );
        assert_eq!(
            ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n").framing,
            Framing::Chunked
        );
        let h = ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        let h = ok("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        assert_eq!(
            ok("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n").framing,
            Framing::Empty
        );
        assert_eq!(
            ok("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n").framing,
            Framing::Empty
        );
        assert_eq!(ok("HTTP/1.1 100 Continue\r\n\r\n").framing, Framing::Empty);
        let h = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
            &Method::HEAD,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, Framing::Empty);
        assert_eq!(h.headers["content-length"], "10");
    }

    #[test]
    fn both_framings_keep_the_chunked_one_and_drop_the_connection() {
        let h = ok("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        assert!(!h.keep_alive);
        assert!(!h.headers.contains_key("content-length"));
    }

    #[test]
    fn lengths_must_agree() {
        assert_eq!(
            ok("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n").framing,
            Framing::Length(5)
        );
        for bad in [
            "5, 6",
            "-1",
            "+5",
            "0x10",
            "",
            "99999999999999999999",
            "5 5",
        ] {
            let text = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
            assert_eq!(
                head(&text, &Method::GET).unwrap_err(),
                ProtocolError::BadContentLength,
                "{bad}"
            );
        }
        let two = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
        assert_eq!(
            head(two, &Method::GET).unwrap_err(),
            ProtocolError::BadContentLength
        );
    }

    #[test]
    fn refused_heads() {
        let cases = [
            (
                "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                ProtocolError::TransferEncodingInHttp10,
            ),
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
                ProtocolError::Upgrade,
            ),
            (
                "HTTP/1.1 200 OK\r\nX: a\nb\r\n\r\n",
                ProtocolError::MalformedHead("field name"),
            ),
            (
                "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
                ProtocolError::MalformedHead("field name"),
            ),
            (
                "HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
                ProtocolError::MalformedHead("field name"),
            ),
            (
                "HTTP/1.1 20 OK\r\n\r\n",
                ProtocolError::MalformedHead("status"),
            ),
            (
                "HTTP/2.0 200 OK\r\n\r\n",
                ProtocolError::MalformedHead("version"),
            ),
            (
                "SSH-2.0-OpenSSH\r\n\r\n",
                ProtocolError::MalformedHead("version"),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(head(text, &Method::GET).unwrap_err(), want, "{text:?}");
        }
        let tunnel = head("HTTP/1.1 200 OK\r\n\r\n", &Method::CONNECT).unwrap_err();
        assert_eq!(tunnel, ProtocolError::Upgrade);
    }

    #[test]
    fn head_size_and_field_count_are_bounded() {
        let mut long = "HTTP/1.1 200 OK\r\nX-Big: ".to_string();
        long.push_str(&"a".repeat(MAX_HEAD_BYTES));
        assert_eq!(
            head(&long, &Method::GET).unwrap_err(),
            ProtocolError::HeadTooLarge
        );
        assert!(head(&long[..MAX_HEAD_BYTES], &Method::GET)
            .unwrap()
            .is_none());
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let text = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        assert_eq!(
            head(&text, &Method::GET).unwrap_err(),
            ProtocolError::TooManyHeaders
        );
    }

    #[test]
    fn common_names_are_the_names_http_would_make() {
        for name in [
            "Date",
            "ETag",
            "Server",
            "Connection",
            "Set-Cookie",
            "Content-Type",
            "Cache-Control",
            "Last-Modified",
            "CONTENT-LENGTH",
            "transfer-encoding",
            "Vary",
            "X-Date",
            "Datum",
            "Content-Typo",
            "content_length",
        ] {
            let want = HeaderName::from_bytes(name.as_bytes()).ok();
            let got = common_name(name.as_bytes());
            assert!(got.is_none() || got == want, "{name}");
        }
        assert_eq!(common_name(b"eTaG"), Some(header::ETAG));
        assert_eq!(common_name(b"DATE"), Some(header::DATE));
        assert_eq!(common_name(b"Vary"), None);
    }

    #[test]
    fn an_unusual_reason_phrase_is_kept() {
        assert_eq!(
            ok("HTTP/1.1 200 Fine\r\nContent-Length: 0\r\n\r\n")
                .reason
                .as_deref(),
            Some(&b"Fine"[..])
        );
        assert!(ok("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            .reason
            .is_none());
    }

    fn decode_all(input: &[u8], split: usize) -> Result<(Vec<u8>, bool), ProtocolError> {
        let mut dec = ChunkedDecoder::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in input.chunks(split.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match dec.decode(&mut buf)? {
                    Decoded::Data(d) => out.extend_from_slice(&d),
                    Decoded::Done => return Ok((out, buf.is_empty())),
                    Decoded::NeedMore => break,
                }
            }
        }
        Ok((out, false))
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_sizes() {
        let body = b"5\r\nhello\r\n7;name=\"v\"\r\n, world\r\n0\r\nX-Checksum: 1\r\n\r\n";
        for split in [1, 2, 3, 7, 100] {
            assert_eq!(
                decode_all(body, split).unwrap(),
                (b"hello, world".to_vec(), true),
                "{split}"
            );
        }
        assert_eq!(
            decode_all(b"A\r\n0123456789\r\n0\r\n\r\n", 4).unwrap().0,
            b"0123456789"
        );
    }

    #[test]
    fn chunked_bodies_are_strict() {
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"5;a\nb\r\nhello\r\n0\r\n\r\n",
            b"5;\x01\r\nhello\r\n0\r\n\r\n",
            b"x\r\n",
            b"5 6\r\nhello\r\n",
            b"11111111111111111\r\n",
            b"0\r\nBad Trailer\r\n\r\n",
        ] {
            assert!(
                decode_all(bad, 100).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(decode_all(&[b'1'; MAX_CHUNK_LINE + 1], 2000).is_err());
        // Incomplete is not an error, just not done.
        assert_eq!(
            decode_all(b"5\r\nhel", 100).unwrap(),
            (b"hel".to_vec(), false)
        );
    }

    #[test]
    fn request_framing_like_hyper() {
        let mut h = HeaderMap::new();
        assert_eq!(
            request_framing(&Method::GET, &mut h, true, Some(0)),
            Ok(Framing::Empty)
        );
        assert!(h.is_empty());
        assert_eq!(
            request_framing(&Method::POST, &mut h, false, Some(12)),
            Ok(Framing::Length(12))
        );
        assert_eq!(h["content-length"], "12");
        let mut h = HeaderMap::new();
        h.insert("transfer-encoding", HeaderValue::from_static("gzip"));
        assert_eq!(
            request_framing(&Method::POST, &mut h, false, None),
            Ok(Framing::Chunked)
        );
        assert_eq!(h["transfer-encoding"], "chunked");
        let mut h = HeaderMap::new();
        assert_eq!(
            request_framing(&Method::GET, &mut h, false, None),
            Ok(Framing::Empty)
        );
        h.insert("content-length", HeaderValue::from_static("3"));
        assert_eq!(
            request_framing(&Method::PUT, &mut h, false, None),
            Ok(Framing::Length(3))
        );
        assert!(request_framing(&Method::PUT, &mut h, false, Some(4)).is_err());
        assert!(request_framing(&Method::PUT, &mut h, true, Some(0)).is_err());
        assert!(request_framing(&Method::CONNECT, &mut HeaderMap::new(), true, None).is_err());
    }

    #[test]
    fn request_heads_are_written_in_lower_case() {
        let mut h = HeaderMap::new();
        h.insert("Host", HeaderValue::from_static("api.example"));
        h.append("X-Tag", HeaderValue::from_static("a"));
        h.append("X-Tag", HeaderValue::from_static("b"));
        let mut out = BytesMut::new();
        encode_request_head(&Method::POST, "/v1/orders?x=1", &h, &mut out);
        assert_eq!(
            &out[..],
            b"POST /v1/orders?x=1 HTTP/1.1\r\nhost: api.example\r\nx-tag: a\r\nx-tag: b\r\n\r\n"
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Head and chunked body as one comparable value, read in two pieces cut at `cut` (the same
    /// property as the `upstream_response` fuzz target).
    fn read(wire: &[u8], cut: usize) -> String {
        let cut = cut.min(wire.len());
        let mut buf = BytesMut::from(&wire[..cut]);
        let mut rest = &wire[cut..];
        let head = loop {
            match parse_response_head(&mut buf, &Method::GET) {
                Ok(Some(h)) if h.status.is_informational() => continue,
                Ok(Some(h)) => break h,
                Ok(None) if rest.is_empty() => return "incomplete".into(),
                Ok(None) => {
                    buf.extend_from_slice(rest);
                    rest = &[];
                }
                Err(_) => return "error".into(),
            }
        };
        let mut out = format!("{} {:?} {}", head.status, head.framing, head.keep_alive);
        if head.framing == Framing::Chunked {
            let mut dec = ChunkedDecoder::default();
            loop {
                match dec.decode(&mut buf) {
                    Ok(Decoded::Data(d)) => out.push_str(&String::from_utf8_lossy(&d)),
                    Ok(Decoded::Done) => break out.push_str(" done"),
                    Ok(Decoded::NeedMore) if rest.is_empty() => break out.push_str(" incomplete"),
                    Ok(Decoded::NeedMore) => {
                        buf.extend_from_slice(rest);
                        rest = &[];
                    }
                    Err(_) => break out.push_str(" error"),
                }
            }
        }
        out
    }

    fn chunked(pieces: &[String]) -> Vec<u8> {
        let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for p in pieces.iter().filter(|p| !p.is_empty()) {
            wire.extend_from_slice(format!("{:x}\r\n{p}\r\n", p.len()).as_bytes());
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        wire
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_bytes_read_the_same_wherever_the_reads_are_cut(
            wire in proptest::collection::vec(any::<u8>(), 0..300),
            cut in 0usize..300,
        ) {
            prop_assert_eq!(read(&wire, wire.len()), read(&wire, cut));
        }

        #[test]
        fn a_recognised_name_is_the_one_http_makes(
            base in prop::sample::select(vec![
                "date", "etag", "server", "connection", "set-cookie", "content-type",
                "cache-control", "last-modified", "content-length", "transfer-encoding", "vary",
                "expires", "location",
            ]),
            case in any::<u32>(),
            change in proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
        ) {
            // Any mix of cases, and sometimes one byte changed to anything.
            let mut raw: Vec<u8> = base
                .bytes()
                .enumerate()
                .map(|(i, b)| if case >> (i % 32) & 1 == 1 { b.to_ascii_uppercase() } else { b })
                .collect();
            if let Some((at, byte)) = change {
                let i = at.index(raw.len());
                raw[i] = byte;
            }
            if let Some(n) = common_name(&raw) {
                prop_assert_eq!(Some(n), HeaderName::from_bytes(&raw).ok());
            } else {
                prop_assert!(change.is_some() || ["vary", "expires", "location"].contains(&base));
            }
        }

        #[test]
        fn chunked_bodies_round_trip_whatever_the_cut(
            pieces in proptest::collection::vec("[a-z0-9 ]{0,40}", 0..6),
            cut in 0usize..400,
        ) {
            let wire = chunked(&pieces);
            let want = format!("200 OK Chunked true{} done", pieces.concat());
            prop_assert_eq!(read(&wire, cut), want);
        }

        #[test]
        fn damaged_chunk_framing_never_passes_as_complete(
            pieces in proptest::collection::vec("[a-z]{1,20}", 1..5),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let wire = chunked(&pieces);
            // Where the framing bytes are: size lines and the CRLF after each chunk's data.
            let mut framing = Vec::new();
            let mut i = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            for p in &pieces {
                let line = format!("{:x}\r\n", p.len()).len();
                framing.extend(i..i + line);
                framing.extend(i + line + p.len()..i + line + p.len() + 2);
                i += line + p.len() + 2;
            }
            framing.extend(i..wire.len());
            let at = framing[at.index(framing.len())];
            // Another hex digit is another (valid) size: not damage to the framing's shape.
            prop_assume!(wire[at] != byte && !(wire[at].is_ascii_hexdigit() && byte.is_ascii_hexdigit()));
            let mut damaged = wire.clone();
            damaged[at] = byte;
            let got = read(&damaged, damaged.len());
            prop_assert!(!got.ends_with(" done"), "{:?} -> {}", String::from_utf8_lossy(&damaged), got);
        }
    }
}
