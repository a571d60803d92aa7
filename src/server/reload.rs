//! Reloading the configuration without a restart (README.md, "Reloading the configuration").
//!
//! The request path reads the state through [`Live`]: each request takes a snapshot of the
//! current [`State`] when it starts (per request, not per connection: a keep-alive client sees a
//! new config on its next request) and keeps it until its response is done, so an in-flight
//! request or an open tunnel finishes with the config it started with, and no request sees
//! half of one. A reload ([`Reloader::reload`], on SIGHUP or when the file changes) reads and
//! checks the file as `check` does and builds the next state around what is never rebuilt
//! ([`crate::state::Carried`]: the replay store, metrics, explorer, clock) on a blocking
//! thread, then swaps it in. Reloads are serialised; a failed one changes nothing.
//!
//! Some settings are bound to what was built at start (sockets, the replay store): a change to
//! them is logged as needing a restart and the running value is kept ([`pin_restart_keys`]);
//! the rest of the file applies.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{watch, Mutex};
use tokio::task::AbortHandle;

use crate::admin::Readiness;
use crate::config::Config;
use crate::state::State;

use super::watchers::FileStamp;

/// The current state, swapped whole by a reload; requests load a snapshot.
pub(crate) type Live = Arc<ArcSwap<State>>;

/// How often the config file is checked for a change; a change is applied once the file has
/// been the same for one more interval (a file being written is not read half-way).
pub(crate) const CONFIG_WATCH_INTERVAL: Duration = Duration::from_secs(5);

/// How long a reload waits for the new state's remote keys (`jwks_uri`, discovery) when the
/// running state has its keys.
const KEYS_WAIT: Duration = Duration::from_secs(10);

