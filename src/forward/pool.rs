//! The upstream connection pool: keep-alive HTTP/1.1 connections to one upstream, reused
//! most recently used first; or, once a connection speaks HTTP/2 (ALPN `h2`, or prior
//! knowledge with `protocol: http2`), that one connection shared by every request, its
//! streams multiplexed, until it closes.
//!
//! A connection is lent to one request at a time. It comes back to the pool when its response
//! body has been read to the end and hyper says the connection can take the next request.
//! Idle connections older than [`IDLE_TIMEOUT`] are not reused and are closed by a sweep.
//!
//! A client that cancels (an HTTP/2 RST_STREAM, a closed connection) does not cost the pool its
//! connection: the exchange goes on in the background, the response head until the request's
//! own deadline, then the rest of the body read and thrown away, at most [`DRAIN_BYTES`] within
//! [`DRAIN_TIME`], and a connection that got to the end of it comes back to the pool; only one
//! that did not is closed. Without this, each cancelled request closed a connection (hyper's
//! client closes one whose response nobody waits for), and a client resetting streams made the
//! gateway open upstream connections as fast as it could send frames. The exchange keeps its
//! [`Lease`] (the client connection's budget of upstream exchanges) until it ends, so cancelling
//! frees nothing that completing would not.
//!
//! A request sent on a reused connection that hyper gives back unsent (the upstream closed the
//! connection while it was idle, the race every keep-alive client has) is sent once more on a
//! new connection; a request that was written, even in part, is never sent twice.
//!
//! This replaces hyper-util's general pool (many hosts, a key hashed per checkout) with what
//! one upstream needs, on the path every forwarded request takes. Each upstream has its own.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::connect::{ConnectError, Connector};
use crate::body::GatewayBody;

/// How long an idle connection is kept; under the usual 60-120 s upstream idle timeouts, so
/// that the gateway, not the upstream, closes it.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// How often the shared HTTP/2 connection is PINGed, and how long an answer may take before
/// the connection is given up.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// How often idle connections past [`IDLE_TIMEOUT`] are closed.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// The most of a response body read and discarded, after the client cancelled, to keep the
/// connection; past it the connection is closed (re-opening one costs less than reading on).
pub(crate) const DRAIN_BYTES: u64 = 1024 * 1024;

/// How long the rest of a cancelled response body is read to keep the connection.
pub(crate) const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Upstream exchanges one client connection may have at once (in flight or finishing after a
/// cancel). The listener hands one to each request (a request extension); the forwarder takes a
/// [`Lease`] from it before it sends.
#[derive(Clone)]
pub(crate) struct ClientBudget {
    exchanges: Arc<Semaphore>,
    /// The client connection's `max_connections` slot: held by every lease too, so a
    /// connection still counts while exchanges it started finish in the background.
    slot: Arc<OwnedSemaphorePermit>,
}

/// One upstream exchange of a client connection's [`ClientBudget`]; held until the exchange
/// has ended (its response body read to the end or given up).
pub(crate) struct Lease {
    _exchange: OwnedSemaphorePermit,
    _slot: Arc<OwnedSemaphorePermit>,
}

/// Keep-alive connections to one upstream.
pub(crate) struct Pool {
    connector: Connector,
    /// The upstream's scheme: `:scheme` of HTTP/2 requests.
    scheme: http::uri::Scheme,
    idle: Mutex<Vec<Idle>>,
    /// The shared HTTP/2 connection, when the upstream speaks HTTP/2; `None` when it cannot
    /// (nothing to look at on the HTTP/1.1-only path).
    h2: Option<Mutex<Option<http2::SendRequest<GatewayBody>>>>,
    /// While the upstream may speak HTTP/2 and no answer said it does not, connections are
    /// opened one at a time: a burst of first requests waits for the one connection that
    /// becomes the shared one instead of opening one each. Holds the last failure, which the
    /// requests that waited for that attempt get at once (an upstream that is down does not
    /// make each of them wait its own `connect_timeout` in turn).
    h2_connect: tokio::sync::Mutex<Option<Failed>>,
    /// A connection of this pool came up HTTP/1.1 (ALPN chose `http/1.1`): connections are
    /// opened in parallel, as for any HTTP/1.1 upstream.
    h1_chosen: AtomicBool,
    /// Set once the sweep task runs (it starts with the first connection).
    sweeping: std::sync::Once,
}

/// A failed attempt to open a connection: when it ended, and why.
struct Failed {
    at: Instant,
    error: String,
    tls: bool,
}

/// A new connection's sender.
enum Conn {
    H1(SendRequest<GatewayBody>),
    H2(http2::SendRequest<GatewayBody>),
    /// The shared HTTP/2 connection another request opened while this one waited.
    Shared(http2::SendRequest<GatewayBody>),
}

/// An idle connection and when it came back.
struct Idle {
    tx: SendRequest<GatewayBody>,
    since: Instant,
}

/// Why a request got no response.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be opened (TCP or TLS).
    Connect(ConnectError),
    /// The exchange failed on the connection.
    Http(hyper::Error),
}

