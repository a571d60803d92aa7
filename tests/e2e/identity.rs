//! The identity headers the upstream trusts (`X-Auth-Subject`, …) carry the token's claims as
//! they are or not at all: a claim that would be sent with leading or trailing whitespace or a
//! control character is refused (401 `invalid_token`, reason `identity_claim`) rather than
//! trimmed by the upstream's parser into another identity; a JWT without `sub`, or with a
//! non-string `sub`, `client_id` or `scope`, is malformed; non-ASCII values are
//! percent-encoded. The same holds for introspection answers. Every refusal: nothing upstream.

use dpop_gateway::jose::sign::PrivateJwk;
use dpop_gateway::jose::Algorithm;
use serde_json::{json, Value};

use crate::support::issuer_server::{IssuerServer, RemoteGateway};
use crate::support::{json_body, proof, www_error, Options, TestGateway};

fn key() -> PrivateJwk {
    PrivateJwk::generate(Algorithm::ES256).unwrap()
}

/// `GET /resource` with a token whose claims `edit` changed, and a fresh proof for it.
async fn call_with_claims(
    gw: &TestGateway,
    key: &PrivateJwk,
    edit: impl FnOnce(&mut Value),
) -> http::Response<bytes::Bytes> {
    let mut claims = gw.issuer.claims(Some(key.thumbprint().to_string()));
    edit(&mut claims);
    let token = gw.issuer.sign(&claims);
    let proof = proof(key, "GET", &gw.url("/resource"), Some(&token));
    gw.call("GET", "/resource")
        .dpop_token(&token)
        .proof(&proof)
        .send()
        .await
}

/// The `reason` label of the one refused request in `metrics`.
fn refused_reasons(metrics: &str) -> Vec<String> {
    metrics
        .lines()
        .filter(|l| l.starts_with("dpop_gateway_requests_total{") && l.contains("invalid_token"))
        .filter(|l| !l.ends_with(" 0"))
        .filter_map(|l| {
            let start = l.find("reason=\"")? + "reason=\"".len();
            let end = l[start..].find('"')? + start;
            Some(l[start..end].to_owned())
        })
        .collect()
}

#[tokio::test]
async fn a_claim_that_is_not_a_clean_header_value_is_refused() {
    let gw = TestGateway::start().await;
    let key = key();
    let cases: [(&str, &str); 11] = [
        ("sub", " admin"),
        ("sub", "admin "),
        ("sub", "\tadmin"),
        ("sub", "admin\r\nx-admin: true"),
        ("sub", "adm\nin"),
        ("sub", "adm\u{0}in"),
        ("sub", "adm\u{7f}in"),
        ("sub", "adm\u{85}in"),
        ("sub", "\u{a0}admin"),
        ("client_id", " client-1"),
        ("scope", "read\u{b}admin"),
    ];
    for (claim, value) in cases {
        let resp = call_with_claims(&gw, &key, |c| c[claim] = json!(value)).await;
        assert_eq!(resp.status(), 401, "{claim}: {value:?}");
        assert_eq!(www_error(&resp).as_deref(), Some("invalid_token"));
        let description = json_body(&resp)["error_description"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(description.contains(claim), "{claim}: {description}");
    }
    assert!(
        gw.upstream.requests().is_empty(),
        "{:#?}",
        gw.upstream.requests()
    );
    let reasons = refused_reasons(&gw.metrics().await);
    assert_eq!(reasons, ["identity_claim"], "{reasons:?}");
}

#[tokio::test]
async fn a_claim_sent_as_no_header_is_not_judged_as_one() {
    let gw = TestGateway::start_with(Options {
        extra: "forward:\n  identity_headers:\n    subject: null".into(),
        ..Options::default()
    })
    .await;
    let key = key();
    let resp = call_with_claims(&gw, &key, |c| c["sub"] = json!(" admin")).await;
    assert_eq!(resp.status(), 200);
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].headers.contains_key("x-auth-subject"));
    assert_eq!(seen[0].headers["x-auth-client-id"], "client-1");
}

#[tokio::test]
async fn a_jwt_without_sub_or_with_non_string_identity_claims_is_malformed() {
    let gw = TestGateway::start().await;
    let key = key();
    let edits: [(&str, Option<Value>); 7] = [
        ("sub", None),
        ("sub", Some(json!(42))),
        ("sub", Some(json!(null))),
        ("sub", Some(json!(["alice"]))),
        ("client_id", Some(json!({"id": "x"}))),
        ("scope", Some(json!(["read", "write"]))),
        ("scope", Some(json!(true))),
    ];
    for (claim, value) in edits {
        let resp = call_with_claims(&gw, &key, |c| match &value {
            None => {
                c.as_object_mut().unwrap().remove(claim);
            }
            Some(v) => c[claim] = v.clone(),
        })
        .await;
        assert_eq!(resp.status(), 401, "{claim}: {value:?}");
        assert_eq!(www_error(&resp).as_deref(), Some("invalid_token"));
        let description = json_body(&resp)["error_description"].to_string();
        assert!(description.contains("malformed"), "{description}");
        assert!(description.contains(claim), "{description}");
    }
    assert!(gw.upstream.requests().is_empty());
    assert_eq!(refused_reasons(&gw.metrics().await), ["malformed"]);
}

#[tokio::test]
async fn non_ascii_claims_are_percent_encoded_and_percent_too() {
    let gw = TestGateway::start().await;
    let key = key();
    for (sub, sent) in [
        ("josé", "jos%C3%A9"),
        ("100%", "100%25"),
        ("jos%C3%A9", "jos%25C3%25A9"),
        ("Zoë Ünal 日本", "Zo%C3%AB %C3%9Cnal %E6%97%A5%E6%9C%AC"),
        ("plain user@example.com", "plain user@example.com"),
    ] {
        let resp = call_with_claims(&gw, &key, |c| {
            c["sub"] = json!(sub);
            c["scope"] = json!("read lecture:écrire");
        })
        .await;
        assert_eq!(resp.status(), 200, "{sub}");
        let seen = gw.upstream.requests();
        let last = seen.last().unwrap();
        assert_eq!(last.headers["x-auth-subject"], sent, "{sub}");
        assert_eq!(last.headers["x-auth-scope"], "read lecture:%C3%A9crire");
    }
}

#[tokio::test]
async fn introspected_identity_claims_follow_the_same_rules() {
    let server = IssuerServer::start().await;
    let gw = RemoteGateway::introspecting(&server).await;
    let key = key();
    let refused: [(&str, Value); 4] = [
        ("sub", json!(" admin")),
        ("sub", json!(7)),
        ("client_id", json!("client-1\r\nx-admin: 1")),
        ("scope", json!(["read"])),
    ];
    for (claim, value) in refused {
        let token = server.opaque_with(&key, |a| a[claim] = value.clone());
        let resp = gw.get(&key, &token).await;
        assert_eq!(resp.status(), 401, "{claim}: {value}");
        assert_eq!(www_error(&resp).as_deref(), Some("invalid_token"));
    }
    assert!(gw.upstream.requests().is_empty());

    // `sub` is optional in an introspection answer (RFC 7662 §2.2); non-ASCII is encoded.
    let token = server.opaque_with(&key, |a| {
        a.as_object_mut().unwrap().remove("sub");
        a["client_id"] = json!("café");
    });
    let resp = gw.get(&key, &token).await;
    assert_eq!(resp.status(), 200);
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].headers.contains_key("x-auth-subject"));
    assert_eq!(seen[0].headers["x-auth-client-id"], "caf%C3%A9");
    gw.shutdown().await;
}
