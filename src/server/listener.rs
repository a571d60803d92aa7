//! The accept loop: TCP (optionally rustls with ALPN h2/http1.1), then hyper-util's auto
//! builder serving HTTP/1.1 and HTTP/2 on the same port, with the `limits` applied and a graceful
//! drain on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::body::{self, BoxError, GatewayBody};
use crate::config::Limits;
use crate::forward::pool::ClientBudget;
use crate::pipeline;
use crate::refusal::Reason;
use crate::state::{ConnMeta, State};

use super::deadline::{Deadlines, HeadLimits, RefusalCounters};
use super::h2_idle::{StreamOpen, Streams};
use super::reload::Live;
use super::tls::ReloadingAcceptor;

/// Drives one connection until it ends; once the server shuts down, or an HTTP/2 connection
/// is idle ([`Streams::idle`]) or its client cancelled too many streams ([`Resets`]), gracefully: HTTP/1 closes after the response in flight,
/// HTTP/2 sends GOAWAY and closes once its open streams (and what they still queue) are done.
/// (A macro: the plain and TLS connections are different types.)
macro_rules! drive {
    ($conn:expr, $streams:expr, $resets:expr, $shutdown:expr) => {{
        let conn = $conn;
        tokio::pin!(conn);
        let mut shutdown = $shutdown;
        let mut closing = false;
        let streams = $streams;
        let resets: &Resets = $resets;
        // The connection first; the idle flag is set (and this task woken) by the
        // connection's own reads, so a load after each poll is all it costs.
        let idle = std::future::poll_fn(|_| {
            if streams.is_idle() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        tokio::pin!(idle);
        loop {
            tokio::select! {
                biased;
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    break;
                }
                () = idle.as_mut(), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                () = resets.flooded(), if !closing => {
                    tracing::info!(
                        cancelled = resets.cancelled(),
                        "HTTP/2 client cancelled too many of its streams; GOAWAY"
                    );
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = shutdown.wait_for(|stop| *stop), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }};
}

/// What a listener answers with: `handle` for the proxy (`pipeline::handle`) or the decision
/// listener (`pipeline::decide`), each request on the same connection handling and limits.
pub(crate) trait Handler:
    Fn(Arc<State>, Request<Incoming>, ConnMeta) -> Self::Handled + Clone + Send + Sync + 'static
{
    /// The handler's future.
    type Handled: Future<Output = Result<Response<GatewayBody>, Infallible>> + Send + 'static;
}

impl<H, F> Handler for H
where
    H: Fn(Arc<State>, Request<Incoming>, ConnMeta) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<GatewayBody>, Infallible>> + Send + 'static,
{
    type Handled = F;
}

/// Serves `listener` with the proxy until `shutdown` flips, then drains connections for at
/// most `drain`.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ReloadingAcceptor>>,
    live: Live,
    shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    let label = if tls.is_some() { "https" } else { "http" };
    // One for the process: every reloaded state carries the same.
    let tunnels = Arc::clone(&live.load().tunnels);
    serve_with(
        listener,
        tls,
        live,
        shutdown,
        drain,
        label,
        pipeline::handle::<Incoming>,
    )
    .await;
    // The drain waited for open tunnels too (each holds its connection's slot): the ones
    // still open now are closed.
    tunnels.close();
}

/// Serves `listener` with `handler`, its connections counted under the `listener` label
/// `label`, until `shutdown` flips; then drains connections for at most `drain`. Each request
/// is handled with the state current when it starts; each connection gets the `limits` current
/// when it is accepted (but `max_connections`, fixed at start).
pub(crate) async fn serve_with<H: Handler>(
    listener: TcpListener,
    tls: Option<Arc<ReloadingAcceptor>>,
    live: Live,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
    label: &'static str,
    handler: H,
) {
    let (mut limits, metrics) = {
        let state = live.load();
        (state.limits.clone(), state.metrics.clone())
    };
    let mut builder = builder(&limits);
    // Each connection task holds a slot until it ends: the drain waits for all of them back.
    let total =
        u32::try_from(limits.max_connections.min(Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
    let slots = Arc::new(Semaphore::new(total as usize));
    let scheme = if tls.is_some() { "https" } else { "http" };
    let refusals = &metrics.connection_refusals;
    let counters = RefusalCounters {
        head_too_large: refusals.with_label_values(&[Reason::HeadTooLarge.as_str()]),
        head_timeout: refusals.with_label_values(&[Reason::HeadTimeout.as_str()]),
        uri_too_long: refusals.with_label_values(&[Reason::UriTooLong.as_str()]),
    };
    loop {
        // Past max_connections, connections wait in the listen backlog until a slot frees.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.changed() => break,
        };
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        {
            let current = live.load();
            if current.limits != limits {
                limits = current.limits.clone();
                builder = self::builder(&limits);
            }
        }
        // Held by the connection and by every upstream exchange it starts (see ClientBudget).
        let slot = Arc::new(permit);
        let budget = ClientBudget::new(limits.max_concurrent_streams as usize, Arc::clone(&slot));
        let resets = Arc::new(Resets::default());
        let gauge =
            crate::metrics::GaugeGuard::new(metrics.open_connections.with_label_values(&[label]));
        let live = live.clone();
        let meta = ConnMeta { remote, scheme };
        let streams = Streams::new();
        let service = service_fn({
            let streams = Arc::clone(&streams);
            let resets = Arc::clone(&resets);
            let handler = handler.clone();
            move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(budget.clone());
                // HTTP/2: the stream counts as open until its response body is done, for the
                // connection's idle timeout (see `Deadlines`), and a stream that ends before
                // that counts as cancelled (see `Resets`).
                let conn = if req.version() == Version::HTTP_2 {
                    Conn::H2(Stream {
                        _open: streams.open(),
                        resets: resets.opened(),
                        done: false,
                    })
                } else {
                    Conn::H1(Arc::clone(&streams))
                };
                Served {
                    // The state when the request starts, kept until it is done.
                    handled: handler(live.load_full(), req, meta),
                    conn: Some(conn),
                }
            }
        });
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        let handshake_timeout = limits.header_read_timeout;
        let counters = counters.clone();
        let head_limits = HeadLimits {
            header_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
            max_head_bytes: limits.max_header_bytes,
        };
        tokio::spawn(async move {
            let _slot = slot;
            let _gauge = gauge;
            match tls {
                None => {
                    let io = Deadlines::new(stream, head_limits, counters, streams.clone(), false);
                    drive!(
                        builder.serve_connection_with_upgrades(TokioIo::new(io), service),
                        streams,
                        &resets,
                        shutdown
                    );
                }
                Some(acceptor) => {
                    let accept = acceptor.acceptor().accept(stream);
                    let tls_stream = match tokio::time::timeout(handshake_timeout, accept).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            return;
                        }
                    };
                    let h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    let io = Deadlines::new(tls_stream, head_limits, counters, streams.clone(), h2);
                    drive!(
                        builder.serve_connection_with_upgrades(TokioIo::new(io), service),
                        streams,
                        &resets,
                        shutdown
                    );
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, slots.acquire_many(total))
        .await
        .is_err()
    {
        tracing::warn!("shutdown_timeout elapsed with requests or tunnels still open");
    }
}

pin_project_lite::pin_project! {
    /// The pipeline's future; for an HTTP/2 request, its response body carries the stream's
    /// [`StreamOpen`] (without a second future around the pipeline's, which is large); for
    /// an HTTP/1.x one, a `101` marks the connection (see [`Conn::H1`]).
    struct Served<F> {
        #[pin]
        handled: F,
        conn: Option<Conn>,
    }
}

/// What [`Served`] tells its connection about the response.
enum Conn {
    /// HTTP/2: the stream, counted open until the response body is done.
    H2(Stream),
    /// HTTP/1.x: a `101` marks the connection, whose bytes are a tunnel's once its head is
    /// written (`Deadlines`); bytes that merely look like a 101 must not do that.
    H1(Arc<Streams>),
}

impl<F> Future for Served<F>
where
    F: Future<Output = Result<Response<GatewayBody>, Infallible>>,
{
    type Output = Result<Response<GatewayBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.handled.poll(cx))?;
        Poll::Ready(Ok(match this.conn.take() {
            None => response,
            Some(Conn::H1(streams)) => {
                if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                    streams.mark_switching();
                }
                response
            }
            Some(Conn::H2(open)) => response.map(|b| {
                body::boxed(WhileOpen {
                    body: b,
                    stream: open,
                })
            }),
        }))
    }
}

/// A response body that keeps its HTTP/2 stream counted as open until it is dropped.
struct WhileOpen {
    body: GatewayBody,
    stream: Stream,
}

impl Body for WhileOpen {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            // Ended, or failed on our side (hyper resets the stream): not the client's cancel.
            Poll::Ready(None | Some(Err(_))) => self.stream.done = true,
            Poll::Ready(Some(Ok(_))) if self.body.is_end_stream() => self.stream.done = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for WhileOpen {
    fn drop(&mut self) {
        if self.body.is_end_stream() {
            self.stream.done = true;
        }
    }
}

/// An HTTP/2 stream handed to the pipeline: open (for the idle timeout) while this lives, and
/// cancelled by the client if dropped before its response was done.
struct Stream {
    /// Held for its `Drop`.
    _open: StreamOpen,
    resets: Arc<Resets>,
    done: bool,
}

impl Drop for Stream {
    fn drop(&mut self) {
        if !self.done {
            self.resets.cancel();
        }
    }
}

/// Cancelled streams a client may have before its HTTP/2 connection gets GOAWAY, once they are
/// also more than half of all its streams (see [`Resets`]).
pub(crate) const MAX_CANCELLED_STREAMS: u64 = 100;

/// Streams of one HTTP/2 connection that its client cancelled (RST_STREAM, or its response
/// dropped unfinished) after the gateway accepted them. h2 counts only streams reset before they
/// are accepted (`max_pending_accept_reset_streams`, 20 by default); each of these made the
/// gateway start a request, so past [`MAX_CANCELLED_STREAMS`], when they are more than half of
/// the connection's streams, the connection gets GOAWAY and closes once its open streams end
/// (CVE-2023-44487, "rapid reset", after accept). The ratio leaves a client that cancels now and
/// then on a long-lived connection alone, as Envoy's premature-reset check does.
#[derive(Default)]
pub(crate) struct Resets {
    opened: AtomicU64,
    cancelled: AtomicU64,
    tripped: AtomicBool,
    /// The connection task's waker, stored by its first poll of [`Resets::flooded`]: the
    /// connection task is the only one polling it, and its waker does not change. (A `Notify`
    /// took a lock on every poll of the connection task, every request of every HTTP/1
    /// connection included.)
    waker: std::sync::Mutex<Option<std::task::Waker>>,
    registered: AtomicBool,
}

impl Resets {
    /// Counts a stream handed to the pipeline.
    fn opened(self: &Arc<Self>) -> Arc<Self> {
        self.opened.fetch_add(1, Ordering::Relaxed);
        Arc::clone(self)
    }

    /// Counts a cancelled stream; wakes [`Resets::flooded`] the first time the limit is passed.
    fn cancel(&self) {
        let cancelled = self.cancelled.fetch_add(1, Ordering::Relaxed) + 1;
        let opened = self.opened.load(Ordering::Relaxed);
        if cancelled > MAX_CANCELLED_STREAMS
            && cancelled * 2 > opened
            && !self.tripped.swap(true, Ordering::AcqRel)
        {
            let waker = self
                .waker
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    fn cancelled(&self) -> u64 {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Resolves once the connection should get GOAWAY.
    async fn flooded(&self) {
        std::future::poll_fn(|cx| {
            if self.tripped.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            if !self.registered.swap(true, Ordering::AcqRel) {
                *self
                    .waker
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(cx.waker().clone());
                // Tripped between the check and the store: its wake found no waker.
                if self.tripped.load(Ordering::Acquire) {
                    return Poll::Ready(());
                }
            }
            Poll::Pending
        })
        .await;
    }
}

/// The most an HTTP/1 connection reads at once. hyper starts at 8 KiB and grows the buffer
/// only while reads fill it, i.e. while a body arrives faster than it is forwarded. A 1 GiB
/// upload ran at 1.4 GB/s with 64 KiB reads and 1.9-2.1 GB/s with 512 KiB (1 MiB: the same).
const READ_BUFFER_BYTES: usize = 512 * 1024;

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        // The head is limited by `Deadlines` (max_header_bytes); this bounds each read, which
        // a streamed body wants large.
        .max_buf_size(READ_BUFFER_BYTES.max(limits.max_header_bytes))
        // `Deadlines` enforces header_read_timeout (with a 408) and idle_timeout instead.
        .header_read_timeout(None)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(limits.idle_timeout))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}
