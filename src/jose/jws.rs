//! Compact JWS serialisation (RFC 7515 §7.1): three base64url parts, size-bounded. No I/O.

use base64::Engine as _;

use super::B64;

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
    /// Longer than allowed; refused before anything was decoded.
    TooLarge {
        /// Length of the input, in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not exactly three `.`-separated parts (RFC 7515 §7.1).
    NotThreeParts,
    /// A part is empty (an unsigned or detached-payload JWS is never accepted here).
    EmptyPart {
        /// Which part.
        part: JwsPart,
    },
    /// A part is not unpadded base64url (RFC 7515 §2: URL-safe alphabet, no `=`).
    BadBase64 {
        /// Which part.
        part: JwsPart,
    },
}

/// The three parts of a compact JWS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwsPart {
    /// The JOSE header.
    Header,
    /// The payload (the claims).
    Payload,
    /// The signature.
    Signature,
}

// === impl CompactJws ===

impl<'a> CompactJws<'a> {
    /// Splits `token`, refusing one longer than `max_len` bytes before decoding anything.
    pub fn parse(token: &'a str, max_len: usize) -> Result<Self, JwsError> {
        if token.len() > max_len {
            return Err(JwsError::TooLarge {
                len: token.len(),
                max: max_len,
            });
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwsError::NotThreeParts);
        };
        // header.payload: both are ASCII slices of `token`, so the length is exact.
        let signing_input = &token.as_bytes()[..header.len() + 1 + payload.len()];
        Ok(Self {
            signing_input,
            header: decode_part(header, JwsPart::Header)?,
            payload: decode_part(payload, JwsPart::Payload)?,
            signature: decode_part(signature, JwsPart::Signature)?,
        })
    }
}

fn decode_part(encoded: &str, part: JwsPart) -> Result<Vec<u8>, JwsError> {
    if encoded.is_empty() {
        return Err(JwsError::EmptyPart { part });
    }
    B64.decode(encoded)
        .map_err(|_| JwsError::BadBase64 { part })
}

// === impl JwsError ===

impl std::fmt::Display for JwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwsError::TooLarge { len, max } => {
                write!(f, "compact JWS is {len} bytes, more than the {max} allowed")
            }
            JwsError::NotThreeParts => f.write_str("compact JWS does not have exactly three parts"),
            JwsError::EmptyPart { part } => write!(f, "compact JWS {part} is empty"),
            JwsError::BadBase64 { part } => write!(f, "compact JWS {part} is not base64url"),
        }
    }
}

impl std::error::Error for JwsError {}

// === impl JwsPart ===

impl std::fmt::Display for JwsPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JwsPart::Header => "header",
            JwsPart::Payload => "payload",
            JwsPart::Signature => "signature",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_parts_are_split_and_decoded() {
        let jws = CompactJws::parse("eyJhIjoxfQ.eyJiIjoyfQ.AQID", 100).unwrap();
        assert_eq!(jws.signing_input, b"eyJhIjoxfQ.eyJiIjoyfQ");
        assert_eq!(jws.header, br#"{"a":1}"#);
        assert_eq!(jws.payload, br#"{"b":2}"#);
        assert_eq!(jws.signature, [1, 2, 3]);
    }

    #[test]
    fn too_large_is_refused_before_decoding() {
        // Not even valid base64: the size check must come first.
        let token = "!!!.!!!.!!!";
        assert_eq!(
            CompactJws::parse(token, 10).unwrap_err(),
            JwsError::TooLarge { len: 11, max: 10 }
        );
        assert!(CompactJws::parse("eyJhIjoxfQ.eyJiIjoyfQ.AQID", 27).is_ok());
    }

    #[test]
    fn wrong_number_of_parts_is_refused() {
        for token in ["eyJhIjoxfQ.eyJiIjoyfQ", "a.b.c.d", "abc", ""] {
            assert_eq!(
                CompactJws::parse(token, 100).unwrap_err(),
                JwsError::NotThreeParts,
                "{token}"
            );
        }
    }

    #[test]
    fn empty_parts_are_refused() {
        assert_eq!(
            CompactJws::parse(".eyJiIjoyfQ.AQID", 100).unwrap_err(),
            JwsError::EmptyPart {
                part: JwsPart::Header
            }
        );
        assert_eq!(
            CompactJws::parse("eyJhIjoxfQ..AQID", 100).unwrap_err(),
            JwsError::EmptyPart {
                part: JwsPart::Payload
            }
        );
        // `alg: none` style: no signature.
        assert_eq!(
            CompactJws::parse("eyJhIjoxfQ.eyJiIjoyfQ.", 100).unwrap_err(),
            JwsError::EmptyPart {
                part: JwsPart::Signature
            }
        );
    }

    #[test]
    fn padding_and_standard_alphabet_are_refused() {
        let bad = JwsError::BadBase64 {
            part: JwsPart::Signature,
        };
        assert_eq!(
            CompactJws::parse("eyJhIjoxfQ.eyJiIjoyfQ.AQI=", 100).unwrap_err(),
            bad
        );
        assert_eq!(
            CompactJws::parse("eyJhIjoxfQ.eyJiIjoyfQ.+/8", 100).unwrap_err(),
            bad
        );
        assert_eq!(
            CompactJws::parse("eyJhIjoxfQ.eyJiIjoyfQ.A", 100).unwrap_err(),
            bad
        );
        assert!(CompactJws::parse("eyJhIjoxfQ.eyJiIjoyfQ.-_8", 100).is_ok());
        assert_eq!(
            CompactJws::parse("eyJhIjoxfQ=.eyJiIjoyfQ.AQID", 100).unwrap_err(),
            JwsError::BadBase64 {
                part: JwsPart::Header
            }
        );
    }
}
