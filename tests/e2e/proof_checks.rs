//! One test per proof check (RFC 9449 §4.3): a request that violates only that check is refused
//! with the contract's status and `error` code, and the upstream receives nothing. Each test
//! first shows the same request, unmodified, is forwarded — so the refusal is caused by the one
//! change.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use dpop_gateway::jose::sign::{self, PrivateJwk};
use dpop_gateway::jose::Algorithm;
use serde_json::{json, Map, Value};

use crate::support::{json_body, now, www_error, Options, TestGateway};

/// Valid proof parts for `GET /resource` with `token`.
fn parts(gw: &TestGateway, key: &PrivateJwk, token: &str) -> (Map<String, Value>, Value) {
    let mut header = Map::new();
    header.insert("typ".into(), json!("dpop+jwt"));
    header.insert("jwk".into(), Value::Object(key.public_jwk()));
    let claims = json!({
        "jti": sign::random_jti(),
        "htm": "GET",
        "htu": gw.url("/resource"),
        "iat": now(),
        "ath": sign::ath(token),
    });
    (header, claims)
}

/// Sends `GET /resource` with `token` and a proof built from (possibly altered) parts.
async fn send_with(
    gw: &TestGateway,
    key: &PrivateJwk,
    token: &str,
    alter: impl FnOnce(&mut Map<String, Value>, &mut Value),
) -> http::Response<bytes::Bytes> {
    let (mut header, mut claims) = parts(gw, key, token);
    alter(&mut header, &mut claims);
    let proof = key.sign_jws(header, &claims).expect("sign");
    gw.call("GET", "/resource")
        .dpop_token(token)
        .proof(&proof)
        .send()
        .await
}

/// Asserts a 401 `invalid_dpop_proof` and that the upstream saw nothing new.
fn assert_refused(resp: &http::Response<bytes::Bytes>, gw: &TestGateway, seen_before: usize) {
    assert_eq!(resp.status(), 401, "body: {:?}", resp.body());
    assert_eq!(www_error(resp).as_deref(), Some("invalid_dpop_proof"));
    assert_eq!(json_body(resp)["error"], "invalid_dpop_proof");
    assert_eq!(
        gw.upstream.requests().len(),
        seen_before,
        "upstream must see nothing"
    );
}

/// Runs the pair: unaltered is forwarded, altered is refused.
async fn check_pair(alter: impl FnOnce(&mut Map<String, Value>, &mut Value)) {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    let ok = send_with(&gw, &key, &token, |_, _| {}).await;
    assert_eq!(ok.status(), 200, "the unaltered proof passes");
    assert_eq!(gw.upstream.requests().len(), 1);
    let resp = send_with(&gw, &key, &token, alter).await;
    assert_refused(&resp, &gw, 1);
}

#[tokio::test]
async fn wrong_typ_is_refused() {
    check_pair(|h, _| {
        h.insert("typ".into(), json!("JWT"));
    })
    .await;
}

#[tokio::test]
async fn missing_jwk_is_refused() {
    check_pair(|h, _| {
        h.remove("jwk");
    })
    .await;
}

#[tokio::test]
async fn jwk_with_private_member_is_refused() {
    check_pair(|h, _| {
        if let Some(Value::Object(jwk)) = h.get_mut("jwk") {
            jwk.insert("d".into(), json!("AAAA"));
        }
    })
    .await;
}

#[tokio::test]
async fn htm_mismatch_is_refused() {
    check_pair(|_, c| c["htm"] = json!("POST")).await;
}

#[tokio::test]
async fn htu_mismatch_is_refused() {
    check_pair(|_, c| c["htu"] = json!("http://other.example/resource")).await;
}

#[tokio::test]
async fn htu_other_path_is_refused() {
    check_pair(|_, c| c["htu"] = json!(c["htu"].as_str().unwrap().replace("/resource", "/other")))
        .await;
}

#[tokio::test]
async fn stale_iat_is_refused() {
    check_pair(|_, c| c["iat"] = json!(now() - 120)).await;
}

#[tokio::test]
async fn future_iat_is_refused() {
    check_pair(|_, c| c["iat"] = json!(now() + 60)).await;
}

#[tokio::test]
async fn missing_iat_is_refused() {
    check_pair(|_, c| {
        c.as_object_mut().unwrap().remove("iat");
    })
    .await;
}

#[tokio::test]
async fn missing_jti_is_refused() {
    check_pair(|_, c| {
        c.as_object_mut().unwrap().remove("jti");
    })
    .await;
}

