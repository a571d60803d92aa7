//! CORS preflights answered by the gateway (`cors.preflight: answer`): the answer's headers
//! (the path's methods, `Authorization` and `DPoP`, max-age), origins not allowed, the
//! upstream never seeing a preflight, `Access-Control-Allow-Origin` put on forwarded responses
//! of a CORS-unaware upstream (and left alone on one that sets it); and a real browser page
//! (`tests/browser/cors.mjs`: Debian's chromium driven by playwright-core) that makes its DPoP
//! proof with WebCrypto and calls the gateway cross-origin.
//!
//! The browser test needs `npm ci --prefix tests/browser` and `/usr/bin/chromium` (or
//! `CHROMIUM_PATH`): without them it is skipped, or fails when `CI` is set.

use std::convert::Infallible;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use dpop_gateway::jose::sign::PrivateJwk;
use dpop_gateway::jose::Algorithm;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::support::gateway::Issuer;
use crate::support::upstream::Upstream;
use crate::support::{proof, Options, TestGateway};

const SPA: &str = "https://spa.example";

/// Reads need `api:read` (GET, HEAD), writes `api:write` (POST, PUT); `/` takes every method.
const ROUTES: &str = r#"
  - { path_prefix: "/healthz", auth: none }
  - path_prefix: "/api"
    methods: [GET, HEAD]
    auth: dpop
    require: { scopes: ["api:read"] }
  - path_prefix: "/api"
    methods: [POST, PUT]
    auth: dpop
    require: { scopes: ["api:write"] }
  - { path_prefix: "/", auth: dpop }"#;

/// `cors:` with `origins`, answering preflights.
fn answering(origins: &str) -> String {
    format!(
        "cors:\n  allow_origins: {origins}\n  preflight: answer\n  allow_headers: [Content-Type, X-Request-Id]\n  max_age: 120s\n"
    )
}

async fn gateway(extra: String) -> TestGateway {
    TestGateway::start_with(Options {
        routes: ROUTES.into(),
        extra,
        ..Options::default()
    })
    .await
}

/// A preflight for `method` on `path` from `origin`.
async fn preflight(gw: &TestGateway, origin: &str, method: &str, path: &str) -> Response<Bytes> {
    gw.call("OPTIONS", path)
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", "authorization,dpop")
        .send()
        .await
}

fn header<'r>(resp: &'r Response<Bytes>, name: &str) -> Option<&'r str> {
    resp.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered_by_the_gateway_with_the_paths_methods() {
    let gw = gateway(answering(&format!("[\"{SPA}\"]"))).await;
    // DELETE is taken by no /api route: the answer leaves it out (the browser then refuses
    // the request); never a 405, never forwarded.
    let resp = preflight(&gw, SPA, "DELETE", "/api/items").await;
    assert_eq!(resp.status(), 204, "body: {:?}", resp.body());
    assert_eq!(header(&resp, "access-control-allow-origin"), Some(SPA));
    assert_eq!(header(&resp, "vary"), Some("origin"));
    assert_eq!(
        header(&resp, "access-control-allow-methods"),
        Some("GET, HEAD, POST, PUT")
    );
    assert_eq!(
        header(&resp, "access-control-allow-headers"),
        Some("authorization, dpop, content-type, x-request-id")
    );
    assert_eq!(header(&resp, "access-control-max-age"), Some("120"));
    assert!(resp
        .headers()
        .get("access-control-allow-credentials")
        .is_none());
    assert!(resp.body().is_empty());
    // A route that lists no methods: the methods browsers send.
    let resp = preflight(&gw, SPA, "PATCH", "/other").await;
    assert_eq!(resp.status(), 204);
    assert_eq!(
        header(&resp, "access-control-allow-methods"),
        Some("GET, HEAD, POST, PUT, PATCH, DELETE")
    );
    // An auth: none route's preflights are answered too.
    assert_eq!(preflight(&gw, SPA, "GET", "/healthz").await.status(), 204);
    assert!(
        gw.upstream.requests().is_empty(),
        "the upstream never sees a preflight"
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("dpop_gateway_requests_total")
                && l.contains("method=\"OPTIONS\"")
                && l.contains("outcome=\"local\"")
                && l.contains("route=\"/api\"")),
        "{metrics}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_preflight_from_another_origin_gets_no_cors_headers_and_reaches_nothing() {
    let gw = gateway(answering(&format!("[\"{SPA}\"]"))).await;
    let resp = preflight(&gw, "https://evil.example", "GET", "/api/items").await;
    assert_eq!(resp.status(), 204);
    for name in [
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-max-age",
    ] {
        assert!(resp.headers().get(name).is_none(), "{name}: {resp:?}");
    }
    assert_eq!(header(&resp, "vary"), Some("origin"));
    // The pair: the allowed origin gets its answer.
    let resp = preflight(&gw, SPA, "GET", "/api/items").await;
    assert_eq!(header(&resp, "access-control-allow-origin"), Some(SPA));
    assert!(gw.upstream.requests().is_empty());
    gw.shutdown().await;
}

