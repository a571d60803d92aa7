//! Starting and stopping the gateway: builds the shared [`State`] from a [`Config`], binds the
//! main and admin listeners, and returns a [`Running`] handle that drains on shutdown.

mod cert_expiry;
pub(crate) mod deadline;
pub(crate) mod listener;
pub mod tls;
mod upstream_ready;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{self, Readiness};
use crate::clock::Clock;
use crate::config::{Config, KeySource, OnError, UpstreamReadiness};
use crate::metrics::Metrics;
use crate::replay::ReplayStore;
pub use crate::state::StartError;
use crate::state::State;
use crate::token::jwt::read_jwks_file;
use crate::token::TokenValidator;

/// How often TLS files are checked for a change (the contract promises 30 s).
const TLS_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// How often `access_token.jwks_file` is checked for a change.
const FILE_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// How often the replay store is probed for readiness and its size exported.
const DEPENDENCY_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A running gateway.
pub struct Running {
    /// The main listener's bound address.
    pub addr: SocketAddr,
    /// The admin listener's bound address.
    pub admin_addr: SocketAddr,
    /// The metrics (for tests and embedding).
    pub metrics: Metrics,
    ready: Readiness,
    shutdown: watch::Sender<bool>,
    /// Stops the admin listener: only once the main listener has drained.
    admin_stop: watch::Sender<bool>,
    main: JoinHandle<()>,
    admin: JoinHandle<()>,
}

// === impl Running ===

