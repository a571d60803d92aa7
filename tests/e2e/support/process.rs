//! The gateway as a separate process (the built binary with a config file), for tests that
//! need several replicas or signals.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use super::client::{self, Mode};
use super::gateway::{config_yaml, Issuer, Options};
use super::temp_dir;
use super::upstream::Upstream;

/// A running `dpop-gateway run` process, killed on drop.
pub struct GatewayProcess {
    /// The main listener.
    pub addr: SocketAddr,
    /// The admin listener.
    pub admin_addr: SocketAddr,
    child: Child,
    /// The config file, kept for [`GatewayProcess::restart`].
    config: PathBuf,
    /// The environment it was started with.
    env: Vec<(String, String)>,
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

impl GatewayProcess {
    /// Writes the config for `opts` and starts the binary; waits until `/healthz` answers.
    pub async fn spawn(opts: &Options, upstream: &Upstream, issuer: &Issuer) -> GatewayProcess {
        Self::spawn_with(
            opts,
            upstream,
            issuer,
            &[("RUST_LOG", "warn")],
            Stdio::inherit(),
            None,
        )
        .await
    }

    /// As [`GatewayProcess::spawn`], with `env` set, stderr (the log) going to `stderr`, and
    /// with `cpu`, pinned to that one CPU (`taskset`).
    pub async fn spawn_with(
        opts: &Options,
        upstream: &Upstream,
        issuer: &Issuer,
        env: &[(&str, &str)],
        stderr: Stdio,
        cpu: Option<usize>,
    ) -> GatewayProcess {
        let addr = free_addr();
        let admin_addr = free_addr();
        let opts = Options {
            listen: addr.to_string(),
            admin_listen: admin_addr.to_string(),
            ..opts.clone()
        };
        let path = temp_dir("process").join("gateway.yaml");
        std::fs::write(&path, config_yaml(&opts, upstream, issuer)).unwrap();
        let child = launch(&path, env, stderr, cpu);
        let p = GatewayProcess {
            addr,
            admin_addr,
            child,
            config: path,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        p.until_healthy().await;
        p
    }

    /// Stops the process (SIGTERM, drained) and starts it again with the same config file,
    /// hence the same addresses; waits until `/healthz` answers.
    pub async fn restart(&mut self) {
        self.terminate();
        let code = self.wait_exit(Duration::from_secs(10));
        assert_eq!(code, Some(0), "the first process exits 0 on SIGTERM");
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.child = launch(&self.config, &env, Stdio::inherit(), None);
        self.until_healthy().await;
    }

    /// Waits until `/healthz` answers.
    async fn until_healthy(&self) {
        for _ in 0..200 {
            if self.admin_get("/healthz").await == Some(200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("gateway process did not start");
    }

    /// Sends `signal` (a `kill -s` name: `HUP`, `TERM`).
    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status();
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The status and body of an admin GET, or `None` when it does not answer.
    pub async fn admin_text(&self, path: &str) -> Option<(u16, String)> {
        let req = Request::get(path)
            .header("host", "admin")
            .body(Full::new(Bytes::new()))
            .unwrap();
        client::try_send(self.admin_addr, Mode::H1, req)
            .await
            .ok()
            .map(|r| {
                (
                    r.status().as_u16(),
                    String::from_utf8_lossy(r.body()).into_owned(),
                )
            })
    }
}

/// Starts `dpop-gateway run -c config`.
fn launch(
    config: &std::path::Path,
    env: &[(&str, &str)],
    stderr: Stdio,
    cpu: Option<usize>,
) -> Child {
    let bin = env!("CARGO_BIN_EXE_dpop-gateway");
    let mut cmd = match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.arg("run")
        .arg("-c")
        .arg(config)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

impl GatewayProcess {
    /// The status of an admin GET, or `None` when it does not answer.
    pub async fn admin_get(&self, path: &str) -> Option<u16> {
        let req = Request::get(path)
            .header("host", "admin")
            .body(Full::new(Bytes::new()))
            .unwrap();
        client::try_send(self.admin_addr, Mode::H1, req)
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    /// The config file it runs with (rewrite it, then SIGHUP, to reload).
    pub fn config_path(&self) -> &std::path::Path {
        &self.config
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
    }

    /// Waits for the process to exit, at most `limit`; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let steps = limit.as_millis() / 20;
        for _ in 0..steps {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
