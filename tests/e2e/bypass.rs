//! Ways around the checks that a reviewer found, each now refused or neutralised, with the
//! upstream receiving nothing it should not: non-canonical paths, case variants, preflights
//! that carry credentials, unchecked tokens on open routes, a partial HTTP/2 preface, nonces on
//! unmatched paths, and a Host that differs from the authority `htu` was checked against.

use std::time::Duration;

use dpop_gateway::jose::sign::PrivateJwk;
use dpop_gateway::jose::Algorithm;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{client, www_error, Options, TestGateway};

/// `paths.encoded_slashes`, both settings: no path bypass may depend on it.
const ENCODED_SLASHES: [&str; 2] = ["reject", "keep"];

fn paths(setting: &str, opts: Options) -> Options {
    Options {
        extra: format!("paths:\n  encoded_slashes: {setting}"),
        ..opts
    }
}

#[tokio::test]
async fn non_canonical_paths_are_refused_before_routing() {
    for setting in ENCODED_SLASHES {
        let gw = TestGateway::start_with(paths(setting, Options::default())).await;
        let mut refused = vec![
            "/healthz/../resource",
            "/open/%2e%2e/admin",
            "/open/%2E%2E/admin",
            "/healthz/..;/admin",
            "//resource",
            "/open/./x",
            "/open/x%2F..%2F..%2Fresource",
            "/healthz%5C..%5Cresource",
        ];
        if setting == "reject" {
            refused.extend(["/open%2fx", "/open/a%5Cb"]);
        }
        for path in refused {
            let raw = format!("GET {path} HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n");
            let out = client::raw(gw.addr, raw.as_bytes()).await;
            let text = String::from_utf8_lossy(&out);
            assert!(
                text.starts_with("HTTP/1.1 400"),
                "{setting}: {path}: {text}"
            );
            assert!(
                text.contains("invalid_request"),
                "{setting}: {path}: {text}"
            );
        }
        assert!(
            gw.upstream.requests().is_empty(),
            "{setting}: {:?}",
            gw.upstream.requests()
        );
        if setting == "keep" {
            // The encoded slash is part of its segment: `/open%2Fx` is not under `/open`, and
            // the protected `/` it falls to is stricter than `/open` anyway.
            assert_eq!(gw.call("GET", "/open%2fx").send().await.status(), 401);
            assert!(gw.upstream.requests().is_empty());
        }
        // Canonical paths, percent-encoded reserved characters included, pass; so do
        // equivalent spellings of them, normalised.
        let resp = gw.call("GET", "/open/a%20b").send().await;
        assert_eq!(resp.status(), 200);
        let resp = gw.call("GET", "/%6Fpen/x").send().await;
        assert_eq!(resp.status(), 200);
        let seen = gw.upstream.requests();
        assert_eq!(seen[1].uri, "/open/x", "{setting}");
    }
}

#[tokio::test]
async fn a_case_variant_of_a_protected_prefix_is_protected() {
    for setting in ENCODED_SLASHES {
        let gw = TestGateway::start_with(paths(
            setting,
            Options {
                routes:
                    "\n  - { path_prefix: \"/api\", auth: dpop }\n  - { path_prefix: \"/\", auth: none }"
                        .into(),
                ..Options::default()
            },
        ))
        .await;
        for path in ["/API/users", "/Api", "/aPi/x", "/%41pi/x", "/%61PI"] {
            let resp = gw.call("GET", path).send().await;
            assert_eq!(resp.status(), 401, "{setting}: {path}");
        }
        for path in ["/api%2Fusers", "/API%5cusers"] {
            let resp = gw.call("GET", path).send().await;
            let want = if setting == "keep" { 401 } else { 400 };
            assert_eq!(resp.status(), want, "{setting}: {path}");
        }
        assert!(gw.upstream.requests().is_empty(), "{setting}");
        assert_eq!(gw.call("GET", "/other").send().await.status(), 200);
    }
}

#[tokio::test]
async fn a_preflight_with_credentials_or_a_body_is_checked_like_any_request() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    let preflight = |extra: (&'static str, &'static str)| {
        gw.call("OPTIONS", "/admin/users/7")
            .header("origin", "https://app.example")
            .header("access-control-request-method", "DELETE")
            .header(extra.0, extra.1)
    };
    let resp = preflight(("x-http-method-override", "DELETE"))
        .header("authorization", &format!("Bearer {token}"))
        .send()
        .await;
    assert_eq!(resp.status(), 401);
    let resp = preflight(("content-type", "text/plain"))
        .body("payload")
        .send()
        .await;
    assert_eq!(resp.status(), 401);
    assert!(gw.upstream.requests().is_empty());
    // A plain preflight still passes.
    let resp = preflight(("access-control-request-headers", "authorization"))
        .send()
        .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn unchecked_tokens_do_not_reach_the_upstream_on_open_routes() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    let resp = gw.call("GET", "/open/x").bearer(&token).send().await;
    assert_eq!(resp.status(), 200);
    let resp = gw
        .call("GET", "/open/y")
        .header("authorization", "Basic dXNlcjpwdw==")
        .send()
        .await;
    assert_eq!(resp.status(), 200);
    let seen = gw.upstream.requests();
    assert!(
        seen[0].headers.get("authorization").is_none(),
        "a stolen token is not passed on"
    );
    assert_eq!(seen[1].headers["authorization"], "Basic dXNlcjpwdw==");
}

