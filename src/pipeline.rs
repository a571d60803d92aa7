//! THE request path. [`handle`] runs the steps below in order; each returns
//! `Result<_, Refusal>`, and a refusal becomes a response in one place (`refusal.rs`).
//!
//! ```text
//! 1 route::find               auth: none (or a CORS preflight) => go to 7
//! 2 credentials::extract      one DPoP, one Authorization, scheme  -> 400 invalid_request
//! 3 dpop::ProofVerifier  typ alg jwk sig htm htu iat ath     -> 401 invalid_dpop_proof
//! 4 nonce::check       (pure) when the route requires it           -> 401 use_dpop_nonce + DPoP-Nonce
//! 5 token::validate           JWT/JWKS, then cnf.jkt binding       -> 401 invalid_token | 503
//! 6 replay::check_and_insert  last, so only fully valid proofs use an entry -> 401 | 503
//! 7 forward::prepare_request  strip DPoP + hop-by-hop + spoofed identity; set identity, X-Forwarded-*
//! 8 forward::send             stream to upstream                   -> 502 | 504
//! always: metrics + one access-log line
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{HeaderValue, ACCESS_CONTROL_EXPOSE_HEADERS, ORIGIN};
use http::{Method, Request, Response};
use hyper::body::Incoming;

use crate::body::{self, GatewayBody, IdleTimeoutBody};
use crate::clock::{self, Clock};
use crate::config::{AuthMode, ForwardConfig, OnError};
use crate::credentials;
use crate::dpop::{ProofRequest, ProofVerifier, VerifiedProof};
use crate::forward::{headers as fwd_headers, ForwardError, Forwarder};
use crate::metrics::{self, Metrics};
use crate::nonce::{NonceKeys, NonceStatus};
use crate::refusal::{ChallengeContext, Refusal};
use crate::replay::{Admission, ReplayStore, StoreError};
use crate::request_uri::{self, UriPolicy};
use crate::resource_metadata::{self, ResourceMetadata};
use crate::route::{self, Route, Router};
use crate::token::{self, Scheme, TokenInfo, TokenValidator};

/// Everything the request path needs, built once at start and shared by every connection.
pub struct State {
    /// The routes.
    pub router: Router,
    /// How `htu` is computed.
    pub uri_policy: UriPolicy,
    /// Proof checks, with the cache of checked proof headers.
    pub proofs: ProofVerifier,
    /// Token checks.
    pub tokens: TokenValidator,
    /// The replay store.
    pub replay: ReplayStore,
    /// `replay_cache.on_error`.
    pub on_error: OnError,
    /// The upstream client.
    pub forwarder: Forwarder,
    /// `forward`.
    pub forward: ForwardConfig,
    /// Metrics.
    pub metrics: Metrics,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// `algs="…"` for challenges.
    pub algs: String,
    /// `cors.allow_origins` (`*` allows any).
    pub cors_allow_origins: Vec<String>,
    /// `limits.idle_timeout`, between body reads.
    pub idle_timeout: std::time::Duration,
    /// `limits.max_header_bytes`, for heads the connection's count did not see.
    pub max_header_bytes: usize,
    /// Server nonces, when `dpop.nonce` has secrets.
    pub nonces: Option<NonceKeys>,
    /// RFC 9728 protected resource metadata, when `resource_metadata.enabled`.
    pub resource_metadata: Option<ResourceMetadata>,
}

/// What the listener knows about the connection a request came on.
#[derive(Clone, Copy, Debug)]
pub struct ConnMeta {
    /// The client's address.
    pub remote: SocketAddr,
    /// `http` or `https`, as the client connected.
    pub scheme: &'static str,
}

/// The result of the checks: only [`check`] builds one, and only it lets a request reach the
/// upstream with an identity.
struct Authorized {
    token: String,
    info: Arc<TokenInfo>,
    proof: Option<VerifiedProof>,
    /// The proof's nonce is past half its lifetime: send a new one with the response.
    renew_nonce: bool,
}

