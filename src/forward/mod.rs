//! Forwarding to an upstream: one [`Forwarder`] per configured upstream (`upstream`, named
//! `default`, and each of `upstreams`), each with its own [`pool`] of connections opened by
//! [`connect`] (TCP, or TLS verified against the system roots plus `tls.ca_file`), the
//! request URI rewritten onto the upstream's URL (less the route prefix with `strip_prefix`),
//! bodies and trailers streamed both ways, and the wait for response headers bounded by
//! `request_timeout`. HTTP/1.1, or HTTP/2 when ALPN picks `h2` or `protocol: http2` says so.
//!
//! Header policy (what is stripped and set) lives in [`headers`]; the pipeline applies it before
//! [`Forwarder::send`], which only adds a `Host` when the request has none (HTTP/2) and removes
//! hop-by-hop headers from the response. A WebSocket handshake goes through
//! [`Forwarder::tunnel`] instead ([`tunnel`]: its own connection, `Upgrade` kept); any other
//! `Upgrade` is hop-by-hop and removed, and a 101 to a request that is not a WebSocket
//! handshake is a 502.

pub(crate) mod connect;
pub(crate) mod headers;
pub(crate) mod pool;
pub(crate) mod tunnel;

use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{header, HeaderValue, Request, Response, Uri, Version};

use crate::body::{self, GatewayBody};
use crate::config::UpstreamConfig;
use crate::error_chain;
use crate::metrics::UpstreamMetrics;

/// Sends requests to one upstream over its own pooled connections.
pub(crate) struct Forwarder {
    /// `default` for `upstream`, else its key in `upstreams` (metrics label, access log).
    pub(crate) name: Arc<str>,
    pool: Arc<pool::Pool>,
    /// `Host` for a request that has none (HTTP/1.0 without one).
    authority: HeaderValue,
    /// The path of `upstream.url` without its trailing `/` (empty for none).
    prefix: String,
    request_timeout: Duration,
    /// Its series of the upstream metrics, resolved once.
    pub(crate) metrics: UpstreamMetrics,
}

/// Why a request could not be forwarded.
#[derive(Debug)]
pub enum ForwardError {
    /// No connection to the upstream (refused, unreachable, or `connect_timeout` passed).
    Connect(String),
    /// The TLS handshake with the upstream failed: its certificate did not verify against the
    /// trusted roots for the expected name, or it refused the gateway's.
    Tls(String),
    /// No response headers within `upstream.request_timeout`.
    Timeout {
        /// The configured `request_timeout`.
        after: Duration,
    },
    /// Anything else: the connection broke, the upstream answered something that is not HTTP,
    /// or the request could not be built.
    Other(String),
}

/// `te: trailers`, sent on every HTTP/2 request: the gateway passes trailers on, and gRPC
/// servers require it.
const TE_TRAILERS: HeaderValue = HeaderValue::from_static("trailers");

// === impl Forwarder ===