#[tokio::test]
async fn a_partial_http2_preface_does_not_escape_the_head_deadline() {
    let gw = TestGateway::start_with(Options {
        extra: "limits:\n  header_read_timeout: 500ms".into(),
        ..Options::default()
    })
    .await;
    for start in [&b"P"[..], b"PRI * HTTP/2.0\r\n\r\n"] {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(start).await.unwrap();
        let mut out = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        assert!(closed.is_ok(), "closed after the head deadline: {start:?}");
    }
}

#[tokio::test]
async fn paths_no_route_matches_still_need_a_nonce() {
    let gw = TestGateway::start_with(Options {
        routes: "\n  - { path_prefix: \"/api\", auth: dpop }".into(),
        dpop: "nonce:\n  enabled: true\n  secrets: [\"0123456789abcdef0123456789abcdef-nonce\"]"
            .into(),
        ..Options::default()
    })
    .await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let resp = gw.authorized(&key, "GET", "/other").send().await;
    assert_eq!(resp.status(), 401);
    assert_eq!(www_error(&resp).as_deref(), Some("use_dpop_nonce"));
    assert!(gw.upstream.requests().is_empty());
}

#[tokio::test]
async fn the_upstream_gets_the_host_htu_was_checked_against() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    let url = gw.url("/resource");
    let proof = crate::support::proof(&key, "GET", &url, Some(&token));
    let raw = format!(
        "GET {url} HTTP/1.1\r\nhost: tenant-b.internal\r\nauthorization: DPoP {token}\r\ndpop: {proof}\r\nconnection: close\r\n\r\n"
    );
    let out = client::raw(gw.addr, raw.as_bytes()).await;
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
    let seen = gw.upstream.requests();
    assert_eq!(seen[0].headers["host"], gw.addr.to_string().as_str());
    assert_eq!(
        seen[0].headers["x-forwarded-host"],
        gw.addr.to_string().as_str()
    );
}

/// Every header the upstream got whose name reads as `name` with `_` as `-` (CGI's view).
fn cgi_aliases(seen: &crate::support::upstream::Seen, name: &str) -> Vec<String> {
    seen.headers
        .iter()
        .filter(|(n, _)| n.as_str().replace('_', "-") == name)
        .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?")))
        .collect()
}

#[tokio::test]
async fn underscore_spellings_of_identity_headers_never_reach_the_upstream() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    for mode in [client::Mode::H1, client::Mode::H2c] {
        // auth: none: nobody may name a subject.
        let raw = b"GET /open/x HTTP/1.1\r\nhost: a\r\nX_Auth_Subject: admin\r\nx_forwarded_for: 10.0.0.1\r\nconnection: close\r\n\r\n";
        let out = client::raw(gw.addr, raw).await;
        assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
        let resp = gw
            .call("GET", "/open/y")
            .header("X_Auth_Subject", "admin")
            .header("x_dpop_jkt", "forged")
            .mode(mode.clone())
            .send()
            .await;
        assert_eq!(resp.status(), 200);
        // A DPoP route: the token's subject only, never `admin,alice`.
        let resp = gw
            .authorized(&key, "GET", "/resource")
            .header("X_Auth_Subject", "admin")
            .header("x-auth_scope", "admin")
            .mode(mode)
            .send()
            .await;
        assert_eq!(resp.status(), 200);
    }
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 6);
    for (i, r) in seen.iter().enumerate() {
        assert!(cgi_aliases(r, "x-dpop-jkt")
            .iter()
            .all(|h| !h.contains("forged")));
        assert!(cgi_aliases(r, "x-auth-scope")
            .iter()
            .all(|h| !h.contains("admin")));
        assert_eq!(
            cgi_aliases(r, "x-forwarded-for"),
            ["x-forwarded-for: 127.0.0.1"]
        );
        let subjects = cgi_aliases(r, "x-auth-subject");
        if i % 3 == 2 {
            assert_eq!(subjects, ["x-auth-subject: alice"], "request {i}");
        } else {
            assert!(subjects.is_empty(), "request {i}: {subjects:?}");
        }
    }
}
