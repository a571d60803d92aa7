//! The serde mirror of the YAML: every section `#[serde(deny_unknown_fields)]`, every setting
//! optional here (defaults and required settings are decided in `validate`, which can name them).
//!
//! Every scalar is a [`Scalar<T>`]: it reads the scalar's text as written (whatever YAML would
//! resolve it to, so `8192`, `"8192"` and `${N}` all work), `${NAME}` already substituted by the
//! YAML layer, and parses it with [`ScalarValue::parse`]; a failure is reported at the value,
//! under the setting's dotted path. Rules that involve one value live here; rules that compare
//! values live in `validate`. No I/O.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::env::EnvLookup;
use super::yaml::{self, NodeDe, YamlError};
use super::{
    duration, AuthMode, EncodedSlashes, ForwardAuthorization, OnError, PublicUrl, Secret,
    TokenFormat, UpstreamReadiness,
};
use crate::jose::Algorithm;

/// A scalar setting parsed from its text after `${NAME}` substitution.
pub(crate) trait ScalarValue: Sized {
    /// What the setting takes, for serde's "invalid type" message (e.g. a list given instead).
    const EXPECTING: &'static str;

    /// Parses the substituted text; the error is the message after the setting's name.
    fn parse(text: &str) -> Result<Self, String>;
}

/// A scalar setting of type `T`.
#[derive(Debug)]
pub(crate) struct Scalar<T>(pub(crate) T);

/// A non-empty string.
#[derive(Debug)]
pub(crate) struct Text(pub(crate) String);

/// A non-empty secret string (never echoed in messages).
#[derive(Debug)]
pub(crate) struct SecretText(pub(crate) Secret);

/// `true` or `false`.
#[derive(Debug)]
pub(crate) struct Flag(pub(crate) bool);

/// A duration; `ZERO_OK` says whether `0s` is meaningful for the setting.
#[derive(Debug)]
pub(crate) struct Dur<const ZERO_OK: bool>(pub(crate) Duration);

/// A whole number in `MIN..=MAX`.
#[derive(Debug)]
pub(crate) struct Int<const MIN: u64, const MAX: u64>(pub(crate) u64);

/// `IP:port`.
#[derive(Debug)]
pub(crate) struct Addr(pub(crate) SocketAddr);

/// `http://host[:port][/prefix]`, prefix without a trailing `/`.
#[derive(Debug)]
pub(crate) struct UpstreamUrl(pub(crate) http::Uri);

/// `http(s)://authority[/path]`, kept as written.
#[derive(Debug)]
pub(crate) struct HttpUrl(pub(crate) String);

/// A header name the gateway may set.
#[derive(Debug)]
pub(crate) struct Header(pub(crate) HeaderName);

/// `*` or `scheme://host[:port]`.
#[derive(Debug)]
pub(crate) struct Origin(pub(crate) String);

/// A path prefix starting with `/`.
#[derive(Debug)]
pub(crate) struct PathPrefix(pub(crate) String);

/// A file path.
#[derive(Debug)]
pub(crate) struct FilePath(pub(crate) PathBuf);

/// `redis://…` or `rediss://…` (secret: may hold a password).
#[derive(Debug)]
pub(crate) struct RedisUrl(pub(crate) Secret);

/// A nonce HMAC secret of at least [`NonceSecret::MIN_BYTES`] bytes.
#[derive(Debug)]
pub(crate) struct NonceSecret(pub(crate) Secret);

/// `replay_cache.backend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BackendKind {
    Memory,
    Redis,
}

/// The whole document.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "the gateway configuration (a mapping of settings)"
)]
pub(crate) struct RawConfig {
    pub(crate) listen: Option<Scalar<Addr>>,
    pub(crate) tls: Option<RawTls>,
    pub(crate) admin_listen: Option<Scalar<Addr>>,
    pub(crate) shutdown_timeout: Option<Scalar<Dur<true>>>,
    pub(crate) public_url: Option<Scalar<PublicUrl>>,
    pub(crate) trust_forwarded_headers: Option<Scalar<Flag>>,
    pub(crate) resource_metadata: Option<RawResourceMetadata>,
    pub(crate) cors: Option<RawCors>,
    pub(crate) upstream: Option<RawUpstream>,
    pub(crate) routes: Option<Vec<RawRoute>>,
    pub(crate) dpop: Option<RawDpop>,
    pub(crate) replay_cache: Option<RawReplayCache>,
    pub(crate) access_token: Option<RawAccessToken>,
    pub(crate) forward: Option<RawForward>,
    pub(crate) limits: Option<RawLimits>,
    pub(crate) paths: Option<RawPaths>,
}