// === impl ClientBudget ===

impl ClientBudget {
    /// `exchanges` at once for the connection holding `slot`.
    pub(crate) fn new(exchanges: usize, slot: Arc<OwnedSemaphorePermit>) -> ClientBudget {
        ClientBudget {
            exchanges: Arc::new(Semaphore::new(exchanges.clamp(1, Semaphore::MAX_PERMITS))),
            slot,
        }
    }

    /// Waits for one of the connection's exchanges to be free.
    pub(crate) async fn lease(&self) -> Option<Lease> {
        let permit = Arc::clone(&self.exchanges).acquire_owned().await.ok()?;
        Some(Lease {
            _exchange: permit,
            _slot: Arc::clone(&self.slot),
        })
    }
}

// === impl Pool ===

impl Pool {
    /// A pool of connections opened by `connector`.
    pub(crate) fn new(connector: Connector, scheme: http::uri::Scheme) -> Arc<Pool> {
        let h2 = connector.may_speak_h2().then(|| Mutex::new(None));
        Arc::new(Pool {
            connector,
            scheme,
            h2,
            h2_connect: tokio::sync::Mutex::new(None),
            h1_chosen: AtomicBool::new(false),
            idle: Mutex::new(Vec::new()),
            sweeping: std::sync::Once::new(),
        })
    }

