//! One error variant per RFC 9449 §4.3 check, carrying what was compared. `Display` says what
//! failed and never contains a token or a whole proof; client-supplied strings are clipped.

use crate::jose::clip;
use crate::jose::{Algorithm, JwkError, JwsError};

use crate::uri::UriError;

/// Why a proof was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProofError {
    /// The proof is longer than `limits.max_proof_bytes` (checked before decoding anything).
    TooLarge {
        /// Length of the proof, in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a compact JWS (RFC 9449 §4.3 points 2-3: "a single well-formed JWT").
    Malformed(JwsError),
    /// The header is not a JSON object (RFC 9449 §4.3 point 3).
    HeaderNotJson,
    /// A header member the checks read (`typ`, `alg`, `jwk`, `crit`, or a member of the `jwk`)
    /// appears twice: which one counts would be up to the parser (RFC 7515 §4, RFC 8259 §4).
    HeaderDuplicateMember,
    /// The header names critical extensions (`crit`), none of which is understood here
    /// (RFC 7515 §4.1.11).
    CritUnsupported,
    /// `typ` is not `dpop+jwt` (RFC 9449 §4.3 point 4); `None` when absent or not a string.
    Typ {
        /// The `typ` the proof carries.
        got: Option<String>,
    },
    /// `alg` is missing, unknown, symmetric, `none` or not in `dpop.algorithms`
    /// (RFC 9449 §4.3 point 5); `None` when absent or not a string.
    AlgNotAllowed {
        /// The `alg` the proof carries.
        got: Option<String>,
    },
    /// The `jwk` header is absent or not a JSON object (RFC 9449 §4.3 point 7).
    JwkMissing,
    /// The `jwk` header is not a usable public key: private members, unsupported type,
    /// malformed members (RFC 9449 §4.3 point 7).
    Jwk(JwkError),
    /// The key cannot verify `alg` (its type or curve, or its own `alg` member, differs).
    JwkDoesNotFit {
        /// The header's `alg`.
        alg: Algorithm,
    },
    /// The signature does not verify with the `jwk` (RFC 9449 §4.3 point 6).
    Signature,
    /// The claims are not a JSON object (RFC 9449 §4.3 point 2).
    ClaimsNotJson,
    /// A claim the checks read (`jti`, `htm`, `htu`, `iat`, `ath`, `nonce`) appears twice
    /// (RFC 7519 §4: claim names must be unique).
    ClaimsDuplicateMember,
    /// A claim has the wrong JSON type (RFC 9449 §4.2: `jti`, `htm`, `htu`, `ath`, `nonce` are
    /// strings, `iat` a number).
    ClaimType {
        /// The claim's name.
        claim: &'static str,
    },
    /// `jti` is absent or empty (RFC 9449 §4.3 point 8).
    JtiMissing,
    /// `jti` is longer than we store (a bound on the replay store's entries).
    JtiTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit ([`MAX_JTI_BYTES`]).
        max: usize,
    },
    /// `htm` is absent (RFC 9449 §4.3 point 8).
    HtmMissing,
    /// `htm` is not the request method (RFC 9449 §4.3 point 8; methods are case-sensitive,
    /// RFC 9110 §9.1).
    HtmMismatch {
        /// The request method.
        expected: String,
        /// The `htm` claim.
        got: String,
    },
    /// `htu` is absent (RFC 9449 §4.3 point 8).
    HtuMissing,
    /// The `htu` claim is not an absolute http(s) URI we can normalise (RFC 9449 §4.3 point 9).
    HtuInvalid(UriError),
    /// The request URI itself could not be normalised (a gateway configuration problem, still
    /// refused: nothing can match it).
    RequestUriInvalid(UriError),
    /// `htu` does not match the request URI after normalisation (RFC 9449 §4.3 point 9).
    HtuMismatch {
        /// The normalised request URI.
        expected: String,
        /// The normalised `htu` claim.
        got: String,
    },
    /// `iat` is absent (RFC 9449 §4.3 point 8).
    IatMissing,
    /// `iat` is older than `dpop.proof_max_age` (RFC 9449 §4.3 point 11, §11.1).
    IatTooOld {
        /// The `iat` claim (floored).
        iat: u64,
        /// The gateway's time.
        now: u64,
        /// `dpop.proof_max_age`, seconds.
        max_age: u64,
    },
    /// `iat` is further ahead than `dpop.clock_skew` (RFC 9449 §4.3 point 11).
    IatInFuture {
        /// The `iat` claim (floored).
        iat: u64,
        /// The gateway's time.
        now: u64,
        /// `dpop.clock_skew`, seconds.
        skew: u64,
    },
    /// A token came with the proof, `dpop.require_ath` is on and `ath` is absent
    /// (RFC 9449 §4.3 point 12).
    AthMissing,
    /// `ath` is not base64url(SHA-256(token)) (RFC 9449 §4.3 point 12). Both are hashes,
    /// never the token.
    AthMismatch {
        /// The hash of the presented token.
        expected: String,
        /// The `ath` claim.
        got: String,
    },
}

