//! Access-token checks (RFC 9068 §4) and the DPoP binding rules (RFC 9449 §6.1, §7.1, §7.2):
//! each violation is refused with `invalid_token` and the upstream receives nothing.

use dpop_gateway::jose::sign::PrivateJwk;
use dpop_gateway::jose::Algorithm;
use serde_json::{json, Value};

use crate::support::{now, proof, www_error, TestGateway};

/// Sends `GET /resource` with `token` as DPoP and a valid proof by `key`.
async fn send(gw: &TestGateway, key: &PrivateJwk, token: &str) -> http::Response<bytes::Bytes> {
    let p = proof(key, "GET", &gw.url("/resource"), Some(token));
    gw.call("GET", "/resource")
        .dpop_token(token)
        .proof(&p)
        .send()
        .await
}

fn assert_invalid_token(resp: &http::Response<bytes::Bytes>, gw: &TestGateway) {
    assert_eq!(resp.status(), 401, "body: {:?}", resp.body());
    assert_eq!(www_error(resp).as_deref(), Some("invalid_token"));
    assert!(
        gw.upstream.requests().is_empty(),
        "upstream must see nothing"
    );
}

/// A token whose claims are the valid ones with `alter` applied.
fn altered(gw: &TestGateway, key: &PrivateJwk, alter: impl FnOnce(&mut Value)) -> String {
    let mut c = gw.issuer.claims(Some(key.thumbprint().to_string()));
    alter(&mut c);
    gw.issuer.sign(&c)
}

async fn refused_claims(alter: impl FnOnce(&mut Value)) {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = altered(&gw, &key, alter);
    let resp = send(&gw, &key, &token).await;
    assert_invalid_token(&resp, &gw);
    // The pair: the unaltered token passes, so the refusal came from the one change.
    let valid = altered(&gw, &key, |_| {});
    assert_eq!(send(&gw, &key, &valid).await.status(), 200);
}

/// A token whose header is the valid one with `alter` applied, signed by the issuer's key.
async fn refused_header(alter: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let claims = gw.issuer.claims(Some(key.thumbprint().to_string()));
    let mut header = serde_json::Map::new();
    header.insert("typ".into(), json!("at+jwt"));
    header.insert("kid".into(), json!("test-issuer-1"));
    let valid = gw.issuer.key.sign_jws(header.clone(), &claims).unwrap();
    assert_eq!(
        send(&gw, &key, &valid).await.status(),
        200,
        "the unaltered header passes"
    );
    alter(&mut header);
    let token = gw.issuer.key.sign_jws(header, &claims).unwrap();
    let resp = send(&gw, &key, &token).await;
    assert_eq!(resp.status(), 401, "body: {:?}", resp.body());
    assert_eq!(www_error(&resp).as_deref(), Some("invalid_token"));
    assert_eq!(
        gw.upstream.requests().len(),
        1,
        "upstream saw only the valid request"
    );
}

#[tokio::test]
async fn valid_bound_token_is_forwarded() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = altered(&gw, &key, |_| {});
    assert_eq!(send(&gw, &key, &token).await.status(), 200);
}

#[tokio::test]
async fn token_bound_to_another_key_is_refused() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let thief = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    let resp = send(&gw, &thief, &token).await;
    assert_invalid_token(&resp, &gw);
}

#[tokio::test]
async fn wrong_issuer_is_refused() {
    refused_claims(|c| c["iss"] = json!("https://evil.example.com")).await;
}

#[tokio::test]
async fn wrong_audience_is_refused() {
    refused_claims(|c| c["aud"] = json!("https://other-api.example.com")).await;
}

#[tokio::test]
async fn audience_array_containing_ours_is_accepted() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = altered(&gw, &key, |c| {
        c["aud"] = json!(["https://x.example", "https://api.example.com"])
    });
    assert_eq!(send(&gw, &key, &token).await.status(), 200);
}

#[tokio::test]
async fn expired_token_is_refused() {
    refused_claims(|c| c["exp"] = json!(now() - 120)).await;
}

#[tokio::test]
async fn not_yet_valid_token_is_refused() {
    refused_claims(|c| c["nbf"] = json!(now() + 600)).await;
}

#[tokio::test]
async fn token_without_exp_is_refused() {
    refused_claims(|c| {
        c.as_object_mut().unwrap().remove("exp");
    })
    .await;
}