    /// Sends `req` (origin-form URI, `Host` set) and returns the response once its head is in.
    /// Its body, read to the end, returns the connection to the pool. Dropped before then (the
    /// client cancelled), the exchange finishes in the background: its head until `deadline`,
    /// its body as far as [`DRAIN_BYTES`] and [`DRAIN_TIME`] allow; `lease` is held throughout.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut req: Request<GatewayBody>,
        lease: Option<Lease>,
        deadline: Instant,
    ) -> Result<Response<PooledBody>, SendError> {
        let mut fresh_only = false;
        let mut lease = lease;
        loop {
            if !fresh_only {
                if let Some(tx) = self.shared_h2() {
                    match self.send_h2(tx, req, true).await? {
                        Ok(resp) => return Ok(leased(resp, lease)),
                        Err(unsent) => {
                            req = unsent;
                            fresh_only = true;
                            continue;
                        }
                    }
                }
            }
            let pooled = if fresh_only { None } else { self.checkout() };
            let reused = pooled.is_some();
            let mut tx = match pooled {
                Some(tx) => tx,
                // Boxed: opening a connection is the rare path, and its future (TLS, the
                // HTTP/2 handshake, the wait for the shared one) would make every send larger.
                None => match Box::pin(self.connect()).await? {
                    Conn::H1(tx) => tx,
                    Conn::Shared(tx) => match self.send_h2(tx, req, true).await? {
                        Ok(resp) => return Ok(leased(resp, lease)),
                        Err(unsent) => {
                            req = unsent;
                            fresh_only = true;
                            continue;
                        }
                    },
                    Conn::H2(tx) => {
                        return match self.send_h2(tx, req, false).await? {
                            Ok(resp) => Ok(leased(resp, lease)),
                            // Not reused: hyper gives a request back unsent only from a
                            // connection that was already closing; nothing more to try.
                            Err(_) => Err(SendError::Connect(ConnectError::Tcp(
                                "the new HTTP/2 connection closed at once".into(),
                            ))),
                        };
                    }
                },
            };
            let pending = Box::pin(tx.try_send_request(req));
            let mut exchange = Exchange {
                pending: Some(pending),
                tx: Some(tx),
                pool: Arc::downgrade(self),
                lease: lease.take(),
                deadline,
            };
            let sent = std::future::poll_fn(|cx| exchange.poll(cx)).await;
            // Answered or failed: nothing is left to finish in the background.
            exchange.pending = None;
            match sent {
                Ok(resp) => {
                    let conn = exchange.tx.take().map(|tx| (tx, Arc::downgrade(self)));
                    let lease = exchange.lease.take();
                    return Ok(resp.map(|inner| PooledBody {
                        inner: Some(inner),
                        conn,
                        lease,
                        drain_on_drop: true,
                    }));
                }
                Err(mut e) => match e.take_message() {
                    // Not written: the pooled connection was closed under us. Once more, fresh.
                    Some(unsent) if reused => {
                        tracing::debug!(error = %e.error(), "pooled upstream connection closed; retrying on a new one");
                        req = unsent;
                        fresh_only = true;
                        lease = exchange.lease.take();
                    }
                    _ => return Err(SendError::Http(e.into_error())),
                },
            }
        }
    }

    /// The shared HTTP/2 connection, if one is open.
    fn shared_h2(&self) -> Option<http2::SendRequest<GatewayBody>> {
        let slot = self.h2.as_ref()?;
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Some(tx) if !tx.is_closed() => Some(tx.clone()),
            Some(_) => {
                *slot = None;
                None
            }
            None => None,
        }
    }

    /// Sends `req` as a stream of the HTTP/2 connection `tx`; `Ok(Err(req))` gives back a
    /// request that was not sent (the connection was closing) so that it can go on a new one.
    async fn send_h2(
        &self,
        mut tx: http2::SendRequest<GatewayBody>,
        mut req: Request<GatewayBody>,
        reused: bool,
    ) -> Result<Result<Response<PooledBody>, Request<GatewayBody>>, SendError> {
        if req.version() != http::Version::HTTP_2 {
            super::to_h2(&mut req, &self.scheme);
        }
        if let Err(e) = std::future::poll_fn(|cx| tx.poll_ready(cx)).await {
            if reused {
                tracing::debug!(error = %e, "shared HTTP/2 upstream connection closed; opening a new one");
                return Ok(Err(req));
            }
            return Err(SendError::Http(e));
        }
        match tx.try_send_request(req).await {
            // A cancelled HTTP/2 stream is reset alone: the connection stays, nothing to drain.
            Ok(resp) => Ok(Ok(resp.map(|inner| PooledBody {
                inner: Some(inner),
                conn: None,
                lease: None,
                drain_on_drop: false,
            }))),
            Err(mut e) => match e.take_message() {
                Some(unsent) if reused => Ok(Err(unsent)),
                _ => Err(SendError::Http(e.into_error())),
            },
        }
    }

    /// Idle connections now held.
    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        self.lock().len()
    }

    /// The most recently returned idle connection that can take a request now.
    fn checkout(&self) -> Option<SendRequest<GatewayBody>> {
        let now = crate::clock::monotonic();
        let mut idle = self.lock();
        while let Some(i) = idle.pop() {
            // Not ready means closed: a connection is only returned once it was ready.
            if i.tx.is_ready() && now.duration_since(i.since) < IDLE_TIMEOUT {
                return Some(i.tx);
            }
        }
        None
    }

    /// A connection for a request that found none to reuse: a new one, or (HTTP/2) the shared
    /// one that another request opened while this one waited its turn (see `h2_connect`).
    async fn connect(self: &Arc<Self>) -> Result<Conn, SendError> {
        if self.h2.is_none() || self.h1_chosen.load(Ordering::Relaxed) {
            return self.open().await;
        }
        let asked = crate::clock::monotonic();
        let mut last = self.h2_connect.lock().await;
        if let Some(tx) = self.shared_h2() {
            return Ok(Conn::Shared(tx));
        }
        if self.h1_chosen.load(Ordering::Relaxed) {
            drop(last);
            return self.open().await;
        }
        if let Some(failed) = last.as_ref().filter(|f| f.at >= asked) {
            let error = failed.error.clone();
            return Err(SendError::Connect(if failed.tls {
                ConnectError::Tls(error)
            } else {
                ConnectError::Tcp(error)
            }));
        }
        let opened = self.open().await;
        *last = match &opened {
            Ok(Conn::H1(_)) => {
                self.h1_chosen.store(true, Ordering::Relaxed);
                None
            }
            Ok(_) => None,
            Err(e) => Some(Failed {
                at: crate::clock::monotonic(),
                error: e.to_string(),
                tls: matches!(e, SendError::Connect(ConnectError::Tls(_))),
            }),
        };
        opened
    }

    /// Opens a connection and starts driving it; an HTTP/2 one becomes the shared one.
    async fn open(self: &Arc<Self>) -> Result<Conn, SendError> {
        let connected = self.connector.connect().await.map_err(SendError::Connect)?;
        let io = TokioIo::new(connected.io);
        self.sweeping.call_once(|| {
            tokio::spawn(sweep(Arc::downgrade(self)));
        });
        if connected.h2 {
            let (tx, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                // PINGs find a connection that died silently before a request waits on it
                // for the whole request_timeout.
                .keep_alive_interval(H2_PING_INTERVAL)
                .keep_alive_timeout(H2_PING_TIMEOUT)
                .keep_alive_while_idle(true)
                .handshake(io)
                .await
                .map_err(SendError::Http)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
                }
            });
            if let Some(slot) = &self.h2 {
                let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
                if slot.as_ref().is_none_or(http2::SendRequest::is_closed) {
                    *slot = Some(tx.clone());
                }
            }
            return Ok(Conn::H2(tx));
        }
        let (tx, conn) = http1::handshake(io).await.map_err(SendError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(Conn::H1(tx))
    }

    /// Whether the upstream speaks only HTTP/2 (`protocol: http2`).
    pub(crate) fn only_h2(&self) -> bool {
        self.connector.only_h2()
    }

    /// A new HTTP/1.1 connection of its own, driven with upgrades on, for a WebSocket
    /// handshake: it never comes back to the pool (after a 101 it is the tunnel's). An
    /// upstream that speaks only HTTP/2 (`protocol: http2`, or ALPN chose `h2`) cannot take
    /// one: RFC 8441 to the upstream is not spoken.
    pub(crate) async fn dedicated_h1(&self) -> Result<SendRequest<GatewayBody>, SendError> {
        let connected = self
            .connector
            .connect_h1()
            .await
            .map_err(SendError::Connect)?;
        if connected.h2 {
            return Err(SendError::Connect(ConnectError::Tls(
                "the upstream chose h2 by ALPN although only http/1.1 was offered".into(),
            )));
        }
        let (tx, conn) = http1::handshake(TokioIo::new(connected.io))
            .await
            .map_err(SendError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream upgrade connection ended");
            }
        });
        Ok(tx)
    }

    /// Returns `tx` once it can take the next request; a closed connection is dropped.
    /// `lease` is released once the connection is back (or gone): the exchange is over only
    /// then, and a request waiting for the lease finds the connection idle.
    fn checkin(self: Arc<Self>, mut tx: SendRequest<GatewayBody>, lease: Option<Lease>) {
        if tx.is_ready() {
            self.push(tx);
        } else if !tx.is_closed() {
            // Still finishing the exchange (say, the request body is still streaming after an
            // early response): wait for it off the request's path.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if tx.ready().await.is_ok() {
                        self.push(tx);
                    }
                    drop(lease);
                });
            }
        }
    }

    fn push(&self, tx: SendRequest<GatewayBody>) {
        let since = crate::clock::monotonic();
        self.lock().push(Idle { tx, since });
    }

    /// The idle list, even if a thread panicked holding it (it holds no invariant a panic
    /// could break).
    fn lock(&self) -> MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What `try_send_request` returns: the response head, or the request when it was not sent.
