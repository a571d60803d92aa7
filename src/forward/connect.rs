//! Opening a connection to an upstream: TCP (hyper-util's `HttpConnector`: resolution,
//! `connect_timeout`, `TCP_NODELAY`, keepalive probes), then for `https://` a rustls handshake
//! that verifies the upstream's certificate against the system roots plus `tls.ca_file`, for
//! `tls.server_name` (default: the URL's host), presenting `tls.client_cert` when set.
//!
//! There is no way to skip verification. A certificate the upstream presents that does not
//! verify ends the attempt with [`ConnectError::Tls`] (a 502 whose reason is `tls`), never a
//! fallback to plain HTTP. The client certificate files are watched like the listener's
//! (`FileStamp`): a new pair that loads replaces the TLS configuration for new connections; a
//! bad one is logged and the old one kept.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::{UpstreamConfig, UpstreamProtocol, UpstreamTls};
use crate::server::tls::{read_chain, read_key};
use crate::server::watchers::FileStamp;

/// TCP keepalive probes on idle pooled connections, so a silently dropped upstream is noticed.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Opens connections to one upstream.
pub(crate) struct Connector {
    tcp: HttpConnector,
    /// `http://authority/`: what the TCP connector connects to (its host and port).
    target: Uri,
    /// `connect_timeout`, for the TCP connection and the TLS handshake together.
    timeout: Duration,
    tls: Option<Arc<TlsClient>>,
    /// Whether connections speak HTTP/2 without negotiating it (`protocol: http2`, plain).
    prior_knowledge_h2: bool,
}

/// The TLS side of a connector: the configuration in use (swapped when the client certificate
/// changes) and the name verified.
pub(crate) struct TlsClient {
    current: RwLock<TlsConnector>,
    /// The same configuration offering only `http/1.1` (ALPN), for a WebSocket handshake's
    /// connection when `current` offers `h2` too (`protocol: auto`).
    h1: Option<RwLock<TlsConnector>>,
    server_name: ServerName<'static>,
    settings: TlsSettings,
}

/// What a TLS configuration is built from.
struct TlsSettings {
    roots: Arc<RootCertStore>,
    client_cert: Option<(PathBuf, PathBuf)>,
    alpn: Vec<Vec<u8>>,
}

/// An open connection and the protocol to speak on it.
pub(crate) struct Connected {
    pub(crate) io: Io,
    /// HTTP/2 (ALPN `h2` or prior knowledge) rather than HTTP/1.1.
    pub(crate) h2: bool,
}

/// A connection to an upstream: plain TCP or TLS over it.
pub(crate) enum Io {
    /// `http://`.
    Plain(TcpStream),
    /// `https://`.
    Tls(Box<TlsStream<TcpStream>>),
}

/// Why no connection was opened.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// TCP: refused, unreachable, or `connect_timeout` passed.
    Tcp(String),
    /// The TLS handshake failed: the certificate did not verify (untrusted issuer, another
    /// name, expired), the upstream refused ours, or it would not speak `h2` when required.
    Tls(String),
}

// === impl Connector ===

impl Connector {
    /// A connector for `cfg`; reads `tls.ca_file` and the client certificate now.
    pub(crate) fn new(cfg: &UpstreamConfig) -> Result<Connector, String> {
        let mut tcp = HttpConnector::new();
        tcp.set_connect_timeout(Some(cfg.connect_timeout));
        tcp.set_nodelay(true);
        tcp.set_keepalive(Some(TCP_KEEPALIVE));
        // The scheme is ours to handle: the TCP connector only needs host and port.
        tcp.enforce_http(false);
        let authority = cfg
            .url
            .authority()
            .map_or("invalid", |a| a.as_str())
            .to_owned();
        let https = cfg.url.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = cfg.url.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host = cfg.url.host().unwrap_or("invalid");
        // Config validation guarantees an authority; without one every attempt fails (a 502).
        let target = Uri::builder()
            .scheme("http")
            .authority(if cfg.url.port_u16().is_some() {
                authority
            } else {
                format!("{}:{port}", bracketed(host))
            })
            .path_and_query("/")
            .build()
            .unwrap_or_default();
        let tls = if https {
            let tls_cfg = cfg.tls.clone().unwrap_or_default();
            Some(Arc::new(TlsClient::new(&tls_cfg, host, cfg.protocol)?))
        } else {
            None
        };
        Ok(Connector {
            tcp,
            target,
            timeout: cfg.connect_timeout,
            tls,
            prior_knowledge_h2: !https && cfg.protocol == UpstreamProtocol::Http2,
        })
    }

    /// Whether a connection of this connector may speak HTTP/2.
    pub(crate) fn may_speak_h2(&self) -> bool {
        self.prior_knowledge_h2 || self.tls.as_ref().is_some_and(|t| t.offers_h2())
    }

