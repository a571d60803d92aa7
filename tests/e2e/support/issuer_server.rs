//! A local authorization server over a real socket, for the failure paths of remote keys and
//! introspection: RFC 8414 metadata, a JWKS that can be swapped at runtime, an RFC 7662
//! introspection endpoint, counters of every fetch, and a switch that makes it answer 500 or
//! drop connections. Plus [`RemoteGateway`]: a gateway whose `access_token` block points at it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use dpop_gateway::clock::SystemClock;
use dpop_gateway::config::Config;
use dpop_gateway::jose::sign::{self, PrivateJwk};
use dpop_gateway::jose::Algorithm;
use dpop_gateway::server::Running;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::client::{self, Mode};
use super::tls::TestPki;
use super::upstream::Upstream;
use super::{now, proof};

/// The audience of tokens the fixture issues.
pub const AUDIENCE: &str = "https://api.example.com";

/// The gateway's introspection credentials; the secret needs form-urlencoding (RFC 6749 §2.3.1).
pub const CLIENT_ID: &str = "gate way";
/// See [`CLIENT_ID`].
pub const CLIENT_SECRET: &str = "s3:cr/t+";

/// How the server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum AsMode {
    /// Normally.
    Up = 0,
    /// 500 to everything.
    Fail = 1,
    /// Closes every connection without answering.
    Drop = 2,
}

/// The fixture authorization server.
pub struct IssuerServer {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<AsState>,
}

struct AsState {
    issuer: String,
    /// The `issuer` the metadata names (normally `issuer`).
    metadata_issuer: Mutex<String>,
    jwks: Mutex<Value>,
    keys: Mutex<HashMap<String, PrivateJwk>>,
    active: Mutex<HashMap<String, Value>>,
    mode: AtomicU8,
    metadata_fetches: AtomicU64,
    jwks_fetches: AtomicU64,
    introspections: AtomicU64,
}

/// A gateway in front of a recording upstream, trusting an [`IssuerServer`].
pub struct RemoteGateway {
    /// The main listener.
    pub addr: SocketAddr,
    /// The admin listener.
    pub admin_addr: SocketAddr,
    /// The recording upstream.
    pub upstream: Upstream,
    running: Option<Running>,
}

// === impl IssuerServer ===

impl IssuerServer {
    /// Starts on `127.0.0.1:0` (plain HTTP) with one ES256 key, kid `key-1`.
    pub async fn start() -> IssuerServer {
        Self::start_with(None).await
    }

