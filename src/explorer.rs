//! The live decision explorer (`explorer.enabled`): the last `explorer.decisions` requests the
//! gateway decided, each with its route, outcome and reason, the proof's header and claims and
//! the token's claims as decoded (signatures and token strings never kept), every check with
//! what was expected and what the request carried, and its timing. Served on the admin
//! listener: `/explorer` (a self-contained page), `/explorer/decisions.json` (filters
//! `outcome`, `reason`, `jkt`, `after`).
//!
//! Recording happens in `pipeline::handle`, beside the access log: `Explorer::capture` right
//! after `authorize` (while the request head is still there), `Pending::finish` once the
//! response is known. With the explorer off, `State::explorer` is `None` and that is the only
//! branch the request path takes. On, the request path only copies: the proof's and the
//! token's first two segments base64url-decoded (never a signature, so never a usable proof
//! or token), the token's SHA-256, the verified key's thumbprint, the computed `htu`, the
//! outcome as enums and numbers, each bounded (`MAX_KEPT_JWS`, `MAX_KEPT_STR`). Parsing
//! the JSON, trimming it and writing the checks' expected and actual text happen when
//! `/explorer/decisions.json` is read, outside the ring's lock.
//!
//! Which check failed is the gateway's own decision (its `Reason`), not a second opinion: the
//! checks before it in the pipeline's order passed, the ones after it were not reached. The
//! expected and actual values are read from the request as the gateway read it (the `htu` it
//! computed, the method, the proof's claims, the token's `cnf.jkt`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::body::{self, GatewayBody};
use crate::config::AuthMode;
use crate::jose::{PublicJwk, Thumbprint, B64};
use crate::pipeline::{Access, Decision};
use crate::refusal::{Reason, Refusal};
use crate::request_uri;
use crate::state::{ConnMeta, State};
use crate::token::TokenCheck;

/// The page, its script and its style: no external assets (the page works offline).
const PAGE_HTML: &str = include_str!("explorer/page.html");
const PAGE_JS: &str = include_str!("explorer/page.js");
const PAGE_CSS: &str = include_str!("explorer/page.css");
const ICON_SVG: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">\
     <rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#176d2c\"/></svg>";

/// The page's Content-Security-Policy: nothing but this listener's own script, style and JSON.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Longest string kept from a decoded proof or token (longer ones are cut, with `…`).
const MAX_STRING: usize = 200;
/// Most members of an object or items of an array kept.
const MAX_ITEMS: usize = 32;
/// Deepest nesting kept.
const MAX_DEPTH: usize = 4;
/// Most bytes kept of a proof's or token's decoded header and claims together: a larger one
/// is trimmed (as shown) when it is recorded, and dropped if it is still larger.
const MAX_KEPT_JWS: usize = 8192;
/// Most bytes kept of the request path, the computed `htu` and a refusal's description.
const MAX_KEPT_STR: usize = 4 * MAX_STRING + 4;

/// The ring buffer of the last decisions.
pub(crate) struct Explorer {
    ring: Mutex<VecDeque<Arc<Kept>>>,
    capacity: usize,
    next_id: AtomicU64,
}

/// One decision as the explorer shows it (rendered from a [`Kept`] when read).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Record {
    /// Increasing from 1 (the page asks for what came after the newest it has).
    pub id: u64,
    /// Unix time of the decision.
    pub at: u64,
    /// The request method.
    pub method: String,
    /// The request path as routed (normalised; the query is never kept).
    pub path: String,
    /// The matched route's prefix.
    pub route: String,
    /// `forwarded`, `local` or the refusal's `error` code (the metric `outcome`).
    pub outcome: &'static str,
    /// The metric reason (`none` unless refused).
    pub reason: &'static str,
    /// The response status.
    pub status: u16,
    /// The refusal's `error_description`, as the client got it.
    pub description: Option<String>,
    /// The proof key's RFC 7638 thumbprint.
    pub jkt: Option<String>,
    /// Whether `jkt` is the key whose signature verified (else read from the proof's header).
    pub jkt_verified: bool,
    /// Time in the gateway, microseconds (until the response head).
    pub duration_us: u64,
    /// Of which the upstream exchange.
    pub upstream_us: Option<u64>,
    /// The proof's header and claims (no signature).
    pub proof: Option<Decoded>,
    /// The token's header and claims (no signature, never the token itself).
    pub token: Option<Decoded>,
    /// Every check, in the pipeline's order.
    pub checks: Vec<Check>,
}