    /// The TLS side, when the upstream is `https://`.
    pub(crate) fn tls(&self) -> Option<&Arc<TlsClient>> {
        self.tls.as_ref()
    }

    /// Whether connections of this connector speak only HTTP/2 (`protocol: http2`).
    pub(crate) fn only_h2(&self) -> bool {
        self.prior_knowledge_h2
            || self
                .tls
                .as_ref()
                .is_some_and(|t| t.settings.alpn == [b"h2".to_vec()])
    }

    /// Opens a connection, within `connect_timeout` for TCP and TLS together.
    pub(crate) async fn connect(&self) -> Result<Connected, ConnectError> {
        self.connect_with(false).await
    }

    /// Opens an HTTP/1.1 connection (ALPN `http/1.1` only), for a WebSocket handshake. Not
    /// for an upstream that [`Connector::only_h2`].
    pub(crate) async fn connect_h1(&self) -> Result<Connected, ConnectError> {
        self.connect_with(true).await
    }

    async fn connect_with(&self, h1_only: bool) -> Result<Connected, ConnectError> {
        match tokio::time::timeout(self.timeout, self.open(h1_only)).await {
            Ok(result) => result,
            Err(_) => Err(ConnectError::Tcp(format!(
                "no connection within connect_timeout ({:?})",
                self.timeout
            ))),
        }
    }

    async fn open(&self, h1_only: bool) -> Result<Connected, ConnectError> {
        let mut tcp = self.tcp.clone();
        std::future::poll_fn(|cx| tower_service::Service::poll_ready(&mut tcp, cx))
            .await
            .map_err(|e| ConnectError::Tcp(crate::error_chain(&e)))?;
        let stream = tower_service::Service::call(&mut tcp, self.target.clone())
            .await
            .map_err(|e| ConnectError::Tcp(crate::error_chain(&e)))?
            .into_inner();
        let Some(tls) = &self.tls else {
            return Ok(Connected {
                io: Io::Plain(stream),
                h2: self.prior_knowledge_h2,
            });
        };
        let stream = tls
            .connector(h1_only)
            .connect(tls.server_name.clone(), stream)
            .await
            .map_err(|e| ConnectError::Tls(crate::error_chain(&e)))?;
        let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let h2 = alpn.as_deref() == Some(b"h2".as_slice());
        if tls.settings.alpn == [b"h2".to_vec()] && !h2 {
            return Err(ConnectError::Tls(
                "protocol is http2 but the upstream did not agree to h2 (ALPN)".into(),
            ));
        }
        Ok(Connected {
            io: Io::Tls(Box::new(stream)),
            h2,
        })
    }
}

/// `host` as it goes into an authority (an IPv6 address in brackets).
fn bracketed(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

// === impl TlsClient ===

impl TlsClient {
    fn new(
        cfg: &UpstreamTls,
        url_host: &str,
        protocol: UpstreamProtocol,
    ) -> Result<TlsClient, String> {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::debug!(%error, "could not load a system root certificate");
        }
        roots.add_parsable_certificates(native.certs);
        if let Some(path) = &cfg.ca_file {
            let certs = crate::token::http::read_ca_file(path)
                .map_err(|e| format!("tls.ca_file: {}", e.0))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("tls.ca_file: {}: {e}", path.display()))?;
            }
        }
        let name = cfg.server_name.clone().unwrap_or_else(|| {
            url_host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned()
        });
        let server_name = ServerName::try_from(name.clone())
            .map_err(|_| format!("tls.server_name: {name:?} is not a DNS name or an IP address"))?;
        let alpn = match protocol {
            UpstreamProtocol::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            UpstreamProtocol::Http1 => vec![b"http/1.1".to_vec()],
            UpstreamProtocol::Http2 => vec![b"h2".to_vec()],
        };
        let settings = TlsSettings {
            roots: Arc::new(roots),
            client_cert: cfg.client_cert.clone(),
            alpn,
        };
        let config = settings.client_config(&settings.alpn)?;
        let h1 = match settings.alpn.len() {
            2.. => Some(RwLock::new(TlsConnector::from(
                settings.client_config(&[b"http/1.1".to_vec()])?,
            ))),
            _ => None,
        };
        Ok(TlsClient {
            current: RwLock::new(TlsConnector::from(config)),
            h1,
            server_name,
            settings,
        })
    }

    fn offers_h2(&self) -> bool {
        self.settings.alpn.iter().any(|p| p == b"h2")
    }

    fn connector(&self, h1_only: bool) -> TlsConnector {
        let current = match (&self.h1, h1_only) {
            (Some(h1), true) => h1,
            _ => &self.current,
        };
        // A poisoned lock still holds a complete connector: the writer only assigns.
        current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Polls the client certificate and key every `interval`; when either changed and the
    /// pair loads, new connections present it (a pair that does not load is logged, the old
    /// one kept). Nothing to watch without `tls.client_cert`. Ends when `self` is dropped.
    pub(crate) fn spawn_watcher(self: &Arc<Self>, upstream: Arc<str>, interval: Duration) {
        let Some((cert, key)) = self.settings.client_cert.clone() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this: Weak<Self> = Arc::downgrade(self);
        let mut seen = (FileStamp::of(&cert), FileStamp::of(&key));
        rt.spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(tls) = this.upgrade() else { return };
                let now = (FileStamp::of(&cert), FileStamp::of(&key));
                if now == seen {
                    continue;
                }
                seen = now;
                let h1 = match &tls.h1 {
                    Some(_) => tls.settings.client_config(&[b"http/1.1".to_vec()]).map(Some),
                    None => Ok(None),
                };
                match tls.settings.client_config(&tls.settings.alpn).and_then(|c| Ok((c, h1?))) {
                    Ok((config, h1_config)) => {
                        *tls.current.write().unwrap_or_else(|p| p.into_inner()) =
                            TlsConnector::from(config);
                        if let (Some(slot), Some(c)) = (&tls.h1, h1_config) {
                            *slot.write().unwrap_or_else(|p| p.into_inner()) =
                                TlsConnector::from(c);
                        }
                        tracing::info!(upstream = %upstream, cert = %cert.display(), "upstream client certificate reloaded");
                    }
                    Err(error) => tracing::warn!(upstream = %upstream, %error, "upstream client certificate change not applied; keeping the previous pair"),
                }
            }
        });
    }
}

