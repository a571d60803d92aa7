//! The pipeline's own tests: a [`State`] from an inline config at a fixed time, requests given
//! as heads (no sockets: the integration tests cover the wire), each step's refusal and the
//! one record every request gets.

use std::sync::Arc;

use http::Request;
use serde_json::json;

use super::*;
use crate::clock::FixedClock;
use crate::config::{Config, EnvLookup};
use crate::jose::sign::{PrivateJwk, ProofClaims};
use crate::jose::Algorithm;
use crate::metrics::Metrics;
use crate::token::TokenError;

const NOW: UnixTime = UnixTime(1_700_000_000);
const URL: &str = "http://gw.test/api/items";

struct NoEnv;

impl EnvLookup for NoEnv {
    fn get(&self, _: &str) -> Option<String> {
        None
    }
}

struct Fixture {
    state: State,
    client: PrivateJwk,
    token: String,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn conn() -> ConnMeta {
    ConnMeta {
        remote: "127.0.0.1:40000".parse().unwrap(),
        scheme: "http",
    }
}

/// A gateway config with an open `/open`, a DPoP `/api` and `extra` appended.
async fn fixture(extra: &str) -> Fixture {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "dpop-gateway-pipeline-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let issuer = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let mut jwk = issuer.public_jwk();
    jwk.insert("kid".into(), json!("k1"));
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, json!({ "keys": [jwk] }).to_string()).unwrap();
    let yaml = format!(
        r#"
listen: "127.0.0.1:0"
admin_listen: "127.0.0.1:0"
upstream: {{ url: "http://127.0.0.1:9" }}
routes:
  - {{ path_prefix: "/open", auth: none }}
  - {{ path_prefix: "/api", auth: dpop }}
access_token:
  issuer: "https://as.test"
  audience: "https://api.test"
  jwks_file: "{}"
{extra}
"#,
        jwks.display()
    );
    let config = Config::from_yaml_str(&yaml, "<test>", &NoEnv).unwrap();
    let state = State::from_config(
        &config,
        Arc::new(FixedClock::new(NOW)),
        Metrics::new().unwrap(),
    )
    .await
    .unwrap();
    let client = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let mut header = serde_json::Map::new();
    header.insert("typ".into(), json!("at+jwt"));
    header.insert("kid".into(), json!("k1"));
    let claims = json!({
        "iss": "https://as.test", "aud": "https://api.test", "sub": "user-1",
        "client_id": "c1", "iat": NOW.as_secs(), "exp": NOW.as_secs() + 600,
        "jti": "t1", "cnf": { "jkt": client.thumbprint().to_string() },
    });
    let token = issuer.sign_jws(header, &claims).unwrap();
    Fixture {
        state,
        client,
        token,
        _dir: TempDir(dir),
    }
}

impl Fixture {
    fn proof(&self, method: &str, url: &str, jti: &str) -> String {
        self.client
            .mint_proof(&ProofClaims {
                htm: method.into(),
                htu: url.into(),
                iat: NOW.as_secs(),
                jti: jti.into(),
                access_token: Some(self.token.clone()),
                nonce: None,
            })
            .unwrap()
    }

    fn head(&self, method: &str, path: &str, proof: Option<&str>) -> Parts {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "gw.test");
        if let Some(p) = proof {
            req = req
                .header("authorization", format!("DPoP {}", self.token))
                .header("dpop", p);
        }
        req.body(()).unwrap().into_parts().0
    }

    async fn authorize(&self, head: &Parts) -> (String, Result<Access, Refusal>) {
        self.authorize_with(head, BodyKnown::Empty).await
    }

    async fn authorize_with(
        &self,
        head: &Parts,
        body: BodyKnown,
    ) -> (String, Result<Access, Refusal>) {
        let mut head = head.clone();
        let d = authorize(&self.state, &mut head, body, conn()).await;
        (d.route.label().to_owned(), d.result)
    }
}

