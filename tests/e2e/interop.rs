//! Interop with third-party software: the real `oidc-provider` npm package as the
//! authorization server (DPoP, client_credentials, resource indicators, introspection) and
//! panva's client packages `oauth4webapi`, `openid-client` and `dpop` as the clients
//! (`tests/interop/`). The gateway discovers the AS's keys from its OpenID Connect metadata (it
//! has no RFC 8414 document: the fallback), and a second gateway introspects the AS's opaque
//! tokens. The clients sign Ed25519 proofs with RFC 9864's `alg: "Ed25519"`, and the AS signs
//! access tokens with it too; the gateways run with the default algorithm lists.
//!
//! Needs `npm ci --prefix tests/interop`: without `tests/interop/node_modules` the test is
//! skipped, or fails when `CI` is set.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::support::issuer_server::{http_opt_in, RemoteGateway};

/// The resource indicator (and gateway audience) whose tokens are JWTs.
const JWT_AUDIENCE: &str = "https://api.interop.test";
/// The resource indicator whose tokens are opaque.
const OPAQUE_AUDIENCE: &str = "https://opaque.interop.test";
/// The resource indicator whose tokens are JWTs signed with `alg: "Ed25519"`.
const ED25519_AUDIENCE: &str = "https://ed25519.interop.test";
/// The client packages (`client.mjs <library>`).
const LIBRARIES: [&str; 3] = ["oauth4webapi", "openid-client", "dpop"];

/// The AS process, killed on drop.
struct NodeAs {
    child: Child,
    issuer: String,
}

// === impl NodeAs ===

impl NodeAs {
    fn start(dir: &std::path::Path) -> NodeAs {
        let mut child = Command::new("node")
            .arg(dir.join("as.mjs"))
            .args([JWT_AUDIENCE, OPAQUE_AUDIENCE, ED25519_AUDIENCE])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node tests/interop/as.mjs");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("as.mjs stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("as.mjs prints its issuer");
        let first: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("as.mjs first line {line:?}: {e}"));
        let issuer = first["issuer"].as_str().expect("issuer").to_owned();
        NodeAs { child, issuer }
    }
}

impl Drop for NodeAs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The interop directory, or `None` (skip) when its packages are not installed.
fn interop_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    if dir.join("node_modules").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "tests/interop/node_modules is missing: run `npm ci --prefix tests/interop`"
    );
    eprintln!("skipped: interop test needs `npm ci --prefix tests/interop`");
    None
}

/// What `client.mjs` is asked to do.
struct ClientRun {
    /// The client package.
    library: &'static str,
    /// The proof key's algorithm.
    alg: &'static str,
    /// The AS.
    issuer: String,
    /// The resource indicator (the gateway's audience).
    resource: &'static str,
}

/// Runs `client.mjs` (blocking, off the runtime's threads) against `gw` and parses its JSON.
async fn run_client(dir: &std::path::Path, run: &ClientRun, gw: &RemoteGateway) -> Value {
    let script = dir.join("client.mjs");
    let url = format!("http://{}/interop/hello", gw.addr);
    let args = [run.library, run.alg, &run.issuer, run.resource, &url].map(str::to_owned);
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run node tests/interop/client.mjs")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "client.mjs failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "client.mjs output {:?}: {e}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// What every run must show: proofs with the algorithm asked for, one request forwarded
/// (without `DPoP`), the replay and the foreign-key proof refused.
fn assert_steps(out: &Value, run: &ClientRun, gw: &RemoteGateway) {
    assert_eq!(out["proof_alg"], run.alg, "{}: {out}", run.library);
    assert!(
        out["token_type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("dpop")),
        "{out}"
    );
    assert_eq!(out["ok"]["status"], 200, "{out}");
    assert_eq!(out["replayed"]["status"], 401, "{out}");
    assert_eq!(out["replayed"]["error"], "invalid_dpop_proof", "{out}");
    assert_eq!(out["foreign"]["status"], 401, "{out}");
    assert_eq!(out["foreign"]["error"], "invalid_token", "{out}");
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 1, "only the valid request is forwarded");
    assert_eq!(seen[0].uri, "/interop/hello");
    assert!(!seen[0].headers.contains_key("dpop"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_provider_jwt_and_opaque_dpop_tokens_from_oauth4webapi_pass_and_replays_are_refused() {
    let Some(dir) = interop_dir() else { return };
    let node_as = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || NodeAs::start(&dir)
    })
    .await
    .unwrap();
    let issuer = node_as.issuer.clone();

    // JWT access tokens; keys discovered (OpenID Connect metadata: oidc-provider has no RFC 8414
    // document, so this also exercises the fallback).
    let jwt_gw = RemoteGateway::start(&format!(
        "  issuer: \"{issuer}\"\n  audience: \"{JWT_AUDIENCE}\"{}",
        http_opt_in(&issuer)
    ))
    .await;
    let run = ClientRun {
        library: "oauth4webapi",
        alg: "ES256",
        issuer: issuer.clone(),
        resource: JWT_AUDIENCE,
    };
    let out = run_client(&dir, &run, &jwt_gw).await;
    assert_steps(&out, &run, &jwt_gw);
    jwt_gw.shutdown().await;

    // Opaque access tokens, introspected (oidc-provider's default introspection route).
    let opaque_gw = RemoteGateway::start(&format!(
        "  format: introspection\n  issuer: \"{issuer}\"\n  audience: \"{OPAQUE_AUDIENCE}\"\n  introspection:\n    endpoint: \"{issuer}/token/introspection\"\n    client_id: gateway\n    client_secret: gateway-secret{}",
        http_opt_in(&issuer)
    ))
    .await;
    let run = ClientRun {
        resource: OPAQUE_AUDIENCE,
        ..run
    };
    let out = run_client(&dir, &run, &opaque_gw).await;
    assert_steps(&out, &run, &opaque_gw);
    opaque_gw.shutdown().await;
    drop(node_as);
}

/// panva's three client packages sign Ed25519 proofs as `alg: "Ed25519"` (RFC 9864);
/// oidc-provider binds tokens to those keys and signs them with `alg: "Ed25519"` as well. A
/// gateway with the default `dpop.algorithms` and `access_token.algorithms` accepts both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_proofs_from_oauth4webapi_openid_client_and_dpop_pass_with_oidc_provider_tokens() {
    let Some(dir) = interop_dir() else { return };
    let node_as = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || NodeAs::start(&dir)
    })
    .await
    .unwrap();
    for library in LIBRARIES {
        let gw = RemoteGateway::start(&format!(
            "  issuer: \"{}\"\n  audience: \"{ED25519_AUDIENCE}\"{}",
            node_as.issuer,
            http_opt_in(&node_as.issuer)
        ))
        .await;
        let run = ClientRun {
            library,
            alg: "Ed25519",
            issuer: node_as.issuer.clone(),
            resource: ED25519_AUDIENCE,
        };
        let out = run_client(&dir, &run, &gw).await;
        assert_eq!(out["token_alg"], "Ed25519", "{library}: {out}");
        assert_steps(&out, &run, &gw);
        gw.shutdown().await;
    }
    drop(node_as);
}
