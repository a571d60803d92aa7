//! The processes measured: a proxy child whose CPU and peak RSS are read from `/proc`, and
//! the core pinning that keeps it alone on core 0.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::launch::which;

/// A process whose CPU and memory we account.
pub struct Proxy {
    pub child: Child,
    pub addr: SocketAddr,
}

// === impl Proxy ===

impl Proxy {
    pub fn pids(&self) -> Vec<u32> {
        let pid = self.child.id();
        let mut pids = vec![pid];
        // nginx: the master's children are the workers.
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        pids.extend(
            children
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
        pids
    }

    /// On-CPU time of every thread of every process, in ns.
    pub fn cpu_ns(&self) -> u64 {
        self.pids().iter().map(|p| cpu_ns(*p)).sum()
    }

    /// Resets `VmHWM` to the current RSS (Linux `clear_refs` 5).
    pub fn reset_peak(&self) {
        for p in self.pids() {
            let _ = std::fs::write(format!("/proc/{p}/clear_refs"), "5");
        }
    }

    pub fn peak_rss_kib(&self) -> u64 {
        self.pids().iter().map(|p| status_kib(*p, "VmHWM:")).sum()
    }

    pub fn rss_kib(&self) -> u64 {
        self.pids().iter().map(|p| status_kib(*p, "VmRSS:")).sum()
    }

    pub fn stop(mut self) {
        // SIGTERM (the gateway drains; nginx exits), then make sure.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A proxy left running by a panic (an assertion in the harness) is killed, not orphaned on the
/// core the next run measures.
impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// On-CPU ns of every thread of `pid`: `/proc/<pid>/task/*/schedstat` (ns resolution), or
/// utime+stime from `/proc/<pid>/stat` (clock ticks) where schedstat is missing.
pub fn cpu_ns(pid: u32) -> u64 {
    schedstat(pid, 0)
}

/// Busy time of core 0 (the proxies' core), all processes, in ns (`/proc/stat`, clock ticks):
/// minus the proxy's own CPU time, it shows what else ran there on a shared machine.
pub fn core0_busy_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu0 ")) else {
        return 0;
    };
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...: busy is all but idle, iowait, steal.
    let busy: u64 = [0, 1, 2, 5, 6].iter().filter_map(|i| f.get(*i)).sum();
    (busy as f64 * 1e9 / ticks_per_sec()) as u64
}

pub fn schedstat(pid: u32, field: usize) -> u64 {
    let mut total = 0u64;
    let mut found = false;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let text = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            if let Some(ns) = text
                .split_whitespace()
                .nth(field)
                .and_then(|v| v.parse::<u64>().ok())
            {
                total += ns;
                found = true;
            }
        }
    }
    if found || field > 0 {
        return total;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`, which may contain spaces: utime is field 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    ((get(11) + get(12)) as f64 * 1e9 / ticks_per_sec()) as u64
}

/// On-CPU ns of the calling thread.
pub fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

pub fn ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// `taskset -c CORE bin` when there are two cores to split, else `bin`.
pub fn pinned(core: usize, bin: impl AsRef<std::ffi::OsStr>) -> Command {
    if cores() >= 2 && which("taskset").is_some() {
        let mut c = Command::new("taskset");
        c.arg("-c").arg(core.to_string()).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

/// The machine's cores (not this process's affinity: after pinning that is one).
pub fn cores() -> usize {
    let n = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    n.max(1)
}

/// The calling thread's `Cpus_allowed_list` (e.g. `1`).
pub fn cpus_allowed() -> String {
    std::fs::read_to_string("/proc/thread-self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

/// Lets the calling thread run on every core (this process is pinned to core 1).
pub fn widen_affinity() {
    let Ok(link) = std::fs::read_link("/proc/thread-self") else {
        return;
    };
    let Some(tid) = link.file_name().map(|t| t.to_string_lossy().into_owned()) else {
        return;
    };
    // Without `-a`: only this thread. `-a` would widen every thread of the process, the load
    // generator's and the upstream's too, which would then compete with the proxy on core 0.
    let _ = Command::new("taskset")
        .args(["-p", "-c", &format!("0-{}", cores() - 1), &tid])
        .stdout(Stdio::null())
        .status();
}
