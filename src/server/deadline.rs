//! Limits on an HTTP/1.1 connection that hyper does not express the way the contract
//! promises: a request head must arrive within `header_read_timeout` of its first byte, or
//! the client gets `408 Request Timeout` and the connection is closed (hyper would close it
//! without a word); a head longer than `max_header_bytes` gets `431` and the connection is
//! closed; a keep-alive connection idle for `idle_timeout` between requests is closed.
//!
//! The head size is counted here rather than with hyper's `max_buf_size`, because that one
//! number also caps every read of a body: a 64 KiB cap costs a third of an upload's
//! throughput (see the upload figures in `benches/README.md`). A head that arrives pipelined
//! behind a body is read before its turn and is checked again, as parsed, by the pipeline.
//!
//! The wrapper sits between the (TLS-decrypted) stream and hyper and watches the bytes: a head
//! starts with the first byte read while idle and ends at its first empty line, found the way
//! hyper's parser finds it (`Line`: a bare LF ends a line too, empty lines before the request
//! line are skipped), so that the two never disagree on where a body starts; any byte of a
//! final response written makes the connection idle again. An interim `100 Continue` (written
//! when a request that sent `Expect: 100-continue` has its body read) does not: the request's
//! body follows, and it is not counted as a head. HTTP/2 (prior knowledge, recognised
//! by its preface, or ALPN `h2`) passes through: its head limits are hyper's, its idle
//! timeout is counted in open streams (`h2_idle.rs`).
//!
//! A `101 Switching Protocols` written (only ever for a WebSocket tunnel, `forward/tunnel.rs`;
//! the service marks the connection before hyper writes its head, so that response-body
//! bytes which merely look like one change nothing) ends HTTP on the connection: its bytes are the tunnel's, never a head, and the connection is
//! closed (a read error, which ends the tunnel) once no byte has gone either way for
//! `idle_timeout` (checked every `idle_timeout`: between one and two of them).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::h2_idle::Streams;
use crate::refusal::Refusal;

/// What a client waiting too long for its head is told before the connection closes (the
/// bytes come from `refusal.rs`, like every refusal's).
fn request_timeout() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| Refusal::HeadTimeout.http1_bytes())
}

/// What a client sending a request line over `max_header_bytes` is told before the connection
/// closes.
fn uri_too_long() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| Refusal::UriTooLong.http1_bytes())
}

/// What a client sending a head over `max_header_bytes` is told before the connection closes.
fn head_too_large() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| Refusal::HeadTooLarge.http1_bytes())
}

/// The interim response hyper writes when a request that sent `Expect: 100-continue` has its
/// body read (RFC 9110 §10.1.1, §15.2.1): the request goes on, its body is still to come.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// How a `101` response starts: the connection is a tunnel from there on.
const SWITCHING: &[u8] = b"HTTP/1.1 101 ";

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of a request (keep-alive), `idle_timeout`.
    Idle,
    /// Reading a head, `header_read_timeout` from its first byte; `line` is where in it the
    /// bytes so far end, `len` how many there are.
    Head { line: Line, len: usize },
    /// The head went past `max_header_bytes` before its end.
    TooLarge,
    /// The head went past `max_header_bytes` before its request line ended.
    UriTooLong,
    /// Head done: body and response are the body's and hyper's business.
    Busy,
    /// HTTP/2: only the idle timeout, by open streams.
    Passthrough,
    /// After a `101`: a tunnel's bytes, only the idle timeout (`active` since the last check).
    Tunnel { active: bool },
}

/// Where the bytes of a head read so far end, to find its end where hyper's parser (httparse)
/// does: a line ends at LF, with or without a CR before it (RFC 9112 §2.2 lets a recipient
/// accept a bare LF, and httparse does), the head at its first empty line, and empty lines
/// before the request line are skipped (§2.2 again), not taken for the end of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Line {
    /// Before the request line: nothing yet, or empty lines only.
    Leading,
    /// Before the request line, a CR.
    LeadingCr,
    /// Inside the request line.
    Request,
    /// Inside the request line, a CR.
    RequestCr,
    /// Inside a field line.
    Field,
    /// Inside a field line, a CR.
    FieldCr,
    /// At the start of a line after the request line.
    Start,
    /// At the start of a line after the request line, a CR.
    StartCr,
}

