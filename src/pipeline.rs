//! THE request path, and the only place its steps are sequenced. [`handle`] is what the
//! listener calls: [`authorize`], then [`forward`] (or a local answer), then one response, one
//! metrics record and one access-log line for every request, whatever happened.
//!
//! The steps, numbered, with what each refuses, are drawn once: README.md, "How a request is
//! handled" (change it with them). [`authorize`] runs 0 the head checks and 1 the route
//! (`target`, `authorize_on`; the first matching prefix, then the first of its routes taking
//! the method, else 405 + Allow), 2 `credentials`, 3 `proof`, 4 `nonce`, 5 token and binding,
//! 6 `identity`, 7 `policy` (2-7 are `verify`, stateless: `explain` runs exactly them), 8
//! replay (`admit`); [`forward`] runs 9 headers and 10 upstream; `refused` hands a refusal to
//! `refusal.rs`, the only place one becomes a response. The policy runs before the replay
//! check so that a refused request does not use the client's `jti`: it would be refused again
//! however often it is sent.
//!
//! [`authorize`] takes the request head (and normalises its path in place: what routes
//! match, `htu` is computed from and the upstream receives is one path) and what is known of
//! the body ([`BodyKnown`]: a CORS preflight has none); any body type stays with the caller,
//! so the pipeline bench, `explain` and other listeners run this code, not a copy of it: the
//! decision listener (`forward_auth`) answers with [`decide`] (`pipeline/decide.rs`), which
//! runs [`authorize`] on the request an ingress describes.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, ACCESS_CONTROL_EXPOSE_HEADERS, ORIGIN};
use http::request::Parts;
use http::{Method, Request, Response};

use crate::body::{
    self, BodyFault, BoxError, CountedBody, GatewayBody, IdleTimeoutBody, LimitedBody,
};
use crate::clock::{self, UnixTime};
use crate::config::{AuthMode, OnError};
use crate::credentials::{self, Credentials};
use crate::dpop::{ProofRequest, SignedBy, VerifiedProof};
use crate::forward::headers as fwd_headers;
use crate::jose::Thumbprint;
use crate::metrics::{self, Listener};
use crate::nonce::{NonceError, NonceStatus};
use crate::refusal::{Answering, ErrorCode, Reason, Refusal};
use crate::replay::{Admission, StoreError};
use crate::request_uri;
use crate::resource_metadata;
use crate::route::{Found, Route};
use crate::state::{ConnMeta, State};
use crate::telemetry::{self, AccessOutcome, AccessRecord};
use crate::token::{self, Scheme, TokenInfo};

/// What [`authorize`] decided for a request that may go on.
pub enum Access {
    /// Answered by the gateway itself (the RFC 9728 metadata document).
    Local(Response<GatewayBody>),
    /// Forwarded without checks or identity: an `auth: none` route or a CORS preflight.
    Open,
    /// A CORS preflight answered by the gateway (`cors.preflight: answer`): the proxy sends
    /// this answer; the decision listener allows the preflight as it does an `Open` request.
    Preflight(Response<GatewayBody>),
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
    /// What the token says; the identity values below are made from it, the policy (step 7)
    /// checked it.
    #[cfg_attr(not(test), allow(dead_code))]
    info: Arc<TokenInfo>,
    /// The identity headers' values, made from `info` by step 6.
    identity: Box<fwd_headers::IdentityValues>,
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
    // The explorer reads the head before `forward` takes it; off, this is the one branch.
    let mut seen = (state.explorer.as_ref()).map(|x| x.capture(&state, &parts, conn, &decision));
    let route = decision.route;
    let jkt = decision.signed_by.map(|s| s.jkt());
    let mut upstream = None;
    let (resp, outcome) = match decision.result {
        Ok(Access::Local(resp) | Access::Preflight(resp)) => (resp, Outcome::Local),
        Ok(access) => {
            let sent = clock::monotonic();
            let forwarded = forward(&state, route, parts, body, conn, access).await;
            upstream = Some(sent.elapsed());
            match forwarded {
                Ok(resp) => (resp, Outcome::Forwarded),
                Err(refusal) => {
                    if let Some(seen) = &mut seen {
                        seen.refused(&refusal);
                    }
                    let answering = Answering {
                        state: &state,
                        conn,
                        head: None,
                        route,
                        origin: origin.as_ref(),
                    };
                    refused(&state, route, &refusal, &answering)
                }
            }
        }
        Err(refusal) => {
            let answering = Answering {
                state: &state,
                conn,
                head: Some(&parts),
                route,
                origin: origin.as_ref(),
            };
            refused(&state, route, &refusal, &answering)
        }
    };
    let failed = match outcome {
        Outcome::Refused(_, reason) => Some(reason),
        Outcome::Forwarded | Outcome::Local => None,
    };
    let labels = outcome.labels();
    if let (Some(seen), Some(explorer)) = (seen, &state.explorer) {
        let status = resp.status();
        seen.finish(explorer, labels, failed, status, start.elapsed(), upstream);
    }
    let resp = answer(
        &state,
        resp,
        Answered {
            listener: Listener::Proxy,
            route,
            method: &method,
            origin: origin.as_ref(),
            request_id,
            labels,
            start,
            log,
            jkt,
            upstream: upstream.map(|d| (&state.upstream_of(route).name, d)),
        },
    );
    Ok(resp)
}

