//! Reloading the configuration (SIGHUP, or a change of the file) in a real gateway process in
//! front of two real upstreams: what applies, what a request in flight keeps, what a bad file
//! does, what needs a restart, what carries over (the replay store).
//!
//! Two versions of one config tell the answers apart: `/x` goes to upstream A under `/one`
//! (v1) or to upstream B under `/two` (v2), and each version's other upstream has a prefix no
//! answer may show (`/alt1`, `/zero`): an answer made of one version's routes and the other's
//! upstreams would.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use dpop_gateway::jose::sign::PrivateJwk;
use dpop_gateway::jose::Algorithm;
use http::Request;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;

use crate::support::client::{self, Mode};
use crate::support::gateway::{config_yaml, Issuer};
use crate::support::issuer_server::eventually;
use crate::support::process::GatewayProcess;
use crate::support::upstream::Upstream;
use crate::support::{proof, temp_dir, www_error, Options};

/// A gateway process with its two upstreams, its issuer and its log file.
struct Fixture {
    a: Upstream,
    b: Upstream,
    issuer: Issuer,
    gw: GatewayProcess,
    log: PathBuf,
}

/// Config version 1 or 2 (see the module doc).
fn version(a: &Upstream, b: &Upstream, v: u32) -> Options {
    let (default, alt, x_route, open_auth) = match v {
        1 => ("/one", "/alt1", "", "none"),
        _ => ("/zero", "/two", ", upstream: alt", "dpop"),
    };
    Options {
        routes: format!(
            r#"
  - {{ path_prefix: "/x", auth: none{x_route} }}
  - {{ path_prefix: "/open", auth: {open_auth} }}
  - {{ path_prefix: "/", auth: dpop }}"#
        ),
        upstream_url: Some(format!("{}{default}", a.url())),
        extra: format!("upstreams:\n  alt: {{ url: \"{}{alt}\" }}\n", b.url()),
        request_timeout: "30s".into(),
        ..Options::default()
    }
}

impl Fixture {
    async fn start() -> Fixture {
        let a = Upstream::start().await;
        let b = Upstream::start().await;
        let issuer = Issuer::new();
        let log = temp_dir("reload").join("stderr.log");
        let gw = GatewayProcess::spawn_with(
            &version(&a, &b, 1),
            &a,
            &issuer,
            &[("RUST_LOG", "info")],
            Stdio::from(std::fs::File::create(&log).unwrap()),
            None,
        )
        .await;
        Fixture {
            a,
            b,
            issuer,
            gw,
            log,
        }
    }

    /// Writes config version `v` (with the running addresses) over the gateway's file.
    fn write(&self, v: u32) {
        self.write_options(&self.options(v));
    }

    /// Version `v`'s options with the running addresses.
    fn options(&self, v: u32) -> Options {
        Options {
            listen: self.gw.addr.to_string(),
            admin_listen: self.gw.admin_addr.to_string(),
            ..version(&self.a, &self.b, v)
        }
    }

    fn write_options(&self, opts: &Options) {
        self.write_text(&config_yaml(opts, &self.a, &self.issuer));
    }

