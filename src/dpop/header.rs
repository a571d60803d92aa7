//! The proof header checks (RFC 9449 §4.3 points 3-5 and 7): `typ`, `alg`, a public `jwk`
//! that fits it, no `crit`; what passes is what the verifier's header cache keeps.

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::*;
use crate::jose::json::{parse_object, present, ObjMember, ObjectError, StrMember};
use crate::jose::jwk::JwkMembers;
use crate::jose::{Algorithm, AlgorithmSet, PublicJwk};

/// What the header checks (RFC 9449 §4.3 points 3-5 and 7) produce; the thumbprint is the
/// key's.
#[derive(Debug)]
pub(super) struct CheckedHeader {
    pub(super) alg: Algorithm,
    pub(super) jwk: PublicJwk,
}

/// The members of a proof header the checks read (RFC 9449 §4.2), borrowed from its JSON.
#[derive(Debug, Deserialize)]
pub(super) struct HeaderView<'a> {
    /// Present at all (whatever its value): refused, no extension is understood.
    #[serde(default, deserialize_with = "present")]
    pub(super) crit: bool,
    #[serde(default, borrow)]
    pub(super) typ: StrMember<'a>,
    #[serde(default, borrow)]
    pub(super) alg: StrMember<'a>,
    #[serde(default, borrow)]
    pub(super) jwk: ObjMember<JwkMembers<'a>>,
    /// Unknown members, checked as JSON and ignored.
    #[serde(flatten)]
    pub(super) _rest: IgnoredAny,
}

/// Points 3-5 and 7 on the decoded header: a JSON object without `crit`, then [`check_header`].
pub(super) fn check_header_json(
    header: &[u8],
    policy: &ProofPolicy,
) -> Result<CheckedHeader, ProofError> {
    let header = parse_header(header)?;
    if header.crit {
        return Err(ProofError::CritUnsupported);
    }
    let (alg, jwk) = check_header(&header, policy.algorithms)?;
    Ok(CheckedHeader { alg, jwk })
}

/// Point 3: the header is a JSON object, no member we read twice.
pub(super) fn parse_header(header: &[u8]) -> Result<HeaderView<'_>, ProofError> {
    parse_object(header).map_err(|e| match e {
        ObjectError::NotJson => ProofError::HeaderNotJson,
        ObjectError::Duplicate => ProofError::HeaderDuplicateMember,
    })
}

/// Points 4, 5 and 7: `typ`, `alg` and a public `jwk` that can verify `alg`.
pub(super) fn check_header(
    header: &HeaderView<'_>,
    allowed: AlgorithmSet,
) -> Result<(Algorithm, PublicJwk), ProofError> {
    match header.typ.get() {
        Ok(Some("dpop+jwt")) => {}
        Ok(Some(t)) => {
            return Err(ProofError::Typ {
                got: Some(t.to_owned()),
            })
        }
        _ => return Err(ProofError::Typ { got: None }),
    }
    let alg = match header.alg.get() {
        Ok(Some(name)) => Algorithm::from_name(name)
            .filter(|a| allowed.contains(*a))
            .ok_or_else(|| ProofError::AlgNotAllowed {
                got: Some(name.to_owned()),
            })?,
        _ => return Err(ProofError::AlgNotAllowed { got: None }),
    };
    let ObjMember::Obj(jwk) = &header.jwk else {
        return Err(ProofError::JwkMissing);
    };
    let jwk = PublicJwk::from_members(jwk).map_err(ProofError::Jwk)?;
    // A key that names its own algorithm is used with that algorithm only (RFC 7517 §4.4).
    if !jwk.fits(alg) || jwk.alg().is_some_and(|a| a != alg) {
        return Err(ProofError::JwkDoesNotFit { alg });
    }
    Ok((alg, jwk))
}