/// Whether `state`'s token keys are loaded, waiting for them at most `limit`.
async fn keys_loaded_within(state: &State, limit: Duration) -> bool {
    let waited = tokio::time::timeout(limit, async {
        while !state.tokens.keys_loaded() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    waited.await.is_ok()
}

/// Reloads the configuration from its file; cheap to clone.
#[derive(Clone)]
pub struct Reloader {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    live: Live,
    ready: Readiness,
    shutdown: watch::Receiver<bool>,
    /// Held through a reload: reloads are serialised.
    current: Mutex<Generation>,
}

/// The running configuration and what was started for it.
pub(crate) struct Generation {
    /// The configuration in force (restart-only settings as started).
    pub(crate) config: Config,
    /// The tasks that watch this generation's files and upstream: stopped when it is replaced.
    pub(crate) tasks: Vec<AbortHandle>,
    /// The config file's stamp when it was last read.
    pub(crate) stamp: FileStamp,
}

/// How a reload ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The new configuration serves new requests; the keys that need a restart to change (kept
    /// at their running values).
    Applied {
        /// Changed settings that were not applied.
        needs_restart: Vec<&'static str>,
    },
    /// The file was not applied (unreadable, invalid, or its state could not be built): why.
    Failed(String),
}

// === impl Reloader ===

impl Reloader {
    pub(crate) fn new(
        path: PathBuf,
        live: Live,
        ready: Readiness,
        shutdown: watch::Receiver<bool>,
        generation: Generation,
    ) -> Reloader {
        Reloader {
            inner: Arc::new(Inner {
                path,
                live,
                ready,
                shutdown,
                current: Mutex::new(generation),
            }),
        }
    }

    /// Re-reads the config file; a valid one replaces the state for new requests, an invalid
    /// one is logged (`file:line:column: message`) and the running state is kept. `trigger`
    /// names what asked (`SIGHUP`, `file change`) in the log line. Counted in
    /// `dpop_gateway_config_reloads_total{result}`.
    pub async fn reload(&self, trigger: &'static str) -> ReloadOutcome {
        let inner = &self.inner;
        let mut current = inner.current.lock().await;
        let path = inner.path.clone();
        let running = current.config.clone();
        let carried = inner.live.load().carried();
        let metrics = carried.metrics().clone();
        // The stamp before the read: a change during it is seen by the next check.
        current.stamp = FileStamp::of(&path);
        let built = tokio::task::spawn_blocking(move || {
            let mut config = crate::check::check(&path).map_err(|e| e.to_string())?;
            let needs_restart = pin_restart_keys(&running, &mut config);
            let state = State::build(&config, carried).map_err(|e| e.0)?;
            Ok::<_, String>((config, needs_restart, state))
        })
        .await
        .unwrap_or_else(|e| Err(format!("the reload task failed: {e}")));
        // Remote keys load in the background: swapped in before they are, the new state would
        // refuse every token (and make the pod unready) where the running one checks them.
        let had_keys = inner.live.load().tokens.keys_loaded();
        let built = match built {
            Ok((config, needs_restart, state)) if had_keys => {
                if keys_loaded_within(&state, KEYS_WAIT).await {
                    Ok((config, needs_restart, state))
                } else {
                    Err(format!(
                        "the authorization server's keys for the new configuration did not load within {}s",
                        KEYS_WAIT.as_secs()
                    ))
                }
            }
            other => other,
        };
        let file = inner.path.display().to_string();
        match built {
            Ok((config, needs_restart, state)) => {
                let state = Arc::new(state);
                inner.live.store(Arc::clone(&state));
                for task in current.tasks.drain(..) {
                    task.abort();
                }
                current.tasks =
                    super::spawn_generation(&state, &config, &inner.ready, &inner.shutdown);
                for key in &needs_restart {
                    tracing::warn!(
                        %file,
                        key,
                        "configuration change needs a restart: the running value is kept, the rest applies"
                    );
                }
                tracing::info!(
                    %file,
                    trigger,
                    routes = config.routes.len(),
                    upstreams = config.upstreams.len() + 1,
                    issuers = config.access_tokens.len(),
                    needs_restart = needs_restart.len(),
                    "configuration reloaded"
                );
                current.config = config;
                metrics.config_reloads.with_label_values(&["success"]).inc();
                let now = i64::try_from(state.clock.now().as_secs()).unwrap_or(i64::MAX);
                metrics.config_last_reload_success.set(now);
                ReloadOutcome::Applied { needs_restart }
            }
            Err(error) => {
                tracing::error!(
                    %file,
                    trigger,
                    %error,
                    "configuration reload failed: the running configuration is kept"
                );
                metrics.config_reloads.with_label_values(&["failure"]).inc();
                ReloadOutcome::Failed(error)
            }
        }
    }

    /// Checks the config file every [`CONFIG_WATCH_INTERVAL`] until shutdown; a change (a
    /// write, a rename, a Kubernetes ConfigMap's symlink swap) that has settled for one
    /// interval is reloaded as SIGHUP would.
    pub(crate) async fn watch_file(self, interval: Duration) {
        let mut shutdown = self.inner.shutdown.clone();
        let mut last = FileStamp::of(&self.inner.path);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
            let now = FileStamp::of(&self.inner.path);
            if now != last {
                last = now;
                continue;
            }
            let read = self.inner.current.lock().await.stamp.clone();
            if now != read {
                let _ = self.reload("file change").await;
            }
        }
    }
}

