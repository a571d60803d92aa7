//! From [`RawConfig`] to [`Config`]: fills in the documented defaults, requires the required
//! settings and checks the rules that compare settings. Errors point at the key that decides
//! (see `error::locate`). No I/O.

use std::time::Duration;

use http::HeaderName;

use super::raw::{
    value, BackendKind, RawAccessToken, RawConfig, RawDpop, RawForward, RawIntrospection,
    RawLimits, RawReplayCache, RawRoute, RawUpstream, Scalar,
};
use super::{
    AccessTokenConfig, AuthMode, Config, ConfigError, DpopConfig, ForwardAuthorization,
    ForwardConfig, IdentityHeaders, IntrospectionConfig, KeySource, Limits, NonceConfig, OnError,
    PathsConfig, ReplayBackend, ReplayCacheConfig, RouteConfig, TlsConfig, TokenFormat,
    UpstreamConfig, UpstreamReadiness,
};
use crate::jose::{Algorithm, AlgorithmSet};

/// Where errors point: the text (to locate keys) and its name.
struct Cx<'a> {
    text: &'a str,
    origin: &'a str,
}

/// `access_token.algorithms` default: what authorization servers commonly sign with; Ed25519
/// under both its names (RFC 8037 `EdDSA`, RFC 9864 `Ed25519`: the same keys and signatures).
const TOKEN_ALGORITHMS: [Algorithm; 5] = [
    Algorithm::ES256,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::EdDSA,
    Algorithm::Ed25519,
];

/// Validates `raw`, read from `text` (named `origin` in errors).
pub(crate) fn resolve(raw: RawConfig, text: &str, origin: &str) -> Result<Config, ConfigError> {
    let cx = Cx { text, origin };
    let tls = match raw.tls {
        None => None,
        Some(t) => Some(TlsConfig {
            cert: value(t.cert)
                .ok_or_else(|| {
                    cx.err("tls.cert", "tls.cert: required when tls is set (PEM chain)")
                })?
                .0,
            key: value(t.key)
                .ok_or_else(|| cx.err("tls.key", "tls.key: required when tls is set (PEM key)"))?
                .0,
        }),
    };
    let dpop = dpop(raw.dpop.unwrap_or_default(), &cx)?;
    let routes = routes(raw.routes, &dpop.nonce, &cx)?;
    Ok(Config {
        listen: value(raw.listen).map_or_else(|| ([0, 0, 0, 0], 8443).into(), |a| a.0),
        tls,
        admin_listen: value(raw.admin_listen)
            .map_or_else(|| ([127, 0, 0, 1], 9090).into(), |a| a.0),
        shutdown_timeout: dur(raw.shutdown_timeout, 30),
        public_url: value(raw.public_url),
        trust_forwarded_headers: flag(raw.trust_forwarded_headers, false),
        resource_metadata: flag(raw.resource_metadata.and_then(|r| r.enabled), true),
        cors_allow_origins: raw
            .cors
            .and_then(|c| c.allow_origins)
            .map(|v| v.into_iter().map(|o| o.0 .0).collect())
            .unwrap_or_default(),
        upstream: upstream(raw.upstream.unwrap_or_default(), &cx)?,
        routes,
        dpop,
        replay_cache: replay_cache(raw.replay_cache.unwrap_or_default(), &cx)?,
        access_token: access_token(raw.access_token.unwrap_or_default(), &cx)?,
        forward: forward(raw.forward.unwrap_or_default(), &cx)?,
        limits: limits(raw.limits.unwrap_or_default(), &cx)?,
        paths: PathsConfig {
            encoded_slashes: raw
                .paths
                .and_then(|p| value(p.encoded_slashes))
                .unwrap_or_default(),
        },
    })
}

// === impl Cx ===

impl Cx<'_> {
    fn err(&self, path: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::at_path(self.origin, self.text, path, message)
    }
}

fn dur<const Z: bool>(d: Option<Scalar<super::raw::Dur<Z>>>, default_secs: u64) -> Duration {
    value(d).map_or(Duration::from_secs(default_secs), |d| d.0)
}

fn flag(f: Option<Scalar<super::raw::Flag>>, default: bool) -> bool {
    value(f).map_or(default, |f| f.0)
}

