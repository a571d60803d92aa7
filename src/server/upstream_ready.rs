//! `upstream.readiness`: a background check of the upstream for `/readyz`, so that a pod whose
//! API is not (yet, or no longer) answering leaves its Service. Run every
//! [`UPSTREAM_CHECK_INTERVAL`] whatever the probe rate (a probe reads the last result), each
//! check bounded by `upstream.connect_timeout`. I/O lives here.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, HOST, USER_AGENT};
use http::{Request, Uri};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::admin::Readiness;
use crate::config::{UpstreamConfig, UpstreamReadiness};

/// How often the upstream is checked.
pub(crate) const UPSTREAM_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Checks the upstream now and then every [`UPSTREAM_CHECK_INTERVAL`] until shutdown, recording
/// each result in `ready` and logging each change. Returns at once for `readiness: none`.
pub(crate) async fn watch(
    upstream: UpstreamConfig,
    ready: Readiness,
    mut shutdown: watch::Receiver<bool>,
) {
    if upstream.readiness == UpstreamReadiness::None {
        return;
    }
    let mut was_ok = None;
    loop {
        let result = tokio::time::timeout(upstream.connect_timeout, check(&upstream))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "no answer within upstream.connect_timeout ({:?})",
                    upstream.connect_timeout
                ))
            });
        let ok = result.is_ok();
        ready.set_upstream_ok(ok);
        if was_ok != Some(ok) {
            match result {
                Ok(()) => tracing::info!("upstream ready"),
                Err(why) => tracing::warn!(%why, "upstream not ready"),
            }
            was_ok = Some(ok);
        }
        tokio::select! {
            _ = tokio::time::sleep(UPSTREAM_CHECK_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One check: a TCP connection, and for `http:/path` a `GET` answered 200-399.
async fn check(upstream: &UpstreamConfig) -> Result<(), String> {
    let (host, port) = host_port(&upstream.url)?;
    let stream = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("connect {host}:{port}: {e}"))?;
    let UpstreamReadiness::Http { path } = &upstream.readiness else {
        return Ok(());
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    let conn = tokio::spawn(conn);
    let authority = upstream
        .url
        .authority()
        .map_or_else(|| host.clone(), |a| a.as_str().to_owned());
    let req = Request::get(path.as_str())
        .header(HOST, authority)
        .header(
            USER_AGENT,
            concat!("dpop-gateway/", env!("CARGO_PKG_VERSION"), " readiness"),
        )
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("GET {path}: {e}"))?;
    let result = sender.send_request(req).await;
    conn.abort();
    let status = result.map_err(|e| format!("GET {path}: {e}"))?.status();
    if (200..400).contains(&status.as_u16()) {
        Ok(())
    } else {
        Err(format!("GET {path}: status {}", status.as_u16()))
    }
}

/// The host and port `upstream.url` names (port 80 by default: upstreams are plain HTTP).
fn host_port(url: &Uri) -> Result<(String, u16), String> {
    let authority = url
        .authority()
        .ok_or_else(|| format!("upstream.url {url} has no host"))?;
    let host = authority.host();
    // An IPv6 literal is bracketed in a URL, not in a socket address.
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let default = if url.scheme() == Some(&http::uri::Scheme::HTTPS) {
        443
    } else {
        80
    };
    Ok((host.to_owned(), authority.port_u16().unwrap_or(default)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_come_from_the_url() {
        let cases = [
            ("http://127.0.0.1:8080/api", ("127.0.0.1", 8080)),
            ("http://app.internal/", ("app.internal", 80)),
            ("http://[::1]:9000/", ("::1", 9000)),
            ("https://api.internal/v1", ("api.internal", 443)),
        ];
        for (url, (host, port)) in cases {
            let uri: Uri = url.parse().unwrap();
            assert_eq!(host_port(&uri).unwrap(), (host.to_owned(), port), "{url}");
        }
    }
}