/// The longest `jti` accepted, in bytes: enough for any UUID or random value, and a bound on
/// what a client can make the gateway hash and keep.
pub const MAX_JTI_BYTES: usize = 256;

/// The check that failed: a closed set, used as a metric label and in `explain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProofCheck {
    /// Over `limits.max_proof_bytes`.
    Size,
    /// Not a compact JWS / not JSON / a required claim has the wrong type.
    Syntax,
    /// `typ` is not `dpop+jwt`.
    Typ,
    /// `alg` not allowed.
    Alg,
    /// `jwk` missing, private or unusable.
    Jwk,
    /// Signature invalid.
    Signature,
    /// `htm` mismatch.
    Htm,
    /// `htu` mismatch.
    Htu,
    /// `iat` missing, too old or in the future.
    Iat,
    /// `jti` missing or too long.
    Jti,
    /// `ath` missing or mismatch.
    Ath,
}

// === impl ProofCheck ===

impl ProofCheck {
    /// Every check, for metric pre-registration.
    pub const ALL: [ProofCheck; 11] = [
        ProofCheck::Size,
        ProofCheck::Syntax,
        ProofCheck::Typ,
        ProofCheck::Alg,
        ProofCheck::Jwk,
        ProofCheck::Signature,
        ProofCheck::Htm,
        ProofCheck::Htu,
        ProofCheck::Iat,
        ProofCheck::Jti,
        ProofCheck::Ath,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ProofCheck::Size => "size",
            ProofCheck::Syntax => "syntax",
            ProofCheck::Typ => "typ",
            ProofCheck::Alg => "alg",
            ProofCheck::Jwk => "jwk",
            ProofCheck::Signature => "signature",
            ProofCheck::Htm => "htm",
            ProofCheck::Htu => "htu",
            ProofCheck::Iat => "iat",
            ProofCheck::Jti => "jti",
            ProofCheck::Ath => "ath",
        }
    }
}

// === impl ProofError ===

impl ProofError {
    /// Which check failed.
    pub fn check(&self) -> ProofCheck {
        match self {
            ProofError::TooLarge { .. } => ProofCheck::Size,
            ProofError::Malformed(_)
            | ProofError::HeaderNotJson
            | ProofError::HeaderDuplicateMember
            | ProofError::CritUnsupported
            | ProofError::ClaimsNotJson
            | ProofError::ClaimsDuplicateMember
            | ProofError::ClaimType { .. } => ProofCheck::Syntax,
            ProofError::Typ { .. } => ProofCheck::Typ,
            ProofError::AlgNotAllowed { .. } => ProofCheck::Alg,
            ProofError::JwkMissing | ProofError::Jwk(_) | ProofError::JwkDoesNotFit { .. } => {
                ProofCheck::Jwk
            }
            ProofError::Signature => ProofCheck::Signature,
            ProofError::JtiMissing | ProofError::JtiTooLong { .. } => ProofCheck::Jti,
            ProofError::HtmMissing | ProofError::HtmMismatch { .. } => ProofCheck::Htm,
            ProofError::HtuMissing
            | ProofError::HtuInvalid(_)
            | ProofError::RequestUriInvalid(_)
            | ProofError::HtuMismatch { .. } => ProofCheck::Htu,
            ProofError::IatMissing
            | ProofError::IatTooOld { .. }
            | ProofError::IatInFuture { .. } => ProofCheck::Iat,
            ProofError::AthMissing | ProofError::AthMismatch { .. } => ProofCheck::Ath,
        }
    }
}

