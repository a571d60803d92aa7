//! Every refusal the gateway makes, and the ONE place where a refusal becomes an HTTP response
//! (RFC 9449 §7.1, §8, §9; RFC 6750 §3; RFC 9728 §5.1): status, `error` code, description,
//! `WWW-Authenticate`, `DPoP-Nonce`, `Retry-After`, CORS and the JSON body, for responses hyper
//! sends (`Refusal::respond`) and for the bytes the connection layer writes itself before a
//! request was parsed ([`Refusal::http1_bytes`]: 408, 414 and 431).
//!
//! The `match` in [`Refusal::parts`] is exhaustive with no `_ =>` arm: a new variant does not
//! compile until someone decides its status, code, headers and metric [`Reason`].

use http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};

use crate::body::{self, BodyFault, GatewayBody};
use crate::dpop::{ProofCheck, ProofError};
use crate::forward::headers::{ClaimValueError, IdentityClaimError};
use crate::forward::ForwardError;
use crate::nonce::NonceError;
use crate::policy::PolicyError;
use crate::replay::IssuedBeforeStart;
use crate::request_uri::{self, HostError};
use crate::resource_metadata;
use crate::route::Route;
use crate::state::{ConnMeta, State};
use crate::token::{TokenCheck, TokenError, TokenFailure};

/// Why a request was not forwarded.
#[derive(Debug)]
pub enum Refusal {
    /// A protected route and no credentials at all (RFC 6750 §3.1: no `error` code).
    NoCredentials,
    /// Duplicate `DPoP` or `Authorization` headers, an unparseable `Authorization`, a
    /// non-canonical path (RFC 6750 §3.1 `invalid_request`).
    InvalidRequest(&'static str),
    /// The request names its host in a way RFC 9112 §3.2 answers with 400: no `Host` on
    /// HTTP/1.1, two `Host` fields, a `Host` or target authority that is not `host[:port]`.
    Host(HostError),
    /// `Authorization: DPoP` without a `DPoP` header (RFC 9449 §7.1).
    ProofMissing,
    /// A proof failed a check of RFC 9449 §4.3.
    Proof(ProofError),
    /// The proof's `jti` was seen before within its window (RFC 9449 §11.1).
    Replayed,
    /// The proof was issued before this process started (memory replay store, within
    /// `proof_max_age + clock_skew` of the start), so a previous process may have accepted
    /// it: `use_dpop_nonce` with a fresh nonce on a route that uses nonces (RFC 9449 §8), else
    /// `invalid_dpop_proof`. Either way the client retries with a fresh proof.
    IssuedBeforeStart {
        /// The proof's `iat` and the start second.
        issued: IssuedBeforeStart,
        /// Whether the route uses server nonces.
        nonce_route: bool,
    },
    /// The route requires a server nonce and the proof's is missing, stale or forged
    /// (RFC 9449 §8, §9): the response carries a fresh `DPoP-Nonce`.
    UseNonce(NonceError),
    /// The access token is invalid or not bound to the proof's key (the client's fault).
    Token(TokenError),
    /// A token claim an identity header carries (`sub`, `client_id`, `scope`) is not a clean
    /// field value: the upstream would read another identity than the token's (401
    /// `invalid_token`, RFC 6750 §3.1).
    IdentityClaim(IdentityClaimError),
    /// The token is valid and bound, but the route's policy refuses it: a scope or claim it
    /// requires is missing (403 `insufficient_scope`, RFC 6750 §3.1), or its issuer is not
    /// among the route's `issuers` (401 `invalid_token`).
    Policy(PolicyError),
    /// Routes match the path but none takes the method (405 with `Allow`).
    MethodNotAllowed {
        /// The `Allow` value: the methods of the path's routes.
        allow: String,
    },
    /// The token service (JWKS never loaded, introspection down) could not answer: ours.
    TokenService(String),
    /// The replay store is full of live entries; the oldest expires in `retry_after` seconds.
    ReplayStoreFull {
        /// Seconds until a slot frees (at least 1).
        retry_after: u64,
    },
    /// The replay store is unreachable or slower than its timeout, and `on_error` is `reject`.
    ReplayStoreUnavailable,
    /// The proof's key already holds `replay_cache.per_key_limit` live replay entries (429);
    /// its oldest expires in `retry_after` seconds. Only that key is refused.
    KeyLimited {
        /// Seconds until the key may record another proof (at least 1).
        retry_after: u64,
    },
    /// The upstream refused the connection, broke the exchange (502) or sent no response
    /// headers within `upstream.request_timeout` (504).
    Upstream(ForwardError),
    /// The client's request body failed while it was being forwarded: malformed (a bad
    /// chunk size) or cut short (400), or no data for `idle_timeout` (408); or it is over the
    /// route's `max_body_bytes`, declared (`Content-Length`, before anything is sent) or grown
    /// while streamed (413). The client's fault, not the upstream's; the connection closes.
    RequestBody(BodyFault),
    /// The request head is over `limits.max_header_bytes` (431, then the connection closes).
    HeadTooLarge,
    /// The request head did not arrive within `limits.header_read_timeout` (408, then closed).
    HeadTimeout,
    /// The request line alone is over `limits.max_header_bytes` (414, then the connection
    /// closes): the target is too long, whatever the fields.
    UriTooLong,
    /// A field value starts or ends with whitespace (SP, HTAB): a malformed HTTP/2 request
    /// (RFC 9113 §8.2.1), which an intermediary must not forward (400). HTTP/1 parsing removes
    /// such whitespace, so only HTTP/2 requests carry it.
    MalformedField,
    /// The request has a transfer coding other than `chunked` alone (`gzip, chunked`): the
    /// gateway does not decode it and must not forward its bytes as the body (RFC 9112 §6.1:
    /// 501, then closed).
    UnsupportedTransferCoding,
}

/// The `error` code of a refusal (RFC 6750 §3.1, RFC 9449 §7.1, §12.2): the `outcome` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// No credentials: a challenge without an error code.
    Unauthorized,
    /// `invalid_request`.
    InvalidRequest,
    /// `invalid_dpop_proof`.
    InvalidDpopProof,
    /// `invalid_token`.
    InvalidToken,
    /// `use_dpop_nonce`.
    UseDpopNonce,
    /// `insufficient_scope` (403).
    InsufficientScope,
    /// 405: no route of the path takes the method.
    MethodNotAllowed,
    /// 503: a dependency of the check is down or full; 429: one proof key over its share of
    /// the replay store (`temporarily_unavailable` either way).
    Unavailable,
    /// 502/504: the upstream failed.
    UpstreamError,
}

