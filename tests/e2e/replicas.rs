//! Many replicas (RFC 9449 §11.1, §8-9): a shared replay store on a real Redis, the `on_error`
//! policies when Redis goes away and comes back, and stateless nonces any replica can check.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dpop_gateway::jose::sign::{self, PrivateJwk, ProofClaims};
use dpop_gateway::jose::Algorithm;
use http::{Request, Response};
use http_body_util::Full;

use crate::support::client::{self, Mode};
use crate::support::gateway::Issuer;
use crate::support::process::GatewayProcess;
use crate::support::redis::TestRedis;
use crate::support::upstream::Upstream;
use crate::support::{now, www_error, Options, TestGateway};

/// The URL every replica is reached under (a load balancer's name).
const PUBLIC: &str = "http://api.test";

fn redis_opts(redis: &TestRedis, on_error: &str, upstream: &Upstream) -> Options {
    Options {
        replay_cache: Some(format!(
            "replay_cache:\n  backend: redis\n  redis_url: \"{}\"\n  key_prefix: \"dpop-gateway-e2e:{}:\"\n  timeout: 250ms\n  on_error: {on_error}",
            redis.url(),
            sign::random_jti(),
        )),
        upstream_url: Some(upstream.url()),
        extra: format!("public_url: \"{PUBLIC}\""),
        ..Options::default()
    }
}

fn nonce_opts(secrets: &[&str], lifetime: &str) -> Options {
    let list = secrets
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    Options {
        dpop: format!("nonce:\n  enabled: true\n  secrets: [{list}]\n  lifetime: {lifetime}"),
        extra: format!("public_url: \"{PUBLIC}\""),
        ..Options::default()
    }
}

fn mint(key: &PrivateJwk, token: &str, nonce: Option<&str>) -> String {
    mint_jti(key, token, &sign::random_jti(), nonce)
}

async fn send(addr: std::net::SocketAddr, token: &str, proof: &str) -> Response<Bytes> {
    let req = Request::get("/resource")
        .header("host", "api.test")
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .body(Full::new(Bytes::new()))
        .unwrap();
    client::send(addr, Mode::H1, req).await
}

#[tokio::test]
async fn a_proof_accepted_by_one_replica_is_refused_by_another() {
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let issuer = Issuer::new();
    let opts = redis_opts(&redis, "reject", &upstream);
    let a = GatewayProcess::spawn(&opts, &upstream, &issuer).await;
    let b = GatewayProcess::spawn(&opts, &upstream, &issuer).await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = issuer.token_for(&key);
    let proof = mint(&key, &token, None);
    assert_eq!(send(a.addr, &token, &proof).await.status(), 200);
    let replay = send(b.addr, &token, &proof).await;
    assert_eq!(replay.status(), 401);
    assert_eq!(www_error(&replay).as_deref(), Some("invalid_dpop_proof"));
    assert_eq!(upstream.requests().len(), 1);
    // And the other way round with a fresh proof.
    let proof = mint(&key, &token, None);
    assert_eq!(send(b.addr, &token, &proof).await.status(), 200);
    assert_eq!(send(a.addr, &token, &proof).await.status(), 401);
    assert_eq!(upstream.requests().len(), 2);
}