/// `tls`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with cert and key")]
pub(crate) struct RawTls {
    pub(crate) cert: Option<Scalar<FilePath>>,
    pub(crate) key: Option<Scalar<FilePath>>,
}

/// `resource_metadata`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with enabled")]
pub(crate) struct RawResourceMetadata {
    pub(crate) enabled: Option<Scalar<Flag>>,
}

/// `cors`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with allow_origins")]
pub(crate) struct RawCors {
    pub(crate) allow_origins: Option<Vec<Scalar<Origin>>>,
}

/// `upstream`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with url, connect_timeout, request_timeout, readiness"
)]
pub(crate) struct RawUpstream {
    pub(crate) url: Option<Scalar<UpstreamUrl>>,
    pub(crate) connect_timeout: Option<Scalar<Dur<false>>>,
    pub(crate) request_timeout: Option<Scalar<Dur<false>>>,
    pub(crate) readiness: Option<Scalar<UpstreamReadiness>>,
}

/// One entry of `routes`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a route: a mapping with path_prefix, auth and optionally nonce"
)]
pub(crate) struct RawRoute {
    pub(crate) path_prefix: Option<Scalar<PathPrefix>>,
    pub(crate) auth: Option<Scalar<AuthMode>>,
    pub(crate) nonce: Option<Scalar<Flag>>,
}

/// `dpop`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of DPoP settings")]
pub(crate) struct RawDpop {
    pub(crate) algorithms: Option<Vec<Scalar<Algorithm>>>,
    pub(crate) proof_max_age: Option<Scalar<Dur<false>>>,
    pub(crate) clock_skew: Option<Scalar<Dur<true>>>,
    pub(crate) require_ath: Option<Scalar<Flag>>,
    pub(crate) nonce: Option<RawNonce>,
}

/// `dpop.nonce`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with enabled, secrets, lifetime"
)]
pub(crate) struct RawNonce {
    pub(crate) enabled: Option<Scalar<Flag>>,
    pub(crate) secrets: Option<Vec<Scalar<NonceSecret>>>,
    pub(crate) lifetime: Option<Scalar<Dur<false>>>,
}

/// `replay_cache`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of replay cache settings")]
pub(crate) struct RawReplayCache {
    pub(crate) backend: Option<Scalar<BackendKind>>,
    pub(crate) capacity: Option<Scalar<Int<1, { u64::MAX }>>>,
    pub(crate) redis_url: Option<Scalar<RedisUrl>>,
    pub(crate) key_prefix: Option<Scalar<Text>>,
    pub(crate) timeout: Option<Scalar<Dur<false>>>,
    pub(crate) on_error: Option<Scalar<OnError>>,
}

/// `access_token`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of access token settings")]
pub(crate) struct RawAccessToken {
    pub(crate) format: Option<Scalar<TokenFormat>>,
    pub(crate) issuer: Option<Scalar<Text>>,
    pub(crate) audience: Option<Scalar<Text>>,
    pub(crate) jwks_uri: Option<Scalar<HttpUrl>>,
    pub(crate) jwks_file: Option<Scalar<FilePath>>,
    pub(crate) algorithms: Option<Vec<Scalar<Algorithm>>>,
    pub(crate) leeway: Option<Scalar<Dur<true>>>,
    pub(crate) require_typ: Option<Scalar<Flag>>,
    pub(crate) introspection: Option<RawIntrospection>,
    pub(crate) ca_file: Option<Scalar<FilePath>>,
    pub(crate) allow_insecure_http: Option<Scalar<Flag>>,
}

/// `access_token.introspection`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with endpoint, client_id, client_secret, cache_ttl"
)]
pub(crate) struct RawIntrospection {
    pub(crate) endpoint: Option<Scalar<HttpUrl>>,
    pub(crate) client_id: Option<Scalar<Text>>,
    pub(crate) client_secret: Option<Scalar<SecretText>>,
    pub(crate) cache_ttl: Option<Scalar<Dur<true>>>,
}

