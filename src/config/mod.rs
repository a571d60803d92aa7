//! The gateway's configuration: parsed strictly from YAML, validated once, then trusted.
//!
//! `load(path)` reads a file; `from_yaml_str(text, origin, env)` does the rest, so tests feed
//! inline YAML and a `HashMap` for `${NAME}` substitution. Every error is a [`ConfigError`]
//! rendered as `file:line:column: message` (1-based), the message starting with the setting's
//! dotted path (`dpop.proof_max_age: invalid duration "5 minutes" (use 500ms, 60s, 5m or 1h)`).
//!
//! The stages, each in its own module:
//! - `raw`: serde mirror of the YAML, unknown keys refused; each scalar is substituted (`env`)
//!   and parsed on its own, so serde_yaml reports the value's own line and column;
//! - `validate`: defaults, required settings and rules between settings, pointing at the key
//!   that decides (found in the text by `error::locate`, which falls back to the parent key);
//! - `masked`: the resolved configuration back as YAML for `check`, secrets as `***`.
//!
//! `${NAME}` is replaced inside parsed scalars only (a value cannot add YAML structure) and
//! works for every setting, numbers, durations and booleans included; `$${` writes a literal
//! `${`. Durations are one integer and one unit: `500ms`, `60s`, `5m`, `1h`.

mod duration;
mod env;
mod error;
mod masked;
mod raw;
mod scalars;
mod validate;
mod yaml;

pub use env::{EnvLookup, ProcessEnv};
pub use error::ConfigError;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;

use crate::jose::AlgorithmSet;

/// A value that must never be printed: `Debug` and `check` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// The whole, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `listen`: the main listener (default `0.0.0.0:8443`).
    pub listen: SocketAddr,
    /// `tls`: when set, the main listener speaks TLS (rustls) with ALPN h2 and http/1.1.
    pub tls: Option<TlsConfig>,
    /// `admin_listen`: plain HTTP for /metrics, /healthz, /readyz (default `127.0.0.1:9090`).
    pub admin_listen: SocketAddr,
    /// `shutdown_timeout` (default 30s).
    pub shutdown_timeout: Duration,
    /// `public_url`: the base URL clients use (scheme://authority, no path); wins for `htu`.
    pub public_url: Option<PublicUrl>,
    /// `trust_forwarded_headers` (default false).
    pub trust_forwarded_headers: bool,
    /// `resource_metadata.enabled` (default true).
    pub resource_metadata: bool,
    /// `cors.allow_origins` (default empty: no `Access-Control-Allow-Origin` on refusals).
    pub cors_allow_origins: Vec<String>,
    /// `cors.preflight`, `cors.allow_headers`, `cors.max_age`: who answers CORS preflights.
    pub cors: CorsConfig,
    /// `upstream`: the default upstream (named `default` in metrics and logs).
    pub upstream: UpstreamConfig,
    /// `upstreams`: more upstreams by name, in the order written.
    pub upstreams: Vec<NamedUpstream>,
    /// `routes`, in order (default: one route `/` with `auth: dpop`).
    pub routes: Vec<RouteConfig>,
    /// `dpop`.
    pub dpop: DpopConfig,
    /// `replay_cache`.
    pub replay_cache: ReplayCacheConfig,
    /// `access_token`: one entry per issuer (written as one mapping, or a list), never empty;
    /// at most one uses introspection.
    pub access_tokens: Vec<AccessTokenConfig>,
    /// `forward`.
    pub forward: ForwardConfig,
    /// `limits`.
    pub limits: Limits,
    /// `paths`.
    pub paths: PathsConfig,
    /// `forward_auth`: the decision listener for an existing ingress, when set.
    pub forward_auth: Option<ForwardAuthConfig>,
    /// `explorer`.
    pub explorer: ExplorerConfig,
}