#[tokio::test]
async fn fifty_copies_over_two_replicas_forward_exactly_one() {
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let issuer = Issuer::new();
    let opts = redis_opts(&redis, "reject", &upstream);
    let a = GatewayProcess::spawn(&opts, &upstream, &issuer).await;
    let b = GatewayProcess::spawn(&opts, &upstream, &issuer).await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = Arc::new(issuer.token_for(&key));
    let proof = Arc::new(mint(&key, &token, None));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let addr = if i % 2 == 0 { a.addr } else { b.addr };
        let (token, proof) = (token.clone(), proof.clone());
        tasks.push(tokio::spawn(async move {
            send(addr, &token, &proof).await.status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        49,
        "{statuses:?}"
    );
    assert_eq!(upstream.requests().len(), 1);
}

/// Polls until a fresh proof is forwarded again (Redis back), at most 15 s.
async fn until_forwarded(gw: &TestGateway, key: &PrivateJwk, token: &str) {
    for _ in 0..150 {
        if send(gw.addr, token, &mint(key, token, None)).await.status() == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the gateway did not recover after Redis came back");
}

#[tokio::test]
async fn redis_down_fails_closed_with_reject_and_recovers_by_itself() {
    let mut redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let issuer = Arc::new(Issuer::new());
    let opts = redis_opts(&redis, "reject", &upstream);
    let gw = TestGateway::start_full(opts, upstream, issuer.clone()).await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = issuer.token_for(&key);
    assert_eq!(
        send(gw.addr, &token, &mint(&key, &token, None))
            .await
            .status(),
        200
    );

    redis.stop();
    let resp = send(gw.addr, &token, &mint(&key, &token, None)).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(
        gw.upstream.requests().len(),
        1,
        "nothing forwarded while Redis is down"
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("dpop_gateway_replay_store_errors_total{policy=\"reject\"}"),
        "{metrics}"
    );

    redis.restart();
    until_forwarded(&gw, &key, &token).await;
}

#[tokio::test]
async fn redis_down_fails_open_with_allow_and_counts_it() {
    let mut redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let issuer = Arc::new(Issuer::new());
    let opts = redis_opts(&redis, "allow", &upstream);
    let gw = TestGateway::start_full(opts, upstream, issuer.clone()).await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = issuer.token_for(&key);
    redis.stop();
    let resp = send(gw.addr, &token, &mint(&key, &token, None)).await;
    assert_eq!(resp.status(), 200, "on_error: allow forwards");
    assert_eq!(gw.upstream.requests().len(), 1);
    let metrics = gw.metrics().await;
    assert!(
        metrics.lines().any(|l| l
            .starts_with("dpop_gateway_replay_store_errors_total{policy=\"allow\"}")
            && !l.ends_with(" 0")),
        "{metrics}"
    );
    redis.restart();
    until_forwarded(&gw, &key, &token).await;
    // Back to normal: a replay is caught again.
    let proof = mint(&key, &token, None);
    assert_eq!(send(gw.addr, &token, &proof).await.status(), 200);
    assert_eq!(send(gw.addr, &token, &proof).await.status(), 401);
}

const SECRET_A: &str = "nonce-secret-A-0123456789abcdefghijklmnop";
const SECRET_B: &str = "nonce-secret-B-0123456789abcdefghijklmnop";

/// A gateway with nonces under `secrets`, its own upstream, sharing `issuer`.
async fn nonce_gateway(secrets: &[&str], lifetime: &str, issuer: &Arc<Issuer>) -> TestGateway {
    let opts = nonce_opts(secrets, lifetime);
    TestGateway::start_full(opts, Upstream::start().await, issuer.clone()).await
}

/// Asks `gw` for a nonce: a proof without one is refused with `use_dpop_nonce` and a fresh one.
async fn fetch_nonce(gw: &TestGateway, key: &PrivateJwk, token: &str) -> String {
    let resp = send(gw.addr, token, &mint(key, token, None)).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(www_error(&resp).as_deref(), Some("use_dpop_nonce"));
    resp.headers()["dpop-nonce"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_nonce_issued_by_one_replica_is_accepted_by_another() {
    let issuer = Arc::new(Issuer::new());
    let a = nonce_gateway(&[SECRET_A], "5m", &issuer).await;
    let b = nonce_gateway(&[SECRET_A], "5m", &issuer).await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = issuer.token_for(&key);
    let nonce = fetch_nonce(&a, &key, &token).await;
    assert!(a.upstream.requests().is_empty());
    let resp = send(b.addr, &token, &mint(&key, &token, Some(&nonce))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(b.upstream.requests().len(), 1);
}

/// A proof with the given `jti`.
fn mint_jti(key: &PrivateJwk, token: &str, jti: &str, nonce: Option<&str>) -> String {
    key.mint_proof(&ProofClaims {
        htm: "GET".into(),
        htu: format!("{PUBLIC}/resource"),
        iat: now(),
        jti: jti.into(),
        access_token: Some(token.into()),
        nonce: nonce.map(str::to_owned),
    })
    .unwrap()
}

#[tokio::test]
async fn a_nonce_refusal_does_not_burn_the_jti() {
    let issuer = Arc::new(Issuer::new());
    let gw = nonce_gateway(&[SECRET_A], "5m", &issuer).await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = issuer.token_for(&key);
    // Refused for want of a nonce: the jti must not have been recorded...
    let resp = send(gw.addr, &token, &mint_jti(&key, &token, "jti-1", None)).await;
    assert_eq!(www_error(&resp).as_deref(), Some("use_dpop_nonce"));
    let nonce = resp.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    // ...so the client's retry with the same jti and the nonce is accepted, once.
    let retry = mint_jti(&key, &token, "jti-1", Some(&nonce));
    assert_eq!(send(gw.addr, &token, &retry).await.status(), 200);
    let again = send(
        gw.addr,
        &token,
        &mint_jti(&key, &token, "jti-1", Some(&nonce)),
    )
    .await;
    assert_eq!(again.status(), 401, "now it is a replay");
    assert_eq!(www_error(&again).as_deref(), Some("invalid_dpop_proof"));
    assert_eq!(gw.upstream.requests().len(), 1);
}

#[tokio::test]
async fn forged_and_expired_nonces_are_refused_with_a_fresh_one() {
    let issuer = Arc::new(Issuer::new());
    let gw = nonce_gateway(&[SECRET_A], "1s", &issuer).await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = issuer.token_for(&key);
    let nonce = fetch_nonce(&gw, &key, &token).await;
    // A forged nonce: one character changed.
    let mut forged = nonce.clone().into_bytes();
    forged[10] = if forged[10] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let resp = send(gw.addr, &token, &mint(&key, &token, Some(&forged))).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(www_error(&resp).as_deref(), Some("use_dpop_nonce"));
    assert!(resp.headers().contains_key("dpop-nonce"));
    // The genuine one works while fresh...
    let resp = send(gw.addr, &token, &mint(&key, &token, Some(&nonce))).await;
    assert_eq!(resp.status(), 200);
    // ...and not once its lifetime has passed.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let resp = send(gw.addr, &token, &mint(&key, &token, Some(&nonce))).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(www_error(&resp).as_deref(), Some("use_dpop_nonce"));
    assert_eq!(gw.upstream.requests().len(), 1);
}

#[tokio::test]
async fn nonce_secrets_rotate_first_issues_all_verify() {
    let issuer = Arc::new(Issuer::new());
    // Before rotation: A only. During: B issues, A still verifies. After: B only.
    let old = nonce_gateway(&[SECRET_A], "5m", &issuer).await;
    let during = nonce_gateway(&[SECRET_B, SECRET_A], "5m", &issuer).await;
    let after = nonce_gateway(&[SECRET_B], "5m", &issuer).await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = issuer.token_for(&key);

    let from_old = fetch_nonce(&old, &key, &token).await;
    let from_during = fetch_nonce(&during, &key, &token).await;
    let ok = |r: &Response<Bytes>| r.status() == 200;
    assert!(ok(&send(
        during.addr,
        &token,
        &mint(&key, &token, Some(&from_old))
    )
    .await));
    assert!(ok(&send(
        after.addr,
        &token,
        &mint(&key, &token, Some(&from_during))
    )
    .await));
    let retired = send(after.addr, &token, &mint(&key, &token, Some(&from_old))).await;
    assert_eq!(retired.status(), 401);
    assert_eq!(www_error(&retired).as_deref(), Some("use_dpop_nonce"));
    assert_eq!(after.upstream.requests().len(), 1);
}

#[tokio::test]
async fn a_route_can_turn_nonces_off() {
    let issuer = Arc::new(Issuer::new());
    let mut opts = nonce_opts(&[SECRET_A], "5m");
    opts.routes = "\n  - { path_prefix: \"/resource\", auth: dpop, nonce: false }\n  - { path_prefix: \"/\", auth: dpop }".into();
    let gw = TestGateway::start_full(opts, Upstream::start().await, issuer.clone()).await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = issuer.token_for(&key);
    assert_eq!(
        send(gw.addr, &token, &mint(&key, &token, None))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_nonce_past_half_its_lifetime_is_renewed_on_success() {
    let issuer = Arc::new(Issuer::new());
    let gw = nonce_gateway(&[SECRET_A], "4s", &issuer).await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = issuer.token_for(&key);
    let nonce = fetch_nonce(&gw, &key, &token).await;
    let fresh = send(gw.addr, &token, &mint(&key, &token, Some(&nonce))).await;
    assert_eq!(fresh.status(), 200);
    assert!(
        !fresh.headers().contains_key("dpop-nonce"),
        "a fresh nonce is not renewed"
    );
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let aging = send(gw.addr, &token, &mint(&key, &token, Some(&nonce))).await;
    assert_eq!(aging.status(), 200);
    let renewed = aging.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    assert_ne!(renewed, nonce);
    assert_eq!(
        send(gw.addr, &token, &mint(&key, &token, Some(&renewed)))
            .await
            .status(),
        200
    );
}

/// The binary's access log, text and JSON: one line per request with the outcome, the key's
/// thumbprint and the request id, never the token or the proof; all of it written by the time
/// the process exits on SIGTERM. The text run is pinned to one CPU, so it also proves the
/// current-thread runtime serves, checks and drains like the multi-thread one.
#[tokio::test]
async fn the_access_log_has_one_line_per_request_and_no_secrets() {
    let upstream = Upstream::start().await;
    let issuer = Issuer::new();
    for json in [false, true] {
        let log = crate::support::temp_dir("access-log").join("stderr.log");
        let file = std::fs::File::create(&log).unwrap();
        let format = if json { "json" } else { "text" };
        let env = [("RUST_LOG", "info"), ("DPOP_GATEWAY_LOG_FORMAT", format)];
        let cpu = (!json).then_some(0);
        let mut gw = GatewayProcess::spawn_with(
            &Options::default(),
            &upstream,
            &issuer,
            &env,
            std::process::Stdio::from(file),
            cpu,
        )
        .await;
        let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
        let token = issuer.token_for(&key);
        let proof = mint(&key, &token, None);
        let ok = send(gw.addr, &token, &proof).await;
        assert_eq!(ok.status(), 200);
        let replay = send(gw.addr, &token, &proof).await;
        assert_eq!(replay.status(), 401);
        gw.terminate();
        assert_eq!(gw.wait_exit(Duration::from_secs(10)), Some(0));

        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            !text.contains(&token) && !text.contains(&proof),
            "a secret was logged"
        );
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("dpop_gateway::access"))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let jkt = key.thumbprint().to_string();
        let ids = [&ok, &replay].map(|r| r.headers()["x-request-id"].to_str().unwrap().to_owned());
        if json {
            let v: Vec<serde_json::Value> = lines
                .iter()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(v[0]["level"], "INFO");
            assert_eq!(v[0]["status"], 200);
            assert_eq!(v[0]["outcome"], "forwarded");
            assert_eq!(v[0]["jkt"], jkt.as_str());
            assert_eq!(v[0]["request_id"], ids[0].as_str());
            assert_eq!(v[1]["status"], 401);
            assert_eq!(v[1]["outcome"], "invalid_dpop_proof");
            assert_eq!(v[1]["reason"], "replay");
            assert_eq!(v[1]["request_id"], ids[1].as_str());
            // A replay is refused after the proof's signature verified: its key is named.
            assert_eq!(v[1]["jkt"], jkt.as_str());
        } else {
            assert!(
                lines[0].contains(" INFO dpop_gateway::access: "),
                "{}",
                lines[0]
            );
            for want in [
                format!("request_id=\"{}\"", ids[0]),
                "method=GET".into(),
                "status=200".into(),
                "outcome=\"forwarded\"".into(),
                format!("jkt=\"{jkt}\""),
                "client=127.0.0.1:".into(),
            ] {
                assert!(lines[0].contains(&want), "{want} not in {}", lines[0]);
            }
            for want in [
                format!("request_id=\"{}\"", ids[1]),
                "status=401".into(),
                "outcome=\"invalid_dpop_proof\"".into(),
                "reason=\"replay\"".into(),
                format!("jkt=\"{jkt}\""),
            ] {
                assert!(lines[1].contains(&want), "{want} not in {}", lines[1]);
            }
        }
    }
}

/// Waits until the clock is past `iat`'s second, so that a process started now starts later.
async fn next_second(iat: u64) {
    while now() <= iat {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The second in which `proof` claims it was made.
fn iat_of(proof: &str) -> u64 {
    use base64::Engine;
    let payload = proof.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["iat"].as_u64().unwrap()
}

/// A memory-backed gateway forgets its replay entries when it restarts: a proof issued before
/// the new process started is refused (a fresh one is accepted), on a nonce route with
/// `use_dpop_nonce` and a fresh nonce; nothing refused reaches the upstream.
#[tokio::test]
async fn a_restart_does_not_reopen_the_replay_window_of_the_memory_store() {
    let issuer = Issuer::new();
    for nonce_route in [false, true] {
        let upstream = Upstream::start().await;
        let opts = if nonce_route {
            nonce_opts(&[SECRET_A], "5m")
        } else {
            Options {
                extra: format!("public_url: \"{PUBLIC}\""),
                ..Options::default()
            }
        };
        let mut gw = GatewayProcess::spawn(&opts, &upstream, &issuer).await;
        let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
        let token = issuer.token_for(&key);
        let nonce = if nonce_route {
            let resp = send(gw.addr, &token, &mint(&key, &token, None)).await;
            Some(resp.headers()["dpop-nonce"].to_str().unwrap().to_owned())
        } else {
            None
        };
        let proof = mint(&key, &token, nonce.as_deref());
        assert_eq!(send(gw.addr, &token, &proof).await.status(), 200);
        assert_eq!(upstream.requests().len(), 1);

        next_second(iat_of(&proof)).await;
        gw.restart().await;
        let replay = send(gw.addr, &token, &proof).await;
        assert_eq!(replay.status(), 401, "nonce route: {nonce_route}");
        let want = if nonce_route {
            "use_dpop_nonce"
        } else {
            "invalid_dpop_proof"
        };
        assert_eq!(www_error(&replay).as_deref(), Some(want));
        let body = crate::support::json_body(&replay);
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("before the gateway started"),
            "{body}"
        );
        assert_eq!(upstream.requests().len(), 1, "the replay is not forwarded");
        let fresh_nonce = replay
            .headers()
            .get("dpop-nonce")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(fresh_nonce.is_some(), nonce_route);
        let fresh = mint(&key, &token, fresh_nonce.as_deref());
        assert_eq!(send(gw.addr, &token, &fresh).await.status(), 200);
        assert_eq!(upstream.requests().len(), 2);
    }
}

/// With Redis the replay entries outlive a restart: a replay is refused as a replay, and a
/// proof issued before the restart but never used is accepted (today's behaviour).
#[tokio::test]
async fn a_restart_of_a_redis_backed_gateway_keeps_the_shared_window() {
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let issuer = Issuer::new();
    let opts = redis_opts(&redis, "reject", &upstream);
    let mut gw = GatewayProcess::spawn(&opts, &upstream, &issuer).await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = issuer.token_for(&key);
    let used = mint(&key, &token, None);
    let unused = mint(&key, &token, None);
    assert_eq!(send(gw.addr, &token, &used).await.status(), 200);
    next_second(iat_of(&unused)).await;
    gw.restart().await;
    let replay = send(gw.addr, &token, &used).await;
    assert_eq!(replay.status(), 401);
    assert!(crate::support::json_body(&replay)["error_description"]
        .as_str()
        .unwrap()
        .contains("already used"));
    assert_eq!(send(gw.addr, &token, &unused).await.status(), 200);
    assert_eq!(upstream.requests().len(), 2);
}

#[tokio::test]
async fn min_replicas_short_with_reject_never_forwards_a_proof_it_could_not_replicate() {
    // A lone Redis: no replica can acknowledge, so every insert falls short of min_replicas.
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let issuer = Arc::new(Issuer::new());
    let mut opts = redis_opts(&redis, "reject", &upstream);
    opts.replay_cache = opts
        .replay_cache
        .map(|block| format!("{block}\n  min_replicas: 1"));
    let gw = TestGateway::start_full(opts, upstream, issuer.clone()).await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = issuer.token_for(&key);
    let refused = send(gw.addr, &token, &mint(&key, &token, None)).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert!(gw.upstream.requests().is_empty());
    let metrics = gw.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "dpop_gateway_replay_store_wait_shortfalls_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn two_gateways_behind_sentinels_refuse_each_others_replays() {
    let sentinels = crate::support::redis::TestSentinels::start();
    let upstream = Upstream::start().await;
    let issuer = Issuer::new();
    let opts = Options {
        replay_cache: Some(format!(
            "replay_cache:\n  backend: redis_sentinel\n  redis_urls: {}\n  sentinel_master: mymaster\n  min_replicas: 1\n  timeout: 1s",
            sentinels.urls_yaml()
        )),
        upstream_url: Some(upstream.url()),
        extra: format!("public_url: \"{PUBLIC}\""),
        ..Options::default()
    };
    let a = GatewayProcess::spawn(&opts, &upstream, &issuer).await;
    let b = GatewayProcess::spawn(&opts, &upstream, &issuer).await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = issuer.token_for(&key);
    for (first, second) in [(a.addr, b.addr), (b.addr, a.addr)] {
        let proof = mint(&key, &token, None);
        assert_eq!(send(first, &token, &proof).await.status(), 200);
        let replay = send(second, &token, &proof).await;
        assert_eq!(replay.status(), 401);
        assert_eq!(www_error(&replay).as_deref(), Some("invalid_dpop_proof"));
    }
    assert_eq!(upstream.requests().len(), 2);
}
