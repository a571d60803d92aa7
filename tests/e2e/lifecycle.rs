//! The process as an orchestrator drives it: signals (SIGHUP, SIGTERM), readiness and the admin
//! listener through a drain, over the real binary and real sockets.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use dpop_gateway::jose::sign::PrivateJwk;
use dpop_gateway::jose::Algorithm;
use http::Request;
use http_body_util::Full;

use crate::support::client::{self, Mode};
use crate::support::gateway::Issuer;
use crate::support::issuer_server::{http_opt_in, RemoteGateway};
use crate::support::process::GatewayProcess;
use crate::support::upstream::Upstream;
use crate::support::{temp_dir, Options, TestGateway};

/// `GET /open/slow?ms=N` (an `auth: none` route; the upstream answers after N ms) in a task:
/// its status.
fn slow_request(addr: SocketAddr, ms: u64) -> tokio::task::JoinHandle<u16> {
    tokio::spawn(async move {
        let req = Request::get(format!("/open/slow?ms={ms}"))
            .header("host", "a")
            .body(Full::new(Bytes::new()))
            .unwrap();
        client::send(addr, Mode::H1, req).await.status().as_u16()
    })
}

#[tokio::test]
async fn sighup_reloads_and_the_request_in_flight_completes() {
    let upstream = Upstream::start().await;
    let issuer = Issuer::new();
    let log = temp_dir("sighup").join("stderr.log");
    let mut gw = GatewayProcess::spawn_with(
        &Options::default(),
        &upstream,
        &issuer,
        &[("RUST_LOG", "info")],
        Stdio::from(std::fs::File::create(&log).unwrap()),
        None,
    )
    .await;
    let slow = slow_request(gw.addr, 1500);
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.signal("HUP");
    tokio::time::sleep(Duration::from_millis(100)).await;
    gw.signal("HUP");
    assert_eq!(slow.await.unwrap(), 200, "the in-flight request completes");
    assert!(gw.is_running(), "SIGHUP must not end the process");
    assert_eq!(gw.admin_get("/readyz").await, Some(200), "still ready");
    let resp = slow_request(gw.addr, 0).await.unwrap();
    assert_eq!(resp, 200, "still serving");

    gw.terminate();
    let code = tokio::task::spawn_blocking(move || gw.wait_exit(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    let reloaded = text
        .lines()
        .filter(|l| l.contains("configuration reloaded") && l.contains("SIGHUP"))
        .collect::<Vec<_>>();
    assert_eq!(
        reloaded.len(),
        2,
        "one reload, and its line, per SIGHUP:\n{text}"
    );
    assert!(reloaded.iter().all(|l| l.contains("INFO")), "{text}");
}

/// `redis://` on a loopback port nothing listens on.
fn closed_redis_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("redis://127.0.0.1:{port}")
}

fn redis_options(url: &str, on_error: &str) -> Options {
    Options {
        replay_cache: Some(format!(
            "replay_cache:\n  backend: redis\n  redis_url: \"{url}\"\n  timeout: 100ms\n  on_error: {on_error}"
        )),
        ..Options::default()
    }
}

#[tokio::test]
async fn an_unreachable_replay_store_makes_readyz_fail_only_with_on_error_reject() {
    let url = closed_redis_url();
    let allow = TestGateway::start_with(redis_options(&url, "allow")).await;
    let reject = TestGateway::start_with(redis_options(&url, "reject")).await;

    // reject: not ready, saying why, once the store was probed.
    let mut last = (0, String::new());
    for _ in 0..50 {
        last = reject.admin_text("/readyz").await;
        if last.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last.0, 503, "{last:?}");
    assert!(last.1.contains("replay store unreachable"), "{last:?}");
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let resp = reject.authorized(&key, "GET", "/api/x").send().await;
    assert_eq!(resp.status(), 503, "fail closed");
    assert!(reject.upstream.requests().is_empty());

    // allow: ready all along (several probes of the dead store), and forwarding.
    for _ in 0..25 {
        let (status, body) = allow.admin_text("/readyz").await;
        assert_eq!((status, body.as_str()), (200, "ready\n"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resp = allow.authorized(&key, "GET", "/api/x").send().await;
    assert_eq!(resp.status(), 200, "on_error: allow forwards");
    allow.shutdown().await;
    reject.shutdown().await;
}

#[tokio::test]
async fn readyz_says_keys_never_loaded_while_the_authorization_server_is_down() {
    let dead = closed_redis_url().replace("redis://", "http://");
    let gw = RemoteGateway::start(&format!(
        "  issuer: \"{dead}\"\n  audience: \"https://api.example.com\"{}",
        http_opt_in(&dead)
    ))
    .await;
    let req = Request::get("/readyz")
        .header("host", "admin")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client::send(gw.admin_addr, Mode::H1, req).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.body().as_ref(), b"not ready: keys never loaded\n");
    gw.shutdown().await;
}

#[tokio::test]
async fn the_admin_listener_answers_through_the_drain_until_exit() {
    let upstream = Upstream::start().await;
    let issuer = Issuer::new();
    let mut gw = GatewayProcess::spawn(&Options::default(), &upstream, &issuer).await;
    let slow = slow_request(gw.addr, 2500);
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(gw.is_running(), "still draining");

    let ready = gw.admin_text("/readyz").await;
    assert_eq!(
        ready,
        Some((503, "not ready: draining\n".to_owned())),
        "/readyz during the drain"
    );
    let (status, metrics) = gw.admin_text("/metrics").await.expect("/metrics answers");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("dpop_gateway_in_flight_requests 1"),
        "the drain is visible: {metrics}"
    );
    assert_eq!(gw.admin_get("/healthz").await, Some(200));

    assert_eq!(slow.await.unwrap(), 200, "the in-flight request completes");
    let code = tokio::task::spawn_blocking(move || gw.wait_exit(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
}

fn readiness(check: &str) -> Options {
    Options {
        upstream: format!("readiness: \"{check}\""),
        ..Options::default()
    }
}

/// Polls `/readyz` until it answers `want` (status and body), at most 8 s: the last answer.
async fn readyz_becomes(gw: &TestGateway, want: (u16, &str)) -> (u16, String) {
    let mut last = (0, String::new());
    for _ in 0..80 {
        last = gw.admin_text("/readyz").await;
        if (last.0, last.1.as_str()) == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

#[tokio::test]
async fn upstream_readiness_tcp_follows_the_upstream_listener() {
    // A listener that is never accepted from: the kernel completes TCP handshakes anyway.
    let app = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gw = TestGateway::start_with(Options {
        upstream_url: Some(format!("http://{}", app.local_addr().unwrap())),
        ..readiness("tcp")
    })
    .await;
    let ready = readyz_becomes(&gw, (200, "ready\n")).await;
    assert_eq!(ready, (200, "ready\n".to_owned()));
    // The app goes away: noticed by the next periodic check, and /readyz says why.
    drop(app);
    let not = readyz_becomes(&gw, (503, "not ready: upstream not ready\n")).await;
    assert_eq!(not, (503, "not ready: upstream not ready\n".to_owned()));
    // Liveness does not follow the upstream.
    assert_eq!(gw.admin_text("/healthz").await.0, 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn upstream_readiness_http_needs_a_2xx_or_3xx_and_is_checked_periodically() {
    let ok = TestGateway::start_with(readiness("http:/status/204")).await;
    let ready = readyz_becomes(&ok, (200, "ready\n")).await;
    assert_eq!(ready, (200, "ready\n".to_owned()));
    for _ in 0..30 {
        assert_eq!(ok.admin_text("/readyz").await.0, 200);
    }
    let checks = |gw: &TestGateway| {
        gw.upstream
            .requests()
            .iter()
            .filter(|r| r.uri.starts_with("/status/"))
            .count()
    };
    // 30 probes, at most a check or two (every 2 s), never one per probe.
    assert!(checks(&ok) <= 2, "{} checks", checks(&ok));
    let seen = &ok.upstream.requests()[0];
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.uri, "/status/204", "the path as configured, no prefix");

    let failing = TestGateway::start_with(readiness("http:/status/503")).await;
    let not = readyz_becomes(&failing, (503, "not ready: upstream not ready\n")).await;
    assert_eq!(not, (503, "not ready: upstream not ready\n".to_owned()));
    ok.shutdown().await;
    failing.shutdown().await;
}

/// A request to the process with a fresh proof by `key` for `method` `path` (query ignored
/// by `htu`), its token, a `User-Agent` and an `X-Request-Id`; `edit` may change the proof.
async fn logged_request(
    gw: &GatewayProcess,
    issuer: &Issuer,
    key: &PrivateJwk,
    (method, path, body): (&str, &str, &'static str),
    request_id: &str,
    edit: impl FnOnce(String) -> String,
) -> http::Response<Bytes> {
    let token = issuer.token_for(key);
    let htu = format!("http://{}{}", gw.addr, path.split('?').next().unwrap());
    let p = edit(crate::support::proof(key, method, &htu, Some(&token)));
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", gw.addr.to_string())
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", p)
        .header("user-agent", "e2e-agent/1.0")
        .header("x-request-id", request_id)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    client::send(gw.addr, Mode::H1, req).await
}

#[tokio::test]
async fn the_json_access_log_is_flat_and_names_a_key_only_once_its_signature_verified() {
    let upstream = Upstream::start().await;
    let issuer = Issuer::new();
    let log = temp_dir("access-json").join("stderr.log");
    let env = [("RUST_LOG", "info"), ("DPOP_GATEWAY_LOG_FORMAT", "json")];
    let mut gw = GatewayProcess::spawn_with(
        &Options::default(),
        &upstream,
        &issuer,
        &env,
        Stdio::from(std::fs::File::create(&log).unwrap()),
        None,
    )
    .await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let jkt = key.thumbprint().to_string();

    let ok = logged_request(
        &gw,
        &issuer,
        &key,
        ("POST", "/upload?secret=q", "hello"),
        "rid-ok",
        |p| p,
    )
    .await;
    assert_eq!(ok.status(), 200);
    // Signed by the key, refused on a claim checked after the signature (htm).
    let signed = logged_request(&gw, &issuer, &key, ("GET", "/x", ""), "rid-htm", |p| {
        let token = issuer.token_for(&key);
        let htu = format!("http://{}/x", gw.addr);
        let _ = p;
        crate::support::proof(&key, "DELETE", &htu, Some(&token))
    })
    .await;
    assert_eq!(signed.status(), 401);
    // Naming the key in its header, signed by another: the signature fails, no key is named.
    let attacker = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let forged = logged_request(&gw, &issuer, &key, ("GET", "/x", ""), "rid-forged", |p| {
        let theirs =
            crate::support::proof(&attacker, "GET", &format!("http://{}/x", gw.addr), None);
        let header = p.split('.').next().unwrap().to_owned();
        let rest = theirs.split_once('.').unwrap().1;
        format!("{header}.{rest}")
    })
    .await;
    assert_eq!(forged.status(), 401);
    assert_eq!(
        upstream.requests().len(),
        1,
        "only the valid request went through"
    );

    gw.terminate();
    assert_eq!(gw.wait_exit(Duration::from_secs(10)), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: std::collections::HashMap<String, serde_json::Value> = text
        .lines()
        .filter(|l| l.contains("dpop_gateway::access"))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"))
        })
        .map(|v| (v["request_id"].as_str().unwrap().to_owned(), v))
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    for v in lines.values() {
        assert!(v.get("fields").is_none(), "flat: {v}");
        for key in [
            "ts",
            "level",
            "request_id",
            "method",
            "path",
            "status",
            "outcome",
            "reason",
            "route",
            "jkt",
            "user_agent",
            "bytes_in",
            "bytes_out",
            "duration_ms",
            "upstream",
            "upstream_ms",
        ] {
            assert!(v.get(key).is_some(), "{key} missing: {v}");
        }
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["user_agent"], "e2e-agent/1.0");
        assert!(v["duration_ms"].as_f64().unwrap() > 0.0, "{v}");
    }
    let ok = &lines["rid-ok"];
    assert_eq!(ok["method"], "POST");
    assert_eq!(ok["path"], "/upload", "no query: {ok}");
    assert!(!text.contains("secret=q"), "the query is not logged");
    assert_eq!(
        (&ok["status"], &ok["outcome"]),
        (&200.into(), &"forwarded".into())
    );
    assert_eq!(ok["route"], "/");
    assert_eq!(ok["jkt"], jkt.as_str());
    assert_eq!(ok["bytes_in"], 5);
    assert!(ok["bytes_out"].as_u64().unwrap() > 0, "{ok}");
    assert_eq!(ok["upstream"], "default", "the upstream it went to: {ok}");
    let upstream_ms = ok["upstream_ms"].as_f64().expect("upstream_ms");
    assert!(upstream_ms <= ok["duration_ms"].as_f64().unwrap(), "{ok}");

    let signed = &lines["rid-htm"];
    assert_eq!(signed["outcome"], "invalid_dpop_proof");
    assert_eq!(signed["reason"], "htm");
    assert_eq!(signed["jkt"], jkt.as_str(), "a verified signer is named");
    assert!(signed["upstream_ms"].is_null());
    assert!(signed["upstream"].is_null());
    assert_eq!(signed["bytes_in"], 0);
    assert!(
        signed["bytes_out"].as_u64().unwrap() > 0,
        "the JSON refusal body"
    );

    let forged = &lines["rid-forged"];
    assert_eq!(forged["reason"], "signature");
    assert!(
        forged["jkt"].is_null(),
        "an unverified key is never named: {forged}"
    );
}
