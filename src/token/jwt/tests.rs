//! Unit tests of `token::jwt`.

use super::*;

/// A validator counting into a registry of its own.
fn validator(policy: JwtPolicy, keys: JwkSet, cache_capacity: u64) -> JwtValidator {
    let metrics = crate::metrics::Metrics::new().unwrap();
    JwtValidator::new(policy, keys, cache_capacity, TokenMetrics::of(&metrics))
}
use crate::jose::sign::PrivateJwk;
use crate::token::TokenCheck;
use base64::Engine as _;
use serde_json::json;

const NOW: u64 = 1_700_000_000;
const ISS: &str = "https://as.example.com";
const AUD: &str = "https://api.example.com";

fn policy() -> JwtPolicy {
    JwtPolicy {
        issuer: ISS.into(),
        audience: AUD.into(),
        algorithms: Algorithm::ALL.into_iter().collect(),
        leeway: 30,
        require_typ: true,
        claims: Vec::new(),
    }
}

fn jwks(keys: &[(&PrivateJwk, &str)]) -> JwkSet {
    let keys: Vec<Value> = keys
        .iter()
        .map(|(k, kid)| {
            let mut jwk = k.public_jwk();
            jwk.insert("kid".into(), (*kid).into());
            Value::Object(jwk)
        })
        .collect();
    JwkSet::from_json(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
}

fn claims() -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": "alice", "client_id": "app", "scope": "read write",
        "exp": NOW + 300, "iat": NOW, "jti": "t-1",
        "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
    })
}

fn sign(key: &PrivateJwk, kid: Option<&str>, claims: &Value) -> String {
    let mut h = Map::new();
    h.insert("typ".into(), "at+jwt".into());
    if let Some(kid) = kid {
        h.insert("kid".into(), kid.into());
    }
    key.sign_jws(h, claims).unwrap()
}

struct Fixture {
    key: PrivateJwk,
    validator: JwtValidator,
}

fn fixture() -> Fixture {
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let validator = validator(policy(), jwks(&[(&key, "k1")]), 100);
    Fixture { key, validator }
}

impl Fixture {
    fn token(&self, edit: impl FnOnce(&mut Value)) -> String {
        let mut c = claims();
        edit(&mut c);
        sign(&self.key, Some("k1"), &c)
    }

    fn check(&self, token: &str) -> Result<Arc<TokenInfo>, TokenError> {
        self.validator.validate(token, UnixTime(NOW))
    }
}

#[test]
fn valid_token_yields_its_info() {
    let f = fixture();
    let info = f.check(&f.token(|_| {})).unwrap();
    assert_eq!(info.sub.as_deref(), Some("alice"));
    assert_eq!(info.client_id.as_deref(), Some("app"));
    assert_eq!(info.scope.as_deref(), Some("read write"));
    assert_eq!(
        info.jkt.unwrap().to_string(),
        "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
    );
    assert_eq!(info.exp, Some(UnixTime(NOW + 300)));
}

#[test]
fn every_algorithm_verifies() {
    for alg in Algorithm::ALL {
        let key = PrivateJwk::generate(alg).unwrap();
        let v = validator(policy(), jwks(&[(&key, "k")]), 10);
        assert!(
            v.validate(&sign(&key, Some("k"), &claims()), UnixTime(NOW))
                .is_ok(),
            "{alg}"
        );
    }
}

#[test]
fn scp_array_is_joined_when_scope_is_absent() {
    let f = fixture();
    let info = f
        .check(&f.token(|c| {
            c.as_object_mut().unwrap().remove("scope");
            c["scp"] = json!(["a", "b"]);
        }))
        .unwrap();
    assert_eq!(info.scope.as_deref(), Some("a b"));
}

#[test]
fn malformed_tokens_are_refused() {
    let f = fixture();
    for token in ["", "a.b", "a.b.c", &"x".repeat(MAX_TOKEN_BYTES + 1)] {
        assert_eq!(f.check(token).unwrap_err().check(), TokenCheck::Malformed);
    }
    let not_object = f.key.sign_jws(
        {
            let mut h = Map::new();
            h.insert("typ".into(), "at+jwt".into());
            h.insert("kid".into(), "k1".into());
            h
        },
        &json!("claims"),
    );
    assert_eq!(
        f.check(&not_object.unwrap()).unwrap_err().check(),
        TokenCheck::Malformed
    );
}