type Pending = Pin<
    Box<
        dyn std::future::Future<
                Output = Result<
                    Response<Incoming>,
                    hyper::client::conn::TrySendError<Request<GatewayBody>>,
                >,
            > + Send,
    >,
>;

/// A request sent on a connection, waiting for its response head. Dropped while it waits (the
/// client cancelled, or the forwarder's timeout fired), it goes on in the background until its
/// deadline; see the module docs.
struct Exchange {
    pending: Option<Pending>,
    tx: Option<SendRequest<GatewayBody>>,
    pool: Weak<Pool>,
    lease: Option<Lease>,
    deadline: Instant,
}

impl Exchange {
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<GatewayBody>>>>
    {
        match self.pending.as_mut() {
            Some(p) => p.as_mut().poll(cx),
            // Never: `send` polls only an exchange it just made and stops at its answer.
            None => Poll::Pending,
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let (Some(pending), Some(tx)) = (self.pending.take(), self.tx.take()) else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = std::mem::take(&mut self.pool);
        let lease = self.lease.take();
        let deadline = tokio::time::Instant::from_std(self.deadline);
        rt.spawn(async move {
            // Past the deadline (or a failed exchange) the connection is dropped: closed.
            let Ok(Ok(resp)) = tokio::time::timeout_at(deadline, pending).await else {
                return;
            };
            drain(PooledBody {
                inner: Some(resp.into_body()),
                conn: Some((tx, pool)),
                lease,
                drain_on_drop: false,
            })
            .await;
        });
    }
}

/// Reads the rest of a response nobody wants, so that its connection can come back to the
/// pool: at most [`DRAIN_BYTES`] within [`DRAIN_TIME`]; short of its end, the connection is
/// closed.
async fn drain(mut body: PooledBody) {
    use http_body_util::BodyExt;
    let read = async {
        let mut left = DRAIN_BYTES;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return };
            let len = frame.data_ref().map_or(0, |d| d.len() as u64);
            if len > left {
                return;
            }
            left -= len;
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read).await;
    // Read to its end, `body` released the connection on its last frame; otherwise dropping
    // it closes the connection.
    body.conn = None;
}

