//! Public JWKs (RFC 7517) as they appear in a DPoP proof's `jwk` header and in a JWKS, their
//! RFC 7638 thumbprints, and signature verification with ring. No I/O.
//!
//! A JWK carrying any private member (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`) is refused:
//! RFC 9449 §4.3 point 7.
//!
//! Keys that would verify forged signatures or have several thumbprints are refused too:
//! Ed25519 keys of small order, which ring's cofactorless verification accepts a fixed
//! signature for over any message, and Ed25519 encodings with `y >= p` (RFC 8032 §5.1.3,
//! RFC 8725 §3.4); RSA `n` and `e` with leading zero octets (RFC 7518 §2, §6.3.1) in a proof's
//! key, whose thumbprint names it (a JWKS entry gets the zeros dropped, see
//! `PublicJwk::from_key_set_members`).

use base64::Engine as _;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::json::{present, StrMember};
use super::{Algorithm, B64};

/// The longest RSA modulus accepted, in bits (proof keys and authorization-server keys).
pub(crate) const MAX_RSA_BITS: usize = 4096;

/// A SHA-256 JWK thumbprint (RFC 7638), what `cnf.jkt` carries.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Thumbprint([u8; 32]);

/// A parsed public key with what a JWK says about it.
#[derive(Clone, Debug)]
pub struct PublicJwk {
    key: KeyMaterial,
    kid: Option<String>,
    alg: Option<Algorithm>,
    thumbprint: Thumbprint,
}

/// The members of a JWK that [`PublicJwk`] reads, borrowed from the JSON text (a proof's `jwk`
/// header, parsed with serde) or from a parsed object (a JWKS entry, [`Self::from_map`]), so
/// both go through [`PublicJwk::from_members`]. Unknown members are ignored.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct JwkMembers<'a> {
    #[serde(default, borrow)]
    kty: StrMember<'a>,
    #[serde(default, borrow)]
    crv: StrMember<'a>,
    #[serde(default, borrow)]
    x: StrMember<'a>,
    #[serde(default, borrow)]
    y: StrMember<'a>,
    #[serde(default, borrow)]
    n: StrMember<'a>,
    #[serde(default, borrow)]
    e: StrMember<'a>,
    #[serde(default, borrow)]
    kid: StrMember<'a>,
    #[serde(default, borrow)]
    alg: StrMember<'a>,
    /// `use` (RFC 7517 §4.2): read for JWKS entries only.
    #[serde(default, borrow, rename = "use")]
    key_use: StrMember<'a>,
    // The private members (PRIVATE_MEMBERS): refused whatever their value.
    #[serde(default, deserialize_with = "present")]
    d: bool,
    #[serde(default, deserialize_with = "present")]
    p: bool,
    #[serde(default, deserialize_with = "present")]
    q: bool,
    #[serde(default, deserialize_with = "present")]
    dp: bool,
    #[serde(default, deserialize_with = "present")]
    dq: bool,
    #[serde(default, deserialize_with = "present")]
    qi: bool,
    #[serde(default, deserialize_with = "present")]
    oth: bool,
    #[serde(default, deserialize_with = "present")]
    k: bool,
    /// Unknown members, checked as JSON and dropped (see `jose::json`).
    #[serde(flatten)]
    _rest: IgnoredAny,
}

