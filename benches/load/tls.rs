//! TLS termination rows: the gateway (rustls) and nginx (OpenSSL) serving `auth: none` / a plain
//! proxy over TLS to the same plain upstream, with an ECDSA P-256 and an RSA 2048 server
//! certificate (made with the `openssl` CLI), over kept-alive connections and with a new
//! connection per request; and HTTP/2 over TLS with many streams per connection (hyper's h2
//! client). Skipped with a note when `openssl` is missing (nginx rows also when nginx is).
//!
//! The client offers no session resumption, so every new connection is a full TLS 1.3
//! handshake (X25519, the server's signature), and it does not check the server's certificate
//! or signature: the client's work is not what is measured, and it shares core 1 with the
//! upstream.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use bytes::Bytes;
use dpop_gateway::clock;
use http_body_util::{BodyExt, Empty};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::client::{read_response, ConnStats};
use crate::launch::{gateway_yaml, start_gateway, wait_listening, which};
use crate::ports::free_port;
use crate::process::{pinned, Proxy};
use crate::same_rate::{account, cpu_window};
use crate::{Phase, Run};

/// HTTP/2 rows: connections x streams per connection.
const H2_CONNECTIONS: usize = 8;
const H2_STREAMS: usize = 32;

/// A server certificate kind.
#[derive(Clone, Copy)]
enum Cert {
    EcdsaP256,
    Rsa2048,
}

impl Cert {
    fn label(self) -> &'static str {
        match self {
            Cert::EcdsaP256 => "ECDSA P-256",
            Cert::Rsa2048 => "RSA 2048",
        }
    }

    fn file_stem(self) -> &'static str {
        match self {
            Cert::EcdsaP256 => "tls-ecdsa",
            Cert::Rsa2048 => "tls-rsa",
        }
    }
}

/// Every TLS row: per certificate, the gateway and nginx, kept-alive and new connections; then
/// HTTP/2 over TLS (ECDSA).
pub async fn rows(r: &Run, jwks: &Path) -> Vec<Phase> {
    let mut rows = Vec::new();
    if which("openssl").is_none() {
        rows.push(crate::skipped(
            "(t) TLS termination",
            "openssl is not installed (it makes the certificates)".into(),
        ));
        return rows;
    }
    for cert in [Cert::EcdsaP256, Cert::Rsa2048] {
        let (cert_file, key_file) = match make_cert(&r.dir, cert) {
            Ok(files) => files,
            Err(e) => {
                rows.push(crate::skipped(&format!("(t) TLS {}", cert.label()), e));
                continue;
            }
        };
        let h2 = matches!(cert, Cert::EcdsaP256);
        // The gateway.
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let yaml = format!(
            "{}tls:\n  cert: \"{}\"\n  key: \"{}\"\n",
            gateway_yaml(
                port,
                r.upstream,
                jwks,
                "  backend: memory\n  capacity: 1000000",
                60
            ),
            cert_file.display(),
            key_file.display()
        );
        let server = format!("gateway-{}", cert.file_stem());
        match start_gateway(&r.dir, &server, &yaml, addr) {
            Ok(gw) => {
                rows.extend(server_rows(r, &gw, "gateway", cert, h2).await);
                gw.stop();
            }
            Err(e) => rows.push(crate::skipped(
                &format!("(t) gateway TLS {}", cert.label()),
                format!("the gateway did not start: {e}"),
            )),
        }
        // nginx.
        match start_nginx_tls(&r.dir, r.upstream, &cert_file, &key_file, cert) {
            Ok(ngx) => {
                rows.extend(server_rows(r, &ngx, "nginx", cert, h2).await);
                ngx.stop();
            }
            Err(e) => rows.push(crate::skipped(
                &format!("(t) nginx TLS {}", cert.label()),
                e,
            )),
        }
    }
    rows
}

/// One server's rows for `cert`.
async fn server_rows(r: &Run, proxy: &Proxy, who: &str, cert: Cert, h2: bool) -> Vec<Phase> {
    let c = cert.label();
    let mut rows = vec![
        tls_phase(r, &format!("(t) {who} TLS {c}, keep-alive"), proxy, false).await,
        tls_phase(
            r,
            &format!("(t) {who} TLS {c}, new connection per request"),
            proxy,
            true,
        )
        .await,
    ];
    if h2 {
        rows.push(
            h2_phase(
                r,
                &format!(
                    "(t) {who} HTTP/2 TLS {c}, {H2_CONNECTIONS} connections x {H2_STREAMS} streams"
                ),
                proxy,
            )
            .await,
        );
    }
    rows
}

