//! Access tokens: what a token says ([`TokenInfo`]), how it is validated ([`TokenValidator`]:
//! JWT with keys from a file or from the authorization server, or RFC 7662 introspection) and
//! how it is bound to a proof ([`check_binding`]).

pub(crate) mod cache;
pub(crate) mod http;
pub(crate) mod introspection;
pub(crate) mod jwks;
pub mod jwt;

use crate::jose::clip;
use std::sync::Arc;

use crate::clock::UnixTime;
use crate::jose::{Algorithm, Thumbprint};
use crate::metrics::Metrics;
use prometheus::{IntCounter, IntGauge};

/// What the gateway learned from a valid access token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenInfo {
    /// `sub`.
    pub sub: Option<String>,
    /// `client_id` (RFC 9068 §2.2).
    pub client_id: Option<String>,
    /// `scope` (space-separated).
    pub scope: Option<String>,
    /// `cnf.jkt`: set when the token is DPoP-bound (RFC 9449 §6.1).
    pub jkt: Option<Thumbprint>,
    /// `exp`.
    pub exp: Option<UnixTime>,
    /// `iss`: the issuer whose entry validated the token.
    pub iss: Option<String>,
    /// The claims a route's `require.claims` names, as the token has them (absent ones left
    /// out); no other claim is kept.
    pub claims: Vec<(String, serde_json::Value)>,
}

/// Why a token was refused (or could not be checked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Not a compact JWS, a header or claims that are not JSON objects, a claim of the wrong
    /// type (RFC 9068 §4 step 1; RFC 7519 §7.2).
    Malformed(String),
    /// `typ` is not `at+jwt` / `application/at+jwt` (RFC 9068 §4 step 2); `None` when absent.
    Typ {
        /// The token's `typ`.
        got: Option<String>,
    },
    /// `alg` is missing, unknown or not in `access_token.algorithms` (RFC 9068 §4 step 5).
    AlgNotAllowed {
        /// The token's `alg`; `None` when absent or not a string.
        got: Option<String>,
    },
    /// No key in the JWKS has this `kid`; with no `kid`, the set does not have exactly one key
    /// for the algorithm (RFC 7515 §4.1.4).
    UnknownKid {
        /// The token's `kid`.
        kid: Option<String>,
    },
    /// The key named by `kid` cannot verify `alg` (its type, curve or own `alg` differ).
    KeyMismatch {
        /// The token's `alg`.
        alg: Algorithm,
    },
    /// The signature does not verify (RFC 9068 §4 step 6).
    Signature,
    /// `iss` is not the configured issuer (RFC 9068 §4 step 3).
    Issuer {
        /// `access_token.issuer`.
        expected: String,
        /// The token's `iss`; `None` when absent or not a string.
        got: Option<String>,
    },
    /// `aud` does not contain the configured audience (RFC 9068 §4 step 4).
    Audience {
        /// `access_token.audience`.
        expected: String,
    },
    /// `exp` is absent (RFC 9068 §2.2: required).
    ExpMissing,
    /// `exp` has passed, leeway included (RFC 9068 §4 step 7).
    Expired {
        /// The token's `exp`.
        exp: u64,
        /// The gateway's time.
        now: u64,
    },
    /// `nbf` is still ahead, leeway included (RFC 7519 §4.1.5).
    NotYetValid {
        /// The token's `nbf`.
        nbf: u64,
        /// The gateway's time.
        now: u64,
    },
    /// `iat` is in the future beyond the leeway (RFC 7519 §4.1.6).
    IssuedInFuture {
        /// The token's `iat`.
        iat: u64,
        /// The gateway's time.
        now: u64,
    },
    /// `cnf` is not an object, or `cnf.jkt` is not a base64url SHA-256 thumbprint
    /// (RFC 9449 §6.1).
    CnfMalformed,
    /// A DPoP-scheme request whose token is not bound with `cnf.jkt` (RFC 9449 §7.1), or a
    /// Bearer token on a route that requires DPoP.
    NotBound,
    /// The token's `cnf.jkt` is not the proof key's thumbprint (RFC 9449 §4.3 point 12, §6.1).
    JktMismatch {
        /// The token's `cnf.jkt`.
        expected: Thumbprint,
        /// The proof key's thumbprint.
        got: Thumbprint,
    },
    /// A DPoP-bound token sent with the Bearer scheme: a downgrade (RFC 9449 §7.2).
    BoundTokenAsBearer,
    /// Introspection said `active: false` (RFC 7662 §2.2).
    Inactive,
    /// Introspection named a `token_type` other than `DPoP` or `Bearer` (RFC 9449 §6.2,
    /// RFC 7662 §2.2).
    TokenType {
        /// The introspection response's `token_type`.
        got: String,
    },
}