fn algorithms(
    list: Option<Vec<Scalar<Algorithm>>>,
    default: &[Algorithm],
    path: &str,
    cx: &Cx<'_>,
) -> Result<AlgorithmSet, ConfigError> {
    let set: AlgorithmSet = match list {
        Some(list) => list.into_iter().map(|a| a.0).collect(),
        None => default.iter().copied().collect(),
    };
    if set.is_empty() {
        return Err(cx.err(
            path,
            format!("{path}: empty; allow at least one of {}", Algorithm::NAMES),
        ));
    }
    Ok(set)
}

fn upstream(raw: RawUpstream, cx: &Cx<'_>) -> Result<UpstreamConfig, ConfigError> {
    let url = value(raw.url).ok_or_else(|| {
        cx.err(
            "upstream.url",
            "upstream.url: required (e.g. http://127.0.0.1:8080)",
        )
    })?;
    Ok(UpstreamConfig {
        url: url.0,
        connect_timeout: dur(raw.connect_timeout, 2),
        request_timeout: dur(raw.request_timeout, 30),
        readiness: value(raw.readiness).unwrap_or(UpstreamReadiness::None),
    })
}

fn routes(
    raw: Option<Vec<RawRoute>>,
    nonce: &NonceConfig,
    cx: &Cx<'_>,
) -> Result<Vec<RouteConfig>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(vec![RouteConfig {
            path_prefix: "/".into(),
            auth: AuthMode::Dpop,
            nonce: None,
        }]);
    };
    if raw.is_empty() {
        return Err(cx.err(
            "routes",
            "routes: empty; remove it for the default (every path needs DPoP)",
        ));
    }
    let mut routes: Vec<RouteConfig> = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let at = |key: &str| format!("routes[{i}].{key}");
        let path_prefix = value(r.path_prefix)
            .ok_or_else(|| {
                cx.err(
                    &at("path_prefix"),
                    format!("{}: required", at("path_prefix")),
                )
            })?
            .0;
        let auth = value(r.auth).ok_or_else(|| {
            cx.err(
                &at("auth"),
                format!("{}: required (dpop, dpop_or_bearer or none)", at("auth")),
            )
        })?;
        let route_nonce = value(r.nonce).map(|f| f.0);
        if route_nonce == Some(true) && nonce.secrets.is_empty() {
            return Err(cx.err(
                &at("nonce"),
                format!(
                    "{}: true needs dpop.nonce.secrets (at least one secret of 32 bytes or more)",
                    at("nonce")
                ),
            ));
        }
        if let Some((j, earlier)) = routes
            .iter()
            .enumerate()
            .find(|(_, e)| shadows(&e.path_prefix, &path_prefix))
        {
            return Err(cx.err(
                &at("path_prefix"),
                format!(
                    "{}: {path_prefix:?} can never match: routes[{j}] ({:?}) comes first and matches it \
                     (first match wins; put the longer prefix first)",
                    at("path_prefix"),
                    earlier.path_prefix
                ),
            ));
        }
        routes.push(RouteConfig {
            path_prefix,
            auth,
            nonce: route_nonce,
        });
    }
    Ok(routes)
}

/// Whether every path that `later` matches is matched by `earlier` already, whether prefixes
/// match by string or by whole segments.
fn shadows(earlier: &str, later: &str) -> bool {
    later
        .strip_prefix(earlier)
        .is_some_and(|rest| rest.is_empty() || earlier.ends_with('/') || rest.starts_with('/'))
}

fn dpop(raw: RawDpop, cx: &Cx<'_>) -> Result<DpopConfig, ConfigError> {
    let all = Algorithm::ALL;
    let algorithms = algorithms(raw.algorithms, &all, "dpop.algorithms", cx)?;
    let nonce = raw.nonce.unwrap_or_default();
    let nonce = NonceConfig {
        enabled: flag(nonce.enabled, false),
        secrets: nonce
            .secrets
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.0 .0)
            .collect(),
        lifetime: dur(nonce.lifetime, 300),
    };
    if nonce.enabled && nonce.secrets.is_empty() {
        return Err(cx.err(
            "dpop.nonce.enabled",
            "dpop.nonce.enabled: true needs dpop.nonce.secrets (at least one secret of 32 bytes or more)",
        ));
    }
    Ok(DpopConfig {
        algorithms,
        proof_max_age: dur(raw.proof_max_age, 60),
        clock_skew: dur(raw.clock_skew, 5),
        require_ath: flag(raw.require_ath, true),
        nonce,
    })
}

