//! The client side: private JWKs, key generation and signing. Used by `dpop-gateway keygen`,
//! `dpop-gateway proof`, the demo, the tests and the benches; never on the request path.
//! No I/O besides the system CSPRNG.

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use serde_json::{Map, Value};

use super::{Algorithm, JwkError, PublicJwk, Thumbprint, B64};

/// A private key with its algorithm, as a private JWK (`alg` member included).
pub struct PrivateJwk {
    alg: Algorithm,
    key: SigningKey,
    /// The public members (`kty`, `crv`, `x`, `y` or `kty`, `n`, `e`).
    public: Map<String, Value>,
    /// The private members, base64url, in the order they are written.
    private: Vec<(&'static str, String)>,
    thumbprint: Thumbprint,
}

/// Why a key could not be generated, read or used.
#[derive(Debug)]
pub enum SignError {
    /// The input is not a JSON object.
    Json(String),
    /// A required member is absent.
    MissingMember(&'static str),
    /// A member is not a JSON string.
    NotAString(&'static str),
    /// `alg` is not one we sign with.
    UnsupportedAlg(String),
    /// A private member is not unpadded base64url.
    BadBase64(&'static str),
    /// The public part is not a usable public JWK.
    Public(JwkError),
    /// The key's type or curve does not fit its `alg`.
    DoesNotFit(Algorithm),
    /// ring refused the key material (inconsistent or malformed private key).
    KeyRejected(String),
    /// RSA key generation failed.
    RsaGeneration(String),
    /// The system CSPRNG failed, or the key was malformed for DER extraction.
    Generation,
    /// Signing failed.
    Signing,
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

enum SigningKey {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// The RSA private members, in RFC 7518 §6.3.2 order.
const RSA_PRIVATE: [&str; 6] = ["d", "p", "q", "dp", "dq", "qi"];

// === impl PrivateJwk ===

impl PrivateJwk {
    /// A fresh key for `alg` (RSA keys are 2048 bits).
    pub fn generate(alg: Algorithm) -> Result<Self, SignError> {
        let rng = SystemRandom::new();
        let mut jwk = Map::new();
        jwk.insert("alg".into(), alg.as_str().into());
        match alg {
            Algorithm::ES256 | Algorithm::ES384 => {
                let (crv, signing) = ec_params(alg);
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &rng)
                    .map_err(|_| SignError::Generation)?;
                let pair = EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref(), &rng)
                    .map_err(|e| SignError::KeyRejected(e.to_string()))?;
                let d = ec_private_scalar(pkcs8.as_ref()).ok_or(SignError::Generation)?;
                // Uncompressed point: 0x04 || x || y, each coordinate half of the rest.
                let point = pair.public_key().as_ref();
                let (x, y) = point[1..].split_at((point.len() - 1) / 2);
                put(&mut jwk, "kty", "EC");
                put(&mut jwk, "crv", crv);
                put(&mut jwk, "x", &B64.encode(x));
                put(&mut jwk, "y", &B64.encode(y));
                put(&mut jwk, "d", &B64.encode(d));
            }
            Algorithm::EdDSA | Algorithm::Ed25519 => {
                let seed: [u8; 32] = ring::rand::generate(&rng)
                    .map_err(|_| SignError::Generation)?
                    .expose();
                let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
                    .map_err(|e| SignError::KeyRejected(e.to_string()))?;
                put(&mut jwk, "kty", "OKP");
                put(&mut jwk, "crv", "Ed25519");
                put(&mut jwk, "x", &B64.encode(pair.public_key().as_ref()));
                put(&mut jwk, "d", &B64.encode(seed));
            }
            Algorithm::RS256 | Algorithm::PS256 => rsa_members(&mut jwk)?,
        }
        Self::from_map(&jwk)
    }

    /// Reads a private JWK (JSON object with `alg`).
    pub fn from_json(json: &str) -> Result<Self, SignError> {
        let map: Map<String, Value> =
            serde_json::from_str(json).map_err(|e| SignError::Json(e.to_string()))?;
        Self::from_map(&map)
    }

    /// The private JWK as one JSON object, `alg` included.
    pub fn to_json(&self) -> String {
        let mut jwk = self.public.clone();
        for (name, value) in &self.private {
            put(&mut jwk, name, value);
        }
        put(&mut jwk, "alg", self.alg.as_str());
        Value::Object(jwk).to_string()
    }

    /// The public members only (what goes in a proof's `jwk` header or a JWKS).
    pub fn public_jwk(&self) -> Map<String, Value> {
        self.public.clone()
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The RFC 7638 thumbprint of the public key.
    pub fn thumbprint(&self) -> Thumbprint {
        self.thumbprint
    }

    /// Signs a compact JWS; `alg` is set in `header` from the key.
    pub fn sign_jws(
        &self,
        mut header: Map<String, Value>,
        payload: &Value,
    ) -> Result<String, SignError> {
        header.insert("alg".into(), self.alg.as_str().into());
        let header = serde_json::to_vec(&header).map_err(|e| SignError::Json(e.to_string()))?;
        let payload = serde_json::to_vec(payload).map_err(|e| SignError::Json(e.to_string()))?;
        self.sign_jws_text(&header, &payload)
    }

    /// Signs a compact JWS over `header` and `payload` exactly as given (no `alg` is added):
    /// for tests that need JSON a `Map` cannot hold, such as a repeated member.
    pub fn sign_jws_text(&self, header: &[u8], payload: &[u8]) -> Result<String, SignError> {
        let mut jws = B64.encode(header);
        jws.push('.');
        B64.encode_string(payload, &mut jws);
        let signature = self.sign(jws.as_bytes())?;
        jws.push('.');
        B64.encode_string(signature, &mut jws);
        Ok(jws)
    }

    /// Mints a DPoP proof: `typ: dpop+jwt`, this key's `alg` and public `jwk`, the claims.
    pub fn mint_proof(&self, claims: &ProofClaims) -> Result<String, SignError> {
        let mut header = Map::new();
        header.insert("typ".into(), "dpop+jwt".into());
        header.insert("jwk".into(), Value::Object(self.public_jwk()));
        let mut payload = Map::new();
        payload.insert("jti".into(), claims.jti.as_str().into());
        payload.insert("htm".into(), claims.htm.as_str().into());
        payload.insert("htu".into(), claims.htu.as_str().into());
        payload.insert("iat".into(), claims.iat.into());
        if let Some(token) = &claims.access_token {
            payload.insert("ath".into(), ath(token).into());
        }
        if let Some(nonce) = &claims.nonce {
            payload.insert("nonce".into(), nonce.as_str().into());
        }
        self.sign_jws(header, &Value::Object(payload))
    }

    /// The one constructor: validates the public part as a verifier would, then the private part
    /// with ring.
    fn from_map(jwk: &Map<String, Value>) -> Result<Self, SignError> {
        let alg_name = member(jwk, "alg")?;
        let alg = Algorithm::from_name(alg_name)
            .ok_or_else(|| SignError::UnsupportedAlg(alg_name.to_owned()))?;
        let public_names: &[&str] = match member(jwk, "kty")? {
            "EC" => &["kty", "crv", "x", "y"],
            "OKP" => &["kty", "crv", "x"],
            _ => &["kty", "n", "e"],
        };
        let public: Map<String, Value> = public_names
            .iter()
            .filter_map(|n| jwk.get(*n).map(|v| ((*n).to_owned(), v.clone())))
            .collect();
        let parsed = PublicJwk::from_json(&public).map_err(SignError::Public)?;
        if !parsed.fits(alg) {
            return Err(SignError::DoesNotFit(alg));
        }
        let rng = SystemRandom::new();
        let private_names: &[&'static str] = match alg {
            Algorithm::ES256 | Algorithm::ES384 | Algorithm::EdDSA | Algorithm::Ed25519 => &["d"],
            Algorithm::RS256 | Algorithm::PS256 => &RSA_PRIVATE,
        };
        let private = private_names
            .iter()
            .map(|n| Ok((*n, member(jwk, n)?.to_owned())))
            .collect::<Result<Vec<_>, SignError>>()?;
        let bytes = |name: &'static str| -> Result<Vec<u8>, SignError> {
            let encoded = member(jwk, name)?;
            B64.decode(encoded).map_err(|_| SignError::BadBase64(name))
        };
        let rejected = |e: ring::error::KeyRejected| SignError::KeyRejected(e.to_string());
        let key = match alg {
            Algorithm::ES256 | Algorithm::ES384 => {
                let mut point = vec![0x04];
                point.extend(bytes("x")?);
                point.extend(bytes("y")?);
                let (_, signing) = ec_params(alg);
                SigningKey::Ecdsa(
                    EcdsaKeyPair::from_private_key_and_public_key(
                        signing,
                        &bytes("d")?,
                        &point,
                        &rng,
                    )
                    .map_err(rejected)?,
                )
            }
            Algorithm::EdDSA | Algorithm::Ed25519 => SigningKey::Ed25519(
                Ed25519KeyPair::from_seed_and_public_key(&bytes("d")?, &bytes("x")?)
                    .map_err(rejected)?,
            ),
            Algorithm::RS256 | Algorithm::PS256 => {
                let get = |name| bytes(name).map(strip_leading_zeros);
                let components = ring::rsa::KeyPairComponents {
                    public_key: signature::RsaPublicKeyComponents {
                        n: get("n")?,
                        e: get("e")?,
                    },
                    d: get("d")?,
                    p: get("p")?,
                    q: get("q")?,
                    dP: get("dp")?,
                    dQ: get("dq")?,
                    qInv: get("qi")?,
                };
                SigningKey::Rsa(RsaKeyPair::from_components(&components).map_err(rejected)?)
            }
        };
        Ok(Self {
            alg,
            key,
            public,
            private,
            thumbprint: parsed.thumbprint(),
        })
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let rng = SystemRandom::new();
        match &self.key {
            SigningKey::Ecdsa(pair) => pair
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SignError::Signing),
            SigningKey::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            SigningKey::Rsa(pair) => {
                let padding: &'static dyn signature::RsaEncoding = match self.alg {
                    Algorithm::PS256 => &signature::RSA_PSS_SHA256,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(padding, &rng, message, &mut out)
                    .map_err(|_| SignError::Signing)?;
                Ok(out)
            }
        }
    }
}

impl std::fmt::Debug for PrivateJwk {
    /// Never prints private members.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateJwk")
            .field("alg", &self.alg)
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

/// `ath`: base64url(SHA-256(ASCII access token)) (RFC 9449 §4.2).
pub fn ath(access_token: &str) -> String {
    B64.encode(ring::digest::digest(
        &ring::digest::SHA256,
        access_token.as_bytes(),
    ))
}

/// A random `jti`: 16 bytes from the system CSPRNG, base64url.
pub fn random_jti() -> String {
    let bytes: [u8; 16] = ring::rand::generate(&SystemRandom::new())
        .map(|r| r.expose())
        // reason: a client-side tool without a working CSPRNG must not mint predictable jtis.
        .unwrap_or_else(|_| panic!("the system CSPRNG failed"));
    B64.encode(bytes)
}

fn ec_params(alg: Algorithm) -> (&'static str, &'static signature::EcdsaSigningAlgorithm) {
    match alg {
        Algorithm::ES384 => ("P-384", &signature::ECDSA_P384_SHA384_FIXED_SIGNING),
        _ => ("P-256", &signature::ECDSA_P256_SHA256_FIXED_SIGNING),
    }
}

/// A fresh 2048-bit RSA key's members, from the `rsa` crate (ring cannot generate RSA keys).
fn rsa_members(jwk: &mut Map<String, Value>) -> Result<(), SignError> {
    use rsa::traits::{PrivateKeyParts as _, PublicKeyParts as _};
    let mut key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
        .map_err(|e| SignError::RsaGeneration(e.to_string()))?;
    key.precompute()
        .map_err(|e| SignError::RsaGeneration(e.to_string()))?;
    let b64 = |n: &rsa::BigUint| B64.encode(n.to_bytes_be());
    let (Some(p), Some(q), Some(dp), Some(dq), Some(qi)) = (
        key.primes().first(),
        key.primes().get(1),
        key.dp(),
        key.dq(),
        key.crt_coefficient(),
    ) else {
        return Err(SignError::RsaGeneration("missing CRT values".into()));
    };
    put(jwk, "kty", "RSA");
    put(jwk, "n", &b64(key.n()));
    put(jwk, "e", &b64(key.e()));
    put(jwk, "d", &b64(key.d()));
    put(jwk, "p", &b64(p));
    put(jwk, "q", &b64(q));
    put(jwk, "dp", &b64(dp));
    put(jwk, "dq", &b64(dq));
    put(jwk, "qi", &b64(&qi));
    Ok(())
}

/// The private scalar from ring's PKCS#8 v1 EC document (RFC 5208 PrivateKeyInfo wrapping an
/// RFC 5915 ECPrivateKey): SEQUENCE { INTEGER, SEQUENCE, OCTET STRING { SEQUENCE { INTEGER,
/// OCTET STRING d, ... } } }.
fn ec_private_scalar(pkcs8: &[u8]) -> Option<&[u8]> {
    let (info, _) = der_expect(pkcs8, 0x30)?;
    let (_version, rest) = der_expect(info, 0x02)?;
    let (_algorithm, rest) = der_expect(rest, 0x30)?;
    let (ec_private_key, _) = der_expect(rest, 0x04)?;
    let (ec, _) = der_expect(ec_private_key, 0x30)?;
    let (_version, rest) = der_expect(ec, 0x02)?;
    let (d, _) = der_expect(rest, 0x04)?;
    Some(d)
}

/// One DER TLV with tag `tag`: (contents, rest). Short and one- or two-byte long lengths only.
fn der_expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81 => (usize::from(*rest.first()?), rest.get(1..)?),
        0x82 => (
            usize::from(*rest.first()?) << 8 | usize::from(*rest.get(1)?),
            rest.get(2..)?,
        ),
        _ => return None,
    };
    Some((rest.get(..len)?, rest.get(len..)?))
}

fn member<'a>(jwk: &'a Map<String, Value>, name: &'static str) -> Result<&'a str, SignError> {
    match jwk.get(name) {
        None => Err(SignError::MissingMember(name)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(SignError::NotAString(name)),
    }
}

fn put(jwk: &mut Map<String, Value>, name: &str, value: &str) {
    jwk.insert(name.to_owned(), Value::String(value.to_owned()));
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

// === impl SignError ===

impl std::fmt::Display for SignError {
    /// What is wrong with the key the user gave, in their terms (`dpop-gateway proof` and
    /// `token` print it after the file's name).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignError::Json(e) => write!(
                f,
                "not a JWK: a private JWK is one JSON object, as `dpop-gateway keygen` prints it ({e})"
            ),
            SignError::MissingMember(m) => {
                write!(f, "a private JWK needs member \"{m}\"")?;
                match *m {
                    "d" => f.write_str(
                        " (this looks like a public key: sign with the private key, e.g. the \
                         file `dpop-gateway keygen` wrote)",
                    ),
                    "alg" => write!(
                        f,
                        " naming the algorithm to sign with ({}; `dpop-gateway keygen --alg …` \
                         writes it)",
                        Algorithm::NAMES
                    ),
                    "kty" => f.write_str(" (EC, OKP or RSA)"),
                    "p" | "q" | "dp" | "dq" | "qi" => f.write_str(
                        " (an RSA private JWK needs n, e, d, p, q, dp, dq and qi: the CRT form)",
                    ),
                    _ => Ok(()),
                }
            }
            SignError::NotAString(m) => write!(f, "JWK member \"{m}\" must be a string"),
            SignError::UnsupportedAlg(a) => write!(
                f,
                "JWK \"alg\" {a:?} is not one this tool signs with ({})",
                Algorithm::NAMES
            ),
            SignError::BadBase64(m) => write!(
                f,
                "JWK member \"{m}\" is not base64url without padding (RFC 7515 §2)"
            ),
            SignError::Public(e) => write!(f, "the key's public part is not usable: {e}"),
            SignError::DoesNotFit(alg) => write!(
                f,
                "the key's \"kty\"/\"crv\" do not fit its \"alg\" {alg} (ES256: EC P-256, \
                 ES384: EC P-384, EdDSA/Ed25519: OKP Ed25519, RS256/PS256: RSA)"
            ),
            SignError::KeyRejected(e) => write!(
                f,
                "the private key does not match its public part, or is malformed ({e})"
            ),
            SignError::RsaGeneration(e) => write!(f, "RSA key generation failed: {e}"),
            SignError::Generation => f.write_str("key generation failed"),
            SignError::Signing => f.write_str("signing failed"),
        }
    }
}

impl std::error::Error for SignError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::CompactJws;
    use serde_json::json;

