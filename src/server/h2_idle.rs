//! The HTTP/2 idle timeout. PING frames flow on an idle HTTP/2 connection, so idleness is
//! counted in open streams, not bytes: the service holds a [`StreamOpen`] per request, and
//! the connection's I/O wrapper ([`Deadlines`](super::deadline::Deadlines)), when it has
//! nothing to read, asks [`Streams::poll_idle`] whether no stream has been open for
//! `idle_timeout`. The connection task checks [`Streams::is_idle`] after each poll of the
//! connection and shuts it down gracefully (GOAWAY, then whatever is still queued is sent).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Context;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// The HTTP/2 streams open on one connection and when the last one closed: the service
/// holds a [`StreamOpen`] per request, [`Deadlines`](super::deadline::Deadlines) reads it for the idle timeout.
#[derive(Debug)]
pub(crate) struct Streams {
    state: Mutex<(usize, Instant)>,
    idle: AtomicBool,
    /// HTTP/1.1: the service returned a `101` (a WebSocket tunnel), whose head is the next
    /// write; [`Deadlines`](super::deadline::Deadlines) switches to the tunnel only then.
    switching: AtomicBool,
}

/// One open stream; dropped with the response body (or the request, if it never got one).
#[derive(Debug)]
pub(crate) struct StreamOpen(Arc<Streams>);

// === impl Streams ===

impl Streams {
    /// No stream open, the last closed now.
    pub(crate) fn new() -> Arc<Streams> {
        Arc::new(Streams {
            state: Mutex::new((0, Instant::now())),
            idle: AtomicBool::new(false),
            switching: AtomicBool::new(false),
        })
    }

    /// The service returned a `101` on this HTTP/1.1 connection: its head is the next write.
    pub(crate) fn mark_switching(&self) {
        self.switching.store(true, Ordering::Relaxed);
    }

    /// Whether a `101` was returned since the last call (and clears it).
    pub(super) fn take_switching(&self) -> bool {
        self.switching.swap(false, Ordering::Relaxed)
    }

    /// Whether this HTTP/2 connection has had no stream open for `idle_timeout`.
    pub(crate) fn is_idle(&self) -> bool {
        self.idle.load(Ordering::Relaxed)
    }

    /// Tells the connection task once no stream has been open for `idle_timeout` (called
    /// when there is nothing to read), and sets `sleep` for when that could (next) be.
    pub(super) fn poll_idle(
        &self,
        mut sleep: Pin<&mut Sleep>,
        idle_timeout: Duration,
        cx: &mut Context<'_>,
    ) {
        while sleep.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let next = match *self.lock() {
                (0, closed) if now >= closed + idle_timeout => {
                    // Set within the connection's own poll: the connection task looks at it
                    // when this poll returns.
                    self.idle.store(true, Ordering::Relaxed);
                    cx.waker().wake_by_ref();
                    now + idle_timeout
                }
                (0, closed) => closed + idle_timeout,
                _ => now + idle_timeout,
            };
            sleep.as_mut().reset(next);
        }
    }

    /// Counts a stream open until the returned guard drops.
    pub(crate) fn open(self: &Arc<Self>) -> StreamOpen {
        self.lock().0 += 1;
        StreamOpen(Arc::clone(self))
    }

    /// The count and time, even if a thread panicked holding them (no invariant to break).
    fn lock(&self) -> MutexGuard<'_, (usize, Instant)> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for StreamOpen {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.0 = state.0.saturating_sub(1);
        state.1 = Instant::now();
    }
}
