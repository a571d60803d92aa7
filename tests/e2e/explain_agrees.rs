//! `dpop-gateway explain` agrees with the gateway: every refusal case of the proof, token and
//! nonce tests is sent to a running gateway (the explorer records which check failed), then the
//! same captured proof and token are run through `explain` with the same config file, which must
//! give the same verdict (status, reason) and name the same check first among its failures. The
//! replay check is the one `explain` cannot run (it needs the live store): its case is not here.

use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use dpop_gateway::jose::sign::{self, PrivateJwk};
use dpop_gateway::jose::Algorithm;
use serde_json::{json, Map, Value};

use crate::support::gateway::config_yaml;
use crate::support::{client, now, temp_dir, Options, TestGateway};

/// One refusal case: the proof is made from valid parts, then altered.
struct Case {
    name: &'static str,
    path: &'static str,
    /// The key that signs the proof (`false`: another key than the token's).
    own_key: bool,
    /// Alters the token's claims.
    token: fn(&mut Value),
    /// Alters the proof's header and claims.
    proof: fn(&mut Map<String, Value>, &mut Value),
    /// Alters the signed proof text.
    text: fn(String) -> String,
}

fn same_token(_: &mut Value) {}
fn same_proof(_: &mut Map<String, Value>, _: &mut Value) {}
fn same_text(p: String) -> String {
    p
}

fn cases() -> Vec<Case> {
    let base = Case {
        name: "",
        path: "/resource",
        own_key: true,
        token: same_token,
        proof: same_proof,
        text: same_text,
    };
    let c = |name, f: fn(&mut Map<String, Value>, &mut Value)| Case {
        name,
        proof: f,
        ..base_clone(&base)
    };
    vec![
        c("typ", |h, _| drop(h.insert("typ".into(), json!("JWT")))),
        c("jwk missing", |h, _| drop(h.remove("jwk"))),
        c("jti missing", |_, c| {
            drop(c.as_object_mut().unwrap().remove("jti"))
        }),
        c("htm", |_, c| c["htm"] = json!("POST")),
        c("htu other URL", |_, c| {
            c["htu"] = json!("https://elsewhere.example/resource")
        }),
        c("htu other port", |_, c| {
            let htu = c["htu"]
                .as_str()
                .unwrap()
                .replace("127.0.0.1:", "127.0.0.1:1");
            c["htu"] = json!(htu);
        }),
        c("iat stale", |_, c| c["iat"] = json!(now() - 600)),
        c("iat future", |_, c| c["iat"] = json!(now() + 600)),
        c("ath missing", |_, c| {
            drop(c.as_object_mut().unwrap().remove("ath"))
        }),
        c("ath other token", |_, c| {
            c["ath"] = json!(sign::ath("another-token"))
        }),
        Case {
            name: "signature",
            text: |p| {
                let (rest, sig) = p.rsplit_once('.').unwrap();
                let mut sig = B64.decode(sig).unwrap();
                sig[0] ^= 1;
                format!("{rest}.{}", B64.encode(sig))
            },
            ..base_clone(&base)
        },
        Case {
            name: "stolen token, another key",
            own_key: false,
            ..base_clone(&base)
        },
        Case {
            name: "token expired",
            token: |t| t["exp"] = json!(now() - 3600),
            ..base_clone(&base)
        },
        Case {
            name: "token audience",
            token: |t| t["aud"] = json!("https://other.example.com"),
            ..base_clone(&base)
        },
        Case {
            name: "token unbound",
            token: |t| drop(t.as_object_mut().unwrap().remove("cnf")),
            ..base_clone(&base)
        },
        Case {
            name: "nonce missing",
            path: "/nonce/x",
            ..base_clone(&base)
        },
    ]
}

fn base_clone(b: &Case) -> Case {
    Case {
        name: b.name,
        path: b.path,
        own_key: b.own_key,
        token: b.token,
        proof: b.proof,
        text: b.text,
    }
}

