//! Unit tests of `jose::jwk`.

use super::*;
use serde_json::json;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn fixtures() -> Value {
    serde_json::from_str(include_str!("../../../tests/fixtures/vectors.json")).unwrap()
}

fn rfc9449_jwk() -> Map<String, Value> {
    obj(fixtures()["rfc9449_figure2_proof"]["jwk"].clone())
}

#[test]
fn rfc9449_ec_key_thumbprint() {
    let v = fixtures();
    let jwk = PublicJwk::from_json(&rfc9449_jwk()).unwrap();
    assert_eq!(
        jwk.thumbprint().to_string(),
        v["rfc9449_figure2_proof"]["jkt"].as_str().unwrap()
    );
    assert!(jwk.fits(Algorithm::ES256));
    assert!(!jwk.fits(Algorithm::ES384));
    assert!(!jwk.fits(Algorithm::RS256));
    assert!(!jwk.fits(Algorithm::EdDSA));
}

#[test]
fn rfc7638_rsa_key_thumbprint() {
    let v = fixtures();
    let jwk = PublicJwk::from_json(&obj(v["rfc7638_rsa_thumbprint"]["jwk"].clone())).unwrap();
    assert_eq!(
        jwk.thumbprint().to_string(),
        v["rfc7638_rsa_thumbprint"]["jkt"].as_str().unwrap()
    );
    assert!(jwk.fits(Algorithm::RS256));
    assert!(jwk.fits(Algorithm::PS256));
    assert!(!jwk.fits(Algorithm::ES256));
}

#[test]
fn leading_zero_ec_key_thumbprint_uses_padded_coordinate() {
    let v = fixtures();
    let jwk = PublicJwk::from_json(&obj(v["ec_key_with_leading_zero_x"]["jwk"].clone())).unwrap();
    assert_eq!(
        jwk.thumbprint().to_string(),
        v["ec_key_with_leading_zero_x"]["jkt"].as_str().unwrap()
    );
}

#[test]
fn member_order_in_the_input_does_not_change_the_thumbprint() {
    let a = PublicJwk::from_json(&rfc9449_jwk()).unwrap();
    let mut reordered = Map::new();
    for k in ["y", "x", "kty", "crv"] {
        reordered.insert(k.into(), rfc9449_jwk()[k].clone());
    }
    reordered.insert("kid".into(), json!("extra members are not hashed"));
    let b = PublicJwk::from_json(&reordered).unwrap();
    assert_eq!(a.thumbprint(), b.thumbprint());
    assert_eq!(b.kid(), Some("extra members are not hashed"));
}

#[test]
fn every_private_member_is_refused() {
    for member in PRIVATE_MEMBERS {
        let mut jwk = rfc9449_jwk();
        jwk.insert(member.into(), json!("AAAA"));
        assert_eq!(
            PublicJwk::from_json(&jwk).unwrap_err(),
            JwkError::PrivateMember(member)
        );
    }
}

#[test]
fn missing_and_mistyped_members_are_refused() {
    for member in ["kty", "crv", "x", "y"] {
        let mut jwk = rfc9449_jwk();
        jwk.remove(member);
        assert_eq!(
            PublicJwk::from_json(&jwk).unwrap_err(),
            JwkError::MissingMember(member)
        );
        let mut jwk = rfc9449_jwk();
        jwk.insert(member.into(), json!(1));
        assert_eq!(
            PublicJwk::from_json(&jwk).unwrap_err(),
            JwkError::NotAString(member)
        );
    }
    let mut jwk = rfc9449_jwk();
    jwk.insert("kid".into(), json!(7));
    assert_eq!(
        PublicJwk::from_json(&jwk).unwrap_err(),
        JwkError::NotAString("kid")
    );
}