/// Why a request was refused, finer than its [`ErrorCode`]: a closed set, the `reason` label of
/// the request metrics and the access log. No strings: every value is a variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No credentials on a protected route.
    NoCredentials,
    /// A malformed request (headers, path).
    InvalidRequest,
    /// A missing, repeated or malformed `Host` (or target authority).
    Host,
    /// `Authorization: DPoP` without a proof.
    ProofMissing,
    /// A proof check failed.
    Proof(ProofCheck),
    /// The proof was used before.
    Replay,
    /// The proof was issued before this process started (memory replay store).
    IssuedBeforeStart,
    /// The route requires a nonce and the proof has none.
    NonceMissing,
    /// The nonce is malformed, forged or from a retired secret.
    NonceInvalid,
    /// The nonce expired (or comes from the future).
    NonceExpired,
    /// A token check failed.
    Token(TokenCheck),
    /// A claim is not a clean identity header value.
    IdentityClaim,
    /// A scope the route requires is missing from the token (403).
    Scope,
    /// A claim the route requires is missing or has another value (403).
    Claim,
    /// The token's issuer is not among the route's `issuers` (401).
    IssuerNotAllowed,
    /// No route of the path takes the method (405).
    MethodNotAllowed,
    /// The token service is down.
    TokenService,
    /// The replay cache is full of live entries.
    ReplayStoreFull,
    /// The replay store is unreachable (`on_error: reject`).
    ReplayStore,
    /// The proof's key is over `replay_cache.per_key_limit`.
    PerKeyLimit,
    /// No connection to the upstream.
    UpstreamConnect,
    /// The upstream sent no response headers in time.
    UpstreamTimeout,
    /// The upstream broke the exchange.
    UpstreamProtocol,
    /// The TLS handshake with the upstream failed (its certificate did not verify).
    UpstreamTls,
    /// The client's request body was malformed or cut short while being forwarded.
    RequestBody,
    /// The client's request body stalled past `idle_timeout` while being forwarded.
    RequestBodyTimeout,
    /// The client's request body is over the route's `max_body_bytes` (413).
    BodyTooLarge,
    /// The request head is over `limits.max_header_bytes`.
    HeadTooLarge,
    /// The request head was too slow.
    HeadTimeout,
    /// The request line is over `limits.max_header_bytes`.
    UriTooLong,
    /// A transfer coding other than `chunked`.
    TransferCoding,
    /// A field value with whitespace around it (HTTP/2).
    MalformedField,
}

