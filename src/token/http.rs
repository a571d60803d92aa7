//! The HTTP client the gateway uses to reach its authorization server (metadata, JWKS,
//! introspection). I/O lives here: hyper-util's pooled legacy client over `hyper-rustls` (ring
//! provider, HTTP/1.1), trusting the system's roots (`rustls-native-certs`) plus an optional
//! private CA (`access_token.ca_file`). Every call is bounded: connect 2 s, the whole exchange
//! (body included) 5 s, and at most 1 MiB of response body.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, USER_AGENT};
use http::{Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::error_chain;

/// The longest a TCP connect (and TLS handshake start) to the authorization server may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest one exchange may take, from sending the request to the last body byte.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest response body read from the authorization server (a JWKS or metadata document
/// is a few KiB; this only stops a misbehaving server from filling memory).
pub(crate) const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Idle pooled connections are closed after this long (introspection reuses them).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A client for the authorization server.
#[derive(Clone)]
pub struct AsClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// `access_token.allow_insecure_http`: whether `http://` URLs may be called at all (the
    /// config refuses them where it names them; this also covers a `jwks_uri` discovered in
    /// the issuer's metadata).
    allow_http: bool,
}

/// What the authorization server answered.
#[derive(Clone, Debug)]
pub struct AsResponse {
    /// The HTTP status.
    pub status: u16,
    /// The `Cache-Control` header, when present and text.
    pub cache_control: Option<String>,
    /// The whole body (at most [`MAX_RESPONSE_BYTES`]).
    pub body: Bytes,
}

/// Why an exchange with the authorization server failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// The URL or a header could not form a request.
    InvalidRequest(String),
    /// Connecting, the TLS handshake or the exchange failed.
    Connect(String),
    /// No complete answer within [`REQUEST_TIMEOUT`].
    Timeout,
    /// The body is larger than [`MAX_RESPONSE_BYTES`].
    TooLarge,
    /// The body could not be read.
    Body(String),
}

/// Why the client could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientError(pub String);

// === impl AsClient ===

impl AsClient {
    /// A client trusting the system roots and, when given, the PEM certificates in `ca_file`;
    /// `http://` URLs are refused unless `allow_http`.
    pub fn new(ca_file: Option<&Path>, allow_http: bool) -> Result<AsClient, ClientError> {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::warn!(%error, "could not load a system root certificate");
        }
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        if let Some(path) = ca_file {
            for cert in read_ca_file(path)? {
                roots
                    .add(cert)
                    .map_err(|e| ClientError(format!("{}: {e}", path.display())))?;
            }
        } else if added == 0 {
            tracing::warn!("no system root certificates: https authorization servers will fail");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError(format!("tls: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        // The https connector below decides the scheme; the inner one must accept https URIs.
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
        let https = if allow_http {
            https.https_or_http()
        } else {
            https.https_only()
        };
        let https = https.enable_http1().wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(https);
        Ok(AsClient { inner, allow_http })
    }

    /// `GET url` expecting JSON.
    pub async fn get(&self, url: &str) -> Result<AsResponse, HttpError> {
        let req = Request::builder()
            .method(Method::GET)
            .uri(url)
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, user_agent())
            .body(Full::new(Bytes::new()))
            .map_err(|e| HttpError::InvalidRequest(e.to_string()))?;
        self.send(req).await
    }

    /// `POST url` with a form body and an `Authorization` header (marked sensitive).
    pub async fn post_form(
        &self,
        url: &str,
        authorization: &HeaderValue,
        form: String,
    ) -> Result<AsResponse, HttpError> {
        let req = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, user_agent())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(AUTHORIZATION, authorization.clone())
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| HttpError::InvalidRequest(e.to_string()))?;
        self.send(req).await
    }

    /// One bounded exchange.
    async fn send(&self, req: Request<Full<Bytes>>) -> Result<AsResponse, HttpError> {
        if !self.allow_http && req.uri().scheme() != Some(&http::uri::Scheme::HTTPS) {
            return Err(HttpError::InvalidRequest(format!(
                "{}: plain HTTP to the authorization server is refused (set \
                 access_token.allow_insecure_http: true to allow it)",
                req.uri()
            )));
        }
        let exchange = async {
            let resp = self
                .inner
                .request(req)
                .await
                .map_err(|e| HttpError::Connect(error_chain(&e)))?;
            let status = resp.status().as_u16();
            let cache_control = resp
                .headers()
                .get(CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        HttpError::TooLarge
                    } else {
                        HttpError::Body(e.to_string())
                    }
                })?
                .to_bytes();
            Ok(AsResponse {
                status,
                cache_control,
                body,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| HttpError::Timeout)?
    }
}

