//! The resolved configuration written back as YAML in the input's key layout (what `check`
//! prints): defaults filled in, `${NAME}` substituted, and `client_secret`, nonce `secrets` and a
//! password in `redis_url` shown as `***`.
//!
//! The output parses back with `from_yaml_str`: strings are written with `${` escaped as `$${`,
//! and settings that are unset (`public_url`, `tls`, ...) are left out rather than written as
//! null. One exception by design: a masked nonce secret (`***`) is refused on the way back in as
//! too short, so that a printed config cannot run with a known nonce key. No I/O.

use std::time::Duration;

use http::HeaderName;
use serde_yaml::{Mapping, Value};

use super::{
    duration, env, AccessTokenConfig, AuthMode, Config, CorsPreflight, EncodedSlashes,
    ForwardAuthorization, KeySource, OnError, ReplayBackend, RouteConfig, TokenFormat,
    UpstreamConfig, UpstreamProtocol, UpstreamReadiness,
};
use crate::jose::AlgorithmSet;

/// How a secret is shown.
const MASK: &str = "***";

/// `config` as YAML, secrets masked.
pub(crate) fn to_masked_yaml(config: &Config) -> String {
    let c = config;
    let mut doc = Entries::default();
    doc.put("listen", text(&c.listen.to_string()));
    if let Some(tls) = &c.tls {
        let mut t = Entries::default();
        t.put("cert", text(&tls.cert.display().to_string()));
        t.put("key", text(&tls.key.display().to_string()));
        doc.put("tls", t.into());
    }
    doc.put("admin_listen", text(&c.admin_listen.to_string()));
    doc.put("shutdown_timeout", dur(c.shutdown_timeout));
    if let Some(url) = &c.public_url {
        doc.put(
            "public_url",
            text(&format!("{}://{}", url.scheme, url.authority)),
        );
    }
    doc.put(
        "trust_forwarded_headers",
        Value::Bool(c.trust_forwarded_headers),
    );
    doc.put(
        "resource_metadata",
        Entries::one("enabled", Value::Bool(c.resource_metadata)),
    );
    doc.put("cors", cors(c));
    doc.put("upstream", upstream(&c.upstream));
    if !c.upstreams.is_empty() {
        let mut named = Entries::default();
        for u in &c.upstreams {
            named.put(&u.name, upstream(&u.config));
        }
        doc.put("upstreams", named.into());
    }
    doc.put("routes", list(c.routes.iter().map(|r| route(r, c))));
    doc.put("dpop", dpop(c));
    doc.put("replay_cache", replay_cache(c));
    match c.access_tokens.as_slice() {
        [one] => doc.put("access_token", access_token(one)),
        many => doc.put("access_token", list(many.iter().map(access_token))),
    }
    doc.put("forward", forward(c));
    doc.put("limits", limits(c));
    let encoded_slashes = match c.paths.encoded_slashes {
        EncodedSlashes::Reject => "reject",
        EncodedSlashes::Keep => "keep",
    };
    doc.put(
        "paths",
        Entries::one("encoded_slashes", text(encoded_slashes)),
    );
    if let Some(fa) = &c.forward_auth {
        let mut e = Entries::default();
        e.put("listen", text(&fa.listen.to_string()));
        if let Some(prefix) = &fa.path_prefix {
            e.put("path_prefix", text(prefix));
        }
        e.put("allow_non_loopback", Value::Bool(fa.allow_non_loopback));
        doc.put("forward_auth", e.into());
    }
    let mut explorer = Entries::default();
    explorer.put("enabled", Value::Bool(c.explorer.enabled));
    explorer.put(
        "decisions",
        Value::from(u64::try_from(c.explorer.decisions).unwrap_or(u64::MAX)),
    );
    doc.put("explorer", explorer.into());
    serde_yaml::to_string(&Value::from(doc))
        .unwrap_or_else(|e| format!("# cannot write the configuration: {e}\n"))
}

/// A mapping in insertion order.
#[derive(Default)]
struct Entries(Mapping);

// === impl Entries ===

impl Entries {
    fn one(key: &str, value: Value) -> Value {
        let mut e = Entries::default();
        e.put(key, value);
        e.into()
    }

    fn put(&mut self, key: &str, value: Value) {
        self.0.insert(Value::String(key.to_owned()), value);
    }
}

impl From<Entries> for Value {
    fn from(e: Entries) -> Value {
        Value::Mapping(e.0)
    }
}

/// A string as the input would write it: `${` escaped so that it is not substituted again.
fn text(s: &str) -> Value {
    Value::String(env::escape(s))
}

fn dur(d: Duration) -> Value {
    Value::String(duration::format(d))
}

fn num(n: u64) -> Value {
    Value::Number(n.into())
}

/// `redis_urls`, passwords masked.
fn masked_urls(urls: &[super::Secret]) -> Value {
    list(urls.iter().map(|u| text(&mask_redis_password(u.expose()))))
}

fn list(items: impl Iterator<Item = Value>) -> Value {
    Value::Sequence(items.collect())
}

