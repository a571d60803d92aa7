//! Logging with `tracing`: text by default, JSON with `DPOP_GATEWAY_LOG_FORMAT=json`; the level
//! from `RUST_LOG` (default `info`). Access lines go to the `dpop_gateway::access` target. Tokens,
//! proofs and secrets are never logged.
//!
//! Lines are formatted on the thread that logs them and appended to a bounded in-memory batch;
//! a dedicated thread writes the batch to stderr every [`FLUSH_INTERVAL`], or sooner once it
//! holds [`FLUSH_AT`] bytes. So a request costs a short append under an uncontended lock, the
//! writer wakes about ten times a second instead of once per line (on a gateway given one core,
//! a wake-up per line preempted the request path and made its latency tail), and a slow log
//! reader (a full pipe, a stalled collector) never stalls a request: past [`MAX_BATCH`] bytes
//! lines are dropped, and the next write says how many. Colours only on a terminal.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// How long a line may wait in the batch before it is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// A batch this large is written without waiting for [`FLUSH_INTERVAL`].
pub const FLUSH_AT: usize = 64 * 1024;

/// The most a batch holds while the writer is busy; further lines are dropped and counted.
pub const MAX_BATCH: usize = 1024 * 1024;

/// Installs the global subscriber; keep the guard alive for as long as logs should be written
/// (dropping it writes what is batched). `None` when a subscriber was already installed.
pub fn init() -> Option<LogGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json =
        std::env::var("DPOP_GATEWAY_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let (writer, guard) = BatchWriter::spawn(std::io::stderr()).ok()?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    let installed = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    match installed {
        Ok(()) => Some(guard),
        Err(_) => {
            drop(guard);
            None
        }
    }
}

/// Lines waiting for the writer thread.
#[derive(Default)]
struct Batch {
    buf: Vec<u8>,
    dropped: u64,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    batch: Mutex<Batch>,
    wake: Condvar,
}

impl Shared {
    /// The batch, even if a thread panicked while holding it (a log line is not worth a crash).
    fn lock(&self) -> MutexGuard<'_, Batch> {
        self.batch.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A [`MakeWriter`] appending whole lines to the shared batch.
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

/// Writes what is batched when dropped, and stops the writer thread.
pub struct LogGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

// === impl BatchWriter ===

impl BatchWriter {
    /// Starts the writer thread draining into `out`.
    pub fn spawn<W: Write + Send + 'static>(out: W) -> std::io::Result<(BatchWriter, LogGuard)> {
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn({
                let shared = shared.clone();
                move || write_batches(&shared, out)
            })?;
        Ok((
            BatchWriter {
                shared: shared.clone(),
            },
            LogGuard {
                shared,
                thread: Some(thread),
            },
        ))
    }
}

impl Write for BatchWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut batch = self.shared.lock();
        let before = batch.buf.len();
        if before + line.len() > MAX_BATCH {
            batch.dropped += 1;
        } else {
            batch.buf.extend_from_slice(line);
            if before < FLUSH_AT && batch.buf.len() >= FLUSH_AT {
                self.shared.wake.notify_one();
            }
        }
        // A dropped line is still "written": the caller must not retry or fail.
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = BatchWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The writer thread: waits for a full batch, the flush interval or shutdown, then writes the
/// batch outside the lock (loggers keep appending to a fresh buffer meanwhile).
fn write_batches<W: Write>(shared: &Shared, mut out: W) {
    let mut spare = Vec::new();
    loop {
        let deadline = crate::clock::monotonic() + FLUSH_INTERVAL;
        let (dropped, closed) = {
            let mut batch = shared.lock();
            while !batch.closed && batch.buf.len() < FLUSH_AT {
                let left = deadline.saturating_duration_since(crate::clock::monotonic());
                if left.is_zero() {
                    break;
                }
                batch = shared
                    .wake
                    .wait_timeout(batch, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            std::mem::swap(&mut batch.buf, &mut spare);
            (std::mem::take(&mut batch.dropped), batch.closed)
        };
        if dropped > 0 {
            let _ = writeln!(
                out,
                "dpop-gateway: {dropped} log lines dropped (the log reader is slower than the gateway)"
            );
        }
        if !spare.is_empty() {
            // Nowhere to report a failed log write; the next batch tries again.
            let _ = out.write_all(&spare);
            let _ = out.flush();
            spare.clear();
            // A burst may have grown the buffer; do not keep more than one flush's worth.
            spare.shrink_to(FLUSH_AT * 2);
        }
        if closed {
            return;
        }
    }
}

// === impl LogGuard ===

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `io::Write` the test can read back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// An `io::Write` that blocks until released, like a full pipe.
    struct Stalled(Arc<(Mutex<bool>, Condvar)>, Sink);

    impl Write for Stalled {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let (lock, cv) = &*self.0;
            let mut open = lock.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            self.1.write(b)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_written_in_order_and_all_of_them_by_the_guard() {
        let sink = Sink::default();
        let (writer, guard) = BatchWriter::spawn(sink.clone()).unwrap();
        for i in 0..1000 {
            writer
                .make_writer()
                .write_all(format!("line {i}\n").as_bytes())
                .unwrap();
        }
        drop(guard);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1000);
        assert_eq!(lines[0], "line 0");
        assert_eq!(lines[999], "line 999");
    }

    #[test]
    fn a_line_is_written_within_the_flush_interval_without_shutdown() {
        let sink = Sink::default();
        let (writer, _guard) = BatchWriter::spawn(sink.clone()).unwrap();
        writer.make_writer().write_all(b"hello\n").unwrap();
        let deadline = crate::clock::monotonic() + Duration::from_secs(10);
        while sink.0.lock().unwrap().is_empty() {
            assert!(crate::clock::monotonic() < deadline, "line never written");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(&*sink.0.lock().unwrap(), b"hello\n");
    }

    #[test]
    fn a_stalled_reader_bounds_the_batch_and_the_drop_is_reported() {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let sink = Sink::default();
        let (writer, guard) = BatchWriter::spawn(Stalled(gate.clone(), sink.clone())).unwrap();
        let line = vec![b'x'; 1023];
        let line = [line.as_slice(), b"\n"].concat();
        // The writer takes at most one batch and then blocks; the next batch fills to
        // MAX_BATCH and the rest is dropped instead of growing or blocking the logger.
        for _ in 0..(3 * MAX_BATCH / line.len()) {
            writer.make_writer().write_all(&line).unwrap();
        }
        assert!(writer.shared.lock().buf.len() <= MAX_BATCH);
        assert!(writer.shared.lock().dropped > 0);
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        drop(guard);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("log lines dropped"), "no drop notice");
        assert!(
            text.len() <= 2 * MAX_BATCH + 200,
            "more than two batches written"
        );
    }
}
