//! THE request path, and the only place its steps are sequenced. [`handle`] is what the
//! listener calls: [`authorize`], then [`forward`] (or a local answer), then one response, one
//! metrics record and one access-log line for every request, whatever happened.
//!
//! ```text
//! authorize(state, &mut head, body)                           -> Result<Access, Refusal>
//!   0 head            over max_header_bytes (a pipelined head) -> 431 (the request line: 414)
//!                     a transfer coding other than chunked     -> 501
//!                     a field value with whitespace around it  -> 400 (HTTP/2)
//!   1 route           one Host, a plain host[:port]            -> 400 invalid_request
//!                     the path normalised (RFC 3986 §6.2.2) in the head; dot segments,
//!                     encoded slashes (paths.encoded_slashes: reject) -> 400 invalid_request
//!                     RFC 9728 metadata => answered here; first matching prefix;
//!                     auth: none or a CORS preflight (no body) => Access::Open
//!   2 credentials     one DPoP, one Authorization, scheme      -> 400 invalid_request | 401
//!   3 proof           typ alg jwk sig htm htu iat ath          -> 401 invalid_dpop_proof
//!   4 nonce           when the route requires it               -> 401 use_dpop_nonce + DPoP-Nonce
//!   5 token, binding  JWT/JWKS or introspection, cnf.jkt       -> 401 invalid_token | 503
//!   6 identity        the claims identity headers carry, as clean field values (non-ASCII
//!                     percent-encoded)                         -> 401 invalid_token
//!   7 replay          memory store: a proof issued before the process started  -> 401
//!                     (use_dpop_nonce on nonce routes); jti single use; last, so only fully
//!                     valid proofs use an entry                                -> 401 | 503
//! forward(state, head, body, access)
//!   8 headers         strip DPoP + hop-by-hop + spoofed identity; set identity, X-Forwarded-*
//!   9 upstream        stream the body both ways                -> 502 | 504
//!                     the client's body breaks off or stalls   -> 400 | 408
//! respond             a refusal becomes a response in refusal.rs; metrics + one access-log line
//! ```
//!
//! Steps 2-6 are `verify` (stateless: `explain` runs exactly them); step 7 is `admit`.
//! [`authorize`] takes the request head (and normalises its path in place: what routes
//! match, `htu` is computed from and the upstream receives is one path) and what is known of
//! the body ([`BodyKnown`]: a CORS preflight has none); any body type stays with the caller,
//! so the pipeline bench, `explain` and other listeners run this code, not a copy of it.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, ACCESS_CONTROL_EXPOSE_HEADERS, ORIGIN};
use http::request::Parts;
use http::{Method, Request, Response};

use crate::body::{self, BoxError, CountedBody, GatewayBody, IdleTimeoutBody};
use crate::clock::{self, UnixTime};
use crate::config::{AuthMode, OnError};
use crate::credentials::{self, Credentials};
use crate::dpop::{ProofRequest, SignedBy, VerifiedProof};
use crate::forward::headers as fwd_headers;
use crate::metrics;
use crate::nonce::{NonceError, NonceStatus};
use crate::refusal::{Answering, ErrorCode, Reason, Refusal};
use crate::replay::{Admission, StoreError};
use crate::request_uri;
use crate::resource_metadata;
use crate::route::Route;
use crate::state::{ConnMeta, State};
use crate::telemetry::{self, AccessOutcome, AccessRecord};
use crate::token::{self, Scheme, TokenInfo};

/// What [`authorize`] decided for a request that may go on.
pub enum Access {
    /// Answered by the gateway itself (the RFC 9728 metadata document).
    Local(Response<GatewayBody>),
    /// Forwarded without checks or identity: an `auth: none` route or a CORS preflight.
    Open,
    /// Forwarded with the identity the checks proved.
    Authorized(Authorized),
}

/// What the caller knows of a request's body when its head is authorized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKnown {
    /// None follows: the head ended the request (HTTP/1 with neither `Content-Length` nor
    /// `Transfer-Encoding`, or `Content-Length: 0`; HTTP/2 `END_STREAM` on the HEADERS frame).
    Empty,
    /// A body follows, or may (DATA frames, chunked, a length).
    MayFollow,
}

