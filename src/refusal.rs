//! Every refusal the gateway makes, and the ONE place where a refusal becomes an HTTP response
//! (RFC 9449 §7.1, §8, §9; RFC 6750 §3). The `match` in [`Refusal::parts`] is exhaustive with no
//! `_ =>` arm: a new variant does not compile until someone decides its status, `error` code,
//! headers and metric reason.

use http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};

use crate::body::{self, GatewayBody};
use crate::dpop::ProofError;
use crate::forward::ForwardError;
use crate::nonce::NonceError;
use crate::token::TokenError;

/// Why a request was not forwarded.
#[derive(Debug)]
pub enum Refusal {
    /// A protected route and no credentials at all (RFC 6750 §3.1: no `error` code).
    NoCredentials,
    /// Duplicate `DPoP` or `Authorization` headers, or an unparseable `Authorization`
    /// (RFC 6750 §3.1 `invalid_request`).
    InvalidRequest(&'static str),
    /// `Authorization: DPoP` without a `DPoP` header (RFC 9449 §7.1).
    ProofMissing,
    /// A proof failed a check of RFC 9449 §4.3.
    Proof(ProofError),
    /// The proof's `jti` was seen before within its window (RFC 9449 §11.1).
    Replayed,
    /// The route requires a server nonce and the proof's is missing, stale or forged
    /// (RFC 9449 §8, §9): the response carries a fresh `DPoP-Nonce`.
    UseNonce(NonceError),
    /// The access token is invalid or not bound to the proof's key.
    Token(TokenError),
    /// The replay store is full of live entries; the oldest expires in `retry_after` seconds.
    ReplayStoreFull {
        /// Seconds until a slot frees (at least 1).
        retry_after: u64,
    },
    /// The replay store is unreachable or slower than its timeout, and `on_error` is `reject`.
    ReplayStoreUnavailable,
    /// The token service (JWKS or introspection) could not answer.
    TokenServiceUnavailable,
    /// The upstream refused the connection or broke the exchange (502).
    UpstreamUnavailable(ForwardError),
    /// The upstream did not send response headers within `upstream.request_timeout` (504).
    UpstreamTimeout,
    /// The request head is over `limits.max_header_bytes` (431, then the connection closes).
    HeadTooLarge,
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
    /// 503: a dependency of the check is down or full.
    Unavailable,
    /// 502/504: the upstream failed.
    UpstreamError,
}

/// What [`Refusal::parts`] decides.
#[derive(Debug)]
pub struct RefusalParts {
    /// The status code.
    pub status: StatusCode,
    /// The `error` code (also the metric `outcome`).
    pub code: ErrorCode,
    /// A finer closed-set reason for the metric label (`replay`, `htu`, `signature`, …).
    pub reason: &'static str,
    /// Whether to send a `WWW-Authenticate: DPoP` challenge.
    pub challenge: bool,
    /// `Retry-After` seconds, for 503.
    pub retry_after: Option<u64>,
}

/// What the response needs besides the refusal itself.
#[derive(Clone, Debug, Default)]
pub struct ChallengeContext {
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
    /// Every code, for metric pre-registration.
    pub const ALL: [ErrorCode; 7] = [
        ErrorCode::Unauthorized,
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidDpopProof,
        ErrorCode::InvalidToken,
        ErrorCode::UseDpopNonce,
        ErrorCode::Unavailable,
        ErrorCode::UpstreamError,
    ];

    /// The wire `error` value (and metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
            ErrorCode::Unavailable => "temporarily_unavailable",
            ErrorCode::UpstreamError => "upstream_error",
        }
    }
}

// === impl Refusal ===

impl Refusal {
    /// The single decision table: status, code, reason and headers of every refusal.
    pub fn parts(&self) -> RefusalParts {
        use ErrorCode as C;
        let (status, code, reason, challenge, retry_after) = match self {
            Refusal::NoCredentials => (401, C::Unauthorized, "no_credentials", true, None),
            Refusal::InvalidRequest(_) => (400, C::InvalidRequest, "invalid_request", true, None),
            Refusal::ProofMissing => (401, C::InvalidDpopProof, "missing", true, None),
            Refusal::Proof(e) => (401, C::InvalidDpopProof, e.check().as_str(), true, None),
            Refusal::Replayed => (401, C::InvalidDpopProof, "replay", true, None),
            Refusal::UseNonce(e) => (401, C::UseDpopNonce, nonce_reason(e), true, None),
            Refusal::Token(TokenError::Unavailable(_)) | Refusal::TokenServiceUnavailable => {
                (503, C::Unavailable, "token_service", false, Some(1))
            }
            Refusal::Token(e) => (401, C::InvalidToken, e.check().as_str(), true, None),
            Refusal::ReplayStoreFull { retry_after } => (
                503,
                C::Unavailable,
                "replay_store_full",
                false,
                Some(*retry_after),
            ),
            Refusal::ReplayStoreUnavailable => {
                (503, C::Unavailable, "replay_store", false, Some(1))
            }
            Refusal::UpstreamUnavailable(e) => (502, C::UpstreamError, e.kind(), false, None),
            Refusal::UpstreamTimeout => (504, C::UpstreamError, "timeout", false, None),
            Refusal::HeadTooLarge => (431, C::InvalidRequest, "head_too_large", false, None),
        };
        RefusalParts {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            reason,
            challenge,
            retry_after,
        }
    }

