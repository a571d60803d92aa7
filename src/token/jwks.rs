//! Remote signing keys: a JWKS fetched from `access_token.jwks_uri`, or from the `jwks_uri` of
//! the issuer's metadata (RFC 8414, falling back to OpenID Connect discovery). I/O lives here;
//! the JWT checks themselves stay in [`super::jwt`].
//!
//! Keys are fetched at start (in the background: the gateway starts even when the authorization
//! server is down), refreshed as its `Cache-Control: max-age` says (clamped to [60 s, 24 h],
//! 5 min without one), and fetched again when a token names an unknown `kid`. Fetches are
//! single-flight (one in flight; concurrent waiters share its result) and a token-triggered one
//! happens at most once per [`REFETCH_MIN_INTERVAL`], so a flood of unknown `kid`s cannot hammer
//! the authorization server. A failed fetch keeps the last good keys.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::clock::{monotonic, UnixTime};

use super::http::AsClient;
use super::jwt::{JwkSet, JwtValidator};
use super::{TokenError, TokenFailure, TokenInfo};

/// The least time between two fetches that a token (unknown `kid`, keys never loaded) triggers.
pub(crate) const REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(10);

/// Refresh interval without a usable `Cache-Control: max-age`.
pub(crate) const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

/// `max-age` is clamped to at least this ...
pub(crate) const MIN_REFRESH: Duration = Duration::from_secs(60);

/// ... and at most this.
pub(crate) const MAX_REFRESH: Duration = Duration::from_secs(24 * 3600);

/// After a failed background fetch, the next try comes after this, doubling up to
/// [`MIN_REFRESH`].
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Where the keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyLocation {
    /// `access_token.jwks_uri`.
    Uri(String),
    /// The `jwks_uri` of the metadata of `issuer`.
    Discovery {
        /// `access_token.issuer`: the metadata's `issuer` must equal it exactly (RFC 8414 §3.3).
        issuer: String,
    },
}

/// A JWT validator whose keys come from the authorization server.
pub struct RemoteKeys {
    validator: JwtValidator,
    location: KeyLocation,
    client: AsClient,
    /// Held for the whole of a fetch: the single flight.
    flight: tokio::sync::Mutex<Flight>,
    /// Fetch attempts finished; a waiter that sees it change shares that attempt's result.
    attempts: AtomicU64,
    loaded: AtomicBool,
}

/// Why keys could not be fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyFetchError {
    /// The issuer URL cannot be turned into metadata URLs (RFC 8414 §2: https, no query or
    /// fragment).
    IssuerUrl(String),
    /// A request failed (connect, timeout, size).
    Http {
        /// The URL asked.
        url: String,
        /// What happened.
        error: super::http::HttpError,
    },
    /// A status other than 200.
    Status {
        /// The URL asked.
        url: String,
        /// Its status.
        status: u16,
    },
    /// The metadata is not a JSON object with a string `jwks_uri`.
    Metadata {
        /// The URL asked.
        url: String,
    },
    /// The metadata's `issuer` is not ours (RFC 8414 §3.3: it must be identical).
    IssuerMismatch {
        /// `access_token.issuer`.
        expected: String,
        /// The metadata's `issuer`.
        got: Option<String>,
    },
    /// The JWKS is not a JWKS, or holds no usable signing key.
    Jwks {
        /// The URL asked.
        url: String,
        /// What is wrong with it.
        why: String,
    },
}

/// State of the single flight.
#[derive(Default)]
struct Flight {
    /// When the last token-triggered fetch started (the background refresh does not count).
    last_triggered: Option<Instant>,
    /// The `jwks_uri` found by discovery, reused until a JWKS fetch fails.
    discovered: Option<String>,
}

// === impl RemoteKeys ===

impl RemoteKeys {
    /// Keys from `location`, none loaded yet; call [`RemoteKeys::spawn_refresh`] to load them.
    pub fn new(validator: JwtValidator, location: KeyLocation, client: AsClient) -> RemoteKeys {
        RemoteKeys {
            validator,
            location,
            client,
            flight: tokio::sync::Mutex::new(Flight::default()),
            attempts: AtomicU64::new(0),
            loaded: AtomicBool::new(false),
        }
    }