/// Why a JWK was refused, or why a signature did not verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwkError {
    /// A member the key type requires is absent (RFC 7518 §6).
    MissingMember(&'static str),
    /// A member is present but is not a JSON string.
    NotAString(&'static str),
    /// A private member is present (RFC 9449 §4.3 point 7; RFC 7517 §9.1 for a JWKS).
    PrivateMember(&'static str),
    /// `kty` is not `EC`, `OKP` or `RSA`.
    UnsupportedKty(String),
    /// `crv` is not one we verify with (`P-256`, `P-384` for EC; `Ed25519` for OKP).
    UnsupportedCrv(String),
    /// The `alg` member names an algorithm we do not support.
    UnsupportedAlg(String),
    /// A key member is not unpadded base64url.
    BadBase64(&'static str),
    /// A coordinate does not have the curve's exact length (RFC 7518 §6.2.1.2: full length,
    /// leading zeros kept; RFC 8037 §2 for `x` of Ed25519).
    CoordinateLength {
        /// `x` or `y`.
        member: &'static str,
        /// The curve's coordinate length, in bytes.
        expected: usize,
        /// The decoded length.
        got: usize,
    },
    /// An Ed25519 public key of small order (the identity or a point of order 2, 4 or 8, in
    /// any encoding): every message has a signature it verifies without any private key
    /// (RFC 8032 §5.1.7 verification without the cofactor; RFC 8725 §3.4).
    Ed25519SmallOrder,
    /// An Ed25519 public key whose `y` is not reduced, `y >= p` (RFC 8032 §5.1.3 step 1:
    /// decoding fails).
    Ed25519NotCanonical,
    /// An RSA `n` or `e` with a leading zero octet, which RFC 7518 §2 (Base64urlUInt: "the
    /// minimum number of octets") forbids: the same key would have several thumbprints.
    NotMinimalInteger(&'static str),
    /// The RSA modulus is shorter than 2048 bits (RFC 7518 §3.3).
    RsaKeyTooSmall {
        /// The modulus length, in bits.
        bits: usize,
    },
    /// The RSA modulus is longer than `MAX_RSA_BITS`: a cost bound (an 8192-bit key costs
    /// about a millisecond per verification, before any other check).
    RsaKeyTooLarge {
        /// The modulus length, in bits.
        bits: usize,
    },
    /// The key's type or curve cannot verify this algorithm.
    DoesNotFit {
        /// The algorithm asked for.
        alg: Algorithm,
    },
    /// The signature did not verify.
    BadSignature,
}

/// The key bytes, in the form ring takes them.
#[derive(Clone, Debug)]
enum KeyMaterial {
    /// Uncompressed point `0x04 || x || y` (SEC 1 §2.3.3).
    Ec { curve: EcCurve, point: Box<[u8]> },
    /// The 32-byte public key.
    Ed25519([u8; 32]),
    /// Big-endian modulus and exponent, leading zero bytes stripped (ring refuses them).
    Rsa { n: Box<[u8]>, e: Box<[u8]> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EcCurve {
    P256,
    P384,
}

/// How RSA integers with leading zero octets are taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Integers {
    /// Refused (RFC 7518 §2): a proof key, whose thumbprint is what a token is bound to.
    Minimal,
    /// Dropped: a token-signing key in a JWKS, found by `kid`, whose thumbprint names nothing;
    /// RFC 7518 §6.3.1.1 notes libraries that prefix a zero octet to `n`, and authorization
    /// servers built on them still serve such keys.
    ZerosDropped,
}

/// Every small-order point of edwards25519 (order 1, 2, 4 and 8) as the 255-bit `y` of its
/// encodings (RFC 8032 §5.1.2), little-endian, sign bit clear: each one is refused with the
/// sign bit clear or set, which covers the canonical encodings of the eight points, the `x = 0`
/// ones with the sign bit set (which RFC 8032 §5.1.3 step 4 refuses to decode), and `y = p` and
/// `y = p + 1`, the non-canonical encodings of `y = 0` and `y = 1`. (No other small-order `y`
/// has a non-canonical form: `y + p < 2^255` only for `y < 19`.) The unit tests derive the
/// whole list from one order-8 point.
const ED25519_SMALL_ORDER_Y: [[u8; 32]; 7] = [
    // y = 0: the two points of order 4, (±sqrt(-1), 0).
    [0; 32],
    // y = 1: the identity (order 1).
    le_bytes(1, 0, 0),
    // The two y values of the four points of order 8.
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
    // y = p - 1: (0, -1), order 2.
    le_bytes(0xec, 0xff, 0x7f),
    // y = p and y = p + 1: 0 and 1 again, not reduced.
    le_bytes(0xed, 0xff, 0x7f),
    le_bytes(0xee, 0xff, 0x7f),
];

/// 32 little-endian bytes: `first`, then 30 times `middle`, then `last`.
const fn le_bytes(first: u8, middle: u8, last: u8) -> [u8; 32] {
    let mut out = [middle; 32];
    out[0] = first;
    out[31] = last;
    out
}

/// Members that only a private (or symmetric) key has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

// === impl Thumbprint ===

impl Thumbprint {
    #[cfg(test)]
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
        // 32 bytes are 43 base64url characters; checking first keeps decode_slice exact.
        if s.len() != 43 {
            return None;
        }
        let mut out = [0u8; 32];
        match B64.decode_slice(s, &mut out) {
            Ok(32) => Some(Self(out)),
            _ => None,
        }
    }

    /// SHA-256 over `parts` concatenated (the canonical JSON of RFC 7638 §3.2).
    fn digest(parts: &[&[u8]]) -> Self {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in parts {
            ctx.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Self(out)
    }
}

impl std::fmt::Display for Thumbprint {
    /// base64url, no padding (the `cnf.jkt` form).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut buf = [0u8; 43];
        let n = B64
            .encode_slice(self.0, &mut buf)
            .map_err(|_| std::fmt::Error)?;
        let s = std::str::from_utf8(&buf[..n]).map_err(|_| std::fmt::Error)?;
        f.write_str(s)
    }
}

impl std::fmt::Debug for Thumbprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Thumbprint({self})")
    }
}

// === impl PublicJwk ===

impl PublicJwk {
    /// Parses a public JWK from its JSON object (a JWKS entry; a proof's `jwk` header goes
    /// through the same checks, see `JwkMembers`).
    pub fn from_json(obj: &Map<String, Value>) -> Result<Self, JwkError> {
        Self::from_members(&JwkMembers::from_map(obj))
    }

    /// Parses a public JWK from its members (a proof's `jwk` header): the one place a JWK is
    /// validated.
    pub(crate) fn from_members(members: &JwkMembers<'_>) -> Result<Self, JwkError> {
        Self::parse(members, Integers::Minimal)
    }

    /// [`Self::from_members`] for a token-signing key in a JWKS: the same checks, except that
    /// RSA `n` and `e` with leading zero octets are taken with the zeros dropped (the value is
    /// the same; such a key's thumbprint names nothing).
    pub(crate) fn from_key_set_members(members: &JwkMembers<'_>) -> Result<Self, JwkError> {
        Self::parse(members, Integers::ZerosDropped)
    }

    fn parse(members: &JwkMembers<'_>, integers: Integers) -> Result<Self, JwkError> {
        if let Some(name) = members.private_member() {
            return Err(JwkError::PrivateMember(name));
        }
        let kid = optional_str(&members.kid, "kid")?.map(str::to_owned);
        let alg = match optional_str(&members.alg, "alg")? {
            None => None,
            Some(name) => Some(
                Algorithm::from_name(name)
                    .ok_or_else(|| JwkError::UnsupportedAlg(name.to_owned()))?,
            ),
        };
        let (key, thumbprint) = match required_str(&members.kty, "kty")? {
            "EC" => parse_ec(members)?,
            "OKP" => parse_okp(members)?,
            "RSA" => parse_rsa(members, integers)?,
            other => return Err(JwkError::UnsupportedKty(other.to_owned())),
        };
        Ok(Self {
            key,
            kid,
            alg,
            thumbprint,
        })
    }

    /// The RFC 7638 thumbprint (computed once, at parse time).
    pub fn thumbprint(&self) -> Thumbprint {
        self.thumbprint
    }

    /// The `kid` member, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The `alg` member, if any and known. (An unknown `alg` is refused by [`Self::from_json`].)
    pub fn alg(&self) -> Option<Algorithm> {
        self.alg
    }

    /// Bytes this key holds on the heap (key material and `kid`), for cache weights.
    pub(crate) fn heap_bytes(&self) -> usize {
        let key = match &self.key {
            KeyMaterial::Ec { point, .. } => point.len(),
            KeyMaterial::Ed25519(_) => 0,
            KeyMaterial::Rsa { n, e } => n.len() + e.len(),
        };
        key + self.kid.as_ref().map_or(0, String::capacity)
    }

    /// Whether this key's type (and curve) can verify `alg`.
    pub fn fits(&self, alg: Algorithm) -> bool {
        match (&self.key, alg) {
            (KeyMaterial::Ec { curve, .. }, Algorithm::ES256) => *curve == EcCurve::P256,
            (KeyMaterial::Ec { curve, .. }, Algorithm::ES384) => *curve == EcCurve::P384,
            (KeyMaterial::Ed25519(_), Algorithm::EdDSA | Algorithm::Ed25519) => true,
            (KeyMaterial::Rsa { .. }, Algorithm::RS256 | Algorithm::PS256) => true,
            _ => false,
        }
    }

    /// Verifies `signature` over `message` with `alg` (which must fit the key).
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> Result<(), JwkError> {
        let verified = match (&self.key, alg) {
            (KeyMaterial::Ec { curve, point }, Algorithm::ES256) if *curve == EcCurve::P256 => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, signature)
            }
            (KeyMaterial::Ec { curve, point }, Algorithm::ES384) if *curve == EcCurve::P384 => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, signature)
            }
            (KeyMaterial::Ed25519(x), Algorithm::EdDSA | Algorithm::Ed25519) => {
                UnparsedPublicKey::new(&signature::ED25519, x).verify(message, signature)
            }
            (KeyMaterial::Rsa { n, e }, Algorithm::RS256) => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, signature),
            (KeyMaterial::Rsa { n, e }, Algorithm::PS256) => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PSS_2048_8192_SHA256, message, signature),
            _ => return Err(JwkError::DoesNotFit { alg }),
        };
        verified.map_err(|_| JwkError::BadSignature)
    }
}

