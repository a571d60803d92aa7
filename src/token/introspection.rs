//! Opaque access tokens, checked by RFC 7662 token introspection. I/O lives here (one POST per
//! token not in the cache); the reading of the answer ([`read_answer`]) is pure, with `now` as an
//! argument.
//!
//! The gateway authenticates with `client_secret_basic` (RFC 6749 §2.3.1: id and secret are
//! form-urlencoded before base64). Answers are cached by SHA-256 of the token: an active one for
//! `cache_ttl` but never past its `exp`, an inactive or refused one for at most
//! [`REFUSED_TTL`]. An outage (connect error, timeout, a status other than 200, an unparseable
//! answer) is [`TokenFailure::Unavailable`] (503), never a 401, and is not cached.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::HeaderValue;
use moka::sync::Cache;
use serde_json::{Map, Value};

use crate::clock::UnixTime;

use super::cache::{OwnTtl, TokenCache, TokenKey, Ttl, MAX_TTL};
use super::http::AsClient;
use super::jwt::{check_exp, check_nbf, cnf_jkt, numeric_date, string_member};
use super::{TokenError, TokenFailure, TokenInfo, TokenMetrics};

/// An inactive (or otherwise refused) answer is remembered at most this long: long enough to
/// absorb a burst of retries with a revoked token, short enough that a token the AS starts
/// accepting (clock skew between issue and introspection) is soon asked about again.
pub(crate) const REFUSED_TTL: Duration = Duration::from_secs(10);

/// Introspection answers kept in memory at most.
pub(crate) const CACHE_CAPACITY: u64 = 100_000;

/// What `access_token` says about introspected tokens.
#[derive(Clone, Debug)]
pub struct IntrospectionPolicy {
    /// `access_token.issuer`: an answer's `iss`, when present, must equal it.
    pub issuer: String,
    /// `access_token.audience`: when set, an answer's `aud`, when present, must contain it.
    pub audience: Option<String>,
    /// `access_token.leeway`, seconds, for `exp`/`nbf`.
    pub leeway: u64,
    /// `access_token.introspection.cache_ttl`.
    pub cache_ttl: Duration,
    /// The claims kept in [`TokenInfo::claims`] for route policies.
    pub claims: Vec<String>,
}

/// An RFC 7662 client with a verdict cache.
pub struct Introspector {
    endpoint: String,
    authorization: HeaderValue,
    client: AsClient,
    policy: IntrospectionPolicy,
    cache: Cache<TokenKey, Cached>,
    metrics: TokenMetrics,
    /// Bounds the requests in flight to the authorization server: a flood of new tokens (each
    /// with a valid self-made proof) cannot turn into a flood of introspection calls.
    in_flight: tokio::sync::Semaphore,
}

/// Introspection requests in flight at most; past it, a request waits up to
/// [`IN_FLIGHT_WAIT`] for a slot, then is answered 503.
const MAX_IN_FLIGHT: usize = 64;

/// How long a request waits for an introspection slot.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(1);

/// A cached verdict and how long moka keeps it.
#[derive(Clone, Debug)]
struct Cached {
    verdict: Result<Arc<TokenInfo>, TokenFailure>,
    nbf: Option<u64>,
    ttl: Duration,
}

/// What an answer says: the verdict, and the `nbf` to re-check on cache hits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The token's claims, or why it is refused.
    pub verdict: Result<Arc<TokenInfo>, TokenFailure>,
    /// Its `nbf`.
    pub nbf: Option<u64>,
}

// === impl Introspector ===

impl Introspector {
    /// A client for `endpoint`, authenticating as `client_id` with `client_secret`.
    pub fn new(
        endpoint: String,
        client_id: &str,
        client_secret: &str,
        client: AsClient,
        policy: IntrospectionPolicy,
        metrics: TokenMetrics,
    ) -> Result<Introspector, String> {
        Ok(Introspector {
            endpoint,
            authorization: basic_authorization(client_id, client_secret)?,
            client,
            policy,
            cache: Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .expire_after(OwnTtl)
                .build(),
            metrics,
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
        })
    }