fn replay_cache(raw: RawReplayCache, cx: &Cx<'_>) -> Result<ReplayCacheConfig, ConfigError> {
    let backend = match value(raw.backend).unwrap_or(BackendKind::Memory) {
        BackendKind::Memory => ReplayBackend::Memory {
            capacity: count(
                value(raw.capacity).map(|c| c.0),
                1_000_000,
                "replay_cache.capacity",
                cx,
            )?,
        },
        BackendKind::Redis => ReplayBackend::Redis {
            url: value(raw.redis_url)
                .ok_or_else(|| {
                    cx.err(
                        "replay_cache.backend",
                        "replay_cache.redis_url: required when backend is redis",
                    )
                })?
                .0,
            key_prefix: value(raw.key_prefix)
                .map_or_else(|| "dpop-gateway:jti:".to_owned(), |p| p.0),
            timeout: value(raw.timeout).map_or(Duration::from_millis(250), |t| t.0),
        },
    };
    Ok(ReplayCacheConfig {
        backend,
        on_error: value(raw.on_error).unwrap_or(OnError::Reject),
    })
}

fn count(n: Option<u64>, default: usize, path: &str, cx: &Cx<'_>) -> Result<usize, ConfigError> {
    match n {
        None => Ok(default),
        Some(n) => usize::try_from(n)
            .map_err(|_| cx.err(path, format!("{path}: {n} is too large for this machine"))),
    }
}

fn access_token(raw: RawAccessToken, cx: &Cx<'_>) -> Result<AccessTokenConfig, ConfigError> {
    let format = value(raw.format).unwrap_or(TokenFormat::Jwt);
    let issuer = value(raw.issuer)
        .ok_or_else(|| cx.err("access_token.issuer", "access_token.issuer: required"))?
        .0;
    let audience = value(raw.audience).map(|a| a.0);
    if format == TokenFormat::Jwt && audience.is_none() {
        return Err(cx.err(
            "access_token.audience",
            "access_token.audience: required when format is jwt",
        ));
    }
    let keys = match (value(raw.jwks_uri), value(raw.jwks_file)) {
        (Some(_), Some(_)) => {
            return Err(cx.err(
                "access_token.jwks_file",
                "access_token.jwks_file: set jwks_uri or jwks_file, not both",
            ))
        }
        (Some(uri), None) => KeySource::Uri(uri.0),
        (None, Some(file)) => KeySource::File(file.0),
        (None, None) => KeySource::Discovery,
    };
    let discovers = format == TokenFormat::Jwt && keys == KeySource::Discovery;
    if discovers && !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
        return Err(cx.err(
            "access_token.issuer",
            format!("access_token.issuer: {issuer:?} must be a URL to discover its keys (or set jwks_uri or jwks_file)"),
        ));
    }
    let introspection = raw
        .introspection
        .map(|i| introspection(i, cx))
        .transpose()?;
    let allow_insecure_http = flag(raw.allow_insecure_http, false);
    if !allow_insecure_http {
        let mut called = Vec::new();
        if let KeySource::Uri(uri) = &keys {
            called.push(("access_token.jwks_uri", uri.as_str()));
        }
        if discovers {
            called.push(("access_token.issuer", issuer.as_str()));
        }
        if let Some(i) = &introspection {
            called.push(("access_token.introspection.endpoint", i.endpoint.as_str()));
        }
        if let Some((path, url)) = called.into_iter().find(|(_, url)| is_plain_http(url)) {
            return Err(cx.err(
                path,
                format!(
                    "{path}: {url:?} is plain HTTP: whoever is on the path could serve other keys \
                     or answer for any token; use https://, or set \
                     access_token.allow_insecure_http: true for an authorization server reached \
                     only inside the cluster"
                ),
            ));
        }
    }
    if format == TokenFormat::Introspection && introspection.is_none() {
        return Err(cx.err(
            "access_token.format",
            "access_token.introspection: required when format is introspection (endpoint, client_id, client_secret)",
        ));
    }
    Ok(AccessTokenConfig {
        format,
        issuer,
        audience,
        keys,
        algorithms: algorithms(
            raw.algorithms,
            &TOKEN_ALGORITHMS,
            "access_token.algorithms",
            cx,
        )?,
        leeway: dur(raw.leeway, 30),
        require_typ: flag(raw.require_typ, true),
        introspection,
        ca_file: value(raw.ca_file).map(|f| f.0),
        allow_insecure_http,
    })
}

