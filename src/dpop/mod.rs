//! DPoP proof verification (RFC 9449 §4.3). No I/O, no tokio, no hyper, no clock reads; `now`
//! is an argument so every check is a unit test with a fixed time.
//!
//! [`verify`] checks a proof from scratch. [`ProofVerifier`], which the request path uses, runs
//! the same checks with a bounded in-memory cache of proof headers that passed them: a client
//! reuses one key, so the protected header (`typ`, `alg`, `jwk`) of all its proofs is the same
//! text, and a hit skips decoding and parsing the header, parsing its `jwk` and the RFC 7638
//! thumbprint. The signature and the claims are checked on every proof; a result never depends
//! on the cache.
//!
//! Header and claims are parsed with serde into typed views that borrow from the decoded bytes
//! (`jose::json`), not into `serde_json::Map`s; a member the checks read that appears twice is
//! refused ([`ProofError::HeaderDuplicateMember`], [`ProofError::ClaimsDuplicateMember`]).
//!
//! What is *not* here: the replay check (the pipeline asks the replay store with
//! [`VerifiedProof::replay_key`] as the last step, so that only fully valid proofs use an
//! entry), the nonce check (`crate::nonce`) and the token binding (`crate::token`).

pub(crate) mod error;
pub(crate) mod explain;
pub mod htu;

pub use error::{ProofCheck, ProofError, MAX_JTI_BYTES};

use std::sync::Arc;

use base64::Engine as _;
use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::clock::UnixTime;
use crate::jose::json::{parse_object, present, NumMember, ObjMember, ObjectError, StrMember};
use crate::jose::jwk::JwkMembers;
use crate::jose::{
    Algorithm, AlgorithmSet, JwsError, JwsPart, JwsParts, PublicJwk, Thumbprint, B64,
};

/// The default bound of a [`ProofVerifier`]'s header cache: the total weight of its entries,
/// in bytes. An entry weighs its key (the header's base64url text) plus the parsed key's heap
/// bytes plus a fixed estimate of the cache's own per-entry overhead. An Ed25519 entry weighs
/// about 0.5 KiB, an ES256 one 0.65 KiB and a 2048-bit RSA one 1.15 KiB, so 8 MiB holds some
/// 7,000 (RSA) to 16,000 (Ed25519) client keys. Past the bound moka evicts by its TinyLFU
/// policy, so a flood of one-off headers does not push out the keys of regular clients.
pub const HEADER_CACHE_BYTES: u64 = 8 << 20;

/// Estimated bytes an entry costs besides its key text and key material: moka's entry, its
/// queue nodes and the two `Arc`s (a few hundred bytes), and the [`CheckedHeader`].
const ENTRY_OVERHEAD: usize = 256 + std::mem::size_of::<CheckedHeader>();

/// What the gateway's configuration says about proofs.
#[derive(Clone, Debug)]
pub struct ProofPolicy {
    /// Allowed `alg` values (`dpop.algorithms`).
    pub algorithms: AlgorithmSet,
    /// How old `iat` may be, in seconds (`dpop.proof_max_age`).
    pub max_age: u64,
    /// How far ahead of `now` `iat` may be, in seconds (`dpop.clock_skew`).
    pub clock_skew: u64,
    /// Longest accepted proof, in bytes (`limits.max_proof_bytes`).
    pub max_proof_bytes: usize,
    /// Whether `ath` is required when an access token is presented (`dpop.require_ath`).
    pub require_ath: bool,
}

/// A [`ProofPolicy`] and a cache of the proof headers that passed its header checks, keyed by
/// the header's base64url text as sent, bounded by [`HEADER_CACHE_BYTES`] (or the bound given
/// to [`Self::with_cache_bytes`]). The policy cannot change for the cache's life, so a cached
/// header is exactly what checking it again would produce. A header is cached only after a
/// proof carrying it passed the header checks *and* its signature verified, so refused headers,
/// and keys that never signed anything, never take space.
pub struct ProofVerifier {
    policy: ProofPolicy,
    headers: HeaderCache,
}