fn algorithms(set: AlgorithmSet) -> Value {
    list(set.iter().map(|a| Value::String(a.as_str().to_owned())))
}

fn upstream(u: &UpstreamConfig) -> Value {
    let mut e = Entries::default();
    e.put("url", text(&u.url.to_string()));
    let protocol = match u.protocol {
        UpstreamProtocol::Auto => "auto",
        UpstreamProtocol::Http1 => "http1",
        UpstreamProtocol::Http2 => "http2",
    };
    e.put("protocol", text(protocol));
    e.put("connect_timeout", dur(u.connect_timeout));
    e.put("request_timeout", dur(u.request_timeout));
    e.put(
        "readiness",
        text(&match &u.readiness {
            UpstreamReadiness::None => "none".to_owned(),
            UpstreamReadiness::Tcp => "tcp".to_owned(),
            UpstreamReadiness::Http { path } => format!("http:{path}"),
        }),
    );
    if let Some(tls) = &u.tls {
        let mut t = Entries::default();
        if let Some(ca) = &tls.ca_file {
            t.put("ca_file", text(&ca.display().to_string()));
        }
        if let Some(name) = &tls.server_name {
            t.put("server_name", text(name));
        }
        if let Some((cert, key)) = &tls.client_cert {
            t.put("client_cert", text(&cert.display().to_string()));
            t.put("client_key", text(&key.display().to_string()));
        }
        e.put("tls", t.into());
    }
    e.into()
}

fn route(r: &RouteConfig, c: &Config) -> Value {
    let mut e = Entries::default();
    e.put("path_prefix", text(&r.path_prefix));
    if let Some(methods) = &r.methods {
        e.put("methods", list(methods.iter().map(|m| text(m.as_str()))));
    }
    let auth = match r.auth {
        AuthMode::Dpop => "dpop",
        AuthMode::DpopOrBearer => "dpop_or_bearer",
        AuthMode::None => "none",
    };
    e.put("auth", text(auth));
    if let Some(nonce) = r.nonce {
        e.put("nonce", Value::Bool(nonce));
    }
    if let Some(u) = r.upstream.and_then(|i| c.upstreams.get(i)) {
        e.put("upstream", text(&u.name));
    }
    if r.strip_prefix {
        e.put("strip_prefix", Value::Bool(true));
    }
    if let Some(n) = r.max_body_bytes {
        e.put("max_body_bytes", num(n));
    }
    if let Some(issuers) = &r.issuers {
        e.put("issuers", list(issuers.iter().map(|i| text(i))));
    }
    let req = &r.require;
    if !req.scopes.is_empty() || !req.claims.is_empty() {
        let mut q = Entries::default();
        if !req.scopes.is_empty() {
            q.put("scopes", list(req.scopes.iter().map(|s| text(s))));
        }
        if !req.claims.is_empty() {
            let mut c = Entries::default();
            for (k, v) in &req.claims {
                c.put(k, text(v));
            }
            q.put("claims", c.into());
        }
        e.put("require", q.into());
    }
    e.into()
}

fn dpop(c: &Config) -> Value {
    let d = &c.dpop;
    let mut nonce = Entries::default();
    nonce.put("enabled", Value::Bool(d.nonce.enabled));
    nonce.put("secrets", list(d.nonce.secrets.iter().map(|_| text(MASK))));
    nonce.put("lifetime", dur(d.nonce.lifetime));
    let mut e = Entries::default();
    e.put("algorithms", algorithms(d.algorithms));
    e.put("proof_max_age", dur(d.proof_max_age));
    e.put("clock_skew", dur(d.clock_skew));
    e.put("require_ath", Value::Bool(d.require_ath));
    e.put("nonce", nonce.into());
    e.into()
}

fn replay_cache(c: &Config) -> Value {
    let mut e = Entries::default();
    match &c.replay_cache.backend {
        ReplayBackend::Memory { capacity } => {
            e.put("backend", text("memory"));
            e.put("capacity", num(*capacity as u64));
        }
        ReplayBackend::Redis {
            url,
            key_prefix,
            timeout,
        } => {
            e.put("backend", text("redis"));
            e.put("redis_url", text(&mask_redis_password(url.expose())));
            e.put("key_prefix", text(key_prefix));
            e.put("timeout", dur(*timeout));
        }
        ReplayBackend::RedisCluster {
            urls,
            key_prefix,
            timeout,
        } => {
            e.put("backend", text("redis_cluster"));
            e.put("redis_urls", masked_urls(urls));
            e.put("key_prefix", text(key_prefix));
            e.put("timeout", dur(*timeout));
        }
        ReplayBackend::RedisSentinel {
            urls,
            master,
            key_prefix,
            timeout,
        } => {
            e.put("backend", text("redis_sentinel"));
            e.put("redis_urls", masked_urls(urls));
            e.put("sentinel_master", text(master));
            e.put("key_prefix", text(key_prefix));
            e.put("timeout", dur(*timeout));
        }
    }
    if !matches!(c.replay_cache.backend, ReplayBackend::Memory { .. }) {
        e.put("min_replicas", num(c.replay_cache.min_replicas));
    }
    e.put("per_key_limit", num(c.replay_cache.per_key_limit));
    let on_error = match c.replay_cache.on_error {
        OnError::Reject => "reject",
        OnError::Allow => "allow",
    };
    e.put("on_error", text(on_error));
    e.into()
}