    /// Validates `token` at `now`: from the cache, else by asking the endpoint.
    pub async fn validate(
        &self,
        token: &str,
        now: UnixTime,
    ) -> Result<Arc<TokenInfo>, TokenFailure> {
        let key = TokenCache::key(token);
        if let Some(hit) = self.cache.get(&key) {
            self.metrics.cache_hits.inc();
            let info = hit.verdict?;
            // moka's clock is not ours: the time checks run again on every hit.
            if let Some(exp) = info.exp {
                check_exp(exp.as_secs(), now.as_secs(), self.policy.leeway)?;
            }
            check_nbf(hit.nbf, now.as_secs(), self.policy.leeway)?;
            return Ok(info);
        }
        let Ok(Ok(_slot)) = tokio::time::timeout(IN_FLIGHT_WAIT, self.in_flight.acquire()).await
        else {
            tracing::warn!(endpoint = %self.endpoint, "introspection saturated: {MAX_IN_FLIGHT} requests in flight");
            return Err(TokenFailure::Unavailable(
                "too many introspection requests in flight".into(),
            ));
        };
        self.metrics.cache_misses.inc();
        let answer = match self.ask(token).await {
            Ok(answer) => {
                self.metrics.introspections.inc();
                answer
            }
            Err(why) => {
                self.metrics.introspection_failures.inc();
                tracing::warn!(endpoint = %self.endpoint, %why, "token introspection failed");
                return Err(TokenFailure::Unavailable(why));
            }
        };
        let Answer { verdict, nbf } = read_answer(&answer, &self.policy, now);
        if let Some(ttl) = cache_ttl(&verdict, &self.policy, now) {
            self.cache.insert(
                key,
                Cached {
                    verdict: verdict.clone(),
                    nbf,
                    ttl,
                },
            );
        }
        verdict
    }

    /// One RFC 7662 §2.1 request; the parsed JSON object, or why there is none.
    async fn ask(&self, token: &str) -> Result<Map<String, Value>, String> {
        let form = format!(
            "token={}&token_type_hint=access_token",
            form_urlencode(token)
        );
        let resp = self
            .client
            .post_form(&self.endpoint, &self.authorization, form)
            .await
            .map_err(|e| e.to_string())?;
        if resp.status != 200 {
            return Err(format!("introspection answered HTTP {}", resp.status));
        }
        serde_json::from_slice(&resp.body)
            .map_err(|_| "introspection answer is not a JSON object".to_owned())
    }
}

/// Reads an RFC 7662 §2.2 answer: `active`, then `token_type`, `iss`, `aud`, `exp`, `nbf` and
/// `cnf.jkt` when present. An answer without a boolean `active` is unparseable, hence
/// [`TokenFailure::Unavailable`].
pub(crate) fn read_answer(
    answer: &Map<String, Value>,
    policy: &IntrospectionPolicy,
    now: UnixTime,
) -> Answer {
    let nbf = numeric_date(answer, "nbf").ok().flatten();
    Answer {
        verdict: check_answer(answer, policy, now).map(Arc::new),
        nbf,
    }
}