#[tokio::test]
async fn missing_ath_is_refused() {
    check_pair(|_, c| {
        c.as_object_mut().unwrap().remove("ath");
    })
    .await;
}

#[tokio::test]
async fn wrong_ath_is_refused() {
    check_pair(|_, c| c["ath"] = json!(sign::ath("another-token"))).await;
}

#[tokio::test]
async fn bad_signature_is_refused() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    let (header, claims) = parts(&gw, &key, &token);
    let proof = key.sign_jws(header, &claims).unwrap();
    // Sign the same claims with another key but keep this key's jwk: a forged proof.
    let other = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let (mut header2, _) = parts(&gw, &key, &token);
    header2.insert("jwk".into(), Value::Object(key.public_jwk()));
    let forged = other.sign_jws(header2, &claims).unwrap();
    assert_ne!(proof, forged);
    let resp = gw
        .call("GET", "/resource")
        .dpop_token(&token)
        .proof(&forged)
        .send()
        .await;
    assert_refused(&resp, &gw, 0);
    let resp = gw
        .call("GET", "/resource")
        .dpop_token(&token)
        .proof(&proof)
        .send()
        .await;
    assert_eq!(resp.status(), 200);
}

/// Builds a compact JWS by hand (for algorithms no signer should produce).
fn raw_jws(header: &Value, claims: &Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string()),
        B64.encode(sig)
    )
}

#[tokio::test]
async fn alg_none_and_hs256_are_refused() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    for alg in ["none", "HS256"] {
        let (header, claims) = parts(&gw, &key, &token);
        let mut header = Value::Object(header);
        header["alg"] = json!(alg);
        let proof = raw_jws(&header, &claims, if alg == "none" { b"" } else { b"mac" });
        let resp = gw
            .call("GET", "/resource")
            .dpop_token(&token)
            .proof(&proof)
            .send()
            .await;
        assert_refused(&resp, &gw, 0);
    }
}

#[tokio::test]
async fn alg_outside_the_allow_list_is_refused() {
    let gw = TestGateway::start_with(Options {
        dpop_algorithms: "[ES256]".into(),
        ..Options::default()
    })
    .await;
    let key = PrivateJwk::generate(Algorithm::EdDSA).unwrap();
    let token = gw.issuer.token_for(&key);
    let resp = gw.authorized(&key, "GET", "/resource").send().await;
    assert_refused(&resp, &gw, 0);
    let www = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(www.contains("algs=\"ES256\""), "{www}");
    let es = PrivateJwk::generate(Algorithm::ES256).unwrap();
    assert_eq!(
        gw.authorized(&es, "GET", "/resource").send().await.status(),
        200
    );
    drop(token);
}

#[tokio::test]
async fn oversized_proof_is_refused() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    let resp = send_with(&gw, &key, &token, |_, c| c["pad"] = json!("x".repeat(9000))).await;
    assert_refused(&resp, &gw, 0);
}

#[tokio::test]
async fn garbage_proof_is_refused() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    for garbage in ["not-a-jws", "a.b.c", "....", "eyJ.eyJ.@@@"] {
        let resp = gw
            .call("GET", "/resource")
            .dpop_token(&token)
            .proof(garbage)
            .send()
            .await;
        assert_refused(&resp, &gw, 0);
    }
}

#[tokio::test]
async fn dpop_scheme_without_proof_is_refused() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    let resp = gw.call("GET", "/resource").dpop_token(&token).send().await;
    assert_refused(&resp, &gw, 0);
}

#[tokio::test]
async fn no_credentials_get_a_bare_challenge() {
    let gw = TestGateway::start().await;
    let resp = gw.call("GET", "/resource").send().await;
    assert_eq!(resp.status(), 401);
    let www = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(www.starts_with("DPoP algs=\""), "{www}");
    assert!(!www.contains("error="), "{www}");
    assert!(gw.upstream.requests().is_empty());
}

#[tokio::test]
async fn two_dpop_headers_are_a_bad_request() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    let p1 = crate::support::proof(&key, "GET", &gw.url("/resource"), Some(&token));
    let p2 = crate::support::proof(&key, "GET", &gw.url("/resource"), Some(&token));
    let resp = gw
        .call("GET", "/resource")
        .dpop_token(&token)
        .proof(&p1)
        .proof(&p2)
        .send()
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(www_error(&resp).as_deref(), Some("invalid_request"));
    assert!(gw.upstream.requests().is_empty());
}

