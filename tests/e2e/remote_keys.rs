//! Signing keys from the authorization server (discovery, `jwks_uri`): rotation, an AS down at
//! start or later, and a flood of unknown `kid`s. Each refusal also asserts the upstream saw
//! nothing.

use dpop_gateway::jose::sign::PrivateJwk;
use dpop_gateway::jose::Algorithm;

use crate::support::issuer_server::{eventually, AsMode, IssuerServer, RemoteGateway, AUDIENCE};
use crate::support::tls::TestPki;
use crate::support::www_error;

fn client_key() -> PrivateJwk {
    PrivateJwk::generate(Algorithm::ES256).unwrap()
}

/// Waits until the gateway reports its keys loaded.
async fn until_ready(gw: &RemoteGateway) {
    eventually("gateway ready", 10, || gw.readyz_is(200)).await;
}

impl RemoteGateway {
    async fn readyz_is(&self, status: u16) -> bool {
        self.readyz().await == status
    }
}

#[tokio::test]
async fn keys_discovered_from_the_issuer_metadata_verify_a_token_and_a_foreign_key_is_refused() {
    let server = IssuerServer::start().await;
    let gw = RemoteGateway::discovering(&server).await;
    until_ready(&gw).await;
    let key = client_key();

    let foreign = server.jwt("never-published", &key);
    let resp = gw.get(&key, &foreign).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(www_error(&resp).as_deref(), Some("invalid_token"));
    assert!(gw.upstream.requests().is_empty());

    let resp = gw.get(&key, &server.jwt("key-1", &key)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(gw.upstream.requests().len(), 1);
    assert!(server.metadata_fetches() >= 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_metadata_document_naming_another_issuer_is_not_trusted() {
    let server = IssuerServer::start().await;
    server.set_metadata_issuer("https://evil.example.com");
    let gw = RemoteGateway::discovering(&server).await;
    let key = client_key();
    let resp = gw.get(&key, &server.jwt("key-1", &key)).await;
    assert_eq!(
        resp.status(),
        503,
        "keys must never load from a foreign issuer's metadata"
    );
    assert_eq!(server.jwks_fetches(), 0);
    assert_eq!(gw.readyz().await, 503);
    assert!(gw.upstream.requests().is_empty());
    gw.shutdown().await;
}

#[tokio::test]
async fn a_configured_jwks_uri_is_used_without_discovery() {
    let server = IssuerServer::start().await;
    let gw = RemoteGateway::start(&format!(
        "  issuer: \"{iss}\"\n  audience: \"{AUDIENCE}\"\n  jwks_uri: \"{iss}/jwks\"{}",
        server.opt_in(),
        iss = server.issuer()
    ))
    .await;
    until_ready(&gw).await;
    let key = client_key();
    assert_eq!(gw.get(&key, &server.jwt("key-1", &key)).await.status(), 200);
    assert_eq!(server.metadata_fetches(), 0);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_rotated_key_is_fetched_on_first_use_and_the_retired_key_is_then_refused() {
    let server = IssuerServer::start().await;
    let gw = RemoteGateway::discovering(&server).await;
    until_ready(&gw).await;
    let key = client_key();
    assert_eq!(gw.get(&key, &server.jwt("key-1", &key)).await.status(), 200);
    let before = server.jwks_fetches();

    // The AS rotates: key-2 in, key-1 out.
    server.publish(&["key-2"]);
    let resp = gw.get(&key, &server.jwt("key-2", &key)).await;
    assert_eq!(resp.status(), 200, "new kid accepted after a refetch");
    assert_eq!(server.jwks_fetches(), before + 1);

    let resp = gw.get(&key, &server.jwt("key-1", &key)).await;
    assert_eq!(resp.status(), 401, "the retired key must no longer verify");
    assert_eq!(www_error(&resp).as_deref(), Some("invalid_token"));
    assert_eq!(
        gw.upstream.requests().len(),
        2,
        "the refused request never reached it"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn an_as_down_at_start_leaves_the_gateway_up_not_ready_and_refusing_with_503_until_it_recovers(
) {
    let server = IssuerServer::start().await;
    server.set_mode(AsMode::Fail);
    let gw = RemoteGateway::discovering(&server).await;
    let key = client_key();
    let token = server.jwt("key-1", &key);

    let resp = gw.get(&key, &token).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(gw.readyz().await, 503);
    assert!(gw.upstream.requests().is_empty());

    server.set_mode(AsMode::Up);
    // The background retry (1 s, then doubling) loads the keys.
    eventually("gateway ready after the AS came back", 20, || {
        gw.readyz_is(200)
    })
    .await;
    assert_eq!(gw.get(&key, &token).await.status(), 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn an_as_down_later_leaves_the_last_good_keys_serving() {
    let server = IssuerServer::start().await;
    let gw = RemoteGateway::discovering(&server).await;
    until_ready(&gw).await;
    let key = client_key();
    assert_eq!(gw.get(&key, &server.jwt("key-1", &key)).await.status(), 200);

    for mode in [AsMode::Fail, AsMode::Drop] {
        server.set_mode(mode);
        // An unknown kid makes the gateway ask the (failing) AS; the known key keeps working.
        let resp = gw.get(&key, &server.jwt("unknown", &key)).await;
        assert_eq!(resp.status(), 401, "{mode:?}");
        let resp = gw.get(&key, &server.jwt("key-1", &key)).await;
        assert_eq!(resp.status(), 200, "{mode:?}: last good keys keep serving");
    }
    assert_eq!(gw.readyz().await, 200);
    assert_eq!(gw.upstream.requests().len(), 3);
    let metrics = gw.metrics().await;
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} in:\n{metrics}"))
    };
    assert!(value("dpop_gateway_jwks_fetches_total{result=\"success\"}") >= 1.0);
    assert!(value("dpop_gateway_jwks_fetches_total{result=\"failure\"}") >= 1.0);
    assert!(value("dpop_gateway_jwks_last_success_timestamp_seconds") > 1.7e9);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_flood_of_unknown_kids_makes_at_most_one_fetch() {
    let server = IssuerServer::start().await;
    let gw = std::sync::Arc::new(RemoteGateway::discovering(&server).await);
    until_ready(&gw).await;
    let key = std::sync::Arc::new(client_key());
    let before = server.jwks_fetches();

    let tokens: Vec<String> = (0..100)
        .map(|i| server.jwt(&format!("flood-{i}"), &key))
        .collect();
    let mut tasks = Vec::new();
    for token in tokens {
        let (gw, key) = (gw.clone(), key.clone());
        tasks.push(tokio::spawn(
            async move { gw.get(&key, &token).await.status() },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 401);
    }
    let fetched = server.jwks_fetches() - before;
    assert!(fetched <= 1, "{fetched} JWKS fetches for 100 unknown kids");
    assert!(gw.upstream.requests().is_empty());
}

#[tokio::test]
async fn an_https_as_signed_by_a_private_ca_is_trusted_only_with_its_ca_file() {
    let pki = TestPki::new();
    let ca_file = pki.dir.join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let server = IssuerServer::start_with(Some(&pki)).await;
    let key = client_key();
    let token = server.jwt("key-1", &key);

    let untrusted = RemoteGateway::discovering(&server).await;
    let resp = untrusted.get(&key, &token).await;
    assert_eq!(resp.status(), 503, "an unknown CA must not be trusted");
    assert_eq!(server.jwks_fetches(), 0);
    assert!(untrusted.upstream.requests().is_empty());
    untrusted.shutdown().await;

    let trusted = RemoteGateway::start(&format!(
        "  issuer: \"{}\"\n  audience: \"{AUDIENCE}\"\n  ca_file: \"{}\"{}",
        server.issuer(),
        ca_file.display(),
        server.opt_in()
    ))
    .await;
    until_ready(&trusted).await;
    assert_eq!(trusted.get(&key, &token).await.status(), 200);
    trusted.shutdown().await;
}
