//! Unit tests of `nonce`.

use super::*;

const A: &[u8] = b"secret-A-0123456789abcdef0123456789";
const B: &[u8] = b"secret-B-0123456789abcdef0123456789";
const C: &[u8] = b"secret-C-0123456789abcdef0123456789";
const T0: UnixTime = UnixTime(1_700_000_000);
const LIFE: u64 = 300;

fn keys(secrets: &[&[u8]]) -> NonceKeys {
    NonceKeys::new(secrets, LIFE).unwrap()
}

fn at(secs_after_t0: u64) -> UnixTime {
    UnixTime(T0.0 + secs_after_t0)
}

#[test]
fn issued_nonce_checks_fresh() {
    let k = keys(&[A]);
    let n = k.issue(T0);
    assert_eq!(k.check(Some(&n), T0), Ok(NonceStatus::Fresh));
    assert_eq!(k.check(Some(&n), at(LIFE / 2)), Ok(NonceStatus::Fresh));
}

#[test]
fn nonce_is_short_url_safe_and_valid_nqchar() {
    let n = keys(&[A]).issue(T0);
    assert_eq!(n.len(), 55);
    assert!(n
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert!(nonce_chars_ok(&n));
}

#[test]
fn nonce_past_half_life_is_near_expiry() {
    let k = keys(&[A]);
    let n = k.issue(T0);
    assert_eq!(
        k.check(Some(&n), at(LIFE / 2 + 1)),
        Ok(NonceStatus::NearExpiry)
    );
    assert_eq!(k.check(Some(&n), at(LIFE)), Ok(NonceStatus::NearExpiry));
}

#[test]
fn nonce_past_lifetime_is_expired() {
    let k = keys(&[A]);
    let n = k.issue(T0);
    assert_eq!(
        k.check(Some(&n), at(LIFE + 1)),
        Err(NonceError::Expired {
            issued: T0.0,
            now: T0.0 + LIFE + 1,
            lifetime: LIFE
        })
    );
}

#[test]
fn nonce_from_within_skew_is_accepted_beyond_is_refused() {
    let k = keys(&[A]);
    let within = k.issue(at(MAX_FUTURE_SKEW_SECS));
    assert_eq!(k.check(Some(&within), T0), Ok(NonceStatus::Fresh));
    let beyond = k.issue(at(MAX_FUTURE_SKEW_SECS + 1));
    assert_eq!(
        k.check(Some(&beyond), T0),
        Err(NonceError::FromFuture {
            issued: T0.0 + MAX_FUTURE_SKEW_SECS + 1,
            now: T0.0
        })
    );
}

#[test]
fn altered_nonce_is_bad_mac() {
    let k = keys(&[A]);
    let n = k.issue(T0);
    let mut raw = URL_SAFE_NO_PAD.decode(&n).unwrap();
    // Every byte after the version: the time and each byte of the tag.
    for i in 1..raw.len() {
        raw[i] ^= 0x01;
        let forged = URL_SAFE_NO_PAD.encode(&raw);
        assert_eq!(
            k.check(Some(&forged), T0),
            Err(NonceError::BadMac),
            "byte {i}"
        );
        raw[i] ^= 0x01;
    }
    assert_eq!(
        k.check(Some(&URL_SAFE_NO_PAD.encode(&raw)), T0),
        Ok(NonceStatus::Fresh)
    );
}

#[test]
fn nonce_under_retired_secret_is_bad_mac() {
    let old = keys(&[C]).issue(T0);
    let k = keys(&[A, B]);
    assert_eq!(k.check(Some(&old), T0), Err(NonceError::BadMac));
}

#[test]
fn rotation_first_secret_issues_all_verify() {
    let under_b = keys(&[B]).issue(T0);
    let rotated = keys(&[A, B]);
    assert_eq!(rotated.check(Some(&under_b), T0), Ok(NonceStatus::Fresh));
    // The rotated set issues under A: keys [A] alone verify it, keys [B] alone do not.
    let new = rotated.issue(T0);
    assert_eq!(keys(&[A]).check(Some(&new), T0), Ok(NonceStatus::Fresh));
    assert_eq!(keys(&[B]).check(Some(&new), T0), Err(NonceError::BadMac));
}

#[test]
fn missing_nonce_is_refused() {
    assert_eq!(keys(&[A]).check(None, T0), Err(NonceError::Missing));
}

#[test]
fn malformed_nonces_are_refused() {
    let k = keys(&[A]);
    let good = k.issue(T0);
    let cases = [
        String::new(),
        "not base64!".to_owned(),
        format!("{good}="),                // padding
        good.replace(['-', '_'], "+"),     // standard alphabet
        good[..good.len() - 1].to_owned(), // truncated
        format!("{good}AA"),               // too long
        "A".repeat(1000),                  // far too long
    ];
    for case in &cases {
        let got = k.check(Some(case), T0);
        // A replaced character may still decode; then the MAC catches it.
        assert!(
            matches!(got, Err(NonceError::Malformed) | Err(NonceError::BadMac)),
            "{case:?}: {got:?}"
        );
    }
    assert_eq!(k.check(Some("not base64!"), T0), Err(NonceError::Malformed));
    assert_eq!(
        k.check(Some(&good[..good.len() - 1]), T0),
        Err(NonceError::Malformed)
    );
}

#[test]
fn unknown_version_is_malformed() {
    let k = keys(&[A]);
    let mut raw = URL_SAFE_NO_PAD.decode(k.issue(T0)).unwrap();
    raw[0] = 2;
    assert_eq!(
        k.check(Some(&URL_SAFE_NO_PAD.encode(&raw)), T0),
        Err(NonceError::Malformed)
    );
}

#[test]
fn short_secret_is_refused_32_bytes_accepted() {
    assert!(NonceKeys::new(&[&[7u8; MIN_SECRET_BYTES]], LIFE).is_ok());
    assert_eq!(
        NonceKeys::new(&[A, &[7u8; 31]], LIFE).unwrap_err(),
        NonceConfigError::SecretTooShort {
            index: 1,
            len: 31,
            min: 32
        }
    );
}

#[test]
fn no_secret_or_zero_lifetime_is_refused() {
    assert_eq!(
        NonceKeys::new(&[], LIFE).unwrap_err(),
        NonceConfigError::NoSecrets
    );
    assert_eq!(
        NonceKeys::new(&[A], 0).unwrap_err(),
        NonceConfigError::ZeroLifetime
    );
}

#[test]
fn debug_and_display_never_show_the_secret() {
    let k = keys(&[A]);
    let dbg = format!("{k:?}");
    assert!(!dbg.contains("secret-A"), "{dbg}");
    let err = NonceKeys::new(&[b"short-secret"], LIFE)
        .unwrap_err()
        .to_string();
    assert!(!err.contains("short-secret"), "{err}");
}

#[test]
fn nqchar_rules() {
    assert!(nonce_chars_ok("eyJ7S_zG.eyJH0-Z.HX4w-7v"));
    assert!(nonce_chars_ok("!#[]~"));
    assert!(!nonce_chars_ok(""));
    assert!(!nonce_chars_ok("a\"b"));
    assert!(!nonce_chars_ok("a\\b"));
    assert!(!nonce_chars_ok("a b"));
    assert!(!nonce_chars_ok("a\x7fb"));
    assert!(!nonce_chars_ok("é"));
}
