//! The request path's shared state, built once from a validated [`Config`] and shared by every
//! connection: routes, proof and token checks, the replay store, nonce keys, the upstream pool.

use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderValue;

use crate::clock::Clock;
use crate::config::{
    AccessTokenConfig, Config, ForwardConfig, KeySource, OnError, ReplayBackend, RouteConfig,
    TokenFormat, DEFAULT_UPSTREAM,
};
use crate::dpop::{ProofPolicy, ProofVerifier};
use crate::forward::Forwarder;
use crate::metrics::Metrics;
use crate::nonce::NonceKeys;
use crate::replay::redis::{RedisMetrics, RedisStore};
use crate::replay::{memory::MemoryStore, ReplayStore};
use crate::request_uri::UriPolicy;
use crate::resource_metadata::ResourceMetadata;
use crate::route::Router;
use crate::token::http::AsClient;
use crate::token::introspection::{IntrospectionPolicy, Introspector};
use crate::token::jwks::{KeyLocation, RemoteKeys};
use crate::token::jwt::{JwkSet, JwtPolicy, JwtValidator};
use crate::token::{TokenMetrics, TokenValidator, Tokens};

/// Verified access tokens kept in memory at most.
const TOKEN_CACHE_CAPACITY: u64 = 100_000;

/// Why the gateway could not start.
#[derive(Debug)]
pub struct StartError(pub String);

/// Everything the request path needs, built once at start and shared by every connection.
pub struct State {
    /// The routes.
    pub(crate) router: Router,
    /// How `htu` is computed.
    pub(crate) uri_policy: UriPolicy,
    /// Proof checks, with the cache of checked proof headers.
    pub(crate) proofs: ProofVerifier,
    /// Token checks.
    pub(crate) tokens: Tokens,
    /// The replay store: built once at start and shared by every reloaded state (a reload
    /// never reopens a replay window).
    pub(crate) replay: Arc<ReplayStore>,
    /// `replay_cache.on_error`.
    pub(crate) on_error: OnError,
    /// The upstreams, each with its own pool: `upstream` first, then `upstreams` in order
    /// (a route's `upstream` is an index here).
    pub(crate) upstreams: Vec<Forwarder>,
    /// `forward`.
    pub(crate) forward: ForwardConfig,
    /// Metrics.
    pub(crate) metrics: Metrics,
    /// The clock.
    pub(crate) clock: Arc<dyn Clock>,
    /// `algs="…"` for challenges.
    pub(crate) algs: String,
    /// `cors.allow_origins` (`*` allows any).
    pub(crate) cors_allow_origins: Vec<String>,
    /// The gateway's own preflight answers, with `cors.preflight: answer` (`None`: preflights
    /// are forwarded).
    pub(crate) cors_answer: Option<crate::cors::Preflights>,
    /// `limits.idle_timeout`, between body reads.
    pub(crate) idle_timeout: std::time::Duration,
    /// `limits.max_header_bytes`, for heads the connection's count did not see.
    pub(crate) max_header_bytes: usize,
    /// `paths.encoded_slashes`.
    pub(crate) encoded_slashes: crate::config::EncodedSlashes,
    /// Server nonces, when `dpop.nonce` has secrets.
    pub(crate) nonces: Option<NonceKeys>,
    /// RFC 9728 protected resource metadata, when `resource_metadata.enabled`.
    pub(crate) resource_metadata: Option<ResourceMetadata>,
    /// Memory backend only: proofs issued before this process started (see
    /// [`crate::replay::ProcessStart`]); `None` with a shared store, which outlives a restart.
    pub(crate) process_start: Option<crate::replay::ProcessStart>,
    /// `forward_auth.path_prefix`: removed from a decision request's own path (Envoy
    /// `ext_authz`); `None` without one (or without `forward_auth`).
    pub(crate) decision_path_prefix: Option<String>,
    /// The decision explorer, when `explorer.enabled` (`None`: nothing is recorded).
    pub(crate) explorer: Option<Arc<crate::explorer::Explorer>>,
    /// Open WebSocket tunnels' shutdown signal (one for the process: carried across reloads).
    pub(crate) tunnels: Arc<crate::forward::tunnel::Tunnels>,
    /// `limits`, for the listener's new connections.
    pub(crate) limits: crate::config::Limits,
}