/// Keeps in `new` the running value of every setting bound to what was built at start, and
/// names each that differed: the listeners' sockets (`listen`, `admin_listen`,
/// `forward_auth.listen`, a decision listener added or removed), the main listener's `tls`
/// files (the certificate is reloaded from the same paths), `limits.max_connections` (the
/// listeners' slots), `shutdown_timeout`, the replay store (`replay_cache` but `on_error`;
/// `dpop.proof_max_age` and `dpop.clock_skew`, which set how long its entries live: a longer
/// window over the same store would reopen replays) and the explorer (its ring and page).
pub(crate) fn pin_restart_keys(running: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut pinned = Vec::new();
    let mut pin = |key: &'static str, differs: bool| {
        if differs {
            pinned.push(key);
        }
        differs
    };
    if pin("listen", new.listen != running.listen) {
        new.listen = running.listen;
    }
    if pin("admin_listen", new.admin_listen != running.admin_listen) {
        new.admin_listen = running.admin_listen;
    }
    match (&running.forward_auth, &mut new.forward_auth) {
        (Some(r), Some(n)) => {
            if pin("forward_auth.listen", n.listen != r.listen) {
                n.listen = r.listen;
            }
        }
        (None, None) => {}
        (r, n) => {
            pin("forward_auth", true);
            *n = r.clone();
        }
    }
    if pin("tls", new.tls != running.tls) {
        new.tls = running.tls.clone();
    }
    let max = running.limits.max_connections;
    if pin("limits.max_connections", new.limits.max_connections != max) {
        new.limits.max_connections = max;
    }
    if pin(
        "shutdown_timeout",
        new.shutdown_timeout != running.shutdown_timeout,
    ) {
        new.shutdown_timeout = running.shutdown_timeout;
    }
    let on_error = new.replay_cache.on_error;
    if pin("replay_cache", {
        let mut r = running.replay_cache.clone();
        r.on_error = on_error;
        r != new.replay_cache
    }) {
        new.replay_cache = running.replay_cache.clone();
        new.replay_cache.on_error = on_error;
    }
    let (age, skew) = (running.dpop.proof_max_age, running.dpop.clock_skew);
    if pin("dpop.proof_max_age", new.dpop.proof_max_age != age) {
        new.dpop.proof_max_age = age;
    }
    if pin("dpop.clock_skew", new.dpop.clock_skew != skew) {
        new.dpop.clock_skew = skew;
    }
    if pin("explorer", new.explorer != running.explorer) {
        new.explorer = running.explorer.clone();
    }
    pinned
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests
mod tests {
    use super::*;
    use crate::config::ProcessEnv;

    fn config(yaml: &str) -> Config {
        let base = "upstream: { url: \"http://127.0.0.1:8080\" }\naccess_token: { issuer: \"https://as.example.com\", audience: \"a\", jwks_file: config/demo/jwks.json }\n";
        Config::from_yaml_str(&format!("{base}{yaml}"), "<inline>", &ProcessEnv).unwrap()
    }

    #[test]
    fn restart_only_settings_keep_their_running_value_and_are_named() {
        let running = config(
            "listen: \"127.0.0.1:1000\"\nreplay_cache: { capacity: 10 }\nlimits: { max_connections: 5 }\n",
        );
        let mut new = config(
            "listen: \"127.0.0.1:2000\"\nreplay_cache: { capacity: 20, on_error: allow }\nlimits: { max_connections: 6, idle_timeout: 7s }\ndpop: { proof_max_age: 90s }\nroutes: [{ path_prefix: /, auth: none }]\n",
        );
        let pinned = pin_restart_keys(&running, &mut new);
        assert_eq!(
            pinned,
            [
                "listen",
                "limits.max_connections",
                "replay_cache",
                "dpop.proof_max_age"
            ]
        );
        assert_eq!(new.listen, running.listen);
        assert_eq!(new.limits.max_connections, 5);
        assert_eq!(new.replay_cache.backend, running.replay_cache.backend);
        assert_eq!(new.dpop.proof_max_age, running.dpop.proof_max_age);
        // The rest applies: on_error, other limits, routes.
        assert_eq!(new.replay_cache.on_error, crate::config::OnError::Allow);
        assert_eq!(new.limits.idle_timeout, Duration::from_secs(7));
        assert_eq!(new.routes[0].path_prefix, "/");
        assert!(pin_restart_keys(&running, &mut running.clone()).is_empty());
    }

    #[test]
    fn a_decision_listener_added_by_a_reload_needs_a_restart() {
        let running = config("");
        let mut new = config("forward_auth: { listen: \"127.0.0.1:8081\" }\n");
        assert_eq!(pin_restart_keys(&running, &mut new), ["forward_auth"]);
        assert!(new.forward_auth.is_none());
    }
}
