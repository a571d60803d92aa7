//! A gateway started in-process on 127.0.0.1:0 in front of a recording [`Upstream`], with a
//! local token issuer whose JWKS the gateway reads from a file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use dpop_gateway::clock::SystemClock;
use dpop_gateway::config::Config;
use dpop_gateway::jose::sign::{self, PrivateJwk, ProofClaims};
use dpop_gateway::jose::Algorithm;
use dpop_gateway::server::Running;
use http::{Request, Response};
use http_body_util::Full;
use serde_json::{json, Value};

use super::client::{self, Mode};
use super::upstream::Upstream;
use super::{now, temp_dir};

/// The local authorization server: signs access tokens with an ES256 key.
pub struct Issuer {
    /// The signing key (kid `test-issuer-1`).
    pub key: PrivateJwk,
    /// Path of the JWKS file the gateway reads.
    pub jwks_path: PathBuf,
}

/// What goes into the config besides the fixed parts.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `routes:` block (YAML list).
    pub routes: String,
    /// `dpop.algorithms`.
    pub dpop_algorithms: String,
    /// Extra lines under `dpop:`.
    pub dpop: String,
    /// `replay_cache.capacity`.
    pub replay_capacity: usize,
    /// Extra top-level YAML.
    pub extra: String,
    /// Override the upstream URL (default: the recording upstream).
    pub upstream_url: Option<String>,
    /// `upstream.request_timeout`.
    pub request_timeout: String,
    /// Extra lines under `upstream:`.
    pub upstream: String,
    /// Extra lines under `access_token:`.
    pub access_token: String,
    /// The whole `replay_cache:` block, replacing the memory one.
    pub replay_cache: Option<String>,
    /// `listen` (default `127.0.0.1:0`).
    pub listen: String,
    /// `admin_listen` (default `127.0.0.1:0`).
    pub admin_listen: String,
}

/// A running gateway with its upstream and issuer.
pub struct TestGateway {
    /// The main listener.
    pub addr: SocketAddr,
    /// The admin listener.
    pub admin_addr: SocketAddr,
    /// The decision listener (`forward_auth.listen`), when configured.
    pub forward_auth_addr: Option<SocketAddr>,
    /// The recording upstream.
    pub upstream: Upstream,
    /// The token issuer.
    pub issuer: Arc<Issuer>,
    /// `http` or `https`.
    pub scheme: &'static str,
    running: Option<Running>,
}

/// A request under construction.
pub struct Call<'a> {
    gw: &'a TestGateway,
    req: http::request::Builder,
    body: Bytes,
    mode: Mode,
}

// === impl Issuer ===

impl Issuer {
    /// A fresh issuer with its JWKS written to a temp file.
    pub fn new() -> Issuer {
        let key = PrivateJwk::generate(Algorithm::ES256).expect("issuer key");
        let mut jwk = key.public_jwk();
        jwk.insert("kid".into(), json!("test-issuer-1"));
        jwk.insert("use".into(), json!("sig"));
        jwk.insert("alg".into(), json!("ES256"));
        let jwks_path = temp_dir("jwks").join("jwks.json");
        std::fs::write(&jwks_path, json!({ "keys": [jwk] }).to_string()).expect("write jwks");
        Issuer { key, jwks_path }
    }

    /// The default claims of a token bound to `jkt` (or unbound when `None`).
    pub fn claims(&self, jkt: Option<String>) -> Value {
        let now = now();
        let mut c = json!({
            "iss": "https://as.example.com",
            "aud": "https://api.example.com",
            "sub": "alice",
            "client_id": "client-1",
            "scope": "read write",
            "iat": now,
            "exp": now + 300,
            "jti": sign::random_jti(),
        });
        if let Some(jkt) = jkt {
            c["cnf"] = json!({ "jkt": jkt });
        }
        c
    }

    /// Signs `claims` as an `at+jwt` access token.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(claims, "at+jwt", Some("test-issuer-1"))
    }

    /// Signs with a chosen `typ` and `kid`.
    pub fn sign_with_header(&self, claims: &Value, typ: &str, kid: Option<&str>) -> String {
        let mut header = serde_json::Map::new();
        header.insert("typ".into(), json!(typ));
        if let Some(kid) = kid {
            header.insert("kid".into(), json!(kid));
        }
        self.key.sign_jws(header, claims).expect("sign token")
    }

    /// A valid token bound to `client`'s key.
    pub fn token_for(&self, client: &PrivateJwk) -> String {
        self.sign(&self.claims(Some(client.thumbprint().to_string())))
    }
}

// === impl Options ===

impl Default for Options {
    fn default() -> Self {
        Options {
            routes: r#"
  - { path_prefix: "/healthz", auth: none }
  - { path_prefix: "/open", auth: none }
  - { path_prefix: "/mixed", auth: dpop_or_bearer }
  - { path_prefix: "/", auth: dpop }"#
                .into(),
            dpop_algorithms: "[ES256, ES384, EdDSA, RS256, PS256]".into(),
            dpop: String::new(),
            replay_capacity: 100_000,
            extra: String::new(),
            upstream_url: None,
            request_timeout: "5s".into(),
            upstream: String::new(),
            access_token: String::new(),
            replay_cache: None,
            listen: "127.0.0.1:0".into(),
            admin_listen: "127.0.0.1:0".into(),
        }
    }
}

// === impl TestGateway ===

impl TestGateway {
    /// Starts a gateway with default options.
    pub async fn start() -> TestGateway {
        Self::start_with(Options::default()).await
    }