/// `forward_auth`: a listener that answers every request with a decision and forwards nothing.
#[derive(Clone, Debug)]
pub struct ForwardAuthConfig {
    /// `forward_auth.listen`: plain HTTP; loopback unless `allow_non_loopback`.
    pub listen: SocketAddr,
    /// `forward_auth.path_prefix`: for a decision request without `X-Forwarded-Uri` (Envoy
    /// `ext_authz`, whose `path_prefix` is prepended to the original path), the prefix to
    /// remove (whole segments); `None`: the path is the original's as it is.
    pub path_prefix: Option<String>,
    /// `forward_auth.allow_non_loopback` (default false): the operator vouches that only the
    /// ingress reaches a non-loopback `listen` (a NetworkPolicy, a firewall).
    pub allow_non_loopback: bool,
}

/// `explorer`: the live decision explorer on the admin listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExplorerConfig {
    /// `explorer.enabled` (default false): record decisions and serve `/explorer`.
    pub enabled: bool,
    /// `explorer.decisions` (default 200, 1 to 10000): how many of the last decisions are kept.
    pub decisions: usize,
}

/// `cors` besides `allow_origins`: who answers CORS preflights, and with what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorsConfig {
    /// `cors.preflight` (default `forward`).
    pub preflight: CorsPreflight,
    /// `cors.allow_headers` (default `[content-type]`; `answer` only): the request headers a
    /// preflight answer allows besides `Authorization` and `DPoP`, which it always allows. A
    /// fixed list, not an echo of what the browser asked: the answer is the same for every
    /// preflight, and a header nobody listed is refused by the browser, not sent upstream.
    pub allow_headers: Vec<HeaderName>,
    /// `cors.max_age` (default 600s; `answer` only): `Access-Control-Max-Age`, how long a
    /// browser may reuse the answer (Chromium caps it at 2 h).
    pub max_age: Duration,
}

/// `cors.preflight`: who answers a CORS preflight (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`, no credentials, no body).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CorsPreflight {
    /// `forward`: sent to the upstream without a proof; the upstream owns its CORS policy.
    #[default]
    Forward,
    /// `answer`: the gateway answers it (204) and the upstream never sees it; forwarded
    /// responses to allowed origins get `Access-Control-Allow-Origin` when the upstream sent
    /// none (a CORS-unaware legacy API). Needs `cors.allow_origins`.
    Answer,
}

/// `tls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// `public_url`, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl {
    /// `http` or `https`, lower case.
    pub scheme: String,
    /// `host[:port]` as written (normalised later with the request path).
    pub authority: String,
}

/// One entry of `upstreams`.
#[derive(Clone, Debug)]
pub struct NamedUpstream {
    /// Its key: letters, digits, `_` and `-` (the `upstream` label of its metrics).
    pub name: String,
    /// Its settings, shaped like `upstream`.
    pub config: UpstreamConfig,
}

/// The name the default upstream (`upstream`) goes by in routes, metrics and logs.
pub const DEFAULT_UPSTREAM: &str = "default";

/// `upstream` (and each of `upstreams`).
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// `upstream.url`: `http(s)://host[:port]` and an optional path prefix, prepended to
    /// request paths; stored without a trailing `/`, so `path()` is `/` or e.g. `/api`.
    pub url: http::Uri,
    /// `upstream.protocol` (default `auto`).
    pub protocol: UpstreamProtocol,
    /// `upstream.tls`: for `https://` URLs (always set for them, defaults filled in).
    pub tls: Option<UpstreamTls>,
    /// `upstream.connect_timeout` (default 2s).
    pub connect_timeout: Duration,
    /// `upstream.request_timeout` (default 30s): until response headers.
    pub request_timeout: Duration,
    /// `upstream.readiness` (default `none`): whether `/readyz` also waits for the upstream.
    pub readiness: UpstreamReadiness,
}