    #[test]
    fn every_algorithm_generates_signs_and_verifies() {
        for alg in Algorithm::ALL {
            let key = PrivateJwk::generate(alg).unwrap();
            assert_eq!(key.alg(), alg);
            let jws = key.sign_jws(Map::new(), &json!({"a": 1})).unwrap();
            let parsed = CompactJws::parse(&jws, 10_000).unwrap();
            let header: Value = serde_json::from_slice(&parsed.header).unwrap();
            assert_eq!(header["alg"], alg.as_str());
            let public = PublicJwk::from_json(&key.public_jwk()).unwrap();
            assert_eq!(public.thumbprint(), key.thumbprint());
            public
                .verify(alg, parsed.signing_input, &parsed.signature)
                .unwrap();
        }
    }

    #[test]
    fn private_jwk_round_trips_through_json() {
        for alg in Algorithm::ALL {
            let key = PrivateJwk::generate(alg).unwrap();
            let json = key.to_json();
            let v: Value = serde_json::from_str(&json).unwrap();
            assert_eq!(v["alg"], alg.as_str());
            assert!(v.get("d").is_some());
            let again = PrivateJwk::from_json(&json).unwrap();
            assert_eq!(again.thumbprint(), key.thumbprint());
            assert_eq!(again.to_json(), json);
            // A signature by the re-read key verifies with the original public key.
            let jws = again.sign_jws(Map::new(), &json!({})).unwrap();
            let parsed = CompactJws::parse(&jws, 10_000).unwrap();
            PublicJwk::from_json(&key.public_jwk())
                .unwrap()
                .verify(alg, parsed.signing_input, &parsed.signature)
                .unwrap();
        }
    }

