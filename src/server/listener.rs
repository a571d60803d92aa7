//! The accept loop: TCP (optionally rustls with ALPN h2/http1.1), then hyper-util's auto
//! builder serving HTTP/1.1 and HTTP/2 on the same port, with the `limits` applied and a graceful
//! drain on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
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
use crate::pipeline;
use crate::refusal::Reason;
use crate::state::{ConnMeta, State};

use super::deadline::{Deadlines, HeadLimits, RefusalCounters, StreamOpen, Streams};
use super::tls::ReloadingAcceptor;

/// Drives one connection until it ends; once the server shuts down, or an HTTP/2 connection
/// is idle ([`Streams::idle`]), gracefully: HTTP/1 closes after the response in flight,
/// HTTP/2 sends GOAWAY and closes once its open streams (and what they still queue) are done.
/// (A macro: the plain and TLS connections are different types.)
macro_rules! drive {
    ($conn:expr, $streams:expr, $shutdown:expr) => {{
        let conn = $conn;
        tokio::pin!(conn);
        let mut shutdown = $shutdown;
        let mut closing = false;
        let streams = $streams;
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
                _ = shutdown.wait_for(|stop| *stop), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }};
}

/// Serves `listener` until `shutdown` flips, then drains connections for at most `drain`.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ReloadingAcceptor>>,
    state: Arc<State>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    let builder = builder(&limits);
    // Each connection task holds a slot until it ends: the drain waits for all of them back.
    let total =
        u32::try_from(limits.max_connections.min(Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
    let slots = Arc::new(Semaphore::new(total as usize));
    let scheme = if tls.is_some() { "https" } else { "http" };
    let label = scheme;
    let refusals = &state.metrics.connection_refusals;
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
        let gauge = crate::metrics::GaugeGuard::new(
            state.metrics.open_connections.with_label_values(&[label]),
        );
        let state = state.clone();
        let meta = ConnMeta { remote, scheme };
        let streams = Streams::new();
        let service = service_fn({
            let streams = Arc::clone(&streams);
            move |req: Request<Incoming>| {
                // HTTP/2: the stream counts as open until its response body is done, for the
                // connection's idle timeout (see `Deadlines`).
                let open = (req.version() == Version::HTTP_2).then(|| streams.open());
                Served {
                    handled: pipeline::handle(state.clone(), req, meta),
                    open,
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
            let _permit = permit;
            let _gauge = gauge;
            match tls {
                None => {
                    let io = Deadlines::new(stream, head_limits, counters, streams.clone(), false);
                    drive!(
                        builder.serve_connection(TokioIo::new(io), service),
                        streams,
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
                        builder.serve_connection(TokioIo::new(io), service),
                        streams,
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
        tracing::warn!("shutdown_timeout elapsed with requests still in flight");
    }
}

pin_project_lite::pin_project! {
    /// The pipeline's future; for an HTTP/2 request, its response body carries the stream's
    /// [`StreamOpen`] (without a second future around the pipeline's, which is large).
    struct Served<F> {
        #[pin]
        handled: F,
        open: Option<StreamOpen>,
    }
}

impl<F> Future for Served<F>
where
    F: Future<Output = Result<Response<GatewayBody>, Infallible>>,
{
    type Output = Result<Response<GatewayBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.handled.poll(cx))?;
        Poll::Ready(Ok(match this.open.take() {
            None => response,
            Some(open) => response.map(|b| {
                body::boxed(WhileOpen {
                    body: b,
                    _open: open,
                })
            }),
        }))
    }
}

/// A response body that keeps its HTTP/2 stream counted as open until it is dropped.
struct WhileOpen {
    body: GatewayBody,
    /// Held for its `Drop`.
    _open: StreamOpen,
}

impl Body for WhileOpen {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
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