    /// A human-readable description, safe to send and log (no token, no proof).
    pub fn description(&self) -> String {
        match self {
            Refusal::NoCredentials => "DPoP credentials are required".to_owned(),
            Refusal::InvalidRequest(what) => (*what).to_owned(),
            Refusal::ProofMissing => "the DPoP header is missing".to_owned(),
            Refusal::Proof(e) => e.to_string(),
            Refusal::Replayed => "the DPoP proof was already used".to_owned(),
            Refusal::UseNonce(e) => format!("a fresh server nonce is required: {e}"),
            Refusal::Token(e) => e.to_string(),
            Refusal::ReplayStoreFull { .. } => "the replay cache is full; retry later".to_owned(),
            Refusal::ReplayStoreUnavailable => "the replay store is unavailable".to_owned(),
            Refusal::TokenServiceUnavailable => "the token service is unavailable".to_owned(),
            // The cause (DNS, connect errors) is logged, not sent: it describes our network.
            Refusal::UpstreamUnavailable(_) => "the upstream is unavailable".to_owned(),
            Refusal::UpstreamTimeout => "the upstream did not answer in time".to_owned(),
            Refusal::HeadTooLarge => "the request head is over max_header_bytes".to_owned(),
        }
    }

    /// Renders the refusal: status, `WWW-Authenticate`, `DPoP-Nonce`, `Retry-After`, CORS and
    /// a small JSON body `{"error": …, "error_description": …}`.
    pub fn respond(&self, ctx: &ChallengeContext) -> Response<GatewayBody> {
        let parts = self.parts();
        let description = self.description();
        let mut builder = Response::builder()
            .status(parts.status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::CACHE_CONTROL, "no-store");
        if parts.challenge {
            builder = builder.header(WWW_AUTHENTICATE, challenge(parts.code, &description, ctx));
        }
        if let Some(secs) = parts.retry_after {
            builder = builder.header(RETRY_AFTER, secs.max(1));
        }
        if let Some(nonce) = &ctx.nonce {
            builder = builder.header("dpop-nonce", nonce.as_str());
        }
        if let Refusal::HeadTooLarge = self {
            // RFC 9110 §15.5.20 / the contract: the connection ends here.
            builder = builder.header(http::header::CONNECTION, "close");
        }
        if let Some(origin) = &ctx.allow_origin {
            builder = builder.header(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        }
        let body = serde_json::json!({
            "error": parts.code.as_str(),
            "error_description": description,
        });
        builder
            .body(body::full(body.to_string()))
            .unwrap_or_else(|_| fallback_response(parts.status))
    }
}

/// The closed-set metric reason of a nonce refusal.
fn nonce_reason(e: &NonceError) -> &'static str {
    match e {
        NonceError::Missing => "nonce_missing",
        NonceError::Malformed | NonceError::BadMac => "nonce_invalid",
        NonceError::Expired { .. } | NonceError::FromFuture { .. } => "nonce_expired",
        // Configuration errors never reach a request; counted apart if they ever do.
        NonceError::NoSecrets | NonceError::SecretTooShort { .. } | NonceError::ZeroLifetime => {
            "nonce_config"
        }
    }
}

/// `DPoP error="…", error_description="…", algs="…"[, resource_metadata="…"]`.
fn challenge(code: ErrorCode, description: &str, ctx: &ChallengeContext) -> HeaderValue {
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
    v.push_str(&format!("{sep}algs=\"{}\"", ctx.algs));
    if let Some(rm) = &ctx.resource_metadata {
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

fn fallback_response(status: StatusCode) -> Response<GatewayBody> {
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = status;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ChallengeContext {
        ChallengeContext {
            algs: "ES256 EdDSA".into(),
            ..Default::default()
        }
    }

    #[test]
    fn no_credentials_challenge_has_no_error_code() {
        let resp = Refusal::NoCredentials.respond(&ctx());
        assert_eq!(resp.status(), 401);
        assert_eq!(
            resp.headers()[WWW_AUTHENTICATE],
            "DPoP algs=\"ES256 EdDSA\""
        );
    }

    #[test]
    fn replay_is_invalid_dpop_proof_with_description() {
        let resp = Refusal::Replayed.respond(&ctx());
        assert_eq!(resp.status(), 401);
        let www = resp.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(www.starts_with("DPoP error=\"invalid_dpop_proof\", error_description=\""));
        assert!(www.ends_with("algs=\"ES256 EdDSA\""));
    }

    #[test]
    fn full_store_is_503_with_retry_after() {
        let resp = Refusal::ReplayStoreFull { retry_after: 42 }.respond(&ctx());
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()[RETRY_AFTER], "42");
        assert!(resp.headers().get(WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn descriptions_cannot_break_the_quoted_string() {
        assert_eq!(quoted_safe("a\"b\\c\nd"), "a'b/c?d");
    }
}