impl Running {
    /// Builds everything and binds the listeners; the gateway serves when this returns.
    pub async fn start(config: Config, clock: Arc<dyn Clock>) -> Result<Running, StartError> {
        // rustls and the Redis client share the process-wide provider: make it ring, explicitly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let metrics = Metrics::new().map_err(|e| StartError(format!("metrics: {e}")))?;
        let state = Arc::new(State::from_config(&config, clock, metrics.clone()).await?);
        let tls = match &config.tls {
            Some(t) => {
                let acceptor = tls::ReloadingAcceptor::load(&t.cert, &t.key)
                    .map_err(|e| StartError(format!("tls: {e}")))?;
                let acceptor = Arc::new(acceptor);
                let reloads = metrics.tls_reloads.clone();
                metrics
                    .register_tls_expiry()
                    .map_err(|e| StartError(format!("metrics: {e}")))?;
                let expiry = metrics.tls_certificate_expiry.clone();
                let set_expiry = move |path: &std::path::Path| {
                    if let Some(t) = tls::leaf_not_after(path) {
                        expiry.set(t);
                    }
                };
                set_expiry(&t.cert);
                let cert = t.cert.clone();
                acceptor.spawn_watcher_with(
                    t.cert.clone(),
                    t.key.clone(),
                    TLS_RELOAD_INTERVAL,
                    move |ok| {
                        let result = if ok { "success" } else { "failure" };
                        reloads.with_label_values(&[result]).inc();
                        if ok {
                            set_expiry(&cert);
                        }
                    },
                );
                Some(acceptor)
            }
            None => None,
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| StartError(format!("listen {}: {e}", config.listen)))?;
        let admin_listener = TcpListener::bind(config.admin_listen)
            .await
            .map_err(|e| StartError(format!("admin_listen {}: {e}", config.admin_listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartError(format!("listen: {e}")))?;
        let admin_addr = admin_listener
            .local_addr()
            .map_err(|e| StartError(format!("admin_listen: {e}")))?;

        let (shutdown, rx) = watch::channel(false);
        let ready = Readiness::default();
        let state_for_watch = state.clone();
        let main = tokio::spawn(listener::serve(
            listener,
            tls,
            state,
            config.limits.clone(),
            rx.clone(),
            config.shutdown_timeout,
        ));
        if let (KeySource::File(path), TokenValidator::Jwt(_)) =
            (&config.access_token.keys, &state_for_watch.tokens)
        {
            let loaded_at = i64::try_from(state_for_watch.clock.now().as_secs()).unwrap_or(0);
            state_for_watch.metrics.jwks_last_success.set(loaded_at);
            tokio::spawn(watch_jwks_file(
                state_for_watch.clone(),
                path.clone(),
                rx.clone(),
            ));
        }
        let scrape_state = state_for_watch.clone();
        let before_scrape: admin::BeforeScrape = Arc::new(move || {
            if let ReplayStore::Memory(m) = &scrape_state.replay {
                let metrics = &scrape_state.metrics;
                metrics
                    .replay_entries
                    .set(i64::try_from(m.len()).unwrap_or(i64::MAX));
            }
        });
        // Its own stop signal: /metrics and /readyz (503 draining) answer through the drain.
        let (admin_stop, admin_rx) = watch::channel(false);
        let admin = tokio::spawn(admin::serve(
            admin_listener,
            metrics.clone(),
            ready.clone(),
            before_scrape,
            admin_rx,
        ));
        // Before the latch opens: remote keys are usually not loaded yet.
        ready.set_keys_loaded(state_for_watch.tokens.keys_loaded());
        ready.set_upstream_ok(config.upstream.readiness == UpstreamReadiness::None);
        tokio::spawn(upstream_ready::watch(
            config.upstream.clone(),
            ready.clone(),
            rx.clone(),
        ));
        tokio::spawn(watch_dependencies(state_for_watch, ready.clone(), rx));
        ready.set_ready();
        tracing::info!(%addr, %admin_addr, "dpop-gateway listening");
        Ok(Running {
            addr,
            admin_addr,
            metrics,
            ready,
            shutdown,
            admin_stop,
            main,
            admin,
        })
    }

    /// Begins shutdown: not ready at once, stop accepting, drain in-flight requests for at most
    /// `shutdown_timeout`. The admin listener keeps answering meanwhile (`/readyz` 503
    /// `draining`, `/metrics` of the drain) and stops last. Resolves when both have stopped.
    pub async fn shutdown(self) {
        self.ready.set_draining();
        let _ = self.shutdown.send(true);
        let _ = self.main.await;
        let _ = self.admin_stop.send(true);
        let _ = self.admin.await;
    }
}

/// Every second: the replay cache's size for the metrics, and for readiness whether the token
/// keys were loaded and whether the shared replay store answers, until shutdown. An unreachable
/// store makes the gateway unready only with `on_error: reject`: with `allow` it forwards
/// without the replay check, and taking every replica out of its Service at once would turn a
/// Redis outage into a full one.
async fn watch_dependencies(
    state: Arc<State>,
    ready: Readiness,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut was_reachable = true;
    loop {
        let reachable = match &state.replay {
            ReplayStore::Memory(m) => {
                state
                    .metrics
                    .replay_entries
                    .set(i64::try_from(m.len()).unwrap_or(i64::MAX));
                true
            }
            ReplayStore::Redis(r) => r.ping().await,
        };
        if reachable != was_reachable {
            let on_error = match state.on_error {
                OnError::Reject => "reject",
                OnError::Allow => "allow",
            };
            if reachable {
                tracing::info!("replay store reachable again");
            } else {
                tracing::warn!(on_error, "replay store unreachable");
            }
            was_reachable = reachable;
        }
        ready.set_replay_store_fatal(!reachable && state.on_error == OnError::Reject);
        ready.set_keys_loaded(state.tokens.keys_loaded());
        tokio::select! {
            _ = tokio::time::sleep(DEPENDENCY_CHECK_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Reloads `access_token.jwks_file` when it changes (a ConfigMap update, a symlink swap): a
/// good new set replaces the keys (and empties the token cache); a bad one is logged and the
/// old keys stay.
async fn watch_jwks_file(state: Arc<State>, path: PathBuf, mut shutdown: watch::Receiver<bool>) {
    let TokenValidator::Jwt(validator) = &state.tokens else {
        return;
    };
    let mut seen = tls::FileStamp::of(&path);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FILE_RELOAD_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        let now = tls::FileStamp::of(&path);
        if now == seen {
            continue;
        }
        seen = now;
        let metrics = validator.metrics();
        match read_jwks_file(&path) {
            Ok(set) => {
                tracing::info!(path = %path.display(), keys = set.keys.len(), "JWKS file reloaded");
                validator.set_keys(set);
                let now = i64::try_from(state.clock.now().as_secs()).unwrap_or(i64::MAX);
                metrics.keys_loaded_at.set(now);
                metrics.key_fetches.inc();
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "JWKS file change not applied; keeping the previous keys");
                metrics.key_fetch_failures.inc();
            }
        }
    }
}
