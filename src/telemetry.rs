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

use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Response};
use http_body::{Body, Frame, SizeHint};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::body::{self, BoxError, GatewayBody};
use crate::jose::Thumbprint;

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

/// The access-log target: `RUST_LOG=info,dpop_gateway::access=off` turns the lines off.
pub(crate) const ACCESS_TARGET: &str = "dpop_gateway::access";

/// One request, as its access-log line reports it. Never a token or a proof.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AccessLine<'a> {
    /// `X-Request-Id` (a sane client value or a generated one).
    pub request_id: &'a str,
    /// The request method.
    pub method: &'a str,
    /// The request path as received, without the query (at most [`MAX_LOGGED_PATH`] bytes).
    pub path: &'a str,
    /// The route's prefix, or `unmatched`.
    pub route: &'a str,
    /// The response status.
    pub status: u16,
    /// `forwarded`, `local` or the refusal's error code.
    pub outcome: &'a str,
    /// The refusal's reason, `none` otherwise.
    pub reason: &'a str,
    /// The thumbprint of the key whose signature verified on the request's proof (also on a
    /// refusal after the signature check); `None` without a verified signature.
    pub jkt: Option<&'a str>,
    /// The `User-Agent` (at most [`MAX_LOGGED_USER_AGENT`] bytes), when sent as text.
    pub user_agent: Option<&'a str>,
    /// The client's address.
    pub client: SocketAddr,
    /// Request body bytes read from the client (forwarded requests only).
    pub bytes_in: u64,
    /// Response body bytes handed to the connection.
    pub bytes_out: u64,
    /// Time from the request head to the end of the response body, in microseconds.
    pub duration_us: u64,
    /// Time from sending to the upstream to its response head (or its failure), in
    /// microseconds; `None` when the request was not sent upstream.
    pub upstream_us: Option<u64>,
}

/// The longest path an access line carries (a longer one is cut, with `...`).
pub(crate) const MAX_LOGGED_PATH: usize = 2048;

/// The longest `User-Agent` an access line carries (a longer one is cut, with `...`).
pub(crate) const MAX_LOGGED_USER_AGENT: usize = 256;

/// Whether access lines are written at all (`RUST_LOG` enables `dpop_gateway::access` at info):
/// when not, the request path records nothing for them.
pub(crate) fn access_enabled() -> bool {
    tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO)
}

/// Writes one access-log line, when the `dpop_gateway::access` target is enabled at `info`.
///
/// The line is the one tracing's formatter would write for the same fields (same layout, text
/// or flat JSON, `ts` for the time in JSON), but built here with plain appends: through
/// tracing's field visitors it cost about 6% of a forwarded request's CPU. Without a plain-line
/// sink (a terminal, or tests with their own subscriber), it goes through tracing.
pub(crate) fn access(line: &AccessLine<'_>) {
    if !access_enabled() {
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
            path = line.path,
            route = %line.route,
            status = line.status,
            outcome = line.outcome,
            reason = line.reason,
            jkt = line.jkt.unwrap_or("-"),
            user_agent = line.user_agent.unwrap_or("-"),
            client = %line.client,
            bytes_in = line.bytes_in,
            bytes_out = line.bytes_out,
            duration_ms = millis(line.duration_us),
            upstream_ms = line.upstream_us.map(millis),
        ),
    }
}

/// Microseconds as fractional milliseconds.
fn millis(us: u64) -> f64 {
    // Exact below 2^53 µs (285 years).
    us as f64 / 1000.0
}

/// `s`, cut to at most `max` bytes on a character boundary, `...` marking a cut.
pub(crate) fn clip(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end]).into()
}

/// What an access line needs from a request, kept from its head until its response body is
/// done; the line is written when the response body ends or is dropped (the client went away),
/// so it can say how many bytes went each way and how long the whole exchange took.
pub(crate) struct AccessRecord {
    request_id: HeaderValue,
    method: http::Method,
    uri: http::Uri,
    user_agent: Option<HeaderValue>,
    client: SocketAddr,
    start: Instant,
    bytes_in: Arc<AtomicU64>,
}

