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
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// How long a line may wait in the batch before it is written.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// A batch this large is written without waiting for [`FLUSH_INTERVAL`].
pub(crate) const FLUSH_AT: usize = 64 * 1024;

/// The most a batch holds while the writer is busy; further lines are dropped and counted.
pub(crate) const MAX_BATCH: usize = 1024 * 1024;

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
        builder.json().try_init()
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

/// The access-log target: `RUST_LOG=info,dpop_gateway::access=off` turns the lines off.
pub(crate) const ACCESS_TARGET: &str = "dpop_gateway::access";

/// One request, as its access-log line reports it. Never a token or a proof.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AccessLine<'a> {
    /// `X-Request-Id` (a sane client value or a generated one).
    pub request_id: &'a str,
    /// The request method.
    pub method: &'a str,
    /// The route's prefix, or `unmatched`.
    pub route: &'a str,
    /// The response status.
    pub status: u16,
    /// `forwarded` or the refusal's error code.
    pub outcome: &'a str,
    /// The refusal's reason, `none` when forwarded.
    pub reason: &'a str,
    /// Time in the gateway until the response head, in microseconds.
    pub duration_us: u64,
    /// The proof key's thumbprint, `-` without a verified proof.
    pub jkt: &'a str,
    /// The client's address.
    pub client: SocketAddr,
}

/// Writes one access-log line, when the `dpop_gateway::access` target is enabled at `info`.
///
/// The line is the one tracing's formatter would write for the same fields (same layout, text
/// or JSON), but built here with plain appends: through tracing's field visitors it cost about
/// 6% of a forwarded request's CPU. Without a plain-line sink (a terminal, or tests with their
/// own subscriber), it goes through tracing.
pub(crate) fn access(line: &AccessLine<'_>) {
    if !tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO) {
        return;
    }
    match ACCESS.get() {
        Some(sink) => {
            LINE.with(|buf| {
                let mut buf = buf.borrow_mut();
                buf.clear();
                sink.format
                    .write(&mut buf, crate::clock::wall_micros(), line);
                let _ = sink.writer.clone().write(&buf);
            });
        }
        None => tracing::info!(
            target: ACCESS_TARGET,
            request_id = line.request_id,
            method = %line.method,
            route = %line.route,
            status = line.status,
            outcome = line.outcome,
            reason = line.reason,
            duration_us = line.duration_us,
            jkt = line.jkt,
            client = %line.client,
        ),
    }
}

static ACCESS: OnceLock<AccessSink> = OnceLock::new();

thread_local! {
    static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

struct AccessSink {
    writer: BatchWriter,
    format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

impl Format {
    /// Appends the line as tracing-subscriber 0.3's default (`fmt()`) or `json()` format.
    fn write(self, out: &mut Vec<u8>, unix_micros: u64, l: &AccessLine<'_>) {
        match self {
            Format::Text => {
                rfc3339_micros(out, unix_micros);
                out.extend_from_slice(b"  INFO dpop_gateway::access: request_id=");
                debug_str(out, l.request_id);
                out.extend_from_slice(b" method=");
                out.extend_from_slice(l.method.as_bytes());
                out.extend_from_slice(b" route=");
                out.extend_from_slice(l.route.as_bytes());
                out.extend_from_slice(b" status=");
                decimal(out, u64::from(l.status));
                out.extend_from_slice(b" outcome=");
                debug_str(out, l.outcome);
                out.extend_from_slice(b" reason=");
                debug_str(out, l.reason);
                out.extend_from_slice(b" duration_us=");
                decimal(out, l.duration_us);
                out.extend_from_slice(b" jkt=");
                debug_str(out, l.jkt);
                out.extend_from_slice(b" client=");
                socket_addr(out, l.client);
            }
            Format::Json => {
                out.extend_from_slice(b"{\"timestamp\":\"");
                rfc3339_micros(out, unix_micros);
                out.extend_from_slice(b"\",\"level\":\"INFO\",\"fields\":{\"request_id\":");
                json_str(out, l.request_id);
                out.extend_from_slice(b",\"method\":");
                json_str(out, l.method);
                out.extend_from_slice(b",\"route\":");
                json_str(out, l.route);
                out.extend_from_slice(b",\"status\":");
                decimal(out, u64::from(l.status));
                out.extend_from_slice(b",\"outcome\":");
                json_str(out, l.outcome);
                out.extend_from_slice(b",\"reason\":");
                json_str(out, l.reason);
                out.extend_from_slice(b",\"duration_us\":");
                decimal(out, l.duration_us);
                out.extend_from_slice(b",\"jkt\":");
                json_str(out, l.jkt);
                out.extend_from_slice(b",\"client\":\"");
                socket_addr(out, l.client);
                out.extend_from_slice(b"\"},\"target\":\"dpop_gateway::access\"}");
            }
        }
        out.push(b'\n');
    }
}

/// `n` in decimal.
fn decimal(out: &mut Vec<u8>, n: u64) {
    padded(out, n, 1);
}

/// `n` in decimal, zero-padded to `width` digits.
fn padded(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i.min(digits.len().saturating_sub(width))..]);
}