/// `(reason, first failing check)` of `explain`'s output.
fn explained(out: &std::process::Output) -> (String, String) {
    let text = String::from_utf8_lossy(&out.stdout);
    let first_fail = text
        .lines()
        .find(|l| l.starts_with("FAIL"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no FAIL line:\n{text}"))
        .to_owned();
    let verdict = text
        .lines()
        .find(|l| l.starts_with("=>"))
        .unwrap_or_else(|| panic!("no verdict:\n{text}"));
    let reason = verdict
        .split_once('(')
        .and_then(|(_, r)| r.split_once(')'))
        .map(|(r, _)| r.to_owned())
        .unwrap_or_else(|| panic!("no reason in {verdict}"));
    (reason, first_fail)
}

#[tokio::test]
async fn explain_names_the_check_the_gateway_refused_on() {
    let opts = Options {
        routes: r#"
  - { path_prefix: "/nonce", auth: dpop, nonce: true }
  - { path_prefix: "/", auth: dpop }"#
            .into(),
        dpop: "nonce:\n  secrets: [\"0123456789abcdef0123456789abcdef-nonce\"]".into(),
        extra: "explorer:\n  enabled: true\n  decisions: 100\n".into(),
        ..Options::default()
    };
    let gw = TestGateway::start_with(opts.clone()).await;
    let config = temp_dir("explain-agrees").join("gateway.yaml");
    std::fs::write(&config, config_yaml(&opts, &gw.upstream, &gw.issuer)).unwrap();
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let thief = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let mut last_id = 0;
    let mut seen = Vec::new();
    for case in cases() {
        let mut claims = gw.issuer.claims(Some(key.thumbprint().to_string()));
        (case.token)(&mut claims);
        let token = gw.issuer.sign(&claims);
        let signer = if case.own_key { &key } else { &thief };
        let url = gw.url(case.path);
        let mut header = Map::new();
        header.insert("typ".into(), json!("dpop+jwt"));
        header.insert("jwk".into(), Value::Object(signer.public_jwk()));
        let mut proof_claims = json!({
            "jti": sign::random_jti(), "htm": "GET", "htu": url, "iat": now(),
            "ath": sign::ath(&token),
        });
        (case.proof)(&mut header, &mut proof_claims);
        let proof = (case.text)(signer.sign_jws(header, &proof_claims).unwrap());

        let resp = gw
            .call("GET", case.path)
            .dpop_token(&token)
            .proof(&proof)
            .send()
            .await;
        assert_eq!(resp.status(), 401, "{}: {:?}", case.name, resp.body());
        let doc = client::admin_get(
            gw.admin_addr,
            &format!("/explorer/decisions.json?after={last_id}"),
        )
        .await;
        let doc: Value = serde_json::from_slice(doc.body()).unwrap();
        let decision = &doc["decisions"][0];
        last_id = decision["id"].as_u64().unwrap();
        let gateway_reason = decision["reason"].as_str().unwrap().to_owned();
        let gateway_check = decision["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["status"] == "fail")
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .unwrap();

        let out = Command::new(env!("CARGO_BIN_EXE_dpop-gateway"))
            .arg("explain")
            .arg("-c")
            .arg(&config)
            .args([
                "--proof", &proof, "--token", &token, "--method", "GET", "--url", &url,
            ])
            .args(["--at", &now().to_string()])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}: explain must fail",
            case.name
        );
        let (reason, check) = explained(&out);
        assert_eq!(
            (reason.as_str(), check.as_str()),
            (gateway_reason.as_str(), gateway_check.as_str()),
            "{}: explain vs gateway\n{}",
            case.name,
            String::from_utf8_lossy(&out.stdout)
        );
        seen.push(format!("{}: {gateway_check} ({gateway_reason})", case.name));
    }
    assert!(
        gw.upstream.requests().is_empty(),
        "no refused request reached it"
    );
    eprintln!("explain agrees on:\n  {}", seen.join("\n  "));
    gw.shutdown().await;
}