/// Why a token was not accepted: the client's token is wrong (401), or the service that checks
/// tokens could not answer (503: never the client's fault, never cached).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenFailure {
    /// The token is invalid or not bound.
    Invalid(TokenError),
    /// The JWKS was never loaded, or introspection failed.
    Unavailable(String),
}

/// The token check that failed: a closed set for metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenCheck {
    /// Not a JWT / not JSON / a claim of the wrong type.
    Malformed,
    /// `typ` (JWT header), or the introspected `token_type`.
    Typ,
    /// `alg`.
    Alg,
    /// Key selection: unknown `kid`, or a key that does not fit `alg`.
    Kid,
    /// Signature.
    Signature,
    /// `iss`.
    Iss,
    /// `aud`.
    Aud,
    /// `exp` missing or passed.
    Exp,
    /// `nbf`.
    Nbf,
    /// `iat` in the future.
    Iat,
    /// `cnf` malformed.
    Cnf,
    /// Not bound, or bound to another key.
    Binding,
    /// A bound token sent as Bearer.
    Downgrade,
    /// Introspection: inactive.
    Inactive,
}

/// How the presented token's scheme relates to DPoP (RFC 9449 §7.1, RFC 6750 §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: DPoP <token>`.
    Dpop,
    /// `Authorization: Bearer <token>`.
    Bearer,
}

/// Validates tokens; one variant per `access_token.format` and key source.
pub enum TokenValidator {
    /// JWT access tokens (RFC 9068) with keys from `jwks_file`.
    Jwt(Box<jwt::JwtValidator>),
    /// JWT access tokens with keys from `jwks_uri` or the issuer's metadata.
    RemoteJwt(Arc<jwks::RemoteKeys>),
    /// Opaque tokens, asked about by RFC 7662 introspection.
    Introspection(Box<introspection::Introspector>),
}

/// Every `access_token` entry: a JWT goes to the entry whose issuer is its `iss` (read before
/// any signature check, then checked again by that entry), never to another issuer's keys; an
/// opaque token, or a JWT whose `iss` no JWT entry has, goes to the introspection entry when
/// there is one. With one entry, every token goes to it (as before several were possible).
pub struct Tokens {
    entries: Vec<(String, TokenValidator)>,
}

/// The Prometheus counters the token checks increment: handles into the gateway's registry,
/// so a scrape reads them as they are (nothing is copied at scrape time).
#[derive(Clone, Debug)]
pub struct TokenMetrics {
    /// `dpop_gateway_token_cache_requests_total{result="hit"}`: verified tokens (JWT) and
    /// verdicts (introspection) served from the cache.
    pub(crate) cache_hits: IntCounter,
    /// `…{result="miss"}`: JWT signatures checked, introspection requests sent.
    pub(crate) cache_misses: IntCounter,
    /// `dpop_gateway_jwks_fetches_total{result="success"}`.
    pub(crate) key_fetches: IntCounter,
    /// `…{result="failure"}`: the last good keys stayed.
    pub(crate) key_fetch_failures: IntCounter,
    /// `dpop_gateway_jwks_last_success_timestamp_seconds`.
    pub(crate) keys_loaded_at: IntGauge,
    /// `dpop_gateway_introspection_requests_total{result="success"}`.
    pub(crate) introspections: IntCounter,
    /// `…{result="failure"}`: connect, timeout, non-200, unparseable; each refused a request
    /// with 503.
    pub(crate) introspection_failures: IntCounter,
}