/// The request's outcome, known once the response head is: what [`AccessRecord::attach`] adds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AccessOutcome<'a> {
    /// The route's prefix, or `unmatched`.
    pub route: &'a str,
    /// `forwarded`, `local` or the refusal's error code.
    pub outcome: &'static str,
    /// The refusal's reason, `none` otherwise.
    pub reason: &'static str,
    /// The key whose signature verified on the request's proof, if any.
    pub jkt: Option<Thumbprint>,
    /// From sending to the upstream to its response head or failure, if it was sent.
    pub upstream: Option<Duration>,
}

pin_project_lite::pin_project! {
    /// A response body that counts what it yields and writes the access line when dropped.
    struct Logged {
        #[pin]
        inner: GatewayBody,
        bytes_out: u64,
        line: Option<Finished>,
    }

    impl PinnedDrop for Logged {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(line) = this.line.take() {
                line.write(*this.bytes_out);
            }
        }
    }
}

/// An [`AccessRecord`] with its outcome, waiting for the response body to end.
struct Finished {
    record: AccessRecord,
    route: String,
    status: u16,
    outcome: &'static str,
    reason: &'static str,
    jkt: Option<Thumbprint>,
    upstream: Option<Duration>,
}

// === impl AccessRecord ===

impl AccessRecord {
    /// Starts the record of the request whose head is `head` (its `X-Request-Id` already
    /// settled), received at `start`.
    pub(crate) fn new(head: &http::request::Parts, client: SocketAddr, start: Instant) -> Self {
        Self {
            request_id: head
                .headers
                .get("x-request-id")
                .cloned()
                .unwrap_or_else(|| HeaderValue::from_static("-")),
            method: head.method.clone(),
            uri: head.uri.clone(),
            user_agent: head.headers.get(http::header::USER_AGENT).cloned(),
            client,
            start,
            bytes_in: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The counter the request body adds the bytes it reads to.
    pub(crate) fn bytes_in(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.bytes_in)
    }

    /// `resp`, its body wrapped so that the access line is written once it is done.
    pub(crate) fn attach(
        self,
        resp: Response<GatewayBody>,
        o: &AccessOutcome<'_>,
    ) -> Response<GatewayBody> {
        let status = resp.status().as_u16();
        let finished = Finished {
            record: self,
            route: o.route.to_owned(),
            status,
            outcome: o.outcome,
            reason: o.reason,
            jkt: o.jkt,
            upstream: o.upstream,
        };
        resp.map(|inner| {
            body::boxed(Logged {
                inner,
                bytes_out: 0,
                line: Some(finished),
            })
        })
    }
}

// === impl Finished ===

impl Finished {
    fn write(self, bytes_out: u64) {
        let r = &self.record;
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let jkt = self.jkt.map(|t| t.to_string());
        let path = clip(r.uri.path(), MAX_LOGGED_PATH);
        let user_agent = r
            .user_agent
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .map(|ua| clip(ua, MAX_LOGGED_USER_AGENT));
        access(&AccessLine {
            request_id: r.request_id.to_str().unwrap_or("-"),
            method: r.method.as_str(),
            path: &path,
            route: &self.route,
            status: self.status,
            outcome: self.outcome,
            reason: self.reason,
            jkt: jkt.as_deref(),
            user_agent: user_agent.as_deref(),
            client: r.client,
            bytes_in: r.bytes_in.load(Ordering::Relaxed),
            bytes_out,
            duration_us: micros(r.start.elapsed()),
            upstream_us: self.upstream.map(micros),
        });
    }
}

// === impl Logged ===

impl Body for Logged {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if let Some(Ok(f)) = &frame {
            if let Some(data) = f.data_ref() {
                *this.bytes_out += data.len() as u64;
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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
    /// Appends the line as tracing-subscriber 0.3's default (`fmt()`) format, or as one flat
    /// JSON object (`ts`, `level`, the fields, `target`).
    fn write(self, out: &mut Vec<u8>, unix_micros: u64, l: &AccessLine<'_>) {
        match self {
            Format::Text => {
                rfc3339_micros(out, unix_micros);
                out.extend_from_slice(b"  INFO dpop_gateway::access: request_id=");
                debug_str(out, l.request_id);
                out.extend_from_slice(b" method=");
                out.extend_from_slice(l.method.as_bytes());
                out.extend_from_slice(b" path=");
                debug_str(out, l.path);
                out.extend_from_slice(b" route=");
                out.extend_from_slice(l.route.as_bytes());
                out.extend_from_slice(b" status=");
                decimal(out, u64::from(l.status));
                out.extend_from_slice(b" outcome=");
                debug_str(out, l.outcome);
                out.extend_from_slice(b" reason=");
                debug_str(out, l.reason);
                out.extend_from_slice(b" jkt=");
                debug_str(out, l.jkt.unwrap_or("-"));
                out.extend_from_slice(b" user_agent=");
                debug_str(out, l.user_agent.unwrap_or("-"));
                out.extend_from_slice(b" client=");
                socket_addr(out, l.client);
                out.extend_from_slice(b" bytes_in=");
                decimal(out, l.bytes_in);
                out.extend_from_slice(b" bytes_out=");
                decimal(out, l.bytes_out);
                out.extend_from_slice(b" duration_ms=");
                float(out, millis(l.duration_us));
                if let Some(us) = l.upstream_us {
                    out.extend_from_slice(b" upstream_ms=");
                    float(out, millis(us));
                }
            }
            Format::Json => {
                out.extend_from_slice(b"{\"ts\":\"");
                rfc3339_micros(out, unix_micros);
                out.extend_from_slice(b"\",\"level\":\"INFO\",\"request_id\":");
                json_str(out, l.request_id);
                out.extend_from_slice(b",\"method\":");
                json_str(out, l.method);
                out.extend_from_slice(b",\"path\":");
                json_str(out, l.path);
                out.extend_from_slice(b",\"route\":");
                json_str(out, l.route);
                out.extend_from_slice(b",\"status\":");
                decimal(out, u64::from(l.status));
                out.extend_from_slice(b",\"outcome\":");
                json_str(out, l.outcome);
                out.extend_from_slice(b",\"reason\":");
                json_str(out, l.reason);
                out.extend_from_slice(b",\"jkt\":");
                json_opt_str(out, l.jkt);
                out.extend_from_slice(b",\"user_agent\":");
                json_opt_str(out, l.user_agent);
                out.extend_from_slice(b",\"client\":\"");
                socket_addr(out, l.client);
                out.extend_from_slice(b"\",\"bytes_in\":");
                decimal(out, l.bytes_in);
                out.extend_from_slice(b",\"bytes_out\":");
                decimal(out, l.bytes_out);
                out.extend_from_slice(b",\"duration_ms\":");
                float(out, millis(l.duration_us));
                out.extend_from_slice(b",\"upstream_ms\":");
                match l.upstream_us {
                    Some(us) => float(out, millis(us)),
                    None => out.extend_from_slice(b"null"),
                }
                out.extend_from_slice(b",\"target\":\"dpop_gateway::access\"}");
            }
        }
        out.push(b'\n');
    }
}

/// A float as `{:?}` writes it (what tracing's text formatter and serde_json write: the
/// shortest form that reads back the same, `1.0`, `0.125`).
fn float(out: &mut Vec<u8>, x: f64) {
    let _ = write!(out, "{x:?}");
}

/// A JSON string, or `null`.
fn json_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.extend_from_slice(b"null"),
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
mod tests;