/// The PEM certificates of `access_token.ca_file` (at least one).
pub(crate) fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| ClientError(format!("{}: {e}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClientError(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ClientError(format!(
            "{}: no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// `dpop-gateway/<version>`.
fn user_agent() -> &'static str {
    concat!("dpop-gateway/", env!("CARGO_PKG_VERSION"))
}

// === impl HttpError ===

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::InvalidRequest(why) => write!(f, "cannot form the request: {why}"),
            HttpError::Connect(why) => write!(f, "cannot reach the authorization server: {why}"),
            HttpError::Timeout => write!(
                f,
                "no answer from the authorization server within {} s",
                REQUEST_TIMEOUT.as_secs()
            ),
            HttpError::TooLarge => write!(
                f,
                "the authorization server's answer exceeds {MAX_RESPONSE_BYTES} bytes"
            ),
            HttpError::Body(why) => write!(f, "cannot read the answer: {why}"),
        }
    }
}

impl std::error::Error for HttpError {}

// === impl ClientError ===

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClientError {}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A one-shot server that answers every connection with `response`.
    async fn serve(response: Vec<u8>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let response = response.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(&response).await;
                });
            }
        });
        format!("http://{addr}/x")
    }

    #[tokio::test]
    async fn a_small_answer_is_read_with_its_cache_control() {
        let url = serve(
            b"HTTP/1.1 200 OK\r\ncache-control: max-age=120\r\ncontent-length: 2\r\n\r\n{}"
                .to_vec(),
        )
        .await;
        let resp = AsClient::new(None, true).unwrap().get(&url).await.unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.cache_control.as_deref(), Some("max-age=120"));
        assert_eq!(&resp.body[..], b"{}");
    }

    #[tokio::test]
    async fn an_answer_over_the_size_bound_is_refused() {
        let mut response = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            MAX_RESPONSE_BYTES + 1
        )
        .into_bytes();
        response.extend(std::iter::repeat_n(b'a', MAX_RESPONSE_BYTES + 1));
        let url = serve(response).await;
        let err = AsClient::new(None, true)
            .unwrap()
            .get(&url)
            .await
            .unwrap_err();
        assert_eq!(err, HttpError::TooLarge);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = AsClient::new(None, true)
            .unwrap()
            .get(&format!("http://{addr}/"))
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::Connect(_)), "{err:?}");
    }

    #[tokio::test]
    async fn plain_http_is_refused_without_the_opt_in() {
        let url = serve(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".to_vec()).await;
        let err = AsClient::new(None, false)
            .unwrap()
            .get(&url)
            .await
            .unwrap_err();
        match err {
            HttpError::InvalidRequest(why) => {
                assert!(why.contains("allow_insecure_http"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let path = std::env::temp_dir().join(format!("dpop-gw-empty-ca-{}", std::process::id()));
        std::fs::write(&path, "not a pem\n").unwrap();
        let err = AsClient::new(Some(&path), false).err().unwrap();
        assert!(err.0.contains("no PEM certificate"), "{err}");
        let _ = std::fs::remove_file(path);
    }
}