    #[test]
    fn public_jwk_has_no_private_member() {
        for alg in Algorithm::ALL {
            let public = PrivateJwk::generate(alg).unwrap().public_jwk();
            for m in ["d", "p", "q", "dp", "dq", "qi", "alg"] {
                assert!(!public.contains_key(m), "{alg}: {m}");
            }
        }
    }

    #[test]
    fn from_json_refuses_bad_keys() {
        let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
        let good: Map<String, Value> = serde_json::from_str(&key.to_json()).unwrap();
        let with = |k: &str, v: Value| {
            let mut m = good.clone();
            m.insert(k.into(), v);
            PrivateJwk::from_json(&Value::Object(m).to_string())
        };
        assert!(matches!(
            with("alg", json!("ES384")),
            Err(SignError::Public(_) | SignError::DoesNotFit(_))
        ));
        assert!(matches!(
            with("alg", json!("none")),
            Err(SignError::UnsupportedAlg(_))
        ));
        assert!(matches!(
            with("d", json!("AAAA")),
            Err(SignError::KeyRejected(_))
        ));
        assert!(matches!(
            with("d", json!(1)),
            Err(SignError::NotAString("d"))
        ));
        let mut m = good.clone();
        m.remove("d");
        assert!(matches!(
            PrivateJwk::from_json(&Value::Object(m).to_string()),
            Err(SignError::MissingMember("d"))
        ));
        assert!(matches!(
            PrivateJwk::from_json("[1]"),
            Err(SignError::Json(_))
        ));
    }