/// Closes idle connections past [`IDLE_TIMEOUT`] every [`SWEEP_INTERVAL`], until the pool is
/// dropped.
async fn sweep(pool: Weak<Pool>) {
    loop {
        tokio::time::sleep(SWEEP_INTERVAL).await;
        let Some(pool) = pool.upgrade() else { return };
        let now = crate::clock::monotonic();
        pool.lock()
            .retain(|i| !i.tx.is_closed() && now.duration_since(i.since) < IDLE_TIMEOUT);
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => e.fmt(f),
            SendError::Http(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Connect(_) => None,
            SendError::Http(e) => e.source(),
        }
    }
}

/// A response body that returns its connection to the pool once read to the end.
pub(crate) struct PooledBody {
    /// `None` only once a drop handed it to [`drain`].
    inner: Option<Incoming>,
    conn: Option<(SendRequest<GatewayBody>, Weak<Pool>)>,
    /// Held until the exchange has ended (see [`ClientBudget`]).
    lease: Option<Lease>,
    /// Whether a drop short of the end hands the rest to [`drain`] (not when it is the body
    /// being drained: dropped, say at runtime shutdown, it closes its connection).
    drain_on_drop: bool,
}

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBody")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// `resp` with `lease` held by its body until the exchange ends.
fn leased(mut resp: Response<PooledBody>, lease: Option<Lease>) -> Response<PooledBody> {
    resp.body_mut().lease = lease;
    resp
}

impl PooledBody {
    fn release(&mut self) {
        let lease = self.lease.take();
        if let Some((tx, pool)) = self.conn.take() {
            if let Some(pool) = pool.upgrade() {
                pool.checkin(tx, lease);
            }
        }
    }

