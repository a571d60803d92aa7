//! Compact JWS serialisation (RFC 7515 §7.1): three base64url parts, size-bounded.

/// A compact JWS split into its parts, with header and payload decoded.
#[derive(Debug)]
pub struct CompactJws<'a> {
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`: the bytes the signature covers.
    pub signing_input: &'a [u8],
    /// The decoded header bytes (JSON text, not yet parsed).
    pub header: Vec<u8>,
    /// The decoded payload bytes (JSON text, not yet parsed).
    pub payload: Vec<u8>,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

/// Why a compact JWS could not be split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwsError {
    /// Implementer: TooLarge { len, max }, NotThreeParts, BadBase64 { part }, ...
    Todo,
}

impl<'a> CompactJws<'a> {
    /// Splits `token`, refusing one longer than `max_len` bytes before decoding anything.
    pub fn parse(token: &'a str, max_len: usize) -> Result<Self, JwsError> {
        todo!("{token}{max_len}")
    }
}
