//! The upstream every row forwards to: plain HTTP/1.1, or the same over TLS for the HTTPS
//! upstream row.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

// === the upstream ===

/// A fast upstream: `200 ok` to everything; request bodies are read and counted, never kept.
pub async fn upstream(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::task::spawn_local(serve(stream));
    }
}

/// [`upstream`] over TLS (HTTP/1.1), with `acceptor`'s certificate.
pub async fn tls_upstream(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::task::spawn_local(async move {
            if let Ok(tls) = acceptor.accept(stream).await {
                serve(tls).await;
            }
        });
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin + 'static>(stream: S) {
    let io = hyper_util::rt::TokioIo::new(stream);
    let svc = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
        let mut body = req.into_body();
        let mut n = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(d) = frame.data_ref() {
                n += d.len() as u64;
            }
        }
        let text = if n > 0 { format!("{n}") } else { "ok".into() };
        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(text))))
    });
    let _ = http1::Builder::new().serve_connection(io, svc).await;
}

/// A CA and a `localhost` server certificate it signed: the CA written to `ca_file`, and the
/// acceptor serving the certificate (ALPN `http/1.1`).
pub fn test_tls(ca_file: &Path) -> tokio_rustls::TlsAcceptor {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap_or_else(|e| panic!("CA key: {e}"));
    let mut ca = CertificateParams::new(Vec::new()).unwrap_or_else(|e| panic!("CA: {e}"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca
        .self_signed(&ca_key)
        .unwrap_or_else(|e| panic!("CA cert: {e}"));
    std::fs::write(ca_file, ca_cert.pem()).unwrap_or_else(|e| panic!("ca file: {e}"));
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap_or_else(|e| panic!("server key: {e}"));
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .and_then(|p| p.signed_by(&key, &issuer))
        .unwrap_or_else(|e| panic!("server cert: {e}"));
    let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
        .unwrap_or_else(|e| panic!("server key DER: {e}"));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .and_then(|b| {
        b.with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone(), ca_cert.der().clone()], key)
    })
    .unwrap_or_else(|e| panic!("server config: {e}"));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