/// What [`Refusal::parts`] decides.
#[derive(Debug)]
pub struct RefusalParts {
    /// The status code.
    pub status: StatusCode,
    /// The `error` code (also the metric `outcome`).
    pub code: ErrorCode,
    /// The metric reason.
    pub reason: Reason,
    /// Whether to send a `WWW-Authenticate: DPoP` challenge.
    pub challenge: bool,
    /// `Retry-After` seconds, for 503 and 429.
    pub retry_after: Option<u64>,
    /// Whether the connection ends after the response (408, 414, 431, 501, a broken body).
    pub close: bool,
}

/// The request a refusal answers, as far as its response depends on it.
pub(crate) struct Answering<'a> {
    /// The gateway's state (algorithms, nonce keys, CORS origins, metadata).
    pub(crate) state: &'a State,
    /// The connection the request came on.
    pub(crate) conn: ConnMeta,
    /// The request's head, while it was not forwarded (`None` for an upstream failure, which
    /// carries no challenge).
    pub(crate) head: Option<&'a http::request::Parts>,
    /// The request's route: its nonce rule, and the RFC 9728 document a 401 names.
    pub(crate) route: &'a Route,
    /// The request's `Origin`.
    pub(crate) origin: Option<&'a HeaderValue>,
}

/// The per-request parts of a refusal's response, once decided.
#[derive(Clone, Debug, Default)]
pub struct Wire {
    /// `algs="ES256 …"` value (RFC 9449 §7.1), precomputed from `dpop.algorithms`.
    pub algs: String,
    /// `resource_metadata="…"` (RFC 9728 §5.1), when enabled.
    pub resource_metadata: Option<String>,
    /// A fresh `DPoP-Nonce` to send, when nonces are in force.
    pub nonce: Option<String>,
    /// `Access-Control-Allow-Origin` to send (the request's allowed `Origin`).
    pub allow_origin: Option<HeaderValue>,
}

// === impl ErrorCode ===

impl ErrorCode {
    /// The wire `error` value (and metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Unavailable => "temporarily_unavailable",
            ErrorCode::UpstreamError => "upstream_error",
        }
    }
}

// === impl Reason ===

impl Reason {
    /// Every reason, for metric pre-registration and documentation.
    pub fn all() -> impl Iterator<Item = Reason> {
        use Reason as R;
        [
            R::NoCredentials,
            R::InvalidRequest,
            R::Host,
            R::ProofMissing,
            R::Replay,
            R::IssuedBeforeStart,
            R::NonceMissing,
            R::NonceInvalid,
            R::NonceExpired,
            R::IdentityClaim,
            R::Scope,
            R::Claim,
            R::IssuerNotAllowed,
            R::MethodNotAllowed,
            R::TokenService,
            R::ReplayStoreFull,
            R::ReplayStore,
            R::PerKeyLimit,
            R::UpstreamConnect,
            R::UpstreamTimeout,
            R::UpstreamProtocol,
            R::UpstreamTls,
            R::RequestBody,
            R::RequestBodyTimeout,
            R::BodyTooLarge,
            R::HeadTooLarge,
            R::HeadTimeout,
            R::UriTooLong,
            R::TransferCoding,
            R::MalformedField,
        ]
        .into_iter()
        .chain(ProofCheck::ALL.into_iter().map(R::Proof))
        .chain(TokenCheck::ALL.into_iter().map(R::Token))
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoCredentials => "no_credentials",
            Reason::InvalidRequest => "invalid_request",
            Reason::Host => "host",
            Reason::ProofMissing => "missing",
            Reason::Proof(c) => c.as_str(),
            Reason::Replay => "replay",
            Reason::IssuedBeforeStart => "issued_before_start",
            Reason::NonceMissing => "nonce_missing",
            Reason::NonceInvalid => "nonce_invalid",
            Reason::NonceExpired => "nonce_expired",
            Reason::Token(c) => c.as_str(),
            Reason::IdentityClaim => "identity_claim",
            Reason::Scope => "insufficient_scope",
            Reason::Claim => "claim",
            Reason::IssuerNotAllowed => "issuer_not_allowed",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::TokenService => "token_service",
            Reason::ReplayStoreFull => "replay_store_full",
            Reason::ReplayStore => "replay_store",
            Reason::PerKeyLimit => "per_key_limit",
            Reason::UpstreamConnect => "connect",
            Reason::UpstreamTimeout => "timeout",
            Reason::UpstreamProtocol => "protocol",
            Reason::UpstreamTls => "tls",
            Reason::RequestBody => "request_body",
            Reason::RequestBodyTimeout => "request_body_timeout",
            Reason::BodyTooLarge => "body_too_large",
            Reason::HeadTooLarge => "head_too_large",
            Reason::HeadTimeout => "head_timeout",
            Reason::UriTooLong => "uri_too_long",
            Reason::TransferCoding => "transfer_coding",
            Reason::MalformedField => "malformed_field",
        }
    }

    /// Whether this is an upstream failure's reason (`dpop_gateway_upstream_errors_total`).
    pub fn is_upstream(self) -> bool {
        matches!(
            self,
            Reason::UpstreamConnect
                | Reason::UpstreamTimeout
                | Reason::UpstreamProtocol
                | Reason::UpstreamTls
        )
    }

    /// The reason of an upstream failure.
    pub fn of_upstream(e: &ForwardError) -> Reason {
        match e {
            ForwardError::Connect(_) => Reason::UpstreamConnect,
            ForwardError::Tls(_) => Reason::UpstreamTls,
            ForwardError::Timeout { .. } => Reason::UpstreamTimeout,
            ForwardError::Other(_) => Reason::UpstreamProtocol,
        }
    }
}

