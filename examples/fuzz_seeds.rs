//! Writes the seed corpus (`fuzz/corpus/<target>/`): the published RFC 9449 vectors, a valid
//! proof of every algorithm and valid demo-issuer tokens, all for the targets' fixed time, and
//! the shipped configuration files. Run by `fuzz/run.sh seeds` (`cargo run --example
//! fuzz_seeds`); the output is committed.

#![allow(clippy::expect_used)]

#[path = "../fuzz/src/common.rs"]
mod common;

use std::fs;
use std::path::{Path, PathBuf};

use dpop_gateway::jose::sign::{PrivateJwk, ProofClaims};
use dpop_gateway::jose::Algorithm;
use serde_json::json;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).expect("corpus directory");
    fs::write(dir.join(name), bytes).expect("seed file");
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let corpus = root.join("fuzz/corpus");
    let vectors: serde_json::Value =
        serde_json::from_str(include_str!("../tests/fixtures/vectors.json")).expect("vectors");

    // proof: the RFC's own proofs, then one valid proof per algorithm (RSA keys from the test
    // fixtures: generating one takes seconds).
    let proofs = corpus.join("proof");
    for (name, v) in vectors.as_object().expect("vectors object") {
        if let Some(p) = v.get("proof").and_then(|p| p.as_str()) {
            write(&proofs, &format!("rfc-{name}"), p.as_bytes());
        }
    }
    for alg in Algorithm::ALL {
        let key = match alg {
            Algorithm::RS256 => {
                PrivateJwk::from_json(include_str!("../tests/fixtures/rs256-client.jwk"))
            }
            Algorithm::PS256 => {
                PrivateJwk::from_json(include_str!("../tests/fixtures/ps256-client.jwk"))
            }
            other => PrivateJwk::generate(other),
        }
        .expect("client key");
        for (suffix, access_token) in [("", None), ("-ath", Some(common::ACCESS_TOKEN))] {
            let proof = key
                .mint_proof(&ProofClaims {
                    htm: common::HTM.into(),
                    htu: common::HTU.into(),
                    iat: common::NOW.as_secs(),
                    jti: format!("seed-{alg:?}{suffix}"),
                    access_token: access_token.map(str::to_owned),
                    nonce: None,
                })
                .expect("proof");
            write(&proofs, &format!("{alg:?}{suffix}"), proof.as_bytes());
        }
    }

    // token: demo-issuer access tokens, bound and unbound, and the JWKS itself.
    let tokens = corpus.join("token");
    let issuer = PrivateJwk::from_json(common::DEMO_ISSUER_KEY).expect("demo issuer key");
    let kid = serde_json::from_str::<serde_json::Value>(common::DEMO_JWKS).expect("jwks")["keys"]
        [0]["kid"]
        .as_str()
        .map(str::to_owned);
    let now = common::NOW.as_secs();
    for (name, claims) in [
        (
            "bound",
            json!({"iss": common::ISSUER, "aud": common::AUDIENCE, "sub": "user-1",
                   "client_id": "app", "scope": "read write", "iat": now, "exp": now + 300,
                   "jti": "t1", "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}),
        ),
        (
            "unbound",
            json!({"iss": common::ISSUER, "aud": [common::AUDIENCE], "sub": "user-2",
                   "iat": now, "nbf": now, "exp": now + 300, "jti": "t2", "scp": ["a", "b"]}),
        ),
    ] {
        let mut header = json!({"typ": "at+jwt", "alg": issuer.alg().as_str()});
        if let Some(kid) = &kid {
            header["kid"] = json!(kid);
        }
        let token = issuer
            .sign_jws_text(header.to_string().as_bytes(), claims.to_string().as_bytes())
            .expect("token");
        write(&tokens, name, token.as_bytes());
    }
    write(&tokens, "jwks", common::DEMO_JWKS.as_bytes());

    // uri: htu and path shapes.
    let uris = corpus.join("uri");
    for (i, u) in [
        "https://server.example.com/token",
        "HTTPS://Server.Example.COM:443/a/%7euser/b?q#f",
        "http://[::1]:8080/x/./y/../z",
        "/api/v1/%2F%2e%2E/x",
        "/a//b/%41%zz",
    ]
    .iter()
    .enumerate()
    {
        write(&uris, &format!("u{i}"), u.as_bytes());
    }

    // headers: the shapes a client sends.
    let headers = corpus.join("headers");
    let proof = vectors["rfc9449_figure2_proof"]["proof"]
        .as_str()
        .expect("figure 2 proof");
    write(
        &headers,
        "dpop",
        format!(
            "authorization: DPoP {}\ndpop: {proof}\n",
            common::ACCESS_TOKEN
        )
        .as_bytes(),
    );
    write(
        &headers,
        "bearer",
        format!("Authorization: Bearer {}\n", common::ACCESS_TOKEN).as_bytes(),
    );
    write(
        &headers,
        "two",
        format!("dpop: {proof}\ndpop: {proof}\nauthorization: dpop x\n").as_bytes(),
    );

    // config: the shipped files.
    let configs = corpus.join("config");
    let shipped = fs::read(root.join("config/gateway.yaml")).expect("config/gateway.yaml");
    write(&configs, "gateway.yaml", &shipped);
    println!("seeds written to {}", corpus.display());
}