/// What a reload carries from the running [`State`] to the next one, never rebuilt: the replay
/// store (and the restart rule that goes with a memory store), the metrics, the explorer's ring
/// and the clock.
#[derive(Clone)]
pub(crate) struct Carried {
    replay: Arc<ReplayStore>,
    process_start: Option<crate::replay::ProcessStart>,
    explorer: Option<Arc<crate::explorer::Explorer>>,
    metrics: Metrics,
    clock: Arc<dyn Clock>,
    tunnels: Arc<crate::forward::tunnel::Tunnels>,
}

/// What the listener knows about the connection a request came on.
#[derive(Clone, Copy, Debug)]
pub struct ConnMeta {
    /// The client's address.
    pub remote: SocketAddr,
    /// `http` or `https`, as the client connected.
    pub scheme: &'static str,
}

// === impl StartError ===

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

// === impl State ===

/// The nonce keys, when `dpop.nonce` has secrets.
pub(crate) fn nonce_keys(config: &Config) -> Result<Option<NonceKeys>, StartError> {
    let nonce = &config.dpop.nonce;
    if nonce.secrets.is_empty() {
        return Ok(None);
    }
    let secrets: Vec<&[u8]> = nonce
        .secrets
        .iter()
        .map(|s| s.expose().as_bytes())
        .collect();
    NonceKeys::new(&secrets, nonce.lifetime.as_secs())
        .map(Some)
        .map_err(|e| StartError(format!("dpop.nonce: {e}")))
}

/// The proof checks `config` asks for (the request path wraps them in a
/// [`ProofVerifier`] with its header cache; `explain` uses them as they are).
pub(crate) fn proof_policy(config: &Config) -> ProofPolicy {
    ProofPolicy {
        algorithms: config.dpop.algorithms,
        max_age: config.dpop.proof_max_age.as_secs(),
        clock_skew: config.dpop.clock_skew.as_secs(),
        max_proof_bytes: config.limits.max_proof_bytes,
        require_ath: config.dpop.require_ath,
    }
}

/// A Redis store as configured: the per-key limit, `min_replicas` and the Redis counters.
fn redis_store(
    store: Result<RedisStore, crate::replay::StoreError>,
    what: &str,
    config: &Config,
    metrics: &Metrics,
) -> Result<RedisStore, StartError> {
    let store = store.map_err(|e| StartError(format!("{what}: {e:?}")))?;
    Ok(store
        .with_per_key_limit(config.replay_cache.per_key_limit)
        .with_min_replicas(config.replay_cache.min_replicas)
        .with_metrics(RedisMetrics {
            failovers: metrics.replay_failovers.clone(),
            wait_shortfalls: metrics.replay_wait_shortfalls.clone(),
        }))
}

/// The token validator for `access_token`: a `jwks_file` is read now (an error stops the start);
/// remote keys are fetched in the background (the gateway starts even if the authorization
/// server is down, and is not ready until they are loaded).
pub(crate) fn build_tokens(
    at: &AccessTokenConfig,
    routes: &[RouteConfig],
    metrics: TokenMetrics,
) -> Result<TokenValidator, StartError> {
    let claims = policy_claims(routes);
    let policy = JwtPolicy {
        issuer: at.issuer.clone(),
        audience: at.audience.clone().unwrap_or_default(),
        algorithms: at.algorithms,
        leeway: at.leeway.as_secs(),
        require_typ: at.require_typ,
        claims: claims.clone(),
    };
    let client = || {
        AsClient::new(at.ca_file.as_deref(), at.allow_insecure_http)
            .map_err(|e| StartError(format!("access_token.ca_file: {e}")))
    };
    match (at.format, &at.keys) {
        (TokenFormat::Jwt, KeySource::File(path)) => {
            let keys = crate::token::jwt::read_jwks_file(path).map_err(|e| {
                StartError(format!("access_token.jwks_file {}: {e}", path.display()))
            })?;
            Ok(TokenValidator::Jwt(Box::new(JwtValidator::new(
                policy,
                keys,
                TOKEN_CACHE_CAPACITY,
                metrics,
            ))))
        }
        (TokenFormat::Jwt, source) => {
            let location = match source {
                KeySource::Uri(uri) => KeyLocation::Uri(uri.clone()),
                _ => KeyLocation::Discovery {
                    issuer: at.issuer.clone(),
                },
            };
            let validator =
                JwtValidator::new(policy, JwkSet::default(), TOKEN_CACHE_CAPACITY, metrics);
            let keys = Arc::new(RemoteKeys::new(validator, location, client()?));
            RemoteKeys::spawn_refresh(&keys);
            Ok(TokenValidator::RemoteJwt(keys))
        }
        (TokenFormat::Introspection, _) => {
            let Some(i) = &at.introspection else {
                return Err(StartError(
                    "access_token.introspection: required when format is introspection".into(),
                ));
            };
            let policy = IntrospectionPolicy {
                issuer: at.issuer.clone(),
                audience: at.audience.clone(),
                leeway: at.leeway.as_secs(),
                cache_ttl: i.cache_ttl,
                claims,
            };
            Introspector::new(
                i.endpoint.clone(),
                &i.client_id,
                i.client_secret.expose(),
                client()?,
                policy,
                metrics,
            )
            .map(|i| TokenValidator::Introspection(Box::new(i)))
            .map_err(|e| StartError(format!("access_token.introspection: {e}")))
        }
    }
}