/// How a handled request ended, for metrics and the access log.
struct Outcome {
    outcome: &'static str,
    reason: &'static str,
    jkt: Option<String>,
}

/// Handles one request: checks, then forwards or refuses. Never fails.
pub async fn handle(
    state: Arc<State>,
    mut req: Request<Incoming>,
    conn: ConnMeta,
) -> Result<Response<GatewayBody>, std::convert::Infallible> {
    let start = clock::monotonic();
    // Dropped with the future too (a client that goes away mid-request).
    let _in_flight = InFlight::new(&state.metrics.in_flight);
    let request_id = request_id(req.headers_mut());
    if let Some(mut resp) = serve_resource_metadata(&state, &req, conn) {
        resp.headers_mut().insert(X_REQUEST_ID, request_id);
        return Ok(resp);
    }
    let method = req.method().clone();
    let origin = req.headers().get(ORIGIN).cloned();
    let route = state.router.find(req.uri().path());
    let route_label = route.map_or("unmatched", |r| r.prefix.as_str());
    let nonce_route = state.router.nonce_of(route);
    // What a refusal's `resource_metadata` URL is built from: only the headers `htu` reads, and
    // none when `public_url` decides alone, or when no 401 can come (an `auth: none` route).
    let may_challenge = route.is_none_or(|r| r.auth != AuthMode::None);
    let (uri, headers) = match (&state.resource_metadata, &state.uri_policy.public_url) {
        (Some(_), None) if may_challenge => (req.uri().clone(), authority_headers(req.headers())),
        (Some(_), _) if may_challenge => (req.uri().clone(), http::HeaderMap::new()),
        _ => (http::Uri::default(), http::HeaderMap::new()),
    };

    let (mut resp, outcome) = match run(&state, req, conn, route).await {
        Ok((resp, jkt)) => (
            resp,
            Outcome {
                outcome: "forwarded",
                reason: "none",
                jkt,
            },
        ),
        Err(refusal) => {
            let parts = refusal.parts();
            if let Refusal::UpstreamUnavailable(e) = &refusal {
                tracing::warn!(error = %e, "upstream unavailable");
                state
                    .metrics
                    .upstream_errors
                    .with_label_values(&[e.kind()])
                    .inc();
            } else if let Refusal::UpstreamTimeout = &refusal {
                state
                    .metrics
                    .upstream_errors
                    .with_label_values(&["timeout"])
                    .inc();
            }
            tracing::debug!(reason = parts.reason, description = %refusal.description(), "refused");
            // On a nonce route every 401 carries a fresh nonce, so a client's next proof can
            // use it without another round trip (RFC 9449 §8).
            let nonce = match (&state.nonces, nonce_route && parts.status == 401) {
                (Some(keys), true) => Some(keys.issue(state.clock.now())),
                _ => None,
            };
            let resource_metadata = match (&state.resource_metadata, parts.status == 401) {
                (Some(_), true) => base_url(&state, conn, &uri, &headers)
                    .map(|base| resource_metadata::metadata_url(&base)),
                _ => None,
            };
            let ctx = ChallengeContext {
                algs: state.algs.clone(),
                resource_metadata,
                nonce,
                allow_origin: origin.as_ref().filter(|o| state.origin_allowed(o)).cloned(),
            };
            (
                refusal.respond(&ctx),
                Outcome {
                    outcome: parts.code.as_str(),
                    reason: parts.reason,
                    jkt: None,
                },
            )
        }
    };
    if origin.is_some() {
        // RFC 9449 §7.1: browsers may only read these if they are exposed.
        resp.headers_mut().append(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("WWW-Authenticate, DPoP-Nonce"),
        );
    }

    let elapsed = start.elapsed();
    let method_label = metrics::method_class(&method);
    state.metrics.record_request(
        route_label,
        method_label,
        outcome.outcome,
        outcome.reason,
        elapsed,
    );
    resp.headers_mut().insert(X_REQUEST_ID, request_id.clone());
    crate::telemetry::access(&crate::telemetry::AccessLine {
        request_id: request_id.to_str().unwrap_or("-"),
        method: method.as_str(),
        route: route_label,
        status: resp.status().as_u16(),
        outcome: outcome.outcome,
        reason: outcome.reason,
        duration_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        jkt: outcome.jkt.as_deref().unwrap_or("-"),
        client: conn.remote,
    });
    Ok(resp)
}