/// `2026-11-23T15:07:51.661101Z`, as tracing-subscriber's default timer writes it.
fn rfc3339_micros(out: &mut Vec<u8>, unix_micros: u64) {
    // The date and time up to the second change once a second: kept per thread.
    thread_local! {
        static SECOND: std::cell::Cell<(u64, [u8; 20])> = const { std::cell::Cell::new((u64::MAX, [0; 20])) };
    }
    let secs = unix_micros / 1_000_000;
    let (cached, mut prefix) = SECOND.get();
    if cached != secs {
        let mut text = Vec::with_capacity(20);
        rfc3339_seconds(&mut text, secs);
        if let Ok(p) = <[u8; 20]>::try_from(text.as_slice()) {
            prefix = p;
            SECOND.set((secs, prefix));
        } else {
            // Years past 9999: not cached, written in full.
            out.extend_from_slice(&text);
            padded(out, unix_micros % 1_000_000, 6);
            out.push(b'Z');
            return;
        }
    }
    out.extend_from_slice(&prefix);
    padded(out, unix_micros % 1_000_000, 6);
    out.push(b'Z');
}

/// `2026-11-23T15:07:51.` for `secs` since the epoch.
fn rfc3339_seconds(out: &mut Vec<u8>, secs: u64) {
    let (y, m, d) = civil_from_days(secs / 86_400);
    let tod = secs % 86_400;
    padded(out, y, 4);
    out.push(b'-');
    padded(out, m, 2);
    out.push(b'-');
    padded(out, d, 2);
    out.push(b'T');
    padded(out, tod / 3600, 2);
    out.push(b':');
    padded(out, tod / 60 % 60, 2);
    out.push(b':');
    padded(out, tod % 60, 2);
    out.push(b'.');
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// A string as `{:?}` writes it (quoted, escaped).
fn debug_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\' || b == b' ')
    {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = write!(out, "{s:?}");
    }
}

/// A JSON string.
fn json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // serde_json escapes exactly as the JSON formatter (which uses it) does.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// `127.0.0.1:443` / `[::1]:443`, as `Display` writes them.
fn socket_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(a) => {
            for (i, o) in a.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                decimal(out, u64::from(o));
            }
            out.push(b':');
            decimal(out, u64::from(a.port()));
        }
        SocketAddr::V6(_) => {
            let _ = write!(out, "{addr}");
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
pub(crate) struct BatchWriter {
    shared: Arc<Shared>,
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

    fn line(request_id: &str, client: &str) -> AccessLine<'static> {
        AccessLine {
            request_id: Box::leak(request_id.to_owned().into_boxed_str()),
            method: "POST",
            route: "/api",
            status: 401,
            outcome: "invalid_dpop_proof",
            reason: "replay",
            duration_us: 1234,
            jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
            client: client.parse().unwrap(),
        }
    }

    /// What tracing-subscriber itself writes for the same line (no timestamp).
    fn tracing_output(json: bool, l: &AccessLine<'_>) -> String {
        let sink = Sink::default();
        let out = sink.clone();
        let make = move || out.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .with_writer(make);
        let dispatch = if json {
            tracing::Dispatch::new(builder.json().finish())
        } else {
            tracing::Dispatch::new(builder.finish())
        };
        tracing::dispatcher::with_default(&dispatch, || access(l));
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        text
    }

    fn ours(format: Format, l: &AccessLine<'_>) -> String {
        let mut buf = Vec::new();
        // 2023-11-14T22:13:20.000042Z
        format.write(&mut buf, 1_700_000_000_000_042, l);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn access_lines_are_the_ones_tracing_writes() {
        for (rid, client) in [
            ("00b2849ed99ebcf00000000000000009", "127.0.0.1:35878"),
            (r#"id-with-"quote"-and-\backslash"#, "[2001:db8::1]:443"),
        ] {
            let l = line(rid, client);
            let text = ours(Format::Text, &l);
            let (ts, rest) = text.split_at(27);
            assert_eq!(ts, "2023-11-14T22:13:20.000042Z");
            assert_eq!(rest.trim_start(), tracing_output(false, &l).trim_start());

            let ours_json: serde_json::Value =
                serde_json::from_str(&ours(Format::Json, &l)).unwrap();
            let mut theirs: serde_json::Value =
                serde_json::from_str(&tracing_output(true, &l)).unwrap();
            assert_eq!(ours_json["timestamp"], "2023-11-14T22:13:20.000042Z");
            theirs["timestamp"] = ours_json["timestamp"].clone();
            assert_eq!(ours_json, theirs);
            assert!(ours(Format::Json, &l).ends_with("}\n"));
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let ts = |micros: u64| {
            let mut b = Vec::new();
            rfc3339_micros(&mut b, micros);
            String::from_utf8(b).unwrap()
        };
        assert_eq!(ts(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(ts(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
        assert_eq!(ts(1_709_251_199_999_999), "2024-02-29T23:59:59.999999Z");
        assert_eq!(ts(4_102_444_800_000_000), "2100-01-01T00:00:00.000000Z");
        // The same second again (from the per-thread prefix), the next one, and back.
        assert_eq!(ts(4_102_444_800_123_456), "2100-01-01T00:00:00.123456Z");
        assert_eq!(ts(4_102_444_801_000_000), "2100-01-01T00:00:01.000000Z");
        assert_eq!(ts(0), "1970-01-01T00:00:00.000000Z");
        // A five-digit year is written in full, not cached.
        assert_eq!(ts(253_402_300_800_000_007), "10000-01-01T00:00:00.000007Z");
        let mut b = Vec::new();
        padded(&mut b, 7, 3);
        padded(&mut b, 1234, 2);
        assert_eq!(b, b"0071234");
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