impl std::fmt::Display for ProofError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProofError::TooLarge { len, max } => {
                write!(f, "DPoP proof is {len} bytes, more than the {max} allowed")
            }
            ProofError::Malformed(e) => write!(f, "DPoP proof is not a compact JWS: {e}"),
            ProofError::HeaderNotJson => f.write_str("DPoP proof header is not a JSON object"),
            ProofError::HeaderDuplicateMember => {
                f.write_str("DPoP proof header has a member more than once")
            }
            ProofError::CritUnsupported => {
                f.write_str("DPoP proof header has a crit parameter; no extension is supported")
            }
            ProofError::Typ { got: Some(t) } => {
                write!(f, "DPoP proof typ is '{}', not 'dpop+jwt'", clip(t))
            }
            ProofError::Typ { got: None } => f.write_str("DPoP proof has no typ string"),
            ProofError::AlgNotAllowed { got: Some(a) } => {
                write!(f, "DPoP proof alg '{}' is not allowed", clip(a))
            }
            ProofError::AlgNotAllowed { got: None } => f.write_str("DPoP proof has no alg string"),
            ProofError::JwkMissing => f.write_str("DPoP proof header has no jwk object"),
            ProofError::Jwk(e) => write!(f, "DPoP proof jwk is unusable: {e}"),
            ProofError::JwkDoesNotFit { alg } => {
                write!(f, "DPoP proof jwk cannot verify alg {alg}")
            }
            ProofError::Signature => f.write_str("DPoP proof signature does not verify"),
            ProofError::ClaimsNotJson => f.write_str("DPoP proof claims are not a JSON object"),
            ProofError::ClaimsDuplicateMember => {
                f.write_str("DPoP proof claims have a claim more than once")
            }
            ProofError::ClaimType { claim } => {
                write!(f, "DPoP proof claim {claim} has the wrong type")
            }
            ProofError::JtiMissing => f.write_str("DPoP proof has no jti"),
            ProofError::JtiTooLong { len, max } => {
                write!(f, "DPoP proof jti is {len} bytes, more than {max}")
            }
            ProofError::HtmMissing => f.write_str("DPoP proof has no htm"),
            ProofError::HtmMismatch { expected, got } => write!(
                f,
                "DPoP proof htm '{}' does not match the request method '{}'",
                clip(got),
                clip(expected)
            ),
            ProofError::HtuMissing => f.write_str("DPoP proof has no htu"),
            ProofError::HtuInvalid(e) => write!(f, "DPoP proof htu is invalid: {e}"),
            ProofError::RequestUriInvalid(e) => {
                write!(f, "the request URI cannot be compared with htu: {e}")
            }
            ProofError::HtuMismatch { expected, got } => write!(
                f,
                "DPoP proof htu '{}' does not match the request URI '{}'",
                clip(got),
                clip(expected)
            ),
            ProofError::IatMissing => f.write_str("DPoP proof has no iat"),
            ProofError::IatTooOld { iat, now, max_age } => write!(
                f,
                "DPoP proof iat {iat} is more than {max_age}s before now ({now})"
            ),
            ProofError::IatInFuture { iat, now, skew } => write!(
                f,
                "DPoP proof iat {iat} is more than {skew}s after now ({now})"
            ),
            ProofError::AthMissing => f.write_str("DPoP proof has no ath for the access token"),
            ProofError::AthMismatch { .. } => {
                f.write_str("DPoP proof ath does not match the access token")
            }
        }
    }
}

impl std::error::Error for ProofError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_label_is_distinct() {
        let mut labels: Vec<_> = ProofCheck::ALL.iter().map(|c| c.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), ProofCheck::ALL.len());
    }

    #[test]
    fn display_clips_client_values() {
        let e = ProofError::Typ {
            got: Some("x".repeat(10_000)),
        };
        assert!(e.to_string().len() < 200);
        assert_eq!(e.check(), ProofCheck::Typ);
    }

    #[test]
    fn duplicate_members_are_syntax_errors_with_their_own_text() {
        let header = ProofError::HeaderDuplicateMember;
        let claims = ProofError::ClaimsDuplicateMember;
        assert_eq!(header.check(), ProofCheck::Syntax);
        assert_eq!(claims.check(), ProofCheck::Syntax);
        assert!(header.to_string().contains("header"), "{header}");
        assert!(claims.to_string().contains("claims"), "{claims}");
        assert_ne!(header.to_string(), ProofError::HeaderNotJson.to_string());
        assert_ne!(claims.to_string(), ProofError::ClaimsNotJson.to_string());
    }

    #[test]
    fn ath_mismatch_display_shows_neither_hash() {
        let e = ProofError::AthMismatch {
            expected: "EXPECTED".into(),
            got: "GOT".into(),
        };
        let s = e.to_string();
        assert!(!s.contains("EXPECTED") && !s.contains("GOT"), "{s}");
    }
}