/// `redis://user:password@host` → `redis://user:***@host`; user info without `:` may be a
/// bare password to some clients, so it is masked whole.
pub(crate) fn mask_redis_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return MASK.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let masked = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:{MASK}"),
        None => MASK.to_owned(),
    };
    format!("{scheme}://{masked}@{host}{tail}")
}

fn access_token(a: &AccessTokenConfig) -> Value {
    let mut e = Entries::default();
    let format = match a.format {
        TokenFormat::Jwt => "jwt",
        TokenFormat::Introspection => "introspection",
    };
    e.put("format", text(format));
    e.put("issuer", text(&a.issuer));
    if let Some(audience) = &a.audience {
        e.put("audience", text(audience));
    }
    match &a.keys {
        KeySource::Uri(uri) => e.put("jwks_uri", text(uri)),
        KeySource::File(path) => e.put("jwks_file", text(&path.display().to_string())),
        KeySource::Discovery => {}
    }
    e.put("algorithms", algorithms(a.algorithms));
    e.put("leeway", dur(a.leeway));
    e.put("require_typ", Value::Bool(a.require_typ));
    if a.allow_insecure_http {
        e.put("allow_insecure_http", Value::Bool(true));
    }
    if let Some(ca_file) = &a.ca_file {
        e.put("ca_file", text(&ca_file.display().to_string()));
    }
    if let Some(i) = &a.introspection {
        let mut ie = Entries::default();
        ie.put("endpoint", text(&i.endpoint));
        ie.put("client_id", text(&i.client_id));
        ie.put("client_secret", text(MASK));
        ie.put("cache_ttl", dur(i.cache_ttl));
        e.put("introspection", ie.into());
    }
    e.into()
}

fn forward(c: &Config) -> Value {
    let f = &c.forward;
    let authorization = match f.authorization {
        ForwardAuthorization::Bearer => "bearer",
        ForwardAuthorization::Keep => "keep",
        ForwardAuthorization::Strip => "strip",
    };
    let header = |h: &Option<HeaderName>| h.as_ref().map_or(Value::Null, |h| text(h.as_str()));
    let mut ids = Entries::default();
    ids.put("subject", header(&f.identity_headers.subject));
    ids.put("client_id", header(&f.identity_headers.client_id));
    ids.put("scope", header(&f.identity_headers.scope));
    ids.put("jkt", header(&f.identity_headers.jkt));
    ids.put("issuer", header(&f.identity_headers.issuer));
    let mut e = Entries::default();
    e.put("authorization", text(authorization));
    e.put("identity_headers", ids.into());
    e.into()
}

fn limits(c: &Config) -> Value {
    let l = &c.limits;
    let mut e = Entries::default();
    e.put("max_proof_bytes", num(l.max_proof_bytes as u64));
    e.put("max_header_bytes", num(l.max_header_bytes as u64));
    e.put("header_read_timeout", dur(l.header_read_timeout));
    e.put("idle_timeout", dur(l.idle_timeout));
    e.put("max_connections", num(l.max_connections as u64));
    e.put(
        "max_concurrent_streams",
        num(u64::from(l.max_concurrent_streams)),
    );
    if let Some(n) = l.max_body_bytes {
        e.put("max_body_bytes", num(n));
    }
    e.into()
}

/// `cors`: `allow_headers` and `max_age` only with `answer` (they are refused otherwise).
fn cors(c: &Config) -> Value {
    let mut e = Entries::default();
    e.put(
        "allow_origins",
        list(c.cors_allow_origins.iter().map(|o| text(o))),
    );
    match c.cors.preflight {
        CorsPreflight::Forward => e.put("preflight", text("forward")),
        CorsPreflight::Answer => {
            e.put("preflight", text("answer"));
            e.put(
                "allow_headers",
                list(c.cors.allow_headers.iter().map(|h| text(h.as_str()))),
            );
            e.put("max_age", dur(c.cors.max_age));
        }
    }
    e.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_password_is_masked_and_the_rest_kept() {
        assert_eq!(
            mask_redis_password("redis://user:hunter2@db:6379/0"),
            "redis://user:***@db:6379/0"
        );
        assert_eq!(
            mask_redis_password("rediss://:hunter2@db"),
            "rediss://:***@db"
        );
        assert_eq!(mask_redis_password("redis://hunter2@db"), "redis://***@db");
        assert_eq!(mask_redis_password("redis://db:6379"), "redis://db:6379");
        assert_eq!(mask_redis_password("redis://u:p@ss@db"), "redis://u:***@db");
    }
}
