//! Logging with `tracing`: text by default, JSON with `DPOP_GATEWAY_LOG_FORMAT=json`; the level
//! from `RUST_LOG` (default `info`). Access lines go to the `dpop_gateway::access` target. Tokens,
//! proofs and secrets are never logged.
//!
//! Lines are written to stderr by a dedicated thread through a bounded queue: a slow log reader
//! (a full pipe, a stalled collector) must not stall requests. When the queue is full, lines are
//! dropped rather than blocking the request path (`tracing-appender`'s lossy mode). Colours only
//! on a terminal.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; keep the guard alive for as long as logs should be flushed
/// (dropping it flushes what is queued). `None` when a subscriber was already installed.
pub fn init() -> Option<WorkerGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json =
        std::env::var("DPOP_GATEWAY_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    // Buffered: the writer thread drains every queued line, then flushes once, so a burst
    // costs one write(2) instead of one per line.
    let stderr = std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr());
    let (writer, guard) = tracing_appender::non_blocking(stderr);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    let installed = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    installed.ok().map(|()| guard)
}