impl Forwarder {
    /// A forwarder named `name` to `cfg.url`; connections are opened on first use. Reads the
    /// TLS files now (an error names the setting).
    pub(crate) fn new(
        name: &str,
        cfg: &UpstreamConfig,
        metrics: UpstreamMetrics,
    ) -> Result<Forwarder, String> {
        let connector = connect::Connector::new(cfg)?;
        let name: Arc<str> = Arc::from(name);
        if let Some(tls) = connector.tls() {
            tls.spawn_watcher(Arc::clone(&name), crate::server::TLS_RELOAD_INTERVAL);
        }
        let parts = cfg.url.clone().into_parts();
        let prefix = parts
            .path_and_query
            .as_ref()
            .map(|p| p.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        let scheme = parts.scheme.unwrap_or(Scheme::HTTP);
        // Config validation guarantees a URL with an authority.
        let authority = parts
            .authority
            .unwrap_or_else(|| Authority::from_static("invalid"));
        Ok(Forwarder {
            name,
            pool: pool::Pool::new(connector, scheme.clone()),
            authority: HeaderValue::from_str(&host_of(&authority, &scheme))
                .unwrap_or_else(|_| HeaderValue::from_static("invalid")),
            prefix,
            request_timeout: cfg.request_timeout,
            metrics,
        })
    }

    /// Sends `req` (headers already prepared, see [`headers::prepare_request`]) to the upstream
    /// and returns its response once the headers are in; both bodies stream. `strip` is the
    /// route prefix (`strip_prefix: true`, without its trailing `/`) taken off the path first.
    pub(crate) async fn send(
        &self,
        mut req: Request<GatewayBody>,
        strip: Option<&str>,
    ) -> Result<Response<GatewayBody>, ForwardError> {
        self.target(&mut req, strip)?;

        // One of the client connection's upstream exchanges (it waits while all are taken),
        // then the exchange, within request_timeout together.
        let budget = req.extensions_mut().remove::<pool::ClientBudget>();
        let deadline = crate::clock::monotonic() + self.request_timeout;
        let send = async {
            let lease = match &budget {
                Some(b) => b.lease().await,
                None => None,
            };
            self.pool.send(req, lease, deadline).await
        };
        let response = self.within_timeout(send).await?;
        let (mut parts, incoming) = response.into_parts();
        if parts.status == http::StatusCode::SWITCHING_PROTOCOLS {
            // Only `tunnel` asks for an upgrade; this connection is not the tunnel's.
            return Err(ForwardError::Other(
                "the upstream answered 101 to a request that asked for no upgrade".into(),
            ));
        }
        headers::strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, body::boxed(incoming)))
    }

    /// Sends a WebSocket handshake (`req` prepared like any request, see
    /// [`tunnel::wants_websocket`]) on a new HTTP/1.1 connection of its own, with
    /// `Upgrade: websocket` and `Connection: upgrade`. On a 101 for `websocket` the tunnel
    /// starts (once the client's 101 is written) and the client's 101 is returned; any other
    /// answer is returned as a normal response. Within `request_timeout`, like `send`.
    pub(crate) async fn tunnel(
        &self,
        mut req: Request<GatewayBody>,
        strip: Option<&str>,
        tunnels: &tunnel::Tunnels,
    ) -> Result<Response<GatewayBody>, ForwardError> {
        if self.pool.only_h2() {
            return Err(ForwardError::Other(
                "a WebSocket handshake needs HTTP/1.1 to the upstream, and it is protocol: http2"
                    .into(),
            ));
        }
        let client = req
            .extensions_mut()
            .remove::<hyper::upgrade::OnUpgrade>()
            .ok_or_else(|| ForwardError::Other("the client connection cannot upgrade".into()))?;
        self.target(&mut req, strip)?;
        req.headers_mut().insert(header::UPGRADE, tunnel::WEBSOCKET);
        req.headers_mut()
            .insert(header::CONNECTION, tunnel::CONNECTION_UPGRADE);
        let budget = req.extensions_mut().remove::<pool::ClientBudget>();
        let exchange = async {
            let lease = match &budget {
                Some(b) => b.lease().await,
                None => None,
            };
            let mut tx = self.pool.dedicated_h1().await?;
            let resp = tx.send_request(req).await.map_err(pool::SendError::Http)?;
            Ok((resp, lease))
        };
        let (mut resp, lease) = self.within_timeout(exchange).await?;
        if resp.status() != http::StatusCode::SWITCHING_PROTOCOLS {
            let (mut parts, incoming) = resp.into_parts();
            headers::strip_hop_by_hop(&mut parts.headers);
            // The connection goes when the body is done: it is never pooled.
            return Ok(Response::from_parts(parts, body::boxed(incoming)));
        }
        let websocket = resp
            .headers()
            .get(header::UPGRADE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
        if !websocket {
            return Err(ForwardError::Other(
                "the upstream answered 101 for another protocol than websocket".into(),
            ));
        }
        let upstream = hyper::upgrade::on(&mut resp);
        tunnels.spawn(client, upstream, lease);
        Ok(tunnel::switching(std::mem::take(resp.headers_mut())))
    }

    /// `exchange` within `request_timeout`, its error as a [`ForwardError`].
    async fn within_timeout<T>(
        &self,
        exchange: impl std::future::Future<Output = Result<T, pool::SendError>>,
    ) -> Result<T, ForwardError> {
        match tokio::time::timeout(self.request_timeout, exchange).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(pool::SendError::Connect(connect::ConnectError::Tls(e)))) => {
                Err(ForwardError::Tls(e))
            }
            Ok(Err(e @ pool::SendError::Connect(_))) => Err(ForwardError::Connect(error_chain(&e))),
            Ok(Err(e)) => Err(ForwardError::Other(error_chain(&e))),
            Err(_elapsed) => Err(ForwardError::Timeout {
                after: self.request_timeout,
            }),
        }
    }

    /// `req` made the upstream's: `Host` (when it has none), origin-form target onto the
    /// upstream's URL (less `strip`), HTTP/1.1.
    fn target(
        &self,
        req: &mut Request<GatewayBody>,
        strip: Option<&str>,
    ) -> Result<(), ForwardError> {
        // An HTTP/2 request carries its host in `:authority`; an HTTP/1.1 upstream and legacy
        // APIs build URLs from `Host`, so it must see the one the client used. A request
        // with neither (HTTP/1.0) gets the upstream's.
        if !req.headers().contains_key(header::HOST) {
            let host = req
                .uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                .unwrap_or_else(|| self.authority.clone());
            req.headers_mut().insert(header::HOST, host);
        }
        *req.uri_mut() = self.upstream_uri(req.uri(), strip)?;
        *req.version_mut() = Version::HTTP_11;
        Ok(())
    }

    /// The origin-form target for the upstream: `upstream.url`'s path + the request's path
    /// (less `strip`) and query; the client's scheme and authority (absolute-form,
    /// `:authority`) are not used.
    fn upstream_uri(&self, uri: &Uri, strip: Option<&str>) -> Result<Uri, ForwardError> {
        let path_and_query = uri.path_and_query().map_or("/", PathAndQuery::as_str);
        let rest = match strip {
            Some(prefix) if !prefix.is_empty() => strip_route_prefix(path_and_query, prefix)
                .ok_or_else(|| {
                    ForwardError::Other(format!(
                        "the request path does not start with the route prefix {prefix:?}"
                    ))
                })?,
            _ => path_and_query,
        };
        if rest.len() == path_and_query.len() && (self.prefix.is_empty() || !rest.starts_with('/'))
        {
            // No prefix, or `OPTIONS *` (RFC 9110 §7.1): the target goes through as it is.
            if let Some(pq) = uri.path_and_query() {
                return Ok(Uri::from(pq.clone()));
            }
            return Ok(Uri::from_static("/"));
        }
        let slash = if rest.starts_with('/') { "" } else { "/" };
        Uri::try_from(format!("{}{slash}{rest}", self.prefix))
            .map_err(|e| ForwardError::Other(format!("upstream URI: {e}")))
    }
}