/// A decoded JWS: header and claims, bounded in size.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Decoded {
    /// The JOSE header.
    pub header: Value,
    /// The claims (`null` when they are not JSON).
    pub claims: Value,
}

/// One check of a decision.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Check {
    /// The check's name (for proof checks, the metric reason).
    pub name: &'static str,
    /// `pass`, `fail`, `skipped` (not applicable) or `not_reached` (an earlier check failed).
    pub status: &'static str,
    /// What the gateway expected, where it compares a value.
    pub expected: Option<String>,
    /// What the request carried.
    pub actual: Option<String>,
}

/// A decision being recorded: what was copied from the request head, before the response.
/// Only copies (bounded: [`MAX_KEPT_JWS`], [`MAX_KEPT_STR`]): nothing is parsed, formatted
/// or hashed into text until the decision is read.
pub(crate) struct Pending {
    at: u64,
    method: Method,
    path: Box<str>,
    route: Box<str>,
    open: Option<&'static str>,
    description: Option<Box<str>>,
    scheme: Option<&'static str>,
    route_nonce: bool,
    proof_bytes: Option<usize>,
    proof: Option<Segments>,
    token: Option<Segments>,
    /// The key whose signature verified.
    signed_by: Option<Thumbprint>,
    htu: Option<Box<str>>,
    /// SHA-256 of the token (what `ath` must be), when it is not `ath_as_claimed`.
    ath_expected: Option<[u8; 32]>,
    /// The request was authorized: a proof's `ath` was checked and is the token's hash, so
    /// the token need not be hashed again.
    ath_as_claimed: bool,
    limits: Limits,
}

/// A compact JWS's first two segments, base64url-decoded (the JSON bytes as sent, not
/// parsed): never the signature, so never a usable proof or token.
enum Segments {
    /// The header's bytes, then the claims'.
    Json { bytes: Box<[u8]>, header_len: usize },
    /// Larger than [`MAX_KEPT_JWS`] even trimmed: only its decoded size is kept.
    TooLarge(usize),
}

/// A recorded decision: its [`Pending`] and its answer.
struct Kept {
    id: u64,
    seen: Pending,
    outcome: (&'static str, &'static str),
    failed: Option<Reason>,
    status: StatusCode,
    duration_us: u64,
    upstream_us: Option<u64>,
}

/// A decision's request, decoded for showing: what [`View::checks`] compares.
struct View {
    at: u64,
    method: String,
    path: String,
    open: Option<&'static str>,
    scheme: Option<&'static str>,
    route_nonce: bool,
    proof_bytes: Option<usize>,
    proof: Option<Decoded>,
    token: Option<Decoded>,
    jkt: Option<String>,
    htu: Option<String>,
    ath_expected: Option<String>,
    token_jkt: Option<String>,
    limits: Limits,
}

/// The proof policy's numbers, as the explorer shows them.
#[derive(Clone, Copy)]
struct Limits {
    max_age: u64,
    clock_skew: u64,
    max_proof_bytes: usize,
    require_ath: bool,
}

// === impl Explorer ===

impl Explorer {
    /// An explorer keeping the last `capacity` decisions (at least one).
    pub(crate) fn new(capacity: usize) -> Explorer {
        let capacity = capacity.max(1);
        Explorer {
            ring: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
            next_id: AtomicU64::new(1),
        }
    }

