//! What the gateway must not change, and what it must: bodies stream through byte-exact, the
//! `DPoP` header never reaches the upstream, spoofed identity headers are removed and replaced.

use bytes::Bytes;
use dpop_gateway::jose::sign::PrivateJwk;
use dpop_gateway::jose::Algorithm;
use ring::digest;

use crate::support::TestGateway;

#[tokio::test]
async fn valid_get_is_forwarded_without_dpop_and_with_identity() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let resp = gw
        .authorized(&key, "GET", "/resource/a?x=1&y=%2F")
        .header("x-auth-subject", "mallory")
        .header("x-dpop-jkt", "forged")
        .header("x-custom", "kept")
        .send()
        .await;
    assert_eq!(resp.status(), 200);
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.uri, "/resource/a?x=1&y=%2F");
    assert!(r.headers.get("dpop").is_none(), "DPoP header stripped");
    assert_eq!(r.headers["x-auth-subject"], "alice");
    assert_eq!(r.headers.get_all("x-auth-subject").iter().count(), 1);
    assert_eq!(r.headers["x-auth-client-id"], "client-1");
    assert_eq!(r.headers["x-auth-scope"], "read write");
    assert_eq!(
        r.headers["x-dpop-jkt"],
        key.thumbprint().to_string().as_str()
    );
    assert_eq!(r.headers["x-custom"], "kept");
    let auth = r.headers["authorization"].to_str().unwrap();
    assert!(
        auth.starts_with("Bearer "),
        "rewritten for the legacy API: {auth}"
    );
    assert_eq!(r.headers["x-forwarded-proto"], "http");
    assert_eq!(r.headers["x-forwarded-for"], "127.0.0.1");
}

#[tokio::test]
async fn one_mebibyte_post_arrives_byte_exact() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let body: Vec<u8> = (0..1024 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    let want = digest::digest(&digest::SHA256, &body);
    let resp = gw
        .authorized(&key, "POST", "/upload")
        .header("content-type", "application/octet-stream")
        .body(Bytes::from(body))
        .send()
        .await;
    assert_eq!(resp.status(), 200);
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].body_len, 1024 * 1024);
    assert_eq!(&seen[0].body_sha256[..], want.as_ref());
    assert!(seen[0].headers.get("dpop").is_none());
}

#[tokio::test]
async fn auth_none_route_forwards_without_checks_but_strips_spoofed_identity() {
    let gw = TestGateway::start().await;
    let resp = gw
        .call("GET", "/open/thing")
        .header("x-auth-subject", "mallory")
        .header("dpop", "junk")
        .send()
        .await;
    assert_eq!(resp.status(), 200);
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].headers.get("x-auth-subject").is_none());
    assert!(seen[0].headers.get("dpop").is_none());
}

#[tokio::test]
async fn cors_preflight_passes_without_proof_and_refusals_expose_headers() {
    let gw = TestGateway::start_with(crate::support::Options {
        extra: "cors:\n  allow_origins: [\"https://app.example\"]".into(),
        ..Default::default()
    })
    .await;
    let resp = gw
        .call("OPTIONS", "/resource")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(gw.upstream.requests().len(), 1);

    let resp = gw
        .call("GET", "/resource")
        .header("origin", "https://app.example")
        .send()
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let exposed = resp.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.contains("WWW-Authenticate") && exposed.contains("DPoP-Nonce"));
    let resp = gw
        .call("GET", "/resource")
        .header("origin", "https://evil.example")
        .send()
        .await;
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    assert_eq!(gw.upstream.requests().len(), 1);
}

#[tokio::test]
async fn upstream_down_is_502_and_slow_upstream_is_504() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let gw = TestGateway::start_with(crate::support::Options {
        upstream_url: Some(dead_url),
        ..Default::default()
    })
    .await;
    let resp = gw.call("GET", "/open/x").send().await;
    assert_eq!(resp.status(), 502);

    let gw = TestGateway::start_with(crate::support::Options {
        request_timeout: "300ms".into(),
        ..Default::default()
    })
    .await;
    let resp = gw.call("GET", "/open/slow?ms=2000").send().await;
    assert_eq!(resp.status(), 504);
    // The gateway is still up.
    assert_eq!(gw.call("GET", "/open/x").send().await.status(), 200);
}

#[tokio::test]
async fn request_ids_are_kept_or_added_and_forwarded() {
    let gw = TestGateway::start().await;
    let resp = gw
        .call("GET", "/open/a")
        .header("x-request-id", "abc-123")
        .send()
        .await;
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
    let resp = gw.call("GET", "/open/b").send().await;
    let generated = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 32);
    assert!(generated
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    // A refusal carries one too, and no two requests share one.
    let again = gw.call("GET", "/open/c").send().await;
    assert_ne!(again.headers()["x-request-id"], generated.as_str());
    let refused = gw.call("GET", "/resource").send().await;
    assert!(refused.headers().contains_key("x-request-id"));
    let seen = gw.upstream.requests();
    assert_eq!(seen[0].headers["x-request-id"], "abc-123");
    assert_eq!(seen[1].headers["x-request-id"], generated.as_str());
}

#[tokio::test]
async fn protected_resource_metadata_is_served_and_named_in_challenges() {
    let gw = TestGateway::start().await;
    let resp = gw
        .call("GET", "/.well-known/oauth-protected-resource")
        .send()
        .await;
    assert_eq!(resp.status(), 200);
    let doc: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!(doc["resource"], gw.url(""));
    assert_eq!(doc["authorization_servers"][0], "https://as.example.com");
    assert!(doc["dpop_signing_alg_values_supported"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("ES256")));
    // The test config has a dpop_or_bearer route.
    assert_eq!(doc["dpop_bound_access_tokens_required"], false);
    let resp = gw
        .call("GET", "/.well-known/oauth-protected-resource/api")
        .send()
        .await;
    let doc: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!(doc["resource"], gw.url("/api"));

    let refused = gw.call("GET", "/resource").send().await;
    let www = refused.headers()["www-authenticate"].to_str().unwrap();
    let want = format!(
        "resource_metadata=\"{}\"",
        gw.url("/.well-known/oauth-protected-resource")
    );
    assert!(www.contains(&want), "{www}");
    assert!(
        gw.upstream.requests().is_empty(),
        "served by the gateway itself"
    );
}

#[tokio::test]
async fn a_repeated_token_is_verified_once_and_counted_as_a_cache_hit() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    for _ in 0..3 {
        let p = crate::support::proof(&key, "GET", &gw.url("/resource"), Some(&token));
        let resp = gw
            .call("GET", "/resource")
            .dpop_token(&token)
            .proof(&p)
            .send()
            .await;
        assert_eq!(resp.status(), 200);
    }
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("dpop_gateway_token_cache_requests_total{result=\"hit\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dpop_gateway_token_cache_requests_total{result=\"miss\"} 1"),
        "{metrics}"
    );
}