/// `path_and_query` without the route prefix `prefix` (matched ASCII case-insensitively, as
/// routes match, and only at a segment boundary): `/billing/x?q` less `/billing` is `/x?q`,
/// `/billing?q` is `?q` (sent as `/?q`). `None` when it does not start with it.
fn strip_route_prefix<'p>(path_and_query: &'p str, prefix: &str) -> Option<&'p str> {
    let head = path_and_query.get(..prefix.len())?;
    let rest = &path_and_query[prefix.len()..];
    (head.eq_ignore_ascii_case(prefix) && (rest.is_empty() || rest.starts_with(['/', '?'])))
        .then_some(rest)
}

/// Whether `path` is under the route prefix `prefix` as [`Forwarder::send`] strips it.
pub(crate) fn under_prefix(path: &str, prefix: &str) -> bool {
    prefix.is_empty() || strip_route_prefix(path, prefix).is_some()
}

/// `req` (origin-form target, `Host` set) as an HTTP/2 request: the target absolute
/// (`:scheme` of the upstream, `:authority` the `Host` the client used), no `Host` field,
/// `te: trailers`.
pub(super) fn to_h2(req: &mut Request<GatewayBody>, scheme: &Scheme) {
    let authority = req
        .headers_mut()
        .remove(header::HOST)
        .and_then(|h| Authority::try_from(h.as_bytes()).ok());
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    parts.scheme = Some(scheme.clone());
    parts.authority = authority.or_else(|| Some(Authority::from_static("invalid")));
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(PathAndQuery::from_static("/"));
    }
    *req.uri_mut() = Uri::from_parts(parts).unwrap_or_default();
    *req.version_mut() = Version::HTTP_2;
    req.headers_mut().insert(header::TE, TE_TRAILERS);
}

