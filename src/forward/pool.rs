//! The upstream connection pool: keep-alive HTTP/1.1 connections to the one upstream, reused
//! most recently used first.
//!
//! A connection is lent to one request at a time. It comes back to the pool when its response
//! body has been read to the end and hyper says the connection can take the next request; a
//! response dropped before its end (the client went away) closes the connection instead, since
//! the rest of that response is still on the wire. Idle connections older than
//! [`IDLE_TIMEOUT`] are not reused and are closed by a sweep.
//!
//! A request sent on a reused connection that hyper gives back unsent (the upstream closed the
//! connection while it was idle, the race every keep-alive client has) is sent once more on a
//! new connection; a request that was written, even in part, is never sent twice.
//!
//! This replaces hyper-util's general pool (many hosts, HTTP/2, a key hashed per checkout) with
//! what one upstream needs, on the path every forwarded request takes.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::client::legacy::connect::HttpConnector;

use crate::body::GatewayBody;

/// How long an idle connection is kept; under the usual 60-120 s upstream idle timeouts, so
/// that the gateway, not the upstream, closes it.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// How often idle connections past [`IDLE_TIMEOUT`] are closed.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// Keep-alive connections to one upstream.
pub(crate) struct Pool {
    connector: HttpConnector,
    /// `http://authority/`: what the connector connects to.
    target: Uri,
    idle: Mutex<Vec<Idle>>,
    /// Set once the sweep task runs (it starts with the first connection).
    sweeping: std::sync::Once,
}

/// An idle connection and when it came back.
struct Idle {
    tx: SendRequest<GatewayBody>,
    since: Instant,
}

/// Why a request got no response.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be opened.
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// The exchange failed on the connection.
    Http(hyper::Error),
}

// === impl Pool ===

impl Pool {
    /// A pool of connections to `target` (`http://authority/`), opened by `connector`.
    pub(crate) fn new(connector: HttpConnector, target: Uri) -> Arc<Pool> {
        Arc::new(Pool {
            connector,
            target,
            idle: Mutex::new(Vec::new()),
            sweeping: std::sync::Once::new(),
        })
    }

    /// Sends `req` (origin-form URI, `Host` set) and returns the response once its head is in.
    /// Its body, read to the end, returns the connection to the pool.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut req: Request<GatewayBody>,
    ) -> Result<Response<PooledBody>, SendError> {
        let mut fresh_only = false;
        loop {
            let pooled = if fresh_only { None } else { self.checkout() };
            let reused = pooled.is_some();
            let mut tx = match pooled {
                Some(tx) => tx,
                None => self.connect().await?,
            };
            match tx.try_send_request(req).await {
                Ok(resp) => {
                    let pool = Arc::downgrade(self);
                    return Ok(resp.map(|inner| PooledBody {
                        inner,
                        conn: Some((tx, pool)),
                    }));
                }
                Err(mut e) => match e.take_message() {
                    // Not written: the pooled connection was closed under us. Once more, fresh.
                    Some(unsent) if reused => {
                        tracing::debug!(error = %e.error(), "pooled upstream connection closed; retrying on a new one");
                        req = unsent;
                        fresh_only = true;
                    }
                    _ => return Err(SendError::Http(e.into_error())),
                },
            }
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

    /// Opens a connection and starts driving it.
    async fn connect(self: &Arc<Self>) -> Result<SendRequest<GatewayBody>, SendError> {
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| tower_service::Service::poll_ready(&mut connector, cx))
            .await
            .map_err(|e| SendError::Connect(e.into()))?;
        let io = tower_service::Service::call(&mut connector, self.target.clone())
            .await
            .map_err(|e| SendError::Connect(e.into()))?;
        let (tx, conn) = http1::handshake(io).await.map_err(SendError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        self.sweeping.call_once(|| {
            tokio::spawn(sweep(Arc::downgrade(self)));
        });
        Ok(tx)
    }

    /// Returns `tx` once it can take the next request; a closed connection is dropped.
    fn checkin(self: Arc<Self>, mut tx: SendRequest<GatewayBody>) {
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
            SendError::Connect(e) => e.source(),
            SendError::Http(e) => e.source(),
        }
    }
}

