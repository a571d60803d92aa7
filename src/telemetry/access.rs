//! The access log: one line per request, written when its response body is done, formatted
//! here with plain appends (text as tracing's default formatter writes it, or one flat JSON
//! object) and handed to the batch writer.

use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Response};
use http_body::{Body, Frame, SizeHint};

use crate::body::{self, BoxError, GatewayBody};
use crate::jose::Thumbprint;

use super::*;

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
    /// The listener that answered: `proxy` or `forward_auth`.
    pub listener: &'a str,
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
    /// The upstream's name (`default` or a key of `upstreams`); `None` when the request was
    /// not sent upstream.
    pub upstream: Option<&'a str>,
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
            listener = %line.listener,
            status = line.status,
            outcome = line.outcome,
            reason = line.reason,
            jkt = line.jkt.unwrap_or("-"),
            user_agent = line.user_agent.unwrap_or("-"),
            client = %line.client,
            bytes_in = line.bytes_in,
            bytes_out = line.bytes_out,
            duration_ms = millis(line.duration_us),
            upstream = line.upstream,
            upstream_ms = line.upstream_us.map(millis),
        ),
    }
}

/// Microseconds as fractional milliseconds.
pub(super) fn millis(us: u64) -> f64 {
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
    listener: crate::metrics::Listener,
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
    /// The upstream it was sent to, and the time from sending to its response head or
    /// failure, if it was sent.
    pub upstream: Option<(&'a Arc<str>, Duration)>,
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
pub(super) struct Finished {
    record: AccessRecord,
    route: String,
    status: u16,
    outcome: &'static str,
    reason: &'static str,
    jkt: Option<Thumbprint>,
    upstream: Option<(Arc<str>, Duration)>,
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
            listener: crate::metrics::Listener::Proxy,
        }
    }

    /// The record, for a request `listener` answers (default: the proxy).
    pub(crate) fn on(mut self, listener: crate::metrics::Listener) -> Self {
        self.listener = listener;
        self
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
            upstream: o.upstream.map(|(name, d)| (Arc::clone(name), d)),
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
            listener: r.listener.as_str(),
            status: self.status,
            outcome: self.outcome,
            reason: self.reason,
            jkt: jkt.as_deref(),
            user_agent: user_agent.as_deref(),
            client: r.client,
            bytes_in: r.bytes_in.load(Ordering::Relaxed),
            bytes_out,
            duration_us: micros(r.start.elapsed()),
            upstream: self.upstream.as_ref().map(|(name, _)| &**name),
            upstream_us: self.upstream.as_ref().map(|(_, d)| micros(*d)),
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

pub(super) static ACCESS: OnceLock<AccessSink> = OnceLock::new();

thread_local! {
    static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

pub(super) struct AccessSink {
    pub(super) writer: BatchWriter,
    pub(super) format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    Text,
    Json,
}

impl Format {
    /// Appends the line as tracing-subscriber 0.3's default (`fmt()`) format, or as one flat
    /// JSON object (`ts`, `level`, the fields, `target`).
    pub(super) fn write(self, out: &mut Vec<u8>, unix_micros: u64, l: &AccessLine<'_>) {
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
                out.extend_from_slice(b" listener=");
                out.extend_from_slice(l.listener.as_bytes());
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
                if let Some(name) = l.upstream {
                    out.extend_from_slice(b" upstream=");
                    debug_str(out, name);
                }
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
                out.extend_from_slice(b",\"listener\":");
                json_str(out, l.listener);
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
                out.extend_from_slice(b",\"upstream\":");
                json_opt_str(out, l.upstream);
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
pub(super) fn float(out: &mut Vec<u8>, x: f64) {
    let _ = write!(out, "{x:?}");
}

/// A JSON string, or `null`.
pub(super) fn json_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// `n` in decimal.
pub(super) fn decimal(out: &mut Vec<u8>, n: u64) {
    padded(out, n, 1);
}

/// A string as `{:?}` writes it (quoted, escaped).
pub(super) fn debug_str(out: &mut Vec<u8>, s: &str) {
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
pub(super) fn json_str(out: &mut Vec<u8>, s: &str) {
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
pub(super) fn socket_addr(out: &mut Vec<u8>, addr: SocketAddr) {
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
