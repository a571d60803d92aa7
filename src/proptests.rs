//! Property tests (proptest) for the invariants the checks rest on: one base64url text per
//! value, thumbprints that survive their text form, URI normalisation that is idempotent, and a
//! signed proof that no single-byte change keeps valid.

use proptest::prelude::*;

use crate::clock::UnixTime;
use crate::config::EncodedSlashes;
use crate::dpop::{self, htu, ProofPolicy, ProofRequest};
use crate::jose::sign::{PrivateJwk, ProofClaims};
use crate::jose::{Algorithm, Thumbprint, B64};
use base64::Engine;

const NOW: UnixTime = UnixTime(1_700_000_000);
const HTU: &str = "https://api.example.com/r";

fn policy() -> ProofPolicy {
    ProofPolicy {
        algorithms: Algorithm::ALL.into_iter().collect(),
        max_age: 60,
        clock_skew: 5,
        max_proof_bytes: 8192,
        require_ath: true,
    }
}

/// One valid ES256 proof (and an Ed25519 one), minted once for every case.
fn proofs() -> &'static [String] {
    static PROOFS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    PROOFS.get_or_init(|| {
        [Algorithm::ES256, Algorithm::Ed25519]
            .into_iter()
            .map(|alg| {
                PrivateJwk::generate(alg)
                    .unwrap()
                    .mint_proof(&ProofClaims {
                        htm: "GET".into(),
                        htu: HTU.into(),
                        iat: NOW.as_secs(),
                        jti: "prop-jti".into(),
                        access_token: None,
                        nonce: None,
                    })
                    .unwrap()
            })
            .collect()
    })
}

fn verify(proof: &str) -> bool {
    let request = ProofRequest {
        method: "GET",
        htu: HTU,
        access_token: None,
    };
    dpop::verify(proof, &request, &policy(), NOW).is_ok()
}

/// Characters URIs are made of, weighted toward the ones normalisation treats specially.
fn uri_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(vec!['/', '.', '%', '~', '-', '_', ':', '@', '?', '#', '[', ']']),
        3 => prop::char::range('a', 'f'),
        2 => prop::char::range('A', 'F'),
        2 => prop::char::range('0', '9'),
        1 => prop::char::range('g', 'z'),
        1 => prop::sample::select(vec!['!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=']),
    ]
}

fn uri_text() -> impl Strategy<Value = String> {
    prop::collection::vec(uri_char(), 0..40).prop_map(|cs| cs.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn base64url_round_trips_and_has_one_text_per_value(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
        let text = B64.encode(&bytes);
        prop_assert_eq!(B64.decode(&text).unwrap(), bytes);
    }

    #[test]
    fn decoded_base64url_reencodes_to_the_same_text(text in "[A-Za-z0-9_-]{0,60}") {
        // The engine refuses non-canonical trailing bits: a value has exactly one text, so
        // a `jkt` or `ath` cannot be spelled two ways.
        if let Ok(bytes) = B64.decode(&text) {
            prop_assert_eq!(B64.encode(bytes), text);
        }
    }

    #[test]
    fn thumbprints_survive_their_text_form(bytes in any::<[u8; 32]>()) {
        let t = Thumbprint::from_bytes(bytes);
        prop_assert_eq!(Thumbprint::from_b64(&t.to_string()), Some(t));
    }

    #[test]
    fn a_thumbprint_text_that_parses_is_canonical(text in "[A-Za-z0-9_-]{43}") {
        if let Some(t) = Thumbprint::from_b64(&text) {
            prop_assert_eq!(t.to_string(), text);
        }
    }

    #[test]
    fn htu_normalisation_is_idempotent(
        scheme in prop::sample::select(vec!["http", "HTTPS", "https", "Http"]),
        host in "[a-zA-Z0-9.-]{1,12}",
        port in prop::option::of(0u16..9000),
        path in uri_text(),
    ) {
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let uri = format!("{scheme}://{host}{port}/{path}");
        if let Ok(n) = htu::normalize(&uri) {
            prop_assert_eq!(htu::normalize(&n), Ok(n), "{}", uri);
        }
    }

    #[test]
    fn uris_equal_under_rfc3986_compare_equal(path in "[a-z0-9~._-]{0,12}") {
        // Percent-encoding an unreserved character and changing the case of scheme and host
        // make an equivalent URI (RFC 3986 §6.2.2): both normalise to the same text.
        let encoded: String = path.bytes().map(|b| format!("%{b:02x}")).collect();
        let a = htu::normalize(&format!("https://api.example.com/{path}"));
        let b = htu::normalize(&format!("HTTPS://API.Example.com:443/{encoded}"));
        prop_assert!(a.is_ok());
        prop_assert_eq!(a, b);
    }

    #[test]
    fn path_normalisation_is_idempotent(path in uri_text(), keep in any::<bool>()) {
        let slashes = if keep { EncodedSlashes::Keep } else { EncodedSlashes::Reject };
        let path = format!("/{path}");
        if let Ok(n) = crate::uri::canonical_path(&path, slashes) {
            let again = crate::uri::canonical_path(&n, slashes).map(|p| p.into_owned());
            prop_assert_eq!(again, Ok(n.into_owned()), "{}", path);
        }
    }

    #[test]
    fn any_single_byte_change_to_a_valid_proof_is_refused(
        which in 0usize..2,
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let proof = &proofs()[which];
        prop_assert!(verify(proof));
        let mut bytes = proof.clone().into_bytes();
        let i = at.index(bytes.len());
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        if let Ok(changed) = String::from_utf8(bytes) {
            prop_assert!(!verify(&changed), "byte {} changed to {:?} still verifies", i, byte as char);
        }
    }
}