    /// Copies what the explorer shows from the request head `authorize` decided on (its path
    /// normalised). The token string is hashed and its claims copied, and not kept itself.
    pub(crate) fn capture(
        &self,
        state: &State,
        head: &Parts,
        conn: ConnMeta,
        decision: &Decision<'_>,
    ) -> Pending {
        let policy = state.proofs.policy();
        let route = decision.route;
        let mut p = Pending {
            at: state.clock.now().as_secs(),
            method: head.method.clone(),
            path: capped(head.uri.path()),
            route: route.label().into(),
            open: None,
            description: None,
            scheme: None,
            route_nonce: route.nonce,
            proof_bytes: None,
            proof: None,
            token: None,
            signed_by: decision.signed_by.map(|s| s.jkt()),
            htu: None,
            ath_expected: None,
            ath_as_claimed: matches!(decision.result, Ok(Access::Authorized(_))),
            limits: Limits {
                max_age: policy.max_age,
                clock_skew: policy.clock_skew,
                max_proof_bytes: policy.max_proof_bytes,
                require_ath: policy.require_ath,
            },
        };
        match &decision.result {
            Ok(Access::Local(_)) => p.open = Some("answered by the gateway"),
            Ok(Access::Open) if route.auth == AuthMode::None => {
                p.open = Some("auth: none route: forwarded without checks")
            }
            Ok(Access::Open) => p.open = Some("CORS preflight: forwarded without checks"),
            Ok(Access::Preflight(_)) => p.open = Some("CORS preflight: answered by the gateway"),
            Ok(Access::Authorized(_)) => {}
            Err(refusal) => p.refused(refusal),
        }
        if p.open.is_some() {
            return p;
        }
        if let Some(proof) = single_str(head, "dpop") {
            p.proof_bytes = Some(proof.len());
            p.proof = Segments::of(proof);
        }
        if let Some(auth) = single_str(head, "authorization") {
            let (scheme, token) = auth.split_once(' ').unwrap_or((auth, ""));
            let token = token.trim_start_matches(' ');
            p.scheme = if scheme.eq_ignore_ascii_case("dpop") {
                Some("DPoP")
            } else if scheme.eq_ignore_ascii_case("bearer") {
                Some("Bearer")
            } else {
                None
            };
            if p.scheme.is_some() && !token.is_empty() {
                if !p.ath_as_claimed {
                    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
                    p.ath_expected = digest.as_ref().try_into().ok();
                }
                p.token = Segments::of(token);
            }
        }
        p.htu = request_uri::request_uri(&state.uri_policy, conn.scheme, head).map(|u| capped(&u));
        p
    }

    /// Appends `kept`, dropping the oldest past capacity (freed after the lock is let go).
    fn push(&self, mut kept: Kept) {
        kept.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let kept = Arc::new(kept);
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let oldest = (ring.len() >= self.capacity)
            .then(|| ring.pop_front())
            .flatten();
        ring.push_back(kept);
        drop(ring);
        drop(oldest);
    }

    /// The kept decisions matching `filter`, newest first, rendered (outside the lock).
    pub(crate) fn decisions(&self, filter: &Filter) -> Vec<Record> {
        let kept: Vec<Arc<Kept>> = {
            let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
            ring.iter()
                .rev()
                .filter(|k| filter.matches_head(k.id, k.outcome.0, k.outcome.1))
                .cloned()
                .collect()
        };
        kept.iter()
            .map(|k| k.render())
            .filter(|r| filter.matches(r))
            .collect()
    }