#[tokio::test]
async fn a_wildcard_origin_is_answered_with_a_wildcard_and_no_vary() {
    let gw = gateway(answering("[\"*\"]")).await;
    let resp = preflight(&gw, "https://any.example", "POST", "/api/items").await;
    assert_eq!(resp.status(), 204);
    assert_eq!(header(&resp, "access-control-allow-origin"), Some("*"));
    assert!(resp.headers().get("vary").is_none());
    assert!(gw.upstream.requests().is_empty());
    gw.shutdown().await;
}

#[tokio::test]
async fn a_preflight_with_credentials_or_a_body_is_checked_like_any_request_when_answering() {
    let gw = gateway(answering(&format!("[\"{SPA}\"]"))).await;
    // On /api, whose routes take no OPTIONS, it is 405; on `/`, the checks refuse it.
    let resp = gw
        .call("OPTIONS", "/api/items")
        .header("origin", SPA)
        .header("access-control-request-method", "GET")
        .header("authorization", "DPoP x")
        .send()
        .await;
    assert_eq!(resp.status(), 405, "not a preflight: {:?}", resp.body());
    let resp = gw
        .call("OPTIONS", "/other")
        .header("origin", SPA)
        .header("access-control-request-method", "GET")
        .header("authorization", "DPoP x")
        .send()
        .await;
    assert_eq!(resp.status(), 401, "not a preflight: {:?}", resp.body());
    let resp = gw
        .call("OPTIONS", "/other")
        .header("origin", SPA)
        .header("access-control-request-method", "GET")
        .body("a body")
        .send()
        .await;
    assert_eq!(resp.status(), 401, "not a preflight: {:?}", resp.body());
    assert!(gw.upstream.requests().is_empty());
    gw.shutdown().await;
}

fn key() -> PrivateJwk {
    PrivateJwk::generate(Algorithm::ES256).unwrap()
}

/// `GET path` from `origin` with a token of `scope` bound to a fresh key, and its proof.
async fn get_from(gw: &TestGateway, origin: &str, path: &str, scope: &str) -> Response<Bytes> {
    let k = key();
    let mut c = gw.issuer.claims(Some(k.thumbprint().to_string()));
    c["scope"] = json!(scope);
    let token = gw.issuer.sign(&c);
    let p = proof(&k, "GET", &gw.url(path), Some(&token));
    gw.call("GET", path)
        .header("origin", origin)
        .dpop_token(&token)
        .proof(&p)
        .send()
        .await
}

#[tokio::test]
async fn forwarded_responses_to_an_allowed_origin_get_allow_origin_when_the_upstream_sent_none() {
    let gw = gateway(answering(&format!("[\"{SPA}\"]"))).await;
    let resp = get_from(&gw, SPA, "/api/items", "api:read").await;
    assert_eq!(resp.status(), 200, "body: {:?}", resp.body());
    assert_eq!(header(&resp, "access-control-allow-origin"), Some(SPA));
    assert_eq!(header(&resp, "vary"), Some("origin"));
    assert_eq!(
        header(&resp, "access-control-expose-headers"),
        Some("WWW-Authenticate, DPoP-Nonce")
    );
    // Another origin: forwarded (the checks passed), but nothing lets its page read it.
    let resp = get_from(&gw, "https://evil.example", "/api/items", "api:read").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    // An upstream that sets its own: kept as it is.
    let resp = get_from(&gw, SPA, "/with-cors", "x").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "access-control-allow-origin"),
        Some("https://upstream.example")
    );
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|r| r.headers.get("dpop").is_none()));
    gw.shutdown().await;
}

#[tokio::test]
async fn with_forward_preflights_reach_the_upstream_and_its_responses_are_not_changed() {
    let gw = gateway(format!("cors:\n  allow_origins: [\"{SPA}\"]\n")).await;
    let resp = preflight(&gw, SPA, "DELETE", "/api/items").await;
    assert_eq!(resp.status(), 200, "the upstream's answer");
    assert!(resp.headers().get("access-control-allow-methods").is_none());
    let resp = get_from(&gw, SPA, "/api/items", "api:read").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, "OPTIONS");
    gw.shutdown().await;
}

// === the browser ===

