//! Starting and stopping the gateway: builds the shared [`State`] from a [`Config`], binds the
//! main and admin listeners, and returns a [`Running`] handle that drains on shutdown.

mod cert_expiry;
pub(crate) mod deadline;
mod h2_idle;
pub(crate) mod listener;
pub(crate) mod reload;
pub mod tls;
mod upstream_ready;
pub(crate) mod watchers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

use crate::admin::{self, Readiness};
use crate::clock::Clock;
use crate::config::{Config, KeySource, UpstreamReadiness};
use crate::metrics::Metrics;
use crate::replay::ReplayStore;
pub use crate::state::StartError;
use crate::state::State;
use crate::token::TokenValidator;
pub use reload::{ReloadOutcome, Reloader};

/// How often TLS files are checked for a change (the contract promises 30 s).
pub(crate) const TLS_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// A running gateway.
pub struct Running {
    /// The main listener's bound address.
    pub addr: SocketAddr,
    /// The admin listener's bound address.
    pub admin_addr: SocketAddr,
    /// The decision listener's bound address (`forward_auth.listen`), when configured.
    pub forward_auth_addr: Option<SocketAddr>,
    /// The metrics (for tests and embedding).
    pub metrics: Metrics,
    /// Reloads the config file (started with [`Running::start_reloadable`]).
    reloader: Option<Reloader>,
    ready: Readiness,
    shutdown: watch::Sender<bool>,
    /// Stops the admin listener: only once the main listener has drained.
    admin_stop: watch::Sender<bool>,
    main: JoinHandle<()>,
    /// The decision listener, drained with the main one.
    decisions: Option<JoinHandle<()>>,
    admin: JoinHandle<()>,
}

// === impl Running ===

impl Running {
    /// Builds everything and binds the listeners; the gateway serves when this returns.
    pub async fn start(config: Config, clock: Arc<dyn Clock>) -> Result<Running, StartError> {
        Running::start_from(config, None, clock).await
    }

    /// As [`Running::start`], for `config` read from `path`: [`Running::reloader`] re-reads it,
    /// and so does a change of the file (checked every 5 s).
    pub async fn start_reloadable(
        config: Config,
        path: PathBuf,
        clock: Arc<dyn Clock>,
    ) -> Result<Running, StartError> {
        Running::start_from(config, Some(path), clock).await
    }

    /// What reloads the config file, when started with [`Running::start_reloadable`].
    pub fn reloader(&self) -> Option<&Reloader> {
        self.reloader.as_ref()
    }

    async fn start_from(
        config: Config,
        path: Option<PathBuf>,
        clock: Arc<dyn Clock>,
    ) -> Result<Running, StartError> {
        // The file as `run` read it a moment ago: a change from now on is one to reload.
        let stamp = path.as_deref().map(watchers::FileStamp::of);
        // rustls and the Redis client share the process-wide provider: make it ring, explicitly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let metrics = Metrics::new().map_err(|e| StartError(format!("metrics: {e}")))?;
        let state = Arc::new(State::from_config(&config, clock, metrics.clone()).await?);
        let loaded_at = i64::try_from(state.clock.now().as_secs()).unwrap_or(0);
        metrics.config_last_reload_success.set(loaded_at);
        let live: reload::Live = Arc::new(ArcSwap::new(Arc::clone(&state)));
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
        let decision_listener = match &config.forward_auth {
            Some(fa) => {
                let l = TcpListener::bind(fa.listen)
                    .await
                    .map_err(|e| StartError(format!("forward_auth.listen {}: {e}", fa.listen)))?;
                let addr = l
                    .local_addr()
                    .map_err(|e| StartError(format!("forward_auth.listen: {e}")))?;
                Some((l, addr))
            }
            None => None,
        };
        let forward_auth_addr = decision_listener.as_ref().map(|(_, a)| *a);

        let (shutdown, rx) = watch::channel(false);
        let ready = Readiness::default();
        // Plain HTTP whatever `tls` says: the ingress reaches it on loopback or its own network.
        let decisions = decision_listener.map(|(l, _)| {
            tokio::spawn(listener::serve_with(
                l,
                None,
                live.clone(),
                rx.clone(),
                config.shutdown_timeout,
                crate::metrics::Listener::ForwardAuth.as_str(),
                crate::pipeline::decide::<hyper::body::Incoming>,
            ))
        });
        let main = tokio::spawn(listener::serve(
            listener,
            tls,
            live.clone(),
            rx.clone(),
            config.shutdown_timeout,
        ));
        ready.set_upstream_ok(config.upstream.readiness == UpstreamReadiness::None);
        let tasks = spawn_generation(&state, &config, &ready, &rx);
        let scrape_live = live.clone();
        let before_scrape: admin::BeforeScrape = Arc::new(move || {
            let state = scrape_live.load();
            if let ReplayStore::Memory(m) = &*state.replay {
                state
                    .metrics
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
            state.explorer.clone(),
            admin_rx,
        ));
        tokio::spawn(watchers::dependencies(
            live.clone(),
            ready.clone(),
            rx.clone(),
        ));
        let reloader = match (path, stamp) {
            (Some(path), Some(stamp)) => {
                let generation = reload::Generation {
                    config,
                    tasks,
                    stamp,
                };
                let r = Reloader::new(path, live, ready.clone(), rx, generation);
                tokio::spawn(r.clone().watch_file(reload::CONFIG_WATCH_INTERVAL));
                Some(r)
            }
            _ => None,
        };
        drop(state);
        ready.set_ready();
        match forward_auth_addr {
            Some(fa) => {
                tracing::info!(%addr, %admin_addr, forward_auth = %fa, "dpop-gateway listening");
            }
            None => tracing::info!(%addr, %admin_addr, "dpop-gateway listening"),
        }
        Ok(Running {
            addr,
            admin_addr,
            forward_auth_addr,
            metrics,
            reloader,
            ready,
            shutdown,
            admin_stop,
            main,
            decisions,
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
        if let Some(decisions) = self.decisions {
            let _ = decisions.await;
        }
        let _ = self.admin_stop.send(true);
        let _ = self.admin.await;
    }
}

/// Starts what watches one generation of the state until it is replaced by a reload (the
/// handles abort them) or the gateway shuts down: each `access_token.jwks_file`, and
/// `upstream.readiness`; records whether its keys are loaded.
pub(crate) fn spawn_generation(
    state: &Arc<State>,
    config: &Config,
    ready: &Readiness,
    shutdown: &watch::Receiver<bool>,
) -> Vec<AbortHandle> {
    let mut tasks = Vec::new();
    let entries = config.access_tokens.iter().zip(state.tokens.entries());
    for (index, (at, (_, validator))) in entries.enumerate() {
        if let (KeySource::File(path), TokenValidator::Jwt(_)) = (&at.keys, validator) {
            let loaded_at = i64::try_from(state.clock.now().as_secs()).unwrap_or(0);
            state.metrics.jwks_last_success.set(loaded_at);
            let task = tokio::spawn(watchers::jwks_file(
                state.clone(),
                index,
                path.clone(),
                shutdown.clone(),
            ));
            tasks.push(task.abort_handle());
        }
    }
    // Before the latch opens (at start): remote keys are usually not loaded yet.
    ready.set_keys_loaded(state.tokens.keys_loaded());
    // A check's result stands until the new check's first one (no flap at a reload).
    if config.upstream.readiness == UpstreamReadiness::None {
        ready.set_upstream_ok(true);
    }
    let task = tokio::spawn(upstream_ready::watch(
        config.upstream.clone(),
        ready.clone(),
        shutdown.clone(),
    ));
    tasks.push(task.abort_handle());
    tasks
}
