//! Stateless server-provided nonces (RFC 9449 §8, §9): no I/O, no clock reads, no store.
//!
//! A nonce is `base64url(version || issued_at || tag)` where `issued_at` is the issue time in
//! seconds (u64, big-endian) and `tag` is HMAC-SHA256 over `version || issued_at` under the
//! first configured secret. Any replica holding the same secrets can verify any other replica's
//! nonces without sharing state, and a nonce carries nothing about the client: one nonce may be
//! served to many clients (§8 lets the server choose how nonces are scoped).
//!
//! Rotation: the first secret issues, every secret verifies. Add the new secret in front, wait
//! one lifetime, then drop the old one; a nonce issued under a dropped secret fails as
//! [`NonceError::BadMac`] and the client retries with the fresh nonce the refusal carries.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;

use crate::clock::UnixTime;

/// The shortest accepted secret: the HMAC-SHA256 output size, so a secret is never the weak
/// link (RFC 2104 §3).
pub(crate) const MIN_SECRET_BYTES: usize = 32;

/// How far in the future a nonce's issue time may be: clock skew between replicas.
pub(crate) const MAX_FUTURE_SKEW_SECS: u64 = 5;

/// The format version byte; a new format gets a new value so old nonces fail as malformed.
const VERSION: u8 = 1;

/// HMAC-SHA256 output length. The whole tag travels: `ring::hmac::verify` compares it in
/// constant time, which a truncated tag would have to do by hand.
const TAG_LEN: usize = 32;

/// version (1) + issued_at (8): the bytes the tag covers.
const SIGNED_LEN: usize = 1 + 8;

/// The decoded length of a nonce of this version.
const NONCE_LEN: usize = SIGNED_LEN + TAG_LEN;

/// The secrets nonces are made and checked with. The first one issues; all of them verify.
pub(crate) struct NonceKeys {
    keys: Vec<hmac::Key>,
    lifetime_secs: u64,
}

/// What a valid nonce's age says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NonceStatus {
    /// Younger than half its lifetime.
    Fresh,
    /// Older than half its lifetime but still valid: the pipeline accepts the request and sends
    /// a new nonce in `DPoP-Nonce` (RFC 9449 §8.2) so the client never hits the hard expiry.
    NearExpiry,
}

/// Why a proof's nonce was refused (the client's fault: it retries with the fresh nonce).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NonceError {
    /// The proof has no `nonce` claim although the server requires one (RFC 9449 §8).
    Missing,
    /// The nonce is not base64url of a nonce this gateway makes (length, version or alphabet).
    Malformed,
    /// No configured secret produced the nonce's tag: forged, altered, or issued under a
    /// secret that has since been retired (RFC 9449 §9).
    BadMac,
    /// The nonce is older than its lifetime (RFC 9449 §8).
    Expired {
        /// The nonce's issue time, seconds since the epoch.
        issued: u64,
        /// The time of the check.
        now: u64,
        /// The configured lifetime in seconds.
        lifetime: u64,
    },
    /// The nonce was issued more than [`MAX_FUTURE_SKEW_SECS`] after `now`.
    FromFuture {
        /// The nonce's issue time, seconds since the epoch.
        issued: u64,
        /// The time of the check.
        now: u64,
    },
}

/// Why the configured secrets cannot make nonces: a start-up error, never a request's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NonceConfigError {
    /// No secret was configured.
    NoSecrets,
    /// A configured secret is shorter than [`MIN_SECRET_BYTES`].
    SecretTooShort {
        /// The secret's position in the list, from 0.
        index: usize,
        /// Its length in bytes.
        len: usize,
        /// The minimum length in bytes.
        min: usize,
    },
    /// The configured lifetime is zero, so every nonce would be expired when issued.
    ZeroLifetime,
}

// === impl NonceKeys ===

impl NonceKeys {
    /// Keys for `secrets` (the first issues, all verify); nonces live `lifetime_secs`.
    pub(crate) fn new(secrets: &[&[u8]], lifetime_secs: u64) -> Result<Self, NonceConfigError> {
        if secrets.is_empty() {
            return Err(NonceConfigError::NoSecrets);
        }
        if lifetime_secs == 0 {
            return Err(NonceConfigError::ZeroLifetime);
        }
        let mut keys = Vec::with_capacity(secrets.len());
        for (index, secret) in secrets.iter().enumerate() {
            if secret.len() < MIN_SECRET_BYTES {
                return Err(NonceConfigError::SecretTooShort {
                    index,
                    len: secret.len(),
                    min: MIN_SECRET_BYTES,
                });
            }
            keys.push(hmac::Key::new(hmac::HMAC_SHA256, secret));
        }
        Ok(Self {
            keys,
            lifetime_secs,
        })
    }

