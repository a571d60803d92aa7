//! The decision listener (`forward_auth.listen`) behind real ingresses: Debian's nginx
//! (`auth_request`) and Caddy (`forward_auth`), each started here on a free port with the
//! shipped config (`deploy/ingress/`, addresses replaced) in a temp dir, in front of the
//! recording upstream; plus the Envoy `ext_authz` convention (no X-Forwarded-* description)
//! against the listener directly. Every refusal also asserts that the upstream saw nothing.
//!
//! A missing `nginx` or `caddy` skips its test, and fails it under `CI` (`.ci/run` installs
//! both, without starting their services).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use dpop_gateway::jose::sign::{self, PrivateJwk, ProofClaims};
use dpop_gateway::jose::Algorithm;
use http::{Request, Response};
use http_body_util::Full;

use crate::support::client::{self, Mode};
use crate::support::ports::free_port;
use crate::support::{json_body, now, proof, temp_dir, www_error, Options, TestGateway};

/// The test issuer's name: the value of the issuer identity header.
const ISSUER: &str = "https://as.example.com";

const NONCE_SECRET: &str = "0123456789abcdef0123456789abcdef-nonce";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Nginx,
    Caddy,
}

/// A running ingress, killed when dropped.
struct Ingress {
    kind: Kind,
    child: Child,
    port: u16,
    dir: PathBuf,
}

/// A gateway with a decision listener on a free loopback port.
async fn gateway(opts: Options) -> TestGateway {
    let extra = format!(
        "{}\nforward_auth:\n  listen: \"127.0.0.1:0\"\n  path_prefix: /ext_authz\n",
        opts.extra
    );
    TestGateway::start_with(Options { extra, ..opts }).await
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// `name` on `PATH`: `None` (a skip line) when absent, a panic under `CI`.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|dir| [dir.join(name)])
            .chain([PathBuf::from("/usr/sbin").join(name)])
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "`{name}` is not installed: install the package `{name}` (.ci/run does)"
        );
        println!("skipped: `{name}` not found");
    }
    found
}

// === impl Ingress ===

impl Ingress {
    /// Starts `kind` on a free port with the shipped config, asking `decisions` and proxying
    /// to `api`; `None` when the binary is not installed (outside CI).
    async fn start(kind: Kind, decisions: SocketAddr, api: SocketAddr) -> Option<Ingress> {
        let port = free_port();
        let dir = temp_dir(match kind {
            Kind::Nginx => "nginx",
            Kind::Caddy => "caddy",
        });
        let addresses = |text: String| {
            text.replace("127.0.0.1:8081", &decisions.to_string())
                .replace("127.0.0.1:8080", &api.to_string())
                .replace("127.0.0.1:8000", &format!("127.0.0.1:{port}"))
        };
        let child = match kind {
            Kind::Nginx => {
                let bin = tool("nginx")?;
                let site = addresses(read("deploy/ingress/nginx.conf"));
                std::fs::write(dir.join("dpop-gateway.conf"), site).unwrap();
                let d = dir.display();
                let main = format!(
                    "worker_processes 1;\nerror_log {d}/error.log info;\npid {d}/nginx.pid;\n\
                     events {{ worker_connections 256; }}\n\
                     http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  \
                     proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
                     uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
                     include {d}/dpop-gateway.conf;\n}}\n"
                );
                std::fs::write(dir.join("nginx.conf"), main).unwrap();
                Command::new(bin)
                    .arg("-p")
                    .arg(&dir)
                    .arg("-c")
                    .arg(dir.join("nginx.conf"))
                    .arg("-e")
                    .arg(dir.join("error.log"))
                    .args(["-g", "daemon off;"])
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
                    .spawn()
                    .expect("nginx starts")
            }
            Kind::Caddy => {
                let bin = tool("caddy")?;
                let site = addresses(read("deploy/ingress/Caddyfile"))
                    .replace("{\n\troute {", "{\n\tbind 127.0.0.1\n\troute {");
                let text = format!("{{\n\tadmin off\n\tauto_https off\n}}\n\n{site}");
                std::fs::write(dir.join("Caddyfile"), text).unwrap();
                Command::new(bin)
                    .args(["run", "--adapter", "caddyfile", "--config"])
                    .arg(dir.join("Caddyfile"))
                    .env("HOME", &dir)
                    .env("XDG_DATA_HOME", &dir)
                    .env("XDG_CONFIG_HOME", &dir)
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
                    .spawn()
                    .expect("caddy starts")
            }
        };
        let mut ingress = Ingress {
            kind,
            child,
            port,
            dir,
        };
        ingress.wait_ready().await;
        Some(ingress)
    }

    async fn wait_ready(&mut self) {
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{:?} exited ({status}):\n{}", self.kind, self.logs());
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{:?} not listening within 10 s:\n{}",
            self.kind,
            self.logs()
        );
    }

    fn logs(&self) -> String {
        ["stderr", "error.log"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(self.dir.join(f)).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// What a client's proof names: `http://127.0.0.1:PORT/path`.
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response<Bytes> {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("127.0.0.1:{}", self.port));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(Bytes::new())).unwrap();
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        client::send(addr, Mode::H1, req).await
    }
}

