//! From [`RawConfig`] to [`Config`]: fills in the documented defaults, requires the required
//! settings and checks the rules that compare settings. Errors point at the key that decides
//! (see `error::locate`). No I/O.

use std::time::Duration;

use http::HeaderName;

use super::raw::{
    OneOrMany, RawAccessToken, RawConfig, RawCors, RawDpop, RawForward, RawForwardAuth,
    RawIntrospection, RawLimits, RawReplayCache, RawRoute, RawUpstream, RawUpstreams,
};
use super::scalars::{value, BackendKind, Dur, RedisUrl, Scalar, Text};
use super::Secret;
use super::{
    AccessTokenConfig, AuthMode, Config, ConfigError, CorsConfig, CorsPreflight, DpopConfig,
    ExplorerConfig, ForwardAuthConfig, ForwardAuthorization, ForwardConfig, IdentityHeaders,
    IntrospectionConfig, KeySource, Limits, NamedUpstream, NonceConfig, OnError, PathsConfig,
    ReplayBackend, ReplayCacheConfig, RouteConfig, TlsConfig, TokenFormat, UpstreamConfig,
    UpstreamProtocol, UpstreamReadiness, UpstreamTls, DEFAULT_UPSTREAM,
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
    let upstreams = upstreams(raw.upstreams.unwrap_or_default(), &cx)?;
    let routes = routes(raw.routes, &dpop.nonce, &upstreams, &cx)?;
    let upstream = upstream(raw.upstream.unwrap_or_default(), "upstream", &cx)?;
    let replay_window = dpop.proof_max_age + dpop.clock_skew;
    let replay_cache = replay_cache(raw.replay_cache.unwrap_or_default(), replay_window, &cx)?;
    let access_tokens = access_tokens(raw.access_token, &cx)?;
    let issuers: Vec<&str> = access_tokens.iter().map(|a| a.issuer.as_str()).collect();
    route_issuers_known(&routes, &issuers, &cx)?;
    let (cors_allow_origins, cors) = cors(raw.cors.unwrap_or_default(), &cx)?;
    Ok(Config {
        listen: value(raw.listen).map_or_else(|| ([0, 0, 0, 0], 8443).into(), |a| a.0),
        tls,
        admin_listen: value(raw.admin_listen)
            .map_or_else(|| ([127, 0, 0, 1], 9090).into(), |a| a.0),
        shutdown_timeout: dur(raw.shutdown_timeout, 30),
        public_url: value(raw.public_url),
        trust_forwarded_headers: flag(raw.trust_forwarded_headers, false),
        resource_metadata: flag(raw.resource_metadata.and_then(|r| r.enabled), true),
        cors_allow_origins,
        cors,
        upstream,
        upstreams,
        routes,
        dpop,
        replay_cache,
        access_tokens,
        forward: forward(raw.forward.unwrap_or_default(), &cx)?,
        limits: limits(raw.limits.unwrap_or_default(), &cx)?,
        paths: PathsConfig {
            encoded_slashes: raw
                .paths
                .and_then(|p| value(p.encoded_slashes))
                .unwrap_or_default(),
        },
        forward_auth: forward_auth(raw.forward_auth, &cx)?,
        explorer: {
            let raw = raw.explorer.unwrap_or_default();
            ExplorerConfig {
                enabled: flag(raw.enabled, false),
                decisions: count(
                    value(raw.decisions).map(|d| d.0),
                    200,
                    "explorer.decisions",
                    &cx,
                )?,
            }
        },
    })
}