    /// The admin listener's answer for a path under `/explorer`.
    pub(crate) fn respond(explorer: Option<&Explorer>, uri: &http::Uri) -> Response<GatewayBody> {
        let Some(explorer) = explorer else {
            return plain(
                StatusCode::NOT_FOUND,
                "the explorer is off (explorer.enabled)\n",
            );
        };
        match uri.path() {
            "/explorer" | "/explorer/" => asset(PAGE_HTML, "text/html; charset=utf-8"),
            "/explorer/app.js" => asset(PAGE_JS, "text/javascript; charset=utf-8"),
            "/explorer/app.css" => asset(PAGE_CSS, "text/css; charset=utf-8"),
            "/explorer/icon.svg" => asset(ICON_SVG, "image/svg+xml"),
            "/explorer/decisions.json" => {
                let filter = Filter::parse(uri.query().unwrap_or(""));
                let doc = serde_json::json!({
                    "capacity": explorer.capacity,
                    "decisions": explorer.decisions(&filter),
                });
                asset(doc.to_string(), "application/json")
            }
            _ => plain(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

// === impl Pending ===

impl Pending {
    /// Notes a refusal (made by `authorize`, or after `capture` by the upstream step).
    pub(crate) fn refused(&mut self, refusal: &Refusal) {
        self.description = Some(capped(&refusal.description()));
    }

    /// Records the decision with its final answer.
    pub(crate) fn finish(
        self,
        explorer: &Explorer,
        outcome: (&'static str, &'static str),
        failed: Option<Reason>,
        status: StatusCode,
        elapsed: Duration,
        upstream: Option<Duration>,
    ) {
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        explorer.push(Kept {
            id: 0,
            seen: self,
            outcome,
            failed,
            status,
            duration_us: micros(elapsed),
            upstream_us: upstream.map(micros),
        });
    }

    /// What was copied, decoded for showing.
    fn view(&self) -> View {
        let proof = self.proof.as_ref().and_then(Segments::decode);
        let token = self.token.as_ref().and_then(Segments::decode);
        let jkt = match self.signed_by {
            Some(k) => Some(k.to_string()),
            None => proof
                .as_ref()
                .and_then(|d| d.header.get("jwk"))
                .and_then(Value::as_object)
                .and_then(|j| PublicJwk::from_json(j).ok())
                .map(|k| k.thumbprint().to_string()),
        };
        let token_jkt = token
            .as_ref()
            .and_then(|d| d.claims.get("cnf"))
            .and_then(|c| c.get("jkt"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let ath_expected = if self.ath_as_claimed {
            proof
                .as_ref()
                .and_then(|d| d.claims.get("ath"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        } else {
            self.ath_expected.map(|d| B64.encode(d))
        };
        View {
            at: self.at,
            method: self.method.as_str().to_owned(),
            path: bounded_str(&self.path),
            open: self.open,
            scheme: self.scheme,
            route_nonce: self.route_nonce,
            proof_bytes: self.proof_bytes,
            proof,
            token,
            jkt,
            htu: self.htu.as_deref().map(str::to_owned),
            ath_expected,
            token_jkt,
            limits: self.limits,
        }
    }
}

// === impl Segments ===

impl Segments {
    /// The decoded header and claims of `jws` if it is a compact JWS (three segments, the
    /// first two base64url), bounded; `None` otherwise (an opaque token).
    fn of(jws: &str) -> Option<Segments> {
        let mut parts = jws.split('.');
        let (h, c, _sig) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let estimate =
            base64::decoded_len_estimate(h.len()) + base64::decoded_len_estimate(c.len());
        if estimate > MAX_KEPT_JWS {
            return Segments::trimmed(jws);
        }
        let mut bytes = Vec::with_capacity(estimate);
        B64.decode_vec(h, &mut bytes).ok()?;
        let header_len = bytes.len();
        // Claims that are not base64url show as `null`, as claims that are not JSON do.
        if B64.decode_vec(c, &mut bytes).is_err() {
            bytes.truncate(header_len);
        }
        Some(Segments::Json {
            bytes: bytes.into_boxed_slice(),
            header_len,
        })
    }

    /// A JWS too large to keep as sent: decoded and trimmed now, as it would be shown
    /// (`None` when its header is not a JSON object, as [`Segments::decode`] would find).
    fn trimmed(jws: &str) -> Option<Segments> {
        let d = decode_jws(jws)?;
        let mut bytes = d.header.to_string().into_bytes();
        let header_len = bytes.len();
        if !d.claims.is_null() {
            bytes.extend_from_slice(d.claims.to_string().as_bytes());
        }
        if bytes.len() > MAX_KEPT_JWS {
            return Some(Segments::TooLarge(bytes.len()));
        }
        Some(Segments::Json {
            bytes: bytes.into_boxed_slice(),
            header_len,
        })
    }

    /// The header and claims as shown, bounded; `None` when the header is not a JSON object.
    fn decode(&self) -> Option<Decoded> {
        match self {
            Segments::Json { bytes, header_len } => {
                let (h, c) = bytes.split_at((*header_len).min(bytes.len()));
                decode_json(h, c)
            }
            Segments::TooLarge(n) => Some(Decoded {
                header: Value::String(format!(
                    "not kept: {n} bytes, more than the explorer keeps ({MAX_KEPT_JWS})"
                )),
                claims: Value::Null,
            }),
        }
    }
}

// === impl Kept ===

impl Kept {
    /// The decision as shown.
    fn render(&self) -> Record {
        let p = &self.seen;
        let view = p.view();
        let checks = view.checks(self.failed, self.status);
        Record {
            id: self.id,
            at: p.at,
            method: view.method,
            path: view.path,
            route: p.route.to_string(),
            outcome: self.outcome.0,
            reason: self.outcome.1,
            status: self.status.as_u16(),
            description: p.description.as_deref().or(p.open).map(str::to_owned),
            jkt: view.jkt,
            jkt_verified: p.signed_by.is_some(),
            duration_us: self.duration_us,
            upstream_us: self.upstream_us,
            proof: view.proof,
            token: view.token,
            checks,
        }
    }
}

// === impl View ===

impl View {
    /// Every check in the pipeline's order; the failed one is the gateway's reason.
    fn checks(&self, failed: Option<Reason>, status: StatusCode) -> Vec<Check> {
        if self.open.is_some() {
            return Vec::new();
        }
        let bearer = self.scheme == Some("Bearer");
        let failed_at = failed.map(|r| failed_check(r, bearer));
        let claim = |name: &str| -> Option<String> {
            let v = self.proof.as_ref()?.claims.get(name)?;
            Some(match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        };
        let header = |name: &str| -> Option<String> {
            let v = self.proof.as_ref()?.header.get(name)?;
            Some(match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        };
        let token_claim = |name: &str| -> Option<String> {
            let v = self.token.as_ref()?.claims.get(name)?;
            Some(match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        };
        let l = self.limits;
        let iat_actual = self
            .proof
            .as_ref()
            .and_then(|p| p.claims.get("iat"))
            .and_then(Value::as_i64)
            .map(|iat| {
                let age = i64::try_from(self.at).unwrap_or(i64::MAX) - iat;
                format!("{iat} (age {age} s)")
            })
            .or_else(|| claim("iat"));
        let no_proof = bearer.then_some("a Bearer request's proof is not used");
        let token_actual = self.token.as_ref().map(|_| {
            let exp = self
                .token
                .as_ref()
                .and_then(|t| t.claims.get("exp"))
                .and_then(Value::as_i64)
                .map(|e| format!(", exp in {} s", e - i64::try_from(self.at).unwrap_or(0)))
                .unwrap_or_default();
            format!(
                "iss {}, aud {}{exp}",
                token_claim("iss").unwrap_or_else(|| "-".into()),
                token_claim("aud").unwrap_or_else(|| "-".into())
            )
        });
        // (name, expected, actual, not applicable because)
        let rows: Vec<Row<'_>> = vec![
            (
                "request",
                None,
                Some(format!("{} {}", self.method, self.path)),
                None,
            ),
            (
                "method",
                Some("a method the route takes".into()),
                Some(self.method.clone()),
                None,
            ),
            (
                "credentials",
                Some("Authorization: DPoP <token> and one DPoP proof".into()),
                Some(format!(
                    "Authorization: {}, DPoP: {}",
                    self.scheme.unwrap_or("none"),
                    self.proof_bytes
                        .map_or_else(|| "none".to_owned(), |n| format!("{n} bytes"))
                )),
                None,
            ),
            (
                "size",
                Some(format!("at most {} bytes", l.max_proof_bytes)),
                self.proof_bytes.map(|n| format!("{n} bytes")),
                no_proof,
            ),
            ("syntax", Some("a compact JWS".into()), None, no_proof),
            ("typ", Some("dpop+jwt".into()), header("typ"), no_proof),
            ("alg", None, header("alg"), no_proof),
            (
                "jwk",
                Some("a public key".into()),
                self.jkt.as_ref().map(|j| format!("thumbprint {j}")),
                no_proof,
            ),
            (
                "signature",
                Some("valid, by the jwk".into()),
                None,
                no_proof,
            ),
            ("jti", Some("a unique id".into()), claim("jti"), no_proof),
            ("htm", Some(self.method.clone()), claim("htm"), no_proof),
            ("htu", self.htu.clone(), claim("htu"), no_proof),
            (
                "iat",
                Some(format!(
                    "between {} and {} (now {}, proof_max_age {} s, clock_skew {} s)",
                    self.at.saturating_sub(l.max_age),
                    self.at + l.clock_skew,
                    self.at,
                    l.max_age,
                    l.clock_skew
                )),
                iat_actual,
                no_proof,
            ),
            (
                "ath",
                self.ath_expected.clone(),
                claim("ath"),
                no_proof.or((!l.require_ath && claim("ath").is_none()).then_some("not required")),
            ),
            (
                "nonce",
                Some("a nonce this gateway issued, still fresh".into()),
                Some(claim("nonce").unwrap_or_else(|| "none".into())),
                no_proof.or((!self.route_nonce).then_some("the route does not require a nonce")),
            ),
            ("token", None, token_actual, None),
            (
                "binding",
                self.token_jkt.clone().map(|j| format!("cnf.jkt {j}")),
                self.jkt.clone().map(|j| format!("proof key {j}")),
                None,
            ),
            (
                "identity",
                None,
                token_claim("sub").map(|s| format!("sub {s}")),
                None,
            ),
            (
                "policy",
                Some("the route's issuers, require.scopes and require.claims".into()),
                token_claim("scope").map(|s| format!("scope {s}")),
                None,
            ),
            (
                "replay",
                Some("a jti not seen within the proof's window".into()),
                claim("jti"),
                no_proof,
            ),
            (
                "upstream",
                None,
                (failed.is_none() || failed_at == Some("upstream"))
                    .then(|| format!("status {}", status.as_u16())),
                None,
            ),
        ];
        let fail_index = failed_at.and_then(|f| rows.iter().position(|r| r.0 == f));
        rows.into_iter()
            .enumerate()
            .map(|(i, (name, expected, actual, skip))| {
                let status = match fail_index {
                    Some(f) if i == f => "fail",
                    Some(f) if i > f => "not_reached",
                    _ if skip.is_some() => "skipped",
                    // A Bearer request refused at the credentials step never reached the token.
                    _ => "pass",
                };
                let expected = match (status, skip) {
                    ("skipped", Some(why)) => Some(why.to_owned()),
                    _ => expected,
                };
                Check {
                    name,
                    status,
                    expected,
                    actual,
                }
            })
            .collect()
    }
}

/// One check before its status: name, expected, actual, and why it does not apply.
type Row<'a> = (
    &'static str,
    Option<String>,
    Option<String>,
    Option<&'a str>,
);

/// The check a refusal reason names, in the explorer's list.
fn failed_check(reason: Reason, bearer: bool) -> &'static str {
    use Reason as R;
    match reason {
        R::InvalidRequest
        | R::Host
        | R::HeadTooLarge
        | R::HeadTimeout
        | R::UriTooLong
        | R::TransferCoding
        | R::MalformedField => "request",
        R::MethodNotAllowed => "method",
        R::NoCredentials | R::ProofMissing => "credentials",
        R::Proof(c) => c.as_str(),
        R::NonceMissing | R::NonceInvalid | R::NonceExpired => "nonce",
        // A Bearer token on a DPoP-only route is refused with the credentials, unchecked.
        R::Token(TokenCheck::Binding | TokenCheck::Downgrade) if bearer => "credentials",
        R::Token(TokenCheck::Binding | TokenCheck::Downgrade) => "binding",
        R::Token(_) | R::TokenService => "token",
        R::IdentityClaim => "identity",
        R::Scope | R::Claim | R::IssuerNotAllowed => "policy",
        R::Replay | R::IssuedBeforeStart | R::ReplayStoreFull | R::ReplayStore | R::PerKeyLimit => {
            "replay"
        }
        R::UpstreamConnect
        | R::UpstreamTls
        | R::UpstreamTimeout
        | R::UpstreamProtocol
        | R::RequestBody
        | R::RequestBodyTimeout
        | R::BodyTooLarge => "upstream",
    }
}

/// The one value of header `name`, as text (none when absent, repeated or not ASCII).
fn single_str<'h>(head: &'h Parts, name: &str) -> Option<&'h str> {
    let mut values = head.headers.get_all(name).iter();
    let v = values.next()?;
    if values.next().is_some() {
        return None;
    }
    v.to_str().ok()
}

/// The header and claims of a compact JWS, decoded but not verified, bounded; `None` when
/// it is not one (an opaque token).
fn decode_jws(jws: &str) -> Option<Decoded> {
    let mut parts = jws.split('.');
    let (h, c, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header = B64.decode(h).ok()?;
    let claims = B64.decode(c).unwrap_or_default();
    decode_json(&header, &claims)
}

/// A JWS header's and claims' JSON, bounded; `None` when the header is not a JSON object,
/// claims that are not JSON are `null`.
fn decode_json(header: &[u8], claims: &[u8]) -> Option<Decoded> {
    let header = serde_json::from_slice::<Value>(header).ok()?;
    if !header.is_object() {
        return None;
    }
    Some(Decoded {
        header: bounded(header, 0),
        claims: serde_json::from_slice::<Value>(claims).map_or(Value::Null, |v| bounded(v, 0)),
    })
}

/// `value` with long strings cut and large or deep containers trimmed: what an attacker
/// writes into a proof costs the ring buffer a bounded amount.
fn bounded(value: Value, depth: usize) -> Value {
    match value {
        Value::String(s) => Value::String(bounded_str(&s)),
        Value::Array(a) if depth >= MAX_DEPTH => Value::String(format!("[{} items]", a.len())),
        Value::Object(o) if depth >= MAX_DEPTH => Value::String(format!("{{{} members}}", o.len())),
        Value::Array(a) => Value::Array(
            a.into_iter()
                .take(MAX_ITEMS)
                .map(|v| bounded(v, depth + 1))
                .collect(),
        ),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .take(MAX_ITEMS)
                .map(|(k, v)| (bounded_str(&k), bounded(v, depth + 1)))
                .collect::<Map<String, Value>>(),
        ),
        other => other,
    }
}

/// `s` cut to at most [`MAX_KEPT_STR`] bytes (on a character boundary): enough for
/// [`bounded_str`] to show it as it would the whole.
fn capped(s: &str) -> Box<str> {
    if s.len() <= MAX_KEPT_STR {
        return s.into();
    }
    let mut end = MAX_KEPT_STR;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = String::with_capacity(end + '…'.len_utf8());
    cut.push_str(&s[..end]);
    cut.push('…');
    cut.into_boxed_str()
}

fn bounded_str(s: &str) -> String {
    if s.chars().count() <= MAX_STRING {
        return s.to_owned();
    }
    let mut cut: String = s.chars().take(MAX_STRING).collect();
    cut.push('…');
    cut
}

/// The JSON endpoint's filters.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    /// Only this outcome (`forwarded`, `invalid_dpop_proof`, …); `refused` for any refusal.
    pub outcome: Option<String>,
    /// Only this reason.
    pub reason: Option<String>,
    /// Only this proof key thumbprint.
    pub jkt: Option<String>,
    /// Only decisions with a larger id.
    pub after: Option<u64>,
}

// === impl Filter ===

impl Filter {
    /// Reads `outcome=…&reason=…&jkt=…&after=…`; empty and unknown parameters are ignored.
    pub(crate) fn parse(query: &str) -> Filter {
        let mut f = Filter::default();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v);
            if v.is_empty() {
                continue;
            }
            match k {
                "outcome" => f.outcome = Some(v),
                "reason" => f.reason = Some(v),
                "jkt" => f.jkt = Some(v),
                "after" => f.after = v.parse().ok(),
                _ => {}
            }
        }
        f
    }

    /// The filters a kept decision answers without being rendered.
    fn matches_head(&self, id: u64, outcome: &str, reason: &str) -> bool {
        let outcome = match self.outcome.as_deref() {
            None => true,
            Some("refused") => !matches!(outcome, "forwarded" | "local"),
            Some(o) => outcome == o,
        };
        outcome
            && self.reason.as_deref().is_none_or(|x| reason == x)
            && self.after.is_none_or(|a| id > a)
    }

    fn matches(&self, r: &Record) -> bool {
        self.matches_head(r.id, r.outcome, r.reason)
            && self
                .jkt
                .as_deref()
                .is_none_or(|x| r.jkt.as_deref() == Some(x))
    }
}

/// `%XX` and `+` decoded; invalid escapes kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A page asset or JSON, with the headers that keep the page to itself.
fn asset(body: impl Into<Bytes>, content_type: &'static str) -> Response<GatewayBody> {
    let mut resp = Response::new(body::full(body));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    resp
}

fn plain(status: StatusCode, text: &'static str) -> Response<GatewayBody> {
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = status;
    resp
}

/// What recording one decision costs, for the pipeline bench: `Explorer::capture` on the
/// head `authorize` decided on, then `Pending::finish` into `state`'s explorer (a no-op when
/// it is off). Not an API.
#[doc(hidden)]
pub fn bench_record(state: &State, head: &Parts, conn: ConnMeta, decision: &Decision<'_>) {
    if let Some(x) = &state.explorer {
        let failed = decision.result.as_ref().err().map(|r| r.parts().reason);
        let outcome = if failed.is_some() {
            ("refused", "bench")
        } else {
            ("forwarded", "none")
        };
        x.capture(state, head, conn, decision).finish(
            x,
            outcome,
            failed,
            StatusCode::OK,
            Duration::from_micros(1),
            None,
        );
    }
}

#[cfg(test)]
mod tests;