/// `forward`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with authorization and identity_headers"
)]
pub(crate) struct RawForward {
    pub(crate) authorization: Option<Scalar<ForwardAuthorization>>,
    pub(crate) identity_headers: Option<RawIdentityHeaders>,
}

/// `forward.identity_headers`: absent keeps the default name, `null` disables the header.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with subject, client_id, scope, jkt"
)]
pub(crate) struct RawIdentityHeaders {
    #[serde(default, deserialize_with = "present")]
    pub(crate) subject: Option<Option<Scalar<Header>>>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) client_id: Option<Option<Scalar<Header>>>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) scope: Option<Option<Scalar<Header>>>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) jkt: Option<Option<Scalar<Header>>>,
}

/// `limits`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of limits")]
pub(crate) struct RawLimits {
    pub(crate) max_proof_bytes: Option<Scalar<Int<MIN_PROOF_BYTES, MAX_HEADER_BYTES>>>,
    pub(crate) max_header_bytes: Option<Scalar<Int<MIN_HEADER_BYTES, MAX_HEADER_BYTES>>>,
    pub(crate) header_read_timeout: Option<Scalar<Dur<false>>>,
    pub(crate) idle_timeout: Option<Scalar<Dur<false>>>,
    pub(crate) max_connections: Option<Scalar<Int<1, { u64::MAX }>>>,
    pub(crate) max_concurrent_streams: Option<Scalar<Int<1, { u32::MAX as u64 }>>>,
}

/// `paths`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with encoded_slashes")]
pub(crate) struct RawPaths {
    pub(crate) encoded_slashes: Option<Scalar<EncodedSlashes>>,
}

/// `limits.max_proof_bytes` at least: a compact ES256 proof with its JWK is about 400 bytes.
pub(crate) const MIN_PROOF_BYTES: u64 = 512;
/// `limits.max_header_bytes` at least: hyper's smallest read buffer.
pub(crate) const MIN_HEADER_BYTES: u64 = 8192;
/// `limits.max_header_bytes` at most (1 MiB).
pub(crate) const MAX_HEADER_BYTES: u64 = 1 << 20;

struct ScalarVisitor<T>(PhantomData<T>);

/// Names that the gateway or HTTP itself controls; an identity header must not reuse one.
const RESERVED_HEADERS: [&str; 18] = [
    "authorization",
    "proxy-authorization",
    "dpop",
    "host",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "content-type",
    "cookie",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
];

const ALGORITHMS: &str = Algorithm::NAMES;

/// Reads `text` into [`RawConfig`], with `${NAME}` values from `env`.
pub(crate) fn parse(text: &str, env: &dyn EnvLookup) -> Result<RawConfig, YamlError> {
    let tree = yaml::read(text)?;
    if tree.is_null() {
        return Ok(RawConfig::default());
    }
    RawConfig::deserialize(NodeDe::root(&tree, env)).map_err(|e| e.into_yaml_error())
}

/// For `Option<Option<T>>` fields: a present key (even `null`) is `Some`.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// The values of an optional scalar.
pub(crate) fn value<T>(s: Option<Scalar<T>>) -> Option<T> {
    s.map(|s| s.0)
}

// === impl Scalar ===

impl<'de, T: ScalarValue> Deserialize<'de> for Scalar<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `deserialize_str` hands over any scalar's text as written (`8192`, `true`, `60s`),
        // `${NAME}` substituted, so every setting is parsed by one function.
        d.deserialize_str(ScalarVisitor(PhantomData))
    }
}

impl<T: ScalarValue> Visitor<'_> for ScalarVisitor<T> {
    type Value = Scalar<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        T::parse(v).map(Scalar).map_err(E::custom)
    }
}

// === impl Text, SecretText, Flag, Dur, Int ===

impl ScalarValue for Text {
    const EXPECTING: &'static str = "a string";

    fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        Ok(Text(text.to_owned()))
    }
}

impl ScalarValue for SecretText {
    const EXPECTING: &'static str = "a string";

    fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        Ok(SecretText(Secret::new(text)))
    }
}

impl ScalarValue for Flag {
    const EXPECTING: &'static str = "true or false";

    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "true" | "True" | "TRUE" => Ok(Flag(true)),
            "false" | "False" | "FALSE" => Ok(Flag(false)),
            _ => Err(format!("expected true or false, got {text:?}")),
        }
    }
}

