//! JWT access tokens (RFC 9068 §4): typ, alg allow-list, key by `kid`, signature, iss, aud,
//! exp/nbf with leeway, and the `cnf.jkt` shape. The checks are pure (`now` is an argument);
//! verified tokens are kept in [`TokenCache`] until their `exp`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value};

use crate::clock::UnixTime;
use crate::jose::{Algorithm, AlgorithmSet, CompactJws, PublicJwk, Thumbprint};

use super::cache::TokenCache;
use super::{TokenError, TokenInfo};

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
}

/// Validates JWT access tokens against a key set, caching verified tokens.
pub struct JwtValidator {
    policy: JwtPolicy,
    keys: RwLock<KeyState>,
    cache: TokenCache,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// The longest access token accepted, in bytes (checked before decoding).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The current keys and a generation number that changes with them, so that a verdict reached
/// with old keys (even one cached concurrently with a reload) is never served.
struct KeyState {
    keys: Arc<JwkSet>,
    generation: u64,
}

/// What verification yields besides [`TokenInfo`].
struct Verified {
    info: TokenInfo,
    nbf: Option<u64>,
}

// === impl JwkSet ===

impl JwkSet {
    /// Parses a JWKS document (`{"keys": [...]}`).
    pub fn from_json(bytes: &[u8]) -> Result<JwkSet, TokenError> {
        let doc: Map<String, Value> = serde_json::from_slice(bytes)
            .map_err(|_| TokenError::Malformed("JWKS is not a JSON object".into()))?;
        let Some(Value::Array(entries)) = doc.get("keys") else {
            return Err(TokenError::Malformed("JWKS has no keys array".into()));
        };
        let keys = entries
            .iter()
            .filter_map(Value::as_object)
            // RFC 7517 §4.2: a key marked for another use (`enc`) must not verify signatures.
            .filter(|jwk| jwk.get("use").is_none_or(|u| u == "sig"))
            .filter_map(|jwk| PublicJwk::from_json(jwk).ok())
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

// === impl JwtValidator ===

impl JwtValidator {
    /// A validator with these keys; `cache_capacity` bounds the verified-token cache.
    pub fn new(policy: JwtPolicy, keys: JwkSet, cache_capacity: u64) -> Self {
        Self {
            policy,
            keys: RwLock::new(KeyState {
                keys: Arc::new(keys),
                generation: 0,
            }),
            cache: TokenCache::new(cache_capacity),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Verified-token cache lookups so far: (hits, misses).
    pub fn cache_stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
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
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(hit.info);
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
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

/// Every RFC 9068 §4 check, in its order, with `keys` at `now`.
fn verify(
    token: &str,
    keys: &JwkSet,
    policy: &JwtPolicy,
    now: UnixTime,
) -> Result<Verified, TokenError> {
    let jws = CompactJws::parse(token, MAX_TOKEN_BYTES)
        .map_err(|e| TokenError::Malformed(e.to_string()))?;
    let header: Map<String, Value> = serde_json::from_slice(&jws.header)
        .map_err(|_| TokenError::Malformed("header is not a JSON object".into()))?;
    if policy.require_typ {
        check_typ(&header)?;
    }
    let alg = match header.get("alg") {
        Some(Value::String(name)) => Algorithm::from_name(name)
            .filter(|a| policy.algorithms.contains(*a))
            .ok_or_else(|| TokenError::AlgNotAllowed {
                got: Some(name.clone()),
            })?,
        _ => return Err(TokenError::AlgNotAllowed { got: None }),
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.as_str()),
        Some(_) => return Err(TokenError::Malformed("kid is not a string".into())),
    };
    keys.select(kid, alg)?
        .verify(alg, jws.signing_input, &jws.signature)
        .map_err(|_| TokenError::Signature)?;
    let claims: Map<String, Value> = serde_json::from_slice(&jws.payload)
        .map_err(|_| TokenError::Malformed("claims are not a JSON object".into()))?;
    check_claims(&claims, policy, now)
}

/// RFC 9068 §4 step 2 (and §2.1): `typ` is `at+jwt`, media types being case-insensitive.
fn check_typ(header: &Map<String, Value>) -> Result<(), TokenError> {
    match header.get("typ") {
        Some(Value::String(t))
            if t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt") =>
        {
            Ok(())
        }
        Some(Value::String(t)) => Err(TokenError::Typ {
            got: Some(t.clone()),
        }),
        _ => Err(TokenError::Typ { got: None }),
    }
}

/// RFC 9068 §4 steps 3, 4, 7; RFC 7519 §4.1.5-6; RFC 9449 §6.1 for `cnf`.
fn check_claims(
    claims: &Map<String, Value>,
    policy: &JwtPolicy,
    now: UnixTime,
) -> Result<Verified, TokenError> {
    let now = now.as_secs();
    match claims.get("iss") {
        Some(Value::String(iss)) if *iss == policy.issuer => {}
        other => {
            return Err(TokenError::Issuer {
                expected: policy.issuer.clone(),
                got: other.and_then(Value::as_str).map(str::to_owned),
            })
        }
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => *aud == policy.audience,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(&policy.audience)),
        _ => false,
    };
    if !audience_ok {
        return Err(TokenError::Audience {
            expected: policy.audience.clone(),
        });
    }
    let exp = numeric_date(claims, "exp")?.ok_or(TokenError::ExpMissing)?;
    check_exp(exp, now, policy.leeway)?;
    let nbf = numeric_date(claims, "nbf")?;
    check_nbf(nbf, now, policy.leeway)?;
    if let Some(iat) = numeric_date(claims, "iat")? {
        if iat > now.saturating_add(policy.leeway) {
            return Err(TokenError::IssuedInFuture { iat, now });
        }
    }
    let jkt = cnf_jkt(claims)?;
    let string = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    // RFC 9068 §2.2.3: `scope` is a space-separated string; some servers send `scp` as an array.
    let scope = string("scope").or_else(|| {
        let scp = claims.get("scp")?.as_array()?;
        let names: Vec<&str> = scp.iter().filter_map(Value::as_str).collect();
        Some(names.join(" "))
    });
    Ok(Verified {
        info: TokenInfo {
            sub: string("sub"),
            client_id: string("client_id"),
            scope,
            jkt,
            exp: Some(UnixTime(exp)),
        },
        nbf,
    })
}

/// RFC 9449 §6.1 (JWT) and §6.2 (introspection): `cnf.jkt`, when present, is a base64url
/// SHA-256 thumbprint.
pub(super) fn cnf_jkt(claims: &Map<String, Value>) -> Result<Option<Thumbprint>, TokenError> {
    match claims.get("cnf") {
        None => Ok(None),
        Some(Value::Object(cnf)) => match cnf.get("jkt") {
            None => Ok(None),
            Some(Value::String(jkt)) => Thumbprint::from_b64(jkt)
                .map(Some)
                .ok_or(TokenError::CnfMalformed),
            Some(_) => Err(TokenError::CnfMalformed),
        },
        Some(_) => Err(TokenError::CnfMalformed),
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

/// A NumericDate claim (RFC 7519 §2: seconds, possibly fractional; floored here).
pub(super) fn numeric_date(
    claims: &Map<String, Value>,
    name: &str,
) -> Result<Option<u64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(Some(match n.as_u64() {
            Some(secs) => secs,
            // Negative saturates to 0, huge to u64::MAX: both then fail or pass the window
            // checks the way their true values would.
            None => n.as_f64().map_or(0, |f| f.floor() as u64),
        })),
        Some(_) => Err(TokenError::Malformed(format!("{name} is not a number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::sign::PrivateJwk;
    use crate::token::TokenCheck;
    use base64::Engine as _;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;
    const ISS: &str = "https://as.example.com";
    const AUD: &str = "https://api.example.com";

    fn policy() -> JwtPolicy {
        JwtPolicy {
            issuer: ISS.into(),
            audience: AUD.into(),
            algorithms: Algorithm::ALL.into_iter().collect(),
            leeway: 30,
            require_typ: true,
        }
    }

    fn jwks(keys: &[(&PrivateJwk, &str)]) -> JwkSet {
        let keys: Vec<Value> = keys
            .iter()
            .map(|(k, kid)| {
                let mut jwk = k.public_jwk();
                jwk.insert("kid".into(), (*kid).into());
                Value::Object(jwk)
            })
            .collect();
        JwkSet::from_json(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    fn claims() -> Value {
        json!({
            "iss": ISS, "aud": AUD, "sub": "alice", "client_id": "app", "scope": "read write",
            "exp": NOW + 300, "iat": NOW, "jti": "t-1",
            "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
        })
    }

    fn sign(key: &PrivateJwk, kid: Option<&str>, claims: &Value) -> String {
        let mut h = Map::new();
        h.insert("typ".into(), "at+jwt".into());
        if let Some(kid) = kid {
            h.insert("kid".into(), kid.into());
        }
        key.sign_jws(h, claims).unwrap()
    }

    struct Fixture {
        key: PrivateJwk,
        validator: JwtValidator,
    }

    fn fixture() -> Fixture {
        let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
        let validator = JwtValidator::new(policy(), jwks(&[(&key, "k1")]), 100);
        Fixture { key, validator }
    }

    impl Fixture {
        fn token(&self, edit: impl FnOnce(&mut Value)) -> String {
            let mut c = claims();
            edit(&mut c);
            sign(&self.key, Some("k1"), &c)
        }

        fn check(&self, token: &str) -> Result<Arc<TokenInfo>, TokenError> {
            self.validator.validate(token, UnixTime(NOW))
        }
    }

    #[test]
    fn valid_token_yields_its_info() {
        let f = fixture();
        let info = f.check(&f.token(|_| {})).unwrap();
        assert_eq!(info.sub.as_deref(), Some("alice"));
        assert_eq!(info.client_id.as_deref(), Some("app"));
        assert_eq!(info.scope.as_deref(), Some("read write"));
        assert_eq!(
            info.jkt.unwrap().to_string(),
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
        assert_eq!(info.exp, Some(UnixTime(NOW + 300)));
    }

    #[test]
    fn every_algorithm_verifies() {
        for alg in Algorithm::ALL {
            let key = PrivateJwk::generate(alg).unwrap();
            let v = JwtValidator::new(policy(), jwks(&[(&key, "k")]), 10);
            assert!(
                v.validate(&sign(&key, Some("k"), &claims()), UnixTime(NOW))
                    .is_ok(),
                "{alg}"
            );
        }
    }

    #[test]
    fn scp_array_is_joined_when_scope_is_absent() {
        let f = fixture();
        let info = f
            .check(&f.token(|c| {
                c.as_object_mut().unwrap().remove("scope");
                c["scp"] = json!(["a", "b"]);
            }))
            .unwrap();
        assert_eq!(info.scope.as_deref(), Some("a b"));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let f = fixture();
        for token in ["", "a.b", "a.b.c", &"x".repeat(MAX_TOKEN_BYTES + 1)] {
            assert_eq!(f.check(token).unwrap_err().check(), TokenCheck::Malformed);
        }
        let not_object = f.key.sign_jws(
            {
                let mut h = Map::new();
                h.insert("typ".into(), "at+jwt".into());
                h.insert("kid".into(), "k1".into());
                h
            },
            &json!("claims"),
        );
        assert_eq!(
            f.check(&not_object.unwrap()).unwrap_err().check(),
            TokenCheck::Malformed
        );
    }

    #[test]
    fn typ_must_be_at_jwt_when_required() {
        let f = fixture();
        let mut c = claims();
        c["jti"] = "typ".into();
        let sign_typ = |typ: Option<&str>| {
            let mut h = Map::new();
            h.insert("kid".into(), "k1".into());
            if let Some(t) = typ {
                h.insert("typ".into(), t.into());
            }
            f.key.sign_jws(h, &c).unwrap()
        };
        assert!(f.check(&sign_typ(Some("application/AT+JWT"))).is_ok());
        assert_eq!(
            f.check(&sign_typ(Some("JWT"))).unwrap_err(),
            TokenError::Typ {
                got: Some("JWT".into())
            }
        );
        assert_eq!(
            f.check(&sign_typ(None)).unwrap_err(),
            TokenError::Typ { got: None }
        );
        let lax = JwtValidator::new(
            JwtPolicy {
                require_typ: false,
                ..policy()
            },
            jwks(&[(&f.key, "k1")]),
            10,
        );
        assert!(lax.validate(&sign_typ(Some("JWT")), UnixTime(NOW)).is_ok());
    }

    #[test]
    fn alg_must_be_allowed() {
        let f = fixture();
        let token = f.token(|_| {});
        let strict = JwtValidator::new(
            JwtPolicy {
                algorithms: [Algorithm::RS256].into_iter().collect(),
                ..policy()
            },
            jwks(&[(&f.key, "k1")]),
            10,
        );
        assert_eq!(
            strict.validate(&token, UnixTime(NOW)).unwrap_err(),
            TokenError::AlgNotAllowed {
                got: Some("ES256".into())
            }
        );
        // `none`: refused on alg, never reaching a key.
        let none = format!(
            "{}.{}.AAAA",
            crate::jose::B64.encode(r#"{"alg":"none","typ":"at+jwt"}"#),
            crate::jose::B64.encode(claims().to_string())
        );
        assert_eq!(
            f.check(&none).unwrap_err(),
            TokenError::AlgNotAllowed {
                got: Some("none".into())
            }
        );
    }

    #[test]
    fn key_is_chosen_by_kid() {
        let a = PrivateJwk::generate(Algorithm::ES256).unwrap();
        let b = PrivateJwk::generate(Algorithm::ES256).unwrap();
        let v = JwtValidator::new(policy(), jwks(&[(&a, "a"), (&b, "b")]), 10);
        let at = UnixTime(NOW);
        assert!(v.validate(&sign(&b, Some("b"), &claims()), at).is_ok());
        assert_eq!(
            v.validate(&sign(&b, Some("c"), &claims()), at).unwrap_err(),
            TokenError::UnknownKid {
                kid: Some("c".into())
            }
        );
        // Two keys fit ES256: without a kid, none is guessed.
        assert_eq!(
            v.validate(&sign(&b, None, &claims()), at).unwrap_err(),
            TokenError::UnknownKid { kid: None }
        );
        // Signed by b, presented as a's.
        assert_eq!(
            v.validate(&sign(&b, Some("a"), &claims()), at).unwrap_err(),
            TokenError::Signature
        );
    }

    #[test]
    fn without_kid_the_single_fitting_key_is_used() {
        let es = PrivateJwk::generate(Algorithm::ES256).unwrap();
        let ed = PrivateJwk::generate(Algorithm::EdDSA).unwrap();
        let v = JwtValidator::new(policy(), jwks(&[(&es, "es"), (&ed, "ed")]), 10);
        assert!(v
            .validate(&sign(&ed, None, &claims()), UnixTime(NOW))
            .is_ok());
    }

    #[test]
    fn key_must_fit_alg_and_its_own_alg() {
        let es = PrivateJwk::generate(Algorithm::ES256).unwrap();
        let ed = PrivateJwk::generate(Algorithm::EdDSA).unwrap();
        let v = JwtValidator::new(policy(), jwks(&[(&es, "es")]), 10);
        // EdDSA token naming the EC key.
        assert_eq!(
            v.validate(&sign(&ed, Some("es"), &claims()), UnixTime(NOW))
                .unwrap_err(),
            TokenError::KeyMismatch {
                alg: Algorithm::EdDSA
            }
        );
        // An RSA key marked RS256 is not used for PS256.
        let ps = PrivateJwk::generate(Algorithm::PS256).unwrap();
        let mut jwk = ps.public_jwk();
        jwk.insert("kid".into(), "r".into());
        jwk.insert("alg".into(), "RS256".into());
        let set = JwkSet::from_json(json!({ "keys": [jwk] }).to_string().as_bytes()).unwrap();
        let v = JwtValidator::new(policy(), set, 10);
        assert_eq!(
            v.validate(&sign(&ps, Some("r"), &claims()), UnixTime(NOW))
                .unwrap_err(),
            TokenError::KeyMismatch {
                alg: Algorithm::PS256
            }
        );
    }

    #[test]
    fn issuer_must_match() {
        let f = fixture();
        assert_eq!(
            f.check(&f.token(|c| c["iss"] = "https://evil.example".into()))
                .unwrap_err(),
            TokenError::Issuer {
                expected: ISS.into(),
                got: Some("https://evil.example".into())
            }
        );
        assert_eq!(
            f.check(&f.token(|c| {
                c.as_object_mut().unwrap().remove("iss");
            }))
            .unwrap_err(),
            TokenError::Issuer {
                expected: ISS.into(),
                got: None
            }
        );
    }

    #[test]
    fn audience_string_or_array_must_contain_ours() {
        let f = fixture();
        assert!(f.check(&f.token(|c| c["aud"] = json!(["x", AUD]))).is_ok());
        let refused = TokenError::Audience {
            expected: AUD.into(),
        };
        assert_eq!(
            f.check(&f.token(|c| c["aud"] = json!(["x"]))).unwrap_err(),
            refused
        );
        assert_eq!(
            f.check(&f.token(|c| c["aud"] = json!("other")))
                .unwrap_err(),
            refused
        );
        assert_eq!(
            f.check(&f.token(|c| {
                c.as_object_mut().unwrap().remove("aud");
            }))
            .unwrap_err(),
            refused
        );
    }

    #[test]
    fn exp_is_required_and_checked_with_leeway() {
        let f = fixture();
        assert!(f.check(&f.token(|c| c["exp"] = json!(NOW - 30))).is_ok());
        assert_eq!(
            f.check(&f.token(|c| c["exp"] = json!(NOW - 31)))
                .unwrap_err(),
            TokenError::Expired {
                exp: NOW - 31,
                now: NOW
            }
        );
        assert_eq!(
            f.check(&f.token(|c| {
                c.as_object_mut().unwrap().remove("exp");
            }))
            .unwrap_err(),
            TokenError::ExpMissing
        );
        assert_eq!(
            f.check(&f.token(|c| c["exp"] = json!("soon")))
                .unwrap_err()
                .check(),
            TokenCheck::Malformed
        );
    }

    #[test]
    fn nbf_is_checked_with_leeway() {
        let f = fixture();
        assert!(f.check(&f.token(|c| c["nbf"] = json!(NOW + 30))).is_ok());
        assert_eq!(
            f.check(&f.token(|c| c["nbf"] = json!(NOW + 31)))
                .unwrap_err(),
            TokenError::NotYetValid {
                nbf: NOW + 31,
                now: NOW
            }
        );
    }

    #[test]
    fn iat_must_not_be_in_the_future() {
        let f = fixture();
        assert!(f.check(&f.token(|c| c["iat"] = json!(NOW + 30))).is_ok());
        assert_eq!(
            f.check(&f.token(|c| c["iat"] = json!(NOW + 31)))
                .unwrap_err(),
            TokenError::IssuedInFuture {
                iat: NOW + 31,
                now: NOW
            }
        );
    }

    #[test]
    fn cnf_must_be_an_object_with_a_thumbprint() {
        let f = fixture();
        let unbound = f
            .check(&f.token(|c| {
                c.as_object_mut().unwrap().remove("cnf");
            }))
            .unwrap();
        assert_eq!(unbound.jkt, None);
        // Another confirmation method (mTLS) is not a DPoP binding, and not an error here.
        assert_eq!(
            f.check(&f.token(|c| c["cnf"] = json!({"x5t#S256": "abc"})))
                .unwrap()
                .jkt,
            None
        );
        for bad in [
            json!("jkt"),
            json!({"jkt": "short"}),
            json!({"jkt": 5}),
            json!([1]),
        ] {
            assert_eq!(
                f.check(&f.token(|c| c["cnf"] = bad.clone())).unwrap_err(),
                TokenError::CnfMalformed,
                "{bad}"
            );
        }
    }

    #[test]
    fn jwks_skips_unusable_entries() {
        let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
        let mut enc = key.public_jwk();
        enc.insert("use".into(), "enc".into());
        let mut sig = key.public_jwk();
        sig.insert("use".into(), "sig".into());
        sig.insert("kid".into(), "s".into());
        let doc = json!({"keys": [
            enc, sig, {"kty": "oct", "k": "c2VjcmV0"}, {"kty": "EC"}, "not an object",
            key.public_jwk(),
        ]});
        let set = JwkSet::from_json(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.keys.len(), 2);
        assert_eq!(set.keys[0].kid(), Some("s"));
        assert!(JwkSet::from_json(b"[]").is_err());
        assert!(JwkSet::from_json(b"{\"keys\": {}}").is_err());
        assert!(JwkSet::from_json(b"{\"keys\": []}")
            .unwrap()
            .keys
            .is_empty());
    }

    #[test]
    fn cache_hit_returns_the_same_arc() {
        let f = fixture();
        let token = f.token(|_| {});
        let first = f.check(&token).unwrap();
        let second = f.check(&token).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
    }

    #[test]
    fn cached_token_is_refused_once_now_passes_exp() {
        let f = fixture();
        let token = f.token(|_| {});
        assert!(f.validator.validate(&token, UnixTime(NOW)).is_ok());
        // Within leeway: still fine (from the cache).
        assert!(f.validator.validate(&token, UnixTime(NOW + 330)).is_ok());
        assert_eq!(
            f.validator
                .validate(&token, UnixTime(NOW + 331))
                .unwrap_err(),
            TokenError::Expired {
                exp: NOW + 300,
                now: NOW + 331
            }
        );
    }

    #[test]
    fn cached_token_is_refused_before_nbf() {
        let f = fixture();
        let token = f.token(|c| c["nbf"] = json!(NOW));
        assert!(f.validator.validate(&token, UnixTime(NOW)).is_ok());
        // The fixed clock moves back (or another instance's clock lags): the hit is re-checked.
        assert_eq!(
            f.validator
                .validate(&token, UnixTime(NOW - 31))
                .unwrap_err(),
            TokenError::NotYetValid {
                nbf: NOW,
                now: NOW - 31
            }
        );
    }

    #[test]
    fn set_keys_drops_cached_tokens() {
        let f = fixture();
        let token = f.token(|_| {});
        let first = f.check(&token).unwrap();
        let other = PrivateJwk::generate(Algorithm::ES256).unwrap();
        f.validator.set_keys(jwks(&[(&other, "k1")]));
        assert_eq!(f.check(&token).unwrap_err(), TokenError::Signature);
        // Back to the original key: verified again, a new Arc.
        f.validator.set_keys(jwks(&[(&f.key, "k1")]));
        assert!(!Arc::ptr_eq(&first, &f.check(&token).unwrap()));
    }
}
