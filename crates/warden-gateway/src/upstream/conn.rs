//! One HTTP/1.1 exchange with an upstream, driven inside the request's own task.
//!
//! hyper's client runs each connection as a task of its own and reaches it through a channel, a
//! oneshot and a body channel: two task wake-ups and several allocations per proxied request, for
//! a connection that only ever carries one exchange at a time. Here the request's task writes the
//! head, streams the body, reads the answer and hands the connection back to its worker's pool
//! itself (`bench/README.md` has the before and after). The wire format is in `h1`.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, Response};
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tokio_util::io::poll_read_buf;

use super::h1::{self, ChunkedDecoder, Decoded, Framing, ProtocolError, ResponseHead};
use super::Pool;
use crate::body::{BoxError, GatewayBody};

/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 16 * 1024;
/// The request body is pulled from the client only while less than this waits to be written.
const HIGH_WATER: usize = 64 * 1024;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("upstream connection: {0}")]
    Io(#[from] io::Error),
    #[error("upstream closed the connection before answering")]
    ClosedBeforeAnswer,
    #[error("upstream closed the connection before the body was complete")]
    IncompleteBody,
    /// The request body could not be read (a client error, or over its limit).
    #[error("request body: {0}")]
    RequestBody(BoxError),
    #[error("no answer within the read timeout")]
    Timeout,
}

/// A connection to an upstream, idle or in use, with what has been read but not yet used.
pub struct Conn {
    io: TcpStream,
    rbuf: BytesMut,
    /// The read timeout of the exchange in progress. One timer for the connection's life, moved
    /// forward by each exchange: a later deadline only updates the registered entry, where a new
    /// timer per request cost a registration and a removal in the runtime's wheel each time.
    deadline: Pin<Box<Sleep>>,
}

impl Conn {
    pub fn new(io: TcpStream) -> Conn {
        Conn {
            io,
            rbuf: BytesMut::new(),
            deadline: Box::pin(tokio::time::sleep(Duration::from_secs(86_400))),
        }
    }

    /// Whether an idle connection can carry a request: the server has neither closed it nor sent
    /// anything unasked. Costs no system call unless the socket has signalled something since it
    /// was last read to the end.
    pub fn is_usable(&mut self) -> bool {
        if !self.rbuf.is_empty() {
            return false;
        }
        self.rbuf.reserve(64);
        let mut cx = Context::from_waker(Waker::noop());
        // Pending: nothing to read. Anything else (an end of stream, bytes nobody asked for, an
        // error) makes the connection unusable.
        poll_read_buf(Pin::new(&mut self.io), &mut cx, &mut self.rbuf).is_pending()
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.rbuf.capacity() - self.rbuf.len() < 1024 {
            self.rbuf.reserve(READ_CHUNK);
        }
        poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf)
    }
}

/// The request side of an exchange: encoded bytes waiting to be written, and the rest of the body.
struct Outgoing {
    /// The request head until written; kept apart from `queue` so that a request without a body
    /// allocates no queue.
    head: Bytes,
    queue: VecDeque<Bytes>,
    queued: usize,
    body: Option<GatewayBody>,
    framing: BodyOut,
    /// Everything is queued, the end of a chunked body included.
    finished: bool,
}

#[derive(Clone, Copy)]
enum BodyOut {
    /// This many bytes still to come from the body.
    Length(u64),
    Chunked,
}

enum SendError {
    /// The body failed or broke its framing: the request cannot be completed.
    Body(BoxError),
    /// Writing failed: the upstream may still have answered.
    Io(io::Error),
}

const CRLF: Bytes = Bytes::from_static(b"\r\n");

impl Outgoing {
    fn push(&mut self, b: Bytes) {
        self.queued += b.len();
        self.queue.push_back(b);
    }