/// Checked proof headers by their base64url text.
type HeaderCache = moka::sync::Cache<Box<str>, Arc<CheckedHeader>>;

/// What the header checks (RFC 9449 §4.3 points 3-5 and 7) produce; the thumbprint is the
/// key's.
#[derive(Debug)]
struct CheckedHeader {
    alg: Algorithm,
    jwk: PublicJwk,
}

/// A proof's header: checked before (from the cache), or decoded and still to check.
enum Header {
    Cached(Arc<CheckedHeader>),
    Decoded(Vec<u8>),
}

/// The members of a proof header the checks read (RFC 9449 §4.2), borrowed from its JSON.
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
    jwk: ObjMember<JwkMembers<'a>>,
    /// Unknown members, checked as JSON and ignored.
    #[serde(flatten)]
    _rest: IgnoredAny,
}

/// The claims the checks read (RFC 9449 §4.2), borrowed from the payload's JSON.
#[derive(Debug, Deserialize)]
struct ClaimsView<'a> {
    #[serde(default, borrow)]
    jti: StrMember<'a>,
    #[serde(default, borrow)]
    htm: StrMember<'a>,
    #[serde(default, borrow)]
    htu: StrMember<'a>,
    #[serde(default)]
    iat: NumMember,
    #[serde(default, borrow)]
    ath: StrMember<'a>,
    #[serde(default, borrow)]
    nonce: StrMember<'a>,
    /// Unknown claims, checked as JSON and ignored.
    #[serde(flatten)]
    _rest: IgnoredAny,
}

/// The request a proof must match.
#[derive(Clone, Copy, Debug)]
pub struct ProofRequest<'a> {
    /// The request method, e.g. `GET`.
    pub method: &'a str,
    /// The request URI as the client addressed it (scheme, authority, path; query and fragment
    /// are ignored), computed by the gateway from `public_url` or the request; normalised here.
    pub htu: &'a str,
    /// The access token presented with the proof, if any (for `ath`).
    pub access_token: Option<&'a str>,
}

/// A proof that passed every check in this module. Only [`verify`] and [`ProofVerifier::verify`]
/// build one.
#[derive(Clone, Debug)]
pub struct VerifiedProof {
    jkt: Thumbprint,
    jti: String,
    iat: UnixTime,
    /// Which algorithm verified the signature; only tests read it so far.
    #[cfg_attr(not(test), allow(dead_code))]
    alg: Algorithm,
    nonce: Option<String>,
}

/// The thumbprint of a key whose signature verified on a proof (RFC 9449 §4.3 point 6). Only
/// this module builds one, and only once the signature checked out: what the access log may
/// name for a refused request, never the key an unverified proof merely claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedBy(Thumbprint);

/// A refused proof: the failed check, and the key that signed the proof when the failure came
/// after the signature verified (a claim: `jti`, `htm`, `htu`, `iat`, `ath`, `nonce`).
#[derive(Debug)]
pub struct Refused {
    /// The failed check.
    pub error: ProofError,
    /// The signer, when the signature had verified.
    pub signed_by: Option<SignedBy>,
}

// === impl SignedBy ===

impl SignedBy {
    /// The RFC 7638 thumbprint of the key.
    pub fn jkt(&self) -> Thumbprint {
        self.0
    }
}

// === impl Refused ===

impl From<ProofError> for Refused {
    /// A refusal before (or of) the signature: no signer is known.
    fn from(error: ProofError) -> Self {
        Refused {
            error,
            signed_by: None,
        }
    }
}

// === impl VerifiedProof ===

impl VerifiedProof {
    /// The RFC 7638 thumbprint of the proof's key.
    pub fn jkt(&self) -> Thumbprint {
        self.jkt
    }