/// An I/O stream with the head and idle deadlines applied.
pub(crate) struct Deadlines<IO> {
    inner: IO,
    sleep: Pin<Box<Sleep>>,
    phase: Phase,
    /// While the bytes read so far are a prefix of the HTTP/2 preface: how many. The head
    /// deadline runs until the whole preface has arrived (one `P` must not switch it off).
    preface: Option<usize>,
    limits: HeadLimits,
    counters: RefusalCounters,
    streams: Arc<Streams>,
    /// How many bytes of [`CONTINUE`] the response written so far for this request is.
    interim: usize,
}

/// The counters of `dpop_gateway_connection_refusals_total` [`Deadlines`] adds to.
#[derive(Clone, Debug)]
pub(crate) struct RefusalCounters {
    /// `reason="head_too_large"`.
    pub head_too_large: prometheus::IntCounter,
    /// `reason="head_timeout"`.
    pub head_timeout: prometheus::IntCounter,
    /// `reason="uri_too_long"`.
    pub uri_too_long: prometheus::IntCounter,
}

/// The limits [`Deadlines`] applies, from the config's `limits` block.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeadLimits {
    /// `header_read_timeout`: from a head's first byte to its end.
    pub header_timeout: Duration,
    /// `idle_timeout`: between requests on a keep-alive connection.
    pub idle_timeout: Duration,
    /// `max_header_bytes`: the whole head, request line to the blank line.
    pub max_head_bytes: usize,
}

impl<IO> Deadlines<IO> {
    /// Wraps `inner`; `h2` when ALPN already chose HTTP/2. A new connection is given
    /// `header_timeout` for its first head, counted from the connection (slowloris).
    pub(crate) fn new(
        inner: IO,
        limits: HeadLimits,
        counters: RefusalCounters,
        streams: Arc<Streams>,
        h2: bool,
    ) -> Self {
        Deadlines {
            inner,
            sleep: Box::pin(tokio::time::sleep(if h2 {
                limits.idle_timeout
            } else {
                limits.header_timeout
            })),
            phase: if h2 {
                Phase::Passthrough
            } else {
                Phase::Head {
                    line: Line::Leading,
                    len: 0,
                }
            },
            preface: if h2 { None } else { Some(0) },
            limits,
            counters,
            streams,
            interim: 0,
        }
    }

