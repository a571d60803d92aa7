//! JWT access tokens (RFC 9068 §4): typ, alg allow-list, key by `kid`, signature, iss, aud,
//! exp/nbf with leeway, and the `cnf.jkt` shape. The checks are pure (`now` is an argument);
//! verified tokens are kept in `TokenCache` until their `exp`.
//!
//! Header, claims and JWKS entries are read with the same strict views as DPoP proofs
//! (`jose::json`): a member the checks read that appears twice refuses the token (or skips the
//! JWKS entry), where a `serde_json::Map` would keep the last one.

use std::sync::{Arc, RwLock};

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::clock::UnixTime;
use crate::jose::json::{
    parse_object, present, NumMember, ObjMember, ObjectError, StrMember, StrsMember,
};
use crate::jose::jwk::JwkMembers;
use crate::jose::{clip, Algorithm, AlgorithmSet, CompactJws, JwkError, PublicJwk, Thumbprint};

use super::cache::TokenCache;
use super::{TokenError, TokenInfo, TokenMetrics};

/// A JWKS: the authorization server's public keys.
#[derive(Clone, Debug, Default)]
pub struct JwkSet {
    /// The usable keys (entries that failed to parse, or with `use` other than `sig`, are skipped).
    pub keys: Vec<PublicJwk>,
}

/// What `access_token` says about JWTs.
#[derive(Clone, Debug)]
pub struct JwtPolicy {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud` (a member of the `aud` array, or the `aud` string).
    pub audience: String,
    /// Allowed `alg`.
    pub algorithms: AlgorithmSet,
    /// Leeway for exp/nbf, seconds.
    pub leeway: u64,
    /// `typ` must be `at+jwt` / `application/at+jwt`.
    pub require_typ: bool,
    /// The claims kept in [`TokenInfo::claims`] for route policies (none: nothing is parsed
    /// beyond what the checks read).
    pub claims: Vec<String>,
}

/// Validates JWT access tokens against a key set, caching verified tokens.
pub struct JwtValidator {
    policy: JwtPolicy,
    keys: RwLock<KeyState>,
    cache: TokenCache,
    metrics: TokenMetrics,
}

/// The longest access token accepted, in bytes (checked before decoding).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The current keys and a generation number that changes with them, so that a verdict reached
/// with old keys (even one cached concurrently with a reload) is never served.
struct KeyState {
    keys: Arc<JwkSet>,
    generation: u64,
}

/// A JWKS document (RFC 7517 §5), each entry kept as its JSON text so that a bad entry skips
/// that key only.
#[derive(Deserialize)]
struct JwksView<'a> {
    #[serde(default, borrow)]
    keys: Option<Vec<&'a RawValue>>,
    #[serde(flatten)]
    _rest: IgnoredAny,
}

/// The header members the checks read (RFC 9068 §4, RFC 7515 §4.1).
#[derive(Debug, Deserialize)]
struct HeaderView<'a> {
    /// Present at all (whatever its value): refused, no extension is understood.
    #[serde(default, deserialize_with = "present")]
    crit: bool,
    #[serde(default, borrow)]
    typ: StrMember<'a>,
    #[serde(default, borrow)]
    alg: StrMember<'a>,
    #[serde(default, borrow)]
    kid: StrMember<'a>,
    /// Unknown members, checked as JSON and ignored.
    #[serde(flatten)]
    _rest: IgnoredAny,
}

/// The claims the checks read (RFC 9068 §2.2, RFC 7519 §4.1, RFC 9449 §6.1).
#[derive(Debug, Deserialize)]
struct ClaimsView<'a> {
    #[serde(default, borrow)]
    iss: StrMember<'a>,
    #[serde(default, borrow)]
    aud: StrsMember<'a>,
    #[serde(default)]
    exp: NumMember,
    #[serde(default)]
    nbf: NumMember,
    #[serde(default)]
    iat: NumMember,
    #[serde(default, borrow)]
    sub: StrMember<'a>,
    #[serde(default, borrow)]
    client_id: StrMember<'a>,
    #[serde(default, borrow)]
    scope: StrMember<'a>,
    #[serde(default, borrow)]
    scp: StrsMember<'a>,
    #[serde(default, borrow)]
    cnf: ObjMember<CnfView<'a>>,
    /// Unknown claims, checked as JSON and ignored.
    #[serde(flatten)]
    _rest: IgnoredAny,
}

/// The confirmation claim (RFC 7800 §3.1) as DPoP uses it (RFC 9449 §6.1).
#[derive(Debug, Deserialize)]
pub(super) struct CnfView<'a> {
    #[serde(default, borrow)]
    jkt: StrMember<'a>,
    /// Other confirmation methods (`x5t#S256`, ...), ignored.
    #[serde(flatten)]
    _rest: IgnoredAny,
}