/// A request that passed steps 2-6 (`verify`) but not yet the replay check: only this module
/// builds one.
pub struct Verified {
    token: String,
    /// What the token says; the identity values below are made from it. Only tests read it
    /// after step 6 so far (route `require` policies will).
    #[cfg_attr(not(test), allow(dead_code))]
    info: Arc<TokenInfo>,
    /// The identity headers' values, made from `info` by step 6.
    identity: fwd_headers::IdentityValues,
    proof: Option<VerifiedProof>,
    /// The proof's nonce is past half its lifetime: send a new one with the response.
    renew_nonce: bool,
}

/// A request that passed every check: only `admit` builds one, and only it lets a request
/// reach the upstream with an identity.
pub struct Authorized(Verified);

/// [`authorize`]'s answer: the route it matched (for metrics, logs and the refusal's nonce
/// rule) and the decision.
pub struct Decision<'s> {
    /// The route the request matched (the fallback route when none did).
    pub route: &'s Route,
    /// The decision.
    pub result: Result<Access, Refusal>,
    /// The key whose signature verified on the request's proof, refused or not (a claim, the
    /// nonce, the token, the binding or the replay check may still have failed): what the
    /// access log names. `None` when no proof signature verified; only `dpop` can make one.
    pub signed_by: Option<SignedBy>,
}

/// How a handled request ended, for metrics and the access log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Sent to the upstream (whatever it answered).
    Forwarded,
    /// Answered by the gateway itself.
    Local,
    /// Refused.
    Refused(ErrorCode, Reason),
}

/// Handles one request: [`authorize`], then [`forward`] or a local answer, then one response,
/// metrics and an access-log line. Never fails; accepts any request body.
pub async fn handle<B>(
    state: Arc<State>,
    req: Request<B>,
    conn: ConnMeta,
) -> Result<Response<GatewayBody>, std::convert::Infallible>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let start = clock::monotonic();
    // Dropped with the future too (a client that goes away mid-request).
    let _in_flight = metrics::GaugeGuard::new(state.metrics.in_flight.clone());
    let (mut parts, body) = req.into_parts();
    let request_id = telemetry::request_id(&mut parts.headers);
    let method = parts.method.clone();
    let origin = parts.headers.get(ORIGIN).cloned();
    // The access line is written when the response body is done; nothing is kept for it
    // when it is turned off.
    let log = telemetry::access_enabled().then(|| AccessRecord::new(&parts, conn.remote, start));
    let body = CountedBody::new(body, log.as_ref().map(AccessRecord::bytes_in));

    let decision = authorize(&state, &mut parts, BodyKnown::of(&body), conn).await;
    let route = decision.route;
    let jkt = decision.signed_by.map(|s| s.jkt());
    let mut upstream = None;
    let (mut resp, outcome) = match decision.result {
        Ok(Access::Local(resp)) => (resp, Outcome::Local),
        Ok(access) => {
            let sent = clock::monotonic();
            let forwarded = forward(&state, parts, body, conn, access).await;
            upstream = Some(sent.elapsed());
            match forwarded {
                Ok(resp) => (resp, Outcome::Forwarded),
                Err(refusal) => {
                    let answering = Answering {
                        state: &state,
                        conn,
                        head: None,
                        nonce_route: route.nonce,
                        origin: origin.as_ref(),
                    };
                    refused(&state, &refusal, &answering)
                }
            }
        }
        Err(refusal) => {
            let answering = Answering {
                state: &state,
                conn,
                head: Some(&parts),
                nonce_route: route.nonce,
                origin: origin.as_ref(),
            };
            refused(&state, &refusal, &answering)
        }
    };
    if origin.is_some() {
        // RFC 9449 §7.1: browsers may only read these if they are exposed.
        resp.headers_mut().append(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("WWW-Authenticate, DPoP-Nonce"),
        );
    }
    resp.headers_mut()
        .insert(telemetry::X_REQUEST_ID, request_id);
    let (outcome, reason) = outcome.labels();
    state.metrics.record_request(
        route.label(),
        metrics::method_class(&method),
        outcome,
        reason,
        resp.status(),
        start.elapsed(),
    );
    if let Some(log) = log {
        let o = AccessOutcome {
            route: route.label(),
            outcome,
            reason,
            jkt,
            upstream,
        };
        resp = log.attach(resp, &o);
    }
    Ok(resp)
}