impl<const ZERO_OK: bool> ScalarValue for Dur<ZERO_OK> {
    const EXPECTING: &'static str = "a duration such as 500ms, 60s, 5m or 1h";

    fn parse(text: &str) -> Result<Self, String> {
        duration::parse(text, ZERO_OK)
            .map(Dur)
            .map_err(|e| e.to_string())
    }
}

impl<const MIN: u64, const MAX: u64> ScalarValue for Int<MIN, MAX> {
    const EXPECTING: &'static str = "a whole number";

    fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("expected a whole number, got {text:?}"));
        }
        let n: u64 = text.parse().map_err(|_| format!("{text} is too large"))?;
        if (MIN..=MAX).contains(&n) {
            Ok(Int(n))
        } else if MAX == u64::MAX {
            Err(format!("must be at least {MIN}, got {n}"))
        } else {
            Err(format!("must be between {MIN} and {MAX}, got {n}"))
        }
    }
}

// === impl Addr, UpstreamUrl, HttpUrl, PublicUrl ===

impl ScalarValue for Addr {
    const EXPECTING: &'static str = "a socket address such as 127.0.0.1:8443";

    fn parse(text: &str) -> Result<Self, String> {
        text.parse().map(Addr).map_err(|_| {
            format!(
                "invalid socket address {text:?} (use IP:port, e.g. 127.0.0.1:8443 or [::1]:8443)"
            )
        })
    }
}

impl ScalarValue for UpstreamUrl {
    const EXPECTING: &'static str = "a URL such as http://127.0.0.1:8080";

    fn parse(text: &str) -> Result<Self, String> {
        let uri = absolute_url(text)?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "{text:?}: https upstreams are not supported yet; use http:// (the upstream is \
                     reached in plain HTTP, e.g. inside a mesh or on loopback)"
                ))
            }
            _ => return Err(format!("expected http://host:port[/prefix], got {text:?}")),
        }
        if uri.query().is_some() {
            return Err(format!("{text:?}: an upstream URL takes no query"));
        }
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        // The prefix is prepended to request paths, so `/api/` + `/x` must not become `/api//x`.
        let prefix = uri.path().trim_end_matches('/');
        let prefix = if prefix.is_empty() { "/" } else { prefix };
        format!("http://{authority}{prefix}")
            .parse()
            .map(UpstreamUrl)
            .map_err(|e| format!("invalid URL {text:?}: {e}"))
    }
}

impl ScalarValue for HttpUrl {
    const EXPECTING: &'static str = "an https:// URL";

    fn parse(text: &str) -> Result<Self, String> {
        let uri = absolute_url(text)?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(format!(
                "expected an https:// (or http://) URL, got {text:?}"
            ));
        }
        Ok(HttpUrl(text.to_owned()))
    }
}

/// An absolute URL with a host, no user info and no fragment.
fn absolute_url(text: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = text
        .parse()
        .map_err(|e| format!("invalid URL {text:?}: {e}"))?;
    let Some(authority) = uri.authority() else {
        return Err(format!(
            "invalid URL {text:?}: expected scheme://host[:port]"
        ));
    };
    if authority.as_str().contains('@') {
        return Err("a URL here must not contain user info (user@)".into());
    }
    if authority.host().is_empty() {
        return Err(format!("invalid URL {text:?}: no host"));
    }
    if text.contains('#') {
        return Err(format!(
            "invalid URL {text:?}: a fragment (#) is not allowed"
        ));
    }
    Ok(uri)
}

impl ScalarValue for PublicUrl {
    const EXPECTING: &'static str = "a URL such as https://api.example.com";

    fn parse(text: &str) -> Result<Self, String> {
        let wrong = || {
            format!(
                "expected http(s)://host[:port] without a path, query or fragment, got {text:?}"
            )
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(wrong)?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(wrong());
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(wrong());
        }
        authority
            .parse::<http::uri::Authority>()
            .map_err(|e| format!("invalid host in {text:?}: {e}"))?;
        Ok(PublicUrl {
            scheme,
            authority: authority.to_owned(),
        })
    }
}

// === impl Header, Origin, PathPrefix, FilePath ===

impl ScalarValue for Header {
    const EXPECTING: &'static str = "a header name, or null to disable it";

