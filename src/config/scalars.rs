//! The scalar settings. Every scalar is a [`Scalar<T>`]: it reads the scalar's text as written
//! (whatever YAML would resolve it to, so `8192`, `"8192"` and `${N}` all work), `${NAME}`
//! already substituted by the YAML layer, and parses it with [`ScalarValue::parse`]; a failure
//! is reported at the value, under the setting's dotted path. Rules that involve one value live
//! here. No I/O.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::{
    duration, AuthMode, CorsPreflight, EncodedSlashes, ForwardAuthorization, OnError, PublicUrl,
    Secret, TokenFormat, UpstreamProtocol, UpstreamReadiness,
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

/// `http(s)://host[:port][/prefix]`, prefix without a trailing `/`.
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

/// A request header name a CORS preflight answer allows (`cors.allow_headers`); `*` is
/// refused (a wildcard would not cover `Authorization`, and the list is meant to be explicit).
#[derive(Debug)]
pub(crate) struct FieldName(pub(crate) HeaderName);

/// A path prefix starting with `/`.
#[derive(Debug)]
pub(crate) struct PathPrefix(pub(crate) String);

/// An HTTP method name, upper case (RFC 9110 §9.1: a token; methods are case-sensitive).
#[derive(Debug)]
pub(crate) struct MethodName(pub(crate) http::Method);

/// One OAuth scope name (RFC 6749 §3.3: printable ASCII without space, `"` or `\\`).
#[derive(Debug)]
pub(crate) struct ScopeName(pub(crate) String);

/// A file path.
#[derive(Debug)]
pub(crate) struct FilePath(pub(crate) PathBuf);

/// An upstream's name: letters, digits, `_` and `-` (a metric label, a log field).
#[derive(Debug)]
pub(crate) struct UpstreamName(pub(crate) String);

/// A key of `upstreams`: an [`UpstreamName`] other than `default`.
#[derive(Debug)]
pub(crate) struct UpstreamKey(pub(crate) String);

/// A TLS server name: a DNS name or an IP address.
#[derive(Debug)]
pub(crate) struct ServerName(pub(crate) String);

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
    RedisCluster,
    RedisSentinel,
}

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
        let scheme = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") => "http",
            Some(s) if s.eq_ignore_ascii_case("https") => "https",
            _ => {
                return Err(format!(
                    "expected http(s)://host[:port][/prefix], got {text:?}"
                ))
            }
        };
        if uri.query().is_some() {
            return Err(format!("{text:?}: an upstream URL takes no query"));
        }
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        // The prefix is prepended to request paths, so `/api/` + `/x` must not become `/api//x`.
        let prefix = uri.path().trim_end_matches('/');
        let prefix = if prefix.is_empty() { "/" } else { prefix };
        format!("{scheme}://{authority}{prefix}")
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

impl ScalarValue for FieldName {
    const EXPECTING: &'static str = "a header name such as Content-Type";

    fn parse(text: &str) -> Result<Self, String> {
        if text == "*" {
            return Err("list the header names; a wildcard is not accepted".into());
        }
        HeaderName::from_bytes(text.as_bytes())
            .map(FieldName)
            .map_err(|_| format!("invalid header name {text:?}"))
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

impl ScalarValue for MethodName {
    const EXPECTING: &'static str = "an HTTP method such as GET";

    fn parse(text: &str) -> Result<Self, String> {
        method_token(text).map(MethodName)
    }
}

/// `text` as a method: an RFC 9110 token in upper case (`get` is refused, not folded: methods
/// are case-sensitive and a client sending `get` is not sending `GET`).
pub(crate) fn method_token(text: &str) -> Result<http::Method, String> {
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if text.is_empty() || !text.chars().all(tchar) {
        return Err(format!("{text:?} is not an HTTP method (e.g. GET, POST)"));
    }
    if text.chars().any(|c| c.is_ascii_lowercase()) {
        return Err(format!(
            "{text:?}: methods are case-sensitive; write {:?}",
            text.to_ascii_uppercase()
        ));
    }
    http::Method::from_bytes(text.as_bytes())
        .map_err(|_| format!("{text:?} is not an HTTP method (e.g. GET, POST)"))
}

impl ScalarValue for ScopeName {
    const EXPECTING: &'static str = "a scope name such as billing:read";

    fn parse(text: &str) -> Result<Self, String> {
        let ok = |c: char| c == '!' || ('#'..='[').contains(&c) || (']'..='~').contains(&c);
        if text.is_empty() || !text.chars().all(ok) {
            return Err(format!(
                "{text:?} is not a scope name (printable ASCII, no spaces, quotes or backslashes; \
                 list several scopes as several entries)"
            ));
        }
        Ok(ScopeName(text.to_owned()))
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

// === impl UpstreamName, UpstreamKey, ServerName ===

impl ScalarValue for UpstreamName {
    const EXPECTING: &'static str = "an upstream name";

    fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty()
            || text.len() > 64
            || !text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "{text:?}: an upstream name is 1 to 64 letters, digits, `_` or `-`"
            ));
        }
        Ok(UpstreamName(text.to_owned()))
    }
}

impl ScalarValue for UpstreamKey {
    const EXPECTING: &'static str = "an upstream name";

    fn parse(text: &str) -> Result<Self, String> {
        let name = UpstreamName::parse(text)?.0;
        if name == super::DEFAULT_UPSTREAM {
            return Err("\"default\" is the name of `upstream`; choose another name".into());
        }
        Ok(UpstreamKey(name))
    }
}

impl ScalarValue for ServerName {
    const EXPECTING: &'static str = "a DNS name or an IP address";

    fn parse(text: &str) -> Result<Self, String> {
        rustls_pki_types::ServerName::try_from(text)
            .map_err(|_| format!("{text:?} is not a DNS name or an IP address"))?;
        Ok(ServerName(text.to_owned()))
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

impl ScalarValue for UpstreamProtocol {
    const EXPECTING: &'static str = "auto, http1 or http2";

    fn parse(text: &str) -> Result<Self, String> {
        let names = [
            ("auto", UpstreamProtocol::Auto),
            ("http1", UpstreamProtocol::Http1),
            ("http2", UpstreamProtocol::Http2),
        ];
        one_of(text, &names, Self::EXPECTING)
    }
}

impl ScalarValue for BackendKind {
    const EXPECTING: &'static str = "memory, redis, redis_cluster or redis_sentinel";

    fn parse(text: &str) -> Result<Self, String> {
        one_of(
            text,
            &[
                ("memory", BackendKind::Memory),
                ("redis", BackendKind::Redis),
                ("redis_cluster", BackendKind::RedisCluster),
                ("redis_sentinel", BackendKind::RedisSentinel),
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

impl ScalarValue for CorsPreflight {
    const EXPECTING: &'static str = "forward or answer";

    fn parse(text: &str) -> Result<Self, String> {
        let names = [
            ("forward", CorsPreflight::Forward),
            ("answer", CorsPreflight::Answer),
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
    fn upstream_url_is_http_or_https_with_an_optional_prefix() {
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
        assert_eq!(
            UpstreamUrl::parse("HTTPS://backend:8443/v1/").unwrap().0,
            "https://backend:8443/v1"
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
