//! What the load generator sends: fixed requests, pre-minted unique DPoP requests (a fresh
//! `jti` each, never reused), or requests minted as they go (the soak).

use std::cell::Cell;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;
use dpop_gateway::clock::{self, Clock, SystemClock};
use dpop_gateway::jose::sign::{self, PrivateJwk, ProofClaims};
use dpop_gateway::jose::Algorithm;

use crate::process::{cpus_allowed, thread_cpu_ns, widen_affinity};

/// Where a request's bytes come from.
pub enum Source {
    /// The same request every time.
    Fixed(Bytes),
    /// Pre-generated unique requests, each used once; the run ends when they run out.
    Unique(Rc<Vec<Bytes>>, Rc<Cell<usize>>),
    /// Minted per request (the soak: a long run cannot pre-generate).
    Mint(Rc<Minter>),
}

/// Mints DPoP requests for a target.
pub struct Minter {
    pub keys: Vec<PrivateJwk>,
    pub tokens: Vec<String>,
    pub host: String,
    pub path: String,
    pub counter: Cell<usize>,
}

// === impl Source ===

impl Source {
    pub fn next(&self) -> Option<Bytes> {
        match self {
            Source::Fixed(b) => Some(b.clone()),
            Source::Unique(all, i) => {
                let n = i.get();
                i.set(n + 1);
                all.get(n).cloned()
            }
            Source::Mint(m) => Some(m.next()),
        }
    }
}

// === impl Minter ===

impl Minter {
    pub fn new(keys: &[PrivateJwk], tokens: &[String], addr: SocketAddr, path: &str) -> Minter {
        Minter {
            keys: keys.iter().map(clone_key).collect(),
            tokens: tokens.to_vec(),
            host: addr.to_string(),
            path: path.into(),
            counter: Cell::new(0),
        }
    }

    pub fn next(&self) -> Bytes {
        let n = self.counter.get();
        self.counter.set(n + 1);
        let k = n % self.keys.len();
        dpop_request(
            &self.keys[k],
            &self.tokens[k],
            &self.host,
            &self.path,
            "GET",
            0,
        )
    }
}

pub fn clone_key(k: &PrivateJwk) -> PrivateJwk {
    PrivateJwk::from_json(&k.to_json()).unwrap_or_else(|e| panic!("key round trip: {e}"))
}

/// `GET|POST path` with a fresh proof (new jti, iat now) and the bound token.
pub fn dpop_request(
    key: &PrivateJwk,
    token: &str,
    host: &str,
    path: &str,
    method: &str,
    body_len: u64,
) -> Bytes {
    let proof = key
        .mint_proof(&ProofClaims {
            htm: method.into(),
            htu: format!("http://{host}{path}"),
            iat: SystemClock.now().as_secs(),
            jti: sign::random_jti(),
            access_token: Some(token.into()),
            nonce: None,
        })
        .unwrap_or_else(|e| panic!("mint proof: {e}"));
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: DPoP {token}\r\nDPoP: {proof}\r\n"
    );
    if body_len > 0 {
        let _ = write!(r, "Content-Length: {body_len}\r\n");
    }
    r.push_str("\r\n");
    Bytes::from(r)
}

pub fn plain_request(host: SocketAddr, path: &str) -> Bytes {
    Bytes::from(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"))
}

/// Pre-mints `n` unique DPoP requests, on every core (the gateway is idle meanwhile).
pub fn mint_batch(
    keys: &[PrivateJwk],
    tokens: &[String],
    host: SocketAddr,
    n: usize,
) -> Vec<Bytes> {
    let threads = 2.min(n.max(1));
    let per = n.div_ceil(threads);
    let pinned_before = cpus_allowed();
    let batch = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    widen_affinity();
                    let host = host.to_string();
                    (t * per..((t + 1) * per).min(n))
                        .map(|i| {
                            let k = i % keys.len();
                            dpop_request(&keys[k], &tokens[k], &host, "/api/resource", "GET", 0)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    // The minting threads may use both cores; this thread (generator and upstream) must stay
    // where it was, off the proxy's core.
    assert_eq!(
        cpus_allowed(),
        pinned_before,
        "minting changed the load generator's CPU affinity"
    );
    batch
}

/// Time one ring P-256 verify in this process (the target's unit), in ns.
pub fn ring_p256_verify_ns() -> f64 {
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap_or_else(|e| panic!("{e}"));
    let proof = dpop_request(&key, "t", "h", "/", "GET", 0);
    let text = String::from_utf8_lossy(&proof).into_owned();
    let jws = text
        .split("DPoP: ")
        .nth(1)
        .and_then(|r| r.split("\r\n").next())
        .unwrap_or_default()
        .to_owned();
    let jwk = key.public_jwk();
    use base64::Engine as _;
    let b64 = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .unwrap_or_default()
    };
    let mut point = vec![4u8];
    point.extend(b64(jwk["x"].as_str().unwrap_or_default()));
    point.extend(b64(jwk["y"].as_str().unwrap_or_default()));
    let (input, sig) = jws.rsplit_once('.').unwrap_or_default();
    let sig = b64(sig);
    let pk =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point);
    // CPU time, not wall time: the machine may be shared, and the gateway is charged in CPU.
    let n = 5000;
    let c0 = thread_cpu_ns();
    let t0 = clock::monotonic();
    let mut ok = 0;
    for _ in 0..n {
        ok += usize::from(pk.verify(input.as_bytes(), &sig).is_ok());
    }
    assert_eq!(ok, n, "ring baseline verifies");
    let cpu = thread_cpu_ns().saturating_sub(c0);
    if cpu == 0 {
        return t0.elapsed().as_nanos() as f64 / n as f64;
    }
    cpu as f64 / n as f64
}