/// A self-signed `localhost` certificate and its key (PKCS#8 PEM), made by `openssl`.
fn make_cert(dir: &Path, cert: Cert) -> Result<(PathBuf, PathBuf), String> {
    let cert_file = dir.join(format!("{}-cert.pem", cert.file_stem()));
    let key_file = dir.join(format!("{}-key.pem", cert.file_stem()));
    let mut cmd = Command::new("openssl");
    cmd.args([
        "req",
        "-x509",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
    ])
    .args(["-addext", "subjectAltName=DNS:localhost"]);
    match cert {
        Cert::EcdsaP256 => cmd.args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]),
        Cert::Rsa2048 => cmd.args(["-newkey", "rsa:2048"]),
    };
    let out = cmd
        .arg("-keyout")
        .arg(&key_file)
        .arg("-out")
        .arg(&cert_file)
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("openssl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl req: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok((cert_file, key_file))
}

/// nginx terminating TLS with `cert`, HTTP/1.1 and HTTP/2, proxying to `upstream` as (e) does.
fn start_nginx_tls(
    dir: &Path,
    upstream: SocketAddr,
    cert_file: &Path,
    key_file: &Path,
    cert: Cert,
) -> Result<Proxy, String> {
    let bin = which("nginx").ok_or("nginx is not installed (apt-get install -y nginx)")?;
    let port = free_port();
    let d = dir.join(format!("nginx-{}", cert.file_stem()));
    std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
    let dd = d.display();
    let conf = format!(
        r#"worker_processes 1;
worker_cpu_affinity 1;
daemon off;
user root;
pid {dd}/nginx.pid;
error_log {dd}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
  keepalive_requests 10000000;
  access_log {dd}/nginx-access.log;
  client_body_temp_path {dd}/nginx-body;
  proxy_temp_path {dd}/nginx-proxy;
  fastcgi_temp_path {dd}/nginx-fcgi;
  uwsgi_temp_path {dd}/nginx-uwsgi;
  scgi_temp_path {dd}/nginx-scgi;
  upstream up {{ server {upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port} ssl http2;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    http2_max_concurrent_streams 128;
    client_max_body_size 0;
    location / {{
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
      client_body_buffer_size 1m;
    }}
  }}
}}
"#,
        cert = cert_file.display(),
        key = key_file.display()
    );
    let path = d.join("nginx.conf");
    std::fs::write(&path, conf).map_err(|e| e.to_string())?;
    let log = d.join("nginx-stderr.log");
    let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let mut child = pinned(0, &bin)
        .arg("-p")
        .arg(&d)
        .arg("-c")
        .arg(&path)
        .arg("-e")
        .arg(d.join("nginx-error.log"))
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .map_err(|e| format!("spawn nginx: {e}"))?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    match wait_listening(&mut child, addr, &log) {
        Ok(()) => Ok(Proxy { child, addr }),
        Err(e) => {
            let _ = child.kill();
            Err(e)
        }
    }
}

/// A client that offers `alpn`, no resumption, and checks nothing of the server's.
fn connector(alpn: &[u8]) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("client TLS: {e}"))
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![alpn.to_vec()];
    TlsConnector::from(Arc::new(config))
}

async fn connect(
    addr: SocketAddr,
    tls: &TlsConnector,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    tls.connect(name, tcp).await
}

/// A closed loop over TLS, HTTP/1.1: `plan.connections` clients, each on one kept-alive
/// connection, or (`fresh`) a new connection (full handshake, close_notify at the end) for
/// every request.
async fn tls_phase(r: &Run, name: &str, proxy: &Proxy, fresh: bool) -> Phase {
    let tls = connector(b"http/1.1");
    let addr = proxy.addr;
    let req = Bytes::from(format!(
        "GET /open/x HTTP/1.1\r\nHost: localhost:{}\r\n\r\n",
        addr.port()
    ));
    let t0 = clock::monotonic();
    let measure_from = t0 + r.plan.warmup;
    let deadline = measure_from + r.plan.measure;
    let cpu = cpu_window(proxy, measure_from, deadline);
    proxy.reset_peak();
    let mut tasks = Vec::new();
    for _ in 0..r.plan.connections {
        let tls = tls.clone();
        let req = req.clone();
        tasks.push(tokio::task::spawn_local(async move {
            let mut st = ConnStats::default();
            let mut buf = Vec::with_capacity(4096);
            let mut conn = None;
            while clock::monotonic() < deadline {
                let t0 = clock::monotonic();
                let counted = t0 >= measure_from;
                let mut s = match conn.take() {
                    Some(s) => s,
                    None => match connect(addr, &tls).await {
                        Ok(s) => s,
                        Err(_) => {
                            st.errors += u64::from(counted);
                            continue;
                        }
                    },
                };
                buf.clear();
                let status = match s.write_all(&req).await {
                    Ok(()) => read_response(&mut s, &mut buf).await,
                    Err(e) => Err(e),
                };
                let t1 = clock::monotonic();
                match status {
                    Ok(200) => {
                        if counted {
                            st.ok += 1;
                            st.lat_ns.push((t1 - t0).as_nanos() as u64);
                        }
                        if fresh {
                            let _ = s.shutdown().await;
                        } else {
                            conn = Some(s);
                        }
                    }
                    Ok(_) | Err(_) => st.errors += u64::from(counted),
                }
            }
            st
        }));
    }
    let st = gather(tasks).await;
    let secs = (clock::monotonic().min(deadline))
        .saturating_duration_since(measure_from)
        .as_secs_f64();
    finish(r, name, proxy, st, secs, cpu).await
}

