//! The one body type the gateway passes around ([`GatewayBody`]: streamed, boxed), its
//! constructors, [`IdleTimeoutBody`], which fails a body whose next frame is too slow to
//! come (`limits.idle_timeout` between body reads), [`Watched`], which remembers how a
//! client's body failed ([`BodyFault`]) so that a failed exchange is blamed on the right side,
//! [`CountedBody`], which counts bytes, and [`LimitedBody`], which fails a body that grows past
//! a route's `max_body_bytes` before the frame that would cross it is passed on.
//!
//! Bodies are never collected here: frames go through as they arrive.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use pin_project_lite::pin_project;
use tokio::time::Sleep;

/// Any error a body can fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streamed request or response body, as the gateway passes it between client and upstream.
pub type GatewayBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

pin_project! {
    /// Wraps a body and fails it with [`IdleTimeout`] when no frame arrives within `timeout`
    /// of the first read or of the previous frame. The clock starts at the first poll, so a
    /// body that waits its turn (the upstream is still connecting) is not timed out early.
    pub struct IdleTimeoutBody<B> {
        #[pin]
        inner: B,
        #[pin]
        sleep: Sleep,
        timeout: Duration,
        armed: bool,
        failed: bool,
    }
}

pin_project! {
    /// A client's request body, passed through unchanged, that records its first failure
    /// where the [`BodyWatch`] made with it can read it.
    pub struct Watched<B> {
        #[pin]
        inner: B,
        fault: Arc<OnceLock<BodyFault>>,
    }
}

pin_project! {
    /// Wraps a body and adds the length of each data frame it yields to a shared counter (the
    /// access log's `bytes_in`, read on another task); without a counter it only passes frames.
    pub struct CountedBody<B> {
        #[pin]
        inner: B,
        count: Option<Arc<AtomicU64>>,
    }
}

pin_project! {
    /// Wraps a client's body and fails it with [`BodyTooLarge`] instead of passing on the data
    /// frame that would take it past `limit` bytes: what follows it never sees more than
    /// `limit` bytes, nor the body's end. Frames are passed as they come, never held.
    pub struct LimitedBody<B> {
        #[pin]
        inner: B,
        limit: u64,
        seen: u64,
    }
}

/// How a client's request body failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFault {
    /// Its framing is malformed (a bad chunk size) or it ended before its declared end.
    Broken,
    /// No data for `idle_timeout` ([`IdleTimeout`]).
    TimedOut,
    /// It grew past the route's `max_body_bytes` ([`BodyTooLarge`]).
    TooLarge,
}

/// The error of a [`LimitedBody`] that grew past its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyTooLarge {
    /// The limit, in bytes.
    pub limit: u64,
}

/// Reads what the [`Watched`] body made with it recorded.
#[derive(Clone, Debug)]
pub struct BodyWatch(Arc<OnceLock<BodyFault>>);

/// The error of an [`IdleTimeoutBody`] whose peer went quiet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleTimeout {
    /// The allowed gap between frames.
    pub after: Duration,
}

// === impl GatewayBody helpers ===

/// A body of `bytes`, sent whole.
pub fn full(bytes: impl Into<Bytes>) -> GatewayBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> GatewayBody {
    http_body_util::Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Boxes any body of `Bytes` (hyper's `Incoming`, a wrapped body, ...) as a [`GatewayBody`].
pub fn boxed<B>(b: B) -> GatewayBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    b.map_err(Into::into).boxed_unsync()
}

// === impl Watched ===

/// Wraps `inner`, a client's body, and returns the watch that tells whether (and how) it
/// failed.
pub fn watched<B>(inner: B) -> (Watched<B>, BodyWatch) {
    let fault = Arc::new(OnceLock::new());
    let watch = BodyWatch(Arc::clone(&fault));
    (Watched { inner, fault }, watch)
}

impl<B> Body for Watched<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Err(e))) => {
                let e: BoxError = e.into();
                let fault = if e.downcast_ref::<IdleTimeout>().is_some() {
                    BodyFault::TimedOut
                } else if e.downcast_ref::<BodyTooLarge>().is_some() {
                    BodyFault::TooLarge
                } else {
                    BodyFault::Broken
                };
                let _ = this.fault.set(fault);
                Poll::Ready(Some(Err(e)))
            }
            other => other.map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// === impl BodyWatch ===

impl BodyWatch {
    /// How the body failed, if it did (so far).
    pub fn fault(&self) -> Option<BodyFault> {
        self.0.get().copied()
    }
}

// === impl IdleTimeoutBody ===

impl<B> IdleTimeoutBody<B> {
    /// Wraps `inner`: at most `timeout` may pass between frames.
    pub fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner,
            sleep: tokio::time::sleep(timeout),
            timeout,
            armed: false,
            failed: false,
        }
    }
}