// === impl TokenValidator ===

impl TokenValidator {
    /// Validates `token` at `now`; verified tokens are cached until `exp`.
    pub async fn validate(
        &self,
        token: &str,
        now: UnixTime,
    ) -> Result<Arc<TokenInfo>, TokenFailure> {
        match self {
            TokenValidator::Jwt(v) => Ok(v.validate(token, now)?),
            TokenValidator::RemoteJwt(v) => v.validate(token, now).await,
            TokenValidator::Introspection(v) => v.validate(token, now).await,
        }
    }

    /// Whether tokens can be checked: keys were loaded at least once (always true for a
    /// `jwks_file` and for introspection, which has no keys). Readiness follows it.
    pub fn keys_loaded(&self) -> bool {
        match self {
            TokenValidator::Jwt(_) | TokenValidator::Introspection(_) => true,
            TokenValidator::RemoteJwt(v) => v.keys_loaded(),
        }
    }
}

// === impl Tokens ===

impl Tokens {
    /// The entries, as `(issuer, validator)` in configuration order.
    pub fn new(entries: Vec<(String, TokenValidator)>) -> Self {
        Self { entries }
    }

    /// The entries, in configuration order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &TokenValidator)> {
        self.entries.iter().map(|(i, v)| (i.as_str(), v))
    }

    /// Validates `token` with the entry that owns it (see [`Tokens`]).
    pub async fn validate(
        &self,
        token: &str,
        now: UnixTime,
    ) -> Result<Arc<TokenInfo>, TokenFailure> {
        match self.owner(token) {
            Ok(v) => v.validate(token, now).await,
            Err(e) => Err(TokenFailure::Invalid(e)),
        }
    }

    /// Whether every entry's keys were loaded at least once.
    pub fn keys_loaded(&self) -> bool {
        self.entries.iter().all(|(_, v)| v.keys_loaded())
    }

    /// The validator for `token`.
    fn owner(&self, token: &str) -> Result<&TokenValidator, TokenError> {
        if let [(_, only)] = self.entries.as_slice() {
            return Ok(only);
        }
        let introspection = self
            .entries
            .iter()
            .find(|(_, v)| matches!(v, TokenValidator::Introspection(_)))
            .map(|(_, v)| v);
        let iss = jwt::unverified_iss(token);
        if let Some(iss) = &iss {
            let jwt_entry = self
                .entries
                .iter()
                .find(|(i, v)| i == iss && !matches!(v, TokenValidator::Introspection(_)));
            if let Some((_, v)) = jwt_entry {
                return Ok(v);
            }
        }
        introspection.ok_or_else(|| TokenError::Issuer {
            expected: self
                .entries
                .iter()
                .map(|(i, _)| i.as_str())
                .collect::<Vec<_>>()
                .join(" or "),
            got: iss,
        })
    }
}

// === impl TokenMetrics ===

impl TokenMetrics {
    /// The handles into `metrics`.
    pub fn of(metrics: &Metrics) -> Self {
        let cache = |r| metrics.token_cache.with_label_values(&[r]);
        let fetches = |r| metrics.jwks_fetches.with_label_values(&[r]);
        let intro = |r| metrics.introspections.with_label_values(&[r]);
        Self {
            cache_hits: cache("hit"),
            cache_misses: cache("miss"),
            key_fetches: fetches("success"),
            key_fetch_failures: fetches("failure"),
            keys_loaded_at: metrics.jwks_last_success.clone(),
            introspections: intro("success"),
            introspection_failures: intro("failure"),
        }
    }
}