/// What verification yields besides [`TokenInfo`].
struct Verified {
    info: TokenInfo,
    nbf: Option<u64>,
}

// === impl JwkSet ===

impl JwkSet {
    /// Parses a JWKS document (`{"keys": [...]}`). An entry that is not a usable signing key
    /// is skipped and the others load: an entry that is not an object, or is marked for
    /// another `use` (RFC 7517 §4.2), silently; a key type, curve or `alg` not supported here
    /// with an info line; a refused key (private members, small-order or non-canonical
    /// Ed25519, RSA under 2048 bits, a member twice, ...) with a warning naming its `kid`.
    pub fn from_json(bytes: &[u8]) -> Result<JwkSet, TokenError> {
        let doc: JwksView<'_> = parse_object(bytes).map_err(|e| {
            TokenError::Malformed(match e {
                ObjectError::NotJson => "JWKS is not a JSON object".into(),
                ObjectError::Duplicate => "JWKS `keys` is not an array, or appears twice".into(),
            })
        })?;
        let Some(entries) = doc.keys else {
            return Err(TokenError::Malformed("JWKS has no keys array".into()));
        };
        let keys = entries
            .iter()
            .enumerate()
            .filter_map(|(index, entry)| key_set_entry(index, entry.get().as_bytes()))
            .collect();
        Ok(JwkSet { keys })
    }

    /// The key for `kid` and `alg`. Without a `kid`, the set must hold exactly one key for `alg`.
    fn select(&self, kid: Option<&str>, alg: Algorithm) -> Result<&PublicJwk, TokenError> {
        // A key that names its own alg is used with that alg only (RFC 7517 §4.4).
        let usable = |k: &&PublicJwk| k.fits(alg) && k.alg().is_none_or(|a| a == alg);
        let Some(kid) = kid else {
            let mut fitting = self.keys.iter().filter(usable);
            return match (fitting.next(), fitting.next()) {
                (Some(key), None) => Ok(key),
                _ => Err(TokenError::UnknownKid { kid: None }),
            };
        };
        let mut named = self.keys.iter().filter(|k| k.kid() == Some(kid)).peekable();
        if named.peek().is_none() {
            return Err(TokenError::UnknownKid {
                kid: Some(kid.to_owned()),
            });
        }
        named.find(usable).ok_or(TokenError::KeyMismatch { alg })
    }
}

/// Reads a `jwks_file`: a JWKS holding at least one usable signing key, or why not (the
/// path is the caller's to name).
pub(crate) fn read_jwks_file(path: &std::path::Path) -> Result<JwkSet, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let keys = JwkSet::from_json(&bytes).map_err(|e| format!("not a usable JWKS: {e}"))?;
    if keys.keys.is_empty() {
        return Err("no usable signing key".to_owned());
    }
    Ok(keys)
}

// === impl JwtValidator ===

impl JwtValidator {
    /// A validator with these keys; `cache_capacity` bounds the verified-token cache; cache
    /// lookups are counted in `metrics`.
    pub fn new(
        policy: JwtPolicy,
        keys: JwkSet,
        cache_capacity: u64,
        metrics: TokenMetrics,
    ) -> Self {
        Self {
            policy,
            keys: RwLock::new(KeyState {
                keys: Arc::new(keys),
                generation: 0,
            }),
            cache: TokenCache::new(cache_capacity),
            metrics,
        }
    }

    /// The counters this validator increments.
    pub(crate) fn metrics(&self) -> &TokenMetrics {
        &self.metrics
    }

    /// Replaces the key set (a JWKS reload); cached tokens signed by removed keys are dropped.
    pub fn set_keys(&self, keys: JwkSet) {
        {
            // A poisoned lock only means a panic elsewhere while holding it; the state is a
            // plain value, still consistent.
            let mut state = self.keys.write().unwrap_or_else(|e| e.into_inner());
            state.keys = Arc::new(keys);
            state.generation = state.generation.wrapping_add(1);
        }
        self.cache.clear();
    }