/// The claim names some route's `require.claims` compares: the only claims tokens keep.
fn policy_claims(routes: &[RouteConfig]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (name, _) in routes.iter().flat_map(|r| &r.require.claims) {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

impl State {
    /// Builds the request path's state from a validated config: token validator, replay store,
    /// nonce keys, upstream pool. A `jwks_file` is read now; remote keys load in the background.
    pub async fn from_config(
        config: &Config,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> Result<State, StartError> {
        let carried = Carried::start(config, clock, metrics).await?;
        State::build(config, carried)
    }

    /// What a reload keeps of this state (see [`Carried`]).
    pub(crate) fn carried(&self) -> Carried {
        Carried {
            replay: Arc::clone(&self.replay),
            process_start: self.process_start,
            explorer: self.explorer.clone(),
            metrics: self.metrics.clone(),
            clock: Arc::clone(&self.clock),
            tunnels: Arc::clone(&self.tunnels),
        }
    }

    /// The state for `config` around `carried`: routes, proof and token checks, nonce keys,
    /// upstream pools, limits. Reads the files `config` names (`jwks_file`, CA and client
    /// certificates) and awaits nothing: a reload runs it on a blocking thread.
    pub(crate) fn build(config: &Config, carried: Carried) -> Result<State, StartError> {
        let Carried {
            replay,
            process_start,
            explorer,
            metrics,
            clock,
            tunnels,
        } = carried;
        let tokens = Tokens::new(
            config
                .access_tokens
                .iter()
                .map(|at| {
                    build_tokens(at, &config.routes, TokenMetrics::of(&metrics))
                        .map(|v| (at.issuer.clone(), v))
                })
                .collect::<Result<_, _>>()?,
        );
        let nonces = nonce_keys(config)?;
        let router = Router::new(&config.routes, config.dpop.nonce.enabled)
            .with_body_limit(config.limits.max_body_bytes);
        if router.needs_nonces() && nonces.is_none() {
            return Err(StartError(
                "dpop.nonce.secrets: required when a route requires nonces".into(),
            ));
        }
        Ok(State {
            router,
            uri_policy: UriPolicy {
                public_url: config.public_url.clone(),
                trust_forwarded: config.trust_forwarded_headers,
            },
            proofs: ProofVerifier::new(proof_policy(config)),
            tokens,
            replay,
            on_error: config.replay_cache.on_error,
            upstreams: build_upstreams(config, &metrics)?,
            forward: config.forward.clone(),
            metrics,
            clock,
            algs: config.dpop.algorithms.to_names(),
            cors_allow_origins: config.cors_allow_origins.clone(),
            cors_answer: crate::cors::Preflights::from_config(config),
            idle_timeout: config.limits.idle_timeout,
            max_header_bytes: config.limits.max_header_bytes,
            encoded_slashes: config.paths.encoded_slashes,
            nonces,
            resource_metadata: config
                .resource_metadata
                .then(|| crate::resource_metadata::ResourceMetadata::from_config(config)),
            process_start,
            decision_path_prefix: config
                .forward_auth
                .as_ref()
                .and_then(|f| f.path_prefix.clone()),
            explorer,
            tunnels,
            limits: config.limits.clone(),
        })
    }
}

impl Carried {
    /// The metrics every state records into.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// What the first state starts with: a new replay store (a Redis one connects now), the
    /// process start for a memory store, the explorer when `explorer.enabled`.
    async fn start(
        config: &Config,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> Result<Carried, StartError> {
        let ttl = config.dpop.proof_max_age.as_secs() + config.dpop.clock_skew.as_secs();
        let process_start = match &config.replay_cache.backend {
            ReplayBackend::Memory { .. } => {
                Some(crate::replay::ProcessStart::new(clock.now(), ttl))
            }
            ReplayBackend::Redis { .. }
            | ReplayBackend::RedisCluster { .. }
            | ReplayBackend::RedisSentinel { .. } => None,
        };
        let replay = match &config.replay_cache.backend {
            ReplayBackend::Memory { capacity } => {
                metrics
                    .replay_capacity
                    .set(i64::try_from(*capacity).unwrap_or(i64::MAX));
                ReplayStore::Memory(
                    MemoryStore::new(*capacity, ttl, metrics.replay_expired.clone())
                        .with_per_key_limit(config.replay_cache.per_key_limit),
                )
            }
            ReplayBackend::Redis {
                url,
                key_prefix,
                timeout,
            } => ReplayStore::Redis(redis_store(
                RedisStore::connect(url.expose(), key_prefix, ttl, *timeout).await,
                "replay_cache.redis_url",
                config,
                &metrics,
            )?),
            ReplayBackend::RedisCluster {
                urls,
                key_prefix,
                timeout,
            } => {
                let urls: Vec<&str> = urls.iter().map(|u| u.expose()).collect();
                ReplayStore::Redis(redis_store(
                    RedisStore::connect_cluster(&urls, key_prefix, ttl, *timeout).await,
                    "replay_cache.redis_urls",
                    config,
                    &metrics,
                )?)
            }
            ReplayBackend::RedisSentinel {
                urls,
                master,
                key_prefix,
                timeout,
            } => {
                let urls: Vec<&str> = urls.iter().map(|u| u.expose()).collect();
                ReplayStore::Redis(redis_store(
                    RedisStore::connect_sentinel(&urls, master, key_prefix, ttl, *timeout).await,
                    "replay_cache.redis_urls",
                    config,
                    &metrics,
                )?)
            }
        };
        let tunnels = Arc::new(crate::forward::tunnel::Tunnels::new(
            metrics.clone(),
            config.limits.idle_timeout,
        ));
        Ok(Carried {
            replay: Arc::new(replay),
            process_start,
            explorer: config
                .explorer
                .enabled
                .then(|| Arc::new(crate::explorer::Explorer::new(config.explorer.decisions))),
            metrics,
            clock,
            tunnels,
        })
    }
}

/// The upstreams' forwarders: `upstream` (named `default`), then `upstreams` in order.
fn build_upstreams(config: &Config, metrics: &Metrics) -> Result<Vec<Forwarder>, StartError> {
    let named = config
        .upstreams
        .iter()
        .map(|u| (u.name.as_str(), &u.config, format!("upstreams.{}", u.name)));
    std::iter::once((DEFAULT_UPSTREAM, &config.upstream, "upstream".to_owned()))
        .chain(named)
        .map(|(name, cfg, at)| {
            Forwarder::new(name, cfg, metrics.upstream(name))
                .map_err(|e| StartError(format!("{at}.{e}")))
        })
        .collect()
}

impl State {
    /// The upstream `route` forwards to.
    pub(crate) fn upstream_of(&self, route: &crate::route::Route) -> &Forwarder {
        // Routes are built from the same config as the list; index 0 exists always.
        self.upstreams
            .get(route.upstream)
            .unwrap_or(&self.upstreams[0])
    }

    /// Whether `origin` may read the gateway's own refusals (`cors.allow_origins`).
    pub(crate) fn origin_allowed(&self, origin: &HeaderValue) -> bool {
        self.cors_allow_origins
            .iter()
            .any(|o| o == "*" || origin.as_bytes() == o.as_bytes())
    }

    /// The metrics this state records into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}
