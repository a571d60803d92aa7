//! Request body limits (`routes[].max_body_bytes`, `limits.max_body_bytes`): a declared
//! `Content-Length` over the route's limit is 413 before anything is sent; a chunked (HTTP/1.1)
//! or DATA-framed (HTTP/2) body that grows past it is cut off, so the upstream never receives
//! it whole, and the client gets 413; a body within the limit passes, streamed. Each refusal
//! asserts what the upstream received.

use dpop_gateway::jose::sign::PrivateJwk;
use dpop_gateway::jose::Algorithm;
use http::Request;

use crate::support::client::{self, Mode};
use crate::support::upstream::{pattern, pattern_body, sha256};
use crate::support::{json_body, Options, TestGateway};

const ROUTES: &str = r#"
  - { path_prefix: "/upload", auth: none, max_body_bytes: 1000 }
  - { path_prefix: "/api", auth: dpop, max_body_bytes: 1000 }
  - { path_prefix: "/", auth: none }"#;

async fn gateway() -> TestGateway {
    TestGateway::start_with(Options {
        routes: ROUTES.into(),
        extra: "limits:\n  max_body_bytes: 4000\n".into(),
        ..Options::default()
    })
    .await
}

/// A 413 as the gateway makes it: JSON body, no challenge, the connection closed.
fn assert_413(resp: &http::Response<bytes::Bytes>) {
    assert_eq!(resp.status(), 413, "body: {:?}", resp.body());
    assert_eq!(json_body(resp)["error"], "invalid_request");
    assert!(json_body(resp)["error_description"]
        .as_str()
        .unwrap()
        .contains("max_body_bytes"));
    assert!(resp.headers().get("www-authenticate").is_none());
    assert_eq!(resp.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn a_declared_body_over_the_route_limit_is_413_and_the_upstream_sees_nothing() {
    let gw = gateway().await;
    let resp = gw
        .call("POST", "/upload/a")
        .body(pattern(1000))
        .send()
        .await;
    assert_eq!(resp.status(), 200, "at the limit: {:?}", resp.body());
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].body_len, seen[0].body_complete), (1000, true));

    let resp = gw
        .call("POST", "/upload/a")
        .body(pattern(1001))
        .send()
        .await;
    assert_413(&resp);
    assert_eq!(resp.headers()["connection"], "close");
    assert_eq!(
        gw.upstream.requests().len(),
        1,
        "the refused one reached nothing"
    );

    // Paths whose route sets no limit get limits.max_body_bytes.
    let resp = gw.call("PUT", "/other").body(pattern(4001)).send().await;
    assert_413(&resp);
    let resp = gw.call("PUT", "/other").body(pattern(4000)).send().await;
    assert_eq!(resp.status(), 200);
    assert_eq!(gw.upstream.requests().len(), 2);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("outcome=\"invalid_request\",reason=\"body_too_large\",route=\"/upload\",status=\"413\""),
        "{metrics}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_declared_body_over_the_limit_gets_no_100_continue() {
    let gw = gateway().await;
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: {}\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n",
        gw.addr
    );
    let out = String::from_utf8_lossy(&client::raw(gw.addr, head.as_bytes()).await).into_owned();
    assert!(out.starts_with("HTTP/1.1 413 "), "{out}");
    assert!(!out.contains("100 Continue"), "{out}");
    assert!(gw.upstream.requests().is_empty());
    gw.shutdown().await;
}

/// A chunked request to `/upload` of the given chunks, with the last chunk when `done`.
fn chunked(gw: &TestGateway, chunks: &[usize], done: bool) -> Vec<u8> {
    let mut out = format!(
        "POST /upload HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        gw.addr
    )
    .into_bytes();
    for n in chunks {
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend(std::iter::repeat_n(b'a', *n));
        out.extend_from_slice(b"\r\n");
    }
    if done {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    out
}

#[tokio::test]
async fn a_chunked_body_growing_past_the_limit_is_cut_off_and_never_reaches_the_upstream_whole() {
    let gw = gateway().await;
    let out = client::raw(gw.addr, &chunked(&gw, &[600, 300], true)).await;
    let out = String::from_utf8_lossy(&out).into_owned();
    assert!(out.starts_with("HTTP/1.1 200 "), "within the limit: {out}");
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].body_len, seen[0].body_complete), (900, true));

    // 600 bytes pass; the next chunk would make 1200: it is not sent, and the body never ends.
    let out = client::raw(gw.addr, &chunked(&gw, &[600, 600], false)).await;
    let out = String::from_utf8_lossy(&out).into_owned();
    assert!(out.starts_with("HTTP/1.1 413 "), "{out}");
    assert!(out.contains("max_body_bytes"), "{out}");
    for r in &gw.upstream.requests()[1..] {
        assert!(
            !r.body_complete,
            "the upstream got a complete request: {r:?}"
        );
        assert!(r.body_len <= 1000, "{r:?}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn an_http2_body_growing_past_the_limit_is_413_and_never_reaches_the_upstream_whole() {
    let gw = gateway().await;
    let req = |len| {
        Request::post(format!("http://{}/upload", gw.addr))
            .body(pattern_body(len, false))
            .unwrap()
    };
    let resp = client::send_streaming(gw.addr, Mode::H2c, req(1000)).await;
    assert_eq!(resp.status(), 200, "within the limit: {:?}", resp.body());
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body_sha256, sha256(&pattern(1000)));
    assert!(seen[0].body_complete);

    let resp = client::send_streaming(gw.addr, Mode::H2c, req(200_000)).await;
    assert_413(&resp);
    for r in &gw.upstream.requests()[1..] {
        assert!(
            !r.body_complete,
            "the upstream got a complete request: {r:?}"
        );
        assert!(r.body_len <= 1000, "{r:?}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_protected_route_checks_credentials_then_the_body_limit() {
    let gw = gateway().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let resp = gw
        .authorized(&key, "POST", "/api/items")
        .body(pattern(1000))
        .send()
        .await;
    assert_eq!(resp.status(), 200, "body: {:?}", resp.body());
    let resp = gw
        .authorized(&key, "POST", "/api/items")
        .body(pattern(1001))
        .send()
        .await;
    assert_413(&resp);
    // Without credentials the answer is the 401: the checks come first.
    let resp = gw
        .call("POST", "/api/items")
        .body(pattern(1001))
        .send()
        .await;
    assert_eq!(resp.status(), 401);
    let seen = gw.upstream.requests();
    assert_eq!(
        seen.len(),
        1,
        "only the request within the limit reached it"
    );
    assert_eq!(seen[0].body_len, 1000);
    gw.shutdown().await;
}