#[test]
fn unsupported_kty_crv_and_alg_are_refused() {
    let mut jwk = rfc9449_jwk();
    jwk.insert("kty".into(), json!("oct"));
    assert_eq!(
        PublicJwk::from_json(&jwk).unwrap_err(),
        JwkError::UnsupportedKty("oct".into())
    );
    let mut jwk = rfc9449_jwk();
    jwk.insert("crv".into(), json!("secp256k1"));
    assert_eq!(
        PublicJwk::from_json(&jwk).unwrap_err(),
        JwkError::UnsupportedCrv("secp256k1".into())
    );
    let okp = obj(json!({"kty": "OKP", "crv": "X25519", "x": B64.encode([1u8; 32])}));
    assert_eq!(
        PublicJwk::from_json(&okp).unwrap_err(),
        JwkError::UnsupportedCrv("X25519".into())
    );
    let mut jwk = rfc9449_jwk();
    jwk.insert("alg".into(), json!("HS256"));
    assert_eq!(
        PublicJwk::from_json(&jwk).unwrap_err(),
        JwkError::UnsupportedAlg("HS256".into())
    );
    let mut jwk = rfc9449_jwk();
    jwk.insert("alg".into(), json!("ES256"));
    assert_eq!(
        PublicJwk::from_json(&jwk).unwrap().alg(),
        Some(Algorithm::ES256)
    );
}

#[test]
fn coordinates_must_have_the_curve_length() {
    let mut jwk = rfc9449_jwk();
    // 31 bytes: a leading zero dropped, which RFC 7518 §6.2.1.2 forbids.
    jwk.insert("x".into(), json!(B64.encode([7u8; 31])));
    assert_eq!(
        PublicJwk::from_json(&jwk).unwrap_err(),
        JwkError::CoordinateLength {
            member: "x",
            expected: 32,
            got: 31
        }
    );
    let mut jwk = rfc9449_jwk();
    jwk.insert("y".into(), json!(B64.encode([7u8; 33])));
    assert_eq!(
        PublicJwk::from_json(&jwk).unwrap_err(),
        JwkError::CoordinateLength {
            member: "y",
            expected: 32,
            got: 33
        }
    );
    let okp = obj(json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode([1u8; 31])}));
    assert!(matches!(
        PublicJwk::from_json(&okp).unwrap_err(),
        JwkError::CoordinateLength {
            member: "x",
            expected: 32,
            got: 31
        }
    ));
}

#[test]
fn bad_base64_is_refused() {
    let mut jwk = rfc9449_jwk();
    // Right length, wrong alphabet.
    jwk.insert(
        "x".into(),
        json!("l8tFrhx+34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs"),
    );
    assert_eq!(
        PublicJwk::from_json(&jwk).unwrap_err(),
        JwkError::BadBase64("x")
    );
    let mut jwk = rfc9449_jwk();
    jwk.insert(
        "y".into(),
        json!("9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA="),
    );
    assert_eq!(
        PublicJwk::from_json(&jwk).unwrap_err(),
        JwkError::BadBase64("y")
    );
}

#[test]
fn rsa_modulus_over_4096_bits_is_refused() {
    let jwk = obj(json!({"kty": "RSA", "n": B64.encode([0xffu8; 512]), "e": "AQAB"}));
    assert!(PublicJwk::from_json(&jwk).is_ok(), "4096 bits");
    let jwk = obj(json!({"kty": "RSA", "n": B64.encode([0xffu8; 513]), "e": "AQAB"}));
    assert_eq!(
        PublicJwk::from_json(&jwk).unwrap_err(),
        JwkError::RsaKeyTooLarge { bits: 4104 }
    );
}

#[test]
fn rsa_modulus_under_2048_bits_is_refused() {
    // 2047 bits: top byte 0x7f.
    let mut n = vec![0xffu8; 256];
    n[0] = 0x7f;
    let jwk = obj(json!({"kty": "RSA", "n": B64.encode(&n), "e": "AQAB"}));
    assert_eq!(
        PublicJwk::from_json(&jwk).unwrap_err(),
        JwkError::RsaKeyTooSmall { bits: 2047 }
    );
    let jwk = obj(json!({"kty": "RSA", "n": B64.encode([0xffu8; 256]), "e": "AQAB"}));
    assert!(PublicJwk::from_json(&jwk).is_ok());
}