// === impl JwkMembers ===

impl<'a> JwkMembers<'a> {
    /// The members of a parsed JSON object (a JWKS entry), borrowed from it.
    pub(crate) fn from_map(obj: &'a Map<String, Value>) -> Self {
        let s = |name: &str| StrMember::from_value(obj.get(name));
        let has = |name: &str| obj.contains_key(name);
        Self {
            kty: s("kty"),
            crv: s("crv"),
            x: s("x"),
            y: s("y"),
            n: s("n"),
            e: s("e"),
            kid: s("kid"),
            alg: s("alg"),
            key_use: s("use"),
            d: has("d"),
            p: has("p"),
            q: has("q"),
            dp: has("dp"),
            dq: has("dq"),
            qi: has("qi"),
            oth: has("oth"),
            k: has("k"),
            _rest: IgnoredAny,
        }
    }

    /// Whether a JWKS entry may verify signatures: RFC 7517 §4.2, a key marked for another use
    /// (`enc`) must not; without `use`, it may.
    pub(crate) fn is_for_signing(&self) -> bool {
        matches!(self.key_use.get(), Ok(None | Some("sig")))
    }

    /// The `kid`, when it is a string (for log lines about a refused JWKS entry).
    pub(crate) fn kid(&self) -> Option<&str> {
        self.kid.get().ok().flatten()
    }