/// `cors`: `allow_origins`, and how preflights are answered. `answer` needs origins to answer
/// for; `allow_headers` and `max_age` shape the gateway's answers, so they need `answer`.
fn cors(raw: RawCors, cx: &Cx<'_>) -> Result<(Vec<String>, CorsConfig), ConfigError> {
    let origins: Vec<String> = raw
        .allow_origins
        .map(|v| v.into_iter().map(|o| o.0 .0).collect())
        .unwrap_or_default();
    let preflight = value(raw.preflight).unwrap_or_default();
    if preflight == CorsPreflight::Answer && origins.is_empty() {
        return Err(cx.err(
            "cors.preflight",
            "cors.preflight: answer needs cors.allow_origins (the origins whose preflights the \
             gateway answers)",
        ));
    }
    if preflight == CorsPreflight::Forward {
        for (key, set) in [
            ("allow_headers", raw.allow_headers.is_some()),
            ("max_age", raw.max_age.is_some()),
        ] {
            if set {
                return Err(cx.err(
                    &format!("cors.{key}"),
                    format!(
                        "cors.{key}: only used when the gateway answers preflights \
                         (cors.preflight: answer); the upstream answers them now"
                    ),
                ));
            }
        }
    }
    let mut allow_headers: Vec<HeaderName> = Vec::new();
    match raw.allow_headers {
        None => allow_headers.push(http::header::CONTENT_TYPE),
        Some(list) => {
            for name in list {
                if !allow_headers.contains(&name.0 .0) {
                    allow_headers.push(name.0 .0);
                }
            }
        }
    }
    Ok((
        origins,
        CorsConfig {
            preflight,
            allow_headers,
            max_age: dur(raw.max_age, 600),
        },
    ))
}

/// `forward_auth`. The decision listener trusts the forwarded headers it is sent (they describe
/// the request it decides on), so only the ingress may reach it: loopback, unless the operator
/// says otherwise.
fn forward_auth(
    raw: Option<RawForwardAuth>,
    cx: &Cx<'_>,
) -> Result<Option<ForwardAuthConfig>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let listen = value(raw.listen)
        .ok_or_else(|| {
            cx.err(
                "forward_auth.listen",
                "forward_auth.listen: required when forward_auth is set (e.g. 127.0.0.1:8081)",
            )
        })?
        .0;
    let allow_non_loopback = flag(raw.allow_non_loopback, false);
    if !listen.ip().is_loopback() && !allow_non_loopback {
        return Err(cx.err(
            "forward_auth.listen",
            format!(
                "forward_auth.listen: {listen} is not a loopback address; the decision listener \
                 trusts the X-Forwarded-* headers it is sent, so only the ingress may reach it: \
                 restrict it (NetworkPolicy, firewall) and set forward_auth.allow_non_loopback: true"
            ),
        ));
    }
    let path_prefix = value(raw.path_prefix)
        .map(|p| p.0.trim_end_matches('/').to_owned())
        .filter(|p| !p.is_empty());
    Ok(Some(ForwardAuthConfig {
        listen,
        path_prefix,
        allow_non_loopback,
    }))
}

// === impl Cx ===

impl Cx<'_> {
    fn err(&self, path: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::at_path(self.origin, self.text, path, message)
    }
}

fn dur<const Z: bool>(d: Option<Scalar<super::scalars::Dur<Z>>>, default_secs: u64) -> Duration {
    value(d).map_or(Duration::from_secs(default_secs), |d| d.0)
}

