//! WebSocket tunnels (RFC 6455 over HTTP/1.1, RFC 9110 §7.8): an `Upgrade: websocket` `GET`
//! is checked like any request on its route; once authorized it goes to the upstream on a
//! connection of its own (never one of the pool's, never back to it) with `Upgrade: websocket`
//! and `Connection: upgrade`, the only hop-by-hop fields passed on. When the upstream answers
//! `101 Switching Protocols` for `websocket`, the client gets the 101 with the upstream's
//! `Sec-WebSocket-*` fields, and both connections become one byte tunnel ([`Tunnels::run`]).
//! Any other answer goes back as a normal response.
//!
//! Only `websocket` is tunnelled: any other `Upgrade` token (`h2c`, `TLS/1.0`, …) is stripped
//! as a hop-by-hop field, as before, and the request is forwarded as a plain one.
//!
//! A tunnel holds one of its client connection's upstream exchanges (and so its
//! `max_connections` slot) until it ends. Its client side is closed after `idle_timeout` with
//! no byte either way (`server::deadline`, phase `Tunnel`); at shutdown, open tunnels are
//! closed once `shutdown_timeout` has passed ([`Tunnels::close`]).

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use super::pool::Lease;
use crate::body::{self, GatewayBody};
use crate::metrics::{GaugeGuard, Metrics};

/// `Upgrade: websocket`, as the upstream gets it.
pub(crate) const WEBSOCKET: HeaderValue = HeaderValue::from_static("websocket");
/// `Connection: upgrade`, as the upstream and the client get it.
pub(crate) const CONNECTION_UPGRADE: HeaderValue = HeaderValue::from_static("upgrade");

/// The open tunnels' shutdown signal.
pub(crate) struct Tunnels {
    closing: watch::Sender<bool>,
    metrics: Metrics,
    /// `limits.idle_timeout`: how long the other direction may go on once one has ended.
    idle_timeout: Duration,
}

/// Whether a request head asks to upgrade to WebSocket: `Upgrade` lists the `websocket` token
/// and `Connection` the `upgrade` option (RFC 9110 §7.8, RFC 6455 §4.1). Asked only of the
/// requests hyper lets upgrade (HTTP/1.1 with `Upgrade`, or CONNECT).
pub(crate) fn wants_websocket(headers: &HeaderMap) -> bool {
    let Some(upgrade) = headers.get(header::UPGRADE) else {
        return false;
    };
    has_token(upgrade, b"websocket")
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| has_token(v, b"upgrade"))
}

