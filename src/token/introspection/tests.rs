//! Unit tests of `token::introspection`.

use super::*;
use crate::jose::Thumbprint;
use serde_json::json;

const NOW: u64 = 1_700_000_000;

fn policy() -> IntrospectionPolicy {
    IntrospectionPolicy {
        issuer: "https://as.example.com".into(),
        audience: Some("https://api.example.com".into()),
        leeway: 30,
        cache_ttl: Duration::from_secs(60),
        claims: Vec::new(),
    }
}

fn active() -> Value {
    json!({
        "active": true,
        "token_type": "DPoP",
        "iss": "https://as.example.com",
        "aud": ["https://api.example.com"],
        "sub": "alice",
        "client_id": "client-1",
        "scope": "read",
        "exp": NOW + 300,
        "cnf": { "jkt": Thumbprint::from_bytes([7; 32]).to_string() },
    })
}

fn check(answer: &Value) -> Result<Arc<TokenInfo>, TokenFailure> {
    read_answer(answer.as_object().unwrap(), &policy(), UnixTime(NOW)).verdict
}

fn with(key: &str, value: Value) -> Value {
    let mut a = active();
    a[key] = value;
    a
}

fn without(key: &str) -> Value {
    let mut a = active();
    a.as_object_mut().unwrap().remove(key);
    a
}

#[test]
fn an_active_answer_yields_the_claims_and_the_binding() {
    let info = check(&active()).unwrap();
    assert_eq!(info.sub.as_deref(), Some("alice"));
    assert_eq!(info.client_id.as_deref(), Some("client-1"));
    assert_eq!(info.scope.as_deref(), Some("read"));
    assert_eq!(info.jkt, Some(Thumbprint::from_bytes([7; 32])));
    assert_eq!(info.exp, Some(UnixTime(NOW + 300)));
}

#[test]
fn an_inactive_answer_is_inactive() {
    assert_eq!(
        check(&json!({ "active": false })),
        Err(TokenFailure::Invalid(TokenError::Inactive))
    );
}

#[test]
fn an_answer_without_boolean_active_is_an_outage() {
    for a in [json!({}), json!({ "active": "true" })] {
        assert!(
            matches!(check(&a), Err(TokenFailure::Unavailable(_))),
            "{a}"
        );
    }
}

#[test]
fn token_type_dpop_or_bearer_passes_any_case_others_are_refused() {
    for t in ["DPoP", "dpop", "Bearer", "BEARER"] {
        assert!(check(&with("token_type", json!(t))).is_ok(), "{t}");
    }
    assert!(check(&without("token_type")).is_ok());
    assert_eq!(
        check(&with("token_type", json!("mac"))),
        Err(TokenFailure::Invalid(TokenError::TokenType {
            got: "mac".into()
        }))
    );
}

#[test]
fn iss_when_present_must_be_the_issuer() {
    assert!(check(&without("iss")).is_ok());
    assert_eq!(
        check(&with("iss", json!("https://evil.example.com"))),
        Err(TokenFailure::Invalid(TokenError::Issuer {
            expected: "https://as.example.com".into(),
            got: Some("https://evil.example.com".into())
        }))
    );
}

#[test]
fn aud_when_present_must_contain_the_audience() {
    assert!(check(&without("aud")).is_ok());
    assert!(check(&with("aud", json!("https://api.example.com"))).is_ok());
    assert_eq!(
        check(&with("aud", json!(["https://other.example.com"]))),
        Err(TokenFailure::Invalid(TokenError::Audience {
            expected: "https://api.example.com".into()
        }))
    );
}

#[test]
fn exp_and_nbf_are_checked_with_leeway() {
    assert!(check(&with("exp", json!(NOW - 10))).is_ok());
    assert_eq!(
        check(&with("exp", json!(NOW - 31))),
        Err(TokenFailure::Invalid(TokenError::Expired {
            exp: NOW - 31,
            now: NOW
        }))
    );
    assert!(check(&with("nbf", json!(NOW + 10))).is_ok());
    assert_eq!(
        check(&with("nbf", json!(NOW + 31))),
        Err(TokenFailure::Invalid(TokenError::NotYetValid {
            nbf: NOW + 31,
            now: NOW
        }))
    );
}

#[test]
fn a_malformed_cnf_is_refused() {
    assert!(check(&without("cnf")).unwrap().jkt.is_none());
    assert_eq!(
        check(&with("cnf", json!({ "jkt": "short" }))),
        Err(TokenFailure::Invalid(TokenError::CnfMalformed))
    );
}

#[test]
fn cache_ttl_never_outlives_exp_and_refusals_are_brief() {
    let p = policy();
    let now = UnixTime(NOW);
    let info = |exp: Option<u64>| {
        Ok(Arc::new(TokenInfo {
            exp: exp.map(UnixTime),
            ..TokenInfo::default()
        }))
    };
    assert_eq!(
        cache_ttl(&info(Some(NOW + 300)), &p, now),
        Some(p.cache_ttl)
    );
    assert_eq!(
        cache_ttl(&info(Some(NOW + 5)), &p, now),
        Some(Duration::from_secs(5))
    );
    assert_eq!(cache_ttl(&info(Some(NOW)), &p, now), None);
    assert_eq!(cache_ttl(&info(None), &p, now), Some(p.cache_ttl));
    assert_eq!(
        cache_ttl(&Err(TokenFailure::Invalid(TokenError::Inactive)), &p, now),
        Some(REFUSED_TTL)
    );
    assert_eq!(
        cache_ttl(&Err(TokenFailure::Unavailable("x".into())), &p, now),
        None
    );
}

#[test]
fn client_credentials_are_form_urlencoded_before_base64() {
    assert_eq!(form_urlencode("a b+c:d/é"), "a+b%2Bc%3Ad%2F%C3%A9");
    let v = basic_authorization("gate way", "s:cret").unwrap();
    assert!(v.is_sensitive());
    let b64 = v.to_str().unwrap().strip_prefix("Basic ").unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(decoded, b"gate+way:s%3Acret");
}