impl<B> Body for IdleTimeoutBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        if *this.failed {
            return Poll::Ready(None);
        }
        if !*this.armed {
            *this.armed = true;
            this.sleep
                .as_mut()
                .reset(tokio::time::Instant::now() + *this.timeout);
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.sleep
                    .as_mut()
                    .reset(tokio::time::Instant::now() + *this.timeout);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.sleep.poll(cx) {
                Poll::Ready(()) => {
                    *this.failed = true;
                    Poll::Ready(Some(Err(Box::new(IdleTimeout {
                        after: *this.timeout,
                    }))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// === impl CountedBody ===

impl<B> CountedBody<B> {
    /// Wraps `inner`, counting into `count` when given.
    pub fn new(inner: B, count: Option<Arc<AtomicU64>>) -> Self {
        Self { inner, count }
    }
}

impl<B: Body> Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if let (Some(count), Some(Ok(f))) = (this.count.as_ref(), &frame) {
            if let Some(data) = f.data_ref() {
                count.fetch_add(data.remaining() as u64, Ordering::Relaxed);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// === impl LimitedBody ===

impl<B> LimitedBody<B> {
    /// Wraps `inner`: at most `limit` bytes of data pass.
    pub fn new(inner: B, limit: u64) -> Self {
        Self {
            inner,
            limit,
            seen: 0,
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        match std::task::ready!(this.inner.poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    *this.seen = this.seen.saturating_add(data.remaining() as u64);
                    if *this.seen > *this.limit {
                        let limit = *this.limit;
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge { limit }))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(e.into()))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// === impl BodyTooLarge ===

impl std::fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body is over {} bytes (max_body_bytes)",
            self.limit
        )
    }
}

impl std::error::Error for BodyTooLarge {}

// === impl IdleTimeout ===

impl std::fmt::Display for IdleTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no body data for {:?} (idle_timeout)", self.after)
    }
}

impl std::error::Error for IdleTimeout {}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests
mod tests {
    use tokio::sync::mpsc;

    use super::*;

    /// A body fed by hand: each message is one data frame; dropping the sender ends it.
    struct ChannelBody(mpsc::Receiver<Bytes>);

    impl Body for ChannelBody {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            self.0.poll_recv(cx).map(|m| m.map(|b| Ok(Frame::data(b))))
        }
    }

    fn channel_body() -> (mpsc::Sender<Bytes>, ChannelBody) {
        let (tx, rx) = mpsc::channel(4);
        (tx, ChannelBody(rx))
    }

    #[tokio::test]
    async fn full_and_empty_bodies_carry_their_bytes() {
        let b = full("hello").collect().await.unwrap().to_bytes();
        assert_eq!(&b[..], b"hello");
        assert!(empty().is_end_stream());
        let b = boxed(Full::new(Bytes::from_static(b"x")))
            .collect()
            .await
            .unwrap();
        assert_eq!(&b.to_bytes()[..], b"x");
    }

    #[tokio::test]
    async fn frames_arriving_within_the_timeout_pass_through() {
        let (tx, body) = channel_body();
        let body = IdleTimeoutBody::new(body, Duration::from_millis(600));
        let feeder = tokio::spawn(async move {
            for _ in 0..5 {
                // Each gap is well under the timeout; together they exceed it.
                tokio::time::sleep(Duration::from_millis(150)).await;
                tx.send(Bytes::from_static(b"ab")).await.unwrap();
            }
        });
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected.len(), 10);
        feeder.await.unwrap();
    }

    #[tokio::test]
    async fn a_gap_longer_than_the_timeout_fails_the_body() {
        let (tx, body) = channel_body();
        let body = IdleTimeoutBody::new(body, Duration::from_millis(200));
        let feeder = tokio::spawn(async move {
            tx.send(Bytes::from_static(b"ab")).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let _ = tx.send(Bytes::from_static(b"late")).await;
        });
        let Err(err) = body.collect().await else {
            panic!("an idle body must fail")
        };
        let idle = err.downcast_ref::<IdleTimeout>().expect("an IdleTimeout");
        assert_eq!(idle.after, Duration::from_millis(200));
        feeder.await.unwrap();
    }

    #[tokio::test]
    async fn a_watched_body_records_how_it_failed() {
        let (tx, body) = channel_body();
        let (body, watch) = watched(body);
        tx.send(Bytes::from_static(b"ok")).await.unwrap();
        drop(tx);
        assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"ok");
        assert_eq!(watch.fault(), None);

        let (_tx, body) = channel_body();
        let (body, watch) = watched(IdleTimeoutBody::new(body, Duration::from_millis(100)));
        assert!(body.collect().await.is_err());
        assert_eq!(watch.fault(), Some(BodyFault::TimedOut));

        let (body, watch) = watched(Broken);
        assert!(body.collect().await.is_err());
        assert_eq!(watch.fault(), Some(BodyFault::Broken));
    }

    /// A body whose framing is broken from the start.
    struct Broken;

    impl Body for Broken {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(Some(Err("invalid chunk size".into())))
        }
    }

    #[tokio::test]
    async fn a_limited_body_passes_up_to_its_limit_and_fails_before_the_frame_past_it() {
        let (tx, body) = channel_body();
        let (body, watch) = watched(LimitedBody::new(body, 4));
        tx.send(Bytes::from_static(b"ab")).await.unwrap();
        tx.send(Bytes::from_static(b"cd")).await.unwrap();
        drop(tx);
        assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"abcd");
        assert_eq!(watch.fault(), None);

        let (tx, body) = channel_body();
        let (mut body, watch) = watched(LimitedBody::new(body, 4));
        tx.send(Bytes::from_static(b"abc")).await.unwrap();
        tx.send(Bytes::from_static(b"de")).await.unwrap();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"abc");
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(
            err.downcast_ref::<BodyTooLarge>(),
            Some(&BodyTooLarge { limit: 4 })
        );
        assert_eq!(watch.fault(), Some(BodyFault::TooLarge));
    }

    #[tokio::test]
    async fn the_clock_starts_at_the_first_read() {
        let (tx, body) = channel_body();
        let body = IdleTimeoutBody::new(body, Duration::from_millis(600));
        // Not read for longer than the timeout: no error, the wait was not the peer's.
        tokio::time::sleep(Duration::from_millis(900)).await;
        let feeder = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tx.send(Bytes::from_static(b"ok")).await.unwrap();
        });
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"ok");
        feeder.await.unwrap();
    }
}
