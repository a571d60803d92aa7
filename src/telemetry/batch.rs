//! The batch writer: lines appended under a short lock, written by one thread every
//! `FLUSH_INTERVAL` (or once `FLUSH_AT` bytes wait), lines past `MAX_BATCH` dropped and counted.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in the batch before it is written.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// A batch this large is written without waiting for [`FLUSH_INTERVAL`].
pub(crate) const FLUSH_AT: usize = 64 * 1024;

/// The most a batch holds while the writer is busy; further lines are dropped and counted.
pub(crate) const MAX_BATCH: usize = 1024 * 1024;

/// Lines waiting for the writer thread.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) buf: Vec<u8>,
    pub(super) dropped: u64,
    pub(super) closed: bool,
}

#[derive(Default)]
pub(super) struct Shared {
    pub(super) batch: Mutex<Batch>,
    pub(super) wake: Condvar,
}

impl Shared {
    /// The batch, even if a thread panicked while holding it (a log line is not worth a crash).
    pub(super) fn lock(&self) -> MutexGuard<'_, Batch> {
        self.batch.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A [`MakeWriter`] appending whole lines to the shared batch.
#[derive(Clone)]
pub(crate) struct BatchWriter {
    pub(super) shared: Arc<Shared>,
}

/// Writes what is batched when dropped, and stops the writer thread.
pub(crate) struct LogGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

// === impl BatchWriter ===

impl BatchWriter {
    /// Starts the writer thread draining into `out`.
    pub(crate) fn spawn<W: Write + Send + 'static>(
        out: W,
    ) -> std::io::Result<(BatchWriter, LogGuard)> {
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
pub(super) fn write_batches<W: Write>(shared: &Shared, mut out: W) {
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
