//! Time limits on an HTTP/1.1 connection that hyper does not express the way the contract
//! promises: a request head must arrive within `header_read_timeout` of its first byte, or
//! the client gets `408 Request Timeout` and the connection is closed (hyper would close it
//! without a word); a keep-alive connection idle for `idle_timeout` between requests is closed.
//!
//! The wrapper sits between the (TLS-decrypted) stream and hyper and watches the bytes: a head
//! starts with the first byte read while idle and ends at the first `CRLF CRLF`; any byte
//! written (a response) makes the connection idle again. HTTP/2 (prior knowledge, recognised
//! by its preface, or ALPN `h2`) passes through untouched: its limits are hyper's.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// What a client waiting too long for its head is told before the connection closes.
const REQUEST_TIMEOUT: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of a request (keep-alive), `idle_timeout`.
    Idle,
    /// Reading a head, `header_read_timeout` from its first byte; `matched` counts the bytes
    /// of `CRLF CRLF` seen so far.
    Head { matched: u8 },
    /// Head done: body and response are the body's and hyper's business.
    Busy,
    /// HTTP/2: no limits here.
    Passthrough,
}

/// An I/O stream with the head and idle deadlines applied.
pub struct Deadlines<IO> {
    inner: IO,
    sleep: Pin<Box<Sleep>>,
    phase: Phase,
    first_read: bool,
    header_timeout: Duration,
    idle_timeout: Duration,
}

impl<IO> Deadlines<IO> {
    /// Wraps `inner`; `h2` when ALPN already chose HTTP/2. A new connection is given
    /// `header_timeout` for its first head, counted from the connection (slowloris).
    pub fn new(inner: IO, header_timeout: Duration, idle_timeout: Duration, h2: bool) -> Self {
        Deadlines {
            inner,
            sleep: Box::pin(tokio::time::sleep(header_timeout)),
            phase: if h2 {
                Phase::Passthrough
            } else {
                Phase::Head { matched: 0 }
            },
            first_read: true,
            header_timeout,
            idle_timeout,
        }
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
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if this.first_read && !new.is_empty() {
                    this.first_read = false;
                    let n = new.len().min(H2_PREFACE.len());
                    if new[..n] == H2_PREFACE[..n] {
                        this.phase = Phase::Passthrough;
                    }
                }
                advance(
                    &mut this.phase,
                    this.sleep.as_mut(),
                    this.header_timeout,
                    new,
                );
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if matches!(this.phase, Phase::Busy | Phase::Passthrough) {
                    return Poll::Pending;
                }
                if this.sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                if let Phase::Head { .. } = this.phase {
                    // Best effort: the client may not even read it.
                    let _ = Pin::new(&mut this.inner).poll_write(cx, REQUEST_TIMEOUT);
                    let _ = Pin::new(&mut this.inner).poll_flush(cx);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request head not received within header_read_timeout",
                    )));
                }
                // Idle past idle_timeout: end of stream, hyper closes quietly.
                Poll::Ready(Ok(()))
            }
        }
    }
}

/// Moves the phase along the bytes just read.
fn advance(phase: &mut Phase, sleep: Pin<&mut Sleep>, header_timeout: Duration, new: &[u8]) {
    if new.is_empty() {
        return;
    }
    let mut matched = match *phase {
        Phase::Idle => {
            sleep.reset(Instant::now() + header_timeout);
            0
        }
        Phase::Head { matched } => matched,
        Phase::Busy | Phase::Passthrough => return,
    };
    for &b in new {
        matched = match (matched, b) {
            (0 | 2, b'\r') => matched + 1,
            (1 | 3, b'\n') => matched + 1,
            (_, b'\r') => 1,
            _ => 0,
        };
        if matched == 4 {
            *phase = Phase::Busy;
            return;
        }
    }
    *phase = Phase::Head { matched };
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
            if n > 0 && this.phase != Phase::Passthrough {
                // A response (or part of one) went out: idle until the next head starts.
                if this.phase != Phase::Idle {
                    this.phase = Phase::Idle;
                    // hyper polled its read before this write and will not poll again until
                    // woken: wake it so the next read arms the idle timer.
                    cx.waker().wake_by_ref();
                }
                this.sleep
                    .as_mut()
                    .reset(Instant::now() + this.idle_timeout);
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

    fn run(bytes: &[&[u8]]) -> Phase {
        let mut phase = Phase::Head { matched: 0 };
        let sleep = tokio::time::sleep(Duration::from_secs(1));
        tokio::pin!(sleep);
        for b in bytes {
            advance(&mut phase, sleep.as_mut(), Duration::from_secs(1), b);
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
            Phase::Head { matched: 2 }
        );
        assert_eq!(run(&[b"GET / HTTP/1.1\r\r\n\r\n"]), Phase::Busy);
    }
}