#[tokio::test]
async fn token_with_jwt_typ_is_refused() {
    refused_header(|h| {
        h.insert("typ".into(), json!("JWT"));
    })
    .await;
}

#[tokio::test]
async fn token_with_unknown_kid_is_refused() {
    refused_header(|h| {
        h.insert("kid".into(), json!("someone-else"));
    })
    .await;
}

#[tokio::test]
async fn token_signed_by_another_issuer_key_is_refused() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let rogue = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let claims = gw.issuer.claims(Some(key.thumbprint().to_string()));
    let mut header = serde_json::Map::new();
    header.insert("typ".into(), json!("at+jwt"));
    header.insert("kid".into(), json!("test-issuer-1"));
    let token = rogue.sign_jws(header, &claims).unwrap();
    assert_invalid_token(&send(&gw, &key, &token).await, &gw);
}

#[tokio::test]
async fn unbound_token_with_dpop_scheme_is_refused() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.sign(&gw.issuer.claims(None));
    assert_invalid_token(&send(&gw, &key, &token).await, &gw);
}

#[tokio::test]
async fn bound_token_sent_as_bearer_is_refused() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    // Downgrade on a route that allows Bearer: still refused, the token is bound.
    let resp = gw.call("GET", "/mixed/x").bearer(&token).send().await;
    assert_invalid_token(&resp, &gw);
    let resp = gw.call("GET", "/resource").bearer(&token).send().await;
    assert_invalid_token(&resp, &gw);
}

#[tokio::test]
async fn unbound_bearer_token_passes_only_on_dpop_or_bearer_routes() {
    let gw = TestGateway::start().await;
    let token = gw.issuer.sign(&gw.issuer.claims(None));
    let resp = gw.call("GET", "/mixed/x").bearer(&token).send().await;
    assert_eq!(resp.status(), 200);
    assert_eq!(gw.upstream.requests().len(), 1);
    let resp = gw.call("GET", "/resource").bearer(&token).send().await;
    assert_eq!(resp.status(), 401);
    assert_eq!(www_error(&resp).as_deref(), Some("invalid_token"));
    assert_eq!(gw.upstream.requests().len(), 1);
}