/// How a request was answered, for what every answer gets on its way out.
struct Answered<'a> {
    listener: Listener,
    route: &'a Route,
    method: &'a Method,
    /// The request's `Origin`.
    origin: Option<&'a HeaderValue>,
    request_id: HeaderValue,
    /// `outcome` and `reason` labels.
    labels: (&'static str, &'static str),
    start: Instant,
    log: Option<AccessRecord>,
    jkt: Option<Thumbprint>,
    upstream: Option<(&'a Arc<str>, Duration)>,
}

/// What every answer gets, whichever listener gave it: the CORS headers, the request id, one
/// metrics record and one access-log line.
fn answer(
    state: &State,
    mut resp: Response<GatewayBody>,
    a: Answered<'_>,
) -> Response<GatewayBody> {
    if let Some(origin) = a.origin {
        // RFC 9449 §7.1: browsers may only read these if they are exposed.
        resp.headers_mut().append(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("WWW-Authenticate, DPoP-Nonce"),
        );
        // Preflights answered here: the upstream's responses get the origin it does not know
        // to send.
        if let (Some(cors), Some(_)) = (&state.cors_answer, a.upstream) {
            cors.on_forwarded(state, &mut resp, origin);
        }
    }
    resp.headers_mut()
        .insert(telemetry::X_REQUEST_ID, a.request_id);
    let (outcome, reason) = a.labels;
    state.metrics.record_request_on(
        a.listener,
        a.route.label(),
        metrics::method_class(a.method),
        outcome,
        reason,
        resp.status(),
        a.start.elapsed(),
    );
    match a.log {
        Some(log) => {
            let o = AccessOutcome {
                route: a.route.label(),
                outcome,
                reason,
                jkt: a.jkt,
                upstream: a.upstream,
            };
            log.attach(resp, &o)
        }
        None => resp,
    }
}