/// Steps 0-7 on the request head: where the request may go, or why not. The head's path is
/// replaced by its normal form (step 1), which `forward` then sends.
pub async fn authorize<'s>(
    state: &'s State,
    head: &mut Parts,
    body: BodyKnown,
    conn: ConnMeta,
) -> Decision<'s> {
    let target = target(state, head);
    // A refused target keeps the path as sent: its route only labels the refusal.
    let route = state.router.find(head.uri.path());
    let mut signed_by = None;
    let result = match target {
        Ok(()) => authorize_on(state, route, head, body, conn, &mut signed_by).await,
        Err(refusal) => Err(refusal),
    };
    Decision {
        route,
        result,
        signed_by,
    }
}

/// Step 0 and the target half of step 1: what the request names, before any route is chosen.
fn target(state: &State, head: &mut Parts) -> Result<(), Refusal> {
    // 0 the head's size: the connection counts it as it arrives (`server::deadline`), except a
    // head pipelined behind a body, which hyper read along with the body
    if request_line_len(head) > state.max_header_bytes {
        return Err(Refusal::UriTooLong);
    }
    if head_len(head) > state.max_header_bytes {
        return Err(Refusal::HeadTooLarge);
    }
    // ...and its framing: chunked is the one transfer coding hyper decodes, and the upstream
    // gets the body in a framing of its own, so any other would reach it undecoded.
    if unsupported_transfer_coding(&head.headers) {
        return Err(Refusal::UnsupportedTransferCoding);
    }
    // ...and its fields: HTTP/2 passes values as sent, and one with whitespace around it is
    // malformed (RFC 9113 §8.2.1); an intermediary must not forward it.
    if head.version == http::Version::HTTP_2 && head.headers.values().any(|v| padded(v.as_bytes()))
    {
        return Err(Refusal::MalformedField);
    }
    // 1 route. The one Host rule first (RFC 9112 §3.2: 400), on every route: htu, the
    // metadata document and the upstream's Host all read the authority it accepts.
    request_uri::authority(head.version, &head.uri, &head.headers).map_err(Refusal::Host)?;
    // Then the path: normalised where RFC 3986 makes spellings equivalent, refused where a
    // server behind us could read another path than the one routes match.
    let path = crate::uri::canonical_path(head.uri.path(), state.encoded_slashes)
        .map_err(Refusal::InvalidRequest)?;
    if let Cow::Owned(path) = path {
        head.uri = with_path(&head.uri, &path)
            .ok_or(Refusal::InvalidRequest("the request path is malformed"))?;
    }
    Ok(())
}

/// `uri` with its path replaced by `path`; scheme, authority and query kept as they are.
fn with_path(uri: &http::Uri, path: &str) -> Option<http::Uri> {
    let mut parts = uri.clone().into_parts();
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    http::Uri::from_parts(parts).ok()
}

async fn authorize_on(
    state: &State,
    route: &Route,
    head: &Parts,
    body: BodyKnown,
    conn: ConnMeta,
    signed_by: &mut Option<SignedBy>,
) -> Result<Access, Refusal> {
    if let Some(resp) = resource_metadata(state, head, conn) {
        return Ok(Access::Local(resp));
    }
    if route.auth == AuthMode::None || is_cors_preflight(&head.method, &head.headers, body) {
        return Ok(Access::Open);
    }
    let verify_start = clock::monotonic();
    let now = state.clock.now();
    let result = match verify_noting_signer(state, route, head, conn, now, signed_by).await {
        Ok(verified) => admit(state, route, verified, now)
            .await
            .map(Access::Authorized),
        Err(refusal) => Err(refusal),
    };
    state
        .metrics
        .verification_duration
        .observe(verify_start.elapsed().as_secs_f64());
    result
}

/// Steps 2-6, the stateless checks: credentials, proof, nonce, token and its binding, the
/// identity it carries.
pub(crate) async fn verify(
    state: &State,
    route: &Route,
    head: &Parts,
    conn: ConnMeta,
    now: UnixTime,
) -> Result<Verified, Refusal> {
    verify_noting_signer(state, route, head, conn, now, &mut None).await
}

/// [`verify`], setting `signed_by` as soon as the proof's signature verified (whatever
/// refuses the request after that).
async fn verify_noting_signer(
    state: &State,
    route: &Route,
    head: &Parts,
    conn: ConnMeta,
    now: UnixTime,
    signed_by: &mut Option<SignedBy>,
) -> Result<Verified, Refusal> {
    let creds = credentials(head, route)?;
    let proof = proof(state, head, conn, &creds, now, signed_by)?;
    let renew_nonce = nonce(state, route, proof.as_ref(), now)?;
    let info = state
        .tokens
        .validate(creds.token, now)
        .await
        .map_err(Refusal::from)?;
    token::check_binding(
        &info,
        creds.scheme,
        proof.as_ref().map(VerifiedProof::jkt),
        route.auth == AuthMode::DpopOrBearer,
    )
    .map_err(Refusal::Token)?;
    let identity = identity(state, &info, proof.as_ref())?;
    Ok(Verified {
        token: creds.token.to_owned(),
        info,
        identity,
        proof,
        renew_nonce,
    })
}