    fn parse(text: &str) -> Result<Self, String> {
        let name = HeaderName::from_bytes(text.as_bytes())
            .map_err(|_| format!("invalid header name {text:?}"))?;
        if RESERVED_HEADERS.contains(&name.as_str()) {
            return Err(format!(
                "{name} is controlled by the gateway or by HTTP itself; choose another name"
            ));
        }
        Ok(Header(name))
    }
}

impl ScalarValue for Origin {
    const EXPECTING: &'static str = "\"*\" or an origin such as https://app.example.com";

    fn parse(text: &str) -> Result<Self, String> {
        if text == "*" {
            return Ok(Origin(text.to_owned()));
        }
        let wrong =
            || format!("expected \"*\" or an origin such as https://app.example.com, got {text:?}");
        let (scheme, authority) = text.split_once("://").ok_or_else(wrong)?;
        let authority_ok = !authority.is_empty()
            && !authority.contains(['/', '?', '#', '@'])
            && authority.parse::<http::uri::Authority>().is_ok();
        if !matches!(scheme, "http" | "https") || !authority_ok {
            return Err(wrong());
        }
        // Browsers send origins in lower case (RFC 6454 §6.2).
        Ok(Origin(text.to_ascii_lowercase()))
    }
}

impl ScalarValue for PathPrefix {
    const EXPECTING: &'static str = "a path prefix such as /api";

    fn parse(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!("must start with /, got {text:?}"));
        }
        if text.contains(['?', '#']) || text.chars().any(char::is_whitespace) {
            return Err(format!(
                "must be a path without query, fragment or spaces, got {text:?}"
            ));
        }
        Ok(PathPrefix(text.to_owned()))
    }
}

impl ScalarValue for FilePath {
    const EXPECTING: &'static str = "a file path";

    fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        Ok(FilePath(PathBuf::from(text)))
    }
}

// === impl RedisUrl, NonceSecret ===

impl ScalarValue for RedisUrl {
    const EXPECTING: &'static str = "a redis:// or rediss:// URL";

    fn parse(text: &str) -> Result<Self, String> {
        // Never echo the value: it may hold a password.
        let rest = text
            .strip_prefix("redis://")
            .or_else(|| text.strip_prefix("rediss://"));
        match rest {
            Some(rest) if !rest.is_empty() => Ok(RedisUrl(Secret::new(text))),
            _ => Err("must be a redis://host:port or rediss://host:port URL".into()),
        }
    }
}

impl NonceSecret {
    /// HMAC-SHA256 keys shorter than the hash give less than its strength (RFC 2104 §3).
    pub(crate) const MIN_BYTES: usize = 32;
}

impl ScalarValue for NonceSecret {
    const EXPECTING: &'static str = "a secret string of at least 32 bytes";

    fn parse(text: &str) -> Result<Self, String> {
        // Never echo the value.
        if text.len() < Self::MIN_BYTES {
            return Err(format!(
                "a nonce secret must be at least {} bytes, this one is {} (generate one with \
                 `openssl rand -base64 32`; a `***` printed by `check` must be replaced by the real secret)",
                Self::MIN_BYTES,
                text.len()
            ));
        }
        Ok(NonceSecret(Secret::new(text)))
    }
}

// === impl Algorithm, enums ===

impl ScalarValue for Algorithm {
    const EXPECTING: &'static str =
        "an algorithm name (ES256, ES384, EdDSA, Ed25519, RS256, PS256)";

    fn parse(text: &str) -> Result<Self, String> {
        if let Some(alg) = Algorithm::from_name(text) {
            return Ok(alg);
        }
        let upper = text.to_ascii_uppercase();
        if upper == "NONE" || upper.starts_with("HS") {
            return Err(format!(
                "{text}: symmetric and `none` algorithms are not allowed (use {ALGORITHMS})"
            ));
        }
        Err(format!("unknown algorithm {text:?} (use {ALGORITHMS})"))
    }
}

/// Parses one of `names` into the matching value.
fn one_of<T: Copy>(text: &str, names: &[(&str, T)], list: &str) -> Result<T, String> {
    names
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, v)| *v)
        .ok_or_else(|| format!("unknown value {text:?}, expected {list}"))
}

impl ScalarValue for AuthMode {
    const EXPECTING: &'static str = "dpop, dpop_or_bearer or none";

    fn parse(text: &str) -> Result<Self, String> {
        let names = [
            ("dpop", AuthMode::Dpop),
            ("dpop_or_bearer", AuthMode::DpopOrBearer),
            ("none", AuthMode::None),
        ];
        one_of(text, &names, Self::EXPECTING)
    }
}