// === impl Refusal ===

impl Refusal {
    /// The single decision table: status, code, reason and headers of every refusal.
    pub fn parts(&self) -> RefusalParts {
        use ErrorCode as C;
        use Reason as R;
        let (status, code, reason, challenge, retry_after) = match self {
            Refusal::NoCredentials => (401, C::Unauthorized, R::NoCredentials, true, None),
            Refusal::InvalidRequest(_) => (400, C::InvalidRequest, R::InvalidRequest, true, None),
            Refusal::Host(_) => (400, C::InvalidRequest, R::Host, true, None),
            Refusal::ProofMissing => (401, C::InvalidDpopProof, R::ProofMissing, true, None),
            Refusal::Proof(e) => (401, C::InvalidDpopProof, R::Proof(e.check()), true, None),
            Refusal::Replayed => (401, C::InvalidDpopProof, R::Replay, true, None),
            Refusal::IssuedBeforeStart {
                nonce_route: true, ..
            } => (401, C::UseDpopNonce, R::IssuedBeforeStart, true, None),
            Refusal::IssuedBeforeStart {
                nonce_route: false, ..
            } => (401, C::InvalidDpopProof, R::IssuedBeforeStart, true, None),
            Refusal::UseNonce(e) => (401, C::UseDpopNonce, nonce_reason(e), true, None),
            Refusal::Token(e) => (401, C::InvalidToken, R::Token(e.check()), true, None),
            Refusal::IdentityClaim(_) => (401, C::InvalidToken, R::IdentityClaim, true, None),
            Refusal::Policy(PolicyError::Scope { .. }) => {
                (403, C::InsufficientScope, R::Scope, true, None)
            }
            Refusal::Policy(PolicyError::Claim { .. }) => {
                (403, C::InsufficientScope, R::Claim, true, None)
            }
            Refusal::Policy(PolicyError::Issuer { .. }) => {
                (401, C::InvalidToken, R::IssuerNotAllowed, true, None)
            }
            Refusal::MethodNotAllowed { .. } => {
                (405, C::MethodNotAllowed, R::MethodNotAllowed, false, None)
            }
            Refusal::TokenService(_) => (503, C::Unavailable, R::TokenService, false, Some(1)),
            Refusal::ReplayStoreFull { retry_after } => (
                503,
                C::Unavailable,
                R::ReplayStoreFull,
                false,
                Some(*retry_after),
            ),
            Refusal::ReplayStoreUnavailable => {
                (503, C::Unavailable, R::ReplayStore, false, Some(1))
            }
            Refusal::KeyLimited { retry_after } => (
                429,
                C::Unavailable,
                R::PerKeyLimit,
                false,
                Some(*retry_after),
            ),
            Refusal::Upstream(e @ ForwardError::Timeout { .. }) => {
                (504, C::UpstreamError, Reason::of_upstream(e), false, None)
            }
            Refusal::Upstream(e) => (502, C::UpstreamError, Reason::of_upstream(e), false, None),
            Refusal::RequestBody(BodyFault::Broken) => {
                (400, C::InvalidRequest, R::RequestBody, false, None)
            }
            Refusal::RequestBody(BodyFault::TimedOut) => {
                (408, C::InvalidRequest, R::RequestBodyTimeout, false, None)
            }
            Refusal::RequestBody(BodyFault::TooLarge) => {
                (413, C::InvalidRequest, R::BodyTooLarge, false, None)
            }
            Refusal::HeadTooLarge => (431, C::InvalidRequest, R::HeadTooLarge, false, None),
            Refusal::HeadTimeout => (408, C::InvalidRequest, R::HeadTimeout, false, None),
            Refusal::UriTooLong => (414, C::InvalidRequest, R::UriTooLong, false, None),
            Refusal::UnsupportedTransferCoding => {
                (501, C::InvalidRequest, R::TransferCoding, false, None)
            }
            Refusal::MalformedField => (400, C::InvalidRequest, R::MalformedField, false, None),
        };
        RefusalParts {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            reason,
            challenge,
            retry_after,
            close: matches!(
                self,
                Refusal::RequestBody(_)
                    | Refusal::HeadTooLarge
                    | Refusal::HeadTimeout
                    | Refusal::UriTooLong
                    | Refusal::UnsupportedTransferCoding
            ),
        }
    }