/// Whether `url` names the `http` scheme (any case, RFC 3986 §3.1).
fn is_plain_http(url: &str) -> bool {
    url.get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
}

fn introspection(raw: RawIntrospection, cx: &Cx<'_>) -> Result<IntrospectionConfig, ConfigError> {
    let required = |key: &str| {
        let path = format!("access_token.introspection.{key}");
        cx.err(&path, format!("{path}: required"))
    };
    Ok(IntrospectionConfig {
        endpoint: value(raw.endpoint).ok_or_else(|| required("endpoint"))?.0,
        client_id: value(raw.client_id).ok_or_else(|| required("client_id"))?.0,
        client_secret: value(raw.client_secret)
            .ok_or_else(|| required("client_secret"))?
            .0,
        cache_ttl: dur(raw.cache_ttl, 60),
    })
}

fn forward(raw: RawForward, cx: &Cx<'_>) -> Result<ForwardConfig, ConfigError> {
    let h = raw.identity_headers.unwrap_or_default();
    let identity_headers = IdentityHeaders {
        subject: header(h.subject, "x-auth-subject"),
        client_id: header(h.client_id, "x-auth-client-id"),
        scope: header(h.scope, "x-auth-scope"),
        jkt: header(h.jkt, "x-dpop-jkt"),
    };
    check_distinct(&identity_headers, cx)?;
    Ok(ForwardConfig {
        authorization: value(raw.authorization).unwrap_or(ForwardAuthorization::Bearer),
        identity_headers,
    })
}

fn header(
    h: Option<Option<Scalar<super::raw::Header>>>,
    default: &'static str,
) -> Option<HeaderName> {
    match h {
        None => Some(HeaderName::from_static(default)),
        Some(h) => value(h).map(|h| h.0),
    }
}

/// Two identity headers with one name would overwrite each other.
fn check_distinct(h: &IdentityHeaders, cx: &Cx<'_>) -> Result<(), ConfigError> {
    let named = [
        ("subject", &h.subject),
        ("client_id", &h.client_id),
        ("scope", &h.scope),
        ("jkt", &h.jkt),
    ];
    for (i, (key, name)) in named.iter().enumerate() {
        let Some(name) = name else { continue };
        if let Some((first, _)) = named[..i]
            .iter()
            .find(|(_, other)| other.as_ref() == Some(name))
        {
            let path = format!("forward.identity_headers.{key}");
            return Err(cx.err(
                &path,
                format!("{path}: {name} is already used by forward.identity_headers.{first}"),
            ));
        }
    }
    Ok(())
}

/// `limits`: the proof travels in the request head, so it cannot be larger than the head.
fn limits(raw: RawLimits, cx: &Cx<'_>) -> Result<Limits, ConfigError> {
    let max_header_bytes = value(raw.max_header_bytes).map_or(65_536, |n| n.0);
    let max_proof_bytes = value(raw.max_proof_bytes).map_or(8192, |n| n.0);
    if max_proof_bytes > max_header_bytes {
        return Err(cx.err(
            "limits.max_proof_bytes",
            format!(
                "limits.max_proof_bytes: {max_proof_bytes} must not exceed limits.max_header_bytes ({max_header_bytes})"
            ),
        ));
    }
    let max_streams = value(raw.max_concurrent_streams).map_or(100, |n| n.0);
    Ok(Limits {
        max_proof_bytes: count(Some(max_proof_bytes), 0, "limits.max_proof_bytes", cx)?,
        max_header_bytes: count(Some(max_header_bytes), 0, "limits.max_header_bytes", cx)?,
        header_read_timeout: dur(raw.header_read_timeout, 10),
        idle_timeout: dur(raw.idle_timeout, 60),
        max_connections: count(
            value(raw.max_connections).map(|n| n.0),
            10_000,
            "limits.max_connections",
            cx,
        )?,
        max_concurrent_streams: u32::try_from(max_streams).unwrap_or(u32::MAX),
    })
}
