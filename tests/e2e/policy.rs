//! Route policies: `methods` (405 with `Allow`, never a fall-through to a shorter prefix),
//! `require.scopes` and `require.claims` (403 `insufficient_scope`, RFC 6750 §3.1), `issuers`.
//! Every test pairs a passing request with one refused for exactly one reason, and asserts
//! that the upstream saw nothing of the refused one.

use bytes::Bytes;
use dpop_gateway::jose::sign::PrivateJwk;
use dpop_gateway::jose::Algorithm;
use http::Response;
use serde_json::{json, Value};

use crate::support::gateway::Issuer;
use crate::support::issuer_server::{IssuerServer, RemoteGateway};
use crate::support::{json_body, proof, www_error, Options, TestGateway};

/// A typical legacy API: reads need `api:read`, writes `api:write`; `/tenants/acme` needs the
/// `tenant` claim; `/healthz` is open; everything else needs DPoP.
const ROUTES: &str = r#"
  - { path_prefix: "/healthz", auth: none }
  - path_prefix: "/api"
    methods: [GET, HEAD]
    auth: dpop
    require: { scopes: ["api:read"] }
  - path_prefix: "/api"
    methods: [POST, PUT]
    auth: dpop
    require: { scopes: ["api:read", "api:write"] }
  - path_prefix: "/tenants/acme"
    auth: dpop
    issuers: ["https://as.example.com"]
    require: { claims: { tenant: acme, level: 2 } }
  - { path_prefix: "/", auth: none }"#;

async fn gateway() -> TestGateway {
    TestGateway::start_with(Options {
        routes: ROUTES.into(),
        ..Options::default()
    })
    .await
}

fn key() -> PrivateJwk {
    PrivateJwk::generate(Algorithm::ES256).unwrap()
}

/// A token bound to `key` whose claims are the issuer's defaults changed by `edit`.
fn token(gw: &TestGateway, key: &PrivateJwk, edit: impl FnOnce(&mut Value)) -> String {
    let mut c = gw.issuer.claims(Some(key.thumbprint().to_string()));
    edit(&mut c);
    gw.issuer.sign(&c)
}

/// `method path` with `token` and a fresh proof by `key`.
async fn send(
    gw: &TestGateway,
    key: &PrivateJwk,
    token: &str,
    method: &str,
    path: &str,
) -> Response<Bytes> {
    let p = proof(key, method, &gw.url(path), Some(token));
    gw.call(method, path)
        .dpop_token(token)
        .proof(&p)
        .send()
        .await
}

/// A 403 `insufficient_scope` as RFC 6750 §3.1 and RFC 9449 §7.1 describe it, with the
/// challenge's `scope` when the route requires scopes.
fn assert_insufficient_scope(resp: &Response<Bytes>, scope: Option<&str>) {
    assert_eq!(resp.status(), 403, "body: {:?}", resp.body());
    assert_eq!(www_error(resp).as_deref(), Some("insufficient_scope"));
    let www = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        www.starts_with("DPoP error=\"insufficient_scope\""),
        "{www}"
    );
    match scope {
        Some(s) => assert!(www.contains(&format!("scope=\"{s}\"")), "{www}"),
        None => assert!(!www.contains("scope=\""), "{www}"),
    }
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body = json_body(resp);
    assert_eq!(body["error"], "insufficient_scope", "{body}");
    assert!(body["error_description"].is_string(), "{body}");
}

