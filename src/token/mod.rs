//! Access tokens: what a token says ([`TokenInfo`]), how it is validated ([`TokenValidator`]:
//! JWT with keys from a JWKS, or RFC 7662 introspection in a later change) and how it is bound to
//! a proof ([`check_binding`]).

pub mod cache;
pub mod jwt;

use std::sync::Arc;

use crate::clock::UnixTime;
use crate::jose::Thumbprint;

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
}

/// Why a token was refused (or could not be checked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Implementer: one variant per check (Malformed, Typ, AlgNotAllowed, UnknownKid, Signature,
    /// Issuer{expected,got}, Audience{expected}, Expired{exp,now}, NotYetValid{nbf,now},
    /// CnfMalformed, ...). Binding failures (`NotBound`, `JktMismatch`, `BoundTokenAsBearer`)
    /// are here too.
    Todo,
}

/// The token check that failed: a closed set for metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenCheck {
    /// Implementer's closed set, with `as_str()` and `ALL`.
    Todo,
}

/// How the presented token's scheme relates to DPoP (RFC 9449 §7.1, RFC 6750 §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: DPoP <token>`.
    Dpop,
    /// `Authorization: Bearer <token>`.
    Bearer,
}

/// Validates tokens; one variant per `access_token.format`.
pub enum TokenValidator {
    /// JWT access tokens (RFC 9068).
    Jwt(jwt::JwtValidator),
}

// === impl TokenValidator ===

impl TokenValidator {
    /// Validates `token` at `now`; verified tokens are cached until `exp`.
    pub async fn validate(&self, token: &str, now: UnixTime) -> Result<Arc<TokenInfo>, TokenError> {
        match self {
            TokenValidator::Jwt(v) => v.validate(token, now),
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
    todo!("{info:?}{scheme:?}{proof_jkt:?}{bearer_allowed}")
}