#[test]
fn rsa_1024_bit_key_from_the_rsa_crate_is_refused() {
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
    let jwk = obj(json!({
        "kty": "RSA",
        "n": B64.encode(key.n().to_bytes_be()),
        "e": B64.encode(key.e().to_bytes_be()),
    }));
    assert_eq!(
        PublicJwk::from_json(&jwk).unwrap_err(),
        JwkError::RsaKeyTooSmall { bits: 1024 }
    );
}

#[test]
fn verify_refuses_an_algorithm_the_key_does_not_fit() {
    let jwk = PublicJwk::from_json(&rfc9449_jwk()).unwrap();
    assert_eq!(
        jwk.verify(Algorithm::RS256, b"m", &[0; 64]).unwrap_err(),
        JwkError::DoesNotFit {
            alg: Algorithm::RS256
        }
    );
    assert_eq!(
        jwk.verify(Algorithm::ES256, b"m", &[0; 64]).unwrap_err(),
        JwkError::BadSignature
    );
}

fn okp(x: &[u8; 32]) -> Map<String, Value> {
    obj(json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(x)}))
}

/// Every refused small-order encoding: each listed `y` with the sign bit clear and set.
fn small_order_encodings() -> Vec<[u8; 32]> {
    ED25519_SMALL_ORDER_Y
        .iter()
        .flat_map(|y| {
            let mut signed = *y;
            signed[31] |= 0x80;
            [*y, signed]
        })
        .collect()
}

#[test]
fn every_small_order_ed25519_encoding_is_refused() {
    let encodings = small_order_encodings();
    assert_eq!(encodings.len(), 14);
    for x in encodings {
        assert_eq!(
            PublicJwk::from_json(&okp(&x)).unwrap_err(),
            JwkError::Ed25519SmallOrder,
            "{}",
            B64.encode(x)
        );
    }
}

#[test]
fn ed25519_y_of_p_or_more_is_refused() {
    // y = p + k for k in 0..19 is every 255-bit y >= p; p and p + 1 are small-order.
    for k in 0u8..19 {
        for sign in [0u8, 0x80] {
            let mut x = [0xffu8; 32];
            x[0] = 0xed + k;
            x[31] = 0x7f | sign;
            let want = if k < 2 {
                JwkError::Ed25519SmallOrder
            } else {
                JwkError::Ed25519NotCanonical
            };
            assert_eq!(PublicJwk::from_json(&okp(&x)).unwrap_err(), want, "p+{k}");
        }
    }
    // y = p - 2, the largest reduced y that is not small-order: accepted here (ring decides
    // at verification whether it is on the curve).
    let mut x = [0xffu8; 32];
    x[0] = 0xeb;
    x[31] = 0x7f;
    assert!(PublicJwk::from_json(&okp(&x)).is_ok());
}

#[test]
fn generated_ed25519_keys_pass_the_key_checks() {
    for _ in 0..64 {
        let key = crate::jose::sign::PrivateJwk::generate(Algorithm::Ed25519).unwrap();
        assert!(PublicJwk::from_json(&key.public_jwk()).is_ok());
    }
}

/// Why the list exists: ring alone verifies `R = identity, S = 0` under the identity key
/// for any message. If this ever fails, ring became cofactored or refuses small-order keys
/// itself, and the list is belt and braces.
#[test]
fn ring_alone_accepts_a_forgery_under_the_identity_key() {
    let identity = le_bytes(1, 0, 0);
    let mut forged = [0u8; 64];
    forged[..32].copy_from_slice(&identity);
    for message in [&b"any message"[..], b"another one"] {
        assert!(UnparsedPublicKey::new(&signature::ED25519, identity)
            .verify(message, &forged)
            .is_ok());
    }
    assert_eq!(
        PublicJwk::from_json(&okp(&identity)).unwrap_err(),
        JwkError::Ed25519SmallOrder
    );
}