    #[test]
    fn mint_proof_has_the_dpop_header_and_claims() {
        let key = PrivateJwk::generate(Algorithm::EdDSA).unwrap();
        let proof = key
            .mint_proof(&ProofClaims {
                htm: "GET".into(),
                htu: "https://a.example/x".into(),
                iat: 1_700_000_000,
                jti: "j1".into(),
                access_token: Some("tok".into()),
                nonce: Some("n1".into()),
            })
            .unwrap();
        let parsed = CompactJws::parse(&proof, 10_000).unwrap();
        let header: Value = serde_json::from_slice(&parsed.header).unwrap();
        let claims: Value = serde_json::from_slice(&parsed.payload).unwrap();
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["jwk"], Value::Object(key.public_jwk()));
        assert_eq!(
            claims,
            json!({"jti": "j1", "htm": "GET", "htu": "https://a.example/x",
                   "iat": 1_700_000_000u64, "ath": ath("tok"), "nonce": "n1"})
        );
    }

    #[test]
    fn ath_matches_the_rfc_9449_vector() {
        let v: Value =
            serde_json::from_str(include_str!("../../tests/fixtures/vectors.json")).unwrap();
        let vector = &v["rfc9449_ath"];
        assert_eq!(
            ath(vector["access_token"].as_str().unwrap()),
            vector["ath"].as_str().unwrap()
        );
    }

    #[test]
    fn random_jti_is_16_bytes_and_fresh() {
        let a = random_jti();
        assert_eq!(B64.decode(&a).unwrap().len(), 16);
        assert_ne!(a, random_jti());
    }

    #[test]
    fn ec_scalar_extraction_finds_d() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
            .unwrap();
        assert_eq!(ec_private_scalar(pkcs8.as_ref()).unwrap().len(), 48);
        assert!(ec_private_scalar(&pkcs8.as_ref()[..20]).is_none());
    }
}
