//! A small HTTP client for end-to-end tests, one connection per request: HTTP/1.1 or h2c
//! over TCP, or TLS with ALPN (the negotiated protocol is checked), built on hyper's
//! connection-level handshakes so that the test chooses exactly what goes on the wire.
//! [`raw`] writes bytes as given, for malformed requests.
//!
//! Request URIs: an absolute URI (`https://localhost:8443/x?y`) is what a real client would
//! use and keeps `htu` obvious. HTTP/1.1 sends it in origin form with its authority as `Host`
//! (unless the request sets one); HTTP/2 sends it as `:scheme`/`:authority` (a `Host` header,
//! if set, becomes `:authority`). A relative URI gets the connected address as its authority.

// reason: test support: not every test uses every helper, and a failure here is a test failure.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dpop_gateway::body::{BoxError, GatewayBody};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{header, HeaderValue, Request, Response, Uri, Version};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How long [`raw`] waits for the server to close.
const RAW_READ_LIMIT: Duration = Duration::from_secs(5);

/// The TLS server name the client asks for (the test certificate is for `localhost`).
const SERVER_NAME: &str = "localhost";

/// How to talk to the server.
#[derive(Clone)]
pub enum Mode {
    /// HTTP/1.1 over TCP.
    H1,
    /// HTTP/2 over TCP with prior knowledge (h2c).
    H2c,
    /// HTTP/1.1 over TLS; the server must not pick `h2`.
    H1Tls(Arc<ClientConfig>),
    /// HTTP/2 over TLS; the server must pick `h2` by ALPN.
    H2Tls(Arc<ClientConfig>),
}

// === impl Mode ===

impl Mode {
    fn is_h2(&self) -> bool {
        matches!(self, Mode::H2c | Mode::H2Tls(_))
    }

    fn scheme(&self) -> Scheme {
        match self {
            Mode::H1 | Mode::H2c => Scheme::HTTP,
            Mode::H1Tls(_) | Mode::H2Tls(_) => Scheme::HTTPS,
        }
    }
}

/// `GET path` on an admin listener (plain HTTP/1.1).
pub async fn admin_get(addr: SocketAddr, path: &str) -> Response<Bytes> {
    let req = Request::builder()
        .uri(path)
        .header("host", "admin")
        .body(Full::new(Bytes::new()))
        .expect("request");
    send(addr, Mode::H1, req).await
}

/// Sends `req` and returns the response with its body collected; panics on any failure.
pub async fn send(addr: SocketAddr, mode: Mode, req: Request<Full<Bytes>>) -> Response<Bytes> {
    match try_send(addr, mode, req).await {
        Ok(resp) => resp,
        Err(e) => panic!("request to {addr} failed: {e}"),
    }
}

/// Sends a request whose body is a stream (large uploads); panics on any failure.
pub async fn send_streaming(
    addr: SocketAddr,
    mode: Mode,
    req: Request<GatewayBody>,
) -> Response<Bytes> {
    match try_send(addr, mode, req).await {
        Ok(resp) => resp,
        Err(e) => panic!("request to {addr} failed: {e}"),
    }
}

/// Sends `req` and collects the response body; the error says what failed.
pub async fn try_send<B>(
    addr: SocketAddr,
    mode: Mode,
    req: Request<B>,
) -> Result<Response<Bytes>, BoxError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let resp = try_send_streamed(addr, mode, req).await?;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, bytes))
}

/// Sends `req` and returns the response as soon as its head is in, the body still streaming
/// (large downloads, or checking that the first bytes arrive before the last are sent).
pub async fn try_send_streamed<B>(
    addr: SocketAddr,
    mode: Mode,
    req: Request<B>,
) -> Result<Response<Incoming>, BoxError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let req = shape(addr, &mode, req)?;
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    match &mode {
        Mode::H1 => exchange(tcp, false, req).await,
        Mode::H2c => exchange(tcp, true, req).await,
        Mode::H1Tls(config) | Mode::H2Tls(config) => {
            let tls = TlsConnector::from(Arc::clone(config))
                .connect(ServerName::try_from(SERVER_NAME)?, tcp)
                .await?;
            let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            let h2 = alpn.as_deref() == Some(b"h2");
            if h2 != mode.is_h2() {
                return Err(format!(
                    "ALPN negotiated {:?}, not what {} needs",
                    alpn.map(|a| String::from_utf8_lossy(&a).into_owned()),
                    if mode.is_h2() { "H2Tls" } else { "H1Tls" }
                )
                .into());
            }
            exchange(tls, h2, req).await
        }
    }
}

/// Puts the request in the form its protocol sends (see the module doc).
fn shape<B>(addr: SocketAddr, mode: &Mode, mut req: Request<B>) -> Result<Request<B>, BoxError> {
    let uri = req.uri().clone();
    let path_and_query = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let default_authority: Authority = addr.to_string().parse()?;
    if mode.is_h2() {
        let authority = match req.headers_mut().remove(header::HOST) {
            Some(host) => host.to_str()?.parse()?,
            None => uri.authority().cloned().unwrap_or(default_authority),
        };
        *req.uri_mut() = Uri::builder()
            .scheme(uri.scheme().cloned().unwrap_or_else(|| mode.scheme()))
            .authority(authority)
            .path_and_query(path_and_query)
            .build()?;
        *req.version_mut() = Version::HTTP_2;
    } else {
        if !req.headers().contains_key(header::HOST) {
            let authority = uri.authority().cloned().unwrap_or(default_authority);
            req.headers_mut()
                .insert(header::HOST, HeaderValue::from_str(authority.as_str())?);
        }
        *req.uri_mut() = Uri::from(path_and_query);
        *req.version_mut() = Version::HTTP_11;
    }
    Ok(req)
}

/// One request over a fresh connection; the connection is driven by a spawned task.
async fn exchange<IO, B>(io: IO, h2: bool, req: Request<B>) -> Result<Response<Incoming>, BoxError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let io = TokioIo::new(io);
    if h2 {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender.send_request(req).await?)
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender.send_request(req).await?)
    }
}

/// Writes `bytes` to a fresh TCP connection and returns everything read until the server
/// closes it or 5 s pass.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before reading everything: a failed write is fine.
    let _ = stream.write_all(bytes).await;
    let deadline = tokio::time::Instant::now() + RAW_READ_LIMIT;
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&chunk[..n]);
    }
    out
}