    /// As [`IssuerServer::start`], over TLS with `pki`'s server certificate when given (the
    /// issuer is then `https://127.0.0.1:PORT`).
    pub async fn start_with(pki: Option<&TestPki>) -> IssuerServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind AS");
        let addr = listener.local_addr().expect("AS address");
        let tls = pki.map(|pki| {
            let certs = CertificateDer::pem_file_iter(&pki.cert_path)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(&pki.key_path).unwrap();
            let config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        let issuer = format!("{scheme}://{addr}");
        let state = Arc::new(AsState {
            metadata_issuer: Mutex::new(issuer.clone()),
            issuer,
            jwks: Mutex::new(json!({ "keys": [] })),
            keys: Mutex::new(HashMap::new()),
            active: Mutex::new(HashMap::new()),
            mode: AtomicU8::new(AsMode::Up as u8),
            metadata_fetches: AtomicU64::new(0),
            jwks_fetches: AtomicU64::new(0),
            introspections: AtomicU64::new(0),
        });
        let server = IssuerServer { addr, state };
        server.publish(&["key-1"]);
        let state = Arc::clone(&server.state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (state, tls) = (Arc::clone(&state), tls.clone());
                tokio::spawn(async move {
                    if state.mode.load(Ordering::SeqCst) == AsMode::Drop as u8 {
                        return; // dropped: the client sees the connection close
                    }
                    let svc = service_fn(move |req| answer(req, Arc::clone(&state)));
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = match tls {
                        Some(tls) => {
                            let Ok(stream) = tls.accept(stream).await else {
                                return;
                            };
                            http.serve_connection(TokioIo::new(stream), svc).await
                        }
                        None => http.serve_connection(TokioIo::new(stream), svc).await,
                    };
                });
            }
        });
        server
    }

    /// `http://127.0.0.1:PORT` (or `https://`).
    pub fn issuer(&self) -> String {
        self.state.issuer.clone()
    }

    /// The `access_token` line a gateway needs to call this server: the plain-HTTP opt-in
    /// when it serves `http://` (see [`http_opt_in`]).
    pub fn opt_in(&self) -> &'static str {
        http_opt_in(&self.state.issuer)
    }

    /// Publishes exactly the keys named `kids` (made on first use) as the JWKS.
    pub fn publish(&self, kids: &[&str]) {
        let mut keys = self.state.keys.lock().unwrap();
        let jwks: Vec<Value> = kids
            .iter()
            .map(|kid| {
                let key = keys
                    .entry((*kid).to_owned())
                    .or_insert_with(|| PrivateJwk::generate(Algorithm::ES256).unwrap());
                let mut jwk = key.public_jwk();
                jwk.insert("kid".into(), json!(kid));
                jwk.insert("use".into(), json!("sig"));
                jwk.insert("alg".into(), json!("ES256"));
                Value::Object(jwk)
            })
            .collect();
        *self.state.jwks.lock().unwrap() = json!({ "keys": jwks });
    }

    /// Makes the metadata name another issuer.
    pub fn set_metadata_issuer(&self, issuer: &str) {
        *self.state.metadata_issuer.lock().unwrap() = issuer.to_owned();
    }

    /// Switches how it answers.
    pub fn set_mode(&self, mode: AsMode) {
        self.state.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// JWKS documents served.
    pub fn jwks_fetches(&self) -> u64 {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Metadata documents served.
    pub fn metadata_fetches(&self) -> u64 {
        self.state.metadata_fetches.load(Ordering::SeqCst)
    }

    /// Introspection requests received.
    pub fn introspections(&self) -> u64 {
        self.state.introspections.load(Ordering::SeqCst)
    }

    /// An `at+jwt` for `client` signed by the key `kid` (made if new, published or not).
    pub fn jwt(&self, kid: &str, client: &PrivateJwk) -> String {
        let mut keys = self.state.keys.lock().unwrap();
        let key = keys
            .entry(kid.to_owned())
            .or_insert_with(|| PrivateJwk::generate(Algorithm::ES256).unwrap());
        let now = now();
        let claims = json!({
            "iss": self.state.issuer,
            "aud": AUDIENCE,
            "sub": "alice",
            "client_id": "client-1",
            "iat": now,
            "exp": now + 300,
            "jti": sign::random_jti(),
            "cnf": { "jkt": client.thumbprint().to_string() },
        });
        let mut header = serde_json::Map::new();
        header.insert("typ".into(), json!("at+jwt"));
        header.insert("kid".into(), json!(kid));
        key.sign_jws(header, &claims).unwrap()
    }

    /// A new opaque token that introspects as active and bound to `jkt_of`.
    pub fn opaque(&self, jkt_of: &PrivateJwk) -> String {
        self.opaque_with(jkt_of, |_| {})
    }

    /// [`IssuerServer::opaque`] with its introspection answer changed by `edit`.
    pub fn opaque_with(&self, jkt_of: &PrivateJwk, edit: impl FnOnce(&mut Value)) -> String {
        let token = format!("opaque-{}", sign::random_jti());
        let now = now();
        let mut answer = json!({
            "active": true,
            "token_type": "DPoP",
            "iss": self.state.issuer,
            "aud": AUDIENCE,
            "sub": "alice",
            "client_id": "client-1",
            "scope": "read",
            "exp": now + 300,
            "cnf": { "jkt": jkt_of.thumbprint().to_string() },
        });
        edit(&mut answer);
        self.state
            .active
            .lock()
            .unwrap()
            .insert(token.clone(), answer);
        token
    }
}

async fn answer(
    req: Request<Incoming>,
    state: Arc<AsState>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    if state.mode.load(Ordering::SeqCst) == AsMode::Drop as u8 {
        // A service error makes hyper close the (possibly pooled) connection unanswered.
        return Err(std::io::Error::other("dropped"));
    }
    let reply = |status: StatusCode, body: Value| {
        Ok(Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("cache-control", "max-age=300")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap())
    };
    let path = req.uri().path().to_owned();
    match path.as_str() {
        "/.well-known/oauth-authorization-server" => {
            state.metadata_fetches.fetch_add(1, Ordering::SeqCst);
        }
        "/jwks" => {
            state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
        }
        "/introspect" => {
            state.introspections.fetch_add(1, Ordering::SeqCst);
        }
        _ => {}
    }
    if state.mode.load(Ordering::SeqCst) == AsMode::Fail as u8 {
        return reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "error": "down" }),
        );
    }
    match path.as_str() {
        "/.well-known/oauth-authorization-server" => reply(
            StatusCode::OK,
            json!({
                "issuer": *state.metadata_issuer.lock().unwrap(),
                "jwks_uri": format!("{}/jwks", state.issuer),
                "introspection_endpoint": format!("{}/introspect", state.issuer),
            }),
        ),
        "/jwks" => reply(StatusCode::OK, state.jwks.lock().unwrap().clone()),
        "/introspect" => {
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("gate+way:s3%3Acr%2Ft%2B")
            );
            let authorized = req
                .headers()
                .get("authorization")
                .is_some_and(|v| v.as_bytes() == expected.as_bytes());
            let body = req.into_body().collect().await.unwrap().to_bytes();
            if !authorized {
                return reply(
                    StatusCode::UNAUTHORIZED,
                    json!({ "error": "invalid_client" }),
                );
            }
            let form = String::from_utf8_lossy(&body).into_owned();
            let token = form
                .split('&')
                .find_map(|kv| kv.strip_prefix("token="))
                .unwrap_or_default()
                .to_owned();
            let active = state.active.lock().unwrap().get(&token).cloned();
            reply(
                StatusCode::OK,
                active.unwrap_or_else(|| json!({ "active": false })),
            )
        }
        _ => reply(StatusCode::NOT_FOUND, json!({ "error": "not_found" })),
    }
}

