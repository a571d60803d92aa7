//! The claim checks (RFC 9449 §4.3 points 8-12) on the payload of a proof whose signature
//! verified: `jti`, `htm`, `htu`, `iat`, `ath`, and the `nonce` captured for `crate::nonce`.

use base64::Engine as _;
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::*;
use crate::clock::UnixTime;
use crate::jose::json::{parse_object, NumMember, ObjectError, StrMember};
use crate::jose::{Algorithm, Thumbprint, B64};

/// The claims the checks read (RFC 9449 §4.2), borrowed from the payload's JSON.
#[derive(Debug, Deserialize)]
pub(super) struct ClaimsView<'a> {
    #[serde(default, borrow)]
    pub(super) jti: StrMember<'a>,
    #[serde(default, borrow)]
    pub(super) htm: StrMember<'a>,
    #[serde(default, borrow)]
    pub(super) htu: StrMember<'a>,
    #[serde(default)]
    pub(super) iat: NumMember,
    #[serde(default, borrow)]
    pub(super) ath: StrMember<'a>,
    #[serde(default, borrow)]
    pub(super) nonce: StrMember<'a>,
    /// Unknown claims, checked as JSON and ignored.
    #[serde(flatten)]
    pub(super) _rest: IgnoredAny,
}

/// Points 8-12 on the payload of a proof whose signature by `jkt` verified.
pub(super) fn check_claims(
    payload: &[u8],
    request: &ProofRequest<'_>,
    policy: &ProofPolicy,
    now: UnixTime,
    alg: Algorithm,
    jkt: Thumbprint,
) -> Result<VerifiedProof, ProofError> {
    let claims = parse_claims(payload)?;
    let jti = check_jti(&claims)?;
    check_htm(&claims, request.method)?;
    check_htu(&claims, request.htu)?;
    let iat = check_iat(&claims, policy, now)?;
    if let Some(token) = request.access_token {
        check_ath(&claims, token, policy.require_ath)?;
    }
    // Point 10: the nonce is checked by `crate::nonce`; here it is only captured.
    let nonce = optional_str(&claims.nonce, "nonce")?.map(str::to_owned);
    Ok(VerifiedProof {
        jkt,
        jti: jti.to_owned(),
        iat,
        alg,
        nonce,
    })
}

/// Point 2: the claims are a JSON object, no claim we read twice.
pub(super) fn parse_claims(payload: &[u8]) -> Result<ClaimsView<'_>, ProofError> {
    parse_object(payload).map_err(|e| match e {
        ObjectError::NotJson => ProofError::ClaimsNotJson,
        ObjectError::Duplicate => ProofError::ClaimsDuplicateMember,
    })
}

/// Point 8: `jti` is a non-empty string of bounded length.
pub(super) fn check_jti<'c>(claims: &'c ClaimsView<'_>) -> Result<&'c str, ProofError> {
    let jti = optional_str(&claims.jti, "jti")?
        .filter(|j| !j.is_empty())
        .ok_or(ProofError::JtiMissing)?;
    if jti.len() > MAX_JTI_BYTES {
        return Err(ProofError::JtiTooLong {
            len: jti.len(),
            max: MAX_JTI_BYTES,
        });
    }
    Ok(jti)
}

/// Point 8: `htm` is the request method, compared exactly (RFC 9110 §9.1: case-sensitive).
pub(super) fn check_htm(claims: &ClaimsView<'_>, method: &str) -> Result<(), ProofError> {
    let htm = optional_str(&claims.htm, "htm")?.ok_or(ProofError::HtmMissing)?;
    if htm != method {
        return Err(ProofError::HtmMismatch {
            expected: method.to_owned(),
            got: htm.to_owned(),
        });
    }
    Ok(())
}

/// Point 9: `htu` and the request URI are equal after RFC 3986 §6.2.2-6.2.3 normalisation.
pub(super) fn check_htu(claims: &ClaimsView<'_>, request_htu: &str) -> Result<(), ProofError> {
    let htu = optional_str(&claims.htu, "htu")?.ok_or(ProofError::HtuMissing)?;
    let got = htu::normalize(htu).map_err(ProofError::HtuInvalid)?;
    let expected = htu::normalize(request_htu).map_err(ProofError::RequestUriInvalid)?;
    if got != expected {
        return Err(ProofError::HtuMismatch { expected, got });
    }
    Ok(())
}

/// Point 11: `now - max_age <= iat <= now + skew`. A fractional `iat` is floored (a JWT
/// NumericDate may be non-integer, RFC 7519 §2); a negative one is 0 and a huge one saturates,
/// which then fails the window check.
pub(super) fn check_iat(
    claims: &ClaimsView<'_>,
    policy: &ProofPolicy,
    now: UnixTime,
) -> Result<UnixTime, ProofError> {
    let iat = match claims.iat {
        NumMember::Absent => return Err(ProofError::IatMissing),
        NumMember::Num(secs) => secs,
        NumMember::NotNum => return Err(ProofError::ClaimType { claim: "iat" }),
    };
    let now = now.as_secs();
    if iat.saturating_add(policy.max_age) < now {
        return Err(ProofError::IatTooOld {
            iat,
            now,
            max_age: policy.max_age,
        });
    }
    if iat > now.saturating_add(policy.clock_skew) {
        return Err(ProofError::IatInFuture {
            iat,
            now,
            skew: policy.clock_skew,
        });
    }
    Ok(UnixTime(iat))
}

/// Point 12: with a token, `ath` is base64url(SHA-256(token)). Both sides are public hashes,
/// so a plain comparison leaks nothing.
pub(super) fn check_ath(
    claims: &ClaimsView<'_>,
    token: &str,
    required: bool,
) -> Result<(), ProofError> {
    let Some(got) = optional_str(&claims.ath, "ath")? else {
        return if required {
            Err(ProofError::AthMissing)
        } else {
            Ok(())
        };
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    // 32 bytes are 43 base64url characters: no allocation on the success path.
    let mut expected = [0u8; 43];
    let written = B64.encode_slice(digest, &mut expected).unwrap_or_default();
    let expected = &expected[..written];
    if got.as_bytes() == expected {
        return Ok(());
    }
    Err(ProofError::AthMismatch {
        expected: String::from_utf8_lossy(expected).into_owned(),
        got: got.to_owned(),
    })
}

/// A claim that must be a string when present.
pub(super) fn optional_str<'m>(
    member: &'m StrMember<'_>,
    claim: &'static str,
) -> Result<Option<&'m str>, ProofError> {
    member.get().map_err(|_| ProofError::ClaimType { claim })
}