/// Steps 0-8 on the request head: where the request may go, or why not. The head's path is
/// replaced by its normal form (step 1), which `forward` then sends.
pub async fn authorize<'s>(
    state: &'s State,
    head: &mut Parts,
    body: BodyKnown,
    conn: ConnMeta,
) -> Decision<'s> {
    let target = target(state, head);
    // A refused target keeps the path as sent: its route only labels the refusal.
    let preflight = is_cors_preflight(&head.method, &head.headers, body);
    let (route, allowed) = route(state, head, preflight);
    let mut signed_by = None;
    let result = match (target, allowed) {
        (Err(refusal), _) | (Ok(()), Err(refusal)) => Err(refusal),
        (Ok(()), Ok(())) => authorize_on(state, route, head, preflight, conn, &mut signed_by).await,
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

/// The route half of step 1: the route for the path and method; a method none of the path's
/// routes takes is 405 (after the target checks, which go first). A CORS preflight is matched
/// whatever its method: the method it asks about is the upstream's CORS answer to judge.
/// The RFC 9728 metadata document is answered whatever the routes' methods.
fn route<'s>(state: &'s State, head: &Parts, preflight: bool) -> (&'s Route, Result<(), Refusal>) {
    let any_method = preflight || is_metadata_request(state, head);
    let method = (!any_method).then_some(&head.method);
    match state.router.find_for(head.uri.path(), method) {
        Found::Route(route) => (route, Ok(())),
        Found::MethodNotAllowed { first, group } => (
            first,
            Err(Refusal::MethodNotAllowed {
                allow: group.allow(),
            }),
        ),
    }
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
    preflight: bool,
    conn: ConnMeta,
    signed_by: &mut Option<SignedBy>,
) -> Result<Access, Refusal> {
    if let Some(resp) = resource_metadata(state, head, conn) {
        return Ok(Access::Local(resp));
    }
    if route.auth == AuthMode::None || preflight {
        if let (true, Some(cors)) = (preflight, &state.cors_answer) {
            let origin = crate::cors::origin_of(head);
            return Ok(Access::Preflight(cors.answer(state, route, origin)));
        }
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

/// Steps 2-7, the stateless checks: credentials, proof, nonce, token and its binding, the
/// identity it carries, the route's policy.
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
    let identity = Box::new(identity(state, &info, proof.as_ref())?);
    policy(route, &info)?;
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

/// 7 policy: the route's `issuers` and `require` on what the verified, bound token says. Run
/// on every request, the token's cached or not: a verdict cached for one route must not
/// authorize another.
fn policy(route: &Route, info: &TokenInfo) -> Result<(), Refusal> {
    crate::policy::check(route, info).map_err(Refusal::Policy)
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

/// 8 replay: the proof's `jti` is used once. Last, so that only a fully valid proof uses an
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
    let jkt = p.jkt();
    match state
        .replay
        .check_and_insert(p.replay_key(), jkt.as_bytes(), now)
        .await
    {
        Ok(Admission::Fresh) => Ok(Authorized(verified)),
        Ok(Admission::Replayed) => Err(Refusal::Replayed),
        Ok(Admission::KeyLimited { retry_after }) => {
            state.metrics.replay_key_limited.inc();
            tracing::info!(retry_after, "replay store: proof key over per_key_limit");
            Err(Refusal::KeyLimited { retry_after })
        }
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

/// Steps 9-10: the headers the upstream must and must not see, then the upstream exchange with
/// the body streamed.
pub async fn forward<B>(
    state: &State,
    route: &Route,
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
        Access::Open | Access::Local(_) | Access::Preflight(_) => None,
    };
    // 9 headers. The authority htu was checked against (absolute-form or :authority, else
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
    // Before the hop-by-hop fields go: a WebSocket handshake gets its own connection and keeps
    // `Upgrade` (forward/tunnel.rs). hyper gives a request a way to upgrade its connection only
    // when it asked (HTTP/1.1 with `Upgrade`, or CONNECT): one lookup in the extensions, which
    // hash by type id, on every other request.
    let websocket = head.extensions.get::<hyper::upgrade::OnUpgrade>().is_some()
        && head.version == http::Version::HTTP_11
        && head.method == Method::GET
        && crate::forward::tunnel::wants_websocket(&head.headers);
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

    // 10 upstream, streaming the body (within the route's max_body_bytes)
    let version = head.version;
    let (body, client_body) = match route.max_body_bytes {
        None => {
            let (body, watch) = body::watched(IdleTimeoutBody::new(body, state.idle_timeout));
            (body::boxed(body), watch)
        }
        Some(limit) => {
            // A declared length over the limit: refused before anything is sent (hyper checks
            // that the body keeps to the length it declared; a chunked one is counted).
            if http_body::Body::size_hint(&body).lower() > limit {
                return Err(Refusal::RequestBody(BodyFault::TooLarge));
            }
            let idle = IdleTimeoutBody::new(body, state.idle_timeout);
            let (body, watch) = body::watched(LimitedBody::new(idle, limit));
            (body::boxed(body), watch)
        }
    };
    let upstream = state.upstream_of(route);
    if let Some(prefix) = route.strip() {
        // Only an encoded slash routes a path here that is not under the prefix: it has no
        // stripped form.
        if !crate::forward::under_prefix(head.uri.path(), prefix) {
            return Err(Refusal::InvalidRequest(
                "the request path is not under its route's prefix",
            ));
        }
    }
    let upstream_start = clock::monotonic();
    let req = Request::from_parts(head, body);
    let result = if websocket {
        upstream.tunnel(req, route.strip(), &state.tunnels).await
    } else {
        upstream.send(req, route.strip()).await
    };
    let elapsed = upstream_start.elapsed();
    upstream.metrics.duration.observe(elapsed.as_secs_f64());
    // A failed exchange whose request body failed first is the client's fault (400, 408),
    // not the upstream's (502, 504).
    let mut resp = result.map_err(|e| match client_body.fault() {
        Some(fault) => Refusal::RequestBody(fault),
        None => Refusal::Upstream(e),
    })?;
    // The gateway answers in its own version, the client connection's (RFC 9110 §6.2): an
    // HTTP/1.0 upstream's `HTTP/1.0 200` would cost an HTTP/1.1 client its keep-alive.
    *resp.version_mut() = version;
    upstream.metrics.observe_response(resp.status(), elapsed);
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
    route: &Route,
    refusal: &Refusal,
    answering: &Answering<'_>,
) -> (Response<GatewayBody>, Outcome) {
    let parts = refusal.parts();
    if let Refusal::Upstream(e) = refusal {
        let upstream = state.upstream_of(route);
        tracing::warn!(upstream = %upstream.name, reason = parts.reason.as_str(), error = %e, "upstream unavailable");
        upstream.metrics.error(parts.reason);
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

/// Whether `head` asks for the metadata document [`resource_metadata`] answers.
fn is_metadata_request(state: &State, head: &Parts) -> bool {
    state.resource_metadata.is_some()
        && (head.method == Method::GET || head.method == Method::HEAD)
        && resource_metadata::well_known_path(head.uri.path()).is_some()
}

/// `GET /.well-known/oauth-protected-resource[/path]` (RFC 9728 §3), answered by the gateway.
fn resource_metadata(state: &State, head: &Parts, conn: ConnMeta) -> Option<Response<GatewayBody>> {
    let rm = state.resource_metadata.as_ref()?;
    let path = resource_metadata::well_known_path(head.uri.path())?;
    if head.method != Method::GET && head.method != Method::HEAD {
        return None;
    }
    let base = crate::refusal::base_url(state, conn, head)?;
    // RFC 9728 §3.1: the document of the resource at `path`, whose routes may name issuers.
    let issuers = state
        .router
        .accepted_issuers(state.router.for_resource(path));
    let doc = rm.document(&format!("{base}{path}"), issuers.as_deref());
    let mut resp = Response::new(body::full(doc));
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

mod decide;
pub use decide::decide;

#[cfg(test)]
mod tests;
