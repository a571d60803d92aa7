//! Watching what the gateway depends on while it runs: files that may change under it (TLS
//! certificates, `access_token.jwks_file`; a ConfigMap update swaps a symlink) and the
//! readiness of the replay store and the token keys.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::admin::Readiness;
use crate::config::OnError;
use crate::replay::ReplayStore;
use crate::state::State;
use crate::token::jwt::read_jwks_file;
use crate::token::TokenValidator;

/// How often `access_token.jwks_file` is checked for a change.
pub(crate) const FILE_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// How often the replay store is probed for readiness and its size exported.
const DEPENDENCY_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What identifies a file's content without reading it: where it resolves, its size and mtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileStamp {
    target: Option<PathBuf>,
    len: u64,
    modified: Option<SystemTime>,
}

/// Every second: the replay cache's size for the metrics, and for readiness whether the token
/// keys were loaded and whether the shared replay store answers, until shutdown. An unreachable
/// store makes the gateway unready only with `on_error: reject`: with `allow` it forwards
/// without the replay check, and taking every replica out of its Service at once would turn a
/// Redis outage into a full one.
pub(super) async fn dependencies(
    live: super::reload::Live,
    ready: Readiness,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut was_reachable = true;
    loop {
        let state = live.load_full();
        let reachable = match &*state.replay {
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
        drop(state);
        tokio::select! {
            _ = tokio::time::sleep(DEPENDENCY_CHECK_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Reloads `access_token.jwks_file` when it changes (a ConfigMap update, a symlink swap): a
/// good new set replaces the keys (and empties the token cache); a bad one is logged and the
/// old keys stay.
pub(super) async fn jwks_file(
    state: Arc<State>,
    index: usize,
    path: PathBuf,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some((_, TokenValidator::Jwt(validator))) = state.tokens.entries().nth(index) else {
        return;
    };
    let mut seen = FileStamp::of(&path);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FILE_RELOAD_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        let now = FileStamp::of(&path);
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

// === impl FileStamp ===

impl FileStamp {
    /// The stamp of `path` now; a missing file has an empty stamp (a later reappearance is a
    /// change).
    pub(crate) fn of(path: &Path) -> Self {
        // `metadata` follows symlinks: a swapped `..data` link changes `target` and usually the
        // mtime of what it resolves to.
        let meta = std::fs::metadata(path).ok();
        FileStamp {
            target: std::fs::canonicalize(path).ok(),
            len: meta.as_ref().map_or(0, |m| m.len()),
            modified: meta.and_then(|m| m.modified().ok()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests
mod tests {
    use super::*;
    use crate::server::tls::tests::TempDir;

    #[test]
    fn stamp_changes_when_a_symlink_is_swapped() {
        let dir = TempDir::new();
        let a = dir.write("a.crt", "same");
        let b = dir.write("b.crt", "same");
        let link = dir.0.join("tls.crt");
        std::os::unix::fs::symlink(&a, &link).unwrap();
        let before = FileStamp::of(&link);
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&b, &link).unwrap();
        assert_ne!(FileStamp::of(&link), before);
    }
}