    /// The first private member present, in [`PRIVATE_MEMBERS`] order.
    fn private_member(&self) -> Option<&'static str> {
        let present = [
            self.d, self.p, self.q, self.dp, self.dq, self.qi, self.oth, self.k,
        ];
        PRIVATE_MEMBERS
            .into_iter()
            .zip(present)
            .find_map(|(name, here)| here.then_some(name))
    }
}

/// EC (RFC 7518 §6.2.1): thumbprint members `crv`, `kty`, `x`, `y`.
fn parse_ec(obj: &JwkMembers<'_>) -> Result<(KeyMaterial, Thumbprint), JwkError> {
    let crv = required_str(&obj.crv, "crv")?;
    let (curve, len) = match crv {
        "P-256" => (EcCurve::P256, 32),
        "P-384" => (EcCurve::P384, 48),
        other => return Err(JwkError::UnsupportedCrv(other.to_owned())),
    };
    let x = required_str(&obj.x, "x")?;
    let y = required_str(&obj.y, "y")?;
    let mut point = vec![0u8; 1 + 2 * len];
    point[0] = 0x04;
    decode_exact(x, "x", &mut point[1..=len])?;
    decode_exact(y, "y", &mut point[1 + len..])?;
    // RFC 7638 §3.2: members in lexicographic order, no whitespace. Every value is either a
    // constant or validated base64url, so none needs JSON escaping.
    let thumbprint = Thumbprint::digest(&[
        b"{\"crv\":\"",
        crv.as_bytes(),
        b"\",\"kty\":\"EC\",\"x\":\"",
        x.as_bytes(),
        b"\",\"y\":\"",
        y.as_bytes(),
        b"\"}",
    ]);
    let key = KeyMaterial::Ec {
        curve,
        point: point.into_boxed_slice(),
    };
    Ok((key, thumbprint))
}

