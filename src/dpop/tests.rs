//! Unit tests of `dpop`.

use super::verifier::ENTRY_OVERHEAD;
use super::*;
use crate::jose::sign::{self, PrivateJwk, ProofClaims};
use crate::jose::{JwsError, B64};
use base64::Engine as _;
use serde_json::{json, Map, Value};

const NOW: u64 = 1_700_000_000;
const URL: &str = "https://api.example.com/resource";

fn fixtures() -> Value {
    serde_json::from_str(include_str!("../../tests/fixtures/vectors.json")).unwrap()
}

fn policy() -> ProofPolicy {
    ProofPolicy {
        algorithms: Algorithm::ALL.into_iter().collect(),
        max_age: 60,
        clock_skew: 5,
        max_proof_bytes: 8192,
        require_ath: true,
    }
}

/// A fresh proof for `GET URL` with `ath` of "tok" and nonce "n-1", valid at `NOW`.
fn valid_proof(key: &PrivateJwk) -> String {
    key.mint_proof(&ProofClaims {
        htm: "GET".into(),
        htu: URL.into(),
        iat: NOW,
        jti: sign::random_jti(),
        access_token: Some("tok".into()),
        nonce: Some("n-1".into()),
    })
    .unwrap()
}

fn get(token: Option<&str>) -> ProofRequest<'_> {
    ProofRequest {
        method: "GET",
        htu: URL,
        access_token: token,
    }
}