/// edwards25519 arithmetic on big integers, only to derive the small-order list in tests.
mod edwards {
    use rsa::BigUint;

    pub(super) type Point = (BigUint, BigUint);

    pub(super) fn p() -> BigUint {
        (BigUint::from(1u8) << 255usize) - BigUint::from(19u8)
    }

    fn inv(a: &BigUint) -> BigUint {
        a.modpow(&(p() - BigUint::from(2u8)), &p())
    }

    fn sub(a: &BigUint, b: &BigUint) -> BigUint {
        (a + p() - b % p()) % p()
    }

    /// d = -121665 / 121666 (RFC 8032 §5.1).
    fn d() -> BigUint {
        sub(
            &BigUint::from(0u8),
            &(BigUint::from(121_665u32) * inv(&BigUint::from(121_666u32))),
        )
    }

    /// RFC 8032 §5.1.3 decoding, lenient: `y` is reduced mod p and `x = 0` with the sign
    /// bit set is taken as `x = 0` (both refused by the gateway anyway).
    pub(super) fn decode(enc: &[u8; 32]) -> Option<Point> {
        let sign = enc[31] >> 7;
        let mut y = *enc;
        y[31] &= 0x7f;
        let y = BigUint::from_bytes_le(&y) % p();
        let one = BigUint::from(1u8);
        let yy = &y * &y % p();
        let u = sub(&yy, &one);
        let v = (d() * &yy + &one) % p();
        let xx = u * inv(&v) % p();
        let mut x = xx.modpow(&((p() + BigUint::from(3u8)) >> 3usize), &p());
        if &x * &x % p() != xx {
            let sqrt_m1 = BigUint::from(2u8).modpow(&((p() - &one) >> 2usize), &p());
            x = x * sqrt_m1 % p();
        }
        if &x * &x % p() != xx {
            return None;
        }
        if x != BigUint::from(0u8) && x.to_bytes_le()[0] & 1 != sign {
            x = p() - x;
        }
        Some((x, y))
    }

    pub(super) fn encode((x, y): &Point) -> [u8; 32] {
        let mut out = [0u8; 32];
        let bytes = y.to_bytes_le();
        out[..bytes.len()].copy_from_slice(&bytes);
        out[31] |= (x.to_bytes_le()[0] & 1) << 7;
        out
    }

    pub(super) fn add((x1, y1): &Point, (x2, y2): &Point) -> Point {
        let one = BigUint::from(1u8);
        let t = d() * x1 * x2 % p() * y1 * y2 % p();
        let x = (x1 * y2 + x2 * y1) % p() * inv(&((&one + &t) % p())) % p();
        let y = (y1 * y2 + x1 * x2) % p() * inv(&sub(&one, &t)) % p();
        (x, y)
    }

    pub(super) fn identity() -> Point {
        (BigUint::from(0u8), BigUint::from(1u8))
    }
}

#[test]
fn the_small_order_list_is_every_point_of_order_8_or_less() {
    // The group of edwards25519 has order 8 * l with l prime (RFC 7748 §4.1), so its points
    // of order dividing 8 are exactly the multiples of one point of order 8.
    let t = edwards::decode(&ED25519_SMALL_ORDER_Y[2]).unwrap();
    let mut multiples = vec![edwards::identity()];
    for k in 1..8 {
        multiples.push(edwards::add(&multiples[k - 1], &t));
    }
    assert_ne!(multiples[4], edwards::identity(), "order 8, not 4");
    assert_eq!(edwards::add(&multiples[7], &t), edwards::identity());
    let distinct: std::collections::HashSet<_> = multiples.iter().collect();
    assert_eq!(distinct.len(), 8);
    // Every point's canonical encoding is listed ...
    for point in &multiples {
        let mut y = edwards::encode(point);
        y[31] &= 0x7f;
        assert!(ED25519_SMALL_ORDER_Y.contains(&y), "{}", B64.encode(y));
    }
    // ... and every listed encoding (either sign) is one of them.
    for enc in small_order_encodings() {
        let point = edwards::decode(&enc).unwrap();
        assert!(multiples.contains(&point), "{}", B64.encode(enc));
    }
    // y = p and y = p + 1 are the only unreduced forms of a small-order y (0 and 1).
    let p = edwards::p().to_bytes_le();
    assert_eq!(ED25519_SMALL_ORDER_Y[5][..], p[..]);
}