/// OKP (RFC 8037 §2): thumbprint members `crv`, `kty`, `x`.
fn parse_okp(obj: &JwkMembers<'_>) -> Result<(KeyMaterial, Thumbprint), JwkError> {
    let crv = required_str(&obj.crv, "crv")?;
    if crv != "Ed25519" {
        return Err(JwkError::UnsupportedCrv(crv.to_owned()));
    }
    let x = required_str(&obj.x, "x")?;
    let mut key = [0u8; 32];
    decode_exact(x, "x", &mut key)?;
    check_ed25519(&key)?;
    let thumbprint = Thumbprint::digest(&[
        b"{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"",
        x.as_bytes(),
        b"\"}",
    ]);
    Ok((KeyMaterial::Ed25519(key), thumbprint))
}

/// Ed25519 key checks beyond its length: not of small order, `y` reduced (see
/// [`ED25519_SMALL_ORDER_Y`]). Points not on the curve fail in ring, at verification.
fn check_ed25519(key: &[u8; 32]) -> Result<(), JwkError> {
    let mut y = *key;
    y[31] &= 0x7f;
    if ED25519_SMALL_ORDER_Y.contains(&y) {
        return Err(JwkError::Ed25519SmallOrder);
    }
    // p = 2^255 - 19: y >= p exactly when y is 2^255 - 19 ..= 2^255 - 1, i.e. its top 31
    // bytes are all ones (0x7f for the last, sign bit clear) and its first byte is >= 0xed.
    if y[0] >= 0xed && y[1..31].iter().all(|b| *b == 0xff) && y[31] == 0x7f {
        return Err(JwkError::Ed25519NotCanonical);
    }
    Ok(())
}

/// RSA (RFC 7518 §6.3.1): thumbprint members `e`, `kty`, `n`, values as given (RFC 7638 §3.1).
fn parse_rsa(
    obj: &JwkMembers<'_>,
    integers: Integers,
) -> Result<(KeyMaterial, Thumbprint), JwkError> {
    let n_b64 = required_str(&obj.n, "n")?;
    let e_b64 = required_str(&obj.e, "e")?;
    let n = uint(n_b64, "n", integers)?;
    let e = uint(e_b64, "e", integers)?;
    let bits = match n.first() {
        Some(first) => n.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    };
    if bits < 2048 {
        return Err(JwkError::RsaKeyTooSmall { bits });
    }
    if bits > MAX_RSA_BITS {
        return Err(JwkError::RsaKeyTooLarge { bits });
    }
    let thumbprint = Thumbprint::digest(&[
        b"{\"e\":\"",
        e_b64.as_bytes(),
        b"\",\"kty\":\"RSA\",\"n\":\"",
        n_b64.as_bytes(),
        b"\"}",
    ]);
    let key = KeyMaterial::Rsa {
        n: n.into_boxed_slice(),
        e: e.into_boxed_slice(),
    };
    Ok((key, thumbprint))
}