    /// A tunnel with nothing to read: once a whole `idle_timeout` passed without a byte either
    /// way, the tunnel ends.
    fn tunnel_idle(&mut self, cx: &mut Context<'_>, mut active: bool) -> Poll<io::Result<()>> {
        while self.sleep.as_mut().poll(cx).is_ready() {
            if !active {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "tunnel idle past idle_timeout",
                )));
            }
            active = false;
            self.phase = Phase::Tunnel { active };
            let next = Instant::now() + self.limits.idle_timeout;
            self.sleep.as_mut().reset(next);
        }
        Poll::Pending
    }

    /// HTTP/2, nothing to read: the idle timeout, by open streams.
    fn h2_idle(&mut self, cx: &mut Context<'_>) {
        self.streams
            .poll_idle(self.sleep.as_mut(), self.limits.idle_timeout, cx);
    }

    /// Writes `response` (best effort: the client may not even read it) and ends the
    /// connection with `message`.
    fn refuse(
        &mut self,
        cx: &mut Context<'_>,
        response: &[u8],
        kind: io::ErrorKind,
        message: &'static str,
    ) -> Poll<io::Result<()>>
    where
        IO: AsyncWrite + Unpin,
    {
        let _ = Pin::new(&mut self.inner).poll_write(cx, response);
        let _ = Pin::new(&mut self.inner).poll_flush(cx);
        Poll::Ready(Err(io::Error::new(kind, message)))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for Deadlines<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if matches!(this.phase, Phase::Tunnel { .. }) => {
                if buf.filled().len() > before {
                    this.phase = Phase::Tunnel { active: true };
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                match this.preface {
                    Some(seen) if !new.is_empty() => {
                        let want = &H2_PREFACE[seen..];
                        let n = new.len().min(want.len());
                        if new[..n] == want[..n] {
                            if seen + n == H2_PREFACE.len() {
                                this.preface = None;
                                this.phase = Phase::Passthrough;
                                let idle = Instant::now() + this.limits.idle_timeout;
                                this.sleep.as_mut().reset(idle);
                            } else {
                                this.preface = Some(seen + n);
                            }
                        } else {
                            // HTTP/1: the bytes held back as a possible preface count too.
                            this.preface = None;
                            let held = &H2_PREFACE[..seen];
                            let limits = this.limits;
                            advance(&mut this.phase, this.sleep.as_mut(), &limits, held);
                            advance(&mut this.phase, this.sleep.as_mut(), &limits, new);
                        }
                    }
                    _ => advance(&mut this.phase, this.sleep.as_mut(), &this.limits, new),
                }
                if this.phase == Phase::TooLarge {
                    // hyper never sees these bytes: the request is not parsed, not forwarded.
                    buf.set_filled(before);
                    this.counters.head_too_large.inc();
                    return this.refuse(
                        cx,
                        head_too_large(),
                        io::ErrorKind::InvalidData,
                        "request head over max_header_bytes",
                    );
                }
                if this.phase == Phase::UriTooLong {
                    buf.set_filled(before);
                    this.counters.uri_too_long.inc();
                    return this.refuse(
                        cx,
                        uri_too_long(),
                        io::ErrorKind::InvalidData,
                        "request line over max_header_bytes",
                    );
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.phase == Phase::Passthrough {
                    this.h2_idle(cx);
                    return Poll::Pending;
                }
                if this.phase == Phase::Busy {
                    return Poll::Pending;
                }
                if let Phase::Tunnel { active } = this.phase {
                    return this.tunnel_idle(cx, active);
                }
                if this.sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                if let Phase::Head { .. } = this.phase {
                    this.counters.head_timeout.inc();
                    return this.refuse(
                        cx,
                        request_timeout(),
                        io::ErrorKind::TimedOut,
                        "request head not received within header_read_timeout",
                    );
                }
                // Idle past idle_timeout: end of stream, hyper closes quietly.
                Poll::Ready(Ok(()))
            }
        }
    }
}

/// Moves the phase along the bytes just read.
fn advance(phase: &mut Phase, sleep: Pin<&mut Sleep>, limits: &HeadLimits, new: &[u8]) {
    if new.is_empty() {
        return;
    }
    let (mut line, len) = match *phase {
        Phase::Idle => {
            sleep.reset(Instant::now() + limits.header_timeout);
            (Line::Leading, 0)
        }
        Phase::Head { line, len } => (line, len),
        Phase::Busy
        | Phase::Passthrough
        | Phase::Tunnel { .. }
        | Phase::TooLarge
        | Phase::UriTooLong => return,
    };
    let mut i = 0;
    while i < new.len() {
        if matches!(line, Line::Request | Line::Field) {
            // Inside a line: skip to its end (a head is mostly field text).
            match memchr::memchr2(b'\r', b'\n', &new[i..]) {
                Some(skip) => i += skip,
                None => break,
            }
        }
        match line.next(new[i]) {
            Some(Line::Start) if line.in_request_line() && len + i >= limits.max_head_bytes => {
                // The request line, with its line end, is `len + i + 1` bytes.
                *phase = Phase::UriTooLong;
                return;
            }
            Some(next) => line = next,
            None => {
                // The empty line: the head is `len + i + 1` bytes.
                *phase = if len + i < limits.max_head_bytes {
                    Phase::Busy
                } else {
                    Phase::TooLarge
                };
                return;
            }
        }
        i += 1;
    }
    let len = len + new.len();
    *phase = if len <= limits.max_head_bytes {
        Phase::Head { line, len }
    } else if line.in_request_line() {
        Phase::UriTooLong
    } else {
        Phase::TooLarge
    };
}

// === impl Line ===

