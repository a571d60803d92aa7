//! The admin listener (plain HTTP, keep it private): `GET /metrics`, `/healthz` (the process
//! is alive) and `/readyz` (ready once the listeners are up and the keys are loaded; not ready
//! from the moment shutdown begins, and while a dependency the configuration makes fatal is
//! down). A 503 from `/readyz` says why in its body. The listener keeps serving through the
//! drain, until the process exits. With `explorer.enabled`, also the decision explorer under
//! `/explorer` (`crate::explorer`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::{self, GatewayBody};
use crate::explorer::Explorer;
use crate::metrics::Metrics;

/// What `/readyz` answers: each condition that makes the gateway not ready, set by the
/// server as it starts, probes its dependencies and drains.
#[derive(Clone, Debug)]
pub(crate) struct Readiness {
    inner: Arc<Conditions>,
}

#[derive(Debug)]
struct Conditions {
    /// The listeners are up.
    started: AtomicBool,
    /// Shutdown has begun (never cleared).
    draining: AtomicBool,
    /// The access-token keys were loaded at least once.
    keys_loaded: AtomicBool,
    /// The replay store is unreachable and `on_error` is `reject` (with `allow` the gateway
    /// forwards without the check, so it stays ready).
    replay_store_fatal: AtomicBool,
    /// The `upstream.readiness` check passed last time (always true with `none`).
    upstream_ok: AtomicBool,
}

/// Why the gateway is not ready: the `/readyz` 503 body names each that holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotReady {
    /// The listeners are not up yet.
    Starting,
    /// Shutdown has begun.
    Draining,
    /// The authorization server's keys were never loaded.
    KeysNeverLoaded,
    /// The replay store is unreachable, with `on_error: reject`.
    ReplayStoreUnreachable,
    /// The `upstream.readiness` check fails (or has not passed yet).
    Upstream,
}

// === impl Readiness ===

impl Default for Readiness {
    fn default() -> Self {
        Self {
            inner: Arc::new(Conditions {
                started: AtomicBool::new(false),
                draining: AtomicBool::new(false),
                keys_loaded: AtomicBool::new(false),
                replay_store_fatal: AtomicBool::new(false),
                upstream_ok: AtomicBool::new(false),
            }),
        }
    }
}

impl Readiness {
    /// Marks the gateway started (listeners up).
    pub(crate) fn set_ready(&self) {
        self.inner.started.store(true, Ordering::Release);
    }

    /// Marks the gateway draining (shutdown has begun); it never becomes ready again.
    pub(crate) fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::Release);
    }

    /// Records whether the access-token keys were loaded at least once.
    pub(crate) fn set_keys_loaded(&self, loaded: bool) {
        self.inner.keys_loaded.store(loaded, Ordering::Release);
    }

    /// Records whether an unreachable replay store makes the gateway unready (it does only
    /// with `on_error: reject`; the caller decides).
    pub(crate) fn set_replay_store_fatal(&self, fatal: bool) {
        self.inner
            .replay_store_fatal
            .store(fatal, Ordering::Release);
    }

    /// Records the last result of the `upstream.readiness` check.
    pub(crate) fn set_upstream_ok(&self, ok: bool) {
        self.inner.upstream_ok.store(ok, Ordering::Release);
    }

    /// Every reason the gateway is not ready now (empty: ready), in a fixed order.
    pub(crate) fn not_ready(&self) -> Vec<NotReady> {
        let c = &self.inner;
        let flags = [
            (!c.started.load(Ordering::Acquire), NotReady::Starting),
            (c.draining.load(Ordering::Acquire), NotReady::Draining),
            (
                !c.keys_loaded.load(Ordering::Acquire),
                NotReady::KeysNeverLoaded,
            ),
            (
                c.replay_store_fatal.load(Ordering::Acquire),
                NotReady::ReplayStoreUnreachable,
            ),
            (!c.upstream_ok.load(Ordering::Acquire), NotReady::Upstream),
        ];
        flags
            .into_iter()
            .filter_map(|(holds, why)| holds.then_some(why))
            .collect()
    }
}

// === impl NotReady ===

impl NotReady {
    /// The words `/readyz` answers with.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NotReady::Starting => "starting",
            NotReady::Draining => "draining",
            NotReady::KeysNeverLoaded => "keys never loaded",
            NotReady::ReplayStoreUnreachable => "replay store unreachable",
            NotReady::Upstream => "upstream not ready",
        }
    }
}

/// Called before every `/metrics` answer, to bring pulled values up to date.
pub(crate) type BeforeScrape = Arc<dyn Fn() + Send + Sync>;

/// Serves the admin endpoints until `shutdown` flips (the server flips it after the main
/// listener drained, so probes and scrapes are answered through the drain).
pub(crate) async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    ready: Readiness,
    before_scrape: BeforeScrape,
    explorer: Option<Arc<Explorer>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => {
                    // EMFILE and friends: back off instead of spinning a core.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let metrics = metrics.clone();
        let ready = ready.clone();
        let before_scrape = before_scrape.clone();
        let explorer = explorer.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                if req.uri().path() == "/metrics" {
                    before_scrape();
                }
                let resp = if req.uri().path().starts_with("/explorer")
                    && matches!(*req.method(), Method::GET | Method::HEAD)
                {
                    Explorer::respond(explorer.as_deref(), req.uri())
                } else {
                    respond(&req, &metrics, &ready)
                };
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(req: &Request<Incoming>, metrics: &Metrics, ready: &Readiness) -> Response<GatewayBody> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match req.uri().path() {
        "/metrics" => {
            let mut resp = text(StatusCode::OK, metrics.encode());
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            let why = ready.not_ready();
            if why.is_empty() {
                text(StatusCode::OK, "ready\n")
            } else {
                let why: Vec<&str> = why.into_iter().map(NotReady::as_str).collect();
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {}\n", why.join(", ")),
                )
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<GatewayBody> {
    let mut resp = Response::new(body::full(body));
    *resp.status_mut() = status;
    resp
}
