//! The admin listener (plain HTTP, keep it private): `GET /metrics`, `/healthz` (the process
//! is alive) and `/readyz` (a latch: ready once the listeners are up and the keys are loaded,
//! not ready from the moment shutdown begins).

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
use crate::metrics::Metrics;

/// The readiness latch, and whether the dependencies that are probed (the shared replay
/// store) answer.
#[derive(Clone, Debug)]
pub(crate) struct Readiness {
    started: Arc<AtomicBool>,
    dependencies_ok: Arc<AtomicBool>,
}

// === impl Readiness ===

impl Default for Readiness {
    fn default() -> Self {
        Self {
            started: Arc::new(AtomicBool::new(false)),
            dependencies_ok: Arc::new(AtomicBool::new(true)),
        }
    }
}

impl Readiness {
    /// Marks the gateway started (listeners up, keys loaded).
    pub(crate) fn set_ready(&self) {
        self.started.store(true, Ordering::Release);
    }

    /// Marks the gateway not ready (shutdown has begun); it never becomes ready again.
    pub(crate) fn set_not_ready(&self) {
        self.started.store(false, Ordering::Release);
    }

    /// Records whether the probed dependencies answer.
    pub(crate) fn set_dependencies_ok(&self, ok: bool) {
        self.dependencies_ok.store(ok, Ordering::Release);
    }

    /// Whether the gateway is ready.
    pub(crate) fn is_ready(&self) -> bool {
        self.started.load(Ordering::Acquire) && self.dependencies_ok.load(Ordering::Acquire)
    }
}

/// Serves the admin endpoints until `shutdown` flips.
/// Called before every `/metrics` answer, to bring pulled values up to date.
pub(crate) type BeforeScrape = Arc<dyn Fn() + Send + Sync>;

pub(crate) async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    ready: Readiness,
    before_scrape: BeforeScrape,
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
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                if req.uri().path() == "/metrics" {
                    before_scrape();
                }
                let resp = respond(&req, &metrics, &ready);
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
        "/readyz" if ready.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<GatewayBody> {
    let mut resp = Response::new(body::full(body));
    *resp.status_mut() = status;
    resp
}