impl Drop for Ingress {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn key() -> PrivateJwk {
    PrivateJwk::generate(Algorithm::ES256).unwrap()
}

fn mint(key: &PrivateJwk, method: &str, url: &str, token: &str, nonce: Option<&str>) -> String {
    key.mint_proof(&ProofClaims {
        htm: method.into(),
        htu: url.into(),
        iat: now(),
        jti: sign::random_jti(),
        access_token: Some(token.into()),
        nonce: nonce.map(str::to_owned),
    })
    .unwrap()
}

fn header<'r>(resp: &'r Response<Bytes>, name: &str) -> Option<&'r str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A refusal as the client sees it: status, the challenge's `error`, the JSON `error`.
#[track_caller]
fn assert_refused(resp: &Response<Bytes>, status: u16, error: &str, what: &str) {
    assert_eq!(resp.status(), status, "{what}: {resp:?}");
    assert_eq!(json_body(resp)["error"], error, "{what}: {resp:?}");
    assert!(
        resp.headers().get_all("www-authenticate").iter().count() <= 1,
        "{what}: one challenge: {resp:?}"
    );
    assert!(
        header(resp, "content-type").is_some_and(|t| t.starts_with("application/json")),
        "{what}: {resp:?}"
    );
    if status == 401 || status == 400 {
        assert_eq!(www_error(resp).as_deref(), Some(error), "{what}: {resp:?}");
    }
}