#[tokio::test]
async fn dpop_on_dpop_or_bearer_route_still_checks_the_proof() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let thief = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    let p = proof(&thief, "GET", &gw.url("/mixed/x"), Some(&token));
    let resp = gw
        .call("GET", "/mixed/x")
        .dpop_token(&token)
        .proof(&p)
        .send()
        .await;
    assert_invalid_token(&resp, &gw);
    let p = proof(&key, "GET", &gw.url("/mixed/x"), Some(&token));
    let resp = gw
        .call("GET", "/mixed/x")
        .dpop_token(&token)
        .proof(&p)
        .send()
        .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_rewritten_jwks_file_is_picked_up_without_a_restart() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let new_issuer_key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let claims = gw.issuer.claims(Some(key.thumbprint().to_string()));
    let mut header = serde_json::Map::new();
    header.insert("typ".into(), json!("at+jwt"));
    header.insert("kid".into(), json!("rotated-2"));
    let new_token = new_issuer_key.sign_jws(header, &claims).unwrap();
    let old_token = gw.issuer.token_for(&key);
    assert_eq!(send(&gw, &key, &old_token).await.status(), 200);
    assert_eq!(
        send(&gw, &key, &new_token).await.status(),
        401,
        "unknown kid before"
    );

    // The authorization server rotated: the file now holds only the new key.
    let mut jwk = new_issuer_key.public_jwk();
    jwk.insert("kid".into(), json!("rotated-2"));
    std::fs::write(&gw.issuer.jwks_path, json!({ "keys": [jwk] }).to_string()).unwrap();
    for _ in 0..60 {
        if send(&gw, &key, &new_token).await.status() == 200 {
            let old = send(&gw, &key, &old_token).await;
            assert_eq!(old.status(), 401, "the retired key no longer verifies");
            assert_eq!(www_error(&old).as_deref(), Some("invalid_token"));
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("the new JWKS file was not picked up within 15 s");
}

#[tokio::test]
async fn token_with_a_crit_header_is_refused() {
    refused_header(|h| {
        h.insert("crit".into(), json!(["x-ext"]));
    })
    .await;
}

#[tokio::test]
async fn token_without_typ_is_refused() {
    refused_header(|h| {
        h.remove("typ");
    })
    .await;
}

#[tokio::test]
async fn token_with_a_symmetric_alg_is_refused() {
    use base64::Engine;
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let claims = gw.issuer.claims(Some(key.thumbprint().to_string()));
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = json!({"typ": "at+jwt", "alg": "HS256", "kid": "test-issuer-1"});
    let token = format!(
        "{}.{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string()),
        b64.encode(b"mac-with-the-public-key")
    );
    assert_invalid_token(&send(&gw, &key, &token).await, &gw);
}

#[tokio::test]
async fn token_with_a_malformed_cnf_is_refused() {
    refused_claims(|c| c["cnf"] = json!({"jkt": "not-a-thumbprint"})).await;
}

#[tokio::test]
async fn token_issued_in_the_future_is_refused() {
    refused_claims(|c| c["iat"] = json!(now() + 600)).await;
}

/// The issuer's claims for `key` as JSON text with `extra` members appended (which may repeat
/// one already there), signed by the issuer as an `at+jwt`.
fn token_with_extra_members(gw: &TestGateway, key: &PrivateJwk, extra: &str) -> String {
    let claims = gw.issuer.claims(Some(key.thumbprint().to_string()));
    let text = claims.to_string();
    let text = format!("{}{extra}}}", &text[..text.len() - 1]);
    let header = json!({"typ": "at+jwt", "alg": "ES256", "kid": "test-issuer-1"}).to_string();
    gw.issuer
        .key
        .sign_jws_text(header.as_bytes(), text.as_bytes())
        .unwrap()
}

/// JSON leaves a repeated member undefined: one reader takes the first copy, another the
/// last. A token whose claims name `sub` or `cnf` twice is refused, not read last-wins.
#[tokio::test]
async fn a_token_with_a_claim_twice_is_refused() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let other = PrivateJwk::generate(Algorithm::ES256).unwrap();
    // The pair: the same construction with no repeat is forwarded.
    let once = token_with_extra_members(&gw, &key, "");
    assert_eq!(send(&gw, &key, &once).await.status(), 200);
    let twice = [
        // An earlier `sub` that a first-wins reader would take.
        r#","sub":"admin""#.to_owned(),
        // A `cnf` bound to another key: a first-wins reader would bind it there.
        format!(r#","cnf":{{"jkt":"{}"}}"#, other.thumbprint()),
        format!(r#","cnf":{{"jkt":"{}"}}"#, key.thumbprint()),
    ];
    for extra in &twice {
        let token = token_with_extra_members(&gw, &key, extra);
        let resp = send(&gw, &key, &token).await;
        assert_eq!(resp.status(), 401, "{extra}: {:?}", resp.body());
        assert_eq!(www_error(&resp).as_deref(), Some("invalid_token"));
        assert_eq!(
            gw.upstream.requests().len(),
            1,
            "upstream saw only the pair"
        );
    }
}

/// A JWKS file holding a small-order Ed25519 key (the identity point) besides the real one:
/// a token "signed" by it with `R = identity, S = 0` would verify for any claims. The key is
/// skipped (and logged) at load, the real key still loads, and the forgery is refused.
#[tokio::test]
async fn a_token_forged_for_a_small_order_key_in_the_jwks_is_refused() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let issuer = crate::support::gateway::Issuer::new();
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut real = issuer.key.public_jwk();
    real.insert("kid".into(), json!("test-issuer-1"));
    let forged_key = json!({"kty": "OKP", "crv": "Ed25519", "kid": "forged", "use": "sig",
                            "x": b64.encode(identity)});
    std::fs::write(
        &issuer.jwks_path,
        json!({ "keys": [forged_key, real] }).to_string(),
    )
    .unwrap();
    let upstream = crate::support::upstream::Upstream::start().await;
    let gw = TestGateway::start_full(
        crate::support::Options::default(),
        upstream,
        std::sync::Arc::new(issuer),
    )
    .await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let claims = gw.issuer.claims(Some(key.thumbprint().to_string()));
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(&identity);
    for alg in ["EdDSA", "Ed25519"] {
        let header = json!({"typ": "at+jwt", "alg": alg, "kid": "forged"});
        let forged = format!(
            "{}.{}.{}",
            b64.encode(header.to_string()),
            b64.encode(claims.to_string()),
            b64.encode(signature)
        );
        assert_invalid_token(&send(&gw, &key, &forged).await, &gw);
    }
    // The other key in the same file still loaded.
    assert_eq!(
        send(&gw, &key, &gw.issuer.token_for(&key)).await.status(),
        200
    );
}