/// Whether the comma-separated list `value` has `token` (ASCII case-insensitive). A token with
/// a version (`websocket/13`) is not `websocket`.
fn has_token(value: &HeaderValue, token: &[u8]) -> bool {
    value
        .as_bytes()
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// The client's `101` for the upstream's `101` head: its end-to-end fields
/// (`Sec-WebSocket-Accept`, `-Protocol`, `-Extensions`, …), hop-by-hop ones removed, then
/// `Upgrade: websocket` and `Connection: upgrade`.
pub(crate) fn switching(mut headers: HeaderMap) -> Response<GatewayBody> {
    super::headers::strip_hop_by_hop(&mut headers);
    headers.insert(header::UPGRADE, WEBSOCKET);
    headers.insert(header::CONNECTION, CONNECTION_UPGRADE);
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *resp.headers_mut() = headers;
    resp
}

// === impl Tunnels ===

impl Tunnels {
    /// No tunnel open, not closing.
    pub(crate) fn new(metrics: Metrics, idle_timeout: Duration) -> Tunnels {
        Tunnels {
            closing: watch::Sender::new(false),
            metrics,
            idle_timeout,
        }
    }

    /// Closes every open tunnel (and any opened from now on): the drain is over.
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Starts the tunnel between the client connection (`client`, upgraded once the 101 is
    /// written) and the upstream's (`upstream`); `lease` is held until it ends.
    pub(crate) fn spawn(&self, client: OnUpgrade, upstream: OnUpgrade, lease: Option<Lease>) {
        let closing = self.closing.subscribe();
        let metrics = self.metrics.clone();
        let idle = self.idle_timeout;
        tokio::spawn(run(client, upstream, lease, closing, metrics, idle));
    }
}

/// Copies bytes both ways until both sides have closed (each direction's end is passed on as
/// a write shutdown; once one has ended the other gets `idle` to end too), an I/O error on
/// either (the client side's idle timeout is one), or the shutdown's drain ends.
async fn run(
    client: OnUpgrade,
    upstream: OnUpgrade,
    lease: Option<Lease>,
    mut closing: watch::Receiver<bool>,
    metrics: Metrics,
    idle: Duration,
) {
    let _lease = lease;
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(both) => both,
        Err(e) => {
            tracing::debug!(error = %e, "WebSocket upgrade did not complete");
            return;
        }
    };
    metrics.tunnels.inc();
    let _open = GaugeGuard::new(metrics.tunnels_open.clone());
    let (mut client_rx, mut client_tx) = tokio::io::split(TokioIo::new(client));
    let (mut upstream_rx, mut upstream_tx) = tokio::io::split(TokioIo::new(upstream));
    let up = one_way(&mut client_rx, &mut upstream_tx);
    let down = one_way(&mut upstream_rx, &mut client_tx);
    tokio::pin!(up, down);
    let both = async {
        // The first direction to end: an error ends the tunnel, an end of stream gives the
        // other direction `idle` to finish (a half-closed tunnel must not stay forever).
        let rest = tokio::select! {
            r = &mut up => r.map(|_| down.as_mut()),
            r = &mut down => r.map(|_| up.as_mut()),
        };
        match rest {
            Ok(rest) => match tokio::time::timeout(idle, rest).await {
                Ok(Ok(_)) => tracing::debug!("tunnel closed"),
                Ok(Err(e)) => tracing::debug!(error = %e, "tunnel ended"),
                Err(_) => tracing::debug!("tunnel closed: half-closed past idle_timeout"),
            },
            Err(e) => tracing::debug!(error = %e, "tunnel ended"),
        }
    };
    tokio::select! {
        () = both => {}
        _ = closing.wait_for(|closing| *closing) => {
            tracing::info!("tunnel closed: shutdown_timeout passed");
        }
    }
}

/// Copies `from` to `to` until `from` ends, then shuts `to`'s write side down.
async fn one_way<R, W>(from: &mut R, to: &mut W) -> std::io::Result<u64>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let n = tokio::io::copy(from, to).await?;
    to.shutdown().await?;
    Ok(n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // reason: tests
mod tests {
    use super::*;

    fn head(fields: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in fields {
            h.append(
                header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_websocket_upgrade_needs_both_the_token_and_the_connection_option() {
        let yes = [
            head(&[("upgrade", "websocket"), ("connection", "Upgrade")]),
            head(&[
                ("upgrade", "WebSocket"),
                ("connection", "keep-alive, upgrade"),
            ]),
            head(&[
                ("upgrade", "foo, websocket"),
                ("connection", "close"),
                ("connection", "upgrade"),
            ]),
        ];
        for h in &yes {
            assert!(wants_websocket(h), "{h:?}");
        }
        let no = [
            head(&[("upgrade", "websocket")]),
            head(&[("connection", "upgrade")]),
            head(&[
                ("upgrade", "h2c"),
                ("connection", "upgrade, http2-settings"),
            ]),
            head(&[("upgrade", "websocket/13"), ("connection", "upgrade")]),
            head(&[("upgrade", "websocketx"), ("connection", "upgrade")]),
            head(&[("upgrade", "websocket"), ("connection", "upgraded")]),
            head(&[]),
        ];
        for h in &no {
            assert!(!wants_websocket(h), "{h:?}");
        }
    }

    #[test]
    fn the_clients_101_keeps_the_websocket_fields_and_only_upgrade_connection() {
        let resp = switching(head(&[
            ("upgrade", "websocket"),
            ("connection", "Upgrade, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            ("sec-websocket-protocol", "chat"),
        ]));
        assert_eq!(resp.status(), 101);
        let h = resp.headers();
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(h["sec-websocket-protocol"], "chat");
        assert!(h.get("x-secret").is_none());
        assert!(h.get("keep-alive").is_none());
    }
}
