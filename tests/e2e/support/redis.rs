//! A `redis-server` of the test's own on a free port (never the shared one: tests stop and
//! restart theirs), killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A private Redis server.
pub struct TestRedis {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
}

impl TestRedis {
    /// Starts a server on a free port and waits until it accepts connections.
    pub fn start() -> TestRedis {
        let port = super::ports::free_port();
        let mut r = TestRedis { port, child: None };
        r.restart();
        r
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.child = Some(child);
        for _ in 0..500 {
            // Our child must still run: a connection alone could reach someone else's server.
            let alive = self
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
            assert!(alive, "redis-server exited (port {} taken?)", self.port);
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// Kills the server (the port stays reserved for `restart` by convention).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One Redis master, one replica and three sentinels monitoring it as `mymaster`, each a
/// process of the test's own on a free port, killed on drop.
pub struct TestSentinels {
    /// The master, then the replica.
    pub servers: Vec<Child>,
    /// The sentinels' processes.
    pub sentinels: Vec<Child>,
    /// The sentinels' ports.
    pub sentinel_ports: Vec<u16>,
    dir: std::path::PathBuf,
}

impl TestSentinels {
    /// Starts them and waits until the replica is in sync and every sentinel sees the others.
    pub fn start() -> TestSentinels {
        let dir = std::env::temp_dir().join(format!(
            "dpop-gateway-e2e-sentinel-{}-{}",
            std::process::id(),
            super::ports::free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let master = super::ports::free_port();
        let replica = super::ports::free_port();
        let server = |port: u16, extra: &[String]| {
            let child = Command::new("redis-server")
                .current_dir(&dir)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed");
            wait_for(port);
            child
        };
        let mut this = TestSentinels {
            servers: Vec::new(),
            sentinels: Vec::new(),
            sentinel_ports: Vec::new(),
            dir: dir.clone(),
        };
        this.servers.push(server(master, &[]));
        this.servers.push(server(
            replica,
            &["--replicaof".into(), "127.0.0.1".into(), master.to_string()],
        ));
        for n in 0..3 {
            let port = super::ports::free_port();
            let conf = dir.join(format!("sentinel-{n}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 {master} 2\n\
                     sentinel down-after-milliseconds mymaster 1000\n\
                     sentinel failover-timeout mymaster 5000\n"
                ),
            )
            .unwrap();
            // A config file must be redis-server's first argument.
            let child = Command::new("redis-server")
                .current_dir(&dir)
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed");
            wait_for(port);
            this.sentinels.push(child);
            this.sentinel_ports.push(port);
        }
        let started = dpop_gateway::clock::monotonic();
        while !cli(replica, &["INFO", "replication"]).contains("master_link_status:up") {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "replica not in sync"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        while !this.sentinel_ports.iter().all(|p| {
            let info = cli(*p, &["INFO", "sentinel"]);
            info.contains("sentinels=3") && info.contains("slaves=1")
        }) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "sentinels not ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        this
    }

    /// The sentinels' `redis://` URLs, as a YAML flow list.
    pub fn urls_yaml(&self) -> String {
        let urls: Vec<String> = self
            .sentinel_ports
            .iter()
            .map(|p| format!("\"redis://127.0.0.1:{p}\""))
            .collect();
        format!("[{}]", urls.join(", "))
    }
}

impl Drop for TestSentinels {
    fn drop(&mut self) {
        for c in self.sentinels.iter_mut().chain(self.servers.iter_mut()) {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_for(port: u16) {
    for _ in 0..500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no redis on port {port}");
}

/// `redis-cli -p PORT ARGS`' output.
fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli must be installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
