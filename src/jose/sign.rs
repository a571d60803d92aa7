//! The client side: private JWKs, key generation and signing. Used by `dpop-gateway keygen`,
//! `dpop-gateway proof`, the demo, the tests and the benches; never on the request path.

use super::{Algorithm, Thumbprint};

/// A private key with its algorithm, as a private JWK (`alg` member included).
pub struct PrivateJwk {
    _private: (),
}

/// Why a key could not be generated, read or used.
#[derive(Debug)]
pub enum SignError {
    /// Implementer's variants.
    Todo,
}

/// The claims of a DPoP proof to mint.
#[derive(Clone, Debug, Default)]
pub struct ProofClaims {
    /// `htm`: the HTTP method.
    pub htm: String,
    /// `htu`: the target URI without query and fragment.
    pub htu: String,
    /// `iat`: seconds since the epoch.
    pub iat: u64,
    /// `jti`: unique per proof (callers make it random).
    pub jti: String,
    /// `ath` is set to base64url(SHA-256(token)) when a token is given.
    pub access_token: Option<String>,
    /// `nonce` from a server's `DPoP-Nonce`.
    pub nonce: Option<String>,
}

impl PrivateJwk {
    /// A fresh key for `alg` (RSA keys are 2048 bits).
    pub fn generate(alg: Algorithm) -> Result<Self, SignError> {
        todo!("{alg}")
    }

    /// Reads a private JWK (JSON object with `alg`).
    pub fn from_json(json: &str) -> Result<Self, SignError> {
        todo!("{json}")
    }

    /// The private JWK as one JSON object, `alg` included.
    pub fn to_json(&self) -> String {
        todo!()
    }

    /// The public members only (what goes in a proof's `jwk` header or a JWKS).
    pub fn public_jwk(&self) -> serde_json::Map<String, serde_json::Value> {
        todo!()
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> Algorithm {
        todo!()
    }

    /// The RFC 7638 thumbprint of the public key.
    pub fn thumbprint(&self) -> Thumbprint {
        todo!()
    }

    /// Signs a compact JWS; `alg` is set in `header` from the key.
    pub fn sign_jws(
        &self,
        header: serde_json::Map<String, serde_json::Value>,
        payload: &serde_json::Value,
    ) -> Result<String, SignError> {
        todo!("{header:?}{payload}")
    }

    /// Mints a DPoP proof: `typ: dpop+jwt`, this key's `alg` and public `jwk`, the claims.
    pub fn mint_proof(&self, claims: &ProofClaims) -> Result<String, SignError> {
        todo!("{claims:?}")
    }
}

/// `ath`: base64url(SHA-256(ASCII access token)) (RFC 9449 §4.2).
pub fn ath(access_token: &str) -> String {
    todo!("{access_token}")
}

/// A random `jti`: 16 bytes from the system CSPRNG, base64url.
pub fn random_jti() -> String {
    todo!()
}
