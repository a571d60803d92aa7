//! Shared by the criterion benches: fixed keys, proofs and tokens at a fixed time, the raw ring
//! verify each bench is compared with, and the ratio table printed at the end of a run.
//!
//! The ratio table reads criterion's own estimates (`<criterion home>/<group>/<bench>/new/
//! estimates.json`) for the benches this process ran, so every ratio compares two numbers
//! measured in the same run on the same machine state.

// reason: each bench binary uses a different subset of these helpers.
#![allow(dead_code)]
// reason: fixed fixtures set up before measuring, like a test's; a broken one must stop the run.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::SystemTime;

use dpop_gateway::clock::UnixTime;
use dpop_gateway::dpop::{ProofPolicy, ProofRequest};
use dpop_gateway::jose::sign::{PrivateJwk, ProofClaims};
use dpop_gateway::jose::Algorithm;
use dpop_gateway::metrics::Metrics;
use dpop_gateway::token::jwt::{JwkSet, JwtPolicy, JwtValidator};
use dpop_gateway::token::TokenMetrics;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{json, Value};

/// The fixed verification time of every fixture (no clock reads in benches).
pub const NOW: UnixTime = UnixTime(1_700_000_000);

/// The `htu` every fixture proof names.
pub const HTU: &str = "http://127.0.0.1:8443/api/resource";

/// The algorithms benched per algorithm (RSA at 2048 bits, the common client size).
pub const ALGS: [Algorithm; 4] = [
    Algorithm::ES256,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::PS256,
];

/// One client key with a proof, and the public key in ring's form for the baseline.
pub struct Fixture {
    /// The algorithm.
    pub alg: Algorithm,
    /// The client's key.
    pub key: PrivateJwk,
    /// An access token bound to `key`.
    pub token: String,
    /// A proof for `GET HTU` with `ath` of `token`, `iat` = [`NOW`].
    pub proof: String,
    /// The proof's signing input (what ring verifies).
    pub signing_input: Vec<u8>,
    /// The proof's decoded signature.
    pub signature: Vec<u8>,
    /// The public key bytes ring takes: the SEC 1 point, the Ed25519 key, or (n, e).
    pub ring_key: RingKey,
}

/// The public key as ring takes it.
pub enum RingKey {
    /// ECDSA point or Ed25519 key.
    Unparsed(Vec<u8>),
    /// RSA modulus and exponent, big-endian.
    Rsa(Vec<u8>, Vec<u8>),
}

/// The issuer of the fixture tokens and a validator that trusts it.
pub struct Issuer {
    key: PrivateJwk,
    jwks: Vec<u8>,
}

// === impl Fixture ===

impl Fixture {
    /// A fixture for `alg`; RSA keys come from `tests/fixtures` (generating one in a debug
    /// build, as `cargo test --benches` does, takes seconds).
    pub fn new(alg: Algorithm, issuer: &Issuer) -> Fixture {
        let key = match alg {
            Algorithm::RS256 => {
                PrivateJwk::from_json(include_str!("../../tests/fixtures/rs256-client.jwk"))
                    .unwrap()
            }
            Algorithm::PS256 => {
                PrivateJwk::from_json(include_str!("../../tests/fixtures/ps256-client.jwk"))
                    .unwrap()
            }
            other => PrivateJwk::generate(other).unwrap(),
        };
        let token = issuer.token_for(&key);
        let proof = mint(&key, "fixture-jti", &token);
        let (input, sig) = proof.rsplit_once('.').unwrap();
        let signature = b64(sig);
        let jwk = key.public_jwk();
        let member = |name: &str| b64(jwk[name].as_str().unwrap());
        let ring_key = match alg {
            Algorithm::ES256 | Algorithm::ES384 => {
                let mut point = vec![4u8];
                point.extend(member("x"));
                point.extend(member("y"));
                RingKey::Unparsed(point)
            }
            Algorithm::EdDSA | Algorithm::Ed25519 => RingKey::Unparsed(member("x")),
            Algorithm::RS256 | Algorithm::PS256 => {
                let n = member("n");
                let first = n.iter().position(|b| *b != 0).unwrap_or(0);
                RingKey::Rsa(n[first..].to_vec(), member("e"))
            }
        };
        Fixture {
            alg,
            key,
            token,
            signing_input: input.as_bytes().to_vec(),
            proof,
            signature,
            ring_key,
        }
    }

    /// The floor: one bare ring verification of the proof's signature.
    pub fn ring_verify(&self) -> bool {
        let msg = &self.signing_input[..];
        let sig = &self.signature[..];
        match (&self.ring_key, self.alg) {
            (RingKey::Unparsed(k), Algorithm::ES256) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, k)
                    .verify(msg, sig)
                    .is_ok()
            }
            (RingKey::Unparsed(k), Algorithm::ES384) => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, k)
                    .verify(msg, sig)
                    .is_ok()
            }
            (RingKey::Unparsed(k), Algorithm::EdDSA | Algorithm::Ed25519) => {
                UnparsedPublicKey::new(&signature::ED25519, k)
                    .verify(msg, sig)
                    .is_ok()
            }
            (RingKey::Rsa(n, e), Algorithm::RS256) => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg, sig)
                .is_ok(),
            (RingKey::Rsa(n, e), Algorithm::PS256) => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PSS_2048_8192_SHA256, msg, sig)
                .is_ok(),
            _ => false,
        }
    }

    /// The request the fixture proof matches.
    pub fn request(&self) -> ProofRequest<'_> {
        ProofRequest {
            method: "GET",
            htu: HTU,
            access_token: Some(&self.token),
        }
    }
}