impl Line {
    /// Whether the bytes so far end inside the request line.
    fn in_request_line(self) -> bool {
        matches!(self, Line::Request | Line::RequestCr)
    }

    /// Where the head is after byte `b`; `None` once it ended. A CR not followed by LF is
    /// httparse's to refuse (hyper answers 400): here it is just a byte of its line.
    fn next(self, b: u8) -> Option<Line> {
        use Line as L;
        Some(match (self, b) {
            (L::Leading | L::LeadingCr, b'\n') => L::Leading,
            (L::Leading, b'\r') => L::LeadingCr,
            (L::Leading | L::LeadingCr, _) => L::Request,
            (L::Request | L::RequestCr, b'\r') => L::RequestCr,
            (L::Field | L::FieldCr, b'\r') => L::FieldCr,
            (L::Request | L::RequestCr | L::Field | L::FieldCr, b'\n') => L::Start,
            (L::Request | L::RequestCr, _) => L::Request,
            (L::Start | L::StartCr, b'\n') => return None,
            (L::Start, b'\r') => L::StartCr,
            (L::Field | L::FieldCr | L::Start | L::StartCr, _) => L::Field,
        })
    }
}

/// Whether `written`, the next bytes of a response of which `*matched` bytes were a prefix of
/// [`CONTINUE`] already, is all `100 Continue` (or a part of it): `*matched` moves on, to 0
/// once it is whole. Anything else is the final response.
fn interim(matched: &mut usize, written: &[u8]) -> bool {
    let mut rest = written;
    while !rest.is_empty() {
        let want = &CONTINUE[*matched..];
        let n = rest.len().min(want.len());
        if rest[..n] != want[..n] {
            return false;
        }
        *matched = (*matched + n) % CONTINUE.len();
        rest = &rest[n..];
    }
    true
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Deadlines<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = res {
            if let Phase::Tunnel { .. } = this.phase {
                if n > 0 {
                    this.phase = Phase::Tunnel { active: true };
                }
                return res;
            }
            if n > 0 && this.phase == Phase::Busy && interim(&mut this.interim, &data[..n]) {
                // All of it is (a part of) `100 Continue`: the request's body is still to
                // come, and it is a body, not the next head.
                return res;
            }
            if n > 0
                && this.phase == Phase::Busy
                && data[..n].starts_with(SWITCHING)
                && this.streams.take_switching()
            {
                // hyper writes a head in one piece; a 101 the service returned (never bytes
                // of a response body that look like one) ends HTTP on this connection.
                this.interim = 0;
                this.phase = Phase::Tunnel { active: true };
                this.sleep
                    .as_mut()
                    .reset(Instant::now() + this.limits.idle_timeout);
                cx.waker().wake_by_ref();
                return res;
            }
            if n > 0 && this.phase != Phase::Passthrough {
                // A final response (or part of one) went out: idle until the next head starts.
                this.interim = 0;
                if this.phase != Phase::Idle {
                    this.phase = Phase::Idle;
                    // hyper polled its read before this write and will not poll again until
                    // woken: wake it so the next read arms the idle timer.
                    cx.waker().wake_by_ref();
                }
                this.sleep
                    .as_mut()
                    .reset(Instant::now() + this.limits.idle_timeout);
            }
        }
        res
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        header_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        max_head_bytes: 64,
    };

    fn run(bytes: &[&[u8]]) -> Phase {
        let mut phase = Phase::Head {
            line: Line::Leading,
            len: 0,
        };
        let sleep = tokio::time::sleep(Duration::from_secs(1));
        tokio::pin!(sleep);
        for b in bytes {
            advance(&mut phase, sleep.as_mut(), &LIMITS, b);
        }
        phase
    }

    #[tokio::test]
    async fn head_ends_at_crlf_crlf_even_across_reads() {
        assert_eq!(run(&[b"GET / HTTP/1.1\r\nhost: a\r\n\r\n"]), Phase::Busy);
        assert_eq!(
            run(&[b"GET / HTTP/1.1\r\nhost: a\r", b"\n\r", b"\n"]),
            Phase::Busy
        );
        assert_eq!(
            run(&[b"GET / HTTP/1.1\r\nhost: a\r\n"]),
            Phase::Head {
                line: Line::Start,
                len: 25
            }
        );
        assert_eq!(run(&[b"GET / HTTP/1.1\r\r\n\r\n"]), Phase::Busy);
    }

    #[tokio::test]
    async fn a_head_ends_at_its_empty_line_whatever_its_line_ends() {
        // Bare LF, and LF and CRLF mixed, as httparse reads them (RFC 9112 §2.2).
        for head in [
            &b"GET / HTTP/1.1\nhost: a\n\n"[..],
            b"GET / HTTP/1.1\r\nhost: a\n\r\n",
            b"GET / HTTP/1.1\nhost: a\r\n\n",
            b"GET / HTTP/1.1\n\n",
        ] {
            assert_eq!(run(&[head]), Phase::Busy, "{head:?}");
            let split: Vec<&[u8]> = head.chunks(1).collect();
            assert_eq!(run(&split), Phase::Busy, "{head:?} byte by byte");
        }
        // What follows the end is a body: never counted, whatever it holds.
        let with_body = [
            &b"POST / HTTP/1.1\ncontent-length: 100\n\n"[..],
            &[b'b'; 100],
        ];
        assert_eq!(run(&with_body), Phase::Busy);
    }

    #[tokio::test]
    async fn empty_lines_before_the_request_line_do_not_end_a_head_and_count() {
        for lead in [&b"\r\n\r\n"[..], b"\n\n", b"\r\n", b"\n\r\n"] {
            let mut head = lead.to_vec();
            head.extend_from_slice(b"GET / HTTP/1.1\r\nhost: a\r\n");
            assert_eq!(
                run(&[&head]),
                Phase::Head {
                    line: Line::Start,
                    len: head.len()
                },
                "{lead:?}"
            );
            head.extend_from_slice(b"\r\n");
            assert_eq!(run(&[&head]), Phase::Busy, "{lead:?}");
        }
        // Only empty lines, past the limit: too large (never a head's end).
        assert_eq!(run(&[&b"\r\n".repeat(40)]), Phase::TooLarge);
    }

    #[tokio::test]
    async fn a_head_of_max_header_bytes_passes_and_one_byte_more_does_not() {
        // 64 bytes with the blank line, whole or split; body bytes after it do not count.
        let head = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(41));
        assert_eq!(head.len(), 64);
        assert_eq!(run(&[head.as_bytes()]), Phase::Busy);
        assert_eq!(
            run(&[&head.as_bytes()[..40], &head.as_bytes()[40..]]),
            Phase::Busy
        );
        let with_body = format!("{head}{}", "b".repeat(1000));
        assert_eq!(run(&[with_body.as_bytes()]), Phase::Busy);
        let over = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(42));
        assert_eq!(run(&[over.as_bytes()]), Phase::TooLarge);
        assert_eq!(
            run(&[&over.as_bytes()[..64], &over.as_bytes()[64..]]),
            Phase::TooLarge
        );
        // No end in sight: refused as soon as the count passes the limit (inside what can
        // only be a request line: as too long a request line).
        assert_eq!(run(&[&[b'a'; 65]]), Phase::UriTooLong);
        assert_eq!(
            run(&[&[b'a'; 64]]),
            Phase::Head {
                line: Line::Request,
                len: 64
            }
        );
    }

    #[tokio::test]
    async fn a_request_line_over_the_limit_is_414_a_longer_head_431() {
        // 64 bytes with its CRLF: passes; one more: too long, whole or split, ended or not.
        let line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(48));
        assert_eq!(line.len(), 64);
        let over = format!("GET /{} HTTP/1.1\r\nhost: a\r\n", "a".repeat(49));
        assert_eq!(run(&[over.as_bytes()]), Phase::UriTooLong);
        assert_eq!(
            run(&[&over.as_bytes()[..30], &over.as_bytes()[30..]]),
            Phase::UriTooLong
        );
        assert_eq!(run(&[&over.as_bytes()[..65]]), Phase::UriTooLong);
        assert_eq!(
            run(&[line.as_bytes()]),
            Phase::Head {
                line: Line::Start,
                len: 64
            }
        );
        // A short request line and long fields: too large.
        let fields = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(60));
        assert_eq!(run(&[fields.as_bytes()]), Phase::TooLarge);
        // Only empty lines: too large, not a request line.
        assert_eq!(run(&[&[b'\n'; 65]]), Phase::TooLarge);
    }

    fn counters() -> RefusalCounters {
        let c = || prometheus::IntCounter::new("c", "c").unwrap();
        RefusalCounters {
            head_too_large: c(),
            head_timeout: c(),
            uri_too_long: c(),
        }
    }

    #[tokio::test]
    async fn after_a_101_the_bytes_are_a_tunnels_and_only_a_whole_idle_timeout_ends_it() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (server, mut client) = tokio::io::duplex(4096);
        let streams = Streams::new();
        let mut io = Deadlines::new(server, LIMITS, counters(), Arc::clone(&streams), false);
        client
            .write_all(b"GET / HTTP/1.1\r\nhost: a\r\nupgrade: websocket\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let n = io.read(&mut buf).await.unwrap();
        assert!(n > 0);
        assert_eq!(io.phase, Phase::Busy);
        // The service returned a 101 (the listener marks it): its head is the next write.
        streams.mark_switching();
        io.write_all(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(io.phase, Phase::Tunnel { active: true });
        // Frames well over max_header_bytes (64) with no empty line: not a head, passed on.
        let frames = vec![0x82u8; 1000];
        client.write_all(&frames).await.unwrap();
        let mut got = 0;
        while got < frames.len() {
            got += io.read(&mut buf).await.unwrap();
        }
        assert_eq!(io.phase, Phase::Tunnel { active: true });
        // Nothing either way: the first check finds it was active, the next one ends it.
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(io);
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.ok();
        assert!(
            out.ends_with(b"\r\n\r\n"),
            "no refusal written into the tunnel"
        );
        assert!(!String::from_utf8_lossy(&out).contains("431"));
    }

    #[tokio::test]
    async fn response_bytes_that_look_like_a_101_do_not_lift_the_head_limits() {
        // A legacy API's body may start with anything, a client's next head may arrive
        // pipelined while that body is written: `HTTP/1.1 101 ` bytes the service did not
        // return as a 101 head must leave the next head under max_header_bytes.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (server, mut client) = tokio::io::duplex(4096);
        let mut io = Deadlines::new(server, LIMITS, counters(), Streams::new(), false);
        client
            .write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        assert!(io.read(&mut buf).await.unwrap() > 0);
        assert_eq!(io.phase, Phase::Busy);
        io.write_all(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(
            io.phase,
            Phase::Idle,
            "a final response's bytes, not a tunnel"
        );
        // The next head is still counted: over the limit, refused with 431.
        let over = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(100));
        client.write_all(over.as_bytes()).await.unwrap();
        let err = loop {
            match io.read(&mut buf).await {
                Ok(0) => panic!("closed without a refusal"),
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        drop(io);
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.ok();
        assert!(String::from_utf8_lossy(&out).contains(" 431 "), "{out:?}");
    }

    #[test]
    fn only_an_exact_100_continue_is_interim() {
        let mut m = 0;
        assert!(interim(&mut m, CONTINUE));
        assert_eq!(m, 0);
        // Split across writes.
        assert!(interim(&mut m, &CONTINUE[..10]));
        assert!(interim(&mut m, &CONTINUE[10..]));
        assert_eq!(m, 0);
        // The final response, alone or right behind the interim one.
        for fin in [
            &b"HTTP/1.1 200 OK\r\n"[..],
            b"HTTP/1.1 101 Switching Protocols\r\n",
            b"HTTP/1.1 100 Continue\r\nx: y\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n",
        ] {
            let mut m = 0;
            assert!(!interim(&mut m, fin), "{:?}", String::from_utf8_lossy(fin));
        }
    }

    #[test]
    fn the_canned_responses_say_their_length() {
        for r in [request_timeout(), uri_too_long(), head_too_large()] {
            let text = std::str::from_utf8(r).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(len, body.len(), "{head}");
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(json["error"], "invalid_request");
        }
    }
}