/// The cases every ingress must pass, on a gateway with default routes and no nonces.
async fn plain_cases(kind: Kind) {
    let gw = gateway(Options::default()).await;
    let decisions = gw.forward_auth_addr.unwrap();
    let Some(ing) = Ingress::start(kind, decisions, gw.upstream.addr()).await else {
        return;
    };
    let key = key();
    let token = gw.issuer.token_for(&key);
    let dpop_auth = format!("DPoP {token}");
    let seen = || gw.upstream.requests().len();

    // A valid proof naming the ingress URL: forwarded with the identity, without the proof,
    // and a client's own identity header never reaches the API.
    let p = mint(&key, "GET", &ing.url("/api/items"), &token, None);
    let resp = ing
        .send(
            "GET",
            "/api/items?page=2",
            &[
                ("authorization", &dpop_auth),
                ("dpop", &p),
                ("x-auth-subject", "admin"),
                ("x-auth-issuer", "https://evil.example"),
            ],
        )
        .await;
    assert_eq!(
        resp.status(),
        200,
        "{kind:?} valid: {resp:?}\n{}",
        ing.logs()
    );
    let reqs = gw.upstream.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.uri, "/api/items?page=2");
    assert!(r.headers.get("dpop").is_none(), "{kind:?}: {:?}", r.headers);
    let subjects: Vec<_> = r.headers.get_all("x-auth-subject").iter().collect();
    assert_eq!(subjects, ["alice"], "{kind:?}: {:?}", r.headers);
    // The issuer header too: the decision carries it, so the ingress overwrites a client's copy.
    let issuers: Vec<_> = r.headers.get_all("x-auth-issuer").iter().collect();
    assert_eq!(issuers, [ISSUER], "{kind:?}: {:?}", r.headers);
    assert_eq!(
        r.headers["authorization"],
        format!("Bearer {token}").as_str()
    );
    assert_eq!(
        r.headers["x-dpop-jkt"].to_str().unwrap(),
        key.thumbprint().to_string()
    );

    // The same proof again: a replay, the challenge and the JSON reach the client.
    let resp = ing
        .send(
            "GET",
            "/api/items?page=2",
            &[("authorization", &dpop_auth), ("dpop", &p)],
        )
        .await;
    assert_refused(&resp, 401, "invalid_dpop_proof", "replay");
    assert!(
        json_body(&resp)["error_description"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{resp:?}"
    );
    assert_eq!(seen(), 1, "{kind:?}: a replay reaches nothing");

    // A proof naming the decision listener instead of the URL the client used.
    let p = mint(
        &key,
        "GET",
        &format!("http://{decisions}/api/items"),
        &token,
        None,
    );
    let resp = ing
        .send(
            "GET",
            "/api/items",
            &[("authorization", &dpop_auth), ("dpop", &p)],
        )
        .await;
    assert_refused(&resp, 401, "invalid_dpop_proof", "htu of the listener");
    assert_eq!(seen(), 1);

    // A proof for another method.
    let p = mint(&key, "POST", &ing.url("/api/items"), &token, None);
    let resp = ing
        .send(
            "GET",
            "/api/items",
            &[("authorization", &dpop_auth), ("dpop", &p)],
        )
        .await;
    assert_refused(&resp, 401, "invalid_dpop_proof", "htm");
    assert_eq!(seen(), 1);

    // No credentials at all: the bare challenge.
    let resp = ing.send("GET", "/api/items", &[]).await;
    assert_eq!(resp.status(), 401, "{resp:?}");
    assert!(
        header(&resp, "www-authenticate")
            .unwrap()
            .starts_with("DPoP algs=\""),
        "{resp:?}"
    );
    assert_eq!(json_body(&resp)["error"], "unauthorized");
    assert_eq!(seen(), 1);

    // Two proofs: 400, which nginx's auth_request alone would turn into 500.
    let p1 = mint(&key, "GET", &ing.url("/api/items"), &token, None);
    let p2 = mint(&key, "GET", &ing.url("/api/items"), &token, None);
    let resp = ing
        .send(
            "GET",
            "/api/items",
            &[("authorization", &dpop_auth), ("dpop", &p1), ("dpop", &p2)],
        )
        .await;
    assert_refused(&resp, 400, "invalid_request", "two proofs");
    assert_eq!(seen(), 1);

    // The method is the original's: a POST proof for a POST passes.
    let p = mint(&key, "POST", &ing.url("/api/items"), &token, None);
    let resp = ing
        .send(
            "POST",
            "/api/items",
            &[("authorization", &dpop_auth), ("dpop", &p)],
        )
        .await;
    assert_eq!(resp.status(), 200, "{kind:?} POST: {resp:?}");
    assert_eq!(seen(), 2);
    assert_eq!(gw.upstream.requests()[1].method, "POST");

    // An `auth: none` route: through without credentials, with no identity.
    let resp = ing
        .send(
            "GET",
            "/open/page",
            &[
                ("x-auth-subject", "admin"),
                ("x-auth-issuer", "https://evil.example"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200, "{kind:?} open: {resp:?}");
    let reqs = gw.upstream.requests();
    assert_eq!(reqs.len(), 3);
    for name in [
        "x-auth-subject",
        "x-auth-issuer",
        "x-dpop-jkt",
        "authorization",
        "dpop",
    ] {
        assert!(
            reqs[2].headers.get(name).is_none(),
            "{kind:?} {name}: {:?}",
            reqs[2].headers
        );
    }

    // A client's `_` spelling of an identity header (read as the real one by CGI-style
    // servers): nginx drops such fields by default, Caddy passes them and the gateway refuses.
    let p = mint(&key, "GET", &ing.url("/api/items"), &token, None);
    let resp = ing
        .send(
            "GET",
            "/api/items",
            &[
                ("authorization", &dpop_auth),
                ("dpop", &p),
                ("x_auth_subject", "admin"),
            ],
        )
        .await;
    match kind {
        Kind::Nginx => {
            assert_eq!(resp.status(), 200, "{resp:?}");
            let reqs = gw.upstream.requests();
            assert_eq!(reqs.len(), 4);
            assert!(
                reqs[3].headers.get("x_auth_subject").is_none(),
                "{:?}",
                reqs[3].headers
            );
        }
        Kind::Caddy => {
            assert_refused(&resp, 400, "invalid_request", "x_auth_subject");
            assert_eq!(seen(), 3);
        }
    }

    let metrics = gw.metrics().await;
    for want in [
        "listener=\"forward_auth\",method=\"GET\",outcome=\"forwarded\",reason=\"none\",route=\"/\",status=\"200\"",
        "listener=\"forward_auth\",method=\"GET\",outcome=\"invalid_dpop_proof\",reason=\"replay\",route=\"/\",status=\"401\"",
        "listener=\"forward_auth\",method=\"GET\",outcome=\"invalid_request\",reason=\"invalid_request\",route=\"/\",status=\"400\"",
    ] {
        assert!(metrics.contains(want), "{want}\n{metrics}");
    }
    assert!(
        !metrics.contains("listener=\"proxy\""),
        "nothing went through the proxy listener"
    );
    drop(ing);
    gw.shutdown().await;
}

/// Nonces and a full replay cache (503) through each ingress.
async fn nonce_and_unavailable_cases(kind: Kind) {
    let gw = gateway(Options {
        dpop: format!("nonce:\n  enabled: true\n  secrets: [\"{NONCE_SECRET}\"]"),
        replay_capacity: 1,
        ..Options::default()
    })
    .await;
    let Some(ing) = Ingress::start(kind, gw.forward_auth_addr.unwrap(), gw.upstream.addr()).await
    else {
        return;
    };
    let key = key();
    let token = gw.issuer.token_for(&key);
    let auth = format!("DPoP {token}");
    let url = ing.url("/api/items");

    let p = mint(&key, "GET", &url, &token, None);
    let resp = ing
        .send(
            "GET",
            "/api/items",
            &[("authorization", &auth), ("dpop", &p)],
        )
        .await;
    assert_refused(&resp, 401, "use_dpop_nonce", "no nonce");
    let nonce = header(&resp, "dpop-nonce")
        .unwrap_or_else(|| panic!("{kind:?}: no DPoP-Nonce reached the client: {resp:?}"))
        .to_owned();
    assert!(gw.upstream.requests().is_empty());

    let p = mint(&key, "GET", &url, &token, Some(&nonce));
    let resp = ing
        .send(
            "GET",
            "/api/items",
            &[("authorization", &auth), ("dpop", &p)],
        )
        .await;
    assert_eq!(
        resp.status(),
        200,
        "{kind:?} retry with the nonce: {resp:?}"
    );
    assert_eq!(gw.upstream.requests().len(), 1);

    // The cache (capacity 1) holds a live entry: the next proof cannot be admitted.
    let p = mint(&key, "GET", &url, &token, Some(&nonce));
    let resp = ing
        .send(
            "GET",
            "/api/items",
            &[("authorization", &auth), ("dpop", &p)],
        )
        .await;
    assert_refused(&resp, 503, "temporarily_unavailable", "full cache");
    let retry: u64 = header(&resp, "retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1, "{resp:?}");
    assert_eq!(gw.upstream.requests().len(), 1, "a 503 reaches nothing");

    // No gateway to ask: the ingress fails closed (502).
    gw.shutdown().await;
    let p = mint(&key, "GET", &url, &token, Some(&nonce));
    let resp = ing
        .send(
            "GET",
            "/api/items",
            &[("authorization", &auth), ("dpop", &p)],
        )
        .await;
    assert_eq!(resp.status(), 502, "{kind:?} without a gateway: {resp:?}");
    if kind == Kind::Nginx {
        assert_eq!(json_body(&resp)["error"], "temporarily_unavailable");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_in_front() {
    plain_cases(Kind::Nginx).await;
    nonce_and_unavailable_cases(Kind::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_forward_auth_in_front() {
    plain_cases(Kind::Caddy).await;
    nonce_and_unavailable_cases(Kind::Caddy).await;
}

/// A decision request sent to the listener directly.
async fn ask(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response<Bytes> {
    let mut b = Request::builder().method("GET").uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    client::send(addr, Mode::H1, b.body(Full::new(Bytes::new())).unwrap()).await
}

#[tokio::test]
async fn envoy_ext_authz_convention_and_described_requests() {
    let gw = gateway(Options::default()).await;
    let decisions = gw.forward_auth_addr.unwrap();
    let key = key();
    let token = gw.issuer.token_for(&key);
    let auth = format!("DPoP {token}");
    let host = "api.example.test:8443";

    // Envoy: the original method, Host and path behind `path_prefix`; scheme from
    // X-Forwarded-Proto.
    let p = proof(
        &key,
        "GET",
        &format!("https://{host}/api/items"),
        Some(&token),
    );
    let envoy = |p: &str| -> Vec<(&str, String)> {
        vec![
            ("host", host.to_owned()),
            ("x-forwarded-proto", "https".to_owned()),
            ("authorization", auth.clone()),
            ("dpop", p.to_owned()),
        ]
    };
    let send = |path: &'static str, h: Vec<(&'static str, String)>| async move {
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ask(decisions, path, &h).await
    };
    let resp = send("/ext_authz/api/items?x=1", envoy(&p)).await;
    assert_eq!(resp.status(), 200, "{resp:?}");
    assert_eq!(header(&resp, "x-auth-subject"), Some("alice"));
    assert_eq!(header(&resp, "x-auth-issuer"), Some(ISSUER));
    assert_eq!(
        header(&resp, "authorization"),
        Some(format!("Bearer {token}").as_str())
    );
    assert_eq!(
        header(&resp, "x-dpop-jkt"),
        Some(key.thumbprint().to_string().as_str())
    );
    assert!(header(&resp, "dpop").is_none());

    // Outside the prefix: not a request this listener was asked about.
    let p = proof(
        &key,
        "GET",
        &format!("https://{host}/api/items"),
        Some(&token),
    );
    let resp = send("/api/items", envoy(&p)).await;
    assert_refused(&resp, 400, "invalid_request", "outside path_prefix");

    // Client copies of identity headers, in either spelling, are refused: an ingress that
    // passes the client's headers on would hand them to the API.
    for name in [
        "x-auth-subject",
        "x_auth_subject",
        "X-DPoP_Jkt",
        "x-auth-issuer",
        "X_Auth_Issuer",
    ] {
        let p = proof(
            &key,
            "GET",
            &format!("https://{host}/api/items"),
            Some(&token),
        );
        let mut h = envoy(&p);
        let name: &'static str = Box::leak(name.to_ascii_lowercase().into_boxed_str());
        h.push((name, "admin".into()));
        let resp = send("/ext_authz/api/items", h).await;
        assert_refused(&resp, 400, "invalid_request", name);
    }

    // A described request (X-Forwarded-*): the description wins over the request's own
    // target and Host; `Forwarded` is never read.
    let p = proof(
        &key,
        "PUT",
        "https://shop.example.test/cart/1",
        Some(&token),
    );
    let described = |p: &str| -> Vec<(&'static str, String)> {
        vec![
            ("host", decisions.to_string()),
            ("x-forwarded-method", "PUT".into()),
            ("x-forwarded-proto", "https".into()),
            ("x-forwarded-host", "shop.example.test".into()),
            ("x-forwarded-uri", "/cart/1?q=2".into()),
            ("forwarded", "proto=http;host=evil.example".into()),
            ("authorization", auth.clone()),
            ("dpop", p.to_owned()),
        ]
    };
    let resp = send("/anything", described(&p)).await;
    assert_eq!(resp.status(), 200, "{resp:?}");

    // Broken descriptions are refused, not guessed at.
    let p = proof(
        &key,
        "PUT",
        "https://shop.example.test/cart/1",
        Some(&token),
    );
    for (what, edit) in [
        ("repeated host", ("x-forwarded-host", "shop.example.test")),
        ("method without uri", ("x-forwarded-uri", "")),
        ("a list of schemes", ("x-forwarded-proto", "https, http")),
        ("another scheme", ("x-forwarded-proto", "ftp")),
        (
            "absolute uri",
            ("x-forwarded-uri", "https://shop.example.test/cart/1"),
        ),
    ] {
        let mut h = described(&p);
        match what {
            "repeated host" => h.push((edit.0, edit.1.into())),
            "method without uri" => h.retain(|(k, _)| *k != "x-forwarded-uri"),
            _ => {
                h.retain(|(k, _)| *k != edit.0);
                h.push((edit.0, edit.1.into()));
            }
        }
        let resp = send("/", h).await;
        assert_refused(&resp, 400, "invalid_request", what);
    }
    // HTTP/2 (h2c), Envoy style: `:authority` is the original's.
    let p = proof(
        &key,
        "GET",
        &format!("https://{host}/api/items"),
        Some(&token),
    );
    let mut b = Request::builder()
        .method("GET")
        .uri(format!("http://{host}/ext_authz/api/items"));
    for (k, v) in envoy(&p).iter().filter(|(k, _)| *k != "host") {
        b = b.header(*k, v.as_str());
    }
    let resp = client::send(
        decisions,
        Mode::H2c,
        b.body(Full::new(Bytes::new())).unwrap(),
    )
    .await;
    assert_eq!(resp.status(), 200, "h2c: {resp:?}");
    assert_eq!(header(&resp, "x-auth-subject"), Some("alice"));

    // The RFC 9728 document: a 2xx would send the request upstream, so not here.
    let resp = send(
        "/ext_authz/.well-known/oauth-protected-resource",
        vec![("host", host.to_owned())],
    )
    .await;
    assert_eq!(resp.status(), 404, "{resp:?}");
    assert_eq!(json_body(&resp)["error"], "not_found");

    assert!(
        gw.upstream.requests().is_empty(),
        "a decision listener forwards nothing"
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("dpop_gateway_open_connections{listener=\"forward_auth\"}"),
        "{metrics}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn public_url_wins_for_htu() {
    let gw = gateway(Options {
        extra: "public_url: \"https://api.example.com\"".into(),
        ..Options::default()
    })
    .await;
    let decisions = gw.forward_auth_addr.unwrap();
    let key = key();
    let token = gw.issuer.token_for(&key);
    let auth = format!("DPoP {token}");
    for (htu, status) in [
        ("https://api.example.com/x", 200),
        ("https://described.example.test/x", 401),
    ] {
        let p = proof(&key, "GET", htu, Some(&token));
        let resp = ask(
            decisions,
            "/",
            &[
                ("x-forwarded-method", "GET"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "described.example.test"),
                ("x-forwarded-uri", "/x"),
                ("authorization", &auth),
                ("dpop", &p),
            ],
        )
        .await;
        assert_eq!(resp.status(), status, "{htu}: {resp:?}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn the_access_log_names_the_listener_that_decided() {
    use crate::support::gateway::Issuer;
    use crate::support::process::GatewayProcess;
    use crate::support::upstream::Upstream;

    let upstream = Upstream::start().await;
    let issuer = Issuer::new();
    let log = temp_dir("fwdauth-log").join("stderr.log");
    let decisions: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let opts = Options {
        extra: format!("forward_auth:\n  listen: \"{decisions}\"\n"),
        ..Options::default()
    };
    let env = [("RUST_LOG", "info"), ("DPOP_GATEWAY_LOG_FORMAT", "json")];
    let mut gw = GatewayProcess::spawn_with(
        &opts,
        &upstream,
        &issuer,
        &env,
        Stdio::from(std::fs::File::create(&log).unwrap()),
        None,
    )
    .await;
    let resp = ask(
        decisions,
        "/",
        &[
            ("x-request-id", "rid-decision"),
            ("x-forwarded-method", "DELETE"),
            ("x-forwarded-host", "api.example.test"),
            ("x-forwarded-uri", "/items/7?secret=q"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 401, "{resp:?}");
    let req = Request::builder()
        .uri("/items/7")
        .header("host", gw.addr.to_string())
        .header("x-request-id", "rid-proxy")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(client::send(gw.addr, Mode::H1, req).await.status(), 401);
    gw.terminate();
    assert_eq!(gw.wait_exit(Duration::from_secs(10)), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    let line = |rid: &str| -> serde_json::Value {
        let l = text
            .lines()
            .find(|l| l.contains("dpop_gateway::access") && l.contains(rid))
            .unwrap_or_else(|| panic!("no access line {rid}:\n{text}"));
        serde_json::from_str(l).unwrap()
    };
    let d = line("rid-decision");
    assert_eq!(d["listener"], "forward_auth", "{d}");
    assert_eq!(d["method"], "DELETE", "the described request: {d}");
    assert_eq!(d["path"], "/items/7", "{d}");
    assert_eq!(d["outcome"], "unauthorized", "{d}");
    assert_eq!(line("rid-proxy")["listener"], "proxy");
    assert!(!text.contains("secret=q"));
    assert!(upstream.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_renewed_on_success_reaches_the_client_through_nginx() {
    let gw = gateway(Options {
        dpop: format!("nonce:\n  enabled: true\n  secrets: [\"{NONCE_SECRET}\"]\n  lifetime: 3s"),
        ..Options::default()
    })
    .await;
    let Some(ing) = Ingress::start(
        Kind::Nginx,
        gw.forward_auth_addr.unwrap(),
        gw.upstream.addr(),
    )
    .await
    else {
        return;
    };
    let key = key();
    let token = gw.issuer.token_for(&key);
    let auth = format!("DPoP {token}");
    let url = ing.url("/api/items");
    let p = mint(&key, "GET", &url, &token, None);
    let resp = ing
        .send(
            "GET",
            "/api/items",
            &[("authorization", &auth), ("dpop", &p)],
        )
        .await;
    let nonce = header(&resp, "dpop-nonce").unwrap().to_owned();
    // Past half its lifetime (more than 1 s old, at most 3 s): still accepted, and renewed.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let p = mint(&key, "GET", &url, &token, Some(&nonce));
    let resp = ing
        .send(
            "GET",
            "/api/items",
            &[("authorization", &auth), ("dpop", &p)],
        )
        .await;
    assert_eq!(resp.status(), 200, "{resp:?}");
    let renewed = header(&resp, "dpop-nonce").expect("a renewed nonce on the 200");
    assert_ne!(renewed, nonce);
    assert_eq!(gw.upstream.requests().len(), 1);
    drop(ing);
    gw.shutdown().await;
}