    /// Validates `token` at `now`; a cache hit costs a hash, not a signature check.
    pub fn validate(&self, token: &str, now: UnixTime) -> Result<Arc<TokenInfo>, TokenError> {
        let (keys, generation) = {
            let state = self.keys.read().unwrap_or_else(|e| e.into_inner());
            (Arc::clone(&state.keys), state.generation)
        };
        let key = TokenCache::key(token);
        if let Some(hit) = self.cache.get(&key) {
            if hit.generation == generation {
                // moka's clock is not ours: the time checks run again on every hit.
                if let Some(exp) = hit.info.exp {
                    check_exp(exp.as_secs(), now.as_secs(), self.policy.leeway)?;
                }
                check_nbf(hit.nbf, now.as_secs(), self.policy.leeway)?;
                self.metrics.cache_hits.inc();
                return Ok(hit.info);
            }
        }
        self.metrics.cache_misses.inc();
        let verified = verify(token, &keys, &self.policy, now)?;
        let info = Arc::new(verified.info);
        self.cache.insert(
            key,
            Arc::clone(&info),
            verified.nbf,
            generation,
            now.as_secs(),
        );
        Ok(info)
    }
}

/// One JWKS entry as a signing key, or `None` (logged, see [`JwkSet::from_json`]).
fn key_set_entry(index: usize, text: &[u8]) -> Option<PublicJwk> {
    let members: JwkMembers<'_> = match parse_object(text) {
        Ok(members) => members,
        Err(ObjectError::NotJson) => return None,
        Err(ObjectError::Duplicate) => {
            tracing::warn!(index, "JWKS entry skipped: a member appears twice");
            return None;
        }
    };
    if !members.is_for_signing() {
        return None;
    }
    match PublicJwk::from_key_set_members(&members) {
        Ok(key) => Some(key),
        Err(error) => {
            let kid = members.kid().map(clip);
            match error {
                JwkError::UnsupportedKty(_)
                | JwkError::UnsupportedCrv(_)
                | JwkError::UnsupportedAlg(_) => {
                    tracing::info!(index, kid, %error, "JWKS entry skipped: not supported here");
                }
                _ => tracing::warn!(index, kid, %error, "JWKS entry skipped: refused key"),
            }
            None
        }
    }
}

/// Every RFC 9068 §4 check, in its order, with `keys` at `now`.
fn verify(
    token: &str,
    keys: &JwkSet,
    policy: &JwtPolicy,
    now: UnixTime,
) -> Result<Verified, TokenError> {
    let jws = CompactJws::parse(token, MAX_TOKEN_BYTES)
        .map_err(|e| TokenError::Malformed(e.to_string()))?;
    let header: HeaderView<'_> = parse_object(&jws.header).map_err(|e| {
        TokenError::Malformed(match e {
            ObjectError::NotJson => "header is not a JSON object".into(),
            ObjectError::Duplicate => "header has a member twice".into(),
        })
    })?;
    // RFC 7515 §4.1.11: no critical extension is understood here.
    if header.crit {
        return Err(TokenError::Malformed(
            "crit header parameter not supported".into(),
        ));
    }
    if policy.require_typ {
        check_typ(&header.typ)?;
    }
    let alg = match header.alg.get() {
        Ok(Some(name)) => Algorithm::from_name(name)
            .filter(|a| policy.algorithms.contains(*a))
            .ok_or_else(|| TokenError::AlgNotAllowed {
                got: Some(name.to_owned()),
            })?,
        _ => return Err(TokenError::AlgNotAllowed { got: None }),
    };
    let kid = header
        .kid
        .get()
        .map_err(|_| TokenError::Malformed("kid is not a string".into()))?;
    keys.select(kid, alg)?
        .verify(alg, jws.signing_input, &jws.signature)
        .map_err(|_| TokenError::Signature)?;
    let claims: ClaimsView<'_> = parse_object(&jws.payload).map_err(|e| {
        TokenError::Malformed(match e {
            ObjectError::NotJson => "claims are not a JSON object".into(),
            ObjectError::Duplicate => "claims have a member twice".into(),
        })
    })?;
    let mut verified = check_claims(&claims, policy, now)?;
    verified.info.claims = kept_claims(&jws.payload, &policy.claims)?;
    Ok(verified)
}

