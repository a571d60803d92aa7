//! Logging with `tracing`: text by default, JSON with `DPOP_GATEWAY_LOG_FORMAT=json` (one flat
//! object per line); the level from `RUST_LOG` (default `info`). Access lines go to the
//! `dpop_gateway::access` target, one per request, written once its response is done
//! ([`AccessRecord`]). Tokens, proofs and secrets are never logged.
//!
//! Lines are formatted on the thread that logs them and appended to a bounded in-memory batch;
//! a dedicated thread writes the batch to stderr every [`FLUSH_INTERVAL`], or sooner once it
//! holds [`FLUSH_AT`] bytes. So a request costs a short append under an uncontended lock, the
//! writer wakes about ten times a second instead of once per line (on a gateway given one core,
//! a wake-up per line preempted the request path and made its latency tail), and a slow log
//! reader (a full pipe, a stalled collector) never stalls a request: past [`MAX_BATCH`] bytes
//! lines are dropped, and the next write says how many. Colours only on a terminal.
//!
//! Files: `access` (the line and its formats), `batch` (the writer thread), `timestamp`,
//! `request_id` (`X-Request-Id`: kept when sane, else generated).

use tracing_subscriber::EnvFilter;

mod access;
mod batch;
mod request_id;
mod timestamp;

pub(crate) use access::*;
pub(crate) use batch::*;
pub(crate) use request_id::*;
use timestamp::*;

/// Installs the global subscriber; keep the guard alive for as long as logs should be written
/// (dropping it writes what is batched). `None` when a subscriber was already installed.
pub(crate) fn init() -> Option<LogGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json =
        std::env::var("DPOP_GATEWAY_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let (writer, guard) = BatchWriter::spawn(std::io::stderr()).ok()?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer.clone());
    let installed = if json {
        // Flat: a line's fields beside `timestamp` and `level`, not nested under "fields".
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    match installed {
        Ok(()) => {
            // Colours are tracing's business; plain lines (files, pipes, collectors) are ours.
            if !ansi {
                let format = if json { Format::Json } else { Format::Text };
                let _ = ACCESS.set(AccessSink { writer, format });
            }
            Some(guard)
        }
        Err(_) => {
            drop(guard);
            None
        }
    }
}

#[cfg(test)]
mod tests;