    fn push_data(&mut self, data: Bytes) -> Result<(), SendError> {
        if data.is_empty() {
            return Ok(());
        }
        match &mut self.framing {
            BodyOut::Length(left) => {
                let n = data.len() as u64;
                if n > *left {
                    return Err(SendError::Body(
                        "request body longer than its Content-Length".into(),
                    ));
                }
                *left -= n;
                self.push(data);
            }
            BodyOut::Chunked => {
                self.push(h1::chunk_size_line(data.len()));
                self.push(data);
                self.push(CRLF);
            }
        }
        Ok(())
    }

    fn end_body(&mut self) -> Result<(), SendError> {
        match self.framing {
            BodyOut::Length(0) => {}
            BodyOut::Length(_) => {
                return Err(SendError::Body(
                    "request body shorter than its Content-Length".into(),
                ))
            }
            BodyOut::Chunked => self.push(Bytes::from_static(h1::LAST_CHUNK)),
        }
        self.body = None;
        self.finished = true;
        Ok(())
    }

    /// Pulls body frames while there is room, and writes what is queued. `Ready(Ok)`: the whole
    /// request has been written.
    fn poll_send(
        &mut self,
        io: &mut TcpStream,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), SendError>> {
        loop {
            while !self.finished && self.queued < HIGH_WATER {
                let Some(body) = self.body.as_mut() else {
                    self.end_body()?;
                    break;
                };
                match Pin::new(&mut *body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        let end = body.is_end_stream();
                        // Trailers are dropped: the gateway does not forward them.
                        if let Ok(data) = frame.into_data() {
                            self.push_data(data)?;
                        }
                        if end {
                            self.end_body()?;
                        }
                    }
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(SendError::Body(e))),
                    Poll::Ready(None) => self.end_body()?,
                    Poll::Pending => break,
                }
            }
            if self.queued == 0 {
                return if self.finished {
                    Poll::Ready(Ok(()))
                } else {
                    Poll::Pending
                };
            }
            let mut slices = [IoSlice::new(&[]); 8];
            let pending = std::iter::once(&self.head)
                .filter(|h| !h.is_empty())
                .chain(self.queue.iter());
            let mut n = 0;
            for (slice, b) in slices.iter_mut().zip(pending) {
                *slice = IoSlice::new(b);
                n += 1;
            }
            match ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n])) {
                Ok(0) => return Poll::Ready(Err(SendError::Io(io::ErrorKind::WriteZero.into()))),
                Ok(mut written) => {
                    self.queued -= written;
                    let from_head = written.min(self.head.len());
                    self.head.advance(from_head);
                    written -= from_head;
                    while written > 0 {
                        let front = self.queue.front_mut().expect("written bytes were queued");
                        if written >= front.len() {
                            written -= front.len();
                            self.queue.pop_front();
                        } else {
                            front.advance(written);
                            written = 0;
                        }
                    }
                }
                Err(e) => return Poll::Ready(Err(SendError::Io(e))),
            }
        }
    }
}

/// An exchange in progress: the connection, the request still being written, and what the
/// request's method means for the answer.
pub struct Exchange {
    conn: Conn,
    out: Outgoing,
    /// Writing is over: finished, or failed (then the connection is not reused).
    write_done: bool,
    write_error: Option<io::Error>,
    method: Method,
    /// How much of `rbuf` has been searched for the end of the head.
    scanned: usize,
}

impl Exchange {
    /// Starts an exchange: `head` is the encoded request head, `body` goes out as `framing` says.
    pub fn new(
        mut conn: Conn,
        method: &Method,
        head: Bytes,
        body: GatewayBody,
        framing: Framing,
        read_timeout: Duration,
    ) -> Exchange {
        conn.deadline
            .as_mut()
            .reset(tokio::time::Instant::now() + read_timeout);
        let (framing, finished, body) = match framing {
            Framing::Length(n) => (BodyOut::Length(n), false, Some(body)),
            Framing::Chunked => (BodyOut::Chunked, false, Some(body)),
            // Unframed: nothing is read from the body (a GET's stray body is not sent, as hyper
            // does not send it).
            Framing::Empty | Framing::UntilClose => (BodyOut::Length(0), true, None),
        };
        let out = Outgoing {
            queued: head.len(),
            head,
            queue: VecDeque::new(),
            body,
            framing,
            finished,
        };
        Exchange {
            conn,
            out,
            write_done: false,
            write_error: None,
            method: method.clone(),
            scanned: 0,
        }
    }