    fn ended(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            // Nothing follows trailers in HTTP/1, and hyper's server stops reading there.
            Poll::Ready(Some(Ok(frame))) if frame.is_trailers() || self.ended() => self.release(),
            // An error: the connection is broken; dropping it closes it.
            Poll::Ready(Some(Err(_))) => {
                self.conn = None;
                self.lease = None;
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ended()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // A body with nothing left (empty, or never polled because it was known empty) returns
        // the connection; one dropped half-read (the client cancelled) has the rest read in
        // the background, and its connection back if it ends soon enough.
        if self.ended() {
            self.release();
            return;
        }
        if self.conn.is_none() || !self.drain_on_drop {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let rest = PooledBody {
            inner: self.inner.take(),
            conn: self.conn.take(),
            lease: self.lease.take(),
            drain_on_drop: false,
        };
        rt.spawn(drain(rest));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::body;
    use http::Uri;

    // `#[tokio::test]` runs on one thread: a connection whose body was read to the end is back
    // in the pool at once (on more threads it may come back a moment later, through `checkin`'s
    // wait), so the `idle_count` checks right after a body are exact.

    /// A raw HTTP/1.1 upstream: on each connection, answers each request head with
    /// `response`, closing after `per_conn` requests without saying so. Returns its address,
    /// the connections accepted and the requests answered.
    async fn upstream(
        per_conn: usize,
        response: &'static str,
    ) -> (Uri, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (c, r) = (Arc::clone(&conns), Arc::clone(&requests));
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                c.fetch_add(1, Ordering::SeqCst);
                let r = Arc::clone(&r);
                tokio::spawn(async move {
                    for _ in 0..per_conn {
                        if !read_head(&mut s).await {
                            return;
                        }
                        r.fetch_add(1, Ordering::SeqCst);
                        if s.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    // Closes silently: the client still holds the connection as idle.
                });
            }
        });
        (format!("http://{addr}/").parse().unwrap(), conns, requests)
    }

    /// Reads up to the end of a request head (bodies here are empty).
    async fn read_head(s: &mut TcpStream) -> bool {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => return false,
            }
        }
        true
    }

    /// A deadline no test reaches.
    fn far() -> Instant {
        crate::clock::monotonic() + Duration::from_secs(60)
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

    fn pool(target: Uri) -> Arc<Pool> {
        pool_speaking(target, crate::config::UpstreamProtocol::Auto)
    }

    fn pool_speaking(target: Uri, protocol: crate::config::UpstreamProtocol) -> Arc<Pool> {
        let cfg = crate::config::UpstreamConfig {
            url: target,
            protocol,
            tls: None,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(30),
            readiness: crate::config::UpstreamReadiness::None,
        };
        Pool::new(Connector::new(&cfg).unwrap(), http::uri::Scheme::HTTP)
    }

    fn get() -> Request<GatewayBody> {
        Request::get("/x")
            .header("host", "h")
            .body(body::empty())
            .unwrap()
    }

    async fn text(resp: Response<PooledBody>) -> String {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_connection_read_to_the_end_is_reused() {
        let (target, conns, _) = upstream(100, OK).await;
        let pool = pool(target);
        for _ in 0..5 {
            let resp = pool.send(get(), None, far()).await.unwrap();
            assert_eq!(text(resp).await, "ok");
            assert_eq!(pool.idle_count(), 1, "returned once read to the end");
        }
        assert_eq!(conns.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_empty_body_never_polled_still_returns_the_connection() {
        let (target, conns, _) = upstream(100, "HTTP/1.1 204 No Content\r\n\r\n").await;
        let pool = pool(target);
        for _ in 0..3 {
            let resp = pool.send(get(), None, far()).await.unwrap();
            assert_eq!(resp.status(), 204);
            assert!(resp.body().is_end_stream());
            drop(resp);
            assert_eq!(pool.idle_count(), 1);
        }
        assert_eq!(conns.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_half_read_is_not_lent_while_its_rest_is_due() {
        let (target, conns, _) =
            upstream(100, "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf").await;
        let pool = pool(target);
        let mut resp = pool.send(get(), None, far()).await.unwrap();
        let first = resp.body_mut().frame().await.unwrap().unwrap();
        assert_eq!(first.data_ref().unwrap().as_ref(), b"half");
        drop(resp);
        assert_eq!(
            pool.idle_count(),
            0,
            "the rest of that response is still due"
        );
        // The next request cannot get that connection's remaining bytes as its response.
        let _ = pool.send(get(), None, far()).await.unwrap();
        assert_eq!(conns.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_idle_connection_the_upstream_closed_is_replaced_and_the_request_sent_once() {
        // One request per connection, then a silent close: every pooled connection goes stale.
        let (target, conns, requests) = upstream(1, OK).await;
        let pool = pool(target);
        for i in 1..=4 {
            let resp = pool.send(get(), None, far()).await.unwrap();
            assert_eq!(text(resp).await, "ok");
            // Let the close arrive (or not: both paths must end in one request per send).
            if i % 2 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(requests.load(Ordering::SeqCst), i, "each request sent once");
        }
        assert_eq!(conns.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_response_that_says_connection_close_is_not_reused() {
        let (target, conns, _) = upstream(
            100,
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
        )
        .await;
        let pool = pool(target);
        for _ in 0..3 {
            assert_eq!(
                text(pool.send(get(), None, far()).await.unwrap()).await,
                "ok"
            );
        }
        assert_eq!(conns.load(Ordering::SeqCst), 3);
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn a_connection_is_returned_after_the_trailers() {
        let (target, conns, _) = upstream(100, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-t\r\n\r\n2\r\nok\r\n0\r\nx-t: 1\r\n\r\n")
        .await;
        let pool = pool(target);
        for _ in 0..3 {
            let mut resp = pool.send(get(), None, far()).await.unwrap();
            while !resp
                .body_mut()
                .frame()
                .await
                .unwrap()
                .unwrap()
                .is_trailers()
            {}
            drop(resp); // as hyper's HTTP/1 server does once it has the trailers
        }
        assert_eq!(conns.load(Ordering::SeqCst), 1);
    }

    /// A request body fed by a channel, of a declared length.
    struct ChanBody(tokio::sync::mpsc::Receiver<Bytes>, u64);

    impl Body for ChanBody {
        type Data = Bytes;
        type Error = crate::body::BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
        }

        fn size_hint(&self) -> SizeHint {
            SizeHint::with_exact(self.1)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_whose_request_body_still_streams_is_not_lent_until_it_ends() {
        // POST: answered at once, then the 10-byte body is read; HEAD and GET: answered.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&conns);
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    loop {
                        head.clear();
                        let mut byte = [0u8; 1];
                        while !head.ends_with(b"\r\n\r\n") {
                            match s.read(&mut byte).await {
                                Ok(1) => head.push(byte[0]),
                                _ => return,
                            }
                        }
                        let answer: &[u8] = if head.starts_with(b"POST") {
                            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nearly"
                        } else if head.starts_with(b"HEAD") {
                            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"
                        } else {
                            b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecond"
                        };
                        s.write_all(answer).await.unwrap();
                        if head.starts_with(b"POST") {
                            let mut body = [0u8; 10];
                            s.read_exact(&mut body).await.unwrap();
                        }
                    }
                });
            }
        });
        let pool = pool(format!("http://{addr}/").parse().unwrap());
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let req = Request::post("/up")
            .header("host", "h")
            .header("content-length", "10")
            .body(crate::body::boxed(ChanBody(rx, 10)))
            .unwrap();
        tx.send(Bytes::from_static(b"12345")).await.unwrap();
        let resp = pool.send(req, None, far()).await.unwrap();
        assert_eq!(text(resp).await, "early");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pool.idle_count(), 0, "its request body is still streaming");
        // Another request meanwhile gets a connection of its own.
        assert_eq!(
            text(pool.send(get(), None, far()).await.unwrap()).await,
            "second"
        );
        assert_eq!(conns.load(Ordering::SeqCst), 2);
        tx.send(Bytes::from_static(b"67890")).await.unwrap();
        drop(tx);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pool.idle_count(), 2, "back once its body was sent");
        for _ in 0..4 {
            let head = Request::head("/x")
                .header("host", "h")
                .body(body::empty())
                .unwrap();
            drop(pool.send(head, None, far()).await.unwrap());
            assert_eq!(
                text(pool.send(get(), None, far()).await.unwrap()).await,
                "second"
            );
        }
        assert_eq!(conns.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let pool = pool(format!("http://{addr}/").parse().unwrap());
        let err = pool.send(get(), None, far()).await.unwrap_err();
        assert!(matches!(err, SendError::Connect(_)), "{err}");
    }

    #[tokio::test]
    async fn concurrent_requests_each_get_a_connection_and_all_come_back() {
        let (target, conns, _) = upstream(100, OK).await;
        let pool = pool(target);
        let a = pool.send(get(), None, far()).await.unwrap();
        let b = pool.send(get(), None, far()).await.unwrap();
        assert_eq!(
            conns.load(Ordering::SeqCst),
            2,
            "the first is still lent out"
        );
        assert_eq!(text(a).await, "ok");
        assert_eq!(text(b).await, "ok");
        assert_eq!(pool.idle_count(), 2);
        let _ = text(pool.send(get(), None, far()).await.unwrap()).await;
        assert_eq!(conns.load(Ordering::SeqCst), 2);
    }

    /// An h2c upstream (hyper's server) answering `ok`; returns its address and the
    /// connections it accepted.
    async fn h2c_upstream() -> (Uri, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&conns);
        tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.unwrap();
                c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(Response::new(body::full("ok")))
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(s), service)
                        .await;
                });
            }
        });
        (format!("http://{addr}/").parse().unwrap(), conns)
    }

    #[tokio::test]
    async fn a_burst_of_first_requests_to_an_http2_upstream_opens_one_connection() {
        let (target, conns) = h2c_upstream().await;
        let pool = pool_speaking(target, crate::config::UpstreamProtocol::Http2);
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let pool = Arc::clone(&pool);
            burst.spawn(async move { text(pool.send(get(), None, far()).await.unwrap()).await });
        }
        while let Some(done) = burst.join_next().await {
            assert_eq!(done.unwrap(), "ok");
        }
        assert_eq!(
            conns.load(Ordering::SeqCst),
            1,
            "every stream on the one shared connection"
        );
    }

    #[tokio::test]
    async fn a_burst_to_an_http2_upstream_that_is_down_fails_each_request_as_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let target: Uri = format!("http://{addr}/").parse().unwrap();
        let pool = pool_speaking(target, crate::config::UpstreamProtocol::Http2);
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let pool = Arc::clone(&pool);
            burst.spawn(async move { pool.send(get(), None, far()).await });
        }
        while let Some(done) = burst.join_next().await {
            let err = done.unwrap().unwrap_err();
            assert!(
                matches!(err, SendError::Connect(ConnectError::Tcp(_))),
                "{err}"
            );
        }
    }

    /// An upstream that answers each request head `delay` later with `response`.
    async fn slow_upstream(delay: Duration, response: String) -> (Uri, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&conns);
        let response: &'static str = Box::leak(response.into_boxed_str());
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    while read_head(&mut s).await {
                        tokio::time::sleep(delay).await;
                        if s.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (format!("http://{addr}/").parse().unwrap(), conns)
    }

    /// Waits until the pool holds `n` idle connections (at most 5 s; not a timing check).
    async fn idle_becomes(pool: &Pool, n: usize) -> bool {
        for _ in 0..500 {
            if pool.idle_count() == n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    fn budget(exchanges: usize) -> ClientBudget {
        let slot = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        ClientBudget::new(exchanges, Arc::new(slot))
    }

    #[tokio::test]
    async fn a_request_cancelled_before_its_head_finishes_in_the_background_and_keeps_its_connection(
    ) {
        let (target, conns) = slow_upstream(Duration::from_millis(100), OK.to_owned()).await;
        let pool = pool(target);
        let budget = budget(1);
        let lease = budget.lease().await.unwrap();
        let cancelled = tokio::time::timeout(
            Duration::from_millis(10),
            pool.send(get(), Some(lease), far()),
        )
        .await;
        assert!(cancelled.is_err(), "dropped before the head arrived");
        assert_eq!(budget.exchanges.available_permits(), 0, "the lease goes on");
        assert!(idle_becomes(&pool, 1).await, "back once answered");
        assert_eq!(
            budget.exchanges.available_permits(),
            1,
            "and the lease with it"
        );
        assert_eq!(
            text(pool.send(get(), None, far()).await.unwrap()).await,
            "ok"
        );
        assert_eq!(conns.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_cancelled_request_past_its_deadline_closes_its_connection() {
        let (target, conns) = slow_upstream(Duration::from_millis(300), OK.to_owned()).await;
        let pool = pool(target);
        let deadline = crate::clock::monotonic() + Duration::from_millis(50);
        let cancelled =
            tokio::time::timeout(Duration::from_millis(10), pool.send(get(), None, deadline)).await;
        assert!(cancelled.is_err());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(pool.idle_count(), 0, "given up at the deadline");
        let _ = text(pool.send(get(), None, far()).await.unwrap()).await;
        assert_eq!(conns.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_body_dropped_half_read_is_drained_and_its_connection_reused() {
        let len = 256 * 1024;
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n{}",
            "x".repeat(len)
        );
        let (target, conns) = slow_upstream(Duration::ZERO, response).await;
        let pool = pool(target);
        let budget = budget(1);
        let lease = budget.lease().await.unwrap();
        let mut resp = pool.send(get(), Some(lease), far()).await.unwrap();
        let first = resp.body_mut().frame().await.unwrap().unwrap();
        assert!(first.data_ref().unwrap().len() < len);
        drop(resp);
        assert!(
            idle_becomes(&pool, 1).await,
            "the rest was read and thrown away"
        );
        assert_eq!(budget.exchanges.available_permits(), 1);
        let resp = pool.send(get(), None, far()).await.unwrap();
        assert_eq!(
            text(resp).await.len(),
            len,
            "the next response is whole and its own"
        );
        assert_eq!(conns.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_with_more_than_drain_bytes_left_closes_its_connection() {
        let len = usize::try_from(DRAIN_BYTES).unwrap() * 2;
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n{}",
            "x".repeat(len)
        );
        let (target, conns) = slow_upstream(Duration::ZERO, response).await;
        let pool = pool(target);
        let mut resp = pool.send(get(), None, far()).await.unwrap();
        let _ = resp.body_mut().frame().await.unwrap().unwrap();
        drop(resp);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(pool.idle_count(), 0);
        let _ = text(pool.send(get(), None, far()).await.unwrap()).await;
        assert_eq!(conns.load(Ordering::SeqCst), 2);
    }
}