#[tokio::test]
async fn two_authorization_headers_are_a_bad_request() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    let p = crate::support::proof(&key, "GET", &gw.url("/resource"), Some(&token));
    let resp = gw
        .call("GET", "/resource")
        .dpop_token(&token)
        .dpop_token(&token)
        .proof(&p)
        .send()
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(www_error(&resp).as_deref(), Some("invalid_request"));
    assert!(gw.upstream.requests().is_empty());
}

#[tokio::test]
async fn every_algorithm_is_accepted_end_to_end() {
    let gw = TestGateway::start().await;
    for alg in [Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA] {
        let key = PrivateJwk::generate(alg).unwrap();
        let resp = gw.authorized(&key, "GET", "/resource").send().await;
        assert_eq!(resp.status(), 200, "{alg}");
    }
    for (alg, file) in [
        (
            Algorithm::RS256,
            include_str!("../fixtures/rs256-client.jwk"),
        ),
        (
            Algorithm::PS256,
            include_str!("../fixtures/ps256-client.jwk"),
        ),
    ] {
        let key = PrivateJwk::from_json(file).unwrap();
        assert_eq!(key.alg(), alg);
        let resp = gw.authorized(&key, "GET", "/resource").send().await;
        assert_eq!(resp.status(), 200, "{alg}");
    }
    assert_eq!(gw.upstream.requests().len(), 5);
}

#[tokio::test]
async fn missing_typ_is_refused() {
    check_pair(|h, _| {
        h.remove("typ");
    })
    .await;
}

#[tokio::test]
async fn a_crit_header_is_refused() {
    check_pair(|h, _| {
        h.insert("crit".into(), json!(["exp"]));
    })
    .await;
}

#[tokio::test]
async fn a_jwk_that_names_another_alg_is_refused() {
    check_pair(|h, _| {
        if let Some(Value::Object(jwk)) = h.get_mut("jwk") {
            jwk.insert("alg".into(), json!("ES384"));
        }
    })
    .await;
}

#[tokio::test]
async fn an_overlong_jti_is_refused() {
    check_pair(|_, c| c["jti"] = json!("j".repeat(300))).await;
}

#[tokio::test]
async fn claims_of_the_wrong_type_are_refused() {
    check_pair(|_, c| c["iat"] = json!(now().to_string())).await;
    check_pair(|_, c| c["htu"] = json!(42)).await;
}

#[tokio::test]
async fn a_relative_htu_is_refused() {
    check_pair(|_, c| c["htu"] = json!("/resource")).await;
}

#[tokio::test]
async fn a_jwk_of_another_key_type_than_alg_is_refused() {
    // An EdDSA key in the header of a proof that claims ES256: signed by the EdDSA key, so only
    // the key/alg fit is wrong.
    let gw = TestGateway::start().await;
    let es = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let ed = PrivateJwk::generate(Algorithm::EdDSA).unwrap();
    let token = gw.issuer.token_for(&es);
    let (mut header, claims) = parts(&gw, &es, &token);
    header.insert("jwk".into(), Value::Object(ed.public_jwk()));
    let mut header = Value::Object(header);
    header["alg"] = json!("ES256");
    let proof = raw_jws(&header, &claims, &[0u8; 64]);
    let resp = gw
        .call("GET", "/resource")
        .dpop_token(&token)
        .proof(&proof)
        .send()
        .await;
    assert_refused(&resp, &gw, 0);
}

/// The proof-header cache never stands in for the signature: once a key's header is cached by
/// a valid proof, a proof with the byte-identical header but another key's signature is refused.
#[tokio::test]
async fn a_cached_header_does_not_skip_the_signature() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    let (header, claims) = parts(&gw, &key, &token);
    let proof = key.sign_jws(header.clone(), &claims).unwrap();
    let ok = gw
        .call("GET", "/resource")
        .dpop_token(&token)
        .proof(&proof)
        .send()
        .await;
    assert_eq!(ok.status(), 200);
    let (_, claims) = parts(&gw, &key, &token);
    let other = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let forged = other.sign_jws(header, &claims).unwrap();
    // Same header text as the accepted proof, so the cache hits.
    assert_eq!(forged.split('.').next(), proof.split('.').next());
    let resp = gw
        .call("GET", "/resource")
        .dpop_token(&token)
        .proof(&forged)
        .send()
        .await;
    assert_refused(&resp, &gw, 1);
}

