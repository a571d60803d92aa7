//! `dpop-gateway explain`: every check the gateway would run on a captured proof and token,
//! with the config's keys, algorithms and limits, each printed as PASS / FAIL (what was
//! compared) / SKIP, then the gateway's own verdict.
//!
//! The verdict is the request path's: the captured request is turned into a request head and
//! run through `pipeline::verify` with a [`State`] built from the config, exactly as the
//! listener would, at the `--at` time. The per-check lines come from the same verifier's
//! policy and the same token validator, run to the end instead of stopping at the first
//! failure. The replay check needs the live store and is always skipped.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::clock::{FixedClock, UnixTime};
use crate::config::{Config, ReplayBackend};
use crate::dpop::explain::{explain as explain_proof, Finding, Report};
use crate::dpop::ProofRequest;
use crate::jose::jws::CompactJws;
use crate::jose::PublicJwk;
use crate::metrics::Metrics;
use crate::pipeline;
use crate::refusal::Refusal;
use crate::request_uri;
use crate::route::Found;
use crate::state::{ConnMeta, State};
use crate::token::{self, Scheme, TokenCheck, TokenFailure};

/// What to explain.
#[derive(Clone, Debug)]
pub(crate) struct Input {
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

/// The report: every check's line, and the request path's verdict.
#[derive(Clone, Debug)]
pub(crate) struct Explanation {
    /// One line per check.
    pub reports: Vec<Report>,
    /// What the gateway would answer (the replay check aside).
    pub verdict: Verdict,
}

/// What the gateway would do with the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every check but replay passed: it would be forwarded (once).
    Accepted,
    /// Refused, as a client would see it.
    Refused {
        /// The status.
        status: u16,
        /// The `error` code.
        code: &'static str,
        /// The metric reason: the check that failed.
        reason: &'static str,
        /// The `error_description`.
        description: String,
    },
}

/// Whether `route` checks issuers, scopes or claims.
fn has_policy(route: &crate::route::Route) -> bool {
    route.issuers.is_some() || !route.require.scopes.is_empty() || !route.require.claims.is_empty()
}

/// Runs every check; `Err` when the config or the input cannot be used.
pub(crate) async fn run(config: &Config, input: &Input) -> Result<Explanation, String> {
    // The replay store is never consulted: a memory one keeps explain off the network.
    let mut config = config.clone();
    config.replay_cache.backend = ReplayBackend::Memory { capacity: 1 };
    let metrics = Metrics::new().map_err(|e| format!("metrics: {e}"))?;
    let clock = Arc::new(FixedClock::new(input.at));
    let state = State::from_config(&config, clock, metrics)
        .await
        .map_err(|e| e.to_string())?;
    let (head, conn) = request_head(input)?;
    if input.token.is_some() && !state.tokens.keys_loaded() {
        // Remote keys load in the background: give them a few seconds.
        for _ in 0..50 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if state.tokens.keys_loaded() {
                break;
            }
        }
    }

    // The route of the path the pipeline would normalise it to (step 1).
    let path = crate::uri::canonical_path(head.uri.path(), state.encoded_slashes)
        .map_or_else(|_| head.uri.path().to_owned(), std::borrow::Cow::into_owned);
    let (route, method_refusal) = match state.router.find_for(&path, Some(&head.method)) {
        Found::Route(route) => (route, None),
        Found::MethodNotAllowed { first, group } => (
            first,
            Some(Refusal::MethodNotAllowed {
                allow: group.allow(),
            }),
        ),
    };
    let htu = request_uri::request_uri(&state.uri_policy, conn.scheme, &head)
        .unwrap_or_else(|| input.url.clone());
    let request = ProofRequest {
        method: &input.method,
        htu: &htu,
        access_token: input.token.as_deref(),
    };
    let mut reports = explain_proof(&input.proof, &request, state.proofs.policy(), input.at);
    let verdict = pipeline::verify(&state, route, &head, conn, input.at).await;

    reports.push(Report {
        check: "nonce",
        finding: match (&verdict, route.nonce) {
            (_, false) => Finding::Skipped("the route does not require a nonce".into()),
            (Err(Refusal::UseNonce(e)), true) => Finding::Fail(e.to_string()),
            (Err(Refusal::Proof(_) | Refusal::ProofMissing), true) => {
                Finding::Skipped("checked after the proof, which failed".into())
            }
            (_, true) => Finding::Pass("a valid server nonce".into()),
        },
    });
    token_reports(&state, input, &mut reports).await;
    reports.push(Report {
        check: "identity",
        finding: match &verdict {
            Err(refusal @ Refusal::IdentityClaim(_)) => Finding::Fail(refusal.description()),
            Ok(_) | Err(Refusal::Policy(_)) => {
                Finding::Pass("the identity headers' claims are clean field values".into())
            }
            Err(_) => Finding::Skipped("not reached: an earlier check failed".into()),
        },
    });
    reports.push(Report {
        check: "policy",
        finding: match &verdict {
            Err(refusal @ Refusal::Policy(_)) => Finding::Fail(refusal.description()),
            Ok(_) if has_policy(route) => {
                Finding::Pass("the route's issuers, scopes and claims are granted".into())
            }
            Ok(_) => Finding::Skipped("the route has no issuers or require".into()),
            Err(_) => Finding::Skipped("not reached: an earlier check failed".into()),
        },
    });
    reports.push(Report {
        check: "method",
        finding: match &method_refusal {
            Some(refusal) => Finding::Fail(refusal.description()),
            None => Finding::Pass(format!(
                "{} is taken by route {}",
                head.method,
                route.label()
            )),
        },
    });
    reports.push(Report {
        check: "replay",
        finding: Finding::Skipped("needs the live replay store; not checked here".into()),
    });
    // The pipeline refuses the method before any other check.
    let verdict = match method_refusal.map_or(verdict.map(|_| ()), Err) {
        Ok(()) => Verdict::Accepted,
        Err(refusal) => {
            let parts = refusal.parts();
            Verdict::Refused {
                status: parts.status.as_u16(),
                code: parts.code.as_str(),
                reason: parts.reason.as_str(),
                description: refusal.description(),
            }
        }
    };
    Ok(Explanation { reports, verdict })
}