    /// The proof's key, as a verified signer.
    pub fn signed_by(&self) -> SignedBy {
        SignedBy(self.jkt)
    }

    #[cfg(test)]
    /// The proof's `jti`.
    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// The proof's `iat`.
    pub fn iat(&self) -> UnixTime {
        self.iat
    }

    #[cfg(test)]
    /// The proof's `alg`.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The proof's `nonce` claim, if any.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    /// A 128-bit key for the replay store: SHA-256 over (thumbprint, jti), truncated. Scoping the
    /// jti by key means one client cannot burn another's jti values (RFC 9449 §11.1).
    pub fn replay_key(&self) -> [u8; 16] {
        // The thumbprint has a fixed length, so (jkt, jti) pairs cannot collide by concatenation.
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(self.jkt.as_bytes());
        ctx.update(self.jti.as_bytes());
        let digest = ctx.finish();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest.as_ref()[..16]);
        key
    }
}

// === impl ProofVerifier ===

impl ProofVerifier {
    /// A verifier for `policy` with a header cache of [`HEADER_CACHE_BYTES`].
    pub fn new(policy: ProofPolicy) -> Self {
        Self::with_cache_bytes(policy, HEADER_CACHE_BYTES)
    }

    /// A verifier for `policy` whose header cache weighs at most `max_bytes` (estimated, see
    /// [`HEADER_CACHE_BYTES`]); 0 caches nothing.
    pub fn with_cache_bytes(policy: ProofPolicy, max_bytes: u64) -> Self {
        let headers = HeaderCache::builder()
            .max_capacity(max_bytes)
            .weigher(|header, checked| {
                let bytes = header.len() + checked.jwk.heap_bytes() + ENTRY_OVERHEAD;
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .build();
        Self { policy, headers }
    }

    /// The policy this verifier applies.
    pub fn policy(&self) -> &ProofPolicy {
        &self.policy
    }

    /// [`verify`], with the header checks answered from the cache when this exact header passed
    /// them before. Same result as [`verify`] with [`Self::policy`].
    pub fn verify(
        &self,
        proof: &str,
        request: &ProofRequest<'_>,
        now: UnixTime,
    ) -> Result<VerifiedProof, ProofError> {
        self.verify_signed(proof, request, now).map_err(|r| r.error)
    }

    /// [`Self::verify`], and on a refusal after the signature verified, the key that signed.
    pub fn verify_signed(
        &self,
        proof: &str,
        request: &ProofRequest<'_>,
        now: UnixTime,
    ) -> Result<VerifiedProof, Refused> {
        verify_with(proof, request, &self.policy, Some(&self.headers), now)
    }
}

impl std::fmt::Debug for ProofVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofVerifier")
            .field("policy", &self.policy)
            .field("cached_headers", &self.headers.entry_count())
            .finish()
    }
}

/// Runs every RFC 9449 §4.3 check that needs no state, in the RFC's order.
pub fn verify(
    proof: &str,
    request: &ProofRequest<'_>,
    policy: &ProofPolicy,
    now: UnixTime,
) -> Result<VerifiedProof, ProofError> {
    verify_with(proof, request, policy, None, now).map_err(|r| r.error)
}