    /// Whether keys were loaded at least once.
    pub fn keys_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Starts the background task: a fetch now, then one per refresh interval (or sooner after
    /// a failure). The task ends when `keys` is dropped.
    pub fn spawn_refresh(keys: &Arc<RemoteKeys>) {
        let weak: Weak<RemoteKeys> = Arc::downgrade(keys);
        tokio::spawn(async move {
            let mut retry = FIRST_RETRY;
            loop {
                let Some(keys) = weak.upgrade() else { return };
                let wait = match keys.fetch_now().await {
                    Ok(refresh) => {
                        retry = FIRST_RETRY;
                        refresh
                    }
                    Err(_) => {
                        let wait = retry;
                        retry = (retry * 2).min(MIN_REFRESH);
                        wait
                    }
                };
                drop(keys);
                tokio::time::sleep(wait).await;
            }
        });
    }

    /// Validates `token`: keys never loaded -> one rate-limited fetch, else `Unavailable`; an
    /// unknown `kid` -> one rate-limited, single-flight fetch and a second try.
    pub async fn validate(
        &self,
        token: &str,
        now: UnixTime,
    ) -> Result<Arc<TokenInfo>, TokenFailure> {
        let seen = self.attempts.load(Ordering::Acquire);
        if !self.keys_loaded() {
            self.refetch(seen).await;
            if !self.keys_loaded() {
                return Err(TokenFailure::Unavailable(
                    "the authorization server's keys could not be loaded".into(),
                ));
            }
        }
        let seen = self.attempts.load(Ordering::Acquire);
        match self.validator.validate(token, now) {
            Err(TokenError::UnknownKid { kid: Some(_) }) if self.refetch(seen).await => {
                Ok(self.validator.validate(token, now)?)
            }
            verdict => Ok(verdict?),
        }
    }

    /// A token-triggered fetch. Returns whether a fetch finished since `seen` (ours or a
    /// concurrent one), i.e. whether trying again can change the verdict.
    async fn refetch(&self, seen: u64) -> bool {
        let mut flight = self.flight.lock().await;
        if self.attempts.load(Ordering::Acquire) != seen {
            // Another request's fetch finished while we waited: share its result.
            return true;
        }
        let now = monotonic();
        if flight
            .last_triggered
            .is_some_and(|t| now.duration_since(t) < REFETCH_MIN_INTERVAL)
        {
            return false;
        }
        flight.last_triggered = Some(now);
        let _ = self.fetch_locked(&mut flight).await;
        true
    }

    /// A fetch regardless of the rate limit (the background refresh); returns the interval
    /// until the next refresh.
    async fn fetch_now(&self) -> Result<Duration, KeyFetchError> {
        let mut flight = self.flight.lock().await;
        self.fetch_locked(&mut flight).await
    }

    /// One fetch, with the flight held: discovery if needed, then the JWKS.
    async fn fetch_locked(&self, flight: &mut Flight) -> Result<Duration, KeyFetchError> {
        let result = self.fetch_keys(flight).await;
        match &result {
            Ok(_) => {
                let metrics = self.validator.metrics();
                metrics.key_fetches.inc();
                let now = crate::clock::Clock::now(&crate::clock::SystemClock).as_secs();
                metrics
                    .keys_loaded_at
                    .set(i64::try_from(now).unwrap_or(i64::MAX));
            }
            Err(error) => {
                tracing::warn!(%error, "access token keys not refreshed; the last good keys stay");
                self.validator.metrics().key_fetch_failures.inc();
            }
        }
        self.attempts.fetch_add(1, Ordering::AcqRel);
        result
    }

    async fn fetch_keys(&self, flight: &mut Flight) -> Result<Duration, KeyFetchError> {
        let jwks_uri = match (&self.location, &flight.discovered) {
            (KeyLocation::Uri(uri), _) => uri.clone(),
            (KeyLocation::Discovery { .. }, Some(uri)) => uri.clone(),
            (KeyLocation::Discovery { issuer }, None) => {
                let uri = discover(&self.client, issuer).await?;
                flight.discovered = Some(uri.clone());
                uri
            }
        };
        let fetched = fetch_jwks(&self.client, &jwks_uri).await;
        if fetched.is_err() {
            // The metadata may have moved the keys: discover again next time.
            flight.discovered = None;
        }
        let (keys, refresh) = fetched?;
        tracing::debug!(keys = keys.keys.len(), uri = %jwks_uri, "access token keys loaded");
        self.validator.set_keys(keys);
        self.loaded.store(true, Ordering::Release);
        Ok(refresh)
    }
}

/// Finds the issuer's `jwks_uri`: RFC 8414 metadata first, then OpenID Connect discovery.
async fn discover(client: &AsClient, issuer: &str) -> Result<String, KeyFetchError> {
    let mut last = None;
    for url in metadata_urls(issuer)? {
        match fetch_metadata(client, &url, issuer).await {
            Ok(uri) => return Ok(uri),
            // The issuer answered with a foreign `issuer`: do not try the other document.
            Err(e @ KeyFetchError::IssuerMismatch { .. }) => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| KeyFetchError::IssuerUrl(issuer.to_owned())))
}

/// A GET that must answer 200.
async fn get_ok(client: &AsClient, url: &str) -> Result<super::http::AsResponse, KeyFetchError> {
    let resp = client.get(url).await.map_err(|error| KeyFetchError::Http {
        url: url.to_owned(),
        error,
    })?;
    if resp.status != 200 {
        return Err(KeyFetchError::Status {
            url: url.to_owned(),
            status: resp.status,
        });
    }
    Ok(resp)
}

async fn fetch_metadata(
    client: &AsClient,
    url: &str,
    issuer: &str,
) -> Result<String, KeyFetchError> {
    let resp = get_ok(client, url).await?;
    let doc: Map<String, Value> =
        serde_json::from_slice(&resp.body).map_err(|_| KeyFetchError::Metadata {
            url: url.to_owned(),
        })?;
    // RFC 8414 §3.3: the issuer in the metadata must be identical to the one it was asked
    // for, or an attacker-controlled document could name its own keys.
    match doc.get("issuer").and_then(Value::as_str) {
        Some(got) if got == issuer => {}
        got => {
            return Err(KeyFetchError::IssuerMismatch {
                expected: issuer.to_owned(),
                got: got.map(str::to_owned),
            })
        }
    }
    doc.get("jwks_uri")
        .and_then(Value::as_str)
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .map(str::to_owned)
        .ok_or_else(|| KeyFetchError::Metadata {
            url: url.to_owned(),
        })
}

async fn fetch_jwks(client: &AsClient, url: &str) -> Result<(JwkSet, Duration), KeyFetchError> {
    let resp = get_ok(client, url).await?;
    let keys = JwkSet::from_json(&resp.body).map_err(|e| KeyFetchError::Jwks {
        url: url.to_owned(),
        why: e.to_string(),
    })?;
    if keys.keys.is_empty() {
        return Err(KeyFetchError::Jwks {
            url: url.to_owned(),
            why: "no usable signing key".into(),
        });
    }
    Ok((keys, refresh_interval(resp.cache_control.as_deref())))
}

/// The metadata URLs to try for `issuer`, in order: RFC 8414 §3.1 (the well-known segment goes
/// between the host and the issuer's path) and OpenID Connect Discovery 1.0 §4 (appended).
pub(crate) fn metadata_urls(issuer: &str) -> Result<[String; 2], KeyFetchError> {
    let bad = || KeyFetchError::IssuerUrl(issuer.to_owned());
    let (scheme, rest) = issuer.split_once("://").ok_or_else(bad)?;
    if !(scheme == "https" || scheme == "http") || rest.contains(['?', '#']) {
        return Err(bad());
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(bad());
    }
    // RFC 8414 §3.1: a terminating "/" of the issuer's path is removed first.
    let path = path.trim_end_matches('/');
    Ok([
        format!("{scheme}://{authority}/.well-known/oauth-authorization-server{path}"),
        format!("{scheme}://{authority}{path}/.well-known/openid-configuration"),
    ])
}

/// How long until the next refresh: `Cache-Control: max-age` clamped to
/// [[`MIN_REFRESH`], [`MAX_REFRESH`]]; `no-cache`/`no-store` mean the minimum; otherwise
/// [`DEFAULT_REFRESH`].
pub(crate) fn refresh_interval(cache_control: Option<&str>) -> Duration {
    let Some(cc) = cache_control else {
        return DEFAULT_REFRESH;
    };
    let mut max_age = None;
    for directive in cc.split(',').map(str::trim) {
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        let name = name.trim();
        if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
            return MIN_REFRESH;
        }
        if name.eq_ignore_ascii_case("max-age") {
            max_age = value.trim().trim_matches('"').parse::<u64>().ok();
        }
    }
    match max_age {
        Some(secs) => Duration::from_secs(secs).clamp(MIN_REFRESH, MAX_REFRESH),
        None => DEFAULT_REFRESH,
    }
}

