//! Child `sta` processes of `sta swarm`: started with stdin closed, their
//! JSON stdout read line by line into a channel, stderr kept in a log file,
//! and tied to our life (they get SIGTERM if we die), stopped by PID.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::bail;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

/// A JSON line from node number `node` (0 is the seeder).
pub struct Line {
    pub node: usize,
    pub value: Value,
}

pub struct Child {
    pub name: String,
    child: tokio::process::Child,
}

/// Starts `exe args`; its JSON lines arrive on the returned channel, ending
/// with `{"event":"exited","detail":...}`.
pub fn spawn_child(
    exe: &Path,
    name: &str,
    args: &[String],
    work: &Path,
) -> anyhow::Result<(Child, mpsc::Receiver<Value>)> {
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs)?;
    let stderr = std::fs::File::create(logs.join(format!("{name}.log")))?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true);
    // SAFETY: prctl in the forked child before exec, async-signal-safe; it
    // asks the kernel to send SIGTERM to the child when this process dies.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {name}: {e}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel(256);
    let log = logs.join(format!("{name}.log"));
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            if let Ok(v) = serde_json::from_str::<Value>(&l)
                && tx.send(v).await.is_err()
            {
                return;
            }
        }
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        let last: Vec<&str> = tail.lines().rev().take(3).collect();
        let detail = format!(
            "see {} ({})",
            log.display(),
            last.into_iter().rev().collect::<Vec<_>>().join(" | ")
        );
        let _ = tx.send(json!({"event": "exited", "detail": detail})).await;
    });
    Ok((
        Child {
            name: name.to_owned(),
            child,
        },
        rx,
    ))
}

impl Child {
    pub fn terminate(&mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on our own child's PID.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
    }

    pub async fn wait_or_kill(&mut self, grace: Duration) {
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            tracing::warn!(name = %self.name, "did not stop in time; killing");
            let _ = self.child.kill().await;
        }
    }
}

pub async fn wait_ready(
    rx: &mut tokio::sync::mpsc::Receiver<serde_json::Value>,
    what: &str,
) -> anyhow::Result<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let v = tokio::select! {
            v = rx.recv() => v,
            _ = tokio::time::sleep_until(deadline) => bail!("{what} did not start within 60 s"),
        };
        match v {
            Some(v) if v["event"] == "ready" => return Ok(v),
            Some(v) if v["event"] == "exited" => bail!(
                "{what} failed to start: {}",
                v["detail"].as_str().unwrap_or("")
            ),
            Some(_) => {}
            None => bail!("{what} exited before it was ready"),
        }
    }
}

pub fn forward(
    mut rx: tokio::sync::mpsc::Receiver<serde_json::Value>,
    node: usize,
    tx: tokio::sync::mpsc::Sender<Line>,
) {
    tokio::spawn(async move {
        while let Some(value) = rx.recv().await {
            if tx.send(Line { node, value }).await.is_err() {
                break;
            }
        }
    });
}