/// 6 identity: the values the identity headers will carry, made now so that a claim the
/// upstream would read as another identity (`" admin"` parsed as `admin`, a CR LF) refuses the
/// request instead of reaching it. Only claims a configured header carries are looked at.
fn identity(
    state: &State,
    info: &TokenInfo,
    proof: Option<&VerifiedProof>,
) -> Result<fwd_headers::IdentityValues, Refusal> {
    fwd_headers::identity_values(
        &state.forward.identity_headers,
        info,
        proof.map(VerifiedProof::jkt),
    )
    .map_err(Refusal::IdentityClaim)
}

/// 2 credentials: one `DPoP`, one `Authorization`, a scheme the route accepts.
fn credentials<'h>(head: &'h Parts, route: &Route) -> Result<Credentials<'h>, Refusal> {
    let creds = credentials::extract(&head.headers)?.ok_or(Refusal::NoCredentials)?;
    if creds.scheme == Scheme::Bearer && route.auth == AuthMode::Dpop {
        // Refused before any token work: a random Bearer token must not cost a signature
        // check or an introspection call on a route that never accepts Bearer.
        return Err(Refusal::Token(token::TokenError::NotBound));
    }
    Ok(creds)
}

/// 3 proof. A Bearer request's proof, if any, is not used: the binding check refuses a bound
/// token sent as Bearer.
fn proof(
    state: &State,
    head: &Parts,
    conn: ConnMeta,
    creds: &Credentials<'_>,
    now: UnixTime,
    signed_by: &mut Option<SignedBy>,
) -> Result<Option<VerifiedProof>, Refusal> {
    let proof = match (creds.scheme, creds.proof) {
        (Scheme::Dpop, Some(proof)) => proof,
        (Scheme::Dpop, None) => return Err(Refusal::ProofMissing),
        (Scheme::Bearer, _) => return Ok(None),
    };
    let htu = request_uri::request_uri(&state.uri_policy, conn.scheme, head)
        .ok_or(Refusal::InvalidRequest("the request names no host"))?;
    let request = ProofRequest {
        method: head.method.as_str(),
        htu: &htu,
        access_token: Some(creds.token),
    };
    match state.proofs.verify_signed(proof, &request, now) {
        Ok(verified) => {
            *signed_by = Some(verified.signed_by());
            Ok(Some(verified))
        }
        Err(refused) => {
            *signed_by = refused.signed_by;
            Err(Refusal::Proof(refused.error))
        }
    }
}

/// 4 nonce: after the signature (a forged proof learns nothing), before the replay entry (a
/// nonce retry must not burn the client's jti). `true` when a fresh nonce should go with the
/// response.
fn nonce(
    state: &State,
    route: &Route,
    proof: Option<&VerifiedProof>,
    now: UnixTime,
) -> Result<bool, Refusal> {
    let (true, Some(p)) = (route.nonce, proof) else {
        return Ok(false);
    };
    // `State::from_config` refuses to start a route that needs nonces without secrets; fail
    // closed all the same.
    let keys = state
        .nonces
        .as_ref()
        .ok_or(Refusal::UseNonce(NonceError::Missing))?;
    match keys.check(p.nonce(), now) {
        Ok(NonceStatus::Fresh) => Ok(false),
        Ok(NonceStatus::NearExpiry) => Ok(true),
        Err(e) => Err(Refusal::UseNonce(e)),
    }
}