fn check_answer(
    answer: &Map<String, Value>,
    policy: &IntrospectionPolicy,
    now: UnixTime,
) -> Result<TokenInfo, TokenFailure> {
    match answer.get("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Err(TokenFailure::Invalid(TokenError::Inactive)),
        _ => {
            return Err(TokenFailure::Unavailable(
                "introspection answer has no boolean active".into(),
            ))
        }
    }
    // RFC 9449 §6.2: a DPoP-bound token introspects as `token_type: DPoP`; RFC 6749 §7.1 type
    // names are case-insensitive.
    match answer.get("token_type") {
        None => {}
        Some(Value::String(t))
            if t.eq_ignore_ascii_case("dpop") || t.eq_ignore_ascii_case("bearer") => {}
        Some(other) => {
            return Err(TokenFailure::Invalid(TokenError::TokenType {
                got: other
                    .as_str()
                    .map_or_else(|| other.to_string(), str::to_owned),
            }))
        }
    }
    match answer.get("iss") {
        None => {}
        Some(Value::String(iss)) if *iss == policy.issuer => {}
        Some(other) => {
            return Err(TokenFailure::Invalid(TokenError::Issuer {
                expected: policy.issuer.clone(),
                got: other.as_str().map(str::to_owned),
            }))
        }
    }
    if let (Some(expected), Some(aud)) = (&policy.audience, answer.get("aud")) {
        let ok = match aud {
            Value::String(a) => a == expected,
            Value::Array(auds) => auds.iter().any(|a| a.as_str() == Some(expected)),
            _ => false,
        };
        if !ok {
            return Err(TokenFailure::Invalid(TokenError::Audience {
                expected: expected.clone(),
            }));
        }
    }
    let secs = now.as_secs();
    let exp = numeric_date(answer, "exp")?;
    if let Some(exp) = exp {
        check_exp(exp, secs, policy.leeway)?;
    }
    check_nbf(numeric_date(answer, "nbf")?, secs, policy.leeway)?;
    // Optional here (RFC 7662 §2.2), but strings when present: they become identity headers.
    Ok(TokenInfo {
        sub: string_member(answer, "sub")?,
        client_id: string_member(answer, "client_id")?,
        scope: match string_member(answer, "scope")? {
            Some(scope) => Some(scope),
            None => scp(answer),
        },
        jkt: cnf_jkt(answer)?,
        exp: exp.map(UnixTime),
        iss: Some(policy.issuer.clone()),
        claims: policy
            .claims
            .iter()
            .filter_map(|name| answer.get(name).map(|v| (name.clone(), v.clone())))
            .collect(),
    })
}

/// `scp` as an array of strings (what some servers send instead of `scope`), space-joined.
fn scp(answer: &Map<String, Value>) -> Option<String> {
    let Value::Array(items) = answer.get("scp")? else {
        return None;
    };
    let names: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
    Some(names.join(" "))
}

/// How long to remember `verdict`: an active token for `cache_ttl` but never past its `exp`
/// (not at all when it has none left); a refused one for at most [`REFUSED_TTL`]; an outage
/// never.
fn cache_ttl(
    verdict: &Result<Arc<TokenInfo>, TokenFailure>,
    policy: &IntrospectionPolicy,
    now: UnixTime,
) -> Option<Duration> {
    let ttl = match verdict {
        Ok(info) => match info.exp {
            Some(exp) => {
                let left = exp.as_secs().saturating_sub(now.as_secs());
                policy.cache_ttl.min(Duration::from_secs(left))
            }
            None => policy.cache_ttl,
        },
        Err(TokenFailure::Unavailable(_)) => return None,
        Err(_) => policy.cache_ttl.min(REFUSED_TTL),
    };
    (!ttl.is_zero()).then_some(ttl.min(MAX_TTL))
}

/// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1),
/// marked sensitive so it never reaches a log.
fn basic_authorization(client_id: &str, client_secret: &str) -> Result<HeaderValue, String> {
    let pair = format!(
        "{}:{}",
        form_urlencode(client_id),
        form_urlencode(client_secret)
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .map_err(|_| "introspection client credentials do not form a header".to_owned())?;
    value.set_sensitive(true);
    Ok(value)
}

/// `application/x-www-form-urlencoded` (RFC 6749 Appendix B, WHATWG URL §5.2): alphanumerics
/// and `*-._` stay, space is `+`, every other byte is `%XX`.
pub(crate) fn form_urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

// === impl Cached ===

impl Ttl for Cached {
    fn ttl(&self) -> Duration {
        self.ttl
    }
}

#[cfg(test)]
mod tests;
