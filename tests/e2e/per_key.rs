//! `replay_cache.per_key_limit` on every backend: one proof key flooding the replay store is
//! refused with 429 + `Retry-After`, its refused proofs never reach the upstream, and other
//! keys are unaffected.

use std::sync::Arc;

use dpop_gateway::jose::sign::{self, PrivateJwk};
use dpop_gateway::jose::Algorithm;
use http::header::RETRY_AFTER;

use crate::support::gateway::Issuer;
use crate::support::redis::TestRedis;
use crate::support::upstream::Upstream;
use crate::support::{json_body, proof, Options, TestGateway};

const LIMIT: usize = 3;

async fn flooding_key_is_isolated(replay_cache: String) {
    let opts = Options {
        replay_cache: Some(replay_cache),
        ..Options::default()
    };
    let gw = TestGateway::start_full(opts, Upstream::start().await, Arc::new(Issuer::new())).await;
    let flooder = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let other = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let (flood_token, other_token) = (gw.issuer.token_for(&flooder), gw.issuer.token_for(&other));
    let send = |key: &PrivateJwk, token: &str| {
        let p = proof(key, "GET", &gw.url("/resource"), Some(token));
        let token = token.to_owned();
        let gw = &gw;
        async move {
            gw.call("GET", "/resource")
                .dpop_token(&token)
                .proof(&p)
                .send()
                .await
        }
    };
    for _ in 0..LIMIT {
        assert_eq!(send(&flooder, &flood_token).await.status(), 200);
    }
    let refused = send(&flooder, &flood_token).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // The window is proof_max_age + clock_skew = 65 s; the oldest entry is seconds old.
    assert!(
        (55..=66).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    assert_eq!(json_body(&refused)["error"], "temporarily_unavailable");
    assert_eq!(gw.upstream.requests().len(), LIMIT);
    // Another key is unaffected, the flooder stays refused.
    assert_eq!(send(&other, &other_token).await.status(), 200);
    assert_eq!(send(&flooder, &flood_token).await.status(), 429);
    assert_eq!(gw.upstream.requests().len(), LIMIT + 1);
    let metrics = gw.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("dpop_gateway_requests_total")
                && l.contains("reason=\"per_key_limit\"")
                && l.ends_with(" 2")),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == "dpop_gateway_replay_per_key_limited_total 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn memory_backend_isolates_a_flooding_key() {
    flooding_key_is_isolated(format!(
        "replay_cache:\n  backend: memory\n  capacity: 1000\n  per_key_limit: {LIMIT}"
    ))
    .await;
}

#[tokio::test]
async fn redis_backend_isolates_a_flooding_key() {
    let redis = TestRedis::start();
    flooding_key_is_isolated(format!(
        "replay_cache:\n  backend: redis\n  redis_url: \"{}\"\n  key_prefix: \"dpop-gateway-e2e:{}:\"\n  per_key_limit: {LIMIT}",
        redis.url(),
        sign::random_jti(),
    ))
    .await;
}