/// The captured request as the listener would hand it to the pipeline: absolute-form target,
/// `Authorization: DPoP <token>`, `DPoP: <proof>`.
fn request_head(input: &Input) -> Result<(http::request::Parts, ConnMeta), String> {
    let uri: http::Uri = input
        .url
        .parse()
        .map_err(|e| format!("--url {}: {e}", input.url))?;
    let scheme = match uri.scheme_str() {
        Some("https") => "https",
        Some("http") => "http",
        _ => return Err(format!("--url {}: not an http(s) URL", input.url)),
    };
    // An HTTP/1.1 client sends the target's authority as `Host` too (RFC 9112 §3.2).
    let host = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    let mut req = http::Request::builder()
        .method(input.method.as_str())
        .uri(uri)
        .header(http::header::HOST, host)
        .header("dpop", input.proof.as_str());
    if let Some(t) = &input.token {
        req = req.header(http::header::AUTHORIZATION, format!("DPoP {t}"));
    }
    let (parts, ()) = req
        .body(())
        .map_err(|e| format!("the request cannot be built: {e}"))?
        .into_parts();
    let conn = ConnMeta {
        remote: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        scheme,
    };
    Ok((parts, conn))
}

/// The token and its binding to the proof's key, each checked on its own (the token by the
/// gateway's validator, the binding by the pipeline's rule).
async fn token_reports(state: &State, input: &Input, out: &mut Vec<Report>) {
    let Some(token) = input.token.as_deref() else {
        for check in ["token", "binding"] {
            out.push(Report {
                check,
                finding: Finding::Skipped("no --token given".into()),
            });
        }
        return;
    };
    let proof_jkt = decode(&input.proof)
        .and_then(|(h, _)| h.get("jwk").and_then(Value::as_object).cloned())
        .and_then(|j| PublicJwk::from_json(&j).ok())
        .map(|k| k.thumbprint());
    match state.tokens.validate(token, input.at).await {
        Ok(info) => {
            out.push(Report {
                check: "token",
                finding: Finding::Pass(format!(
                    "valid for sub {}",
                    info.sub.as_deref().unwrap_or("-")
                )),
            });
            let token_jkt = info
                .jkt
                .map_or_else(|| "none".to_owned(), |j| j.to_string());
            let proof_jkt_text = proof_jkt.map_or_else(|| "none".to_owned(), |j| j.to_string());
            let binding = match token::check_binding(&info, Scheme::Dpop, proof_jkt, false) {
                Ok(()) => Finding::Pass(format!("cnf.jkt {token_jkt}")),
                Err(e) => Finding::Fail(format!(
                    "{e}: token cnf.jkt {token_jkt}, proof key {proof_jkt_text}"
                )),
            };
            out.push(Report {
                check: "binding",
                finding: binding,
            });
        }
        Err(TokenFailure::Unavailable(why)) => {
            out.push(Report {
                check: "token",
                finding: Finding::Fail(format!("the token service is unavailable: {why}")),
            });
            out.push(Report {
                check: "binding",
                finding: Finding::Skipped("the token could not be checked".into()),
            });
        }
        Err(TokenFailure::Invalid(e)) => {
            let binding = matches!(e.check(), TokenCheck::Binding | TokenCheck::Downgrade);
            out.push(Report {
                check: if binding { "binding" } else { "token" },
                finding: Finding::Fail(e.to_string()),
            });
            if !binding {
                out.push(Report {
                    check: "binding",
                    finding: Finding::Skipped("the token is not valid".into()),
                });
            }
        }
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

/// `PASS  htm        GET` lines, then the verdict.
pub(crate) fn render(explanation: &Explanation) -> String {
    let mut out: String = explanation
        .reports
        .iter()
        .map(|r| {
            let (tag, text) = match &r.finding {
                Finding::Pass(t) => ("PASS", t),
                Finding::Fail(t) => ("FAIL", t),
                Finding::Skipped(t) => ("SKIP", t),
            };
            format!("{tag}  {:<10} {text}\n", r.check)
        })
        .collect();
    match &explanation.verdict {
        Verdict::Accepted => {
            out.push_str("=>    accepted: the gateway would forward it (once: replay aside)\n")
        }
        Verdict::Refused {
            status,
            code,
            reason,
            description,
        } => out.push_str(&format!(
            "=>    refused: {status} {code} ({reason}): {description}\n"
        )),
    }
    out
}

impl Explanation {
    /// Whether the gateway would refuse the request, or any check failed.
    pub(crate) fn failed(&self) -> bool {
        self.verdict != Verdict::Accepted
            || self
                .reports
                .iter()
                .any(|r| matches!(r.finding, Finding::Fail(_)))
    }
}