// === impl TlsSettings ===

impl TlsSettings {
    fn client_config(&self, alpn: &[Vec<u8>]) -> Result<Arc<ClientConfig>, String> {
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("tls: {e}"))?
                .with_root_certificates(Arc::clone(&self.roots));
        let mut config = match &self.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => builder
                .with_client_auth_cert(read_pem_chain(cert)?, read_pem_key(key)?)
                .map_err(|e| {
                    format!(
                        "tls.client_cert {} and tls.client_key {}: refused: {e}",
                        cert.display(),
                        key.display()
                    )
                })?,
        };
        config.alpn_protocols = alpn.to_vec();
        Ok(Arc::new(config))
    }
}

fn read_pem_chain(path: &Path) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    read_chain(path).map_err(|e| format!("tls.client_cert: {e}"))
}

fn read_pem_key(path: &Path) -> Result<rustls_pki_types::PrivateKeyDer<'static>, String> {
    read_key(path).map_err(|e| format!("tls.client_key: {e}"))
}

// === impl Io ===

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Tcp(e) => f.write_str(e),
            ConnectError::Tls(e) => write!(f, "TLS handshake with the upstream failed: {e}"),
        }
    }
}

impl std::error::Error for ConnectError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn https(tls: UpstreamTls) -> UpstreamConfig {
        UpstreamConfig {
            url: "https://billing.internal:8443/".parse().unwrap_or_default(),
            protocol: UpstreamProtocol::Auto,
            tls: Some(tls),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            readiness: crate::config::UpstreamReadiness::None,
        }
    }

    fn error(cfg: &UpstreamConfig) -> String {
        match Connector::new(cfg) {
            Ok(_) => panic!("accepted {cfg:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn unreadable_tls_files_are_start_errors_naming_the_setting() {
        let e = error(&https(UpstreamTls {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..UpstreamTls::default()
        }));
        assert!(e.starts_with("tls.ca_file: /nonexistent/ca.pem"), "{e}");
        let e = error(&https(UpstreamTls {
            client_cert: Some(("/nonexistent/c.pem".into(), "/nonexistent/k.pem".into())),
            ..UpstreamTls::default()
        }));
        assert!(e.starts_with("tls.client_cert: /nonexistent/c.pem"), "{e}");
    }

    #[test]
    fn only_what_may_speak_http2_gets_an_http2_slot() {
        let mut cfg = https(UpstreamTls::default());
        assert!(Connector::new(&cfg).is_ok_and(|c| c.may_speak_h2()));
        cfg.protocol = UpstreamProtocol::Http1;
        assert!(Connector::new(&cfg).is_ok_and(|c| !c.may_speak_h2()));
        cfg.url = "http://10.0.0.1:50051/".parse().unwrap_or_default();
        cfg.tls = None;
        cfg.protocol = UpstreamProtocol::Auto;
        assert!(
            Connector::new(&cfg).is_ok_and(|c| !c.may_speak_h2()),
            "no negotiation over plain HTTP"
        );
        cfg.protocol = UpstreamProtocol::Http2;
        assert!(
            Connector::new(&cfg).is_ok_and(|c| c.may_speak_h2()),
            "prior knowledge"
        );
    }
}