    /// Drives the request side. A write error is kept: the upstream may have answered before it
    /// stopped reading (a 413 to a large upload), and that answer is worth more than the error.
    fn poll_write_side(&mut self, cx: &mut Context<'_>) -> Result<(), ExchangeError> {
        if self.write_done {
            return Ok(());
        }
        match self.out.poll_send(&mut self.conn.io, cx) {
            Poll::Ready(Ok(())) => self.write_done = true,
            Poll::Ready(Err(SendError::Io(e))) => {
                self.write_done = true;
                self.write_error = Some(e);
            }
            Poll::Ready(Err(SendError::Body(e))) => return Err(ExchangeError::RequestBody(e)),
            Poll::Pending => {}
        }
        Ok(())
    }

    /// Writes the request (as far as the socket and the body allow) and reads until a final
    /// response head has arrived; interim (1xx) responses are skipped.
    pub fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Result<ResponseHead, ExchangeError>> {
        self.poll_write_side(cx)?;
        loop {
            if head_may_be_complete(&self.conn.rbuf, self.scanned) {
                if let Some(head) = h1::parse_response_head(&mut self.conn.rbuf, &self.method)? {
                    self.scanned = 0;
                    if head.status.is_informational() {
                        continue;
                    }
                    return Poll::Ready(Ok(head));
                }
            }
            self.scanned = self.conn.rbuf.len();
            let read = match self.conn.poll_fill(cx) {
                Poll::Ready(read) => read,
                Poll::Pending if self.conn.deadline.as_mut().poll(cx).is_ready() => {
                    return Poll::Ready(Err(ExchangeError::Timeout))
                }
                Poll::Pending => return Poll::Pending,
            };
            match read {
                Ok(0) => {
                    return Poll::Ready(Err(match self.write_error.take() {
                        Some(e) => ExchangeError::Io(e),
                        None => ExchangeError::ClosedBeforeAnswer,
                    }))
                }
                Ok(_) => {}
                Err(e) => return Poll::Ready(Err(ExchangeError::Io(e))),
            }
        }
    }

    /// The response for `head`, its body read from this exchange; the connection goes back to
    /// `pool` (target `t`) once that body has been read to its end, if it can carry another request.
    pub fn into_response(
        self,
        head: ResponseHead,
        pool: Arc<Pool>,
        t: usize,
    ) -> Response<GatewayBody> {
        let decoder = match head.framing {
            Framing::Empty | Framing::Length(0) => Decoder::Length(0),
            Framing::Length(n) => Decoder::Length(n),
            Framing::Chunked => Decoder::Chunked(ChunkedDecoder::default()),
            Framing::UntilClose => Decoder::UntilClose,
        };
        let mut body = ResponseBody {
            ex: Some(Box::new(self)),
            decoder,
            keep_alive: head.keep_alive,
            pool: Some((pool, t)),
        };
        if body.decoder.is_complete() {
            body.finish();
        }
        let mut resp = Response::new(GatewayBody::new(body));
        *resp.status_mut() = head.status;
        *resp.version_mut() = head.version;
        *resp.headers_mut() = head.headers;
        if let Some(reason) = head
            .reason
            .and_then(|r| hyper::ext::ReasonPhrase::try_from(r).ok())
        {
            resp.extensions_mut().insert(reason);
        }
        resp
    }
}

/// Whether the bytes from `from` on (with three before, for a blank line split across reads) may
/// end a response head. Parsing is skipped otherwise, so a head trickled in a byte at a time is not
/// parsed again from its start on every read.
fn head_may_be_complete(buf: &[u8], from: usize) -> bool {
    let start = from.saturating_sub(3).min(buf.len());
    memchr::memchr_iter(b'\n', &buf[start..]).any(|i| {
        let after = &buf[start + i + 1..];
        after.first() == Some(&b'\n') || after.starts_with(b"\r\n")
    })
}