/// `upstream.protocol`: the HTTP version spoken to the upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// `auto`: over TLS, ALPN offers `h2` and `http/1.1` and the upstream picks; plain
    /// `http://` is HTTP/1.1.
    Auto,
    /// `http1`: HTTP/1.1 only.
    Http1,
    /// `http2`: HTTP/2 only: ALPN `h2` over TLS, prior knowledge (h2c) over plain `http://`.
    Http2,
}

/// `upstream.tls`: how an `https://` upstream is trusted and what the gateway presents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamTls {
    /// `ca_file`: PEM certificates trusted besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// `server_name`: the name sent (SNI) and verified; default: the URL's host.
    pub server_name: Option<String>,
    /// `client_cert` and `client_key`: a PEM chain and key for mTLS, re-read when they change.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// `upstream.readiness`: the check whose failure makes `/readyz` answer 503 `upstream not
/// ready`. Run every 2 s in the background (never per probe), bounded by `connect_timeout`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamReadiness {
    /// `none`: the upstream does not affect readiness.
    None,
    /// `tcp`: a TCP connection to the upstream's host and port opens.
    Tcp,
    /// `http:/path`: `GET /path` on the upstream answers 200-399.
    Http {
        /// The path (and query) requested, starting with `/`; not under the URL's prefix.
        path: String,
    },
}

/// One entry of `routes`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteConfig {
    /// `path_prefix`: matched against the request path, first match wins.
    pub path_prefix: String,
    /// `methods`: the route matches only these methods (`None`: every method). Routes
    /// sharing a prefix may differ by method; a method none of them lists is 405.
    pub methods: Option<Vec<http::Method>>,
    /// `auth`.
    pub auth: AuthMode,
    /// `nonce`: overrides `dpop.nonce.enabled` for this route.
    pub nonce: Option<bool>,
    /// `upstream`: `None` for the default upstream, else the index in `Config::upstreams`.
    pub upstream: Option<usize>,
    /// `strip_prefix` (default false): the route's prefix is removed before the upstream's
    /// own prefix is added.
    pub strip_prefix: bool,
    /// `issuers`: only tokens of these issuers are accepted here (`None`: any configured).
    pub issuers: Option<Vec<String>>,
    /// `require`: what the token must say, checked after it is verified and bound.
    pub require: Require,
    /// `max_body_bytes`: the largest request body the route forwards (`None`:
    /// `limits.max_body_bytes`). A declared `Content-Length` over it is 413 before anything
    /// is sent; a streamed body that grows past it is cut off (the upstream never gets it whole).
    pub max_body_bytes: Option<u64>,
}

/// `routes[].require`: authorization rules on a verified, bound token (403
/// `insufficient_scope` when one fails).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Require {
    /// `scopes`: every one must be in the token's `scope` (space-separated) or `scp` (array).
    pub scopes: Vec<String>,
    /// `claims`: each claim must equal the value, or, when the claim is an array, contain it;
    /// by claim name.
    pub claims: Vec<(String, String)>,
}

/// `routes[].auth`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AuthMode {
    /// `dpop`: a DPoP-bound token and a valid proof are required (the default route's).
    #[default]
    Dpop,
    /// `dpop_or_bearer`: as `dpop`, or an unbound token with the Bearer scheme.
    DpopOrBearer,
    /// `none`: forwarded without checks.
    None,
}

/// `dpop`.
#[derive(Clone, Debug)]
pub struct DpopConfig {
    /// `dpop.algorithms` (default all six: ES256, ES384, EdDSA, Ed25519, RS256, PS256).
    pub algorithms: AlgorithmSet,
    /// `dpop.proof_max_age` (default 60s).
    pub proof_max_age: Duration,
    /// `dpop.clock_skew` (default 5s).
    pub clock_skew: Duration,
    /// `dpop.require_ath` (default true).
    pub require_ath: bool,
    /// `dpop.nonce`.
    pub nonce: NonceConfig,
}