// === impl KeyFetchError ===

impl std::fmt::Display for KeyFetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyFetchError::IssuerUrl(issuer) => write!(
                f,
                "issuer {issuer:?} is not an http(s) URL without query or fragment"
            ),
            KeyFetchError::Http { url, error } => write!(f, "{url}: {error}"),
            KeyFetchError::Status { url, status } => write!(f, "{url}: HTTP status {status}"),
            KeyFetchError::Metadata { url } => {
                write!(f, "{url}: not a metadata document with a jwks_uri")
            }
            KeyFetchError::IssuerMismatch { expected, got } => write!(
                f,
                "the metadata names issuer {:?}, not {expected:?}",
                got.as_deref().unwrap_or("")
            ),
            KeyFetchError::Jwks { url, why } => write!(f, "{url}: {why}"),
        }
    }
}

impl std::error::Error for KeyFetchError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_urls_insert_the_well_known_segment_before_the_issuer_path() {
        assert_eq!(
            metadata_urls("https://as.example.com").unwrap(),
            [
                "https://as.example.com/.well-known/oauth-authorization-server",
                "https://as.example.com/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            metadata_urls("https://as.example.com/tenant/1/").unwrap(),
            [
                "https://as.example.com/.well-known/oauth-authorization-server/tenant/1",
                "https://as.example.com/tenant/1/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn an_issuer_that_is_not_a_plain_url_has_no_metadata_urls() {
        assert!(metadata_urls("http://127.0.0.1:8080").is_ok());
        for bad in [
            "as.example.com",
            "ftp://as.example.com",
            "https://as.example.com?x=1",
            "https://as.example.com#f",
            "https:///path",
        ] {
            assert_eq!(
                metadata_urls(bad),
                Err(KeyFetchError::IssuerUrl(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn refresh_follows_max_age_within_bounds() {
        let secs = |cc| refresh_interval(cc).as_secs();
        assert_eq!(secs(None), 300);
        assert_eq!(secs(Some("public, max-age=600")), 600);
        assert_eq!(secs(Some("max-age=5")), 60);
        assert_eq!(secs(Some("max-age=999999999")), 86_400);
        assert_eq!(secs(Some("no-store")), 60);
        assert_eq!(secs(Some("max-age=abc")), 300);
        assert_eq!(secs(Some("public")), 300);
    }

    #[test]
    fn fetch_errors_say_what_failed() {
        let e = KeyFetchError::IssuerMismatch {
            expected: "https://a".into(),
            got: Some("https://b".into()),
        };
        assert_eq!(
            e.to_string(),
            "the metadata names issuer \"https://b\", not \"https://a\""
        );
        let e = KeyFetchError::Status {
            url: "https://a/jwks".into(),
            status: 500,
        };
        assert_eq!(e.to_string(), "https://a/jwks: HTTP status 500");
    }
}
