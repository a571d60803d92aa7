//! Forwarding to the upstream: pooled keep-alive HTTP/1.1 connections ([`pool`]), the request
//! URI rewritten onto `upstream.url`, bodies streamed both ways, and the wait for response
//! headers bounded by `upstream.request_timeout`.
//!
//! Header policy (what is stripped and set) lives in [`headers`]; the pipeline applies it before
//! [`Forwarder::send`], which only adds a `Host` when the request has none (HTTP/2) and removes
//! hop-by-hop headers from the response. Upgrades (WebSocket) are not forwarded: `Upgrade` and
//! `Connection` are hop-by-hop and are removed.

pub(crate) mod headers;
pub(crate) mod pool;

use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{header, HeaderValue, Request, Response, Uri, Version};
use hyper_util::client::legacy::connect::HttpConnector;

use crate::body::{self, GatewayBody};
use crate::config::UpstreamConfig;
use crate::error_chain;

/// TCP keepalive probes on idle pooled connections, so a silently dropped upstream is noticed.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Sends requests to the upstream over pooled connections.
#[derive(Clone)]
pub(crate) struct Forwarder {
    pool: Arc<pool::Pool>,
    /// `Host` for a request that has none (HTTP/1.0 without one).
    authority: HeaderValue,
    /// The path of `upstream.url` without its trailing `/` (empty for none).
    prefix: String,
    request_timeout: Duration,
}

/// Why a request could not be forwarded.
#[derive(Debug)]
pub enum ForwardError {
    /// No connection to the upstream (refused, unreachable, or `connect_timeout` passed).
    Connect(String),
    /// No response headers within `upstream.request_timeout`.
    Timeout {
        /// The configured `request_timeout`.
        after: Duration,
    },
    /// Anything else: the connection broke, the upstream answered something that is not HTTP,
    /// or the request could not be built.
    Other(String),
}

// === impl Forwarder ===

impl Forwarder {
    /// A forwarder to `cfg.url`; connections are opened on first use.
    pub(crate) fn new(cfg: &UpstreamConfig) -> Forwarder {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(cfg.connect_timeout));
        connector.set_nodelay(true);
        connector.set_keepalive(Some(TCP_KEEPALIVE));
        let parts = cfg.url.clone().into_parts();
        let prefix = parts
            .path_and_query
            .as_ref()
            .map(|p| p.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        // Config validation guarantees an http URL with an authority; without one, every
        // connection attempt fails (a 502 that names the URI).
        let authority = parts
            .authority
            .unwrap_or_else(|| Authority::from_static("invalid"));
        let target = Uri::builder()
            .scheme(parts.scheme.unwrap_or(Scheme::HTTP))
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .unwrap_or_default();
        Forwarder {
            pool: pool::Pool::new(connector, target),
            authority: HeaderValue::from_str(&host_of(&authority))
                .unwrap_or_else(|_| HeaderValue::from_static("invalid")),
            prefix,
            request_timeout: cfg.request_timeout,
        }
    }

    /// Sends `req` (headers already prepared, see [`headers::prepare_request`]) to the upstream
    /// and returns its response once the headers are in; both bodies stream.
    pub(crate) async fn send(
        &self,
        mut req: Request<GatewayBody>,
    ) -> Result<Response<GatewayBody>, ForwardError> {
        // An HTTP/2 request carries its host in `:authority`; the upstream speaks HTTP/1.1 and
        // legacy APIs build URLs from `Host`, so it must see the one the client used. A request
        // with neither (HTTP/1.0) gets the upstream's.
        if !req.headers().contains_key(header::HOST) {
            let host = req
                .uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                .unwrap_or_else(|| self.authority.clone());
            req.headers_mut().insert(header::HOST, host);
        }
        *req.uri_mut() = self.upstream_uri(req.uri())?;
        *req.version_mut() = Version::HTTP_11;

        let response = match tokio::time::timeout(self.request_timeout, self.pool.send(req)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e @ pool::SendError::Connect(_))) => {
                return Err(ForwardError::Connect(error_chain(&e)))
            }
            Ok(Err(e)) => return Err(ForwardError::Other(error_chain(&e))),
            Err(_elapsed) => {
                return Err(ForwardError::Timeout {
                    after: self.request_timeout,
                })
            }
        };
        let (mut parts, incoming) = response.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, body::boxed(incoming)))
    }

    /// The origin-form target for the upstream: `upstream.url`'s path + the request's path and
    /// query; the client's scheme and authority (absolute-form, `:authority`) are not used.
    fn upstream_uri(&self, uri: &Uri) -> Result<Uri, ForwardError> {
        let path_and_query = uri.path_and_query().map_or("/", PathAndQuery::as_str);
        if self.prefix.is_empty() || !path_and_query.starts_with('/') {
            // No prefix, or `OPTIONS *` (RFC 9110 §7.1): the target goes through as it is.
            if let Some(pq) = uri.path_and_query() {
                return Ok(Uri::from(pq.clone()));
            }
            return Ok(Uri::from_static("/"));
        }
        Uri::try_from(format!("{}{path_and_query}", self.prefix))
            .map_err(|e| ForwardError::Other(format!("upstream URI: {e}")))
    }
}

/// `Host` for `authority` (RFC 9110 §7.2): without the port when it is http's default.
fn host_of(authority: &Authority) -> String {
    match authority.port_u16() {
        Some(port) if port != 80 => format!("{}:{port}", authority.host()),
        _ => authority.host().to_owned(),
    }
}