/// The length of `parts` as an HTTP/1.1 head: request line, `name:value` lines, blank line.
/// A lower bound of what came on the wire (no optional whitespace, origin-form target), so a
/// head the connection's count let through is never refused here.
fn head_len(parts: &http::request::Parts) -> usize {
    let target = parts.uri.path_and_query().map_or(1, |p| p.as_str().len());
    let fields: usize = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 3)
        .sum();
    parts.method.as_str().len() + 1 + target + " HTTP/1.1\r\n".len() + fields + 2
}

/// Steps 1-8. Returns the upstream response and the proof key's thumbprint (for the log).
async fn run(
    state: &State,
    req: Request<Incoming>,
    conn: ConnMeta,
    route: Option<&Route>,
) -> Result<(Response<GatewayBody>, Option<String>), Refusal> {
    let (mut parts, incoming) = req.into_parts();

    // 0 the head's size: the connection counts it as it arrives (`server::deadline`), except a
    // head pipelined behind a body, which hyper read along with the body
    if head_len(&parts) > state.max_header_bytes {
        return Err(Refusal::HeadTooLarge);
    }
    // 1 route, on a canonical path only: a server behind us must not read another path than
    // the one routes were matched on
    route::check_path(parts.uri.path()).map_err(Refusal::InvalidRequest)?;
    let auth = route.map_or(AuthMode::Dpop, |r| r.auth);
    let nonce_required = state.router.nonce_of(route);
    let authorized = if auth == AuthMode::None || is_cors_preflight(&parts.method, &parts.headers) {
        None
    } else {
        let verify_start = clock::monotonic();
        let a = check(state, &parts, conn, auth, nonce_required).await;
        state
            .metrics
            .verification_duration
            .observe(verify_start.elapsed().as_secs_f64());
        Some(a?)
    };
    let jkt = authorized
        .as_ref()
        .and_then(|a| a.proof.as_ref())
        .map(|p| p.jkt().to_string());
    let renew_nonce = authorized.as_ref().is_some_and(|a| a.renew_nonce);

    // 7 headers. The authority htu was checked against (absolute-form or :authority) is the
    // Host the upstream gets: the two must not differ.
    if let Some(v) = parts
        .uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        parts.headers.insert(http::header::HOST, v);
    }
    let host = parts.headers.get(http::header::HOST).cloned();
    let ctx = fwd_headers::ForwardContext {
        config: &state.forward,
        identity: authorized.as_ref().map(|a| fwd_headers::Identity {
            token: &a.token,
            info: &a.info,
            jkt: a.proof.as_ref().map(VerifiedProof::jkt),
        }),
        client_addr: conn.remote.ip(),
        trust_forwarded: state.uri_policy.trust_forwarded,
        proto: conn.scheme,
        host: host.as_ref(),
    };
    fwd_headers::prepare_request(&mut parts.headers, &ctx);

    // 8 send, streaming the body
    let body = body::boxed(IdleTimeoutBody::new(incoming, state.idle_timeout));
    let upstream_start = clock::monotonic();
    let result = state.forwarder.send(Request::from_parts(parts, body)).await;
    state
        .metrics
        .upstream_duration
        .observe(upstream_start.elapsed().as_secs_f64());
    match result {
        Ok(mut resp) => {
            if let (true, Some(keys)) = (renew_nonce, &state.nonces) {
                if let Ok(v) = HeaderValue::from_str(&keys.issue(state.clock.now())) {
                    resp.headers_mut().insert("dpop-nonce", v);
                }
            }
            Ok((resp, jkt))
        }
        Err(ForwardError::Timeout { .. }) => Err(Refusal::UpstreamTimeout),
        Err(e) => Err(Refusal::UpstreamUnavailable(e)),
    }
}