#[test]
fn typ_must_be_at_jwt_when_required() {
    let f = fixture();
    let mut c = claims();
    c["jti"] = "typ".into();
    let sign_typ = |typ: Option<&str>| {
        let mut h = Map::new();
        h.insert("kid".into(), "k1".into());
        if let Some(t) = typ {
            h.insert("typ".into(), t.into());
        }
        f.key.sign_jws(h, &c).unwrap()
    };
    assert!(f.check(&sign_typ(Some("application/AT+JWT"))).is_ok());
    assert_eq!(
        f.check(&sign_typ(Some("JWT"))).unwrap_err(),
        TokenError::Typ {
            got: Some("JWT".into())
        }
    );
    assert_eq!(
        f.check(&sign_typ(None)).unwrap_err(),
        TokenError::Typ { got: None }
    );
    let lax = validator(
        JwtPolicy {
            require_typ: false,
            ..policy()
        },
        jwks(&[(&f.key, "k1")]),
        10,
    );
    assert!(lax.validate(&sign_typ(Some("JWT")), UnixTime(NOW)).is_ok());
}

#[test]
fn alg_must_be_allowed() {
    let f = fixture();
    let token = f.token(|_| {});
    let strict = validator(
        JwtPolicy {
            algorithms: [Algorithm::RS256].into_iter().collect(),
            ..policy()
        },
        jwks(&[(&f.key, "k1")]),
        10,
    );
    assert_eq!(
        strict.validate(&token, UnixTime(NOW)).unwrap_err(),
        TokenError::AlgNotAllowed {
            got: Some("ES256".into())
        }
    );
    // `none`: refused on alg, never reaching a key.
    let none = format!(
        "{}.{}.AAAA",
        crate::jose::B64.encode(r#"{"alg":"none","typ":"at+jwt"}"#),
        crate::jose::B64.encode(claims().to_string())
    );
    assert_eq!(
        f.check(&none).unwrap_err(),
        TokenError::AlgNotAllowed {
            got: Some("none".into())
        }
    );
}

#[test]
fn key_is_chosen_by_kid() {
    let a = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let b = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let v = validator(policy(), jwks(&[(&a, "a"), (&b, "b")]), 10);
    let at = UnixTime(NOW);
    assert!(v.validate(&sign(&b, Some("b"), &claims()), at).is_ok());
    assert_eq!(
        v.validate(&sign(&b, Some("c"), &claims()), at).unwrap_err(),
        TokenError::UnknownKid {
            kid: Some("c".into())
        }
    );
    // Two keys fit ES256: without a kid, none is guessed.
    assert_eq!(
        v.validate(&sign(&b, None, &claims()), at).unwrap_err(),
        TokenError::UnknownKid { kid: None }
    );
    // Signed by b, presented as a's.
    assert_eq!(
        v.validate(&sign(&b, Some("a"), &claims()), at).unwrap_err(),
        TokenError::Signature
    );
}

#[test]
fn without_kid_the_single_fitting_key_is_used() {
    let es = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let ed = PrivateJwk::generate(Algorithm::EdDSA).unwrap();
    let v = validator(policy(), jwks(&[(&es, "es"), (&ed, "ed")]), 10);
    assert!(v
        .validate(&sign(&ed, None, &claims()), UnixTime(NOW))
        .is_ok());
}

#[test]
fn key_must_fit_alg_and_its_own_alg() {
    let es = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let ed = PrivateJwk::generate(Algorithm::EdDSA).unwrap();
    let v = validator(policy(), jwks(&[(&es, "es")]), 10);
    // EdDSA token naming the EC key.
    assert_eq!(
        v.validate(&sign(&ed, Some("es"), &claims()), UnixTime(NOW))
            .unwrap_err(),
        TokenError::KeyMismatch {
            alg: Algorithm::EdDSA
        }
    );
    // An RSA key marked RS256 is not used for PS256.
    let ps = PrivateJwk::generate(Algorithm::PS256).unwrap();
    let mut jwk = ps.public_jwk();
    jwk.insert("kid".into(), "r".into());
    jwk.insert("alg".into(), "RS256".into());
    let set = JwkSet::from_json(json!({ "keys": [jwk] }).to_string().as_bytes()).unwrap();
    let v = validator(policy(), set, 10);
    assert_eq!(
        v.validate(&sign(&ps, Some("r"), &claims()), UnixTime(NOW))
            .unwrap_err(),
        TokenError::KeyMismatch {
            alg: Algorithm::PS256
        }
    );
}

#[test]
fn issuer_must_match() {
    let f = fixture();
    assert_eq!(
        f.check(&f.token(|c| c["iss"] = "https://evil.example".into()))
            .unwrap_err(),
        TokenError::Issuer {
            expected: ISS.into(),
            got: Some("https://evil.example".into())
        }
    );
    assert_eq!(
        f.check(&f.token(|c| {
            c.as_object_mut().unwrap().remove("iss");
        }))
        .unwrap_err(),
        TokenError::Issuer {
            expected: ISS.into(),
            got: None
        }
    );
}

#[test]
fn audience_string_or_array_must_contain_ours() {
    let f = fixture();
    assert!(f.check(&f.token(|c| c["aud"] = json!(["x", AUD]))).is_ok());
    let refused = TokenError::Audience {
        expected: AUD.into(),
    };
    assert_eq!(
        f.check(&f.token(|c| c["aud"] = json!(["x"]))).unwrap_err(),
        refused
    );
    assert_eq!(
        f.check(&f.token(|c| c["aud"] = json!("other")))
            .unwrap_err(),
        refused
    );
    assert_eq!(
        f.check(&f.token(|c| {
            c.as_object_mut().unwrap().remove("aud");
        }))
        .unwrap_err(),
        refused
    );
}

#[test]
fn exp_is_required_and_checked_with_leeway() {
    let f = fixture();
    assert!(f.check(&f.token(|c| c["exp"] = json!(NOW - 30))).is_ok());
    assert_eq!(
        f.check(&f.token(|c| c["exp"] = json!(NOW - 31)))
            .unwrap_err(),
        TokenError::Expired {
            exp: NOW - 31,
            now: NOW
        }
    );
    assert_eq!(
        f.check(&f.token(|c| {
            c.as_object_mut().unwrap().remove("exp");
        }))
        .unwrap_err(),
        TokenError::ExpMissing
    );
    assert_eq!(
        f.check(&f.token(|c| c["exp"] = json!("soon")))
            .unwrap_err()
            .check(),
        TokenCheck::Malformed
    );
}

#[test]
fn nbf_is_checked_with_leeway() {
    let f = fixture();
    assert!(f.check(&f.token(|c| c["nbf"] = json!(NOW + 30))).is_ok());
    assert_eq!(
        f.check(&f.token(|c| c["nbf"] = json!(NOW + 31)))
            .unwrap_err(),
        TokenError::NotYetValid {
            nbf: NOW + 31,
            now: NOW
        }
    );
}

#[test]
fn iat_must_not_be_in_the_future() {
    let f = fixture();
    assert!(f.check(&f.token(|c| c["iat"] = json!(NOW + 30))).is_ok());
    assert_eq!(
        f.check(&f.token(|c| c["iat"] = json!(NOW + 31)))
            .unwrap_err(),
        TokenError::IssuedInFuture {
            iat: NOW + 31,
            now: NOW
        }
    );
}

#[test]
fn cnf_must_be_an_object_with_a_thumbprint() {
    let f = fixture();
    let unbound = f
        .check(&f.token(|c| {
            c.as_object_mut().unwrap().remove("cnf");
        }))
        .unwrap();
    assert_eq!(unbound.jkt, None);
    // Another confirmation method (mTLS) is not a DPoP binding, and not an error here.
    assert_eq!(
        f.check(&f.token(|c| c["cnf"] = json!({"x5t#S256": "abc"})))
            .unwrap()
            .jkt,
        None
    );
    for bad in [
        json!("jkt"),
        json!({"jkt": "short"}),
        json!({"jkt": 5}),
        json!([1]),
    ] {
        assert_eq!(
            f.check(&f.token(|c| c["cnf"] = bad.clone())).unwrap_err(),
            TokenError::CnfMalformed,
            "{bad}"
        );
    }
}

/// A compact JWS with `header` and `payload` as given (raw JSON text), signed by `key`.
fn sign_raw(key: &PrivateJwk, header: &str, payload: &str) -> String {
    key.sign_jws_text(header.as_bytes(), payload.as_bytes())
        .unwrap()
}

fn claims_text(extra: &str) -> String {
    let c = claims().to_string();
    format!("{}{extra}}}", &c[..c.len() - 1])
}

#[test]
fn duplicate_claims_are_refused_not_last_wins() {
    let f = fixture();
    let header = r#"{"typ":"at+jwt","alg":"ES256","kid":"k1"}"#;
    // The same claims once: accepted (the pair).
    assert!(f.check(&sign_raw(&f.key, header, &claims_text(""))).is_ok());
    for extra in [
        r#","sub":"admin""#,
        r#","cnf":{"jkt":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
        r#","iss":"https://as.example.com""#,
        r#","aud":["x"]"#,
        r#","exp":1"#,
        r#","scope":"admin""#,
    ] {
        let token = sign_raw(&f.key, header, &claims_text(extra));
        assert_eq!(
            f.check(&token).unwrap_err(),
            TokenError::Malformed("claims have a member twice".into()),
            "{extra}"
        );
    }
    // Inside cnf too.
    let c = claims_text("").replace(
        r#""jkt":"#,
        r#""jkt":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","jkt":"#,
    );
    assert_eq!(
        f.check(&sign_raw(&f.key, header, &c)).unwrap_err(),
        TokenError::Malformed("claims have a member twice".into())
    );
    // An unknown claim may repeat (no check reads it).
    let token = sign_raw(&f.key, header, &claims_text(r#","x":1,"x":2"#));
    assert!(f.check(&token).is_ok());
}

#[test]
fn duplicate_header_members_are_refused() {
    let f = fixture();
    let c = claims().to_string();
    for header in [
        r#"{"typ":"at+jwt","alg":"ES256","kid":"k1","alg":"ES256"}"#,
        r#"{"typ":"at+jwt","alg":"ES256","kid":"k1","kid":"k2"}"#,
        r#"{"typ":"at+jwt","typ":"JWT","alg":"ES256","kid":"k1"}"#,
        r#"{"typ":"at+jwt","alg":"ES256","kid":"k1","crit":[],"crit":[]}"#,
    ] {
        assert_eq!(
            f.check(&sign_raw(&f.key, header, &c)).unwrap_err(),
            TokenError::Malformed("header has a member twice".into()),
            "{header}"
        );
    }
    let not_object = sign_raw(&f.key, r#"["ES256"]"#, &c);
    assert_eq!(
        f.check(&not_object).unwrap_err(),
        TokenError::Malformed("header is not a JSON object".into())
    );
}

#[test]
fn identity_claims_are_strings_and_sub_is_required() {
    let f = fixture();
    for (claim, value) in [
        ("sub", json!(5)),
        ("sub", json!(null)),
        ("client_id", json!(null)),
        ("client_id", json!(["app"])),
        ("scope", json!(["a"])),
    ] {
        assert_eq!(
            f.check(&f.token(|c| c[claim] = value.clone())).unwrap_err(),
            TokenError::Malformed(format!("{claim} is not a string")),
            "{claim}: {value}"
        );
    }
    assert_eq!(
        f.check(&f.token(|c| {
            c.as_object_mut().unwrap().remove("sub");
        }))
        .unwrap_err(),
        TokenError::Malformed("sub is missing (RFC 9068 §2.2)".into())
    );
    // `client_id` and `scope` may be absent; `scp` stands in for `scope`.
    let info = f
        .check(&f.token(|c| {
            let c = c.as_object_mut().unwrap();
            c.remove("client_id");
            c.remove("scope");
            c.insert("scp".into(), json!(["x", 1, "y"]));
        }))
        .unwrap();
    assert_eq!(info.client_id, None);
    assert_eq!(info.scope.as_deref(), Some("x y"));
}

#[test]
fn claims_of_the_wrong_type_keep_their_meaning() {
    let f = fixture();
    assert_eq!(
        f.check(&f.token(|c| c["iss"] = json!(1))).unwrap_err(),
        TokenError::Issuer {
            expected: ISS.into(),
            got: None
        }
    );
    assert_eq!(
        f.check(&f.token(|c| c["aud"] = json!([1, null])))
            .unwrap_err(),
        TokenError::Audience {
            expected: AUD.into()
        }
    );
    assert_eq!(
        f.check(&f.token(|c| c["nbf"] = json!(true))).unwrap_err(),
        TokenError::Malformed("nbf is not a number".into())
    );
}

#[test]
fn ed25519_tokens_verify_under_either_name_with_the_same_key() {
    let ed = PrivateJwk::generate(Algorithm::Ed25519).unwrap();
    let v = validator(policy(), jwks(&[(&ed, "ed")]), 10);
    let token = sign(&ed, Some("ed"), &claims());
    let header: Value =
        serde_json::from_slice(&CompactJws::parse(&token, 10_000).unwrap().header).unwrap();
    assert_eq!(header["alg"], "Ed25519");
    assert!(v.validate(&token, UnixTime(NOW)).is_ok());
    // The same key, signing as `EdDSA` (RFC 8037).
    let as_eddsa = ed
        .to_json()
        .replace(r#""alg":"Ed25519""#, r#""alg":"EdDSA""#);
    let eddsa = PrivateJwk::from_json(&as_eddsa).unwrap();
    assert_eq!(eddsa.thumbprint(), ed.thumbprint());
    let mut c = claims();
    c["jti"] = json!("t-eddsa");
    assert!(v
        .validate(&sign(&eddsa, Some("ed"), &c), UnixTime(NOW))
        .is_ok());
    // Only the names the policy lists.
    let eddsa_only = validator(
        JwtPolicy {
            algorithms: [Algorithm::EdDSA].into_iter().collect(),
            ..policy()
        },
        jwks(&[(&ed, "ed")]),
        10,
    );
    assert_eq!(
        eddsa_only.validate(&token, UnixTime(NOW)).unwrap_err(),
        TokenError::AlgNotAllowed {
            got: Some("Ed25519".into())
        }
    );
}

/// A JWKS entry of kty OKP with `x` as given.
fn okp_entry(x: &[u8; 32], kid: &str) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
               "x": crate::jose::B64.encode(x)})
}

/// The token an attacker forges for the identity key: `R = identity, S = 0`, which
/// ring's cofactorless check accepts over any message.
fn forged_token(kid: &str) -> String {
    use crate::jose::B64;
    let header = json!({"typ": "at+jwt", "alg": "EdDSA", "kid": kid}).to_string();
    let mut sig = [0u8; 64];
    sig[0] = 1;
    format!(
        "{}.{}.{}",
        B64.encode(header),
        B64.encode(claims().to_string()),
        B64.encode(sig)
    )
}

#[test]
fn small_order_signing_keys_are_skipped_with_a_log_line_and_the_others_load() {
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let good = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let mut good_jwk = good.public_jwk();
    good_jwk.insert("kid".into(), "good".into());
    let doc = json!({"keys": [okp_entry(&identity, "forged"), good_jwk]}).to_string();
    let (set, log) = logged(|| JwkSet::from_json(doc.as_bytes()).unwrap());
    assert_eq!(set.keys.len(), 1);
    assert_eq!(set.keys[0].kid(), Some("good"));
    assert!(log.contains("WARN"), "{log}");
    assert!(log.contains("kid=\"forged\""), "{log}");
    assert!(log.contains("Ed25519 key is of small order"), "{log}");
    let v = validator(policy(), set, 10);
    assert_eq!(
        v.validate(&forged_token("forged"), UnixTime(NOW))
            .unwrap_err(),
        TokenError::UnknownKid {
            kid: Some("forged".into())
        }
    );
    assert!(v
        .validate(&sign(&good, Some("good"), &claims()), UnixTime(NOW))
        .is_ok());
}

#[test]
fn the_forged_token_is_what_a_small_order_key_would_accept() {
    // The forgery itself verifies under the identity key when no key check stands in the
    // way: this is what the JWKS check closes.
    use crate::jose::jwk::JwkMembers;
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let token = forged_token("forged");
    let jws = CompactJws::parse(&token, MAX_TOKEN_BYTES).unwrap();
    assert!(
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, identity)
            .verify(jws.signing_input, &jws.signature)
            .is_ok()
    );
    let entry = okp_entry(&identity, "forged");
    let map = entry.as_object().unwrap();
    assert_eq!(
        PublicJwk::from_key_set_members(&JwkMembers::from_map(map)).unwrap_err(),
        JwkError::Ed25519SmallOrder
    );
}

#[test]
fn jwks_entries_with_a_member_twice_are_skipped() {
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let mut jwk = key.public_jwk();
    jwk.insert("kid".into(), "k".into());
    let one = Value::Object(jwk).to_string();
    let twice = one.replacen(r#""kid":"k""#, r#""kid":"k","x":"AAAA""#, 1);
    let doc = format!(r#"{{"keys":[{twice},{one}]}}"#);
    let (set, log) = logged(|| JwkSet::from_json(doc.as_bytes()).unwrap());
    assert_eq!(set.keys.len(), 1);
    assert!(log.contains("a member appears twice"), "{log}");
    assert!(JwkSet::from_json(br#"{"keys":[],"keys":[]}"#).is_err());
    assert!(JwkSet::from_json(br#"{"keys":null}"#).is_err());
}

#[test]
fn jwks_rsa_keys_with_leading_zero_octets_still_load() {
    use crate::jose::B64;
    let key = PrivateJwk::generate(Algorithm::RS256).unwrap();
    let mut jwk = key.public_jwk();
    let n = B64.decode(jwk["n"].as_str().unwrap()).unwrap();
    let mut padded = vec![0u8];
    padded.extend(n);
    jwk.insert("n".into(), B64.encode(padded).into());
    jwk.insert("kid".into(), "java".into());
    let set = JwkSet::from_json(json!({ "keys": [jwk] }).to_string().as_bytes()).unwrap();
    let v = validator(policy(), set, 10);
    assert!(v
        .validate(&sign(&key, Some("java"), &claims()), UnixTime(NOW))
        .is_ok());
}

/// Runs `f` with a subscriber that writes to a buffer; returns `f`'s value and the text.
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    use std::sync::Mutex;
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    (out, text)
}

#[test]
fn jwks_skips_unusable_entries() {
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let mut enc = key.public_jwk();
    enc.insert("use".into(), "enc".into());
    let mut sig = key.public_jwk();
    sig.insert("use".into(), "sig".into());
    sig.insert("kid".into(), "s".into());
    let doc = json!({"keys": [
        enc, sig, {"kty": "oct", "k": "c2VjcmV0"}, {"kty": "EC"}, "not an object",
        key.public_jwk(),
    ]});
    let set = JwkSet::from_json(doc.to_string().as_bytes()).unwrap();
    assert_eq!(set.keys.len(), 2);
    assert_eq!(set.keys[0].kid(), Some("s"));
    assert!(JwkSet::from_json(b"[]").is_err());
    assert!(JwkSet::from_json(b"{\"keys\": {}}").is_err());
    assert!(JwkSet::from_json(b"{\"keys\": []}")
        .unwrap()
        .keys
        .is_empty());
}

#[test]
fn cache_hit_returns_the_same_arc() {
    let f = fixture();
    let token = f.token(|_| {});
    let first = f.check(&token).unwrap();
    let second = f.check(&token).unwrap();
    assert!(Arc::ptr_eq(&first, &second));
}

#[test]
fn cached_token_is_refused_once_now_passes_exp() {
    let f = fixture();
    let token = f.token(|_| {});
    assert!(f.validator.validate(&token, UnixTime(NOW)).is_ok());
    // Within leeway: still fine (from the cache).
    assert!(f.validator.validate(&token, UnixTime(NOW + 330)).is_ok());
    assert_eq!(
        f.validator
            .validate(&token, UnixTime(NOW + 331))
            .unwrap_err(),
        TokenError::Expired {
            exp: NOW + 300,
            now: NOW + 331
        }
    );
}

#[test]
fn cached_token_is_refused_before_nbf() {
    let f = fixture();
    let token = f.token(|c| c["nbf"] = json!(NOW));
    assert!(f.validator.validate(&token, UnixTime(NOW)).is_ok());
    // The fixed clock moves back (or another instance's clock lags): the hit is re-checked.
    assert_eq!(
        f.validator
            .validate(&token, UnixTime(NOW - 31))
            .unwrap_err(),
        TokenError::NotYetValid {
            nbf: NOW,
            now: NOW - 31
        }
    );
}

#[test]
fn set_keys_drops_cached_tokens() {
    let f = fixture();
    let token = f.token(|_| {});
    let first = f.check(&token).unwrap();
    let other = PrivateJwk::generate(Algorithm::ES256).unwrap();
    f.validator.set_keys(jwks(&[(&other, "k1")]));
    assert_eq!(f.check(&token).unwrap_err(), TokenError::Signature);
    // Back to the original key: verified again, a new Arc.
    f.validator.set_keys(jwks(&[(&f.key, "k1")]));
    assert!(!Arc::ptr_eq(&first, &f.check(&token).unwrap()));
}