/// `dpop.nonce`.
#[derive(Clone, Debug)]
pub struct NonceConfig {
    /// `enabled` (default false).
    pub enabled: bool,
    /// `secrets`: the first issues, all verify. Required (non-empty) when enabled or when any
    /// route sets `nonce: true`.
    pub secrets: Vec<Secret>,
    /// `lifetime` (default 5m).
    pub lifetime: Duration,
}

/// `replay_cache`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayCacheConfig {
    /// `backend` and its settings.
    pub backend: ReplayBackend,
    /// `per_key_limit`: live entries one proof key may hold (0 or unset: 100 for each second
    /// of `proof_max_age + clock_skew`, 6,500 with the defaults).
    pub per_key_limit: u64,
    /// `min_replicas` (default 0; Redis backends): replicas that must acknowledge an insert
    /// (`WAIT`) before it counts.
    pub min_replicas: u64,
    /// `on_error` (default reject).
    pub on_error: OnError,
}

/// `replay_cache.backend`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayBackend {
    /// `memory` with `capacity` (default 1,000,000).
    Memory {
        /// Live entries at most.
        capacity: usize,
    },
    /// `redis`.
    Redis {
        /// `redis_url` (secret: may hold a password).
        url: Secret,
        /// `key_prefix` (default `dpop-gateway:jti:`).
        key_prefix: String,
        /// `timeout` (default 250ms).
        timeout: Duration,
    },
    /// `redis_cluster`.
    RedisCluster {
        /// `redis_urls`: seed nodes (secret: may hold passwords).
        urls: Vec<Secret>,
        /// `key_prefix` (default `dpop-gateway:jti:`).
        key_prefix: String,
        /// `timeout` (default 250ms).
        timeout: Duration,
    },
    /// `redis_sentinel`.
    RedisSentinel {
        /// `redis_urls`: the sentinels (secret: may hold passwords).
        urls: Vec<Secret>,
        /// `sentinel_master`: the monitored master's name.
        master: String,
        /// `key_prefix` (default `dpop-gateway:jti:`).
        key_prefix: String,
        /// `timeout` (default 250ms).
        timeout: Duration,
    },
}

/// `replay_cache.on_error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// Fail closed: 503.
    Reject,
    /// Fail open: forward, log and count.
    Allow,
}

/// `access_token`.
#[derive(Clone, Debug)]
pub struct AccessTokenConfig {
    /// `format` (default jwt).
    pub format: TokenFormat,
    /// `issuer` (required).
    pub issuer: String,
    /// `audience` (required for jwt).
    pub audience: Option<String>,
    /// Where the JWT signing keys come from.
    pub keys: KeySource,
    /// `algorithms` (default ES256, RS256, PS256, EdDSA, Ed25519).
    pub algorithms: AlgorithmSet,
    /// `leeway` for exp/nbf (default 30s).
    pub leeway: Duration,
    /// `require_typ` (default true): the JWT header `typ` must be `at+jwt` (RFC 9068 §4). Set
    /// false only for authorization servers that issue `JWT`-typed access tokens; the risk is
    /// that an ID token or another JWT signed by the same keys is accepted as an access token.
    pub require_typ: bool,
    /// `introspection` (required when format is introspection).
    pub introspection: Option<IntrospectionConfig>,
    /// `ca_file` (optional): PEM certificates trusted, besides the system roots, for https to
    /// the authorization server (metadata, JWKS, introspection): for a private CA.
    pub ca_file: Option<PathBuf>,
    /// `allow_insecure_http` (default false): accept `http://` for `jwks_uri`, the discovery
    /// issuer and the introspection endpoint. Only for an authorization server reached inside
    /// the cluster; the risk is that anyone on the path can serve other keys or answer
    /// "active" for any token.
    pub allow_insecure_http: bool,
}

/// `access_token.format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenFormat {
    /// JWT access tokens (RFC 9068).
    Jwt,
    /// Opaque tokens checked by RFC 7662 introspection.
    Introspection,
}