fn flag(f: Option<Scalar<super::scalars::Flag>>, default: bool) -> bool {
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

fn upstream(raw: RawUpstream, at: &str, cx: &Cx<'_>) -> Result<UpstreamConfig, ConfigError> {
    let key = |k: &str| format!("{at}.{k}");
    let url = value(raw.url)
        .ok_or_else(|| {
            cx.err(
                &key("url"),
                format!("{}: required (e.g. http://127.0.0.1:8080)", key("url")),
            )
        })?
        .0;
    let https = url.scheme() == Some(&http::uri::Scheme::HTTPS);
    let tls = match (raw.tls, https) {
        (Some(_), false) => {
            return Err(cx.err(
                &key("tls"),
                format!(
                    "{}: only for https:// upstreams ({} is plain HTTP)",
                    key("tls"),
                    key("url")
                ),
            ))
        }
        (None, false) => None,
        (t, true) => {
            let t = t.unwrap_or_default();
            let client_cert = match (value(t.client_cert), value(t.client_key)) {
                (Some(c), Some(k)) => Some((c.0, k.0)),
                (None, None) => None,
                (Some(_), None) => {
                    let path = key("tls.client_cert");
                    return Err(cx.err(
                        &path,
                        format!("{path}: needs {}.tls.client_key as well", at),
                    ));
                }
                (None, Some(_)) => {
                    let path = key("tls.client_key");
                    return Err(cx.err(
                        &path,
                        format!("{path}: needs {}.tls.client_cert as well", at),
                    ));
                }
            };
            Some(UpstreamTls {
                ca_file: value(t.ca_file).map(|f| f.0),
                server_name: value(t.server_name).map(|n| n.0),
                client_cert,
            })
        }
    };
    let readiness = value(raw.readiness).unwrap_or(UpstreamReadiness::None);
    if at != "upstream" && readiness != UpstreamReadiness::None {
        return Err(cx.err(
            &key("readiness"),
            format!(
                "{}: only the default upstream (upstream.readiness) is checked for /readyz",
                key("readiness")
            ),
        ));
    }
    if https && matches!(readiness, UpstreamReadiness::Http { .. }) {
        return Err(cx.err(
            &key("readiness"),
            format!(
                "{}: http:/path checks speak plain HTTP; use tcp for an https:// upstream",
                key("readiness")
            ),
        ));
    }
    Ok(UpstreamConfig {
        url,
        protocol: value(raw.protocol).unwrap_or(UpstreamProtocol::Auto),
        tls,
        connect_timeout: dur(raw.connect_timeout, 2),
        request_timeout: dur(raw.request_timeout, 30),
        readiness,
    })
}

fn upstreams(raw: RawUpstreams, cx: &Cx<'_>) -> Result<Vec<NamedUpstream>, ConfigError> {
    raw.0
        .into_iter()
        .map(|(name, u)| {
            let config = upstream(u, &format!("upstreams.{name}"), cx)?;
            Ok(NamedUpstream { name, config })
        })
        .collect()
}

fn routes(
    raw: Option<Vec<RawRoute>>,
    nonce: &NonceConfig,
    upstreams: &[NamedUpstream],
    cx: &Cx<'_>,
) -> Result<Vec<RouteConfig>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(vec![RouteConfig {
            path_prefix: "/".into(),
            auth: AuthMode::Dpop,
            ..RouteConfig::default()
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
        let methods = route_methods(r.methods, &at("methods"), cx)?;
        let route_issuers = route_issuers(r.issuers, &at("issuers"), cx)?;
        let require = require(r.require.unwrap_or_default(), auth, &at("require"), cx)?;
        if let Some((j, earlier)) = hidden_by(&routes, &path_prefix, methods.as_deref()) {
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
        let upstream =
            match value(r.upstream).map(|n| n.0) {
                None => None,
                Some(name) if name == DEFAULT_UPSTREAM => None,
                Some(name) => Some(upstreams.iter().position(|u| u.name == name).ok_or_else(
                    || {
                        let known: Vec<&str> = std::iter::once(DEFAULT_UPSTREAM)
                            .chain(upstreams.iter().map(|u| u.name.as_str()))
                            .collect();
                        cx.err(
                            &at("upstream"),
                            format!(
                                "{}: no upstream named {name:?} (known: {})",
                                at("upstream"),
                                known.join(", ")
                            ),
                        )
                    },
                )?),
            };
        routes.push(RouteConfig {
            path_prefix,
            methods,
            auth,
            nonce: route_nonce,
            upstream,
            strip_prefix: flag(r.strip_prefix, false),
            issuers: route_issuers,
            require,
            max_body_bytes: value(r.max_body_bytes).map(|n| n.0),
        });
    }
    Ok(routes)
}

/// `routes[i].methods`: non-empty, no method twice.
fn route_methods(
    raw: Option<Vec<Scalar<super::scalars::MethodName>>>,
    at: &str,
    cx: &Cx<'_>,
) -> Result<Option<Vec<http::Method>>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.is_empty() {
        return Err(cx.err(at, format!("{at}: empty; remove it to match every method")));
    }
    let mut methods: Vec<http::Method> = Vec::with_capacity(raw.len());
    for (k, m) in raw.into_iter().enumerate() {
        let m = m.0 .0;
        if methods.contains(&m) {
            return Err(cx.err(
                &format!("{at}[{k}]"),
                format!("{at}[{k}]: {m} is listed twice"),
            ));
        }
        methods.push(m);
    }
    Ok(Some(methods))
}

/// `routes[i].issuers`: non-empty (whether they are configured issuers is checked once
/// `access_token` is read: [`route_issuers_known`]).
fn route_issuers(
    raw: Option<Vec<Scalar<super::scalars::Text>>>,
    at: &str,
    cx: &Cx<'_>,
) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.is_empty() {
        return Err(cx.err(
            at,
            format!("{at}: empty; remove it to accept every configured issuer"),
        ));
    }
    Ok(Some(raw.into_iter().map(|n| n.0 .0).collect()))
}

/// Every name in a route's `issuers` is an `access_token` issuer.
fn route_issuers_known(
    routes: &[RouteConfig],
    configured: &[&str],
    cx: &Cx<'_>,
) -> Result<(), ConfigError> {
    for (i, r) in routes.iter().enumerate() {
        for (k, name) in r.issuers.iter().flatten().enumerate() {
            if configured.contains(&name.as_str()) {
                continue;
            }
            let at = format!("routes[{i}].issuers[{k}]");
            return Err(cx.err(
                &at,
                format!(
                    "{at}: {name:?} is not an access_token issuer (configured: {})",
                    configured
                        .iter()
                        .map(|i| format!("{i:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// The earlier route that takes every request a route with `prefix` and `methods` would: one
/// with another prefix that matches all of its paths (its group answers them, whatever the
/// methods), or the same prefix and, together with the earlier routes of that prefix, every
/// one of its methods.
fn hidden_by<'r>(
    earlier: &'r [RouteConfig],
    prefix: &str,
    methods: Option<&[http::Method]>,
) -> Option<(usize, &'r RouteConfig)> {
    if let Some(found) = earlier
        .iter()
        .enumerate()
        .find(|(_, e)| e.path_prefix != prefix && shadows(&e.path_prefix, prefix))
    {
        return Some(found);
    }
    let same: Vec<(usize, &RouteConfig)> = earlier
        .iter()
        .enumerate()
        .filter(|(_, e)| e.path_prefix == prefix)
        .collect();
    if let Some(all) = same.iter().find(|(_, e)| e.methods.is_none()) {
        return Some(*all);
    }
    let methods = methods?;
    let taken = |m: &http::Method| {
        same.iter()
            .any(|(_, e)| e.methods.iter().flatten().any(|x| x == m))
    };
    if methods.iter().all(taken) {
        return same.last().copied();
    }
    None
}

/// `routes[i].require`: only on routes that check tokens.
fn require(
    raw: super::raw::RawRequire,
    auth: AuthMode,
    at: &str,
    cx: &Cx<'_>,
) -> Result<super::Require, ConfigError> {
    let scopes: Vec<String> = raw
        .scopes
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.0 .0)
        .collect();
    let claims: Vec<(String, String)> = raw
        .claims
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0 .0))
        .collect();
    if let Some((name, _)) = claims.iter().find(|(k, _)| k.is_empty()) {
        return Err(cx.err(at, format!("{at}.claims: a claim name is empty ({name:?})")));
    }
    if auth == AuthMode::None && (!scopes.is_empty() || !claims.is_empty()) {
        return Err(cx.err(
            at,
            format!("{at}: needs a token; this route has auth: none"),
        ));
    }
    Ok(super::Require { scopes, claims })
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

/// Proofs a second one key may sustain under the default `per_key_limit` (see README).
const DEFAULT_PER_KEY_RATE: u64 = 100;

fn replay_cache(
    raw: RawReplayCache,
    window: Duration,
    cx: &Cx<'_>,
) -> Result<ReplayCacheConfig, ConfigError> {
    // 0 (or unset): as many entries as DEFAULT_PER_KEY_RATE proofs a second fill in one window.
    let per_key_limit = match value(raw.per_key_limit).map_or(0, |n| n.0) {
        0 => DEFAULT_PER_KEY_RATE.saturating_mul(window.as_secs().max(1)),
        n => n,
    };
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
            key_prefix: key_prefix(raw.key_prefix),
            timeout: redis_timeout(raw.timeout),
        },
        BackendKind::RedisCluster => ReplayBackend::RedisCluster {
            urls: redis_urls(raw.redis_urls, "redis_cluster", cx)?,
            key_prefix: key_prefix(raw.key_prefix),
            timeout: redis_timeout(raw.timeout),
        },
        BackendKind::RedisSentinel => ReplayBackend::RedisSentinel {
            urls: redis_urls(raw.redis_urls, "redis_sentinel", cx)?,
            master: value(raw.sentinel_master)
                .ok_or_else(|| {
                    cx.err(
                        "replay_cache.backend",
                        "replay_cache.sentinel_master: required when backend is redis_sentinel",
                    )
                })?
                .0,
            key_prefix: key_prefix(raw.key_prefix),
            timeout: redis_timeout(raw.timeout),
        },
    };
    Ok(ReplayCacheConfig {
        backend,
        per_key_limit,
        min_replicas: value(raw.min_replicas).map_or(0, |n| n.0),
        on_error: value(raw.on_error).unwrap_or(OnError::Reject),
    })
}

fn key_prefix(raw: Option<Scalar<Text>>) -> String {
    value(raw).map_or_else(|| "dpop-gateway:jti:".to_owned(), |p| p.0)
}

fn redis_timeout(raw: Option<Scalar<Dur<false>>>) -> Duration {
    value(raw).map_or(Duration::from_millis(250), |t| t.0)
}

/// `redis_urls`: at least one.
fn redis_urls(
    raw: Option<Vec<Scalar<RedisUrl>>>,
    backend: &str,
    cx: &Cx<'_>,
) -> Result<Vec<Secret>, ConfigError> {
    let urls: Vec<Secret> = raw
        .unwrap_or_default()
        .into_iter()
        .map(|u| u.0 .0)
        .collect();
    if urls.is_empty() {
        return Err(cx.err(
            "replay_cache.backend",
            format!(
                "replay_cache.redis_urls: at least one URL is required when backend is {backend}"
            ),
        ));
    }
    Ok(urls)
}

fn count(n: Option<u64>, default: usize, path: &str, cx: &Cx<'_>) -> Result<usize, ConfigError> {
    match n {
        None => Ok(default),
        Some(n) => usize::try_from(n)
            .map_err(|_| cx.err(path, format!("{path}: {n} is too large for this machine"))),
    }
}

fn access_token(
    raw: RawAccessToken,
    p: &str,
    cx: &Cx<'_>,
) -> Result<AccessTokenConfig, ConfigError> {
    let k = |key: &str| format!("{p}.{key}");
    let format = value(raw.format).unwrap_or(TokenFormat::Jwt);
    let issuer = value(raw.issuer)
        .ok_or_else(|| cx.err(&k("issuer"), format!("{}: required", k("issuer"))))?
        .0;
    let audience = value(raw.audience).map(|a| a.0);
    if format == TokenFormat::Jwt && audience.is_none() {
        return Err(cx.err(
            &k("audience"),
            format!("{}: required when format is jwt", k("audience")),
        ));
    }
    let keys = match (value(raw.jwks_uri), value(raw.jwks_file)) {
        (Some(_), Some(_)) => {
            return Err(cx.err(
                &k("jwks_file"),
                format!("{}: set jwks_uri or jwks_file, not both", k("jwks_file")),
            ))
        }
        (Some(uri), None) => KeySource::Uri(uri.0),
        (None, Some(file)) => KeySource::File(file.0),
        (None, None) => KeySource::Discovery,
    };
    let discovers = format == TokenFormat::Jwt && keys == KeySource::Discovery;
    if discovers && !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
        return Err(cx.err(
            &k("issuer"),
            format!(
                "{}: {issuer:?} must be a URL to discover its keys (or set jwks_uri or jwks_file)",
                k("issuer")
            ),
        ));
    }
    let introspection = raw
        .introspection
        .map(|i| introspection(i, p, cx))
        .transpose()?;
    let allow_insecure_http = flag(raw.allow_insecure_http, false);
    if !allow_insecure_http {
        let mut called = Vec::new();
        if let KeySource::Uri(uri) = &keys {
            called.push((k("jwks_uri"), uri.as_str()));
        }
        if discovers {
            called.push((k("issuer"), issuer.as_str()));
        }
        if let Some(i) = &introspection {
            called.push((k("introspection.endpoint"), i.endpoint.as_str()));
        }
        if let Some((path, url)) = called.into_iter().find(|(_, url)| is_plain_http(url)) {
            return Err(cx.err(
                &path,
                format!(
                    "{path}: {url:?} is plain HTTP: whoever is on the path could serve other keys \
                     or answer for any token; use https://, or set \
                     {}: true for an authorization server reached only inside the cluster",
                    k("allow_insecure_http")
                ),
            ));
        }
    }
    if format == TokenFormat::Introspection && introspection.is_none() {
        return Err(cx.err(
            &k("format"),
            format!(
                "{}: required when format is introspection (endpoint, client_id, client_secret)",
                k("introspection")
            ),
        ));
    }
    Ok(AccessTokenConfig {
        format,
        issuer,
        audience,
        keys,
        algorithms: algorithms(raw.algorithms, &TOKEN_ALGORITHMS, &k("algorithms"), cx)?,
        leeway: dur(raw.leeway, 30),
        require_typ: flag(raw.require_typ, true),
        introspection,
        ca_file: value(raw.ca_file).map(|f| f.0),
        allow_insecure_http,
    })
}

/// `access_token`: one mapping, or a list of them (several issuers): each issuer once, at most
/// one introspection entry.
fn access_tokens(
    raw: Option<OneOrMany<RawAccessToken>>,
    cx: &Cx<'_>,
) -> Result<Vec<AccessTokenConfig>, ConfigError> {
    let list = match raw {
        None => {
            return Ok(vec![access_token(
                RawAccessToken::default(),
                "access_token",
                cx,
            )?])
        }
        Some(OneOrMany::One(one)) => {
            return Ok(vec![access_token(one, "access_token", cx)?]);
        }
        Some(OneOrMany::Many(list)) => list,
    };
    if list.is_empty() {
        return Err(cx.err(
            "access_token",
            "access_token: empty; name at least one issuer",
        ));
    }
    let mut out: Vec<AccessTokenConfig> = Vec::with_capacity(list.len());
    for (i, raw) in list.into_iter().enumerate() {
        let p = format!("access_token[{i}]");
        let at = access_token(raw, &p, cx)?;
        if let Some(j) = out.iter().position(|e| e.issuer == at.issuer) {
            return Err(cx.err(
                &format!("{p}.issuer"),
                format!(
                    "{p}.issuer: {:?} is already access_token[{j}]'s (one entry per issuer)",
                    at.issuer
                ),
            ));
        }
        if at.format == TokenFormat::Introspection {
            if let Some(j) = out
                .iter()
                .position(|e| e.format == TokenFormat::Introspection)
            {
                return Err(cx.err(
                    &format!("{p}.format"),
                    format!(
                        "{p}.format: access_token[{j}] already uses introspection (at most one \
                         introspection entry: an opaque token names no issuer to choose by)"
                    ),
                ));
            }
        }
        out.push(at);
    }
    Ok(out)
}

/// Whether `url` names the `http` scheme (any case, RFC 3986 §3.1).
fn is_plain_http(url: &str) -> bool {
    url.get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
}

fn introspection(
    raw: RawIntrospection,
    p: &str,
    cx: &Cx<'_>,
) -> Result<IntrospectionConfig, ConfigError> {
    let required = |key: &str| {
        let path = format!("{p}.introspection.{key}");
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
        issuer: header(h.issuer, "x-auth-issuer"),
    };
    check_distinct(&identity_headers, cx)?;
    Ok(ForwardConfig {
        authorization: value(raw.authorization).unwrap_or(ForwardAuthorization::Bearer),
        identity_headers,
    })
}

fn header(
    h: Option<Option<Scalar<super::scalars::Header>>>,
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
        ("issuer", &h.issuer),
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
        max_body_bytes: value(raw.max_body_bytes).map(|n| n.0),
    })
}