impl ScalarValue for BackendKind {
    const EXPECTING: &'static str = "memory or redis";

    fn parse(text: &str) -> Result<Self, String> {
        one_of(
            text,
            &[
                ("memory", BackendKind::Memory),
                ("redis", BackendKind::Redis),
            ],
            Self::EXPECTING,
        )
    }
}

impl ScalarValue for OnError {
    const EXPECTING: &'static str = "reject or allow";

    fn parse(text: &str) -> Result<Self, String> {
        one_of(
            text,
            &[("reject", OnError::Reject), ("allow", OnError::Allow)],
            Self::EXPECTING,
        )
    }
}

impl ScalarValue for UpstreamReadiness {
    const EXPECTING: &'static str = "none, tcp or http:/path";

    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "none" => return Ok(UpstreamReadiness::None),
            "tcp" => return Ok(UpstreamReadiness::Tcp),
            _ => {}
        }
        let wrong =
            || format!("expected none, tcp or http:/path (e.g. http:/healthz), got {text:?}");
        let path = text.strip_prefix("http:").ok_or_else(wrong)?;
        if !path.starts_with('/') || path.starts_with("//") || path.contains('#') {
            return Err(wrong());
        }
        // The request target must be one the upstream can be sent as written.
        path.parse::<http::uri::PathAndQuery>()
            .map_err(|e| format!("invalid path in {text:?}: {e}"))?;
        Ok(UpstreamReadiness::Http {
            path: path.to_owned(),
        })
    }
}

impl ScalarValue for TokenFormat {
    const EXPECTING: &'static str = "jwt or introspection";

    fn parse(text: &str) -> Result<Self, String> {
        let names = [
            ("jwt", TokenFormat::Jwt),
            ("introspection", TokenFormat::Introspection),
        ];
        one_of(text, &names, Self::EXPECTING)
    }
}

impl ScalarValue for ForwardAuthorization {
    const EXPECTING: &'static str = "bearer, keep or strip";

    fn parse(text: &str) -> Result<Self, String> {
        let names = [
            ("bearer", ForwardAuthorization::Bearer),
            ("keep", ForwardAuthorization::Keep),
            ("strip", ForwardAuthorization::Strip),
        ];
        one_of(text, &names, Self::EXPECTING)
    }
}

impl ScalarValue for EncodedSlashes {
    const EXPECTING: &'static str = "reject or keep";

