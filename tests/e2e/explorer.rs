//! The decision explorer on the admin listener (`explorer.enabled`): what it records of real
//! traffic (every check with expected vs actual, decoded proof and token, never a token string
//! or a signature), its filters, its bound, its headers; and the page in a real browser
//! (`tests/browser/`: Debian's chromium driven by playwright-core), which saves a screenshot to
//! `target/explorer/explorer.png`.
//!
//! The browser test needs `npm ci --prefix tests/browser` and `/usr/bin/chromium` (or
//! `CHROMIUM_PATH`): without them it is skipped, or fails when `CI` is set.

use std::path::PathBuf;
use std::process::Command;

use dpop_gateway::jose::sign::{self, PrivateJwk};
use dpop_gateway::jose::Algorithm;
use serde_json::{json, Map, Value};

use crate::support::client;
use crate::support::{now, proof, www_error, Options, TestGateway};

/// A gateway with the explorer on, keeping `decisions`.
async fn gateway(decisions: usize) -> TestGateway {
    TestGateway::start_with(Options {
        extra: format!("explorer:\n  enabled: true\n  decisions: {decisions}\n"),
        ..Options::default()
    })
    .await
}

/// The explorer's JSON for `query`.
async fn decisions(gw: &TestGateway, query: &str) -> Vec<Value> {
    let resp = client::admin_get(gw.admin_addr, &format!("/explorer/decisions.json{query}")).await;
    assert_eq!(resp.status(), 200);
    let doc: Value = serde_json::from_slice(resp.body()).unwrap();
    doc["decisions"].as_array().unwrap().clone()
}

/// A proof for `GET /resource` signed over `claims` as given (attacker-written ones included).
fn raw_proof(key: &PrivateJwk, claims: &Value) -> String {
    let mut header = Map::new();
    header.insert("typ".into(), json!("dpop+jwt"));
    header.insert("jwk".into(), Value::Object(key.public_jwk()));
    key.sign_jws(header, claims).unwrap()
}

/// What the tests send: forwarded, wrong method, HTML in the claims (wrong htu), stolen
/// token, replay, no credentials. Returns the client key, its token and the replayed proof.
async fn traffic(gw: &TestGateway) -> (PrivateJwk, String, String) {
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    let url = gw.url("/resource");
    let good = proof(&key, "GET", &url, Some(&token));
    let send = |p: String| {
        let token = token.clone();
        async move {
            gw.call("GET", "/resource")
                .dpop_token(&token)
                .proof(&p)
                .send()
                .await
        }
    };
    assert_eq!(send(good.clone()).await.status(), 200);

    let resp = send(proof(&key, "POST", &url, Some(&token))).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(www_error(&resp).as_deref(), Some("invalid_dpop_proof"));

    let xss = raw_proof(
        &key,
        &json!({
            "jti": "<script>window.__xss=2</script>",
            "htm": "GET",
            "htu": "<img src=x onerror=\"window.__xss=1\">",
            "iat": now(),
            "ath": sign::ath(&token),
            "note": "</pre><b>bold?</b>",
        }),
    );
    let resp = send(xss).await;
    assert_eq!(resp.status(), 401);

    let thief = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let stolen = proof(&thief, "GET", &url, Some(&token));
    let resp = send(stolen).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(www_error(&resp).as_deref(), Some("invalid_token"));

    let resp = send(good.clone()).await;
    assert_eq!(resp.status(), 401, "replay");

    let resp = gw.call("GET", "/resource").send().await;
    assert_eq!(resp.status(), 401);
    assert_eq!(gw.upstream.requests().len(), 1, "only the first reached it");
    (key, token, good)
}

fn check<'v>(d: &'v Value, name: &str) -> &'v Value {
    d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {d}"))
}

