//! The upstream every row forwards to.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use tokio::net::TcpListener;

// === the upstream ===

/// A fast upstream: `200 ok` to everything; request bodies are read and counted, never kept.
pub async fn upstream(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::task::spawn_local(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let svc = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                let mut body = req.into_body();
                let mut n = 0u64;
                while let Some(Ok(frame)) = body.frame().await {
                    if let Some(d) = frame.data_ref() {
                        n += d.len() as u64;
                    }
                }
                let text = if n > 0 { format!("{n}") } else { "ok".into() };
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(text))))
            });
            let _ = http1::Builder::new().serve_connection(io, svc).await;
        });
    }
}
