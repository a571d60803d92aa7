//! Self-tests of the test harness and of `server::tls` over real sockets: the recording upstream,
//! the test PKI, the client modes, TLS reload.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::support::client::{self, Mode};
use crate::support::tls::TestPki;
use crate::support::upstream::{self, Upstream};
use bytes::Bytes;
use dpop_gateway::body;
use dpop_gateway::server::tls::{server_config, ReloadingAcceptor};
use http::{Request, Response, StatusCode, Version};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::default()).unwrap()
}

#[tokio::test]
async fn upstream_records_requests_over_h1_and_h2c() {
    let up = Upstream::start().await;
    let url = format!("{}/items?id=7", up.url());
    let resp = client::send(up.addr(), Mode::H1, get(&url)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let json: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!(json["path"], "/items");

    let resp = client::send(up.addr(), Mode::H2c, get("/other")).await;
    assert_eq!(resp.status(), StatusCode::OK);

    let seen = up.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].uri, "/items?id=7");
    assert_eq!(seen[0].version, Version::HTTP_11);
    assert_eq!(seen[0].headers["host"], up.addr().to_string().as_str());
    assert_eq!(seen[1].uri, "/other");
    assert_eq!(seen[1].version, Version::HTTP_2);
    assert_eq!(seen[1].body_len, 0);
}

#[tokio::test]
async fn upstream_answers_status_slow_and_echo_size() {
    let up = Upstream::start().await;
    let resp = client::send(up.addr(), Mode::H1, get("/status/418")).await;
    assert_eq!(resp.status(), StatusCode::IM_A_TEAPOT);
    let resp = client::send(up.addr(), Mode::H1, get("/slow?ms=50")).await;
    assert_eq!(resp.status(), StatusCode::OK);

    let req = Request::post("/echo-size")
        .body(Full::new(Bytes::from_static(b"12345")))
        .unwrap();
    let resp = client::send(up.addr(), Mode::H2c, req).await;
    assert_eq!(&resp.body()[..], b"5");
    let last = up.requests().pop().unwrap();
    assert_eq!(last.body_len, 5);
    assert_eq!(last.body_sha256, upstream::sha256(b"12345"));
}

#[tokio::test]
async fn streamed_upload_and_download_are_byte_exact() {
    let up = Upstream::start().await;
    for (mode, exact) in [(Mode::H1, false), (Mode::H1, true), (Mode::H2c, false)] {
        let len = (4u64 << 20) + 7;
        let req = Request::post("/echo-size")
            .body(upstream::pattern_body(len, exact))
            .unwrap();
        let resp = client::send_streaming(up.addr(), mode, req).await;
        assert_eq!(&resp.body()[..], len.to_string().as_bytes());
        let seen = up.requests().pop().unwrap();
        assert_eq!(seen.body_sha256, upstream::sha256(&upstream::pattern(len)));
        assert_eq!(seen.headers.contains_key("content-length"), exact);
    }

    let n = 1_000_003u64;
    let resp = client::send(up.addr(), Mode::H2c, get(&format!("/download?bytes={n}"))).await;
    assert_eq!(resp.body().len() as u64, n);
    assert_eq!(&resp.body()[..], &upstream::pattern(n)[..]);
}

#[tokio::test]
async fn raw_bytes_get_the_servers_answer() {
    let up = Upstream::start().await;
    let answer = client::raw(up.addr(), b"NOT HTTP AT ALL\r\n\r\n").await;
    assert!(
        answer.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(up.requests().is_empty());
}

/// A TLS server on 127.0.0.1:0 answering with the HTTP version each request came with.
async fn tls_version_server(acceptor: Arc<ReloadingAcceptor>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.acceptor();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        Ok::<_, Infallible>(Response::new(body::full(format!(
                            "{:?}",
                            req.version()
                        ))))
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn tls_server_config_negotiates_h2_and_http11_with_the_test_ca() {
    let pki = TestPki::new();
    let config = server_config(&pki.cert_path, &pki.key_path).unwrap();
    let addr = tls_version_server(Arc::new(ReloadingAcceptor::new(config))).await;

    let h2 = pki.client_config(&[b"h2", b"http/1.1"]);
    let resp = client::send(addr, Mode::H2Tls(h2), get("https://localhost/")).await;
    assert_eq!(&resp.body()[..], b"HTTP/2.0");

    let h1 = pki.client_config(&[b"http/1.1"]);
    let resp = client::send(addr, Mode::H1Tls(h1), get("https://localhost/")).await;
    assert_eq!(&resp.body()[..], b"HTTP/1.1");
}

#[tokio::test]
async fn tls_client_refuses_a_server_outside_the_test_ca() {
    let served = TestPki::new();
    let other = TestPki::new();
    let config = server_config(&served.cert_path, &served.key_path).unwrap();
    let addr = tls_version_server(Arc::new(ReloadingAcceptor::new(config))).await;
    let h1 = other.client_config(&[b"http/1.1"]);
    let err = client::try_send(addr, Mode::H1Tls(h1), get("https://localhost/")).await;
    assert!(err.is_err());
}

#[tokio::test]
async fn rotated_certificate_is_served_after_reload() {
    let pki = TestPki::new();
    let acceptor = Arc::new(ReloadingAcceptor::load(&pki.cert_path, &pki.key_path).unwrap());
    let _watcher = acceptor.spawn_watcher(
        pki.cert_path.clone(),
        pki.key_path.clone(),
        std::time::Duration::from_millis(20),
    );
    let addr = tls_version_server(Arc::clone(&acceptor)).await;
    let before = Arc::clone(acceptor.acceptor().config());
    pki.rotate();
    let mut reloaded = false;
    for _ in 0..500 {
        if !Arc::ptr_eq(acceptor.acceptor().config(), &before) {
            reloaded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(reloaded);
    let h1 = pki.client_config(&[b"http/1.1"]);
    let resp = client::send(addr, Mode::H1Tls(h1), get("https://localhost/")).await;
    assert_eq!(resp.status(), StatusCode::OK);
}