fn failing(d: &Value) -> Vec<String> {
    d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn records_every_check_with_expected_and_actual_and_no_secret() {
    let gw = gateway(50).await;
    let (key, token, good) = traffic(&gw).await;
    let all = decisions(&gw, "").await;
    assert_eq!(all.len(), 6, "{all:#?}");
    let reasons: Vec<&str> = all.iter().map(|d| d["reason"].as_str().unwrap()).collect();
    assert_eq!(
        reasons,
        ["no_credentials", "replay", "binding", "htu", "htm", "none"],
        "newest first"
    );
    let ids: Vec<u64> = all.iter().map(|d| d["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]));

    let forwarded = &all[5];
    assert_eq!(forwarded["outcome"], "forwarded");
    assert_eq!(forwarded["status"], 200);
    assert_eq!(forwarded["jkt"], key.thumbprint().to_string());
    assert_eq!(forwarded["jkt_verified"], true);
    assert!(forwarded["upstream_us"].as_u64().is_some());
    assert!(failing(forwarded).is_empty(), "{forwarded:#}");
    assert_eq!(check(forwarded, "htu")["expected"], gw.url("/resource"));
    assert_eq!(check(forwarded, "htu")["actual"], gw.url("/resource"));
    assert_eq!(check(forwarded, "ath")["expected"], sign::ath(&token));
    assert_eq!(check(forwarded, "ath")["actual"], sign::ath(&token));
    assert_eq!(check(forwarded, "nonce")["status"], "skipped");
    assert_eq!(
        check(forwarded, "binding")["expected"],
        format!("cnf.jkt {}", key.thumbprint())
    );
    assert_eq!(forwarded["token"]["claims"]["sub"], "alice");
    assert_eq!(
        forwarded["token"]["claims"]["cnf"]["jkt"],
        key.thumbprint().to_string()
    );
    assert_eq!(forwarded["proof"]["header"]["typ"], "dpop+jwt");
    assert_eq!(forwarded["proof"]["claims"]["htm"], "GET");

    let htm = &all[4];
    assert_eq!(
        (htm["outcome"].as_str(), htm["status"].as_u64()),
        (Some("invalid_dpop_proof"), Some(401))
    );
    assert_eq!(failing(htm), ["htm"]);
    assert_eq!(check(htm, "htm")["expected"], "GET");
    assert_eq!(check(htm, "htm")["actual"], "POST");
    assert_eq!(check(htm, "signature")["status"], "pass");
    assert_eq!(check(htm, "iat")["status"], "not_reached");
    assert!(htm["description"].as_str().unwrap().contains("POST"));

    let xss = &all[3];
    assert_eq!(failing(xss), ["htu"]);
    assert_eq!(
        xss["proof"]["claims"]["jti"],
        "<script>window.__xss=2</script>"
    );
    assert_eq!(
        check(xss, "htu")["actual"],
        "<img src=x onerror=\"window.__xss=1\">"
    );

    let stolen = &all[2];
    assert_eq!(stolen["outcome"], "invalid_token");
    assert_eq!(failing(stolen), ["binding"]);
    assert_ne!(stolen["jkt"], forwarded["jkt"]);
    assert_eq!(
        check(stolen, "binding")["actual"],
        format!("proof key {}", stolen["jkt"].as_str().unwrap())
    );
    assert_eq!(failing(&all[1]), ["replay"]);
    assert_eq!(failing(&all[0]), ["credentials"]);
    assert_eq!(check(&all[0], "htm")["status"], "not_reached");

    // Never a token string, never a signature.
    let text = serde_json::to_string(&all).unwrap();
    assert!(!text.contains(&token), "the access token leaked");
    for jws in [&token, &good] {
        let sig = jws.rsplit('.').next().unwrap();
        assert!(!text.contains(sig), "a signature leaked");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn filters_by_outcome_reason_key_and_id() {
    let gw = gateway(50).await;
    let (key, _, _) = traffic(&gw).await;
    let reasons = |ds: &[Value]| -> Vec<String> {
        ds.iter()
            .map(|d| d["reason"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        reasons(&decisions(&gw, "?outcome=forwarded").await),
        ["none"]
    );
    assert_eq!(decisions(&gw, "?outcome=refused").await.len(), 5);
    assert_eq!(decisions(&gw, "?outcome=invalid_token").await.len(), 1);
    assert_eq!(reasons(&decisions(&gw, "?reason=htm").await), ["htm"]);
    let jkt = key.thumbprint().to_string();
    let mine = decisions(&gw, &format!("?jkt={jkt}")).await;
    assert_eq!(reasons(&mine), ["replay", "htu", "htm", "none"]);
    let newest = mine[0]["id"].as_u64().unwrap();
    assert!(
        decisions(&gw, &format!("?after={newest}")).await.len() == 1,
        "no_credentials came after"
    );
    assert_eq!(
        reasons(
            &decisions(
                &gw,
                &format!("?outcome=invalid_dpop_proof&jkt={jkt}&reason=htu")
            )
            .await
        ),
        ["htu"]
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn keeps_only_the_last_decisions_and_serves_a_locked_down_page() {
    let gw = gateway(3).await;
    traffic(&gw).await;
    let kept = decisions(&gw, "").await;
    assert_eq!(kept.len(), 3);
    assert_eq!(kept[0]["reason"], "no_credentials");
    for path in [
        "/explorer",
        "/explorer/app.js",
        "/explorer/app.css",
        "/explorer/decisions.json",
    ] {
        let resp = client::admin_get(gw.admin_addr, path).await;
        assert_eq!(resp.status(), 200, "{path}");
        let csp = resp.headers()["content-security-policy"].to_str().unwrap();
        assert!(
            csp.starts_with("default-src 'none'; script-src 'self'"),
            "{csp}"
        );
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
        assert_eq!(resp.headers()["cache-control"], "no-store");
    }
    let page = client::admin_get(gw.admin_addr, "/explorer").await;
    let html = String::from_utf8_lossy(page.body());
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external asset"
    );
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "no inline script or style"
    );
    let js = client::admin_get(gw.admin_addr, "/explorer/app.js").await;
    let js = String::from_utf8_lossy(js.body());
    assert!(!js.contains("innerHTML") && !js.contains("insertAdjacentHTML"));
    gw.shutdown().await;
}

#[tokio::test]
async fn off_by_default_records_nothing() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    assert_eq!(
        gw.authorized(&key, "GET", "/resource")
            .send()
            .await
            .status(),
        200
    );
    for path in ["/explorer", "/explorer/decisions.json"] {
        let resp = client::admin_get(gw.admin_addr, path).await;
        assert_eq!(resp.status(), 404, "{path}");
    }
    gw.shutdown().await;
}

/// `tests/browser` with its packages, and chromium; `None` (skip) without them, a failure under CI.
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
            eprintln!("skipped: the explorer browser test: {why}");
            None
        }
    }
}

#[tokio::test]
async fn the_page_in_a_real_browser_shows_checks_filters_and_keeps_html_as_text() {
    let Some((dir, chromium)) = browser_setup() else {
        return;
    };
    let gw = gateway(50).await;
    let (key, _, _) = traffic(&gw).await;
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/explorer");
    std::fs::create_dir_all(&out).unwrap();
    let shot = out.join("explorer.png");
    let _ = std::fs::remove_file(&shot);
    let base = format!("http://{}", gw.admin_addr);
    let jkt = key.thumbprint().to_string();
    let run = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(dir.join("explorer.mjs"))
            .args([base.as_str(), shot.to_str().unwrap(), jkt.as_str()])
            .env("CHROMIUM_PATH", chromium)
            .output()
            .expect("spawn node tests/browser/explorer.mjs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "browser test failed:\n{stdout}\n{stderr}"
    );
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
    assert_eq!(result["ok"], true);
    let png = std::fs::read(out.join("explorer.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a screenshot was saved");
    eprintln!(
        "explorer screenshot: {}",
        out.join("explorer.png").display()
    );
    gw.shutdown().await;
}
