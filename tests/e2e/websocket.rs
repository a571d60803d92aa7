//! WebSocket through the gateway with a real WebSocket server and client (PyPI `websockets`,
//! driven by tests/websocket/ws.py): the handshake is checked like any request (its proof names
//! the `http://` URL of the handshake, method GET), the upstream gets it with `Upgrade` and
//! `Connection: upgrade` and the identity headers but no `DPoP`, and once it answers 101 text,
//! binary and 1 MiB messages and both close handshakes pass. A handshake without a proof, with
//! a proof naming the `ws://` URL, or with a replayed proof is a 401 and never reaches the
//! upstream; tunnels count in the metrics; shutdown ends an open tunnel. `Upgrade: h2c` is
//! never tunnelled, and an HTTP/2 extended CONNECT (RFC 8441, not supported) is reset.
//!
//! Needs `python3` with `websockets` (.ci/run installs it); without it the tests are skipped,
//! and fail under CI.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::process::GatewayProcess;
use crate::support::tls::TestPki;
use crate::support::upstream::Upstream;
use crate::support::{assert_eventually, client, proof, Options, TestGateway};
use dpop_gateway::jose::sign::PrivateJwk;
use dpop_gateway::jose::Algorithm;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/websocket/ws.py");

/// Whether `python3 -c 'import websockets'` works; a panic under CI when it does not.
fn have_websockets() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import websockets"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with websockets is not installed: pip install websockets (.ci/run does)"
        );
        println!("skipped: python3 with websockets not found (PyPI `websockets`)");
    }
    ok
}

/// The WebSocket echo server, killed when dropped.
struct Server {
    child: Child,
    stdout: BufReader<ChildStdout>,
    port: u16,
}

impl Server {
    fn start() -> Server {
        Self::start_with(&["serve"])
    }

    /// Over TLS with `pki`'s certificate, offering h2 and http/1.1 by ALPN.
    fn start_tls(pki: &TestPki) -> Server {
        let cert = pki.cert_path.display().to_string();
        let key = pki.key_path.display().to_string();
        Self::start_with(&["serve-tls", &cert, &key])
    }