// === impl RemoteGateway ===

impl RemoteGateway {
    /// A gateway whose `access_token` block is `access_token` (YAML, indented two spaces).
    pub async fn start(access_token: &str) -> RemoteGateway {
        Self::start_routed(access_token, "\n  - { path_prefix: \"/\", auth: dpop }").await
    }

    /// [`RemoteGateway::start`] with these `routes` entries (YAML list items, each starting
    /// with a newline and two spaces).
    pub async fn start_routed(access_token: &str, routes: &str) -> RemoteGateway {
        let upstream = Upstream::start().await;
        let yaml = format!(
            r#"
listen: "127.0.0.1:0"
admin_listen: "127.0.0.1:0"
shutdown_timeout: 5s
upstream:
  url: "{}"
routes:{routes}
replay_cache:
  backend: memory
access_token:
{access_token}
"#,
            upstream.url()
        );
        let config = Config::from_yaml_str(&yaml, "<test>", &HashMap::new())
            .unwrap_or_else(|e| panic!("test config: {e}\n{yaml}"));
        let running = Running::start(config, Arc::new(SystemClock))
            .await
            .expect("gateway starts");
        RemoteGateway {
            addr: running.addr,
            admin_addr: running.admin_addr,
            upstream,
            running: Some(running),
        }
    }

    /// A gateway discovering the keys of `server` from its metadata.
    pub async fn discovering(server: &IssuerServer) -> RemoteGateway {
        Self::start(&format!(
            "  issuer: \"{}\"\n  audience: \"{AUDIENCE}\"{}",
            server.issuer(),
            server.opt_in()
        ))
        .await
    }

    /// A gateway introspecting opaque tokens at `server`.
    pub async fn introspecting(server: &IssuerServer) -> RemoteGateway {
        Self::introspecting_routed(server, "\n  - { path_prefix: \"/\", auth: dpop }").await
    }

    /// [`RemoteGateway::introspecting`] with these `routes` entries.
    pub async fn introspecting_routed(server: &IssuerServer, routes: &str) -> RemoteGateway {
        Self::start_routed(&format!(
            "  format: introspection\n  issuer: \"{iss}\"\n  audience: \"{AUDIENCE}\"\n  introspection:\n    endpoint: \"{iss}/introspect\"\n    client_id: \"{CLIENT_ID}\"\n    client_secret: \"{CLIENT_SECRET}\"\n    cache_ttl: 60s{opt_in}",
            iss = server.issuer(),
            opt_in = server.opt_in()
        ), routes)
        .await
    }

    /// `GET /resource` with `token` (DPoP scheme) and a fresh proof by `key`.
    pub async fn get(&self, key: &PrivateJwk, token: &str) -> Response<Bytes> {
        self.get_path(key, token, "/resource").await
    }

    /// `GET path` with `token` (DPoP scheme) and a fresh proof by `key`.
    pub async fn get_path(&self, key: &PrivateJwk, token: &str, path: &str) -> Response<Bytes> {
        let url = format!("http://{}{path}", self.addr);
        let p = proof(key, "GET", &url, Some(token));
        let req = Request::builder()
            .uri(path)
            .header("host", self.addr.to_string())
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", p)
            .body(Full::new(Bytes::new()))
            .unwrap();
        client::send(self.addr, Mode::H1, req).await
    }

    /// The status of the admin `/readyz`.
    pub async fn readyz(&self) -> u16 {
        client::admin_get(self.admin_addr, "/readyz")
            .await
            .status()
            .as_u16()
    }

    /// The admin `/metrics` exposition.
    pub async fn metrics(&self) -> String {
        let resp = client::admin_get(self.admin_addr, "/metrics").await;
        String::from_utf8_lossy(resp.body()).into_owned()
    }

    /// Stops the gateway.
    pub async fn shutdown(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

/// `"\n  allow_insecure_http: true"` for an `http://` authorization server (on loopback in
/// these tests), nothing for `https://`: the gateway refuses plain HTTP there without it.
pub fn http_opt_in(issuer: &str) -> &'static str {
    if issuer.starts_with("http://") {
        "\n  allow_insecure_http: true"
    } else {
        ""
    }
}

/// Polls the async `f` every 100 ms until it holds or `secs` pass.
pub async fn eventually<F, Fut>(what: &str, secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..secs * 10 {
        if f().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("not true within {secs} s: {what}");
}