#[tokio::test]
async fn reads_need_the_read_scope_and_writes_the_write_scope() {
    let gw = gateway().await;
    let k = key();
    let reader = token(&gw, &k, |c| c["scope"] = json!("openid api:read"));

    let resp = send(&gw, &k, &reader, "GET", "/api/items").await;
    assert_eq!(resp.status(), 200, "body: {:?}", resp.body());
    assert_eq!(gw.upstream.requests().len(), 1);

    let resp = send(&gw, &k, &reader, "POST", "/api/items").await;
    assert_insufficient_scope(&resp, Some("api:read api:write"));
    assert!(
        json_body(&resp)["error_description"]
            .as_str()
            .unwrap()
            .contains("api:write"),
        "names the missing scope"
    );
    assert_eq!(
        gw.upstream.requests().len(),
        1,
        "the refused write reached nothing"
    );

    let writer = token(&gw, &k, |c| c["scope"] = json!("api:write api:read"));
    let resp = send(&gw, &k, &writer, "POST", "/api/items").await;
    assert_eq!(resp.status(), 200, "body: {:?}", resp.body());
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].method, "POST");

    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("outcome=\"insufficient_scope\",reason=\"insufficient_scope\""),
        "{metrics}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn one_missing_scope_is_403_and_does_not_use_the_proof() {
    let gw = gateway().await;
    let k = key();
    let t = token(&gw, &k, |c| c["scope"] = json!("api:read-only"));
    let p = proof(&k, "GET", &gw.url("/api/items"), Some(&t));
    for _ in 0..2 {
        // The same proof twice: the policy refuses it before the replay check, so the
        // second answer is the 403 again, not a replay.
        let resp = gw
            .call("GET", "/api/items")
            .dpop_token(&t)
            .proof(&p)
            .send()
            .await;
        assert_insufficient_scope(&resp, Some("api:read"));
    }
    assert!(
        gw.upstream.requests().is_empty(),
        "upstream must see nothing"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn scp_arrays_are_read_as_scopes() {
    let gw = gateway().await;
    let k = key();
    let scp = token(&gw, &k, |c| {
        c.as_object_mut().unwrap().remove("scope");
        c["scp"] = json!(["api:read"]);
    });
    assert_eq!(send(&gw, &k, &scp, "GET", "/api/x").await.status(), 200);
    let other = token(&gw, &k, |c| {
        c.as_object_mut().unwrap().remove("scope");
        c["scp"] = json!(["api:write"]);
    });
    let resp = send(&gw, &k, &other, "GET", "/api/x").await;
    assert_insufficient_scope(&resp, Some("api:read"));
    assert_eq!(gw.upstream.requests().len(), 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_method_no_route_of_the_prefix_takes_is_405_and_never_falls_through() {
    let gw = gateway().await;
    let k = key();
    let all = token(&gw, &k, |c| c["scope"] = json!("api:read api:write"));
    // DELETE /api/x: the `/` route (auth: none) would take it; the `/api` routes decide.
    let resp = send(&gw, &k, &all, "DELETE", "/api/x").await;
    assert_eq!(resp.status(), 405, "body: {:?}", resp.body());
    assert_eq!(resp.headers()["allow"], "GET, HEAD, POST, PUT");
    assert!(resp.headers().get("www-authenticate").is_none());
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(json_body(&resp)["error"], "method_not_allowed");
    // Without credentials too: the method is refused before any check.
    let resp = gw.call("PATCH", "/api").send().await;
    assert_eq!(resp.status(), 405);
    assert!(
        gw.upstream.requests().is_empty(),
        "upstream must see nothing"
    );
    // HEAD is listed here, so it is taken; the pair of the refusals.
    let resp = send(&gw, &k, &all, "HEAD", "/api/x").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(gw.upstream.requests().len(), 1);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(
            "outcome=\"method_not_allowed\",reason=\"method_not_allowed\",route=\"/api\",status=\"405\""
        ),
        "{metrics}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_preflight_is_matched_whatever_the_methods() {
    let gw = gateway().await;
    let resp = gw
        .call("OPTIONS", "/api/x")
        .header("origin", "https://spa.example")
        .header("access-control-request-method", "DELETE")
        .send()
        .await;
    assert_eq!(resp.status(), 200, "forwarded to the upstream, never 405");
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "OPTIONS");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_claim_must_equal_the_value_or_be_an_array_holding_it() {
    let gw = gateway().await;
    let k = key();
    for good in [json!("acme"), json!(["globex", "acme"])] {
        let t = token(&gw, &k, |c| {
            c["tenant"] = good.clone();
            c["level"] = json!(2);
        });
        let resp = send(&gw, &k, &t, "GET", "/tenants/acme/orders").await;
        assert_eq!(resp.status(), 200, "{good}: {:?}", resp.body());
    }
    assert_eq!(gw.upstream.requests().len(), 2);
    for bad in [
        json!("globex"),
        json!(["globex"]),
        json!("ACME"),
        json!(null),
    ] {
        let t = token(&gw, &k, |c| {
            c["tenant"] = bad.clone();
            c["level"] = json!(2);
        });
        let resp = send(&gw, &k, &t, "GET", "/tenants/acme/orders").await;
        assert_insufficient_scope(&resp, None);
    }
    let missing = token(&gw, &k, |c| c["level"] = json!(2));
    let resp = send(&gw, &k, &missing, "GET", "/tenants/acme").await;
    assert_insufficient_scope(&resp, None);
    assert_eq!(
        gw.upstream.requests().len(),
        2,
        "no refused request reached the upstream"
    );
    let metrics = gw.metrics().await;
    assert!(metrics.contains("reason=\"claim\""), "{metrics}");
    gw.shutdown().await;
}

#[tokio::test]
async fn an_introspected_token_is_checked_on_every_cache_hit() {
    let server = IssuerServer::start().await;
    let gw = RemoteGateway::introspecting_routed(
        &server,
        r#"
  - { path_prefix: "/admin", auth: dpop, require: { scopes: [admin] } }
  - { path_prefix: "/", auth: dpop, require: { scopes: [read], claims: { tenant: acme } } }"#,
    )
    .await;
    let k = key();
    let t = server.opaque_with(&k, |a| a["tenant"] = json!(["acme"]));
    let resp = gw.get_path(&k, &t, "/resource").await;
    assert_eq!(resp.status(), 200, "body: {:?}", resp.body());
    // The verdict is cached now: /admin must still check the scope.
    let resp = gw.get_path(&k, &t, "/admin/users").await;
    assert_eq!(resp.status(), 403, "body: {:?}", resp.body());
    assert_eq!(www_error(&resp).as_deref(), Some("insufficient_scope"));
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("scope=\"admin\""));
    assert_eq!(
        server.introspections(),
        1,
        "the second answer came from the cache"
    );
    assert_eq!(gw.upstream.requests().len(), 1);
    // A token whose claim differs, answered from the cache the second time.
    let other = server.opaque_with(&k, |a| a["tenant"] = json!("globex"));
    for _ in 0..2 {
        let resp = gw.get_path(&k, &other, "/resource").await;
        assert_eq!(resp.status(), 403);
    }
    assert_eq!(server.introspections(), 2);
    assert_eq!(
        gw.upstream.requests().len(),
        1,
        "upstream saw only the passing request"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn the_metadata_document_is_served_whatever_the_methods() {
    let gw = TestGateway::start_with(Options {
        routes: "\n  - { path_prefix: \"/\", methods: [POST], auth: dpop }".into(),
        ..Options::default()
    })
    .await;
    let resp = gw
        .call("GET", "/.well-known/oauth-protected-resource")
        .send()
        .await;
    assert_eq!(resp.status(), 200, "body: {:?}", resp.body());
    let resp = gw.call("GET", "/anything").send().await;
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    assert!(gw.upstream.requests().is_empty());
    gw.shutdown().await;
}

/// A token of `iss` bound to `client`, signed by `signer` (kid `test-issuer-1`).
fn token_of(signer: &Issuer, iss: &str, client: &PrivateJwk, scope: &str) -> String {
    let mut c = signer.claims(Some(client.thumbprint().to_string()));
    c["iss"] = json!(iss);
    c["scope"] = json!(scope);
    signer.sign(&c)
}

const OTHER: &str = "https://other.example.com";

/// Two JWT issuers, each with its own keys (and audience); `/partners` takes only `OTHER`.
async fn two_issuers(a: &Issuer, b: &Issuer) -> RemoteGateway {
    RemoteGateway::start_routed(
        &format!(
            "  - issuer: \"https://as.example.com\"\n    audience: \"https://api.example.com\"\n    jwks_file: \"{}\"\n  - issuer: \"{OTHER}\"\n    audience: \"https://api.example.com\"\n    jwks_file: \"{}\"\n    leeway: 5s",
            a.jwks_path.display(),
            b.jwks_path.display()
        ),
        &format!(
            "\n  - {{ path_prefix: \"/partners\", auth: dpop, issuers: [\"{OTHER}\"] }}\n  - {{ path_prefix: \"/\", auth: dpop }}"
        ),
    )
    .await
}

#[tokio::test]
async fn each_issuer_is_checked_with_its_own_keys_only() {
    let (a, b) = (Issuer::new(), Issuer::new());
    let gw = two_issuers(&a, &b).await;
    let k = key();
    let ours = token_of(&a, "https://as.example.com", &k, "read");
    let theirs = token_of(&b, OTHER, &k, "read");
    assert_eq!(gw.get_path(&k, &ours, "/resource").await.status(), 200);
    assert_eq!(gw.get_path(&k, &theirs, "/resource").await.status(), 200);
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].headers["x-auth-issuer"], "https://as.example.com");
    assert_eq!(seen[1].headers["x-auth-issuer"], OTHER);
    // Claims OTHER, signed with the first issuer's key: OTHER's keys decide, and refuse it.
    let forged = token_of(&a, OTHER, &k, "read");
    let resp = gw.get_path(&k, &forged, "/resource").await;
    assert_eq!(resp.status(), 401, "body: {:?}", resp.body());
    assert_eq!(www_error(&resp).as_deref(), Some("invalid_token"));
    // An issuer no entry names.
    let stranger = token_of(&a, "https://stranger.example.com", &k, "read");
    let resp = gw.get_path(&k, &stranger, "/resource").await;
    assert_eq!(resp.status(), 401);
    assert_eq!(www_error(&resp).as_deref(), Some("invalid_token"));
    assert!(json_body(&resp)["error_description"]
        .as_str()
        .unwrap()
        .contains("stranger"));
    assert_eq!(
        gw.upstream.requests().len(),
        2,
        "upstream saw only the valid tokens"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_route_accepts_only_its_issuers() {
    let (a, b) = (Issuer::new(), Issuer::new());
    let gw = two_issuers(&a, &b).await;
    let k = key();
    let theirs = token_of(&b, OTHER, &k, "read");
    assert_eq!(gw.get_path(&k, &theirs, "/partners/x").await.status(), 200);
    let ours = token_of(&a, "https://as.example.com", &k, "read");
    let resp = gw.get_path(&k, &ours, "/partners/x").await;
    assert_eq!(resp.status(), 401, "body: {:?}", resp.body());
    assert_eq!(www_error(&resp).as_deref(), Some("invalid_token"));
    assert_eq!(
        gw.upstream.requests().len(),
        1,
        "the refused one reached nothing"
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("reason=\"issuer_not_allowed\""),
        "{metrics}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn the_metadata_document_lists_every_issuer() {
    let (a, b) = (Issuer::new(), Issuer::new());
    let gw = two_issuers(&a, &b).await;
    let k = key();
    // get_path sends a proof and token too; the metadata document ignores them.
    let resp = gw
        .get_path(&k, "x", "/.well-known/oauth-protected-resource")
        .await;
    assert_eq!(resp.status(), 200, "body: {:?}", resp.body());
    let doc: Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!(
        doc["authorization_servers"],
        json!(["https://as.example.com", OTHER])
    );
    gw.shutdown().await;
}