fn claims() -> Map<String, Value> {
    match json!({"jti": "j-1", "htm": "GET", "htu": URL, "iat": NOW}) {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn header(key: &PrivateJwk) -> Map<String, Value> {
    let mut h = Map::new();
    h.insert("typ".into(), "dpop+jwt".into());
    h.insert("jwk".into(), Value::Object(key.public_jwk()));
    h
}

/// A proof signed by `key` with `claims` changed by `edit`.
fn proof_with(key: &PrivateJwk, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
    let mut c = claims();
    edit(&mut c);
    key.sign_jws(header(key), &Value::Object(c)).unwrap()
}

/// A proof whose header is `header` and whose signature is junk (for checks before it).
fn unsigned(header: &Value) -> String {
    format!(
        "{}.{}.AAAA",
        B64.encode(header.to_string()),
        B64.encode(Value::Object(claims()).to_string())
    )
}

fn es256() -> PrivateJwk {
    PrivateJwk::generate(Algorithm::ES256).unwrap()
}

fn check(proof: &str) -> Result<VerifiedProof, ProofError> {
    verify(proof, &get(None), &policy(), UnixTime(NOW))
}

// --- published vectors ---

#[test]
fn rfc9449_figure2_proof_verifies_at_its_time() {
    let v = &fixtures()["rfc9449_figure2_proof"];
    let req = ProofRequest {
        method: "POST",
        htu: "https://server.example.com/token",
        access_token: None,
    };
    let ok = verify(
        v["proof"].as_str().unwrap(),
        &req,
        &policy(),
        UnixTime(1562262616),
    )
    .unwrap();
    assert_eq!(ok.jkt().to_string(), v["jkt"].as_str().unwrap());
    assert_eq!(ok.jti(), "-BwC3ESc6acc2lTc");
    assert_eq!(ok.iat(), UnixTime(1562262616));
    assert_eq!(ok.alg(), Algorithm::ES256);
    assert_eq!(ok.nonce(), None);
}

#[test]
fn rfc9449_figure2_proof_fails_each_one_field_change() {
    let v = &fixtures()["rfc9449_figure2_proof"];
    let proof = v["proof"].as_str().unwrap();
    let at = 1562262616;
    let req = ProofRequest {
        method: "POST",
        htu: "https://server.example.com/token",
        access_token: None,
    };
    let run = |req: &ProofRequest<'_>, now: u64| verify(proof, req, &policy(), UnixTime(now));
    assert!(matches!(
        run(
            &ProofRequest {
                method: "GET",
                ..req
            },
            at
        ),
        Err(ProofError::HtmMismatch { .. })
    ));
    assert!(matches!(
        run(
            &ProofRequest {
                htu: "https://server.example.com/other",
                ..req
            },
            at
        ),
        Err(ProofError::HtuMismatch { .. })
    ));
    assert_eq!(
        run(&req, at + 61).unwrap_err(),
        ProofError::IatTooOld {
            iat: at,
            now: at + 61,
            max_age: 60
        }
    );
    assert!(run(&req, at + 60).is_ok());
    assert_eq!(
        run(&req, at - 6).unwrap_err(),
        ProofError::IatInFuture {
            iat: at,
            now: at - 6,
            skew: 5
        }
    );
    assert!(run(&req, at - 5).is_ok());

    // A flipped signature byte.
    let (input, sig) = proof.rsplit_once('.').unwrap();
    let mut sig = B64.decode(sig).unwrap();
    sig[10] ^= 1;
    let flipped = format!("{input}.{}", B64.encode(&sig));
    assert_eq!(run_proof(&flipped, &req, at), Err(ProofError::Signature));

    // typ changed: refused on typ, before the (now broken) signature.
    let (h, rest) = proof.split_once('.').unwrap();
    let mut header: Value = serde_json::from_slice(&B64.decode(h).unwrap()).unwrap();
    header["typ"] = json!("jwt");
    let retyped = format!("{}.{rest}", B64.encode(header.to_string()));
    assert_eq!(
        run_proof(&retyped, &req, at),
        Err(ProofError::Typ {
            got: Some("jwt".into())
        })
    );
}

fn run_proof(proof: &str, req: &ProofRequest<'_>, now: u64) -> Result<(), ProofError> {
    verify(proof, req, &policy(), UnixTime(now)).map(|_| ())
}

#[test]
fn rfc9449_protected_resource_proof_verifies_with_its_token() {
    let v = &fixtures()["rfc9449_figure_protected_resource_request"];
    let token = v["request"]["authorization"]
        .as_str()
        .unwrap()
        .strip_prefix("DPoP ")
        .unwrap();
    assert_eq!(
        token,
        fixtures()["rfc9449_ath"]["access_token"].as_str().unwrap()
    );
    let req = ProofRequest {
        method: "GET",
        htu: "https://resource.example.org/protectedresource",
        access_token: Some(token),
    };
    let proof = v["proof"].as_str().unwrap();
    let ok = verify(proof, &req, &policy(), UnixTime(1562262618)).unwrap();
    assert_eq!(ok.jkt().to_string(), v["jkt"].as_str().unwrap());

    // The wrong token for its ath.
    let wrong = ProofRequest {
        access_token: Some("another-token"),
        ..req
    };
    assert!(matches!(
        verify(proof, &wrong, &policy(), UnixTime(1562262618)),
        Err(ProofError::AthMismatch { .. })
    ));
}

#[test]
fn mutated_claims_of_the_rfc_proof_fail_when_re_signed() {
    // The RFC's private key is not published: re-sign its claims with a test key.
    let v = &fixtures()["rfc9449_figure_protected_resource_request"];
    let proof = v["proof"].as_str().unwrap();
    let payload: Value =
        serde_json::from_slice(&B64.decode(proof.split('.').nth(1).unwrap()).unwrap()).unwrap();
    let key = es256();
    let token = fixtures()["rfc9449_ath"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let req = ProofRequest {
        method: "GET",
        htu: "https://resource.example.org/protectedresource",
        access_token: Some(&token),
    };
    let at = UnixTime(1562262618);
    let sign = |claim: &str, value: Value| {
        let mut p = payload.clone();
        if !claim.is_empty() {
            p[claim] = value;
        }
        key.sign_jws(header(&key), &p).unwrap()
    };
    assert!(verify(&sign("", Value::Null), &req, &policy(), at).is_ok());
    let cases = [
        ("htm", json!("POST"), ProofCheck::Htm),
        (
            "htu",
            json!("https://resource.example.org/other"),
            ProofCheck::Htu,
        ),
        ("iat", json!(1562262618 - 61), ProofCheck::Iat),
        ("ath", json!(sign::ath("other")), ProofCheck::Ath),
        ("jti", json!(""), ProofCheck::Jti),
    ];
    for (claim, value, want) in cases {
        let err = verify(&sign(claim, value), &req, &policy(), at).unwrap_err();
        assert_eq!(err.check(), want, "{claim}");
    }
}

// --- one pair per check ---

#[test]
fn every_algorithm_round_trips() {
    for alg in Algorithm::ALL {
        let key = PrivateJwk::generate(alg).unwrap();
        let proof = valid_proof(&key);
        let ok = verify(&proof, &get(Some("tok")), &policy(), UnixTime(NOW)).unwrap();
        assert_eq!(ok.alg(), alg);
        assert_eq!(ok.jkt(), key.thumbprint());
        assert_eq!(ok.nonce(), Some("n-1"));
    }
}

#[test]
fn size_is_checked_first() {
    let proof = proof_with(&es256(), |_| {});
    let tight = ProofPolicy {
        max_proof_bytes: proof.len(),
        ..policy()
    };
    assert!(verify(&proof, &get(None), &tight, UnixTime(NOW)).is_ok());
    let tighter = ProofPolicy {
        max_proof_bytes: proof.len() - 1,
        ..policy()
    };
    let err = verify(&proof, &get(None), &tighter, UnixTime(NOW)).unwrap_err();
    assert_eq!(
        err,
        ProofError::TooLarge {
            len: proof.len(),
            max: proof.len() - 1
        }
    );
    assert_eq!(err.check(), ProofCheck::Size);
}

#[test]
fn syntax_errors_are_refused() {
    assert!(matches!(
        check("a.b"),
        Err(ProofError::Malformed(JwsError::NotThreeParts))
    ));
    assert!(matches!(check("a+b.c.d"), Err(ProofError::Malformed(_))));
    let not_object = format!("{}.e30.AAAA", B64.encode("[1,2]"));
    assert_eq!(check(&not_object).unwrap_err(), ProofError::HeaderNotJson);
    let not_json = format!("{}.e30.AAAA", B64.encode("{"));
    assert_eq!(check(&not_json).unwrap_err(), ProofError::HeaderNotJson);
    // Claims that are not an object, properly signed: only the claims are wrong.
    let key = es256();
    let array_claims = key.sign_jws(header(&key), &json!([1, 2])).unwrap();
    assert_eq!(check(&array_claims).unwrap_err(), ProofError::ClaimsNotJson);
    assert_eq!(
        check(&array_claims).unwrap_err().check(),
        ProofCheck::Syntax
    );
}

#[test]
fn typ_must_be_exactly_dpop_jwt() {
    let key = es256();
    let mut h = json!({"typ": "DPoP+jwt", "alg": "ES256", "jwk": key.public_jwk()});
    assert_eq!(
        check(&unsigned(&h)).unwrap_err(),
        ProofError::Typ {
            got: Some("DPoP+jwt".into())
        }
    );
    h.as_object_mut().unwrap().remove("typ");
    assert_eq!(
        check(&unsigned(&h)).unwrap_err(),
        ProofError::Typ { got: None }
    );
    h["typ"] = json!("dpop+jwt");
    // Now past typ, it fails only on the junk signature.
    assert_eq!(check(&unsigned(&h)).unwrap_err(), ProofError::Signature);
}

#[test]
fn alg_must_be_known_asymmetric_and_allowed() {
    let key = es256();
    for alg in ["none", "HS256", "ES512", "es256"] {
        let h = json!({"typ": "dpop+jwt", "alg": alg, "jwk": key.public_jwk()});
        assert_eq!(
            check(&unsigned(&h)).unwrap_err(),
            ProofError::AlgNotAllowed {
                got: Some(alg.into())
            }
        );
    }
    let h = json!({"typ": "dpop+jwt", "jwk": key.public_jwk()});
    assert_eq!(
        check(&unsigned(&h)).unwrap_err(),
        ProofError::AlgNotAllowed { got: None }
    );
    // Known but not in dpop.algorithms.
    let proof = proof_with(&key, |_| {});
    let only_eddsa = ProofPolicy {
        algorithms: [Algorithm::EdDSA].into_iter().collect(),
        ..policy()
    };
    assert_eq!(
        verify(&proof, &get(None), &only_eddsa, UnixTime(NOW))
            .unwrap_err()
            .check(),
        ProofCheck::Alg
    );
    assert!(check(&proof).is_ok());
}

#[test]
fn jwk_must_be_present_public_and_fit_alg() {
    let key = es256();
    let h = json!({"typ": "dpop+jwt", "alg": "ES256"});
    assert_eq!(check(&unsigned(&h)).unwrap_err(), ProofError::JwkMissing);
    let h = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": "not an object"});
    assert_eq!(check(&unsigned(&h)).unwrap_err(), ProofError::JwkMissing);

    let private: Value = serde_json::from_str(&key.to_json()).unwrap();
    let h = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private});
    assert!(matches!(
        check(&unsigned(&h)).unwrap_err(),
        ProofError::Jwk(crate::jose::JwkError::PrivateMember(_))
    ));

    let h = json!({"typ": "dpop+jwt", "alg": "ES384", "jwk": key.public_jwk()});
    assert_eq!(
        check(&unsigned(&h)).unwrap_err(),
        ProofError::JwkDoesNotFit {
            alg: Algorithm::ES384
        }
    );
    let mut jwk = key.public_jwk();
    jwk.insert("alg".into(), "ES384".into());
    let h = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
    assert_eq!(check(&unsigned(&h)).unwrap_err().check(), ProofCheck::Jwk);
}

#[test]
fn ed25519_is_accepted_under_its_rfc_9864_name_and_eddsa_as_before() {
    let key = PrivateJwk::generate(Algorithm::Ed25519).unwrap();
    let proof = valid_proof(&key);
    let (h, _) = proof.split_once('.').unwrap();
    let header: Value = serde_json::from_slice(&B64.decode(h).unwrap()).unwrap();
    assert_eq!(header["alg"], "Ed25519");
    let ok = verify(&proof, &get(Some("tok")), &policy(), UnixTime(NOW)).unwrap();
    assert_eq!(ok.alg(), Algorithm::Ed25519);
    // The same key signing as EdDSA: the same thumbprint, so the same token binding.
    let eddsa = PrivateJwk::from_json(
        &key.to_json()
            .replace(r#""alg":"Ed25519""#, r#""alg":"EdDSA""#),
    )
    .unwrap();
    let ok_eddsa = verify(
        &valid_proof(&eddsa),
        &get(Some("tok")),
        &policy(),
        UnixTime(NOW),
    );
    assert_eq!(ok_eddsa.unwrap().jkt(), ok.jkt());
    // Distinct names in dpop.algorithms: each allows only itself.
    for (allowed, refused) in [
        (Algorithm::EdDSA, valid_proof(&key)),
        (Algorithm::Ed25519, valid_proof(&eddsa)),
    ] {
        let only = ProofPolicy {
            algorithms: [allowed].into_iter().collect(),
            ..policy()
        };
        assert_eq!(
            verify(&refused, &get(Some("tok")), &only, UnixTime(NOW))
                .unwrap_err()
                .check(),
            ProofCheck::Alg,
            "{allowed}"
        );
    }
    // A jwk that names its own alg is used with that name only (RFC 7517 §4.4).
    let mut jwk = key.public_jwk();
    jwk.insert("alg".into(), "EdDSA".into());
    let h = json!({"typ": "dpop+jwt", "alg": "Ed25519", "jwk": jwk});
    assert_eq!(
        check(&unsigned(&h)).unwrap_err(),
        ProofError::JwkDoesNotFit {
            alg: Algorithm::Ed25519
        }
    );
}

#[test]
fn a_proof_forged_for_a_small_order_key_is_refused() {
    // x = the identity point, signature R = identity, S = 0: ring verifies it over any
    // message (see jose::jwk); the key check refuses it before the signature is looked at.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut signature = [0u8; 64];
    signature[0] = 1;
    for alg in ["EdDSA", "Ed25519"] {
        let h = json!({"typ": "dpop+jwt", "alg": alg,
                           "jwk": {"kty": "OKP", "crv": "Ed25519", "x": B64.encode(identity)}});
        let forged = format!(
            "{}.{}.{}",
            B64.encode(h.to_string()),
            B64.encode(Value::Object(claims()).to_string()),
            B64.encode(signature)
        );
        let err = check(&forged).unwrap_err();
        assert_eq!(
            err,
            ProofError::Jwk(crate::jose::JwkError::Ed25519SmallOrder)
        );
        assert_eq!(err.check(), ProofCheck::Jwk);
    }
}

#[test]
fn a_refusal_names_the_signer_only_once_the_signature_verified() {
    let key = es256();
    let verifier = ProofVerifier::new(policy());
    let verify = |p: &str| verifier.verify_signed(p, &get(None), UnixTime(NOW));
    // Refused on a claim after the signature: the signer is known.
    let wrong_htm = proof_with(&key, |c| {
        c.insert("htm".into(), json!("POST"));
    });
    let refused = verify(&wrong_htm).unwrap_err();
    assert!(matches!(refused.error, ProofError::HtmMismatch { .. }));
    assert_eq!(refused.signed_by.map(|s| s.jkt()), Some(key.thumbprint()));
    let stale = proof_with(&key, |c| {
        c.insert("iat".into(), json!(NOW - 3600));
    });
    assert_eq!(
        verify(&stale).unwrap_err().signed_by.map(|s| s.jkt()),
        Some(key.thumbprint())
    );
    // A bad signature, or a header refused before it: whatever key the proof names, none.
    let genuine = proof_with(&key, |_| {});
    let foreign = proof_with(&es256(), |_| {});
    let (input, _) = genuine.rsplit_once('.').unwrap();
    let forged = format!("{input}.{}", foreign.rsplit_once('.').unwrap().1);
    let refused = verify(&forged).unwrap_err();
    assert_eq!(refused.error, ProofError::Signature);
    assert_eq!(refused.signed_by, None);
    let mut bad_typ = header(&key);
    bad_typ.insert("typ".into(), json!("jwt"));
    let retyped = key.sign_jws(bad_typ, &Value::Object(claims())).unwrap();
    assert_eq!(verify(&retyped).unwrap_err().signed_by, None);
    // Accepted: the same key, as a verified signer.
    let ok = verify(&proof_with(&key, |_| {})).unwrap();
    assert_eq!(ok.signed_by().jkt(), key.thumbprint());
}

#[test]
fn signature_must_verify_with_the_header_key() {
    let key = es256();
    let other = es256();
    // Signed by `other`, but carrying `key`'s jwk.
    let forged = other
        .sign_jws(header(&key), &Value::Object(claims()))
        .unwrap();
    assert_eq!(check(&forged).unwrap_err(), ProofError::Signature);
    assert!(check(&proof_with(&key, |_| {})).is_ok());
}

#[test]
fn jti_must_be_a_bounded_non_empty_string() {
    let key = es256();
    assert_eq!(
        check(&proof_with(&key, |c| {
            c.remove("jti");
        }))
        .unwrap_err(),
        ProofError::JtiMissing
    );
    assert_eq!(
        check(&proof_with(&key, |c| {
            c.insert("jti".into(), "".into());
        }))
        .unwrap_err(),
        ProofError::JtiMissing
    );
    assert_eq!(
        check(&proof_with(&key, |c| {
            c.insert("jti".into(), 5.into());
        }))
        .unwrap_err(),
        ProofError::ClaimType { claim: "jti" }
    );
    assert_eq!(
        check(&proof_with(&key, |c| {
            c.insert("jti".into(), "x".repeat(257).into());
        }))
        .unwrap_err(),
        ProofError::JtiTooLong { len: 257, max: 256 }
    );
    assert!(check(&proof_with(&key, |c| {
        c.insert("jti".into(), "x".repeat(256).into());
    }))
    .is_ok());
}

#[test]
fn htm_must_equal_the_method_case_sensitively() {
    let key = es256();
    assert_eq!(
        check(&proof_with(&key, |c| {
            c.insert("htm".into(), "get".into());
        }))
        .unwrap_err(),
        ProofError::HtmMismatch {
            expected: "GET".into(),
            got: "get".into()
        }
    );
    assert_eq!(
        check(&proof_with(&key, |c| {
            c.remove("htm");
        }))
        .unwrap_err(),
        ProofError::HtmMissing
    );
}

#[test]
fn htu_is_compared_after_normalisation() {
    let key = es256();
    let equivalent = "HTTPS://API.example.com:443/%72esource?query=1#frag";
    assert!(check(&proof_with(&key, |c| {
        c.insert("htu".into(), equivalent.into());
    }))
    .is_ok());
    assert_eq!(
        check(&proof_with(&key, |c| {
            c.insert("htu".into(), "https://api.example.com/Resource".into());
        }))
        .unwrap_err(),
        ProofError::HtuMismatch {
            expected: URL.into(),
            got: "https://api.example.com/Resource".into()
        }
    );
    assert!(matches!(
        check(&proof_with(&key, |c| {
            c.insert("htu".into(), "/resource".into());
        }))
        .unwrap_err(),
        ProofError::HtuInvalid(crate::uri::UriError::NotAbsolute)
    ));
    assert_eq!(
        check(&proof_with(&key, |c| {
            c.remove("htu");
        }))
        .unwrap_err(),
        ProofError::HtuMissing
    );
    let proof = proof_with(&key, |_| {});
    let bad_request = ProofRequest {
        htu: "not a uri",
        ..get(None)
    };
    assert_eq!(
        verify(&proof, &bad_request, &policy(), UnixTime(NOW))
            .unwrap_err()
            .check(),
        ProofCheck::Htu
    );
}

#[test]
fn iat_window_and_type() {
    let key = es256();
    let at = |iat: Value| {
        proof_with(&key, |c| {
            c.insert("iat".into(), iat);
        })
    };
    assert!(check(&at(json!(NOW - 60))).is_ok());
    assert_eq!(
        check(&at(json!(NOW - 61))).unwrap_err(),
        ProofError::IatTooOld {
            iat: NOW - 61,
            now: NOW,
            max_age: 60
        }
    );
    assert!(check(&at(json!(NOW + 5))).is_ok());
    assert_eq!(
        check(&at(json!(NOW + 6))).unwrap_err(),
        ProofError::IatInFuture {
            iat: NOW + 6,
            now: NOW,
            skew: 5
        }
    );
    // Fractional iat is floored: NOW + 5.9 -> NOW + 5.
    assert_eq!(
        check(&at(json!(NOW as f64 + 5.9))).unwrap().iat(),
        UnixTime(NOW + 5)
    );
    assert!(matches!(
        check(&at(json!(-1))).unwrap_err(),
        ProofError::IatTooOld { iat: 0, .. }
    ));
    assert!(matches!(
        check(&at(json!(1e300))).unwrap_err(),
        ProofError::IatInFuture { .. }
    ));
    assert_eq!(
        check(&at(json!("1700000000"))).unwrap_err(),
        ProofError::ClaimType { claim: "iat" }
    );
    assert_eq!(
        check(&proof_with(&key, |c| {
            c.remove("iat");
        }))
        .unwrap_err(),
        ProofError::IatMissing
    );
}

#[test]
fn ath_is_checked_only_when_a_token_is_presented() {
    let key = es256();
    let with_ath = proof_with(&key, |c| {
        c.insert("ath".into(), sign::ath("tok").into());
    });
    let without = proof_with(&key, |_| {});
    let run = |p: &str, tok: Option<&str>, require: bool| {
        let pol = ProofPolicy {
            require_ath: require,
            ..policy()
        };
        verify(p, &get(tok), &pol, UnixTime(NOW)).map(|_| ())
    };
    assert_eq!(run(&with_ath, Some("tok"), true), Ok(()));
    assert_eq!(
        run(&without, Some("tok"), true),
        Err(ProofError::AthMissing)
    );
    assert_eq!(run(&without, Some("tok"), false), Ok(()));
    assert!(matches!(
        run(&with_ath, Some("other"), false),
        Err(ProofError::AthMismatch { .. })
    ));
    // No token presented: ath is not looked at.
    assert_eq!(run(&with_ath, None, true), Ok(()));
    assert_eq!(run(&without, None, true), Ok(()));
    let typed = proof_with(&key, |c| {
        c.insert("ath".into(), 1.into());
    });
    assert_eq!(
        run(&typed, Some("tok"), true),
        Err(ProofError::ClaimType { claim: "ath" })
    );
}

#[test]
fn nonce_is_captured_and_unknown_members_ignored() {
    let key = es256();
    let proof = proof_with(&key, |c| {
        c.insert("nonce".into(), "n-42".into());
        c.insert("extra".into(), json!({"anything": [1, 2]}));
    });
    assert_eq!(check(&proof).unwrap().nonce(), Some("n-42"));
    let mut h = header(&key);
    h.insert("kid".into(), "ignored".into());
    h.insert("x-custom".into(), json!(1));
    assert!(check(&key.sign_jws(h, &Value::Object(claims())).unwrap()).is_ok());
    let typed = proof_with(&key, |c| {
        c.insert("nonce".into(), 1.into());
    });
    assert_eq!(
        check(&typed).unwrap_err(),
        ProofError::ClaimType { claim: "nonce" }
    );
}

#[test]
fn replay_key_is_scoped_by_key_and_jti() {
    let a = es256();
    let b = es256();
    let key_of = |k: &PrivateJwk, jti: &str| {
        check(&proof_with(k, |c| {
            c.insert("jti".into(), jti.into());
        }))
        .unwrap()
        .replay_key()
    };
    assert_eq!(key_of(&a, "j"), key_of(&a, "j"));
    assert_ne!(key_of(&a, "j"), key_of(&a, "k"));
    assert_ne!(key_of(&a, "j"), key_of(&b, "j"));
}

// --- typed parsing: what serde_json::Map gave, plus refused duplicates ---

/// A proof over `header` and `claims` JSON texts exactly as given, signed by `key`.
fn signed_text(key: &PrivateJwk, header: &str, claims: &str) -> String {
    key.sign_jws_text(header.as_bytes(), claims.as_bytes())
        .unwrap()
}

fn header_text(key: &PrivateJwk) -> String {
    format!(
        r#"{{"typ":"dpop+jwt","alg":"{}","jwk":{}}}"#,
        key.alg(),
        Value::Object(key.public_jwk())
    )
}

const CLAIMS: &str = r#""htm":"GET","htu":"https://api.example.com/resource","iat":1700000000"#;

#[test]
fn a_repeated_header_member_is_refused() {
    let key = es256();
    let jwk = Value::Object(key.public_jwk()).to_string();
    let claims = format!(r#"{{"jti":"j",{CLAIMS}}}"#);
    assert!(check(&signed_text(&key, &header_text(&key), &claims)).is_ok());
    let x_twice = jwk.replacen('{', r#"{"x":"AAAA","#, 1);
    for header in [
        format!(r#"{{"typ":"dpop+jwt","typ":"dpop+jwt","alg":"ES256","jwk":{jwk}}}"#),
        format!(r#"{{"typ":"dpop+jwt","alg":"ES256","alg":"ES256","jwk":{jwk}}}"#),
        format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{jwk},"jwk":{jwk}}}"#),
        format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{x_twice}}}"#),
        format!(r#"{{"crit":["a"],"crit":["a"],"typ":"dpop+jwt","alg":"ES256","jwk":{jwk}}}"#),
        // The same name, once escaped.
        format!(r#"{{"typ":"dpop+jwt","alg":"ES256","\u0061lg":"ES256","jwk":{jwk}}}"#),
    ] {
        let err = check(&signed_text(&key, &header, &claims)).unwrap_err();
        assert_eq!(err, ProofError::HeaderDuplicateMember, "{header}");
        assert_eq!(err.check(), ProofCheck::Syntax);
    }
    // A repeated member the checks do not read is ignored, as in a serde_json::Map.
    let header = format!(r#"{{"kid":"a","kid":"b","typ":"dpop+jwt","alg":"ES256","jwk":{jwk}}}"#);
    assert!(check(&signed_text(&key, &header, &claims)).is_ok());
}

#[test]
fn a_repeated_claim_is_refused_after_the_signature() {
    let key = es256();
    let header = header_text(&key);
    for claims in [
        format!(r#"{{"jti":"j","jti":"k",{CLAIMS}}}"#),
        format!(r#"{{"jti":"j",{CLAIMS},"iat":1700000000}}"#),
        format!(r#"{{"jti":"j",{CLAIMS},"nonce":"a","nonce":"a"}}"#),
        format!(r#"{{"jti":"j","j\u0074i":"j",{CLAIMS}}}"#),
    ] {
        let proof = signed_text(&key, &header, &claims);
        let err = check(&proof).unwrap_err();
        assert_eq!(err, ProofError::ClaimsDuplicateMember, "{claims}");
        assert_eq!(err.check(), ProofCheck::Syntax);
        // Signed by another key: the signature is checked before any claim is read.
        let forged = signed_text(&es256(), &header, &claims);
        assert_eq!(check(&forged).unwrap_err(), ProofError::Signature);
    }
    let claims = format!(r#"{{"jti":"j",{CLAIMS},"x":1,"x":2}}"#);
    assert!(check(&signed_text(&key, &header, &claims)).is_ok());
}

#[test]
fn null_and_presence_are_read_as_serde_json_map_read_them() {
    let key = es256();
    let jwk = Value::Object(key.public_jwk());
    let with_header = |extra: &str| {
        let h = format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{jwk}{extra}}}"#);
        check(&signed_text(
            &key,
            &h,
            &format!(r#"{{"jti":"j",{CLAIMS}}}"#),
        ))
    };
    assert!(with_header("").is_ok());
    assert_eq!(
        with_header(r#","crit":null"#).unwrap_err(),
        ProofError::CritUnsupported
    );
    let h = format!(r#"{{"typ":null,"alg":"ES256","jwk":{jwk}}}"#);
    assert_eq!(
        check(&signed_text(&key, &h, "{}")).unwrap_err(),
        ProofError::Typ { got: None }
    );
    let h = r#"{"typ":"dpop+jwt","alg":"ES256","jwk":null}"#;
    assert_eq!(
        check(&signed_text(&key, h, "{}")).unwrap_err(),
        ProofError::JwkMissing
    );
    let h = r#"{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","d":null}}"#;
    assert_eq!(
        check(&signed_text(&key, h, "{}")).unwrap_err(),
        ProofError::Jwk(crate::jose::JwkError::PrivateMember("d"))
    );
    let header = header_text(&key);
    for claim in ["jti", "htm", "htu", "iat"] {
        let claims = format!(r#"{{"jti":"j",{CLAIMS}}}"#).replacen(
            &format!(r#""{claim}":"#),
            &format!(r#""was-{claim}":"#),
            1,
        );
        let claims = claims.replacen('{', &format!(r#"{{"{claim}":null,"#), 1);
        let claim_name: &'static str = match claim {
            "jti" => "jti",
            "htm" => "htm",
            "htu" => "htu",
            _ => "iat",
        };
        assert_eq!(
            check(&signed_text(&key, &header, &claims)).unwrap_err(),
            ProofError::ClaimType { claim: claim_name },
            "{claims}"
        );
    }
}

#[test]
fn json_that_serde_json_map_refuses_is_still_refused() {
    let key = es256();
    let header = header_text(&key);
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let bad_values = [deep.as_str(), r#""\ud800""#, "1e400"];
    for bad in bad_values {
        // In an unknown member: serde_json::Map refused the whole text, and so do we.
        let claims = format!(r#"{{"jti":"j",{CLAIMS},"x":{bad}}}"#);
        assert!(serde_json::from_str::<Map<String, Value>>(&claims).is_err());
        assert_eq!(
            check(&signed_text(&key, &header, &claims)).unwrap_err(),
            ProofError::ClaimsNotJson,
            "{bad}"
        );
        let h = header.replacen('{', &format!(r#"{{"x":{bad},"#), 1);
        assert_eq!(
            check(&signed_text(&key, &h, &claims)).unwrap_err(),
            ProofError::HeaderNotJson,
            "{bad}"
        );
    }
    let mut claims = format!(r#"{{"jti":"j",{CLAIMS},"x":"?"}}"#).into_bytes();
    let at = claims.iter().position(|b| *b == b'?').unwrap();
    claims[at] = 0xff;
    let proof = key.sign_jws_text(header.as_bytes(), &claims).unwrap();
    assert_eq!(check(&proof).unwrap_err(), ProofError::ClaimsNotJson);
    // Whitespace around the object is fine, a string or a number is not an object.
    let claims = format!(" \n{{\"jti\":\"j\",{CLAIMS}}}\t");
    assert!(check(&signed_text(&key, &header, &claims)).is_ok());
    for not_object in ["\"x\"", "1", "null", " "] {
        assert_eq!(
            check(&signed_text(&key, &header, not_object)).unwrap_err(),
            ProofError::ClaimsNotJson
        );
    }
}

// --- the header cache ---

fn verified(r: Result<VerifiedProof, ProofError>) -> Result<String, ProofError> {
    r.map(|p| {
        format!(
            "{} {} {} {} {:?} {:?}",
            p.jkt(),
            p.jti(),
            p.iat().as_secs(),
            p.alg(),
            p.nonce(),
            p.replay_key()
        )
    })
}

fn header_of(proof: &str) -> &str {
    proof.split('.').next().unwrap()
}

fn fixture_key(alg: Algorithm) -> PrivateJwk {
    match alg {
        Algorithm::RS256 => {
            PrivateJwk::from_json(include_str!("../../tests/fixtures/rs256-client.jwk")).unwrap()
        }
        Algorithm::PS256 => {
            PrivateJwk::from_json(include_str!("../../tests/fixtures/ps256-client.jwk")).unwrap()
        }
        other => PrivateJwk::generate(other).unwrap(),
    }
}

#[test]
fn cached_verify_gives_the_uncached_result_for_valid_proofs() {
    let verifier = ProofVerifier::new(policy());
    for alg in Algorithm::ALL {
        let key = fixture_key(alg);
        let proof = valid_proof(&key);
        let req = get(Some("tok"));
        let uncached = verified(verify(&proof, &req, &policy(), UnixTime(NOW)));
        assert!(uncached.is_ok(), "{alg}");
        assert!(!verifier.headers.contains_key(header_of(&proof)));
        // A miss, then hits.
        for _ in 0..3 {
            let cached = verified(verifier.verify(&proof, &req, UnixTime(NOW)));
            assert_eq!(cached, uncached, "{alg}");
            assert!(verifier.headers.contains_key(header_of(&proof)), "{alg}");
        }
    }
}

#[test]
fn cached_verify_gives_the_uncached_result_for_every_claim_refusal() {
    let key = es256();
    let set = |claim: &'static str, value: Value| {
        proof_with(&key, move |c| {
            c.insert(claim.into(), value);
        })
    };
    let drop = |claim: &'static str| {
        proof_with(&key, move |c| {
            c.remove(claim);
        })
    };
    let valid = proof_with(&key, |_| {});
    let (input, sig) = valid.rsplit_once('.').unwrap();
    let mut sig = B64.decode(sig).unwrap();
    sig[3] ^= 1;
    let flipped = format!("{input}.{}", B64.encode(&sig));
    let array_claims = key.sign_jws(header(&key), &json!([1, 2])).unwrap();
    // The header `proof_with` signs, so that every proof below carries the same one.
    let header = String::from_utf8(B64.decode(header_of(&valid)).unwrap()).unwrap();
    let twice = signed_text(
        &key,
        &header,
        &format!(r#"{{"jti":"j","jti":"j",{CLAIMS}}}"#),
    );
    let proofs = [
        valid.clone(),
        flipped,
        array_claims,
        twice,
        drop("jti"),
        set("jti", json!("")),
        set("jti", json!(5)),
        set("jti", json!("x".repeat(257))),
        drop("htm"),
        set("htm", json!("get")),
        set("htm", json!(null)),
        drop("htu"),
        set("htu", json!("https://api.example.com/Resource")),
        set("htu", json!("/resource")),
        set("htu", json!([URL])),
        drop("iat"),
        set("iat", json!(NOW - 61)),
        set("iat", json!(NOW + 6)),
        set("iat", json!(-1)),
        set("iat", json!(NOW as f64 + 5.9)),
        set("iat", json!("1700000000")),
        set("ath", json!(sign::ath("other"))),
        set("ath", json!(1)),
        set("nonce", json!(1)),
    ];
    let requests = [
        get(None),
        get(Some("tok")),
        ProofRequest {
            htu: "not a uri",
            ..get(None)
        },
        ProofRequest {
            method: "POST",
            ..get(None)
        },
    ];
    let warm = ProofVerifier::new(policy());
    assert!(warm.verify(&valid, &get(None), UnixTime(NOW)).is_ok());
    let mut refusals = 0;
    for proof in &proofs {
        for req in &requests {
            let uncached = verified(verify(proof, req, &policy(), UnixTime(NOW)));
            refusals += usize::from(uncached.is_err());
            // Every proof here carries the header `warm` has cached: these are hits.
            assert!(warm.headers.contains_key(header_of(proof)));
            let hit = verified(warm.verify(proof, req, UnixTime(NOW)));
            assert_eq!(hit, uncached, "{proof} {req:?}");
            // And a miss on a cold cache.
            let cold = ProofVerifier::new(policy());
            let miss = verified(cold.verify(proof, req, UnixTime(NOW)));
            assert_eq!(miss, uncached, "{proof} {req:?}");
        }
    }
    assert!(refusals > 60, "{refusals}");
}

#[test]
fn a_refused_header_is_not_cached() {
    let key = es256();
    let public = Value::Object(key.public_jwk());
    let private: Value = serde_json::from_str(&key.to_json()).unwrap();
    let claims = format!(r#"{{"jti":"j",{CLAIMS}}}"#);
    let verifier = ProofVerifier::new(policy());
    let only_eddsa = ProofVerifier::new(ProofPolicy {
        algorithms: [Algorithm::EdDSA].into_iter().collect(),
        ..policy()
    });
    let refused = [
        (
            format!(r#"{{"typ":"jwt","alg":"ES256","jwk":{public}}}"#),
            ProofCheck::Typ,
        ),
        (
            format!(r#"{{"typ":"dpop+jwt","alg":"HS256","jwk":{public}}}"#),
            ProofCheck::Alg,
        ),
        (
            r#"{"typ":"dpop+jwt","alg":"ES256"}"#.to_owned(),
            ProofCheck::Jwk,
        ),
        (
            format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{private}}}"#),
            ProofCheck::Jwk,
        ),
        (
            format!(r#"{{"typ":"dpop+jwt","alg":"ES384","jwk":{public}}}"#),
            ProofCheck::Jwk,
        ),
        (
            format!(r#"{{"crit":["x"],"typ":"dpop+jwt","alg":"ES256","jwk":{public}}}"#),
            ProofCheck::Syntax,
        ),
        (
            format!(r#"{{"typ":"dpop+jwt","alg":"ES256","alg":"ES256","jwk":{public}}}"#),
            ProofCheck::Syntax,
        ),
        ("[1]".to_owned(), ProofCheck::Syntax),
    ];
    for (header, why) in &refused {
        let proof = signed_text(&key, header, &claims);
        for _ in 0..2 {
            let err = verifier
                .verify(&proof, &get(None), UnixTime(NOW))
                .unwrap_err();
            assert_eq!(err.check(), *why, "{header}");
        }
        assert!(
            !verifier.headers.contains_key(header_of(&proof)),
            "{header}"
        );
    }
    // A valid header whose signature does not verify is not cached either.
    let forged = signed_text(&es256(), &header_text(&key), &claims);
    assert_eq!(
        verifier
            .verify(&forged, &get(None), UnixTime(NOW))
            .unwrap_err(),
        ProofError::Signature
    );
    assert!(!verifier.headers.contains_key(header_of(&forged)));
    // Nor a header the policy refuses (ES256 outside dpop.algorithms).
    let valid = signed_text(&key, &header_text(&key), &claims);
    assert_eq!(
        only_eddsa
            .verify(&valid, &get(None), UnixTime(NOW))
            .unwrap_err()
            .check(),
        ProofCheck::Alg
    );
    assert!(!only_eddsa.headers.contains_key(header_of(&valid)));
    verifier.headers.run_pending_tasks();
    only_eddsa.headers.run_pending_tasks();
    assert_eq!(verifier.headers.entry_count(), 0);
    assert_eq!(only_eddsa.headers.entry_count(), 0);
    assert!(verifier.verify(&valid, &get(None), UnixTime(NOW)).is_ok());
    assert!(verifier.headers.contains_key(header_of(&valid)));
}

#[test]
fn the_cache_stays_within_its_bound() {
    const BOUND: u64 = 16 * 1024;
    let verifier = ProofVerifier::with_cache_bytes(policy(), BOUND);
    let key = es256();
    let jwk = Value::Object(key.public_jwk());
    let claims = format!(r#"{{"jti":"j",{CLAIMS}}}"#);
    let mut weights = Vec::new();
    for i in 0..300 {
        // Distinct header texts, all valid (an unknown member is ignored).
        let header = format!(r#"{{"typ":"dpop+jwt","alg":"ES256","x-n":{i},"jwk":{jwk}}}"#);
        let proof = signed_text(&key, &header, &claims);
        assert!(verifier.verify(&proof, &get(None), UnixTime(NOW)).is_ok());
        weights.push(header_of(&proof).len());
    }
    verifier.headers.run_pending_tasks();
    let size = verifier.headers.weighted_size();
    let count = verifier.headers.entry_count();
    assert!(size <= BOUND, "{size} > {BOUND}");
    assert!(count > 0 && count < 300, "{count}");
    // Each entry weighs at least its key text and the overhead estimate.
    let min_weight = (weights[0] + ENTRY_OVERHEAD) as u64;
    assert!(size >= count * min_weight, "{size} for {count} entries");
    // A zero bound caches nothing and still verifies.
    let none = ProofVerifier::with_cache_bytes(policy(), 0);
    let proof = proof_with(&key, |_| {});
    assert!(none.verify(&proof, &get(None), UnixTime(NOW)).is_ok());
    none.headers.run_pending_tasks();
    assert_eq!(none.headers.entry_count(), 0);
}