fn refusal(result: Result<Access, Refusal>) -> Refusal {
    match result {
        Err(r) => r,
        Ok(_) => panic!("expected a refusal"),
    }
}

#[tokio::test]
async fn a_valid_proof_is_authorized_once_and_its_replay_refused() {
    let f = fixture("").await;
    let proof = f.proof("GET", URL, "j1");
    let head = f.head("GET", "/api/items", Some(&proof));
    let (route, result) = f.authorize(&head).await;
    assert_eq!(route, "/api");
    match result {
        Ok(Access::Authorized(Authorized(v))) => {
            assert_eq!(v.token_info().sub.as_deref(), Some("user-1"));
            assert_eq!(v.proof().map(|p| p.jkt()), Some(f.client.thumbprint()));
        }
        _ => panic!("not authorized"),
    }
    let (_, again) = f.authorize(&head).await;
    assert!(matches!(refusal(again), Refusal::Replayed));
}

#[tokio::test]
async fn verify_does_not_use_a_replay_entry() {
    let f = fixture("").await;
    let proof = f.proof("GET", URL, "j-verify");
    let head = f.head("GET", "/api/items", Some(&proof));
    let route = f.state.router.find("/api/items");
    for _ in 0..2 {
        assert!(verify(&f.state, route, &head, conn(), NOW).await.is_ok());
    }
    let (_, result) = f.authorize(&head).await;
    assert!(matches!(result, Ok(Access::Authorized(_))));
}

#[tokio::test]
async fn each_step_refuses_with_its_own_refusal() {
    let f = fixture("").await;
    // 1 a non-canonical path, before any credential work
    let (_, r) = f.authorize(&f.head("GET", "/api/../admin", None)).await;
    assert!(matches!(refusal(r), Refusal::InvalidRequest(_)));
    // 2 no credentials; Bearer on a DPoP-only route
    let (_, r) = f.authorize(&f.head("GET", "/api/items", None)).await;
    assert!(matches!(refusal(r), Refusal::NoCredentials));
    let mut bearer = f.head("GET", "/api/items", None);
    bearer.headers.insert(
        "authorization",
        format!("Bearer {}", f.token).parse().unwrap(),
    );
    let (_, r) = f.authorize(&bearer).await;
    assert!(matches!(refusal(r), Refusal::Token(TokenError::NotBound)));
    // 3 a proof for another method
    let proof = f.proof("POST", URL, "j2");
    let (_, r) = f
        .authorize(&f.head("GET", "/api/items", Some(&proof)))
        .await;
    assert!(matches!(refusal(r), Refusal::Proof(_)));
    // 5 a token not bound to the proof's key
    let other = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let stolen = other
        .mint_proof(&ProofClaims {
            htm: "GET".into(),
            htu: URL.into(),
            iat: NOW.as_secs(),
            jti: "j3".into(),
            access_token: Some(f.token.clone()),
            nonce: None,
        })
        .unwrap();
    let (_, r) = f
        .authorize(&f.head("GET", "/api/items", Some(&stolen)))
        .await;
    assert!(matches!(
        refusal(r),
        Refusal::Token(TokenError::JktMismatch { .. })
    ));
}

#[tokio::test]
async fn open_routes_and_preflights_need_no_credentials() {
    let f = fixture("").await;
    let (route, r) = f.authorize(&f.head("GET", "/open/x", None)).await;
    assert_eq!(route, "/open");
    assert!(matches!(r, Ok(Access::Open)));
    let mut preflight = f.head("OPTIONS", "/api/items", None);
    preflight
        .headers
        .insert("origin", "https://app.test".parse().unwrap());
    preflight
        .headers
        .insert("access-control-request-method", "POST".parse().unwrap());
    let (_, r) = f.authorize(&preflight).await;
    assert!(matches!(r, Ok(Access::Open)));
    // With a body (HTTP/2 DATA frames, no framing header): a request like any other.
    let (_, r) = f.authorize_with(&preflight, BodyKnown::MayFollow).await;
    assert!(matches!(refusal(r), Refusal::NoCredentials));
}