/// A member named twice in the header or the claims is refused (JSON leaves it undefined which
/// copy counts); the same proof with each member once is forwarded.
#[tokio::test]
async fn a_repeated_member_is_refused() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    let jwk = Value::Object(key.public_jwk());
    let send = |header: String, claims: String| {
        let proof = key
            .sign_jws_text(header.as_bytes(), claims.as_bytes())
            .unwrap();
        let gw = &gw;
        let token = token.clone();
        async move {
            gw.call("GET", "/resource")
                .dpop_token(&token)
                .proof(&proof)
                .send()
                .await
        }
    };
    let claims = |extra: &str| {
        format!(
            r#"{{"jti":"{}","htm":"GET","htu":"{}","iat":{},"ath":"{}"{extra}}}"#,
            sign::random_jti(),
            gw.url("/resource"),
            now(),
            sign::ath(&token)
        )
    };
    let header = format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{jwk}}}"#);
    let ok = send(header.clone(), claims("")).await;
    assert_eq!(ok.status(), 200, "each member once passes");
    let resp = send(header.clone(), claims(r#","htm":"POST""#)).await;
    assert_refused(&resp, &gw, 1);
    let twice = format!(r#"{{"typ":"dpop+jwt","alg":"ES256","alg":"ES256","jwk":{jwk}}}"#);
    let resp = send(twice, claims("")).await;
    assert_refused(&resp, &gw, 1);
}

/// RFC 7638 thumbprint of a JWK's required members, given as their canonical JSON (computed
/// here: the gateway refuses to for the keys below).
fn thumbprint_of(canonical_json: &str) -> String {
    B64.encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical_json.as_bytes(),
    ))
}

/// The Ed25519 identity point's encoding: y = 1, sign bit clear.
const IDENTITY: [u8; 32] = {
    let mut x = [0u8; 32];
    x[0] = 1;
    x
};