    /// A human-readable description, safe to send and log (no token, no proof).
    pub fn description(&self) -> String {
        match self {
            Refusal::NoCredentials => "DPoP credentials are required".to_owned(),
            Refusal::InvalidRequest(what) => (*what).to_owned(),
            Refusal::Host(HostError::Missing) => "the request has no Host header".to_owned(),
            Refusal::Host(HostError::Repeated) => {
                "the request has more than one Host header".to_owned()
            }
            Refusal::Host(HostError::Host(e)) => {
                format!("the Host header is not a host[:port]: {e}")
            }
            Refusal::Host(HostError::Authority(e)) => {
                format!("the request target's authority is not a host[:port]: {e}")
            }
            Refusal::ProofMissing => "the DPoP header is missing".to_owned(),
            Refusal::Proof(e) => e.to_string(),
            Refusal::Replayed => "the DPoP proof was already used".to_owned(),
            Refusal::IssuedBeforeStart { issued, .. } => format!(
                "the DPoP proof was issued (iat {}) before the gateway started ({}); retry with a fresh proof",
                issued.iat.as_secs(),
                issued.start.as_secs()
            ),
            Refusal::UseNonce(e) => format!("a fresh server nonce is required: {e}"),
            Refusal::Token(e) => e.to_string(),
            Refusal::IdentityClaim(e) => format!(
                "access token claim {} cannot be sent as an identity header: {}",
                e.claim,
                match e.why {
                    ClaimValueError::Whitespace => "it has leading or trailing whitespace",
                    ClaimValueError::Control => "it has a control character",
                }
            ),
            Refusal::Policy(e) => e.to_string(),
            Refusal::MethodNotAllowed { allow } => {
                format!("the method is not allowed here (allowed: {allow})")
            }
            // The cause is logged, not sent: it describes our network.
            Refusal::TokenService(_) => "the token service is unavailable".to_owned(),
            Refusal::ReplayStoreFull { .. } => "the replay cache is full; retry later".to_owned(),
            Refusal::ReplayStoreUnavailable => "the replay store is unavailable".to_owned(),
            Refusal::KeyLimited { .. } => {
                "this DPoP key has too many recent proofs; retry later".to_owned()
            }
            Refusal::Upstream(ForwardError::Timeout { .. }) => {
                "the upstream did not answer in time".to_owned()
            }
            Refusal::Upstream(_) => "the upstream is unavailable".to_owned(),
            Refusal::RequestBody(BodyFault::Broken) => {
                "the request body is malformed or ended early".to_owned()
            }
            Refusal::RequestBody(BodyFault::TimedOut) => {
                "the request body stopped arriving (idle_timeout)".to_owned()
            }
            Refusal::RequestBody(BodyFault::TooLarge) => {
                "the request body is over this route's max_body_bytes".to_owned()
            }
            Refusal::HeadTooLarge => "the request head is over max_header_bytes".to_owned(),
            Refusal::HeadTimeout => "the request head did not arrive in time".to_owned(),
            Refusal::UriTooLong => "the request line is over max_header_bytes".to_owned(),
            Refusal::UnsupportedTransferCoding => {
                "transfer codings other than chunked are not supported".to_owned()
            }
            Refusal::MalformedField => {
                "a field value starts or ends with whitespace (RFC 9113 section 8.2.1)".to_owned()
            }
        }
    }