    fn start_with(args: &[&str]) -> Server {
        let mut child = Command::new("python3")
            .arg(SCRIPT)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the WebSocket server");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the server's port");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Server {
            child,
            stdout,
            port,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops it and returns what it printed: `HANDSHAKE {json}` and `CLOSED code` lines.
    fn log(mut self) -> (Vec<Value>, Vec<String>) {
        drop(self.child.stdin.take());
        let lines: Vec<String> = (&mut self.stdout).lines().map_while(Result::ok).collect();
        let _ = self.child.wait();
        let handshakes = lines
            .iter()
            .filter_map(|l| l.strip_prefix("HANDSHAKE "))
            .map(|j| serde_json::from_str(j).expect("handshake JSON"))
            .collect();
        let closed = lines
            .iter()
            .filter_map(|l| l.strip_prefix("CLOSED "))
            .map(str::to_owned)
            .collect();
        (handshakes, closed)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the client against `url` with one connection per spec; one result per connection.
fn ws_connections(url: String, specs: Vec<Value>) -> Vec<Value> {
    let mut child = Command::new("python3")
        .args([SCRIPT, "client", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the WebSocket client");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for spec in &specs {
            writeln!(stdin, "{spec}").expect("write a spec");
        }
    }
    let out = child.wait_with_output().expect("WebSocket client");
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON result"))
        .collect()
}

/// The value of an unlabelled metric in `text`.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn dpop_route() -> Options {
    Options {
        routes: "\n  - { path_prefix: /, auth: dpop }".into(),
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_handshake_becomes_a_tunnel_and_a_refused_or_replayed_one_never_reaches_the_upstream(
) {
    if !have_websockets() {
        return;
    }
    let server = Server::start();
    let gw = TestGateway::start_with(Options {
        upstream_url: Some(server.url()),
        ..dpop_route()
    })
    .await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    let auth = format!("DPoP {token}");
    let http_url = gw.url("/chat?room=1");
    let first = proof(&key, "GET", &http_url, Some(&token));
    let second = proof(&key, "GET", &http_url, Some(&token));
    let ws_scheme = proof(
        &key,
        "GET",
        &format!("ws://{}/chat?room=1", gw.addr),
        Some(&token),
    );
    let forbidden = proof(&key, "GET", &gw.url("/forbidden"), Some(&token));
    let specs = vec![
        json!({"headers": [["authorization", auth], ["dpop", first]], "mode": "echo"}),
        json!({"headers": [["authorization", auth], ["dpop", second]], "mode": "echo",
               "server_close": true}),
        // No proof.
        json!({"headers": [["authorization", auth]]}),
        // The proof names the ws:// URL, not the handshake's http:// one.
        json!({"headers": [["authorization", auth], ["dpop", ws_scheme]]}),
        // The first handshake's proof again.
        json!({"headers": [["authorization", auth], ["dpop", first]]}),
        // Verified, and the upstream refuses it: its answer is the client's.
        json!({"headers": [["authorization", auth], ["dpop", forbidden]],
               "url": format!("ws://{}/forbidden", gw.addr)}),
    ];
    let url = format!("ws://{}/chat?room=1", gw.addr);
    let results = tokio::task::spawn_blocking(move || ws_connections(url, specs))
        .await
        .unwrap();
    assert_eq!(results.len(), 6, "{results:?}");

    for (i, echo) in results[..2].iter().enumerate() {
        assert_eq!(echo["status"], 101, "{echo}");
        assert_eq!(echo["text"], "hello", "{echo}");
        assert_eq!(echo["binary"], json!([0, 1, 254, 255]), "{echo}");
        assert_eq!(echo["big"], true, "1 MiB message echoed intact: {echo}");
        let headers = &echo["response_headers"];
        assert_eq!(headers["upgrade"], "websocket", "{echo}");
        assert!(
            headers["sec-websocket-accept"].is_string(),
            "the upstream's accept key reaches the client: {echo}"
        );
        // Client-initiated close (1000, echoed by the server), then the server's own (4001).
        let code = if i == 0 { 1000 } else { 4001 };
        assert_eq!(echo["close_code"], code, "close handshake: {echo}");
    }
    assert_eq!(
        results[5]["status"], 403,
        "the upstream's refusal: {results:?}"
    );
    for refused in &results[2..5] {
        assert_eq!(refused["status"], 401, "{refused}");
        assert!(
            refused["headers"]["www-authenticate"]
                .as_str()
                .unwrap()
                .starts_with("DPoP"),
            "{refused}"
        );
    }
    let metrics = gw.metrics().await;
    assert_eq!(metric(&metrics, "dpop_gateway_tunnels_total"), Some(2.0));
    let admin = gw.admin_addr;
    let mut open = None;
    for _ in 0..100 {
        let text = client::admin_get(admin, "/metrics").await;
        open = metric(
            &String::from_utf8_lossy(text.body()),
            "dpop_gateway_tunnels_open",
        );
        if open == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(open, Some(0.0), "both tunnels closed");
    assert!(
        metrics.contains("status=\"101\""),
        "the handshake is counted as a request answered 101"
    );
    gw.shutdown().await;

    let (handshakes, closed) = server.log();
    assert_eq!(
        handshakes.len(),
        3,
        "refused handshakes never reach the upstream: {handshakes:?}"
    );
    assert_eq!(handshakes[2]["path"], "/forbidden", "{handshakes:?}");
    for h in &handshakes[..2] {
        assert_eq!(h["path"], "/chat?room=1", "{h}");
        let headers = &h["headers"];
        assert!(headers.get("dpop").is_none(), "no proof upstream: {h}");
        assert_eq!(headers["upgrade"], json!(["websocket"]), "{h}");
        assert_eq!(headers["connection"], json!(["upgrade"]), "{h}");
        assert!(headers["sec-websocket-key"].is_array(), "{h}");
        assert!(headers["x-auth-subject"].is_array(), "identity: {h}");
        assert!(headers["x-dpop-jkt"].is_array(), "identity: {h}");
    }
    closed
        .iter()
        .for_each(|c| assert!(c == "1000" || c == "4001", "{closed:?}"));
    assert_eq!(closed.len(), 2, "{closed:?}");
}

#[tokio::test]
async fn an_h2c_upgrade_is_forwarded_as_a_plain_request_never_tunnelled() {
    let gw = TestGateway::start_with(Options {
        routes: "\n  - { path_prefix: /open, auth: none }\n  - { path_prefix: /, auth: dpop }"
            .into(),
        ..Options::default()
    })
    .await;
    let raw = format!(
        "GET /open/x HTTP/1.1\r\nhost: {}\r\nconnection: Upgrade, HTTP2-Settings\r\n\
         upgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        gw.addr
    );
    let out = client::raw(gw.addr, raw.as_bytes()).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(!text.contains("HTTP/1.1 101"), "{text}");
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    for name in ["upgrade", "connection", "http2-settings"] {
        assert!(
            seen[0].headers.get(name).is_none(),
            "{name} is hop-by-hop and stripped: {:?}",
            seen[0].headers
        );
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_an_open_tunnel_once_shutdown_timeout_passes_and_the_gateway_exits_0() {
    if !have_websockets() {
        return;
    }
    let server = Server::start();
    let upstream = Upstream::start().await;
    let issuer = crate::support::gateway::Issuer::new();
    let opts = Options {
        upstream_url: Some(server.url()),
        ..dpop_route()
    };
    let mut gw = GatewayProcess::spawn(&opts, &upstream, &issuer).await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = issuer.token_for(&key);
    let url = format!("http://{}/hold", gw.addr);
    let spec = json!({"headers": [["authorization", format!("DPoP {token}")],
                                  ["dpop", proof(&key, "GET", &url, Some(&token))]],
                      "mode": "hold"});
    let mut client = Command::new("python3")
        .args([SCRIPT, "client", &format!("ws://{}/hold", gw.addr)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the WebSocket client");
    {
        let mut stdin = client.stdin.take().expect("stdin");
        writeln!(stdin, "{spec}").unwrap();
    }
    let mut lines = BufReader::new(client.stdout.take().expect("stdout")).lines();
    let opened = tokio::task::block_in_place(|| lines.next())
        .expect("a line")
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&opened).unwrap(),
        json!({"open": true, "status": 101})
    );
    let admin = gw.admin_addr;
    let mut open = None;
    for _ in 0..100 {
        if let Some((_, text)) = gw.admin_text("/metrics").await {
            open = metric(&text, "dpop_gateway_tunnels_open");
        }
        if open == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(open, Some(1.0), "the tunnel is open ({admin})");

    gw.terminate();
    // The tunnel keeps the drain waiting (shutdown_timeout: 5s), then is closed.
    let closed = tokio::task::block_in_place(|| lines.next())
        .expect("a line")
        .unwrap();
    let closed: Value = serde_json::from_str(&closed).unwrap();
    assert_eq!(closed["closed"], true, "{closed}");
    assert_eq!(gw.wait_exit(Duration::from_secs(30)), Some(0));
    let _ = client.wait();
    assert_eventually("the gateway process ended", || !gw.is_running()).await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_an_https_upstream_offering_h2_the_handshake_goes_on_http_1_1() {
    if !have_websockets() {
        return;
    }
    let pki = TestPki::new();
    let server = Server::start_tls(&pki);
    let gw = TestGateway::start_with(Options {
        upstream_url: Some(format!("https://127.0.0.1:{}", server.port)),
        upstream: format!("tls:\n  ca_file: \"{}\"", pki.ca_file().display()),
        ..dpop_route()
    })
    .await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    let spec = json!({"headers": [["authorization", format!("DPoP {token}")],
                                  ["dpop", proof(&key, "GET", &gw.url("/tls"), Some(&token))]],
                      "mode": "echo"});
    let url = format!("ws://{}/tls", gw.addr);
    let results = tokio::task::spawn_blocking(move || ws_connections(url, vec![spec]))
        .await
        .unwrap();
    assert_eq!(results[0]["status"], 101, "{results:?}");
    assert_eq!(results[0]["text"], "hello", "{results:?}");
    assert_eq!(results[0]["big"], true, "{results:?}");
    assert_eq!(results[0]["close_code"], 1000, "{results:?}");
    gw.shutdown().await;
    let (handshakes, _) = server.log();
    assert_eq!(handshakes.len(), 1, "{handshakes:?}");
    assert_eq!(
        handshakes[0]["alpn"], "http/1.1",
        "protocol: auto offers only http/1.1 for a handshake: {handshakes:?}"
    );
}

/// RFC 8441 is not supported: the gateway does not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL,
/// and an extended CONNECT sent anyway is reset, not left hanging, and never forwarded.
#[tokio::test]
async fn an_http2_extended_connect_is_reset_and_never_forwarded() {
    let gw = TestGateway::start_with(Options {
        routes: "\n  - { path_prefix: /, auth: none }".into(),
        ..Options::default()
    })
    .await;
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    // The server's SETTINGS have arrived once a request got an answer.
    let req = http::Request::get(format!("http://{}/warm", gw.addr))
        .body(())
        .unwrap();
    let (resp, _) = client.send_request(req, true).unwrap();
    assert_eq!(resp.await.unwrap().status(), 200);
    assert!(!client.is_extended_connect_protocol_enabled());

    let mut client = client.ready().await.unwrap();
    let mut req = http::Request::builder()
        .method("CONNECT")
        .uri(format!("http://{}/chat", gw.addr))
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    req.extensions_mut()
        .insert(h2::ext::Protocol::from("websocket"));
    let outcome = match client.send_request(req, false) {
        Err(e) => format!("refused to send: {e}"),
        Ok((resp, _stream)) => {
            // A bound so that a hang fails the test instead of stalling it.
            match tokio::time::timeout(Duration::from_secs(10), resp).await {
                Ok(Err(e)) => {
                    assert_eq!(e.reason(), Some(h2::Reason::PROTOCOL_ERROR), "{e}");
                    format!("reset: {e}")
                }
                Ok(Ok(r)) => panic!("answered {}", r.status()),
                Err(_) => panic!("no answer: the stream hangs"),
            }
        }
    };
    println!("extended CONNECT: {outcome}");
    let seen = gw.upstream.requests();
    assert!(
        seen.iter().all(|r| r.uri != "/chat"),
        "never forwarded: {seen:?}"
    );
    gw.shutdown().await;
}
