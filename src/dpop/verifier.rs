//! [`verify`] and the [`ProofVerifier`] the request path uses: split and decode the JWS, the
//! header checks (answered from a bounded cache for a header that passed before), the
//! signature, then the claim checks.

use std::sync::Arc;

use super::*;
use crate::clock::UnixTime;
use crate::jose::{JwsError, JwsPart, JwsParts};

/// The default bound of a [`ProofVerifier`]'s header cache: the total weight of its entries,
/// in bytes. An entry weighs its key (the header's base64url text) plus the parsed key's heap
/// bytes plus a fixed estimate of the cache's own per-entry overhead. An Ed25519 entry weighs
/// about 0.5 KiB, an ES256 one 0.65 KiB and a 2048-bit RSA one 1.15 KiB, so 8 MiB holds some
/// 7,000 (RSA) to 16,000 (Ed25519) client keys. Past the bound moka evicts by its TinyLFU
/// policy, so a flood of one-off headers does not push out the keys of regular clients.
pub const HEADER_CACHE_BYTES: u64 = 8 << 20;

/// Estimated bytes an entry costs besides its key text and key material: moka's entry, its
/// queue nodes and the two `Arc`s (a few hundred bytes), and the [`CheckedHeader`].
pub(super) const ENTRY_OVERHEAD: usize = 256 + std::mem::size_of::<CheckedHeader>();

/// A [`ProofPolicy`] and a cache of the proof headers that passed its header checks, keyed by
/// the header's base64url text as sent, bounded by [`HEADER_CACHE_BYTES`] (or the bound given
/// to [`Self::with_cache_bytes`]). The policy cannot change for the cache's life, so a cached
/// header is exactly what checking it again would produce. A header is cached only after a
/// proof carrying it passed the header checks *and* its signature verified, so refused headers,
/// and keys that never signed anything, never take space.
pub struct ProofVerifier {
    pub(super) policy: ProofPolicy,
    pub(super) headers: HeaderCache,
}

/// A proof's header: checked before (from the cache), or decoded and still to check.
pub(super) enum Header {
    Cached(Arc<CheckedHeader>),
    Decoded(Vec<u8>),
}

/// Checked proof headers by their base64url text.
pub(super) type HeaderCache = moka::sync::Cache<Box<str>, Arc<CheckedHeader>>;

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
pub(super) fn verify_with(
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

pub(super) fn jws_error(e: JwsError) -> ProofError {
    match e {
        JwsError::TooLarge { len, max } => ProofError::TooLarge { len, max },
        other => ProofError::Malformed(other),
    }
}