/// `tests/browser` with its packages, and chromium; `None` (skip) without them, a failure
/// under CI.
fn browser_setup() -> Option<(PathBuf, PathBuf)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var_os("CHROMIUM_PATH")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let missing = if !dir.join("node_modules/playwright-core").is_dir() {
        Some("tests/browser/node_modules is missing: run `npm ci --prefix tests/browser`")
    } else if !chromium.exists() {
        Some("chromium is missing: `apt-get install chromium` (or set CHROMIUM_PATH)")
    } else {
        None
    };
    match missing {
        None => Some((dir, chromium)),
        Some(why) => {
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("skipped: the CORS browser test: {why}");
            None
        }
    }
}

/// The page's origin: `GET /` is an empty page, `POST /token` (body: the page key's JWK
/// thumbprint) mints an access token bound to it with scope `api:read`. Same-origin for the
/// page, so it needs no CORS itself. Returns the origin and the thumbprints it was sent.
async fn page_server(
    listener: TcpListener,
    issuer: Arc<Issuer>,
) -> (tokio::task::JoinHandle<()>, Arc<Mutex<Vec<String>>>) {
    let jkts = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&jkts);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let issuer = Arc::clone(&issuer);
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let issuer = Arc::clone(&issuer);
                    let seen = Arc::clone(&seen);
                    async move {
                        let path = req.uri().path().to_owned();
                        let body = req.into_body().collect().await.map(|b| b.to_bytes());
                        let resp = match (path.as_str(), body) {
                            ("/token", Ok(jkt)) => {
                                let jkt = String::from_utf8_lossy(&jkt).into_owned();
                                seen.lock().unwrap().push(jkt.clone());
                                let mut c = issuer.claims(Some(jkt));
                                c["scope"] = json!("api:read");
                                Response::new(Full::new(Bytes::from(issuer.sign(&c))))
                            }
                            _ => Response::builder()
                                .header("content-type", "text/html")
                                .body(Full::new(Bytes::from_static(
                                    b"<!doctype html><title>spa</title><p>spa</p>",
                                )))
                                .unwrap(),
                        };
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (task, jkts)
}

#[tokio::test]
async fn a_browser_page_calls_the_gateway_cross_origin_with_a_webcrypto_proof() {
    let Some((dir, chromium)) = browser_setup() else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_origin = format!("http://{}", listener.local_addr().unwrap());
    let issuer = Arc::new(Issuer::new());
    let gw = TestGateway::start_full(
        Options {
            routes: ROUTES.into(),
            extra: answering(&format!("[\"{page_origin}\"]")),
            ..Options::default()
        },
        Upstream::start().await,
        Arc::clone(&issuer),
    )
    .await;
    let (server, jkts) = page_server(listener, issuer).await;
    let api = gw.url("/api/items");
    let run = tokio::task::spawn_blocking({
        let (page_origin, api) = (page_origin.clone(), api.clone());
        move || {
            Command::new("node")
                .arg(dir.join("cors.mjs"))
                .args([page_origin.as_str(), api.as_str()])
                .env("CHROMIUM_PATH", chromium)
                .output()
                .expect("spawn node tests/browser/cors.mjs")
        }
    })
    .await
    .unwrap();
    server.abort();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "browser test failed:\n{stdout}\n{stderr}"
    );
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
    // The page's own proof and token: the gateway forwarded the call and the page read it.
    assert_eq!(result["first"]["status"], 200, "{result}");
    let body: Value = serde_json::from_str(result["first"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["upstream"], "ok");
    assert_eq!(body["path"], "/api/items");
    // A proof for another method: the 401, its challenge readable by the page's JS.
    assert_eq!(result["second"]["status"], 401, "{result}");
    let www = result["second"]["www"].as_str().unwrap();
    assert!(
        www.starts_with("DPoP error=\"invalid_dpop_proof\""),
        "{www}"
    );
    let err: Value = serde_json::from_str(result["second"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(err["error"], "invalid_dpop_proof");
    // The thumbprint the page computed is the one its proof's key has (the gateway checked
    // the token's cnf.jkt against it).
    let jkts = jkts.lock().unwrap().clone();
    assert_eq!(jkts.len(), 1);
    assert_eq!(result["jkt"], jkts[0]);
    // The upstream saw the one real request: no preflight, no proof, the token as Bearer.
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].uri, "/api/items");
    assert!(seen[0].headers.get("dpop").is_none());
    assert!(seen[0].headers["authorization"]
        .to_str()
        .unwrap()
        .starts_with("Bearer "));
    assert_eq!(seen[0].headers["x-dpop-jkt"], jkts[0].as_str());
    // The browser's preflight was answered by the gateway.
    let metrics = gw.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("dpop_gateway_requests_total")
                && l.contains("method=\"OPTIONS\"")
                && l.contains("outcome=\"local\"")),
        "no preflight answered: {metrics}"
    );
    gw.shutdown().await;
}