/// 7 replay: the proof's `jti` is used once. Last, so that only a fully valid proof uses an
/// entry. With the memory store, first: a proof issued before this process started may have
/// been admitted by the previous one, whose entries are gone (`replay::ProcessStart`).
pub(crate) async fn admit(
    state: &State,
    route: &Route,
    verified: Verified,
    now: UnixTime,
) -> Result<Authorized, Refusal> {
    let Some(p) = &verified.proof else {
        return Ok(Authorized(verified));
    };
    if let Some(start) = &state.process_start {
        start
            .check(p.iat(), now)
            .map_err(|issued| Refusal::IssuedBeforeStart {
                issued,
                nonce_route: route.nonce,
            })?;
    }
    match state.replay.check_and_insert(p.replay_key(), now).await {
        Ok(Admission::Fresh) => Ok(Authorized(verified)),
        Ok(Admission::Replayed) => Err(Refusal::Replayed),
        Err(StoreError::Full { retry_after }) => {
            state.metrics.replay_full.inc();
            Err(Refusal::ReplayStoreFull { retry_after })
        }
        Err(StoreError::Unavailable(why)) => {
            let (policy, result) = match state.on_error {
                OnError::Reject => ("reject", Err(Refusal::ReplayStoreUnavailable)),
                OnError::Allow => ("allow", Ok(Authorized(verified))),
            };
            state
                .metrics
                .replay_store_errors
                .with_label_values(&[policy])
                .inc();
            tracing::warn!(error = %why, on_error = policy, "replay store unavailable");
            result
        }
    }
}

/// Steps 8-9: the headers the upstream must and must not see, then the upstream exchange with
/// the body streamed.
pub async fn forward<B>(
    state: &State,
    mut head: Parts,
    body: B,
    conn: ConnMeta,
    access: Access,
) -> Result<Response<GatewayBody>, Refusal>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let authorized = match &access {
        Access::Authorized(Authorized(v)) => Some(v),
        Access::Open | Access::Local(_) => None,
    };
    // 8 headers. The authority htu was checked against (absolute-form or :authority, else
    // the one Host) is the Host the upstream gets: the two must not differ. A request the rule
    // refuses never gets here; if one did, none of its Host fields would pass.
    let authority = request_uri::authority(head.version, &head.uri, &head.headers)
        .ok()
        .flatten()
        .and_then(|a| HeaderValue::from_str(a).ok());
    match authority {
        Some(v) => {
            head.headers.insert(http::header::HOST, v);
        }
        None => {
            head.headers.remove(http::header::HOST);
        }
    }
    let host = head.headers.get(http::header::HOST).cloned();
    let ctx = fwd_headers::ForwardContext {
        config: &state.forward,
        identity: authorized.map(|a| fwd_headers::Identity {
            token: &a.token,
            values: &a.identity,
        }),
        client_addr: conn.remote.ip(),
        trust_forwarded: state.uri_policy.trust_forwarded,
        proto: conn.scheme,
        host: host.as_ref(),
    };
    fwd_headers::prepare_request(&mut head.headers, &ctx);

    // 9 upstream, streaming the body
    let version = head.version;
    let (body, client_body) = body::watched(IdleTimeoutBody::new(body, state.idle_timeout));
    let body = body::boxed(body);
    let upstream_start = clock::monotonic();
    let result = state.forwarder.send(Request::from_parts(head, body)).await;
    let elapsed = upstream_start.elapsed();
    state
        .metrics
        .upstream_duration
        .observe(elapsed.as_secs_f64());
    // A failed exchange whose request body failed first is the client's fault (400, 408),
    // not the upstream's (502, 504).
    let mut resp = result.map_err(|e| match client_body.fault() {
        Some(fault) => Refusal::RequestBody(fault),
        None => Refusal::Upstream(e),
    })?;
    // The gateway answers in its own version, the client connection's (RFC 9110 §6.2): an
    // HTTP/1.0 upstream's `HTTP/1.0 200` would cost an HTTP/1.1 client its keep-alive.
    *resp.version_mut() = version;
    state
        .metrics
        .observe_upstream_response(resp.status(), elapsed);
    if let (true, Some(keys)) = (authorized.is_some_and(|a| a.renew_nonce), &state.nonces) {
        if let Ok(v) = HeaderValue::from_str(&keys.issue(state.clock.now())) {
            resp.headers_mut().insert("dpop-nonce", v);
        }
    }
    Ok(resp)
}

/// A refusal's response (made in `refusal.rs`), its log line and its outcome.
fn refused(
    state: &State,
    refusal: &Refusal,
    answering: &Answering<'_>,
) -> (Response<GatewayBody>, Outcome) {
    let parts = refusal.parts();
    if let Refusal::Upstream(e) = refusal {
        tracing::warn!(error = %e, "upstream unavailable");
        state
            .metrics
            .upstream_errors
            .with_label_values(&[parts.reason.as_str()])
            .inc();
    }
    if let Refusal::TokenService(why) = refusal {
        tracing::warn!(error = %why, "token service unavailable");
    }
    tracing::debug!(reason = parts.reason.as_str(), description = %refusal.description(), "refused");
    (
        refusal.respond(answering),
        Outcome::Refused(parts.code, parts.reason),
    )
}

