//! Starting what is measured: the gateway binary under a generated config, nginx as a plain
//! reverse proxy, and the wait until each listens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::gateway_bin;
use crate::ports::free_port;
use crate::process::{pinned, Proxy};

// === orchestration ===

pub fn which(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// Waits until `addr` accepts or `child` exits; `Err(last stderr lines)` if it exited.
pub fn wait_listening(child: &mut Child, addr: SocketAddr, log: &Path) -> Result<(), String> {
    for _ in 0..100 {
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            // The last plain line (tracing's lines carry colour codes).
            let last = text
                .lines()
                .rev()
                .find(|l| !l.contains('\u{1b}') && !l.trim().is_empty())
                .unwrap_or("");
            return Err(format!("{status}: {last}"));
        }
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err("did not start listening in 5 s".into())
}

pub fn start_gateway(
    dir: &Path,
    name: &str,
    yaml: &str,
    addr: SocketAddr,
) -> Result<Proxy, String> {
    let cfg = dir.join(format!("{name}.yaml"));
    std::fs::write(&cfg, yaml).map_err(|e| e.to_string())?;
    // LOADBENCH_GATEWAY_LOG=null: the gateway still formats and writes its log, to /dev/null,
    // to tell the gateway's own cost from the disk writeback of a log file on its core.
    let log = match std::env::var("LOADBENCH_GATEWAY_LOG") {
        Ok(v) if v == "null" => PathBuf::from("/dev/null"),
        _ => dir.join(format!("{name}.log")),
    };
    let out = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&log)
        .map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    // LOADBENCH_PROFILE=perf: record the gateway with `perf record` (cpu-clock: hardware
    // counters are often unavailable in VMs) into <run dir>/<name>.perf.data.
    let mut cmd = if std::env::var("LOADBENCH_PROFILE").is_ok_and(|v| v == "perf") {
        let mut c = pinned(0, "perf");
        c.args([
            "record",
            "-q",
            "-e",
            "cpu-clock",
            "-F",
            "999",
            "--call-graph",
            "dwarf,16384",
            "-o",
        ])
        .arg(dir.join(format!("{name}.perf.data")))
        .arg("--")
        .arg(gateway_bin());
        c
    } else if std::env::var("LOADBENCH_PROFILE").is_ok_and(|v| v == "strace-c") {
        // Syscall counts of every thread (`strace -c -f`): divide by the requests answered.
        let mut c = pinned(0, "strace");
        c.args(["-c", "-f", "-o"])
            .arg(dir.join(format!("{name}.strace-c")))
            .arg(gateway_bin());
        c
    } else if std::env::var("LOADBENCH_PROFILE").is_ok_and(|v| v == "strace") {
        let mut c = pinned(0, "strace");
        c.args(["-f", "-e", "trace=network,read,write,writev,readv", "-o"])
            .arg(dir.join(format!("{name}.strace")))
            .arg(gateway_bin());
        c
    } else {
        pinned(0, gateway_bin())
    };
    let mut child = cmd
        .arg("run")
        .arg("-c")
        .arg(&cfg)
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", gateway_bin().display()))?;
    match wait_listening(&mut child, addr, &log) {
        Ok(()) => Ok(Proxy { child, addr }),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

pub fn gateway_yaml(
    port: u16,
    upstream: SocketAddr,
    jwks: &Path,
    replay: &str,
    proof_max_age: u64,
) -> String {
    format!(
        r#"listen: "127.0.0.1:{port}"
admin_listen: "127.0.0.1:0"
shutdown_timeout: 2s
upstream:
  url: "http://{upstream}"
  connect_timeout: 1s
  request_timeout: 60s
routes:
  - {{ path_prefix: "/open", auth: none }}
  - {{ path_prefix: "/", auth: dpop }}
dpop:
  algorithms: [ES256, EdDSA, RS256, PS256]
  proof_max_age: {proof_max_age}s
  clock_skew: 5s
replay_cache:
{replay}
  # A few client keys carry the whole load: the per-key limit (6,500 live entries by default)
  # would refuse most of (c)'s proofs with 429.
  per_key_limit: 100000000
access_token:
  format: jwt
  issuer: "https://as.example.com"
  audience: "https://api.example.com"
  jwks_file: "{jwks}"
"#,
        jwks = jwks.display()
    )
}

pub fn start_nginx(dir: &Path, upstream: SocketAddr) -> Result<Proxy, String> {
    let bin = which("nginx").ok_or("nginx is not installed (apt-get install -y nginx)")?;
    let port = free_port();
    let d = dir.display();
    let conf = format!(
        r#"worker_processes 1;
worker_cpu_affinity 1;
daemon off;
user root;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
  keepalive_requests 10000000;
  access_log {d}/nginx-access.log;
  client_body_temp_path {d}/nginx-body;
  proxy_temp_path {d}/nginx-proxy;
  fastcgi_temp_path {d}/nginx-fcgi;
  uwsgi_temp_path {d}/nginx-uwsgi;
  scgi_temp_path {d}/nginx-scgi;
  upstream up {{ server {upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
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
"#
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).map_err(|e| e.to_string())?;
    let log = dir.join("nginx-stderr.log");
    let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let mut child = pinned(0, &bin)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .arg("-e")
        .arg(dir.join("nginx-error.log"))
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
