//! Compact JWS serialisation (RFC 7515 §7.1): three base64url parts, size-bounded. No I/O.
//!
//! [`JwsParts`] splits without decoding, so a caller can decode only the parts it needs (a DPoP
//! proof whose header is cached); [`CompactJws`] decodes all three, with the same checks in the
//! same order.

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

/// A compact JWS split into its three base64url parts, none decoded yet.
#[derive(Clone, Copy, Debug)]
pub struct JwsParts<'a> {
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`: the bytes the signature covers.
    pub signing_input: &'a [u8],
    /// The header as sent (base64url text).
    pub header: &'a str,
    /// The payload as sent (base64url text).
    pub payload: &'a str,
    /// The signature as sent (base64url text).
    pub signature: &'a str,
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

// === impl JwsParts ===

impl<'a> JwsParts<'a> {
    /// Splits `token`, refusing one longer than `max_len` bytes. Decodes nothing: a part's
    /// emptiness and base64url are checked by [`Self::decode`] / [`Self::decode_into`], which a
    /// caller runs in part order (header, payload, signature) for [`CompactJws::parse`]'s errors.
    pub fn split(token: &'a str, max_len: usize) -> Result<Self, JwsError> {
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
            header,
            payload,
            signature,
        })
    }

    /// The text of `part`.
    pub fn text(&self, part: JwsPart) -> &'a str {
        match part {
            JwsPart::Header => self.header,
            JwsPart::Payload => self.payload,
            JwsPart::Signature => self.signature,
        }
    }

    /// Decodes `part` into a new buffer.
    pub fn decode(&self, part: JwsPart) -> Result<Vec<u8>, JwsError> {
        let mut out = Vec::new();
        self.decode_into(part, &mut out)?;
        Ok(out)
    }

    /// Decodes `part`, appending it to `out` (so that several parts can share one buffer).
    pub fn decode_into(&self, part: JwsPart, out: &mut Vec<u8>) -> Result<(), JwsError> {
        let encoded = self.text(part);
        if encoded.is_empty() {
            return Err(JwsError::EmptyPart { part });
        }
        B64.decode_vec(encoded, out)
            .map_err(|_| JwsError::BadBase64 { part })
    }
}

// === impl CompactJws ===

impl<'a> CompactJws<'a> {
    /// Splits `token`, refusing one longer than `max_len` bytes before decoding anything.
    pub fn parse(token: &'a str, max_len: usize) -> Result<Self, JwsError> {
        let parts = JwsParts::split(token, max_len)?;
        Ok(Self {
            signing_input: parts.signing_input,
            header: parts.decode(JwsPart::Header)?,
            payload: parts.decode(JwsPart::Payload)?,
            signature: parts.decode(JwsPart::Signature)?,
        })
    }
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
    fn parts_split_without_decoding_and_decode_into_one_buffer() {
        // The payload is not base64url: splitting does not look.
        let parts = JwsParts::split("eyJhIjoxfQ.!!.AQID", 100).unwrap();
        assert_eq!(parts.header, "eyJhIjoxfQ");
        assert_eq!(parts.signing_input, b"eyJhIjoxfQ.!!");
        assert_eq!(
            parts.decode(JwsPart::Payload).unwrap_err(),
            JwsError::BadBase64 {
                part: JwsPart::Payload
            }
        );
        let parts = JwsParts::split("eyJhIjoxfQ.eyJiIjoyfQ.AQID", 100).unwrap();
        let mut buf = Vec::new();
        parts.decode_into(JwsPart::Payload, &mut buf).unwrap();
        parts.decode_into(JwsPart::Signature, &mut buf).unwrap();
        assert_eq!(buf, b"{\"b\":2}\x01\x02\x03");
        assert_eq!(
            JwsParts::split("a.b", 100).unwrap_err(),
            JwsError::NotThreeParts
        );
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