/// A forged proof needs no private key: with `x` the identity point, the signature
/// `R = identity, S = 0` verifies over every message in ring's cofactorless check. A token
/// bound to that key (an AS that does not validate keys issues one) must still not pass: the
/// proof is refused for its key, and the upstream sees nothing.
#[tokio::test]
async fn a_proof_forged_for_the_small_order_identity_key_is_refused() {
    let gw = TestGateway::start_with(Options {
        dpop_algorithms: "[ES256, EdDSA, Ed25519]".into(),
        ..Options::default()
    })
    .await;
    let x = B64.encode(IDENTITY);
    let jkt = thumbprint_of(&format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#));
    let token = gw.issuer.sign(&gw.issuer.claims(Some(jkt)));
    let mut forged_signature = [0u8; 64];
    forged_signature[..32].copy_from_slice(&IDENTITY);
    for (seen, alg) in [(1, Algorithm::EdDSA), (2, Algorithm::Ed25519)] {
        // The pair: a real key of the same type, same route, is forwarded.
        let real = PrivateJwk::generate(alg).unwrap();
        let ok = gw.authorized(&real, "GET", "/resource").send().await;
        assert_eq!(ok.status(), 200, "{alg}");
        let header = json!({"typ": "dpop+jwt", "alg": alg.as_str(),
                            "jwk": {"kty": "OKP", "crv": "Ed25519", "x": x}});
        let claims = json!({
            "jti": sign::random_jti(),
            "htm": "GET",
            "htu": gw.url("/resource"),
            "iat": now(),
            "ath": sign::ath(&token),
        });
        let proof = raw_jws(&header, &claims, &forged_signature);
        let resp = gw
            .call("GET", "/resource")
            .dpop_token(&token)
            .proof(&proof)
            .send()
            .await;
        assert_refused(&resp, &gw, seen);
        assert!(
            json_body(&resp)["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("small order")),
            "{:?}",
            resp.body()
        );
    }
}

/// One RSA key, two encodings of `n` (with and without a leading zero octet), would have two
/// thumbprints: the non-minimal one is refused (RFC 7518 §2), though its signature verifies
/// and a token is bound to exactly that thumbprint.
#[tokio::test]
async fn a_proof_key_with_a_leading_zero_octet_in_n_is_refused() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::from_json(include_str!("../fixtures/rs256-client.jwk")).unwrap();
    let public = key.public_jwk();
    let (n, e) = (public["n"].as_str().unwrap(), public["e"].as_str().unwrap());
    let mut padded = vec![0u8];
    padded.extend(B64.decode(n).unwrap());
    let padded_n = B64.encode(&padded);
    let jkt = thumbprint_of(&format!(r#"{{"e":"{e}","kty":"RSA","n":"{padded_n}"}}"#));
    let token = gw.issuer.sign(&gw.issuer.claims(Some(jkt)));
    // The pair: the minimal encoding with its own token is forwarded.
    assert_eq!(
        gw.authorized(&key, "GET", "/resource")
            .send()
            .await
            .status(),
        200
    );
    let (mut header, claims) = parts(&gw, &key, &token);
    header.insert("jwk".into(), json!({"kty": "RSA", "n": padded_n, "e": e}));
    let proof = key.sign_jws(header, &claims).unwrap();
    let resp = gw
        .call("GET", "/resource")
        .dpop_token(&token)
        .proof(&proof)
        .send()
        .await;
    assert_refused(&resp, &gw, 1);
}

/// RFC 9864's `Ed25519` is accepted where `dpop.algorithms` lists it, `EdDSA` only where that
/// is listed, and the challenge and RFC 9728 metadata name exactly what is accepted.
#[tokio::test]
async fn ed25519_is_accepted_by_its_own_name_and_advertised() {
    let gw = TestGateway::start_with(Options {
        dpop_algorithms: "[ES256, Ed25519]".into(),
        ..Options::default()
    })
    .await;
    let ed25519 = PrivateJwk::generate(Algorithm::Ed25519).unwrap();
    let ok = gw.authorized(&ed25519, "GET", "/resource").send().await;
    assert_eq!(ok.status(), 200);
    // The same key type under RFC 8037's name is not listed here.
    let eddsa = PrivateJwk::generate(Algorithm::EdDSA).unwrap();
    let resp = gw.authorized(&eddsa, "GET", "/resource").send().await;
    assert_refused(&resp, &gw, 1);
    let www = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(www.contains("algs=\"ES256 Ed25519\""), "{www}");
    let doc = gw
        .call("GET", "/.well-known/oauth-protected-resource")
        .send()
        .await;
    assert_eq!(
        json_body(&doc)["dpop_signing_alg_values_supported"],
        json!(["ES256", "Ed25519"])
    );
}

/// Without `dpop.algorithms`, both Ed25519 names are accepted and advertised.
#[tokio::test]
async fn the_default_algorithms_accept_ed25519_under_both_names() {
    use crate::support::issuer_server::{IssuerServer, RemoteGateway};
    let server = IssuerServer::start().await;
    server.publish(&["k1"]);
    let gw = RemoteGateway::discovering(&server).await;
    for alg in [Algorithm::Ed25519, Algorithm::EdDSA] {
        let key = PrivateJwk::generate(alg).unwrap();
        let resp = gw.get(&key, &server.jwt("k1", &key)).await;
        assert_eq!(resp.status(), 200, "{alg}: {:?}", resp.body());
    }
    let refused = gw
        .get(&PrivateJwk::generate(Algorithm::ES256).unwrap(), "x")
        .await;
    let www = refused.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        www.contains("algs=\"ES256 ES384 EdDSA Ed25519 RS256 PS256\""),
        "{www}"
    );
    assert_eq!(gw.upstream.requests().len(), 2);
}

/// `keygen --alg Ed25519` and `proof` (the built binary) make a proof the gateway accepts, with
/// `alg: "Ed25519"` in its header.
#[tokio::test]
async fn a_keygen_ed25519_key_signs_proofs_the_gateway_accepts() {
    let bin = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_dpop-gateway"));
        c.current_dir(env!("CARGO_MANIFEST_DIR"));
        c
    };
    let out = bin().args(["keygen", "--alg", "Ed25519"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jwk: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&jwk["alg"], &jwk["kty"], &jwk["crv"]),
        (&json!("Ed25519"), &json!("OKP"), &json!("Ed25519"))
    );
    let key_path = crate::support::temp_dir("keygen-ed25519").join("client.jwk");
    std::fs::write(&key_path, &out.stdout).unwrap();
    let key = PrivateJwk::from_json(std::str::from_utf8(&out.stdout).unwrap()).unwrap();

    let gw = TestGateway::start_with(Options {
        dpop_algorithms: "[Ed25519]".into(),
        ..Options::default()
    })
    .await;
    let token = gw.issuer.token_for(&key);
    let url = gw.url("/resource");
    let out = bin()
        .args(["proof", "--key"])
        .arg(&key_path)
        .args(["--method", "GET", "--url", &url, "--token", &token])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let proof = String::from_utf8(out.stdout).unwrap();
    let proof = proof.trim();
    let header: Value =
        serde_json::from_slice(&B64.decode(proof.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["alg"], "Ed25519");
    let resp = gw
        .call("GET", "/resource")
        .dpop_token(&token)
        .proof(proof)
        .send()
        .await;
    assert_eq!(resp.status(), 200, "{:?}", resp.body());
}
