//! Opaque tokens checked by RFC 7662 introspection: binding to the proof key, inactive tokens,
//! the verdict cache, and an outage (503, never 401) that recovers. Each refusal also asserts the
//! upstream saw nothing.

use dpop_gateway::jose::sign::PrivateJwk;
use dpop_gateway::jose::Algorithm;

use crate::support::issuer_server::{AsMode, IssuerServer, RemoteGateway};
use crate::support::www_error;

fn client_key() -> PrivateJwk {
    PrivateJwk::generate(Algorithm::ES256).unwrap()
}

#[tokio::test]
async fn an_active_bound_token_passes_and_its_answer_is_cached() {
    let server = IssuerServer::start().await;
    let gw = RemoteGateway::introspecting(&server).await;
    let key = client_key();
    let token = server.opaque(&key);

    let resp = gw.get(&key, &token).await;
    assert_eq!(resp.status(), 200, "body: {:?}", resp.body());
    let resp = gw.get(&key, &token).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        server.introspections(),
        1,
        "the second request is answered from the cache"
    );
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].headers["x-auth-subject"], "alice");
    assert!(!seen[0].headers.contains_key("dpop"));
    let metrics = gw.metrics().await;
    for line in [
        "dpop_gateway_introspection_requests_total{result=\"success\"} 1",
        "dpop_gateway_introspection_requests_total{result=\"failure\"} 0",
        "dpop_gateway_token_cache_requests_total{result=\"hit\"} 1",
        "dpop_gateway_token_cache_requests_total{result=\"miss\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn an_inactive_token_is_refused_as_invalid_token() {
    let server = IssuerServer::start().await;
    let gw = RemoteGateway::introspecting(&server).await;
    let key = client_key();
    let resp = gw.get(&key, "opaque-never-issued").await;
    assert_eq!(resp.status(), 401);
    assert_eq!(www_error(&resp).as_deref(), Some("invalid_token"));
    assert!(gw.upstream.requests().is_empty());
    gw.shutdown().await;
}

#[tokio::test]
async fn a_token_bound_to_another_key_is_refused() {
    let server = IssuerServer::start().await;
    let gw = RemoteGateway::introspecting(&server).await;
    let (key, other) = (client_key(), client_key());
    let token = server.opaque(&other);
    let resp = gw.get(&key, &token).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(www_error(&resp).as_deref(), Some("invalid_token"));
    assert!(gw.upstream.requests().is_empty());
    // The same token with its own key's proof passes (and the cached answer is reused).
    assert_eq!(gw.get(&other, &token).await.status(), 200);
    assert_eq!(server.introspections(), 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn an_introspection_outage_is_503_and_the_gateway_recovers() {
    let server = IssuerServer::start().await;
    let gw = RemoteGateway::introspecting(&server).await;
    let key = client_key();
    for mode in [AsMode::Fail, AsMode::Drop] {
        server.set_mode(mode);
        let resp = gw.get(&key, &server.opaque(&key)).await;
        assert_eq!(resp.status(), 503, "{mode:?}: an outage is never a 401");
        assert_eq!(resp.headers()["retry-after"], "1");
    }
    assert!(gw.upstream.requests().is_empty());

    server.set_mode(AsMode::Up);
    let resp = gw.get(&key, &server.opaque(&key)).await;
    assert_eq!(resp.status(), 200, "the outage is not cached");
    gw.shutdown().await;
}

#[tokio::test]
async fn wrong_introspection_credentials_are_an_outage_not_a_refused_token() {
    let server = IssuerServer::start().await;
    let gw = RemoteGateway::start(&format!(
        "  format: introspection\n  issuer: \"{iss}\"\n  introspection:\n    endpoint: \"{iss}/introspect\"\n    client_id: gateway\n    client_secret: wrong{}",
        server.opt_in(),
        iss = server.issuer()
    ))
    .await;
    let key = client_key();
    let resp = gw.get(&key, &server.opaque(&key)).await;
    assert_eq!(resp.status(), 503);
    assert!(gw.upstream.requests().is_empty());
    gw.shutdown().await;
}