/// Steps 2-6: the checks. Only this function builds an [`Authorized`].
async fn check(
    state: &State,
    parts: &http::request::Parts,
    conn: ConnMeta,
    auth: AuthMode,
    nonce_required: bool,
) -> Result<Authorized, Refusal> {
    // 2 credentials
    let creds = credentials::extract(&parts.headers)?.ok_or(Refusal::NoCredentials)?;
    if creds.scheme == Scheme::Bearer && auth == AuthMode::Dpop {
        // Refused before any token work: a random Bearer token must not cost a signature
        // check or an introspection call on a route that never accepts Bearer.
        return Err(Refusal::Token(crate::token::TokenError::NotBound));
    }
    let now = state.clock.now();

    // 3 proof (a Bearer request's proof, if any, is not used: the binding check refuses a bound
    // token sent as Bearer)
    let proof = match (creds.scheme, creds.proof) {
        (Scheme::Dpop, Some(proof)) => {
            let htu = request_uri::request_uri(
                &state.uri_policy,
                conn.scheme,
                &parts.uri,
                &parts.headers,
            )
            .ok_or(Refusal::InvalidRequest("the request names no host"))?;
            let request = ProofRequest {
                method: parts.method.as_str(),
                htu: &htu,
                access_token: Some(creds.token),
            };
            Some(
                state
                    .proofs
                    .verify(proof, &request, now)
                    .map_err(Refusal::Proof)?,
            )
        }
        (Scheme::Dpop, None) => return Err(Refusal::ProofMissing),
        (Scheme::Bearer, _) => None,
    };

    // 4 nonce: after the signature (a forged proof learns nothing), before the replay entry
    // (a nonce retry must not burn the client's jti)
    let mut renew_nonce = false;
    if let (true, Some(p)) = (nonce_required, &proof) {
        let keys = state
            .nonces
            .as_ref()
            .ok_or(Refusal::UseNonce(crate::nonce::NonceError::NoSecrets))?;
        match keys.check(p.nonce(), now) {
            Ok(NonceStatus::Fresh) => {}
            Ok(NonceStatus::NearExpiry) => renew_nonce = true,
            Err(e) => return Err(Refusal::UseNonce(e)),
        }
    }

    // 5 token, then its binding to the proof's key
    let info = state
        .tokens
        .validate(creds.token, now)
        .await
        .map_err(Refusal::Token)?;
    token::check_binding(
        &info,
        creds.scheme,
        proof.as_ref().map(VerifiedProof::jkt),
        auth == AuthMode::DpopOrBearer,
    )
    .map_err(Refusal::Token)?;

    // 6 replay: last, so that only a fully valid proof uses an entry
    if let Some(p) = &proof {
        match state.replay.check_and_insert(p.replay_key(), now).await {
            Ok(Admission::Fresh) => {}
            Ok(Admission::Replayed) => return Err(Refusal::Replayed),
            Err(StoreError::Full { retry_after }) => {
                state.metrics.replay_full.inc();
                return Err(Refusal::ReplayStoreFull { retry_after });
            }
            Err(StoreError::Unavailable(why)) => match state.on_error {
                OnError::Reject => {
                    state
                        .metrics
                        .replay_store_errors
                        .with_label_values(&["reject"])
                        .inc();
                    tracing::warn!(error = %why, "replay store unavailable; refusing (on_error: reject)");
                    return Err(Refusal::ReplayStoreUnavailable);
                }
                OnError::Allow => {
                    state
                        .metrics
                        .replay_store_errors
                        .with_label_values(&["allow"])
                        .inc();
                    tracing::warn!(error = %why, "replay store unavailable; forwarding (on_error: allow)");
                }
            },
        }
    }

    Ok(Authorized {
        token: creds.token.to_owned(),
        info,
        proof,
        renew_nonce,
    })
}

