//! `dpop-gateway explain`: every check the gateway would run on a captured proof and token,
//! with the config's keys, algorithms and limits, each printed as PASS / FAIL (what was
//! compared) / SKIP. Reuses the request path's pure functions; the replay check needs the live
//! store and is always skipped.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::clock::UnixTime;
use crate::config::Config;
use crate::dpop::explain::{explain as explain_proof, Finding, Report};
use crate::dpop::ProofRequest;
use crate::jose::jws::CompactJws;
use crate::jose::PublicJwk;
use crate::route::Router;
use crate::server::{build_tokens, nonce_keys, proof_policy};
use crate::token::{self, Scheme};

/// What to explain.
#[derive(Clone, Debug)]
pub struct Input {
    /// The `DPoP` header value.
    pub proof: String,
    /// The access token, if any.
    pub token: Option<String>,
    /// The request method.
    pub method: String,
    /// The URL the client called.
    pub url: String,
    /// The time of the check.
    pub at: UnixTime,
}

/// Runs every check; the lines to print. `Err` when the config cannot be used.
pub async fn run(config: &Config, input: &Input) -> Result<Vec<Report>, String> {
    let policy = proof_policy(config);
    let request = ProofRequest {
        method: &input.method,
        htu: &input.url,
        access_token: input.token.as_deref(),
    };
    let mut out = explain_proof(&input.proof, &request, &policy, input.at);
    let claims = decode(&input.proof);

    // Nonce, when the route the URL names requires one.
    let path = input
        .url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("/");
    let router = Router::new(&config.routes, config.dpop.nonce.enabled);
    let nonce_required = router.find(path).is_some_and(|r| r.nonce);
    let nonce = if !nonce_required {
        Finding::Skipped("the route does not require a nonce".into())
    } else {
        let keys = nonce_keys(config).map_err(|e| e.to_string())?;
        let claim = claims
            .as_ref()
            .and_then(|(_, c)| c.get("nonce"))
            .and_then(Value::as_str);
        match keys.map(|k| k.check(claim, input.at)) {
            Some(Ok(status)) => Finding::Pass(format!("{status:?}")),
            Some(Err(e)) => Finding::Fail(e.to_string()),
            None => Finding::Fail("no dpop.nonce.secrets configured".into()),
        }
    };
    out.push(Report {
        check: "nonce",
        finding: nonce,
    });

    // The token and its binding to the proof's key.
    let Some(token) = input.token.as_deref() else {
        for check in ["token", "binding"] {
            out.push(Report {
                check,
                finding: Finding::Skipped("no --token given".into()),
            });
        }
        out.push(replay_skipped());
        return Ok(out);
    };
    let validator = Arc::new(build_tokens(&config.access_token).map_err(|e| e.to_string())?);
    if !validator.keys_loaded() {
        // Remote keys load in the background: give them a few seconds.
        for _ in 0..50 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if validator.keys_loaded() {
                break;
            }
        }
    }
    let info = validator.validate(token, input.at).await;
    let proof_jkt = claims
        .as_ref()
        .and_then(|(h, _)| h.get("jwk"))
        .and_then(Value::as_object)
        .and_then(|j| PublicJwk::from_json(j).ok())
        .map(|k| k.thumbprint());
    match info {
        Ok(info) => {
            out.push(Report {
                check: "token",
                finding: Finding::Pass(format!(
                    "valid for sub {}",
                    info.sub.as_deref().unwrap_or("-")
                )),
            });
            let binding = match token::check_binding(&info, Scheme::Dpop, proof_jkt, false) {
                Ok(()) => Finding::Pass(format!(
                    "cnf.jkt {}",
                    proof_jkt.map(|j| j.to_string()).unwrap_or_default()
                )),
                Err(e) => Finding::Fail(e.to_string()),
            };
            out.push(Report {
                check: "binding",
                finding: binding,
            });
        }
        Err(e) => {
            out.push(Report {
                check: "token",
                finding: Finding::Fail(e.to_string()),
            });
            out.push(Report {
                check: "binding",
                finding: Finding::Skipped("the token is not valid".into()),
            });
        }
    }
    out.push(replay_skipped());
    Ok(out)
}

fn replay_skipped() -> Report {
    Report {
        check: "replay",
        finding: Finding::Skipped("needs the live replay store; not checked here".into()),
    }
}

/// The proof's header and claims, if it decodes at all.
fn decode(proof: &str) -> Option<(Map<String, Value>, Map<String, Value>)> {
    let jws = CompactJws::parse(proof, usize::MAX).ok()?;
    Some((
        serde_json::from_slice(&jws.header).ok()?,
        serde_json::from_slice(&jws.payload).ok()?,
    ))
}

/// `PASS  htm        GET` lines.
pub fn render(reports: &[Report]) -> String {
    reports
        .iter()
        .map(|r| {
            let (tag, text) = match &r.finding {
                Finding::Pass(t) => ("PASS", t),
                Finding::Fail(t) => ("FAIL", t),
                Finding::Skipped(t) => ("SKIP", t),
            };
            format!("{tag}  {:<10} {text}\n", r.check)
        })
        .collect()
}
