//! A child process under test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::Value;

/// A running child. Its stdout is read line by line on a thread; its stderr
/// goes to a log file kept for failure reports. Dropping it kills the child.
pub struct Proc {
    pub name: String,
    child: Child,
    lines: Receiver<String>,
    /// Every stdout line seen so far, for reports.
    pub seen: Vec<String>,
    pub stderr_path: PathBuf,
}

impl Proc {
    /// Starts `program args` with stdin closed. Stderr goes to `log_dir/<name>.stderr`.
    pub fn spawn(
        name: &str,
        program: impl AsRef<Path>,
        args: &[impl AsRef<std::ffi::OsStr>],
        log_dir: &Path,
    ) -> anyhow::Result<Proc> {
        Self::spawn_with(name, Command::new(program.as_ref()).args(args), log_dir)
    }

    pub fn spawn_with(name: &str, cmd: &mut Command, log_dir: &Path) -> anyhow::Result<Proc> {
        std::fs::create_dir_all(log_dir)?;
        let stderr_path = log_dir.join(format!("{name}.stderr"));
        let stderr = std::fs::File::create(&stderr_path)?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Proc {
            name: name.to_owned(),
            child,
            lines: rx,
            seen: Vec::new(),
            stderr_path,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next stdout line, or `None` at end of output or at the deadline.
    pub fn next_line(&mut self, deadline: Instant) -> Option<String> {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(wait) {
            Ok(l) => {
                self.seen.push(l.clone());
                Some(l)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Every stdout line already received, without waiting.
    pub fn drain(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l.clone());
            out.push(l);
        }
        out
    }

    /// Reads JSON lines until one satisfies `pred`; fails at the deadline or at
    /// end of output, with the process's stderr tail in the message.
    pub fn wait_json(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let Some(line) = self.next_line(deadline) else {
                bail!(
                    "{}: no {what} within {timeout:?}\n{}",
                    self.name,
                    self.report()
                );
            };
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                bail!(
                    "{}: stdout line is not JSON: {line}\n{}",
                    self.name,
                    self.report()
                );
            };
            if pred(&v) {
                return Ok(v);
            }
        }
    }

    /// Waits for the `{"event":"ready", ...}` line.
    pub fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<Value> {
        self.wait_json("ready line", timeout, |v| v["event"] == "ready")
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait()? {
                // Drain what is left of stdout for later inspection.
                while let Some(_l) = self.next_line(Instant::now() + Duration::from_millis(200)) {}
                return Ok(st);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not exit within {timeout:?}\n{}",
                    self.name,
                    self.report()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal to this child by its PID.
    pub fn signal(&self, sig: i32) -> anyhow::Result<()> {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with our own child's PID; no memory is touched.
        let rc = unsafe { libc::kill(pid, sig) };
        if rc != 0 {
            return Err(anyhow!(
                "kill({pid}, {sig}) failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }

    /// SIGTERM, then wait for a graceful exit.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        self.signal(libc::SIGTERM)?;
        self.wait_exit(timeout)
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines of stderr and stdout, for assertion messages.
    pub fn report(&self) -> String {
        let err = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let tail: Vec<&str> = err
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let out: Vec<&String> = self
            .seen
            .iter()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!(
            "--- {} stderr (tail) ---\n{}\n--- stdout (last lines) ---\n{}",
            self.name,
            tail.join("\n"),
            out.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// Polls `cond` every 50 ms until it holds; fails at the deadline naming `what`.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