/// The members of the claims text named in `names`, as JSON values. Read again only when a
/// route needs one; a kept claim that appears twice is refused like a checked one.
fn kept_claims(payload: &[u8], names: &[String]) -> Result<Vec<(String, Value)>, TokenError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let malformed = || TokenError::Malformed("claims are not a JSON object".into());
    let pairs: KeptClaims = serde_json::from_slice(payload).map_err(|_| malformed())?;
    let mut kept: Vec<(String, Value)> = Vec::new();
    for (name, value) in pairs.0 {
        if !names.contains(&name) {
            continue;
        }
        if kept.iter().any(|(n, _)| *n == name) {
            return Err(TokenError::Malformed("claims have a member twice".into()));
        }
        kept.push((name, value));
    }
    Ok(kept)
}

/// Every member of a JSON object in order, duplicates included (a `Map` keeps the last).
struct KeptClaims(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for KeptClaims {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = KeptClaims;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<KeptClaims, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(KeptClaims(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// RFC 9068 §4 step 2 (and §2.1): `typ` is `at+jwt`, media types being case-insensitive.
fn check_typ(typ: &StrMember<'_>) -> Result<(), TokenError> {
    match typ.get() {
        Ok(Some(t))
            if t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt") =>
        {
            Ok(())
        }
        Ok(Some(t)) => Err(TokenError::Typ {
            got: Some(t.to_owned()),
        }),
        _ => Err(TokenError::Typ { got: None }),
    }
}

/// RFC 9068 §4 steps 3, 4, 7; RFC 7519 §4.1.5-6; RFC 9449 §6.1 for `cnf`.
fn check_claims(
    claims: &ClaimsView<'_>,
    policy: &JwtPolicy,
    now: UnixTime,
) -> Result<Verified, TokenError> {
    let now = now.as_secs();
    match claims.iss.get() {
        Ok(Some(iss)) if iss == policy.issuer => {}
        other => {
            return Err(TokenError::Issuer {
                expected: policy.issuer.clone(),
                got: other.ok().flatten().map(str::to_owned),
            })
        }
    }
    let is_ours = |aud: &StrMember<'_>| aud.get() == Ok(Some(policy.audience.as_str()));
    let audience_ok = match &claims.aud {
        StrsMember::Str(aud) => *aud == policy.audience,
        StrsMember::Array(auds) => auds.iter().any(is_ours),
        StrsMember::Absent | StrsMember::Other => false,
    };
    if !audience_ok {
        return Err(TokenError::Audience {
            expected: policy.audience.clone(),
        });
    }
    let exp = date(claims.exp, "exp")?.ok_or(TokenError::ExpMissing)?;
    check_exp(exp, now, policy.leeway)?;
    let nbf = date(claims.nbf, "nbf")?;
    check_nbf(nbf, now, policy.leeway)?;
    if let Some(iat) = date(claims.iat, "iat")? {
        if iat > now.saturating_add(policy.leeway) {
            return Err(TokenError::IssuedInFuture { iat, now });
        }
    }
    let jkt = jkt(&claims.cnf)?;
    // RFC 9068 §2.2: `sub` is required. It, `client_id` and `scope` are strings: they become
    // identity headers, and a claim of another type is not one to guess at.
    let sub = string(&claims.sub, "sub")?
        .ok_or_else(|| TokenError::Malformed("sub is missing (RFC 9068 §2.2)".into()))?;
    let client_id = string(&claims.client_id, "client_id")?;
    // RFC 9068 §2.2.3: `scope` is a space-separated string; some servers send `scp` as an array.
    let scope = string(&claims.scope, "scope")?.or_else(|| match &claims.scp {
        StrsMember::Array(scp) => {
            let names: Vec<&str> = scp.iter().filter_map(|s| s.get().ok().flatten()).collect();
            Some(names.join(" "))
        }
        _ => None,
    });
    Ok(Verified {
        info: TokenInfo {
            sub: Some(sub),
            client_id,
            scope,
            jkt,
            exp: Some(UnixTime(exp)),
            iss: Some(policy.issuer.clone()),
            claims: Vec::new(),
        },
        nbf,
    })
}

/// The `iss` of a JWT-shaped `token`, read without checking anything: only to choose which
/// issuer's entry checks it (which then verifies the signature and `iss` itself). `None` for
/// anything else (an opaque token, unreadable claims, no string `iss`).
pub(crate) fn unverified_iss(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Iss<'a> {
        #[serde(default, borrow)]
        iss: StrMember<'a>,
        #[serde(flatten)]
        _rest: IgnoredAny,
    }
    let jws = CompactJws::parse(token, MAX_TOKEN_BYTES).ok()?;
    let claims: Iss<'_> = parse_object(&jws.payload).ok()?;
    claims.iss.get().ok().flatten().map(str::to_owned)
}

/// RFC 9449 §6.1 (JWT) and §6.2 (introspection): `cnf.jkt`, when present, is a base64url
/// SHA-256 thumbprint. For a parsed object (an introspection answer); JWTs use [`jkt`].
pub(super) fn cnf_jkt(claims: &Map<String, Value>) -> Result<Option<Thumbprint>, TokenError> {
    let cnf = match claims.get("cnf") {
        None => ObjMember::Absent,
        Some(value) => ObjMember::deserialize(value).map_err(|_| TokenError::CnfMalformed)?,
    };
    jkt(&cnf)
}

/// The thumbprint in a `cnf` member, see [`cnf_jkt`].
fn jkt(cnf: &ObjMember<CnfView<'_>>) -> Result<Option<Thumbprint>, TokenError> {
    match cnf {
        ObjMember::Absent => Ok(None),
        ObjMember::Obj(cnf) => match cnf.jkt.get() {
            Ok(None) => Ok(None),
            Ok(Some(jkt)) => Thumbprint::from_b64(jkt)
                .map(Some)
                .ok_or(TokenError::CnfMalformed),
            Err(_) => Err(TokenError::CnfMalformed),
        },
        ObjMember::NotObj => Err(TokenError::CnfMalformed),
    }
}

/// `now <= exp + leeway`.
pub(super) fn check_exp(exp: u64, now: u64, leeway: u64) -> Result<(), TokenError> {
    if now > exp.saturating_add(leeway) {
        return Err(TokenError::Expired { exp, now });
    }
    Ok(())
}

/// `nbf <= now + leeway`, when there is an `nbf`.
pub(super) fn check_nbf(nbf: Option<u64>, now: u64, leeway: u64) -> Result<(), TokenError> {
    match nbf {
        Some(nbf) if nbf > now.saturating_add(leeway) => Err(TokenError::NotYetValid { nbf, now }),
        _ => Ok(()),
    }
}

/// A NumericDate claim (RFC 7519 §2: seconds, possibly fractional; floored as
/// [`NumMember`] says) of a parsed object (an introspection answer); JWTs use [`date`].
pub(super) fn numeric_date(
    claims: &Map<String, Value>,
    name: &str,
) -> Result<Option<u64>, TokenError> {
    let member = match claims.get(name) {
        None => NumMember::Absent,
        // A Value is any JSON: a NumMember takes every one.
        Some(value) => NumMember::deserialize(value).unwrap_or(NumMember::NotNum),
    };
    date(member, name)
}

/// A string claim: `None` when absent, malformed when present and not a string (`null`
/// included).
fn string(member: &StrMember<'_>, name: &str) -> Result<Option<String>, TokenError> {
    member
        .get()
        .map(|value| value.map(str::to_owned))
        .map_err(|_| TokenError::Malformed(format!("{name} is not a string")))
}

/// [`string`] for a parsed object (an introspection answer).
pub(super) fn string_member(
    claims: &Map<String, Value>,
    name: &str,
) -> Result<Option<String>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(TokenError::Malformed(format!("{name} is not a string"))),
    }
}

/// A NumericDate member: `None` when absent. A negative number is 0 and a huge one saturates:
/// both then fail or pass the window checks the way their true values would.
fn date(member: NumMember, name: &str) -> Result<Option<u64>, TokenError> {
    match member {
        NumMember::Absent => Ok(None),
        NumMember::Num(secs) => Ok(Some(secs)),
        NumMember::NotNum => Err(TokenError::Malformed(format!("{name} is not a number"))),
    }
}

#[cfg(test)]
mod tests;