/// The binding rules: a DPoP-scheme token must be bound to `proof_jkt`; a bound token must not
/// come as Bearer (downgrade); an unbound Bearer token passes only where `bearer_allowed`.
pub fn check_binding(
    info: &TokenInfo,
    scheme: Scheme,
    proof_jkt: Option<Thumbprint>,
    bearer_allowed: bool,
) -> Result<(), TokenError> {
    match scheme {
        Scheme::Dpop => {
            // RFC 9449 §7.1: a DPoP-scheme token is bound; §4.3 point 12: to this proof's key.
            let (Some(expected), Some(got)) = (info.jkt, proof_jkt) else {
                return Err(TokenError::NotBound);
            };
            // No early exit on the first differing byte (ring's verify_slices_are_equal, which
            // did this, is deprecated in ring 0.17.14).
            let diff = expected
                .as_bytes()
                .iter()
                .zip(got.as_bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff != 0 {
                return Err(TokenError::JktMismatch { expected, got });
            }
            Ok(())
        }
        // RFC 9449 §7.2: a bound token must never be accepted as a bearer token.
        Scheme::Bearer if info.jkt.is_some() => Err(TokenError::BoundTokenAsBearer),
        Scheme::Bearer if !bearer_allowed => Err(TokenError::NotBound),
        Scheme::Bearer => Ok(()),
    }
}

// === impl TokenError ===

impl TokenError {
    /// Which check failed.
    pub fn check(&self) -> TokenCheck {
        match self {
            TokenError::Malformed(_) => TokenCheck::Malformed,
            TokenError::Typ { .. } => TokenCheck::Typ,
            TokenError::AlgNotAllowed { .. } => TokenCheck::Alg,
            TokenError::UnknownKid { .. } | TokenError::KeyMismatch { .. } => TokenCheck::Kid,
            TokenError::Signature => TokenCheck::Signature,
            TokenError::Issuer { .. } => TokenCheck::Iss,
            TokenError::Audience { .. } => TokenCheck::Aud,
            TokenError::ExpMissing | TokenError::Expired { .. } => TokenCheck::Exp,
            TokenError::NotYetValid { .. } => TokenCheck::Nbf,
            TokenError::IssuedInFuture { .. } => TokenCheck::Iat,
            TokenError::CnfMalformed => TokenCheck::Cnf,
            TokenError::NotBound | TokenError::JktMismatch { .. } => TokenCheck::Binding,
            TokenError::BoundTokenAsBearer => TokenCheck::Downgrade,
            TokenError::Inactive => TokenCheck::Inactive,
            TokenError::TokenType { .. } => TokenCheck::Typ,
        }
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::Malformed(why) => write!(f, "access token is malformed: {why}"),
            TokenError::Typ { got: Some(t) } => {
                write!(f, "access token typ '{}' is not at+jwt", clip(t))
            }
            TokenError::Typ { got: None } => f.write_str("access token has no typ"),
            TokenError::AlgNotAllowed { got: Some(a) } => {
                write!(f, "access token alg '{}' is not allowed", clip(a))
            }
            TokenError::AlgNotAllowed { got: None } => f.write_str("access token has no alg"),
            TokenError::UnknownKid { kid: Some(k) } => {
                write!(f, "no key with kid '{}' for the access token", clip(k))
            }
            TokenError::UnknownKid { kid: None } => {
                f.write_str("access token has no kid and no single key fits its alg")
            }
            TokenError::KeyMismatch { alg } => {
                write!(f, "the access token's key cannot verify {alg}")
            }
            TokenError::Signature => f.write_str("access token signature does not verify"),
            TokenError::Issuer { expected, got } => write!(
                f,
                "access token iss '{}' is not '{}'",
                clip(got.as_deref().unwrap_or("")),
                clip(expected)
            ),
            TokenError::Audience { expected } => {
                write!(f, "access token aud does not contain '{}'", clip(expected))
            }
            TokenError::ExpMissing => f.write_str("access token has no exp"),
            TokenError::Expired { exp, now } => {
                write!(f, "access token expired at {exp} (now {now})")
            }
            TokenError::NotYetValid { nbf, now } => {
                write!(f, "access token is not valid before {nbf} (now {now})")
            }
            TokenError::IssuedInFuture { iat, now } => {
                write!(f, "access token iat {iat} is in the future (now {now})")
            }
            TokenError::CnfMalformed => f.write_str("access token cnf is malformed"),
            TokenError::NotBound => f.write_str("access token is not bound to a DPoP key"),
            TokenError::JktMismatch { .. } => {
                f.write_str("access token is bound to another key than the DPoP proof's")
            }
            TokenError::BoundTokenAsBearer => {
                f.write_str("a DPoP-bound access token was sent as a Bearer token")
            }
            TokenError::Inactive => f.write_str("access token is not active"),
            TokenError::TokenType { got } => write!(
                f,
                "introspection says the token type is '{}', not DPoP or Bearer",
                clip(got)
            ),
        }
    }
}