/// `GET /.well-known/oauth-protected-resource[/path]` (RFC 9728 §3), answered by the gateway.
fn serve_resource_metadata(
    state: &State,
    req: &Request<Incoming>,
    conn: ConnMeta,
) -> Option<Response<GatewayBody>> {
    let rm = state.resource_metadata.as_ref()?;
    let path = resource_metadata::well_known_path(req.uri().path())?;
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return None;
    }
    let base = base_url(state, conn, req.uri(), req.headers())?;
    let mut resp = Response::new(body::full(rm.document(&format!("{base}{path}"))));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Some(resp)
}

/// The headers [`request_uri::request_uri`] reads.
fn authority_headers(headers: &http::HeaderMap) -> http::HeaderMap {
    const NAMES: [http::HeaderName; 5] = [
        http::header::HOST,
        http::header::FORWARDED,
        fwd_headers::X_FORWARDED_PROTO,
        fwd_headers::X_FORWARDED_HOST,
        http::HeaderName::from_static("x-forwarded-port"),
    ];
    let mut out = http::HeaderMap::new();
    for name in NAMES {
        if let Some(v) = headers.get(&name) {
            out.insert(name, v.clone());
        }
    }
    out
}

/// `scheme://authority` of the resource as clients address it (the `htu` rules).
fn base_url(
    state: &State,
    conn: ConnMeta,
    uri: &http::Uri,
    headers: &http::HeaderMap,
) -> Option<String> {
    let full = request_uri::request_uri(&state.uri_policy, conn.scheme, uri, headers)?;
    full.strip_suffix(uri.path()).map(str::to_owned)
}

/// Counts a request in flight for as long as it lives.
struct InFlight(prometheus::IntGauge);

impl InFlight {
    fn new(gauge: &prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `X-Request-Id`: the client's (or the proxy's in front), when it is a sane token, else a new
/// random one; set on the forwarded request, the response and the access log.
const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// Longest client-supplied request id kept.
const MAX_REQUEST_ID: usize = 128;

const HEX: &[u8; 16] = b"0123456789abcdef";

fn request_id(headers: &mut http::HeaderMap) -> HeaderValue {
    let mut given = headers.get_all(&X_REQUEST_ID).iter();
    if let (Some(v), None) = (given.next(), given.next()) {
        let ok = !v.is_empty()
            && v.len() <= MAX_REQUEST_ID
            && v.as_bytes().iter().all(|b| b.is_ascii_graphic());
        if ok {
            return v.clone();
        }
    }
    // A random per-process prefix and a counter: unique without a syscall per request.
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 8];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
        u64::from_be_bytes(bytes)
    });
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut id = [0u8; 32];
    for (i, b) in prefix
        .to_be_bytes()
        .into_iter()
        .chain(n.to_be_bytes())
        .enumerate()
    {
        id[2 * i] = HEX[usize::from(b >> 4)];
        id[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    let value = HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("-"));
    headers.insert(X_REQUEST_ID, value.clone());
    value
}

/// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`. Forwarded
/// without a proof: browsers never attach credentials to it, and the upstream owns its policy.
/// A request that carries credentials or a body is not a preflight, whatever its headers say.
fn is_cors_preflight(method: &Method, headers: &http::HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(ORIGIN)
        && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
        && !headers.contains_key(http::header::AUTHORIZATION)
        && !headers.contains_key("dpop")
        && !headers.contains_key(http::header::TRANSFER_ENCODING)
        && headers
            .get(http::header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0")
}

// === impl State ===

impl State {
    fn origin_allowed(&self, origin: &HeaderValue) -> bool {
        self.cors_allow_origins
            .iter()
            .any(|o| o == "*" || origin.as_bytes() == o.as_bytes())
    }
}