fn rsa_jwk(n: &[u8], e: &[u8]) -> JwkMembersOwned {
    JwkMembersOwned(obj(
        json!({"kty": "RSA", "n": B64.encode(n), "e": B64.encode(e)}),
    ))
}

/// A JWK map whose members are parsed either way.
struct JwkMembersOwned(Map<String, Value>);

impl JwkMembersOwned {
    fn proof_key(&self) -> Result<PublicJwk, JwkError> {
        PublicJwk::from_members(&JwkMembers::from_map(&self.0))
    }

    fn key_set_key(&self) -> Result<PublicJwk, JwkError> {
        PublicJwk::from_key_set_members(&JwkMembers::from_map(&self.0))
    }
}

#[test]
fn rsa_integers_with_leading_zero_octets_are_refused_in_proof_keys() {
    let n = [0xc5u8; 256];
    let mut padded_n = vec![0u8];
    padded_n.extend(n);
    let minimal = rsa_jwk(&n, &[1, 0, 1]);
    assert!(minimal.proof_key().is_ok());
    assert_eq!(
        rsa_jwk(&padded_n, &[1, 0, 1]).proof_key().unwrap_err(),
        JwkError::NotMinimalInteger("n")
    );
    assert_eq!(
        rsa_jwk(&n, &[0, 1, 0, 1]).proof_key().unwrap_err(),
        JwkError::NotMinimalInteger("e")
    );
    // In a JWKS, the zeros are dropped: the same key as the minimal one.
    let padded = rsa_jwk(&padded_n, &[0, 1, 0, 1]).key_set_key().unwrap();
    let KeyMaterial::Rsa { n: got_n, e: got_e } = &padded.key else {
        panic!("an RSA key");
    };
    assert_eq!((&got_n[..], &got_e[..]), (&n[..], &[1u8, 0, 1][..]));
    // Zero is the single octet "AA" (RFC 7518 §2): minimal, and then too small a modulus.
    assert_eq!(
        rsa_jwk(&[0], &[1, 0, 1]).proof_key().unwrap_err(),
        JwkError::RsaKeyTooSmall { bits: 0 }
    );
}

#[test]
fn a_jwks_entry_says_whether_it_is_for_signing() {
    let members = |v: Value| {
        let m = obj(v);
        let parsed = JwkMembers::from_map(&m);
        (parsed.is_for_signing(), parsed.kid().map(str::to_owned))
    };
    assert_eq!(members(json!({"kid": "a"})), (true, Some("a".into())));
    assert_eq!(members(json!({"use": "sig"})), (true, None));
    assert_eq!(members(json!({"use": "enc", "kid": 1})), (false, None));
    assert_eq!(members(json!({"use": null})), (false, None));
}

#[test]
fn thumbprint_b64_round_trips_and_needs_32_bytes() {
    let t = Thumbprint::from_b64("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I").unwrap();
    assert_eq!(t.to_string(), "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
    assert_eq!(Thumbprint::from_bytes(*t.as_bytes()), t);
    assert!(Thumbprint::from_b64("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4").is_none());
    assert!(Thumbprint::from_b64("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I=").is_none());
    assert!(Thumbprint::from_b64("0ZcOCORZNYy+DWpqq30jZyJGHTN0d2HglBV3uiguA4I").is_none());
    assert!(Thumbprint::from_b64("").is_none());
}