impl std::error::Error for TokenError {}

// === impl TokenFailure ===

impl From<TokenError> for TokenFailure {
    fn from(e: TokenError) -> Self {
        TokenFailure::Invalid(e)
    }
}

// === impl TokenCheck ===

impl TokenCheck {
    /// Every check, for metric pre-registration.
    pub const ALL: [TokenCheck; 14] = [
        TokenCheck::Malformed,
        TokenCheck::Typ,
        TokenCheck::Alg,
        TokenCheck::Kid,
        TokenCheck::Signature,
        TokenCheck::Iss,
        TokenCheck::Aud,
        TokenCheck::Exp,
        TokenCheck::Nbf,
        TokenCheck::Iat,
        TokenCheck::Cnf,
        TokenCheck::Binding,
        TokenCheck::Downgrade,
        TokenCheck::Inactive,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenCheck::Malformed => "malformed",
            TokenCheck::Typ => "typ",
            TokenCheck::Alg => "alg",
            TokenCheck::Kid => "kid",
            TokenCheck::Signature => "signature",
            TokenCheck::Iss => "iss",
            TokenCheck::Aud => "aud",
            TokenCheck::Exp => "exp",
            TokenCheck::Nbf => "nbf",
            TokenCheck::Iat => "iat",
            TokenCheck::Cnf => "cnf",
            TokenCheck::Binding => "binding",
            TokenCheck::Downgrade => "downgrade",
            TokenCheck::Inactive => "inactive",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jkt(b: u8) -> Thumbprint {
        Thumbprint::from_bytes([b; 32])
    }

    fn bound(b: u8) -> TokenInfo {
        TokenInfo {
            jkt: Some(jkt(b)),
            ..TokenInfo::default()
        }
    }

    #[test]
    fn dpop_scheme_needs_a_token_bound_to_the_proof_key() {
        assert_eq!(
            check_binding(&bound(1), Scheme::Dpop, Some(jkt(1)), false),
            Ok(())
        );
        assert_eq!(
            check_binding(&bound(1), Scheme::Dpop, Some(jkt(2)), true),
            Err(TokenError::JktMismatch {
                expected: jkt(1),
                got: jkt(2)
            })
        );
        assert_eq!(
            check_binding(&TokenInfo::default(), Scheme::Dpop, Some(jkt(1)), true),
            Err(TokenError::NotBound)
        );
        assert_eq!(
            check_binding(&bound(1), Scheme::Dpop, None, true),
            Err(TokenError::NotBound)
        );
    }

    #[test]
    fn bound_token_as_bearer_is_a_downgrade() {
        assert_eq!(
            check_binding(&bound(1), Scheme::Bearer, None, true),
            Err(TokenError::BoundTokenAsBearer)
        );
        assert_eq!(
            TokenError::BoundTokenAsBearer.check(),
            TokenCheck::Downgrade
        );
    }

    #[test]
    fn unbound_bearer_passes_only_where_allowed() {
        let unbound = TokenInfo::default();
        assert_eq!(check_binding(&unbound, Scheme::Bearer, None, true), Ok(()));
        assert_eq!(
            check_binding(&unbound, Scheme::Bearer, None, false),
            Err(TokenError::NotBound)
        );
    }

    #[test]
    fn check_labels_are_distinct_and_cover_the_contract() {
        let labels: Vec<_> = TokenCheck::ALL.iter().map(|c| c.as_str()).collect();
        let mut sorted = labels.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), labels.len());
        assert_eq!(TokenError::Inactive.check().as_str(), "inactive");
    }

    #[test]
    fn display_never_shows_the_thumbprints_compared() {
        let e = TokenError::JktMismatch {
            expected: jkt(1),
            got: jkt(2),
        };
        assert!(!e.to_string().contains(&jkt(1).to_string()));
    }
}
