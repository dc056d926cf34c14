//! The processes `loadgen` measures: the injector and the floor server, started on
//! 127.0.0.1, and their CPU time and memory read from /proc.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `cmd` (a server listening on 127.0.0.1:`port`) and waits until it accepts connections.
pub fn start_server(mut cmd: Command, port: u16, what: &str) -> anyhow::Result<Server> {
    cmd.env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {what}: {e}"))?;
    let server = Server { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what} did not listen within 20s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(server)
}

/// `proxy-injector serve` on a free port of 127.0.0.1, with a namespaces file (no cluster).
pub fn start_injector(bin: &Path, certs: &Path, ns_file: &Path) -> anyhow::Result<Server> {
    let port = free_port()?;
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--tls-cert")
        .arg(certs.join("tls.crt"))
        .arg("--tls-key")
        .arg(certs.join("tls.key"))
        .arg("--namespaces")
        .arg(ns_file);
    start_server(cmd, port, &bin.display().to_string())
}

/// The floor server on a free port of 127.0.0.1, answering `answer_bytes` bytes.
pub fn start_floor(bin: &Path, certs: &Path, answer_bytes: usize) -> anyhow::Result<Server> {
    let port = free_port()?;
    let mut cmd = Command::new(bin);
    cmd.arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--tls-cert")
        .arg(certs.join("tls.crt"))
        .arg("--tls-key")
        .arg(certs.join("tls.key"))
        .arg("--answer-bytes")
        .arg(answer_bytes.to_string());
    start_server(cmd, port, &bin.display().to_string())
}

/// `name` next to this program (where cargo puts every binary of the workspace), or `given`.
pub fn sibling_binary(given: Option<PathBuf>, name: &str, flag: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p);
    }
    let me = std::env::current_exe()?;
    let p = me.with_file_name(name);
    anyhow::ensure!(
        p.exists(),
        "{} does not exist: build the workspace's binaries first (cargo build --release --workspace --bins) or pass {flag}",
        p.display()
    );
    Ok(p)
}

/// utime + stime of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// (current RSS, peak RSS) in MiB.
pub fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
}