/// [`verify`], with `cache` (built for `policy.algorithms`) answering the header checks.
fn verify_with(
    proof: &str,
    request: &ProofRequest<'_>,
    policy: &ProofPolicy,
    cache: Option<&HeaderCache>,
    now: UnixTime,
) -> Result<VerifiedProof, Refused> {
    // Point 1-2: one well-formed JWT, bounded before anything is decoded. The parts are decoded
    // in order (header, payload, signature), all before any header check, so a malformed JWS
    // gets `CompactJws::parse`'s error; a cached header is known to decode and is not decoded.
    let parts = JwsParts::split(proof, policy.max_proof_bytes).map_err(jws_error)?;
    let header = match cache.and_then(|c| c.get(parts.header)) {
        Some(checked) => Header::Cached(checked),
        None => Header::Decoded(parts.decode(JwsPart::Header).map_err(jws_error)?),
    };
    // Payload and signature share one buffer.
    let mut decoded = Vec::with_capacity(
        base64::decoded_len_estimate(parts.payload.len())
            + base64::decoded_len_estimate(parts.signature.len()),
    );
    parts
        .decode_into(JwsPart::Payload, &mut decoded)
        .map_err(jws_error)?;
    let payload_len = decoded.len();
    parts
        .decode_into(JwsPart::Signature, &mut decoded)
        .map_err(jws_error)?;
    let (payload, signature) = decoded.split_at(payload_len);

    // Points 3-5 and 7, unless cached.
    let (checked, hit) = match header {
        Header::Cached(checked) => (checked, true),
        Header::Decoded(json) => (Arc::new(check_header_json(&json, policy)?), false),
    };
    // Point 6: the signature, before any claim is trusted.
    checked
        .jwk
        .verify(checked.alg, parts.signing_input, signature)
        .map_err(|_| ProofError::Signature)?;
    let (alg, jkt) = (checked.alg, checked.jwk.thumbprint());
    if let (false, Some(cache)) = (hit, cache) {
        cache.insert(parts.header.into(), checked);
    }
    check_claims(payload, request, policy, now, alg, jkt).map_err(|error| Refused {
        error,
        signed_by: Some(SignedBy(jkt)),
    })
}

/// Points 8-12 on the payload of a proof whose signature by `jkt` verified.
fn check_claims(
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

fn jws_error(e: JwsError) -> ProofError {
    match e {
        JwsError::TooLarge { len, max } => ProofError::TooLarge { len, max },
        other => ProofError::Malformed(other),
    }
}

/// Points 3-5 and 7 on the decoded header: a JSON object without `crit`, then [`check_header`].
fn check_header_json(header: &[u8], policy: &ProofPolicy) -> Result<CheckedHeader, ProofError> {
    let header = parse_header(header)?;
    if header.crit {
        return Err(ProofError::CritUnsupported);
    }
    let (alg, jwk) = check_header(&header, policy.algorithms)?;
    Ok(CheckedHeader { alg, jwk })
}

/// Point 3: the header is a JSON object, no member we read twice.
fn parse_header(header: &[u8]) -> Result<HeaderView<'_>, ProofError> {
    parse_object(header).map_err(|e| match e {
        ObjectError::NotJson => ProofError::HeaderNotJson,
        ObjectError::Duplicate => ProofError::HeaderDuplicateMember,
    })
}

/// Point 2: the claims are a JSON object, no claim we read twice.
fn parse_claims(payload: &[u8]) -> Result<ClaimsView<'_>, ProofError> {
    parse_object(payload).map_err(|e| match e {
        ObjectError::NotJson => ProofError::ClaimsNotJson,
        ObjectError::Duplicate => ProofError::ClaimsDuplicateMember,
    })
}

/// Points 4, 5 and 7: `typ`, `alg` and a public `jwk` that can verify `alg`.
fn check_header(
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

/// Point 8: `jti` is a non-empty string of bounded length.
fn check_jti<'c>(claims: &'c ClaimsView<'_>) -> Result<&'c str, ProofError> {
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
fn check_htm(claims: &ClaimsView<'_>, method: &str) -> Result<(), ProofError> {
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
fn check_htu(claims: &ClaimsView<'_>, request_htu: &str) -> Result<(), ProofError> {
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
fn check_iat(
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
fn check_ath(claims: &ClaimsView<'_>, token: &str, required: bool) -> Result<(), ProofError> {
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
fn optional_str<'m>(
    member: &'m StrMember<'_>,
    claim: &'static str,
) -> Result<Option<&'m str>, ProofError> {
    member.get().map_err(|_| ProofError::ClaimType { claim })
}

#[cfg(test)]
mod tests;