/// `Host` for `authority` (RFC 9110 §7.2): without the port when it is the scheme's default.
fn host_of(authority: &Authority, scheme: &Scheme) -> String {
    let default = if *scheme == Scheme::HTTPS { 443 } else { 80 };
    match authority.port_u16() {
        Some(port) if port != default => format!("{}:{port}", authority.host()),
        _ => authority.host().to_owned(),
    }
}

impl std::fmt::Display for ForwardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForwardError::Connect(msg) => write!(f, "cannot connect to the upstream: {msg}"),
            ForwardError::Tls(msg) => write!(f, "TLS with the upstream failed: {msg}"),
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
            protocol: crate::config::UpstreamProtocol::Auto,
            tls: None,
            connect_timeout: Duration::from_secs(2),
            request_timeout,
            readiness: crate::config::UpstreamReadiness::None,
        }
    }

    fn forwarder(cfg: &UpstreamConfig) -> Forwarder {
        let metrics = crate::metrics::Metrics::new().unwrap();
        Forwarder::new("default", cfg, metrics.upstream("default")).unwrap()
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
        let fwd = forwarder(&config(&format!("http://{addr}"), Duration::from_secs(5)));
        let req = Request::post("/v1/items?id=7&x=%20")
            .header("host", "api.example.com")
            .body(body::full("hello"))
            .unwrap();
        let resp = fwd.send(req, None).await.unwrap();
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
        let fwd = forwarder(&config(
            &format!("http://{addr}/api/"),
            Duration::from_secs(5),
        ));
        let req = Request::get("/v1?q=1")
            .header("host", "h")
            .body(body::empty())
            .unwrap();
        let resp = fwd.send(req, None).await.unwrap();
        assert_eq!(text(resp).await, "GET /api/v1?q=1 h 0");
    }

    #[tokio::test]
    async fn absolute_form_and_http2_requests_use_only_path_and_query_and_keep_their_host() {
        let addr = upstream().await;
        let fwd = forwarder(&config(&format!("http://{addr}"), Duration::from_secs(5)));
        let req = Request::get("https://api.example.com:8443/x?y")
            .version(Version::HTTP_2)
            .body(body::empty())
            .unwrap();
        let resp = fwd.send(req, None).await.unwrap();
        assert_eq!(text(resp).await, "GET /x?y api.example.com:8443 0");
    }

    #[tokio::test]
    async fn a_request_without_any_host_gets_the_upstreams() {
        let addr = upstream().await;
        let fwd = forwarder(&config(&format!("http://{addr}"), Duration::from_secs(5)));
        let req = Request::get("/x")
            .version(Version::HTTP_10)
            .body(body::empty())
            .unwrap();
        let resp = fwd.send(req, None).await.unwrap();
        assert_eq!(text(resp).await, format!("GET /x {addr} 0"));
    }

    #[tokio::test]
    async fn strip_prefix_removes_the_route_prefix_before_the_upstream_prefix_is_added() {
        let addr = upstream().await;
        let fwd = forwarder(&config(
            &format!("http://{addr}/v1/"),
            Duration::from_secs(5),
        ));
        for (path, strip, sent) in [
            ("/billing/x?q=1", "/billing", "/v1/x?q=1"),
            ("/billing", "/billing", "/v1/"),
            ("/billing?q", "/billing", "/v1/?q"),
            ("/BILLING/x", "/billing", "/v1/x"),
            ("/billing/x", "", "/v1/billing/x"),
        ] {
            let req = Request::get(path)
                .header("host", "h")
                .body(body::empty())
                .unwrap();
            let resp = fwd.send(req, Some(strip)).await.unwrap();
            assert_eq!(text(resp).await, format!("GET {sent} h 0"), "{path}");
        }
        let bare = forwarder(&config(&format!("http://{addr}"), Duration::from_secs(5)));
        let req = Request::get("/billing")
            .header("host", "h")
            .body(body::empty())
            .unwrap();
        let resp = bare.send(req, Some("/billing")).await.unwrap();
        assert_eq!(text(resp).await, "GET / h 0");
        // Not under the prefix at a segment boundary (only an encoded slash can route it
        // there): never forwarded with a guessed path.
        let req = Request::get("/billing%2Fx")
            .header("host", "h")
            .body(body::empty())
            .unwrap();
        assert!(matches!(
            bare.send(req, Some("/billing")).await.unwrap_err(),
            ForwardError::Other(_)
        ));
    }

    #[test]
    fn host_of_drops_only_the_default_port_and_never_userinfo() {
        let host = |a: &str| host_of(&a.parse().unwrap(), &Scheme::HTTP);
        assert_eq!(host("api:80"), "api");
        assert_eq!(host("api"), "api");
        assert_eq!(host("api:8080"), "api:8080");
        assert_eq!(host("u:p@api:8080"), "api:8080");
        assert_eq!(host("[::1]:80"), "[::1]");
        assert_eq!(host("[::1]:9"), "[::1]:9");
        assert_eq!(host_of(&"api:443".parse().unwrap(), &Scheme::HTTPS), "api");
        assert_eq!(
            host_of(&"api:80".parse().unwrap(), &Scheme::HTTPS),
            "api:80"
        );
    }

    #[tokio::test]
    async fn refused_connection_is_a_connect_error() {
        // Bind then drop: the port is (almost certainly) closed.
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let fwd = forwarder(&config(&format!("http://{addr}"), Duration::from_secs(5)));
        let req = Request::get("/").body(body::empty()).unwrap();
        let err = fwd.send(req, None).await.unwrap_err();
        assert!(matches!(err, ForwardError::Connect(_)), "{err}");
    }

    #[tokio::test]
    async fn slow_upstream_is_a_timeout() {
        let addr = upstream().await;
        let fwd = forwarder(&config(
            &format!("http://{addr}"),
            Duration::from_millis(200),
        ));
        let req = Request::get("/slow").body(body::empty()).unwrap();
        let err = fwd.send(req, None).await.unwrap_err();
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

    #[tokio::test]
    async fn a_101_to_a_request_that_asked_for_no_upgrade_is_an_error() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n")
                .await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let fwd = forwarder(&config(&format!("http://{addr}"), Duration::from_secs(5)));
        let req = Request::get("/")
            .header("host", "h")
            .body(body::empty())
            .unwrap();
        let err = fwd.send(req, None).await.unwrap_err();
        assert!(err.to_string().contains("101"), "{err}");
    }

    #[tokio::test]
    async fn a_websocket_handshake_to_an_http2_only_upstream_is_refused_before_connecting() {
        let mut cfg = config("http://127.0.0.1:1", Duration::from_secs(5));
        cfg.protocol = crate::config::UpstreamProtocol::Http2;
        let fwd = forwarder(&cfg);
        let metrics = crate::metrics::Metrics::new().unwrap();
        let req = Request::get("/")
            .header("host", "h")
            .body(body::empty())
            .unwrap();
        let err = fwd
            .tunnel(
                req,
                None,
                &tunnel::Tunnels::new(metrics, Duration::from_secs(1)),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("HTTP/1.1"), "{err}");
    }
}