    fn parse(text: &str) -> Result<Self, String> {
        let names = [
            ("reject", EncodedSlashes::Reject),
            ("keep", EncodedSlashes::Keep),
        ];
        one_of(text, &names, Self::EXPECTING)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_takes_true_or_false_only() {
        assert!(Flag::parse("true").unwrap().0);
        assert!(!Flag::parse("false").unwrap().0);
        assert!(Flag::parse("yes").is_err());
    }

    #[test]
    fn int_enforces_its_range() {
        assert_eq!(Int::<1, 10>::parse("10").unwrap().0, 10);
        assert_eq!(
            Int::<1, 10>::parse("11").unwrap_err(),
            "must be between 1 and 10, got 11"
        );
        assert_eq!(
            Int::<1, { u64::MAX }>::parse("0").unwrap_err(),
            "must be at least 1, got 0"
        );
        assert!(Int::<0, 10>::parse("-1").is_err());
        assert!(Int::<0, 10>::parse("1.5").is_err());
        assert!(Int::<0, { u64::MAX }>::parse("99999999999999999999999").is_err());
    }

    #[test]
    fn addr_is_ip_and_port() {
        assert!(Addr::parse("127.0.0.1:8443").is_ok());
        assert!(Addr::parse("[::1]:0").is_ok());
        assert!(Addr::parse("localhost:8443").is_err());
        assert!(Addr::parse("127.0.0.1").is_err());
    }

    #[test]
    fn upstream_url_is_plain_http_with_an_optional_prefix() {
        assert_eq!(
            UpstreamUrl::parse("http://127.0.0.1:8080").unwrap().0,
            "http://127.0.0.1:8080/"
        );
        assert_eq!(
            UpstreamUrl::parse("http://backend:80/api/")
                .unwrap()
                .0
                .path(),
            "/api"
        );
        let https = UpstreamUrl::parse("https://backend").unwrap_err();
        assert!(
            https.contains("https upstreams are not supported yet"),
            "{https}"
        );
        assert!(UpstreamUrl::parse("ftp://backend").is_err());
        assert!(UpstreamUrl::parse("http://backend/?q=1").is_err());
        assert!(UpstreamUrl::parse("http://u:p@backend").is_err());
        assert!(UpstreamUrl::parse("backend:8080").is_err());
        assert!(UpstreamUrl::parse("/path").is_err());
    }

    #[test]
    fn public_url_is_scheme_and_authority_only() {
        let url = PublicUrl::parse("HTTPS://api.example.com:8443/").unwrap();
        assert_eq!(
            url,
            PublicUrl {
                scheme: "https".into(),
                authority: "api.example.com:8443".into()
            }
        );
        for bad in [
            "https://api.example.com/v1",
            "https://a?x",
            "https://a#f",
            "https://",
            "api.example.com",
            "ftp://a",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn header_names_are_valid_and_not_reserved() {
        assert_eq!(Header::parse("X-Auth-Subject").unwrap().0, "x-auth-subject");
        assert!(Header::parse("bad header").is_err());
        assert!(Header::parse("Authorization")
            .unwrap_err()
            .contains("controlled by the gateway"));
    }

    #[test]
    fn origins_are_star_or_scheme_and_host() {
        assert_eq!(
            Origin::parse("https://App.example").unwrap().0,
            "https://app.example"
        );
        assert!(Origin::parse("*").is_ok());
        assert!(Origin::parse("https://app.example/").is_err());
        assert!(Origin::parse("app.example").is_err());
    }

    #[test]
    fn path_prefix_starts_with_a_slash() {
        assert!(PathPrefix::parse("/api").is_ok());
        assert!(PathPrefix::parse("api")
            .unwrap_err()
            .contains("must start with /"));
        assert!(PathPrefix::parse("/a?b").is_err());
    }

    #[test]
    fn redis_url_scheme_is_checked_without_echoing_it() {
        assert!(RedisUrl::parse("redis://127.0.0.1:6379").is_ok());
        assert!(RedisUrl::parse("rediss://u:p@h:6380/0").is_ok());
        let err = RedisUrl::parse("http://u:hunter2@h").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(RedisUrl::parse("redis://").is_err());
    }

    #[test]
    fn nonce_secret_needs_32_bytes_and_is_not_echoed() {
        assert!(NonceSecret::parse(&"k".repeat(32)).is_ok());
        let err = NonceSecret::parse("hunter2-short").unwrap_err();
        assert!(err.contains("at least 32 bytes"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn algorithms_refuse_symmetric_and_none() {
        assert_eq!(Algorithm::parse("EdDSA").unwrap(), Algorithm::EdDSA);
        assert_eq!(Algorithm::parse("Ed25519").unwrap(), Algorithm::Ed25519);
        assert!(<Algorithm as ScalarValue>::EXPECTING.contains(Algorithm::NAMES));
        for bad in ["none", "HS256", "hs512"] {
            assert!(
                Algorithm::parse(bad)
                    .unwrap_err()
                    .contains("symmetric and `none`"),
                "{bad}"
            );
        }
        assert!(Algorithm::parse("ES512")
            .unwrap_err()
            .contains("unknown algorithm"));
    }

    #[test]
    fn enums_list_their_values() {
        assert_eq!(
            AuthMode::parse("dpop_or_bearer").unwrap(),
            AuthMode::DpopOrBearer
        );
        assert_eq!(
            AuthMode::parse("basic").unwrap_err(),
            "unknown value \"basic\", expected dpop, dpop_or_bearer or none"
        );
        assert_eq!(BackendKind::parse("redis").unwrap(), BackendKind::Redis);
        assert_eq!(OnError::parse("allow").unwrap(), OnError::Allow);
        assert_eq!(
            TokenFormat::parse("introspection").unwrap(),
            TokenFormat::Introspection
        );
        assert_eq!(
            ForwardAuthorization::parse("strip").unwrap(),
            ForwardAuthorization::Strip
        );
        assert_eq!(EncodedSlashes::parse("keep").unwrap(), EncodedSlashes::Keep);
        assert_eq!(
            EncodedSlashes::parse("decode").unwrap_err(),
            "unknown value \"decode\", expected reject or keep"
        );
    }
}
