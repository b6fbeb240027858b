//! Body plumbing: one boxed body type for everything the gateway sends, a request body that enforces
//! the size limit while streaming, and a response body that reports when it is done (for the log
//! phase, metrics and, later, the audit trail).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type GatewayBody = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> GatewayBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> GatewayBody {
    full(Bytes::new())
}

#[derive(Debug, thiserror::Error)]
#[error("request body exceeds the limit of {limit} bytes")]
pub struct BodyTooLarge {
    pub limit: u64,
}

/// Counters shared between a streaming body and the request handler.
#[derive(Debug, Default)]
pub struct BodyStats {
    pub bytes: AtomicU64,
    pub too_large: AtomicBool,
}

pin_project_lite::pin_project! {
    /// Streams a request body through while counting it; errors (and flags `too_large`) as soon as it
    /// passes `limit`, so a chunked upload without Content-Length cannot exceed the limit either.
    pub struct LimitedBody<B> {
        #[pin]
        inner: B,
        limit: u64,
        stats: Arc<BodyStats>,
    }
}

impl<B> LimitedBody<B> {
    pub fn new(inner: B, limit: u64, stats: Arc<BodyStats>) -> Self {
        LimitedBody {
            inner,
            limit,
            stats,
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let total = this
                        .stats
                        .bytes
                        .fetch_add(data.len() as u64, Ordering::Relaxed)
                        + data.len() as u64;
                    if total > *this.limit {
                        this.stats.too_large.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge {
                            limit: *this.limit,
                        }))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            other => other.map(|_| None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// Counts the bytes of a response body and calls `on_done` exactly once: when the body ends, or
    /// when it is dropped early (client gone, upstream reset). Dropping is the only signal hyper
    /// gives for an aborted response, so the log phase hangs off `Drop`.
    pub struct CompletionBody<B> {
        #[pin]
        inner: B,
        bytes: u64,
        ended: bool,
        on_done: Option<Box<dyn FnOnce(u64, bool) + Send>>,
    }

    impl<B> PinnedDrop for CompletionBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(done) = this.on_done.take() {
                done(*this.bytes, *this.ended);
            }
        }
    }
}

impl<B> CompletionBody<B> {
    pub fn new(inner: B, on_done: impl FnOnce(u64, bool) + Send + 'static) -> Self {
        CompletionBody {
            inner,
            bytes: 0,
            ended: false,
            on_done: Some(Box::new(on_done)),
        }
    }
}

impl<B> Body for CompletionBody<B>
where
    B: Body<Data = Bytes, Error = BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    *this.bytes += d.len() as u64;
                }
                // hyper stops polling once a body says it has ended, so the last frame is the
                // only chance to see a sized body complete.
                if this.inner.is_end_stream() {
                    *this.ended = true;
                    if let Some(done) = this.on_done.take() {
                        done(*this.bytes, true);
                    }
                }
            }
            Poll::Ready(None) => {
                *this.ended = true;
                if let Some(done) = this.on_done.take() {
                    done(*this.bytes, true);
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body read up to a limit: whole, or the part read so far and the rest unread.
pub enum Collected {
    Whole(Bytes),
    Partial(Bytes, GatewayBody),
}

/// Reads `body` until it ends or passes `limit` bytes. Trailers are dropped: the upstreams are
/// HTTP/1.1 and the gateway never forwards them.
pub async fn collect_up_to(mut body: GatewayBody, limit: u64) -> Result<Collected, BoxError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        if buf.len() as u64 > limit {
            return Ok(Collected::Partial(buf.freeze(), body));
        }
    }
    Ok(Collected::Whole(buf.freeze()))
}

/// `first`, then whatever `rest` still yields.
pub fn chain(first: Bytes, rest: GatewayBody) -> GatewayBody {
    Chain {
        first: Some(first),
        rest,
    }
    .boxed_unsync()
}

struct Chain {
    first: Option<Bytes>,
    rest: GatewayBody,
}

impl Body for Chain {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn collect_up_to_reads_whole_or_hands_back_the_rest() {
        let small = Chunks(vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cd")].into());
        match collect_up_to(small.boxed_unsync(), 4).await.unwrap() {
            Collected::Whole(b) => assert_eq!(&b[..], b"abcd"),
            Collected::Partial(..) => panic!("within the limit"),
        }
        let big = Chunks(
            vec![
                Bytes::from_static(b"abc"),
                Bytes::from_static(b"def"),
                Bytes::from_static(b"gh"),
            ]
            .into(),
        );
        match collect_up_to(big.boxed_unsync(), 4).await.unwrap() {
            Collected::Partial(prefix, rest) => {
                let all = chain(prefix, rest).collect().await.unwrap().to_bytes();
                assert_eq!(&all[..], b"abcdefgh");
            }
            Collected::Whole(_) => panic!("over the limit"),
        }
    }

    #[tokio::test]
    async fn limited_body_errors_past_limit_without_length() {
        let body = Chunks(vec![Bytes::from(vec![0u8; 600]); 2].into());
        let stats = Arc::new(BodyStats::default());
        let res = LimitedBody::new(body, 1000, stats.clone()).collect().await;
        assert!(res.is_err());
        assert!(stats.too_large.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn completion_fires_once_on_end_and_counts() {
        let (tx, rx) = std::sync::mpsc::channel();
        let body = CompletionBody::new(full(Bytes::from_static(b"hello")), move |n, done| {
            tx.send((n, done)).unwrap()
        });
        let _ = body.collect().await.unwrap();
        assert_eq!(rx.recv().unwrap(), (5, true));
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn completion_fires_on_early_drop() {
        let (tx, rx) = std::sync::mpsc::channel();
        drop(CompletionBody::new(
            full(Bytes::from_static(b"x")),
            move |n, done| tx.send((n, done)).unwrap(),
        ));
        assert_eq!(rx.recv().unwrap(), (0, false));
    }

    /// Yields its chunks one frame at a time, with no length known in advance (like chunked uploads).
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }
}