enum Decoder {
    /// This many bytes still to come.
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

impl Decoder {
    /// The next piece of body in `rbuf`, taken out of it.
    fn decode(&mut self, rbuf: &mut BytesMut) -> Result<Decoded, ProtocolError> {
        Ok(match self {
            Decoder::Length(0) => Decoded::Done,
            Decoder::Length(_) | Decoder::UntilClose if rbuf.is_empty() => Decoded::NeedMore,
            Decoder::Length(left) => {
                let take = usize::try_from(*left).unwrap_or(usize::MAX).min(rbuf.len());
                *left -= take as u64;
                Decoded::Data(rbuf.split_to(take).freeze())
            }
            Decoder::Chunked(c) => c.decode(rbuf)?,
            Decoder::UntilClose => Decoded::Data(rbuf.split().freeze()),
        })
    }

    fn is_complete(&self) -> bool {
        match self {
            Decoder::Length(n) => *n == 0,
            Decoder::Chunked(c) => c.is_done(),
            Decoder::UntilClose => false,
        }
    }
}

/// A response body read straight off the upstream connection.
struct ResponseBody {
    /// `None` once the body has ended (the connection pooled or closed).
    ex: Option<Box<Exchange>>,
    decoder: Decoder,
    keep_alive: bool,
    pool: Option<(Arc<Pool>, usize)>,
}

impl ResponseBody {
    /// The body has been read to its end: the connection goes back to the pool if it is clean (the
    /// request fully written, the message delimited, nothing unasked read after it).
    fn finish(&mut self) {
        let Some(ex) = self.ex.take() else { return };
        let reusable = self.keep_alive
            && ex.write_done
            && ex.write_error.is_none()
            && ex.out.finished
            && ex.out.queued == 0
            && ex.conn.rbuf.is_empty()
            && !matches!(self.decoder, Decoder::UntilClose);
        if reusable {
            if let Some((pool, t)) = self.pool.take() {
                pool.put(t, ex.conn);
            }
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let Some(ex) = this.ex.as_mut() else {
            return Poll::Ready(None);
        };
        // An upstream that answers before reading the whole request still gets the rest of it
        // (a streaming echo); if that fails, the answer goes on and the connection is not reused.
        if ex.poll_write_side(cx).is_err() {
            ex.write_done = true;
            this.keep_alive = false;
        }
        loop {
            let ex = this.ex.as_mut().expect("the body has not ended");
            match this.decoder.decode(&mut ex.conn.rbuf) {
                Ok(Decoded::Data(data)) => {
                    if this.decoder.is_complete() {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Decoded::Done) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(Decoded::NeedMore) => {}
                Err(e) => {
                    this.ex = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
            let read = ready!(ex.conn.poll_fill(cx));
            match read {
                Ok(0) if matches!(this.decoder, Decoder::UntilClose) => {
                    this.ex = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.ex = None;
                    return Poll::Ready(Some(Err(ExchangeError::IncompleteBody.into())));
                }
                Ok(_) => {}
                Err(e) => {
                    this.ex = None;
                    return Poll::Ready(Some(Err(ExchangeError::Io(e).into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ex.is_none() || self.decoder.is_complete()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder {
            Decoder::Length(n) => SizeHint::with_exact(n),
            _ if self.ex.is_none() => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::head_may_be_complete;

    #[test]
    fn a_blank_line_is_found_across_reads() {
        let head = b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody";
        assert!(head_may_be_complete(head, 0));
        assert!(!head_may_be_complete(&head[..20], 0));
        for cut in 17..head.len() {
            // The part before `cut` was searched on an earlier read.
            assert!(head_may_be_complete(head, cut.min(25)), "{cut}");
        }
        assert!(head_may_be_complete(b"HTTP/1.0 200 OK\n\n", 15));
        assert!(!head_may_be_complete(b"HTTP/1.1 200 OK\r\nA: b\r\n", 0));
    }
}