/// A proof by `key` for `GET HTU` with `jti`, bound to `token` by `ath`.
pub fn mint(key: &PrivateJwk, jti: &str, token: &str) -> String {
    key.mint_proof(&ProofClaims {
        htm: "GET".into(),
        htu: HTU.into(),
        iat: NOW.as_secs(),
        jti: jti.into(),
        access_token: Some(token.into()),
        nonce: None,
    })
    .unwrap()
}

fn b64(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

/// The proof policy of the default config (every algorithm, 60 s, 5 s skew, `ath` required).
pub fn proof_policy() -> ProofPolicy {
    ProofPolicy {
        algorithms: Algorithm::ALL.into_iter().collect(),
        max_age: 60,
        clock_skew: 5,
        max_proof_bytes: 8192,
        require_ath: true,
    }
}

// === impl Issuer ===

impl Issuer {
    /// An ES256 issuer (kid `bench-issuer`).
    pub fn new() -> Issuer {
        let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
        let mut jwk = key.public_jwk();
        jwk.insert("kid".into(), json!("bench-issuer"));
        jwk.insert("use".into(), json!("sig"));
        let jwks = json!({ "keys": [jwk] }).to_string().into_bytes();
        Issuer { key, jwks }
    }

    /// An `at+jwt` bound to `client`, valid for an hour from [`NOW`].
    pub fn token_for(&self, client: &PrivateJwk) -> String {
        let claims = json!({
            "iss": "https://as.example.com",
            "aud": "https://api.example.com",
            "sub": "alice",
            "client_id": "client-1",
            "scope": "read write",
            "iat": NOW.as_secs(),
            "exp": NOW.as_secs() + 3600,
            "cnf": { "jkt": client.thumbprint().to_string() },
        });
        let mut header = serde_json::Map::new();
        header.insert("typ".into(), Value::from("at+jwt"));
        header.insert("kid".into(), Value::from("bench-issuer"));
        self.key.sign_jws(header, &claims).unwrap()
    }

    /// The issuer's JWKS document.
    pub fn jwks(&self) -> &[u8] {
        &self.jwks
    }

    /// A validator trusting this issuer, with a token cache of `cache_capacity` entries.
    pub fn validator(&self, cache_capacity: u64) -> JwtValidator {
        let policy = JwtPolicy {
            issuer: "https://as.example.com".into(),
            audience: "https://api.example.com".into(),
            algorithms: Algorithm::ALL.into_iter().collect(),
            leeway: 30,
            require_typ: true,
            claims: Vec::new(),
        };
        JwtValidator::new(
            policy,
            JwkSet::from_json(&self.jwks).unwrap(),
            cache_capacity,
            TokenMetrics::of(&Metrics::new().unwrap()),
        )
    }
}

// === ratio table ===

/// Whether this run measures (`cargo bench` passes `--bench`); under `cargo test` criterion
/// runs each bench once and there is nothing to summarise.
pub fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench") && !std::env::args().any(|a| a == "--test")
}

/// Where criterion writes its estimates (its own order: `CRITERION_HOME`, `CARGO_TARGET_DIR`,
/// then this package's `target/`).
fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("criterion")
}

/// The mean time in ns of `group/bench` if criterion measured it after `since`.
pub fn estimate_ns(id: &str, since: SystemTime) -> Option<f64> {
    let path = criterion_home().join(id).join("new").join("estimates.json");
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    if modified < since {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

/// Prints `| bench | mean | baseline | ratio |` for each `(bench id, baseline id)` measured in
/// this run.
pub fn print_ratios(title: &str, rows: &[(String, String)], since: SystemTime) {
    let mut lines = Vec::new();
    for (id, base) in rows {
        let (Some(t), Some(b)) = (estimate_ns(id, since), estimate_ns(base, since)) else {
            continue;
        };
        let ratio = t / b;
        // Small parts (a digest, a thumbprint) keep three significant digits.
        let ratio = if ratio < 0.1 {
            format!("{ratio:.4}x")
        } else {
            format!("{ratio:.2}x")
        };
        lines.push(format!(
            "| {id} | {} | {base} | {} | {ratio} |",
            human(t),
            human(b)
        ));
    }
    if lines.is_empty() {
        return;
    }
    println!("\n## {title}: ratio to a bare ring verify of the same algorithm (same run)\n");
    println!("| bench | mean | baseline | baseline mean | ratio |");
    println!("|---|---:|---|---:|---:|");
    for l in lines {
        println!("{l}");
    }
}

/// `1.23 µs` style.
pub fn human(ns: f64) -> String {
    if ns >= 1_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else if ns >= 1_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{ns:.1} ns")
    }
}

/// The ring baseline id for `alg` (every bench file registers these in group `ring`).
pub fn ring_id(alg: Algorithm) -> String {
    format!("ring/{}", alg.as_str())
}

/// The start of this run, to tell this run's estimates from older ones.
#[allow(clippy::disallowed_methods)] // reason: compared with file times, not used in any check
pub fn run_start() -> SystemTime {
    SystemTime::now()
}

/// The shared `main` of a criterion bench binary: runs `benches`, then (in a measured run)
/// prints each bench's ratio to the ring verify of its algorithm, from this run's estimates.
pub fn run(title: &str, benches: fn(&mut criterion::Criterion) -> Vec<(String, String)>) {
    let start = run_start();
    let mut c = criterion::Criterion::default().configure_from_args();
    let rows = benches(&mut c);
    c.final_summary();
    if measuring() {
        print_ratios(title, &rows, start);
    }
}