/// HTTP/2 over TLS: [`H2_CONNECTIONS`] connections, [`H2_STREAMS`] concurrent streams on
/// each, every stream a closed loop of GETs.
async fn h2_phase(r: &Run, name: &str, proxy: &Proxy) -> Phase {
    let tls = connector(b"h2");
    let addr = proxy.addr;
    let uri: http::Uri = match format!("https://localhost:{}/open/x", addr.port()).parse() {
        Ok(u) => u,
        Err(e) => return crate::skipped(name, format!("uri: {e}")),
    };
    let t0 = clock::monotonic();
    let measure_from = t0 + r.plan.warmup;
    let deadline = measure_from + r.plan.measure;
    let cpu = cpu_window(proxy, measure_from, deadline);
    proxy.reset_peak();
    let mut tasks = Vec::new();
    for _ in 0..H2_CONNECTIONS {
        let io = match connect(addr, &tls).await {
            Ok(s) => s,
            Err(e) => return crate::skipped(name, format!("TLS connect: {e}")),
        };
        if io.get_ref().1.alpn_protocol() != Some(b"h2") {
            return crate::skipped(name, "the server did not pick h2".into());
        }
        let (sender, conn) =
            match hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .handshake::<_, Empty<Bytes>>(hyper_util::rt::TokioIo::new(io))
                .await
            {
                Ok(x) => x,
                Err(e) => return crate::skipped(name, format!("h2 handshake: {e}")),
            };
        tokio::task::spawn_local(async move {
            let _ = conn.await;
        });
        for _ in 0..H2_STREAMS {
            let mut sender = sender.clone();
            let uri = uri.clone();
            tasks.push(tokio::task::spawn_local(async move {
                let mut st = ConnStats::default();
                while clock::monotonic() < deadline {
                    if sender.ready().await.is_err() {
                        st.errors += 1;
                        break;
                    }
                    let t0 = clock::monotonic();
                    let counted = t0 >= measure_from;
                    let Ok(req) = http::Request::get(uri.clone()).body(Empty::<Bytes>::new())
                    else {
                        break;
                    };
                    let ok = match sender.send_request(req).await {
                        Ok(resp) => {
                            let status = resp.status();
                            resp.into_body().collect().await.is_ok() && status == 200
                        }
                        Err(_) => false,
                    };
                    let t1 = clock::monotonic();
                    if counted {
                        if ok {
                            st.ok += 1;
                            st.lat_ns.push((t1 - t0).as_nanos() as u64);
                        } else {
                            st.errors += 1;
                        }
                    }
                }
                st
            }));
        }
    }
    let st = gather(tasks).await;
    let secs = (clock::monotonic().min(deadline))
        .saturating_duration_since(measure_from)
        .as_secs_f64();
    finish(r, name, proxy, st, secs, cpu).await
}

async fn gather(tasks: Vec<tokio::task::JoinHandle<ConnStats>>) -> ConnStats {
    let mut all = ConnStats::default();
    for t in tasks {
        if let Ok(st) = t.await {
            all.lat_ns.extend(st.lat_ns);
            all.ok += st.ok;
            all.errors += st.errors;
        }
    }
    all
}

async fn finish(
    r: &Run,
    name: &str,
    proxy: &Proxy,
    st: ConnStats,
    secs: f64,
    cpu: tokio::task::JoinHandle<(f64, f64)>,
) -> Phase {
    let mut ph = r.phase(name, st, secs);
    if let Ok((used, others)) = cpu.await {
        account(&mut ph, used, others, secs);
    }
    ph.peak_rss_kib = Some(proxy.peak_rss_kib());
    ph
}

/// The target lines: gateway / nginx CPU per request for each TLS row pair.
pub fn targets(phases: &[Phase]) -> Vec<String> {
    let mut out = Vec::new();
    for gw in phases.iter().filter(|p| p.name.starts_with("(t) gateway ")) {
        let twin = gw.name.replacen("(t) gateway ", "(t) nginx ", 1);
        let Some(ngx) = phases.iter().find(|p| p.name == twin) else {
            continue;
        };
        let (Some(g), Some(n)) = (gw.cpu_us_per_req, ngx.cpu_us_per_req) else {
            continue;
        };
        if gw.requests == 0 || ngx.requests == 0 {
            continue;
        }
        let mut line = String::new();
        let _ = write!(
            line,
            "TLS {}: gateway {g:.1} / nginx {n:.1} µs = {:.2}x CPU per request, {:.2}x req/s",
            gw.name
                .trim_start_matches("(t) gateway TLS ")
                .trim_start_matches("(t) gateway "),
            g / n,
            gw.rps() / ngx.rps()
        );
        out.push(line);
    }
    out
}

/// Accepts any server certificate and signature (see the module docs).
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
