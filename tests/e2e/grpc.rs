//! gRPC through the gateway with a real gRPC server and client (PyPI `grpcio`, driven by
//! tests/grpc/echo.py): the upstream is reached over HTTP/2 with prior knowledge
//! (`protocol: http2`), the client sends its proof in the `dpop` metadata with `htu` the
//! `https://host/package.Service/Method` URL, and unary and server-streaming calls arrive with
//! their trailers (`grpc-status`, the service's trailing metadata). A call without a proof, or
//! with a replayed one, is an HTTP 401 the client library reports as UNAUTHENTICATED, and never
//! reaches the service.
//!
//! Needs `python3` with `grpcio` (.ci/run installs it); without it the test is skipped, and
//! fails under CI.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use crate::support::{proof, Options, TestGateway};
use dpop_gateway::jose::sign::PrivateJwk;
use dpop_gateway::jose::Algorithm;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc/echo.py");

/// Whether `python3 -c 'import grpc'` works; a panic under CI when it does not.
fn have_grpcio() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import grpc"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with grpcio is not installed: pip install grpcio (.ci/run does)"
        );
        println!("skipped: python3 with grpcio not found (PyPI `grpcio`)");
    }
    ok
}

/// The gRPC service, killed when dropped.
struct Service {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
    port: u16,
}

impl Service {
    fn start() -> Service {
        let mut child = Command::new("python3")
            .args([SCRIPT, "serve"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the gRPC service");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the service's port");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Service {
            child,
            stdout,
            port,
        }
    }

    /// Stops it and returns the calls it received (`CALL Say`, …).
    fn calls(mut self) -> Vec<String> {
        drop(self.child.stdin.take());
        let lines: Vec<String> = (&mut self.stdout)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.starts_with("CALL "))
            .collect();
        let _ = self.child.wait();
        lines
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the gRPC client against `target` with one call per spec; one result per call.
fn grpc_calls(target: String, specs: Vec<Value>) -> Vec<Value> {
    let mut child = Command::new("python3")
        .args([SCRIPT, "call", &target])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the gRPC client");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for spec in &specs {
            writeln!(stdin, "{spec}").expect("write a call");
        }
    }
    let out = child.wait_with_output().expect("gRPC client");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_and_server_streaming_calls_pass_with_their_trailers_and_a_refused_call_is_unauthenticated(
) {
    if !have_grpcio() {
        return;
    }
    let service = Service::start();
    let gw = TestGateway::start_with(Options {
        upstream_url: Some(format!("http://127.0.0.1:{}", service.port)),
        upstream: "protocol: http2".into(),
        routes: "\n  - { path_prefix: /, auth: dpop }".into(),
        extra: "public_url: \"https://api.example.com\"".into(),
        ..Options::default()
    })
    .await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    let htu = |method: &str| format!("https://api.example.com/echo.v1.Echo/{method}");
    let say_proof = proof(&key, "POST", &htu("Say"), Some(&token));
    let count_proof = proof(&key, "POST", &htu("Count"), Some(&token));
    let auth = format!("DPoP {token}");
    let specs = vec![
        json!({"method": "/echo.v1.Echo/Say", "kind": "unary", "request": "world",
               "metadata": [["authorization", auth], ["dpop", say_proof]]}),
        json!({"method": "/echo.v1.Echo/Count", "kind": "stream", "request": "3",
               "metadata": [["authorization", auth], ["dpop", count_proof]]}),
        // No proof.
        json!({"method": "/echo.v1.Echo/Say", "kind": "unary", "request": "x",
               "metadata": [["authorization", auth]]}),
        // The first call's proof again.
        json!({"method": "/echo.v1.Echo/Say", "kind": "unary", "request": "x",
               "metadata": [["authorization", auth], ["dpop", say_proof]]}),
    ];
    let target = gw.addr.to_string();
    let results = tokio::task::spawn_blocking(move || grpc_calls(target, specs))
        .await
        .unwrap();
    assert_eq!(results.len(), 4, "{results:?}");

    let unary = &results[0];
    assert_eq!(unary["code"], "OK", "{unary}");
    assert_eq!(unary["messages"], json!(["hello world no-dpop"]), "{unary}");
    assert!(
        unary["trailing"]
            .as_array()
            .unwrap()
            .contains(&json!(["x-echo-trailer", "yes"])),
        "{unary}"
    );

    let stream = &results[1];
    assert_eq!(stream["code"], "OK", "{stream}");
    assert_eq!(stream["messages"], json!(["0", "1", "2"]), "{stream}");
    assert!(
        stream["trailing"]
            .as_array()
            .unwrap()
            .contains(&json!(["x-echo-trailer", "yes"])),
        "{stream}"
    );

    for refused in &results[2..] {
        assert_eq!(refused["code"], "UNAUTHENTICATED", "{refused}");
        assert!(
            refused["details"].as_str().unwrap().contains("401"),
            "the client library reports the HTTP status: {refused}"
        );
    }
    gw.shutdown().await;
    assert_eq!(
        service.calls(),
        ["CALL Say", "CALL Count"],
        "refused calls never reach the service"
    );
}