    /// The response for the request `req` describes: the per-request parts ([`Wire`]) are
    /// decided here, then rendered by [`Refusal::render`].
    pub(crate) fn respond(&self, req: &Answering<'_>) -> Response<GatewayBody> {
        let state = req.state;
        let status = self.parts().status;
        let unauthorized = status == StatusCode::UNAUTHORIZED;
        // On a nonce route every 401 carries a fresh nonce, so a client's next proof can use it
        // without another round trip (RFC 9449 §8).
        let nonce = match (&state.nonces, req.route.nonce && unauthorized) {
            (Some(keys), true) => Some(keys.issue(state.clock.now())),
            _ => None,
        };
        // RFC 9728 §5.1: every 401 names the resource's metadata: the route's own document
        // when its routes name `issuers` (`authorization_servers` differ there), else the
        // root's.
        let resource_metadata = match (&state.resource_metadata, req.head, unauthorized) {
            (Some(_), Some(head), true) => base_url(state, req.conn, head).map(|base| {
                let path = match state.router.accepted_issuers(req.route) {
                    Some(_) => req.route.prefix.trim_end_matches('/'),
                    None => "",
                };
                resource_metadata::metadata_url(&format!("{base}{path}"))
            }),
            _ => None,
        };
        let wire = Wire {
            algs: state.algs.clone(),
            resource_metadata,
            nonce,
            allow_origin: req.origin.filter(|o| state.origin_allowed(o)).cloned(),
        };
        self.render(&wire)
    }

    /// Renders the refusal: status, `WWW-Authenticate`, `DPoP-Nonce`, `Retry-After`, CORS and
    /// a small JSON body `{"error": …, "error_description": …}`.
    pub fn render(&self, wire: &Wire) -> Response<GatewayBody> {
        let (parts, headers, body) = self.head(wire);
        let mut resp = Response::new(body::full(body));
        *resp.status_mut() = parts.status;
        *resp.headers_mut() = headers;
        resp
    }