    /// Starts a gateway with `opts`.
    pub async fn start_with(opts: Options) -> TestGateway {
        let upstream = Upstream::start().await;
        let issuer = Arc::new(Issuer::new());
        Self::start_full(opts, upstream, issuer).await
    }

    /// Starts a gateway with a given upstream and issuer.
    pub async fn start_full(opts: Options, upstream: Upstream, issuer: Arc<Issuer>) -> TestGateway {
        let yaml = config_yaml(&opts, &upstream, &issuer);
        let config = Config::from_yaml_str(&yaml, "<test>", &std::collections::HashMap::new())
            .unwrap_or_else(|e| panic!("test config: {e}\n{yaml}"));
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let running = Running::start(config, Arc::new(SystemClock))
            .await
            .expect("gateway starts");
        TestGateway {
            addr: running.addr,
            admin_addr: running.admin_addr,
            forward_auth_addr: running.forward_auth_addr,
            upstream,
            issuer,
            scheme,
            running: Some(running),
        }
    }

    /// `http://127.0.0.1:PORT/path` (what a client's `htu` names).
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, path)
    }

    /// Starts a request.
    pub fn call(&self, method: &str, path: &str) -> Call<'_> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        Call {
            gw: self,
            req,
            body: Bytes::new(),
            mode: Mode::H1,
        }
    }

    /// A request with a fresh valid proof and token for `key`.
    pub fn authorized(&self, key: &PrivateJwk, method: &str, path: &str) -> Call<'_> {
        let token = self.issuer.token_for(key);
        let proof = proof(key, method, &self.url(path), Some(&token));
        self.call(method, path).dpop_token(&token).proof(&proof)
    }

    /// The admin `/metrics` text.
    pub async fn metrics(&self) -> String {
        let resp = client::admin_get(self.admin_addr, "/metrics").await;
        String::from_utf8_lossy(resp.body()).into_owned()
    }

    /// The status and body of an admin GET (`/readyz`, `/healthz`).
    pub async fn admin_text(&self, path: &str) -> (u16, String) {
        let req = Request::builder()
            .uri(path)
            .header("host", "admin")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let resp = client::send(self.admin_addr, Mode::H1, req).await;
        (
            resp.status().as_u16(),
            String::from_utf8_lossy(resp.body()).into_owned(),
        )
    }

    /// Stops the gateway (drains).
    pub async fn shutdown(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

/// The config file text for `opts` (also used to run the gateway binary).
pub fn config_yaml(opts: &Options, upstream: &Upstream, issuer: &Issuer) -> String {
    let upstream_url = opts.upstream_url.clone().unwrap_or_else(|| upstream.url());
    format!(
        r#"
listen: "{listen}"
admin_listen: "{admin_listen}"
shutdown_timeout: 5s
upstream:
  url: "{upstream_url}"
  connect_timeout: 1s
  request_timeout: {rt}
{upstream}
routes:{routes}
dpop:
  algorithms: {algs}
  proof_max_age: 60s
  clock_skew: 5s
{dpop}
{replay}
access_token:
  format: jwt
  issuer: "https://as.example.com"
  audience: "https://api.example.com"
  jwks_file: "{jwks}"
{at}
{extra}
"#,
        rt = opts.request_timeout,
        upstream = indent(&opts.upstream),
        routes = opts.routes,
        algs = opts.dpop_algorithms,
        dpop = indent(&opts.dpop),
        listen = opts.listen,
        admin_listen = opts.admin_listen,
        replay = opts.replay_cache.clone().unwrap_or_else(|| format!(
            "replay_cache:\n  backend: memory\n  capacity: {}",
            opts.replay_capacity
        )),
        jwks = issuer.jwks_path.display(),
        at = indent(&opts.access_token),
        extra = opts.extra,
    )
}

fn indent(block: &str) -> String {
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A fresh proof for `method` `url` (iat now, random jti), with `ath` when a token is given.
pub fn proof(key: &PrivateJwk, method: &str, url: &str, token: Option<&str>) -> String {
    key.mint_proof(&ProofClaims {
        htm: method.into(),
        htu: url.into(),
        iat: now(),
        jti: sign::random_jti(),
        access_token: token.map(str::to_owned),
        nonce: None,
    })
    .expect("mint proof")
}

// === impl Call ===

impl Call<'_> {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.req = self.req.header(name, value);
        self
    }

    /// Sets a header, replacing what is there (the default `Host` included).
    pub fn set_header(mut self, name: &str, value: &str) -> Self {
        if let (Some(headers), Ok(name), Ok(value)) = (
            self.req.headers_mut(),
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
        self
    }

    /// `Authorization: DPoP <token>`.
    pub fn dpop_token(self, token: &str) -> Self {
        self.header("authorization", &format!("DPoP {token}"))
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// `DPoP: <proof>`.
    pub fn proof(self, proof: &str) -> Self {
        self.header("dpop", proof)
    }

    /// The request body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The connection kind.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Sends and collects the response.
    pub async fn send(self) -> Response<Bytes> {
        let req = self.req.body(Full::new(self.body)).expect("request");
        client::send(self.gw.addr, self.mode, req).await
    }
}

/// The `error` of a refusal's `WWW-Authenticate` challenge, if any.
pub fn www_error(resp: &Response<Bytes>) -> Option<String> {
    let v = resp.headers().get("www-authenticate")?.to_str().ok()?;
    let start = v.find("error=\"")? + "error=\"".len();
    let end = v[start..].find('"')? + start;
    Some(v[start..end].to_owned())
}

/// The JSON body of a refusal.
pub fn json_body(resp: &Response<Bytes>) -> Value {
    serde_json::from_slice(resp.body()).unwrap_or(Value::Null)
}