    /// A new nonce issued at `now` under the first secret: base64url without padding, so it is
    /// also valid in a header and in the `nonce` claim (RFC 9449 §8.1).
    pub(crate) fn issue(&self, now: UnixTime) -> String {
        let signed = signed_bytes(now.as_secs());
        let mut raw = [0u8; NONCE_LEN];
        raw[..SIGNED_LEN].copy_from_slice(&signed);
        // `new` refuses an empty list, so there is always a first key.
        if let Some(key) = self.keys.first() {
            raw[SIGNED_LEN..].copy_from_slice(hmac::sign(key, &signed).as_ref());
        }
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks the proof's `nonce` claim at `now`: made by one of the secrets, not older than the
    /// lifetime, not issued in the future beyond the skew allowance.
    pub(crate) fn check(
        &self,
        nonce: Option<&str>,
        now: UnixTime,
    ) -> Result<NonceStatus, NonceError> {
        let nonce = nonce.ok_or(NonceError::Missing)?;
        // A nonce of this format is 55 characters; anything much longer is not worth decoding.
        if nonce.len() > 2 * NONCE_LEN {
            return Err(NonceError::Malformed);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(nonce)
            .map_err(|_| NonceError::Malformed)?;
        if raw.len() != NONCE_LEN || raw[0] != VERSION {
            return Err(NonceError::Malformed);
        }
        let (signed, tag) = raw.split_at(SIGNED_LEN);
        // The MAC is checked before the time so that nothing is believed about a forged nonce.
        if !self
            .keys
            .iter()
            .any(|key| hmac::verify(key, signed, tag).is_ok())
        {
            return Err(NonceError::BadMac);
        }
        let mut issued_be = [0u8; 8];
        issued_be.copy_from_slice(&signed[1..SIGNED_LEN]);
        let issued = u64::from_be_bytes(issued_be);
        self.judge_age(issued, now.as_secs())
    }

    fn judge_age(&self, issued: u64, now: u64) -> Result<NonceStatus, NonceError> {
        if issued > now.saturating_add(MAX_FUTURE_SKEW_SECS) {
            return Err(NonceError::FromFuture { issued, now });
        }
        let age = now.saturating_sub(issued);
        if age > self.lifetime_secs {
            return Err(NonceError::Expired {
                issued,
                now,
                lifetime: self.lifetime_secs,
            });
        }
        if age > self.lifetime_secs / 2 {
            Ok(NonceStatus::NearExpiry)
        } else {
            Ok(NonceStatus::Fresh)
        }
    }
}

impl fmt::Debug for NonceKeys {
    // Never the secrets: only how many there are.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceKeys")
            .field("secrets", &self.keys.len())
            .field("lifetime_secs", &self.lifetime_secs)
            .finish()
    }
}

// === impl NonceError ===

impl fmt::Display for NonceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NonceError::Missing => {
                f.write_str("the proof has no nonce but the server requires one")
            }
            NonceError::Malformed => {
                f.write_str("the nonce is not one this server issued (malformed)")
            }
            NonceError::BadMac => {
                f.write_str("the nonce was not issued by this server or its key was retired")
            }
            NonceError::Expired {
                issued,
                now,
                lifetime,
            } => write!(
                f,
                "the nonce expired: issued at {issued}, now {now}, lifetime {lifetime}s"
            ),
            NonceError::FromFuture { issued, now } => write!(
                f,
                "the nonce is from the future: issued at {issued}, now {now}, \
                 allowed skew {MAX_FUTURE_SKEW_SECS}s"
            ),
        }
    }
}

impl std::error::Error for NonceError {}

// === impl NonceConfigError ===

impl fmt::Display for NonceConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NonceConfigError::NoSecrets => f.write_str("no nonce secret is configured"),
            NonceConfigError::SecretTooShort { index, len, min } => write!(
                f,
                "nonce secret #{index} is {len} bytes long, at least {min} are required"
            ),
            NonceConfigError::ZeroLifetime => f.write_str("the nonce lifetime must be at least 1s"),
        }
    }
}

impl std::error::Error for NonceConfigError {}

/// Whether `s` is a syntactically valid nonce value (RFC 9449 §8.1):
/// `nonce = 1*NQCHAR`, `NQCHAR = %x21 / %x23-5B / %x5D-7E` (visible ASCII but `"` and `\`).
#[cfg(test)]
pub(crate) fn nonce_chars_ok(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// `version || issued_at`: the bytes the tag covers.
fn signed_bytes(issued: u64) -> [u8; SIGNED_LEN] {
    let mut out = [0u8; SIGNED_LEN];
    out[0] = VERSION;
    out[1..].copy_from_slice(&issued.to_be_bytes());
    out
}

#[cfg(test)]
mod tests;
