//! A recording upstream for end-to-end tests: a hyper server on `127.0.0.1:0` (HTTP/1.1 and
//! h2c) that remembers what it received (method, path and query, headers, body size and
//! SHA-256; never the body itself) and answers according to the path:
//!
//! | path | answer |
//! |---|---|
//! | `/slow?ms=N` | sleeps N ms, then the default answer |
//! | `/status/NNN` | status NNN, the default body |
//! | `/echo-size` | `200`, the received body's byte count as text |
//! | `/download?bytes=N` | `200`, N bytes of [`pattern`] streamed in 64 KiB frames |
//! | `/with-cors` | the default answer with `Access-Control-Allow-Origin: https://upstream.example` |
//! | anything else | `200`, `{"upstream":"ok","method":..,"path":..}` |
//!
//! A request is recorded once its body has been read, before the answer (so a `/slow` request
//! the gateway gave up on is still seen).

// reason: test support: not every test uses every helper, and a failure here is a test failure.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use dpop_gateway::body::{self, BoxError, GatewayBody};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The frame size of `/download` bodies.
const DOWNLOAD_FRAME: usize = 64 * 1024;

/// A running recording upstream; stops accepting when dropped.
pub struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Connections accepted (TLS: handshakes completed).
    connections: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
}

/// One request as the upstream received it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The method.
    pub method: Method,
    /// The path and query, as received.
    pub uri: String,
    /// The HTTP version the request came with (the gateway forwards HTTP/1.1).
    pub version: Version,
    /// Every header, as received.
    pub headers: HeaderMap,
    /// The body's length in bytes.
    pub body_len: u64,
    /// The body's SHA-256, computed while it streamed.
    pub body_sha256: [u8; 32],
    /// Whether the body reached its end (not broken off: a connection cut, a stream reset).
    pub body_complete: bool,
}

/// The body of `/download?bytes=N`: byte `i` is `i % 251` (a prime, so frames differ).
struct Download {
    sent: u64,
    len: u64,
    /// Whether the size is announced (`Content-Length`) or left open (chunked, h2 DATA only).
    exact: bool,
}

// === impl Upstream ===

impl Upstream {
    /// Starts an upstream on `127.0.0.1:0`.
    pub async fn start() -> Upstream {
        Self::start_with(None).await
    }

    /// Starts an upstream on `127.0.0.1:0` that speaks TLS with `tls` (HTTP/1.1 or HTTP/2,
    /// whichever the client speaks; ALPN as `tls` offers).
    pub async fn start_tls(tls: Arc<rustls::ServerConfig>) -> Upstream {
        Self::start_with(Some(tokio_rustls::TlsAcceptor::from(tls))).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorder = Arc::clone(&seen);
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let recorder = Arc::clone(&recorder);
                let tls = tls.clone();
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(req, Arc::clone(&recorder)));
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            counter.fetch_add(1, Ordering::SeqCst);
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                        Some(acceptor) => {
                            // A handshake the client gives up on (an untrusted certificate) ends here.
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            counter.fetch_add(1, Ordering::SeqCst);
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                });
            }
        });
        Upstream {
            addr,
            seen,
            connections,
            accept,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://localhost:PORT`, for `upstream.url` of a TLS upstream (the name its test
    /// certificate is for).
    pub fn https_url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// `http://127.0.0.1:PORT`, for `upstream.url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far (for TLS, handshakes completed).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("upstream record").clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn handle(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Result<Response<GatewayBody>, Infallible> {
    let (parts, mut incoming) = req.into_parts();
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut body_len = 0u64;
    let mut body_complete = true;
    while let Some(frame) = incoming.frame().await {
        // A body that breaks off is recorded as far as it came.
        let Ok(frame) = frame else {
            body_complete = false;
            break;
        };
        if let Some(data) = frame.data_ref() {
            digest.update(data);
            body_len += data.len() as u64;
        }
    }
    let mut body_sha256 = [0u8; 32];
    body_sha256.copy_from_slice(digest.finish().as_ref());
    let path = parts.uri.path().to_owned();
    let uri = parts
        .uri
        .path_and_query()
        .map_or_else(|| path.clone(), |p| p.as_str().to_owned());
    seen.lock().expect("upstream record").push(Seen {
        method: parts.method.clone(),
        uri,
        version: parts.version,
        headers: parts.headers,
        body_len,
        body_sha256,
        body_complete,
    });

    let query = parts.uri.query().unwrap_or("");
    let default = || {
        let json =
            serde_json::json!({ "upstream": "ok", "method": parts.method.as_str(), "path": path });
        Response::builder()
            .header("content-type", "application/json")
            .body(body::full(json.to_string()))
            .expect("response")
    };
    let response = if path.ends_with("/slow") {
        let ms = param(query, "ms").unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        default()
    } else if let Some(code) = path.strip_prefix("/status/") {
        let mut r = default();
        *r.status_mut() = code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::BAD_REQUEST);
        r
    } else if path == "/trailers" {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        trailers.insert("grpc-message", http::HeaderValue::from_static("fine"));
        Response::builder()
            .header("content-type", "application/grpc")
            .body(body::boxed(WithTrailers {
                data: Some(Bytes::from_static(b"with trailers")),
                trailers: Some(trailers),
            }))
            .expect("response")
    } else if path == "/with-cors" {
        let mut r = default();
        r.headers_mut().insert(
            "access-control-allow-origin",
            http::HeaderValue::from_static("https://upstream.example"),
        );
        r
    } else if path == "/echo-size" {
        Response::new(body::full(body_len.to_string()))
    } else if path == "/download" {
        let len = param(query, "bytes").unwrap_or(0);
        Response::builder()
            .header("content-type", "application/octet-stream")
            .body(pattern_body(len, true))
            .expect("response")
    } else {
        default()
    };
    Ok(response)
}

/// `name=N` from a query string.
fn param(query: &str, name: &str) -> Option<u64> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}

/// The first `len` bytes of the `/download` pattern (byte `i` is `i % 251`).
pub fn pattern(len: u64) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// `len` bytes of [`pattern`], generated as they are sent (64 KiB frames; nothing is held in
/// memory): for large uploads. With `exact`, the size is announced (hyper sends
/// `Content-Length`); without, HTTP/1.1 sends it chunked.
pub fn pattern_body(len: u64, exact: bool) -> GatewayBody {
    body::boxed(Download {
        sent: 0,
        len,
        exact,
    })
}

/// The SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

// === impl Download ===

impl Body for Download {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.sent >= self.len {
            return Poll::Ready(None);
        }
        let n = (self.len - self.sent).min(DOWNLOAD_FRAME as u64);
        let chunk: Vec<u8> = (self.sent..self.sent + n)
            .map(|i| (i % 251) as u8)
            .collect();
        self.sent += n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.len
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact {
            SizeHint::with_exact(self.len - self.sent)
        } else {
            SizeHint::default()
        }
    }
}

/// A body of one data frame and then trailers.
pub struct WithTrailers {
    pub data: Option<Bytes>,
    pub trailers: Option<HeaderMap>,
}

impl Body for WithTrailers {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}