fn required_str<'m>(member: &'m StrMember<'_>, name: &'static str) -> Result<&'m str, JwkError> {
    optional_str(member, name)?.ok_or(JwkError::MissingMember(name))
}

fn optional_str<'m>(
    member: &'m StrMember<'_>,
    name: &'static str,
) -> Result<Option<&'m str>, JwkError> {
    member.get().map_err(|_| JwkError::NotAString(name))
}

/// Decodes `encoded` into exactly `out.len()` bytes.
fn decode_exact(encoded: &str, member: &'static str, out: &mut [u8]) -> Result<(), JwkError> {
    let expected = out.len();
    // Unpadded base64 of n bytes is ceil(4n/3) characters; any other length is either invalid
    // base64 or the wrong size, and decode_slice is only exact when the length matches.
    if encoded.len() != (expected * 4).div_ceil(3) {
        let decoded = B64
            .decode(encoded)
            .map_err(|_| JwkError::BadBase64(member))?;
        return Err(JwkError::CoordinateLength {
            member,
            expected,
            got: decoded.len(),
        });
    }
    match B64.decode_slice(encoded, out) {
        Ok(n) if n == expected => Ok(()),
        _ => Err(JwkError::BadBase64(member)),
    }
}

/// A Base64urlUInt (RFC 7518 §2), big-endian without leading zero octets (what ring takes).
/// Zero is the single octet `AA`; any other value with a leading zero octet is refused or has
/// its zeros dropped, as `integers` says.
fn uint(encoded: &str, member: &'static str, integers: Integers) -> Result<Vec<u8>, JwkError> {
    let mut bytes = B64
        .decode(encoded)
        .map_err(|_| JwkError::BadBase64(member))?;
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    if zeros > 0 && bytes.len() > 1 {
        if integers == Integers::Minimal {
            return Err(JwkError::NotMinimalInteger(member));
        }
        bytes.drain(..zeros);
    }
    Ok(bytes)
}

// === impl JwkError ===

impl std::fmt::Display for JwkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwkError::MissingMember(m) => write!(f, "JWK member `{m}` is missing"),
            JwkError::NotAString(m) => write!(f, "JWK member `{m}` is not a string"),
            JwkError::PrivateMember(m) => write!(f, "JWK has private member `{m}`"),
            JwkError::UnsupportedKty(k) => write!(f, "JWK kty {:?} is not supported", clip(k)),
            JwkError::UnsupportedCrv(c) => write!(f, "JWK crv {:?} is not supported", clip(c)),
            JwkError::UnsupportedAlg(a) => write!(f, "JWK alg {:?} is not supported", clip(a)),
            JwkError::BadBase64(m) => write!(f, "JWK member `{m}` is not base64url"),
            JwkError::CoordinateLength {
                member,
                expected,
                got,
            } => write!(f, "JWK `{member}` is {got} bytes, expected {expected}"),
            JwkError::Ed25519SmallOrder => f.write_str("Ed25519 key is of small order"),
            JwkError::Ed25519NotCanonical => {
                f.write_str("Ed25519 key is not canonically encoded (y >= p)")
            }
            JwkError::NotMinimalInteger(m) => {
                write!(f, "JWK `{m}` has a leading zero octet (RFC 7518 §2)")
            }
            JwkError::RsaKeyTooSmall { bits } => {
                write!(f, "RSA key is {bits} bits, fewer than 2048")
            }
            JwkError::RsaKeyTooLarge { bits } => {
                write!(f, "RSA key is {bits} bits, more than {MAX_RSA_BITS}")
            }
            JwkError::DoesNotFit { alg } => write!(f, "JWK cannot verify {alg}"),
            JwkError::BadSignature => f.write_str("signature does not verify"),
        }
    }
}

impl std::error::Error for JwkError {}

/// At most 32 characters of a client-supplied value (a JWK member name), for error messages.
fn clip(s: &str) -> &str {
    super::clip_to(s, 32)
}

#[cfg(test)]
mod tests;