/// The length of `parts` as an HTTP/1.1 head: request line, `name:value` lines, blank line.
/// A lower bound of what came on the wire (no optional whitespace, origin-form target), so a
/// head the connection's count let through is never refused here.
fn head_len(parts: &Parts) -> usize {
    let fields: usize = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 3)
        .sum();
    request_line_len(parts) + fields + 2
}

/// The length of `parts`' request line with its CRLF, as [`head_len`] counts it.
fn request_line_len(parts: &Parts) -> usize {
    let target = parts.uri.path_and_query().map_or(1, |p| p.as_str().len());
    parts.method.as_str().len() + 1 + target + " HTTP/1.1\r\n".len()
}

/// Whether a field value starts or ends with SP or HTAB.
fn padded(value: &[u8]) -> bool {
    let ws = |b: &u8| *b == b' ' || *b == b'\t';
    value.first().is_some_and(ws) || value.last().is_some_and(ws)
}

/// Whether `Transfer-Encoding` names anything but `chunked` alone (RFC 9112 §6.1: 501). hyper
/// refuses a request whose last coding is not chunked; `gzip, chunked` it would pass on.
fn unsupported_transfer_coding(headers: &http::HeaderMap) -> bool {
    let mut codings = headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty());
    match (codings.next(), codings.next()) {
        (None, _) => false,
        (Some(coding), None) => !coding.eq_ignore_ascii_case(b"chunked"),
        (Some(_), Some(_)) => true,
    }
}

/// `GET /.well-known/oauth-protected-resource[/path]` (RFC 9728 §3), answered by the gateway.
fn resource_metadata(state: &State, head: &Parts, conn: ConnMeta) -> Option<Response<GatewayBody>> {
    let rm = state.resource_metadata.as_ref()?;
    let path = resource_metadata::well_known_path(head.uri.path())?;
    if head.method != Method::GET && head.method != Method::HEAD {
        return None;
    }
    let base = crate::refusal::base_url(state, conn, head)?;
    let mut resp = Response::new(body::full(rm.document(&format!("{base}{path}"))));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Some(resp)
}

/// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`. Forwarded
/// without a proof: browsers never attach credentials or a body to it, and the upstream owns
/// its policy. A request that carries credentials or a body is not a preflight, whatever its
/// headers say: the body is judged by `body` (an HTTP/2 request says it has one with DATA
/// frames, no header needed), the framing headers only confirm it.
fn is_cors_preflight(method: &Method, headers: &http::HeaderMap, body: BodyKnown) -> bool {
    method == Method::OPTIONS
        && body == BodyKnown::Empty
        && headers.contains_key(ORIGIN)
        && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
        && !headers.contains_key(http::header::AUTHORIZATION)
        && !headers.contains_key("dpop")
        && !headers.contains_key(http::header::TRANSFER_ENCODING)
        && headers
            .get(http::header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0")
}

// === impl BodyKnown ===

impl BodyKnown {
    /// What `body` says of itself before it is read (`is_end_stream`: hyper's for a request
    /// whose head ended it, HTTP/1 or HTTP/2).
    pub fn of<B: http_body::Body>(body: &B) -> BodyKnown {
        if body.is_end_stream() {
            BodyKnown::Empty
        } else {
            BodyKnown::MayFollow
        }
    }
}

// === impl Outcome ===

impl Outcome {
    /// The `outcome` and `reason` labels (metrics and the access log).
    fn labels(self) -> (&'static str, &'static str) {
        match self {
            Outcome::Forwarded => ("forwarded", "none"),
            Outcome::Local => ("local", "none"),
            Outcome::Refused(code, reason) => (code.as_str(), reason.as_str()),
        }
    }
}

// === impl Verified ===

impl Verified {
    #[cfg(test)]
    /// What the token says.
    pub fn token_info(&self) -> &TokenInfo {
        &self.info
    }

    #[cfg(test)]
    /// The verified proof (absent for a Bearer token on a `dpop_or_bearer` route).
    pub fn proof(&self) -> Option<&VerifiedProof> {
        self.proof.as_ref()
    }
}

#[cfg(test)]
mod tests;