    fn write_text(&self, text: &str) {
        // Whole, by rename, as a ConfigMap update is: the watcher never sees half a file.
        let path = self.gw.config_path();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    /// Sends SIGHUP and waits for the `result` counter to reach `n`.
    async fn reload(&self, result: &'static str, n: u64) {
        self.gw.signal("HUP");
        self.until_reloads(result, n, 10).await;
    }

    async fn until_reloads(&self, result: &'static str, n: u64, secs: u64) {
        let gw = &self.gw;
        eventually(
            &format!("{result} reloads reach {n}"),
            secs,
            || async move { reloads(gw, result).await >= n },
        )
        .await;
        assert_eq!(reloads(gw, result).await, n, "one reload per trigger");
    }

    /// `GET path` without credentials: status and the path the upstream saw (from its
    /// JSON answer; empty for a gateway refusal).
    async fn get(&self, path: &str) -> (u16, String) {
        get(self.gw.addr, path).await
    }

    /// Waits until the log (written in batches) satisfies `f`; panics with it after 10 s.
    async fn until_logged(&self, what: &str, f: impl Fn(&str) -> bool) {
        for _ in 0..100 {
            if f(&std::fs::read_to_string(&self.log).unwrap()) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(&self.log).unwrap();
        panic!("not logged within 10 s: {what}\n{log}");
    }
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let req = Request::get(path)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client::send(addr, Mode::H1, req).await;
    (resp.status().as_u16(), upstream_path(resp.body()))
}

/// The `path` of the recording upstream's JSON answer, or "" for another body.
fn upstream_path(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["path"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `dpop_gateway_config_reloads_total{result="…"}`.
async fn reloads(gw: &GatewayProcess, result: &str) -> u64 {
    let Some((200, text)) = gw.admin_text("/metrics").await else {
        return 0;
    };
    let series = format!("dpop_gateway_config_reloads_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

/// Whether a `configuration reload failed` line names `file:line:column:` (with `line` when
/// given) and contains `what`.
fn failure_logged(log: &str, file: &str, line: Option<usize>, what: &str) -> bool {
    log.lines()
        .filter(|l| l.contains("configuration reload failed") && l.contains(what))
        .any(|l| {
            let Some(at) = l.find(&format!("{file}:")) else {
                return false;
            };
            let rest = &l[at + file.len() + 1..];
            let mut parts = rest.splitn(3, ':');
            let (Some(ln), Some(col)) = (parts.next(), parts.next()) else {
                return false;
            };
            let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            numeric(ln) && numeric(col) && line.is_none_or(|n| ln == n.to_string())
        })
}

#[tokio::test]
async fn sighup_applies_new_routes_and_upstreams_while_a_slow_request_keeps_its_config() {
    let f = Fixture::start().await;
    assert_eq!(f.get("/x").await, (200, "/one/x".into()));
    assert_eq!(f.get("/open").await, (200, "/one/open".into()));
    assert_eq!(reloads(&f.gw, "success").await, 0, "pre-registered at 0");
    assert_eq!(reloads(&f.gw, "failure").await, 0, "pre-registered at 0");

    // In flight at the upstream (it has the request, and answers in 4 s) when the reload lands.
    let addr = f.gw.addr;
    let slow = tokio::spawn(async move { get(addr, "/x/slow?ms=4000").await });
    let a = &f.a;
    eventually("the slow request reached upstream A", 10, || async move {
        a.requests().iter().any(|r| r.uri == "/one/x/slow?ms=4000")
    })
    .await;
    f.write(2);
    f.reload("success", 1).await;

    assert_eq!(f.get("/x").await, (200, "/two/x".into()), "now upstream B");
    let before = f.a.requests().len() + f.b.requests().len();
    let req = Request::get("/open")
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client::send(addr, Mode::H1, req).await;
    assert_eq!(resp.status(), 401, "/open needs DPoP now");
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    assert_eq!(
        f.a.requests().len() + f.b.requests().len(),
        before,
        "a refused request reaches no upstream"
    );

    assert_eq!(
        slow.await.unwrap(),
        (200, "/one/x/slow".into()),
        "the request in flight completes with the config it started with"
    );
    f.until_logged("the reload", |log| {
        log.lines()
            .any(|l| l.contains("configuration reloaded") && l.contains("SIGHUP"))
    })
    .await;
}

#[tokio::test]
async fn reload_under_load_answers_from_the_old_or_the_new_config_never_a_mix() {
    let f = Fixture::start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(HashSet::<String>::new()));
    let last = Arc::new(Mutex::new(String::new()));
    let sent = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, seen, last, sent) = (stop.clone(), seen.clone(), last.clone(), sent.clone());
        let addr = f.gw.addr;
        // One keep-alive connection each: a connection opened under v1 gets v2 answers once
        // v2 is in.
        clients.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .unwrap();
            tokio::spawn(conn);
            while !stop.load(Ordering::Relaxed) {
                sender.ready().await.expect("the connection stays open");
                let req = Request::get("/x")
                    .header("host", addr.to_string())
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let resp = sender.send_request(req).await.expect("no connection error");
                assert_eq!(resp.status(), 200);
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                let path = upstream_path(&body);
                seen.lock().unwrap().insert(path.clone());
                *last.lock().unwrap() = path;
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let ready = &sent;
    eventually("the clients are answered by v1", 10, || async move {
        ready.load(Ordering::Relaxed) >= 4
    })
    .await;
    for (i, v) in [2, 1, 2, 1, 2, 1].into_iter().enumerate() {
        f.write(v);
        f.reload("success", i as u64 + 1).await;
        let want = if v == 1 { "/one/x" } else { "/two/x" };
        let last = &last;
        eventually(
            &format!("a client is answered by v{v}"),
            10,
            || async move { *last.lock().unwrap() == want },
        )
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("a client failed");
    }
    let seen = seen.lock().unwrap().clone();
    let expected: HashSet<String> = ["/one/x".to_owned(), "/two/x".to_owned()].into();
    assert_eq!(seen, expected, "only whole configs answer");
    assert!(sent.load(Ordering::Relaxed) > 6);
    assert_eq!(reloads(&f.gw, "failure").await, 0);
}

#[tokio::test]
async fn an_invalid_file_is_logged_at_its_position_and_the_running_config_is_kept() {
    let f = Fixture::start().await;
    let file = f.gw.config_path().display().to_string();

    // A YAML syntax error.
    f.write_text("listen: \"127.0.0.1:1\"\nroutes: [ { path_prefix: /x\n");
    f.reload("failure", 1).await;
    assert_eq!(f.get("/x").await, (200, "/one/x".into()), "v1 still serves");
    f.until_logged("the syntax error", |log| {
        failure_logged(log, &file, None, "")
    })
    .await;

    // An unknown key, on a line of its own.
    let good = config_yaml(&f.options(1), &f.a, &f.issuer);
    let text = format!("{good}bogus_key: 1\n");
    let line = text
        .lines()
        .position(|l| l.starts_with("bogus_key"))
        .unwrap()
        + 1;
    f.write_text(&text);
    f.reload("failure", 2).await;
    assert_eq!(f.get("/x").await, (200, "/one/x".into()), "v1 still serves");
    f.until_logged("the unknown key", |log| {
        failure_logged(log, &file, Some(line), "bogus_key")
    })
    .await;

    // Valid YAML naming a file that does not exist: refused before anything is swapped.
    let missing = good.replace(
        &f.issuer.jwks_path.display().to_string(),
        "/nonexistent/jwks.json",
    );
    f.write_text(&missing);
    f.reload("failure", 3).await;
    assert_eq!(f.get("/x").await, (200, "/one/x".into()), "v1 still serves");
    f.until_logged("the missing jwks_file", |log| {
        failure_logged(log, &file, None, "jwks_file")
    })
    .await;
    assert_eq!(reloads(&f.gw, "success").await, 0);

    // A later valid file applies.
    f.write(2);
    f.reload("success", 1).await;
    assert_eq!(f.get("/x").await, (200, "/two/x".into()));
    assert_eq!(reloads(&f.gw, "failure").await, 3);
}

#[tokio::test]
async fn a_listen_change_is_logged_as_needing_a_restart_and_the_rest_applies() {
    let f = Fixture::start().await;
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    f.write_options(&Options {
        listen: elsewhere.to_string(),
        ..f.options(2)
    });
    f.reload("success", 1).await;
    assert_eq!(
        f.get("/x").await,
        (200, "/two/x".into()),
        "the routes applied, on the old address"
    );
    assert!(
        tokio::net::TcpStream::connect(elsewhere).await.is_err(),
        "nothing listens on the new address"
    );
    f.until_logged("listen needs a restart", |log| {
        log.lines()
            .any(|l| l.contains("needs a restart") && l.contains("key=\"listen\""))
    })
    .await;
}

#[tokio::test]
async fn a_proof_accepted_before_a_reload_is_refused_as_replayed_after_it() {
    let f = Fixture::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = f.issuer.token_for(&key);
    let addr = f.gw.addr;
    let url = format!("http://{addr}/r");
    let signed = proof(&key, "GET", &url, Some(&token));
    let send = |proof: String| {
        let token = token.clone();
        async move {
            let req = Request::get("/r")
                .header("host", addr.to_string())
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", proof)
                .body(Full::new(Bytes::new()))
                .unwrap();
            client::send(addr, Mode::H1, req).await
        }
    };
    assert_eq!(send(signed.clone()).await.status(), 200);
    f.write(2);
    f.reload("success", 1).await;

    let again = send(signed).await;
    assert_eq!(
        again.status(),
        401,
        "the memory replay store outlives the reload"
    );
    assert_eq!(www_error(&again).as_deref(), Some("invalid_dpop_proof"));
    assert!(
        !f.a.requests().iter().any(|r| r.uri == "/zero/r"),
        "the replay reached no upstream"
    );
    let fresh = send(proof(&key, "GET", &url, Some(&token))).await;
    assert_eq!(fresh.status(), 200, "a fresh proof passes under v2");
    assert!(f.a.requests().iter().any(|r| r.uri == "/zero/r"));
}

#[tokio::test]
async fn a_change_of_the_file_is_reloaded_without_a_signal() {
    let f = Fixture::start().await;
    f.write(2);
    // Checked every 5 s, applied once it has settled for one check.
    f.until_reloads("success", 1, 30).await;
    assert_eq!(f.get("/x").await, (200, "/two/x".into()));
    f.until_logged("the reload", |log| {
        log.lines()
            .any(|l| l.contains("configuration reloaded") && l.contains("file change"))
    })
    .await;
}