/// A response body that returns its connection to the pool once read to the end.
#[derive(Debug)]
pub(crate) struct PooledBody {
    inner: Incoming,
    conn: Option<(SendRequest<GatewayBody>, Weak<Pool>)>,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((tx, pool)) = self.conn.take() {
            if let Some(pool) = pool.upgrade() {
                pool.checkin(tx);
            }
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            // Nothing follows trailers in HTTP/1, and hyper's server stops reading there.
            Poll::Ready(Some(Ok(frame))) if frame.is_trailers() || self.inner.is_end_stream() => {
                self.release()
            }
            // An error: the connection is broken; dropping it closes it.
            Poll::Ready(Some(Err(_))) => self.conn = None,
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

impl Drop for PooledBody {
    fn drop(&mut self) {
        // A body with nothing left (empty, or never polled because it was known empty) returns
        // the connection; one dropped half-read leaves the rest on the wire: close.
        if self.inner.is_end_stream() {
            self.release();
        }
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

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

    fn pool(target: Uri) -> Arc<Pool> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Pool::new(connector, target)
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
            let resp = pool.send(get()).await.unwrap();
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
            let resp = pool.send(get()).await.unwrap();
            assert_eq!(resp.status(), 204);
            assert!(resp.body().is_end_stream());
            drop(resp);
            assert_eq!(pool.idle_count(), 1);
        }
        assert_eq!(conns.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_half_read_closes_its_connection() {
        let (target, conns, _) =
            upstream(100, "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf").await;
        let pool = pool(target);
        let mut resp = pool.send(get()).await.unwrap();
        let first = resp.body_mut().frame().await.unwrap().unwrap();
        assert_eq!(first.data_ref().unwrap().as_ref(), b"half");
        drop(resp);
        assert_eq!(
            pool.idle_count(),
            0,
            "the rest of that response is still due"
        );
        // The next request cannot get that connection's remaining bytes as its response.
        let _ = pool.send(get()).await.unwrap();
        assert_eq!(conns.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_idle_connection_the_upstream_closed_is_replaced_and_the_request_sent_once() {
        // One request per connection, then a silent close: every pooled connection goes stale.
        let (target, conns, requests) = upstream(1, OK).await;
        let pool = pool(target);
        for i in 1..=4 {
            let resp = pool.send(get()).await.unwrap();
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
            assert_eq!(text(pool.send(get()).await.unwrap()).await, "ok");
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
            let mut resp = pool.send(get()).await.unwrap();
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
        let resp = pool.send(req).await.unwrap();
        assert_eq!(text(resp).await, "early");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pool.idle_count(), 0, "its request body is still streaming");
        // Another request meanwhile gets a connection of its own.
        assert_eq!(text(pool.send(get()).await.unwrap()).await, "second");
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
            drop(pool.send(head).await.unwrap());
            assert_eq!(text(pool.send(get()).await.unwrap()).await, "second");
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
        let err = pool.send(get()).await.unwrap_err();
        assert!(matches!(err, SendError::Connect(_)), "{err}");
    }

    #[tokio::test]
    async fn concurrent_requests_each_get_a_connection_and_all_come_back() {
        let (target, conns, _) = upstream(100, OK).await;
        let pool = pool(target);
        let a = pool.send(get()).await.unwrap();
        let b = pool.send(get()).await.unwrap();
        assert_eq!(
            conns.load(Ordering::SeqCst),
            2,
            "the first is still lent out"
        );
        assert_eq!(text(a).await, "ok");
        assert_eq!(text(b).await, "ok");
        assert_eq!(pool.idle_count(), 2);
        let _ = text(pool.send(get()).await.unwrap()).await;
        assert_eq!(conns.load(Ordering::SeqCst), 2);
    }
}