/// Where JWT keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `jwks_file`.
    File(PathBuf),
    /// `jwks_uri`.
    Uri(String),
    /// Neither: discovered from the issuer's metadata.
    Discovery,
}

/// `access_token.introspection`.
#[derive(Clone, Debug)]
pub struct IntrospectionConfig {
    /// `endpoint`.
    pub endpoint: String,
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`.
    pub client_secret: Secret,
    /// `cache_ttl` (default 60s).
    pub cache_ttl: Duration,
}

/// `forward`.
#[derive(Clone, Debug)]
pub struct ForwardConfig {
    /// `authorization` (default bearer).
    pub authorization: ForwardAuthorization,
    /// `identity_headers`.
    pub identity_headers: IdentityHeaders,
}

/// `forward.authorization`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardAuthorization {
    /// Rewrite to `Bearer <token>` (legacy APIs understand it).
    Bearer,
    /// Forward as received.
    Keep,
    /// Remove.
    Strip,
}

/// `forward.identity_headers`: each is optional (null disables it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityHeaders {
    /// `subject` (default X-Auth-Subject).
    pub subject: Option<HeaderName>,
    /// `client_id` (default X-Auth-Client-Id).
    pub client_id: Option<HeaderName>,
    /// `scope` (default X-Auth-Scope).
    pub scope: Option<HeaderName>,
    /// `jkt` (default X-DPoP-Jkt).
    pub jkt: Option<HeaderName>,
    /// `issuer` (default X-Auth-Issuer): the issuer whose entry validated the token.
    pub issuer: Option<HeaderName>,
}

/// `paths`: how request paths are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathsConfig {
    /// `encoded_slashes` (default reject).
    pub encoded_slashes: EncodedSlashes,
}

/// `paths.encoded_slashes`: what a `%2F` or `%5C` in a request path does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EncodedSlashes {
    /// 400 `invalid_request`: a server behind the gateway may decode it into a separator.
    #[default]
    Reject,
    /// Forwarded encoded; part of its segment for routing (a route its decoded form would
    /// reach is used when stricter).
    Keep,
}

/// `limits`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `max_proof_bytes` (default 8192).
    pub max_proof_bytes: usize,
    /// `max_header_bytes` (default 65536).
    pub max_header_bytes: usize,
    /// `header_read_timeout` (default 10s).
    pub header_read_timeout: Duration,
    /// `idle_timeout` (default 60s).
    pub idle_timeout: Duration,
    /// `max_connections` (default 10000).
    pub max_connections: usize,
    /// `max_concurrent_streams` (default 100).
    pub max_concurrent_streams: u32,
    /// `max_body_bytes` (default unset: no limit): the request body limit of every route that
    /// sets none (and of paths no route matches).
    pub max_body_bytes: Option<u64>,
}

// === impl Secret ===

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The value itself: call only where it is used, never to log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

// === impl Config ===

impl Config {
    /// Reads and validates the file at `path`, with `${NAME}` from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let (origin, text) = Config::read_text(path)?;
        Config::from_yaml_str(&text, &origin, &ProcessEnv)
    }

    /// The file at `path` as text, and the origin its errors name.
    pub(crate) fn read_text(path: &Path) -> Result<(String, String), ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            line: 1,
            column: 1,
            message: format!("cannot read the configuration: {e}"),
        })?;
        Ok((origin, text))
    }

    /// Parses and validates `text`; `origin` names it in errors (a path, or `<inline>`).
    pub fn from_yaml_str(
        text: &str,
        origin: &str,
        env: &dyn EnvLookup,
    ) -> Result<Config, ConfigError> {
        let raw = raw::parse(text, env).map_err(|e| ConfigError::from_yaml(origin, text, &e))?;
        validate::resolve(raw, text, origin)
    }

    /// The resolved configuration as YAML, secrets shown as `***` (what `check` prints).
    pub fn to_masked_yaml(&self) -> String {
        masked::to_masked_yaml(self)
    }
}

#[cfg(test)]
mod tests;