    /// The bytes of the HTTP/1.1 response the connection layer writes itself, for refusals made
    /// before hyper parsed a request (408, 414, 431): the same status, headers and body as
    /// [`Refusal::render`] would give.
    pub fn http1_bytes(&self) -> Vec<u8> {
        let (parts, headers, body) = self.head(&Wire::default());
        let mut out = format!(
            "HTTP/1.1 {} {}\r\n",
            parts.status.as_u16(),
            parts.status.canonical_reason().unwrap_or("")
        )
        .into_bytes();
        for (name, value) in &headers {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(body.as_bytes());
        out
    }

    /// Status, headers and body text.
    fn head(&self, wire: &Wire) -> (RefusalParts, http::HeaderMap, String) {
        let parts = self.parts();
        let description = self.description();
        let mut h = http::HeaderMap::new();
        if parts.close {
            // RFC 9110 §15.5.9, §15.5.20 / the contract: the connection ends here.
            h.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        if parts.challenge {
            h.insert(
                WWW_AUTHENTICATE,
                challenge(parts.code, &description, self.scope(), wire),
            );
        }
        if let Refusal::MethodNotAllowed { allow } = self {
            if let Ok(v) = HeaderValue::from_str(allow) {
                h.insert(http::header::ALLOW, v);
            }
        }
        if let Some(secs) = parts.retry_after {
            h.insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if let Some(v) = wire
            .nonce
            .as_deref()
            .and_then(|n| HeaderValue::from_str(n).ok())
        {
            h.insert("dpop-nonce", v);
        }
        if let Some(origin) = &wire.allow_origin {
            h.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        }
        let body = serde_json::json!({
            "error": parts.code.as_str(),
            "error_description": description,
        })
        .to_string();
        (parts, h, body)
    }
}

impl Refusal {
    /// The `scope` challenge parameter (RFC 6750 §3.1): a 403 on a route that requires scopes.
    fn scope(&self) -> Option<&str> {
        match self {
            Refusal::Policy(e) => e.required_scopes(),
            _ => None,
        }
    }
}

impl From<TokenFailure> for Refusal {
    /// A token the client got wrong is a 401; a token service that could not answer is ours.
    fn from(e: TokenFailure) -> Self {
        match e {
            TokenFailure::Invalid(e) => Refusal::Token(e),
            TokenFailure::Unavailable(why) => Refusal::TokenService(why),
        }
    }
}

/// `scheme://authority` of the resource as clients address it (the `htu` rules).
pub(crate) fn base_url(
    state: &State,
    conn: ConnMeta,
    head: &http::request::Parts,
) -> Option<String> {
    let full = request_uri::request_uri(&state.uri_policy, conn.scheme, head)?;
    full.strip_suffix(head.uri.path()).map(str::to_owned)
}

/// The closed-set metric reason of a nonce refusal.
fn nonce_reason(e: &NonceError) -> Reason {
    match e {
        NonceError::Missing => Reason::NonceMissing,
        NonceError::Malformed | NonceError::BadMac => Reason::NonceInvalid,
        NonceError::Expired { .. } | NonceError::FromFuture { .. } => Reason::NonceExpired,
    }
}

/// `DPoP error="…", error_description="…"[, scope="…"], algs="…"[, resource_metadata="…"]`.
fn challenge(code: ErrorCode, description: &str, scope: Option<&str>, wire: &Wire) -> HeaderValue {
    let mut v = String::from("DPoP");
    let mut sep = " ";
    if code != ErrorCode::Unauthorized {
        v.push_str(&format!("{sep}error=\"{}\"", code.as_str()));
        sep = ", ";
        v.push_str(&format!(
            "{sep}error_description=\"{}\"",
            quoted_safe(description)
        ));
    }
    if let Some(scope) = scope {
        // RFC 6750 §3: the scopes needed; scope names cannot hold `"` or `\`.
        v.push_str(&format!("{sep}scope=\"{}\"", quoted_safe(scope)));
    }
    v.push_str(&format!("{sep}algs=\"{}\"", wire.algs));
    if let Some(rm) = &wire.resource_metadata {
        v.push_str(&format!(", resource_metadata=\"{}\"", quoted_safe(rm)));
    }
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("DPoP"))
}

/// RFC 6750 §3: `error_description` is limited to %x20-21 / %x23-5B / %x5D-7E (no `"` or `\`).
fn quoted_safe(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            c if (' '..='~').contains(&c) => c,
            _ => '?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire() -> Wire {
        Wire {
            algs: "ES256 EdDSA".into(),
            ..Default::default()
        }
    }

    #[test]
    fn no_credentials_challenge_has_no_error_code() {
        let resp = Refusal::NoCredentials.render(&wire());
        assert_eq!(resp.status(), 401);
        assert_eq!(
            resp.headers()[WWW_AUTHENTICATE],
            "DPoP algs=\"ES256 EdDSA\""
        );
    }

    #[test]
    fn replay_is_invalid_dpop_proof_with_description() {
        let resp = Refusal::Replayed.render(&wire());
        assert_eq!(resp.status(), 401);
        let www = resp.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(www.starts_with("DPoP error=\"invalid_dpop_proof\", error_description=\""));
        assert!(www.ends_with("algs=\"ES256 EdDSA\""));
    }

    #[test]
    fn a_proof_from_before_the_start_is_invalid_or_asks_for_a_nonce() {
        let issued = IssuedBeforeStart {
            iat: crate::clock::UnixTime(99),
            start: crate::clock::UnixTime(100),
        };
        for (nonce_route, code) in [
            (false, ErrorCode::InvalidDpopProof),
            (true, ErrorCode::UseDpopNonce),
        ] {
            let r = Refusal::IssuedBeforeStart {
                issued,
                nonce_route,
            };
            assert_eq!(r.parts().status, 401);
            assert_eq!(r.parts().code, code);
            assert_eq!(r.parts().reason.as_str(), "issued_before_start");
            assert!(r.description().contains("fresh proof"));
        }
    }

    #[test]
    fn full_store_is_503_with_retry_after() {
        let resp = Refusal::ReplayStoreFull { retry_after: 42 }.render(&wire());
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()[RETRY_AFTER], "42");
        assert!(resp.headers().get(WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn a_policy_failure_is_403_insufficient_scope_naming_the_required_scopes() {
        let r = Refusal::Policy(PolicyError::Scope {
            missing: "write".into(),
            required: "read write".into(),
        });
        let resp = r.render(&wire());
        assert_eq!(resp.status(), 403);
        assert_eq!(
            resp.headers()[WWW_AUTHENTICATE],
            "DPoP error=\"insufficient_scope\", error_description=\"the access token lacks scope 'write'\", scope=\"read write\", algs=\"ES256 EdDSA\""
        );
        assert_eq!(resp.headers()[http::header::CACHE_CONTROL], "no-store");
        assert_eq!(r.parts().reason.as_str(), "insufficient_scope");
        let claim = Refusal::Policy(PolicyError::Claim {
            name: "tenant".into(),
            required: None,
        });
        let www = claim.render(&wire()).headers()[WWW_AUTHENTICATE].clone();
        assert!(!www.to_str().unwrap().contains("scope="), "{www:?}");
        assert_eq!(claim.parts().reason.as_str(), "claim");
    }

    #[test]
    fn a_method_no_route_takes_is_405_with_allow_and_no_challenge() {
        let r = Refusal::MethodNotAllowed {
            allow: "GET, HEAD".into(),
        };
        let resp = r.render(&wire());
        assert_eq!(resp.status(), 405);
        assert_eq!(resp.headers()[http::header::ALLOW], "GET, HEAD");
        assert!(resp.headers().get(WWW_AUTHENTICATE).is_none());
        assert_eq!(r.parts().code.as_str(), "method_not_allowed");
    }

    #[test]
    fn a_body_over_its_limit_is_413_closed_without_a_challenge() {
        let r = Refusal::RequestBody(BodyFault::TooLarge);
        let resp = r.render(&wire());
        assert_eq!(resp.status(), 413);
        assert!(resp.headers().get(WWW_AUTHENTICATE).is_none());
        assert_eq!(resp.headers()[http::header::CONNECTION], "close");
        assert_eq!(r.parts().reason.as_str(), "body_too_large");
        assert_eq!(r.parts().code.as_str(), "invalid_request");
    }

    #[test]
    fn a_key_over_its_limit_is_429_with_retry_after_and_its_own_reason() {
        let r = Refusal::KeyLimited { retry_after: 7 };
        let resp = r.render(&wire());
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()[RETRY_AFTER], "7");
        assert!(resp.headers().get(WWW_AUTHENTICATE).is_none());
        assert_eq!(r.parts().reason.as_str(), "per_key_limit");
    }

    #[test]
    fn descriptions_cannot_break_the_quoted_string() {
        assert_eq!(quoted_safe("a\"b\\c\nd"), "a'b/c?d");
    }

    #[test]
    fn upstream_timeout_is_504_and_other_failures_502() {
        let t = Refusal::Upstream(ForwardError::Timeout {
            after: std::time::Duration::from_secs(1),
        });
        assert_eq!(t.parts().status, 504);
        assert_eq!(t.parts().reason, Reason::UpstreamTimeout);
        let c = Refusal::Upstream(ForwardError::Connect("refused".into()));
        assert_eq!(c.parts().status, 502);
        assert_eq!(c.parts().reason.as_str(), "connect");
    }

    #[test]
    fn raw_408_and_431_match_the_rendered_refusal() {
        for (refusal, status) in [
            (Refusal::HeadTimeout, 408),
            (Refusal::UriTooLong, 414),
            (Refusal::HeadTooLarge, 431),
        ] {
            let bytes = refusal.http1_bytes();
            let text = String::from_utf8(bytes).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
            assert!(head.contains("\r\nconnection: close"), "{head}");
            assert!(head.contains(&format!("\r\ncontent-length: {}", body.len())));
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(json["error"], "invalid_request");
            assert_eq!(json["error_description"], refusal.description());
        }
    }

    #[test]
    fn reason_labels_are_unique_per_code_family() {
        let all: Vec<_> = Reason::all().collect();
        let mut labels: Vec<_> = all
            .iter()
            .filter(|r| !matches!(r, Reason::Proof(_) | Reason::Token(_)))
            .map(|r| r.as_str())
            .collect();
        labels.sort_unstable();
        let n = labels.len();
        labels.dedup();
        assert_eq!(labels.len(), n, "{labels:?}");
    }
}
