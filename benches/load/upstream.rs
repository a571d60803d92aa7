//! The upstream every row forwards to: plain HTTP/1.1, or the same over TLS or HTTP/2 (h2c)
//! for the upstream-protocol rows (benches/load/upstreams.rs).

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
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

/// [`upstream`] over TLS (HTTP/1.1), with `acceptor`'s certificate; `handshakes` counts the
/// completed TLS handshakes (with connections reused, far fewer than requests).
pub async fn tls_upstream(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    handshakes: Rc<Cell<u64>>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let handshakes = Rc::clone(&handshakes);
        tokio::task::spawn_local(async move {
            if let Ok(tls) = acceptor.accept(stream).await {
                handshakes.set(handshakes.get() + 1);
                serve(tls).await;
            }
        });
    }
}

/// [`upstream`] over HTTP/2 with prior knowledge (h2c); `connections` counts the accepted
/// connections (one carries every request as a stream).
pub async fn h2c_upstream(listener: TcpListener, connections: Rc<Cell<u64>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        connections.set(connections.get() + 1);
        tokio::task::spawn_local(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .max_concurrent_streams(1024)
                .serve_connection(io, service_fn(answer))
                .await;
        });
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin + 'static>(stream: S) {
    let io = hyper_util::rt::TokioIo::new(stream);
    let _ = http1::Builder::new()
        .serve_connection(io, service_fn(answer))
        .await;
}

/// `200 ok`, or the request body's length when it had one.
async fn answer(
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
    let mut body = req.into_body();
    let mut n = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(d) = frame.data_ref() {
            n += d.len() as u64;
        }
    }
    let text = if n > 0 { format!("{n}") } else { "ok".into() };
    Ok(http::Response::new(Full::new(Bytes::from(text))))
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
