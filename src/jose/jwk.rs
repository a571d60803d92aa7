//! Public JWKs (RFC 7517) as they appear in a DPoP proof's `jwk` header and in a JWKS, their
//! RFC 7638 thumbprints, and signature verification with ring.
//!
//! A JWK carrying any private member (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`) is refused:
//! RFC 9449 §4.3 point 7.

use super::Algorithm;

/// A SHA-256 JWK thumbprint (RFC 7638), what `cnf.jkt` carries.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Thumbprint([u8; 32]);

/// A parsed public key with what a JWK says about it.
#[derive(Clone, Debug)]
pub struct PublicJwk {
    // fields are the implementer's choice; thumbprint computed once at parse time
    _private: (),
}

/// Why a JWK was refused, or why a signature did not verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwkError {
    /// Implementer: one variant per violation (missing member, unsupported kty/crv, private
    /// member present, bad base64url, wrong coordinate length, RSA modulus under 2048 bits, key
    /// type does not fit the algorithm, signature invalid).
    Todo,
}

// === impl Thumbprint ===

impl Thumbprint {
    /// Wraps the 32 digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses the base64url form used by `cnf.jkt`; `None` unless it decodes to exactly 32 bytes.
    pub fn from_b64(s: &str) -> Option<Self> {
        todo!("{s}")
    }
}

impl std::fmt::Display for Thumbprint {
    /// base64url, no padding (the `cnf.jkt` form).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        todo!("{}", f.width().unwrap_or(0))
    }
}

impl std::fmt::Debug for Thumbprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Thumbprint({self})")
    }
}

// === impl PublicJwk ===

impl PublicJwk {
    /// Parses a public JWK from its JSON object (a proof's `jwk` header or a JWKS entry).
    pub fn from_json(obj: &serde_json::Map<String, serde_json::Value>) -> Result<Self, JwkError> {
        todo!("{obj:?}")
    }

    /// The RFC 7638 thumbprint (computed once, at parse time).
    pub fn thumbprint(&self) -> Thumbprint {
        todo!()
    }

    /// The `kid` member, if any.
    pub fn kid(&self) -> Option<&str> {
        todo!()
    }

    /// The `alg` member, if any and known.
    pub fn alg(&self) -> Option<Algorithm> {
        todo!()
    }

    /// Whether this key's type (and curve) can verify `alg`.
    pub fn fits(&self, alg: Algorithm) -> bool {
        todo!("{alg}")
    }

    /// Verifies `signature` over `message` with `alg` (which must fit the key).
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> Result<(), JwkError> {
        todo!("{alg}{message:?}{signature:?}")
    }
}
