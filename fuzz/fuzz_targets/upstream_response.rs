//! Any bytes as an upstream's answer, read in two pieces cut anywhere: the gateway's HTTP/1.1
//! parser never panics, and what it makes of the answer (head, framing, body, errors) does not
//! depend on where the reads were cut.
#![no_main]
use bytes::BytesMut;
use http::Method;
use libfuzzer_sys::fuzz_target;
use warden_gateway::upstream::h1::{self, ChunkedDecoder, Decoded, Framing};

/// Status, framing, reuse, fields and chunked body, or the error, as one comparable value.
fn read(wire: &[u8], method: &Method, cut: usize) -> String {
    let cut = cut.min(wire.len());
    let mut buf = BytesMut::from(&wire[..cut]);
    let mut rest = &wire[cut..];
    let head = loop {
        match h1::parse_response_head(&mut buf, method) {
            Ok(Some(h)) if h.status.is_informational() => continue,
            Ok(Some(h)) => break h,
            Ok(None) if rest.is_empty() => return "incomplete head".into(),
            Ok(None) => {
                buf.extend_from_slice(rest);
                rest = &[];
            }
            // Which error can depend on how much was there to read; that there is one cannot.
            Err(_) => return "error".into(),
        }
    };
    for v in head.headers.values() {
        assert!(!v.as_bytes().iter().any(|&b| b == b'\r' || b == b'\n'));
    }
    let mut out = format!(
        "{} {:?} {} {:?}",
        head.status, head.framing, head.keep_alive, head.headers
    );
    if head.framing == Framing::Chunked {
        let mut dec = ChunkedDecoder::default();
        let mut body = Vec::new();
        loop {
            match dec.decode(&mut buf) {
                Ok(Decoded::Data(d)) => body.extend_from_slice(&d),
                Ok(Decoded::Done) => break,
                Ok(Decoded::NeedMore) if rest.is_empty() => {
                    out.push_str(" incomplete");
                    break;
                }
                Ok(Decoded::NeedMore) => {
                    buf.extend_from_slice(rest);
                    rest = &[];
                }
                Err(_) => {
                    out.push_str(" error");
                    break;
                }
            }
        }
        out.push_str(&format!(" {body:?}"));
    }
    out
}

fuzz_target!(|input: (bool, u16, &[u8])| {
    let (head, cut, wire) = input;
    let method = if head { Method::HEAD } else { Method::GET };
    let whole = read(wire, &method, wire.len());
    let split = read(wire, &method, cut as usize);
    assert_eq!(whole, split);
});
