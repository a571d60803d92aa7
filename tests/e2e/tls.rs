//! The main listener with rustls: an HTTPS client trusting a test CA gets through over
//! HTTP/1.1 and HTTP/2 (ALPN), and the proof's `htu` is the `https` URL.

use dpop_gateway::jose::sign::PrivateJwk;
use dpop_gateway::jose::Algorithm;

use crate::support::client::Mode;
use crate::support::tls::{tls_gateway, TestPki};
use crate::support::TestGateway;

#[tokio::test]
async fn https_clients_get_through_over_h1_and_h2() {
    let (pki, gw) = tls_gateway().await;
    assert_eq!(gw.scheme, "https");
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let h1 = gw
        .authorized(&key, "GET", "/over-h1")
        .mode(Mode::H1Tls(pki.client_config(&[b"http/1.1"])))
        .send()
        .await;
    assert_eq!(h1.status(), 200);
    let h2 = gw
        .authorized(&key, "GET", "/over-h2")
        .mode(Mode::H2Tls(pki.client_config(&[b"h2"])))
        .send()
        .await;
    assert_eq!(h2.status(), 200);
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen
        .iter()
        .all(|r| r.headers["x-forwarded-proto"] == "https"));
    assert!(seen.iter().all(|r| r.headers.get("dpop").is_none()));

    // A proof naming the plain-http URL does not match the https listener.
    let token = gw.issuer.token_for(&key);
    let wrong = crate::support::proof(
        &key,
        "GET",
        &format!("http://{}/over-h1", gw.addr),
        Some(&token),
    );
    let resp = gw
        .call("GET", "/over-h1")
        .dpop_token(&token)
        .proof(&wrong)
        .mode(Mode::H1Tls(pki.client_config(&[b"http/1.1"])))
        .send()
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(gw.upstream.requests().len(), 2);
}

#[tokio::test]
async fn a_rotated_certificate_is_served_without_a_restart() {
    let (pki, gw) = tls_gateway().await;
    let before = served_cert(&gw, &pki).await;
    pki.rotate();
    // The gateway checks every 5 s; the contract promises 30 s.
    for _ in 0..60 {
        if served_cert(&gw, &pki).await != before {
            let mode = Mode::H1Tls(pki.client_config(&[b"http/1.1"]));
            let resp = gw.call("GET", "/open/x").mode(mode).send().await;
            assert_eq!(resp.status(), 200);
            let metrics = gw.metrics().await;
            assert!(
                metrics.contains("dpop_gateway_tls_reloads_total{result=\"success\"} 1"),
                "{metrics}"
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("the rotated certificate was not served within 15 s");
}

/// The DER of the leaf certificate the gateway presents.
async fn served_cert(gw: &TestGateway, pki: &TestPki) -> Vec<u8> {
    let connector = tokio_rustls::TlsConnector::from(pki.client_config(&[b"http/1.1"]));
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .as_ref()
        .to_vec()
}