#[tokio::test]
async fn an_unmatched_path_is_protected_by_the_fallback() {
    let f = fixture("").await;
    let (route, r) = f.authorize(&f.head("GET", "/elsewhere", None)).await;
    assert_eq!(route, "unmatched");
    assert!(matches!(refusal(r), Refusal::NoCredentials));
}

#[tokio::test]
async fn a_nonce_route_refuses_a_proof_without_one() {
    let f = fixture(
        "dpop:\n  nonce:\n    enabled: true\n    secrets: [\"0123456789abcdef0123456789abcdef-nonce\"]",
    )
    .await;
    let proof = f.proof("GET", URL, "j-nonce");
    let (_, r) = f
        .authorize(&f.head("GET", "/api/items", Some(&proof)))
        .await;
    assert!(matches!(refusal(r), Refusal::UseNonce(NonceError::Missing)));
}

#[tokio::test]
async fn the_metadata_document_is_answered_locally() {
    let f = fixture("").await;
    let head = f.head("GET", "/.well-known/oauth-protected-resource/api", None);
    let (_, r) = f.authorize(&head).await;
    assert!(matches!(r, Ok(Access::Local(_))));
}

#[tokio::test]
async fn every_request_is_recorded_local_answers_and_refusals_included() {
    let f = fixture("").await;
    let state = Arc::new(f.state);
    for path in ["/.well-known/oauth-protected-resource", "/api/items"] {
        let req = Request::get(path)
            .header("host", "gw.test")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let resp = handle(state.clone(), req, conn()).await.unwrap();
        assert!(resp.headers().contains_key("x-request-id"));
    }
    let text = state.metrics.encode();
    for outcome in ["outcome=\"local\"", "outcome=\"unauthorized\""] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("dpop_gateway_requests_total") && l.contains(outcome)),
            "{outcome}: {text}"
        );
    }
}

#[tokio::test]
async fn a_proof_from_before_the_start_is_refused_by_a_memory_backed_gateway() {
    let f = fixture("").await;
    let mut claims = ProofClaims {
        htm: "GET".into(),
        htu: URL.into(),
        iat: NOW.as_secs() - 1,
        jti: "j-before".into(),
        access_token: Some(f.token.clone()),
        nonce: None,
    };
    let old = f.client.mint_proof(&claims).unwrap();
    let (_, r) = f.authorize(&f.head("GET", "/api/items", Some(&old))).await;
    assert!(matches!(
        refusal(r),
        Refusal::IssuedBeforeStart {
            nonce_route: false,
            ..
        }
    ));
    claims.iat = NOW.as_secs();
    claims.jti = "j-after".into();
    let fresh = f.client.mint_proof(&claims).unwrap();
    let (_, r) = f
        .authorize(&f.head("GET", "/api/items", Some(&fresh)))
        .await;
    assert!(matches!(r, Ok(Access::Authorized(_))));
}

#[test]
fn only_chunked_alone_is_a_supported_transfer_coding() {
    let te = |values: &[&str]| {
        let mut h = http::HeaderMap::new();
        for v in values {
            h.append(
                http::header::TRANSFER_ENCODING,
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        unsupported_transfer_coding(&h)
    };
    assert!(!te(&[]));
    assert!(!te(&["chunked"]));
    assert!(!te(&["Chunked"]));
    assert!(!te(&[" chunked ,"]));
    for bad in [
        &["gzip, chunked"][..],
        &["gzip,chunked"],
        &["gzip", "chunked"],
        &["chunked, chunked"],
        &["identity"],
    ] {
        assert!(te(bad), "{bad:?}");
    }
}

#[test]
fn a_value_with_whitespace_around_it_is_padded() {
    for v in [&b" a"[..], b"a ", b"\ta", b"a\t", b" "] {
        assert!(padded(v), "{v:?}");
    }
    for v in [&b""[..], b"a", b"a b", b"a\tb"] {
        assert!(!padded(v), "{v:?}");
    }
}