impl std::fmt::Display for ForwardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForwardError::Connect(msg) => write!(f, "cannot connect to the upstream: {msg}"),
            ForwardError::Timeout { after } => {
                write!(
                    f,
                    "the upstream sent no response headers within {after:?} (request_timeout)"
                )
            }
            ForwardError::Other(msg) => write!(f, "forwarding to the upstream failed: {msg}"),
        }
    }
}

impl std::error::Error for ForwardError {}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;

    use bytes::Bytes;
    use http_body_util::BodyExt;
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;

    use super::*;

    fn config(url: &str, request_timeout: Duration) -> UpstreamConfig {
        UpstreamConfig {
            url: url.parse().unwrap(),
            connect_timeout: Duration::from_secs(2),
            request_timeout,
            readiness: crate::config::UpstreamReadiness::None,
        }
    }

    /// An upstream that answers `METHOD URI HOST BODY-LEN` (and sleeps on `/slow`).
    async fn upstream() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let svc = service_fn(|req: Request<Incoming>| async move {
                        if req.uri().path() == "/slow" {
                            tokio::time::sleep(Duration::from_secs(5)).await;
                        }
                        let head = format!(
                            "{} {} {} ",
                            req.method(),
                            req.uri(),
                            req.headers()
                                .get("host")
                                .and_then(|h| h.to_str().ok())
                                .unwrap_or("-"),
                        );
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let mut resp = Response::new(http_body_util::Full::new(Bytes::from(
                            format!("{head}{}", body.len()),
                        )));
                        resp.headers_mut()
                            .insert("connection", HeaderValue::from_static("x-hop"));
                        resp.headers_mut()
                            .insert("x-hop", HeaderValue::from_static("1"));
                        Ok::<_, Infallible>(resp)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        addr
    }

    async fn text(resp: Response<GatewayBody>) -> String {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn forwards_path_and_query_to_the_upstream() {
        let addr = upstream().await;
        let fwd = Forwarder::new(&config(&format!("http://{addr}"), Duration::from_secs(5)));
        let req = Request::post("/v1/items?id=7&x=%20")
            .header("host", "api.example.com")
            .body(body::full("hello"))
            .unwrap();
        let resp = fwd.send(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().get("x-hop").is_none(), "hop-by-hop stripped");
        assert!(resp.headers().get("connection").is_none());
        assert_eq!(
            text(resp).await,
            "POST /v1/items?id=7&x=%20 api.example.com 5"
        );
    }

    #[tokio::test]
    async fn prepends_the_upstream_path_prefix() {
        let addr = upstream().await;
        let fwd = Forwarder::new(&config(
            &format!("http://{addr}/api/"),
            Duration::from_secs(5),
        ));
        let req = Request::get("/v1?q=1")
            .header("host", "h")
            .body(body::empty())
            .unwrap();
        let resp = fwd.send(req).await.unwrap();
        assert_eq!(text(resp).await, "GET /api/v1?q=1 h 0");
    }

    #[tokio::test]
    async fn absolute_form_and_http2_requests_use_only_path_and_query_and_keep_their_host() {
        let addr = upstream().await;
        let fwd = Forwarder::new(&config(&format!("http://{addr}"), Duration::from_secs(5)));
        let req = Request::get("https://api.example.com:8443/x?y")
            .version(Version::HTTP_2)
            .body(body::empty())
            .unwrap();
        let resp = fwd.send(req).await.unwrap();
        assert_eq!(text(resp).await, "GET /x?y api.example.com:8443 0");
    }

    #[tokio::test]
    async fn a_request_without_any_host_gets_the_upstreams() {
        let addr = upstream().await;
        let fwd = Forwarder::new(&config(&format!("http://{addr}"), Duration::from_secs(5)));
        let req = Request::get("/x")
            .version(Version::HTTP_10)
            .body(body::empty())
            .unwrap();
        let resp = fwd.send(req).await.unwrap();
        assert_eq!(text(resp).await, format!("GET /x {addr} 0"));
    }

    #[test]
    fn host_of_drops_only_the_default_port_and_never_userinfo() {
        let host = |a: &str| host_of(&a.parse().unwrap());
        assert_eq!(host("api:80"), "api");
        assert_eq!(host("api"), "api");
        assert_eq!(host("api:8080"), "api:8080");
        assert_eq!(host("u:p@api:8080"), "api:8080");
        assert_eq!(host("[::1]:80"), "[::1]");
        assert_eq!(host("[::1]:9"), "[::1]:9");
    }

    #[tokio::test]
    async fn refused_connection_is_a_connect_error() {
        // Bind then drop: the port is (almost certainly) closed.
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let fwd = Forwarder::new(&config(&format!("http://{addr}"), Duration::from_secs(5)));
        let req = Request::get("/").body(body::empty()).unwrap();
        let err = fwd.send(req).await.unwrap_err();
        assert!(matches!(err, ForwardError::Connect(_)), "{err}");
    }

    #[tokio::test]
    async fn slow_upstream_is_a_timeout() {
        let addr = upstream().await;
        let fwd = Forwarder::new(&config(
            &format!("http://{addr}"),
            Duration::from_millis(200),
        ));
        let req = Request::get("/slow").body(body::empty()).unwrap();
        let err = fwd.send(req).await.unwrap_err();
        assert!(
            matches!(err, ForwardError::Timeout { after } if after == Duration::from_millis(200)),
            "{err}"
        );
    }

    #[test]
    fn display_says_what_failed() {
        let e = ForwardError::Other("connection closed".into());
        assert!(e.to_string().contains("connection closed"));
        let t = ForwardError::Timeout {
            after: Duration::from_secs(30),
        };
        assert!(t.to_string().contains("30s"));
    }
}
