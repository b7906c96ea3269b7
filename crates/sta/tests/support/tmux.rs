//! A tmux session driving a program in a real terminal, for the prompt and
//! dashboard tests: keys in, screen text and terminal state out.
#![allow(dead_code)]

use std::process::Command;
use std::time::Duration;

use sta_testkit::wait_until;

const T: Duration = Duration::from_secs(60);

pub struct Tmux(pub String);

impl Tmux {
    pub fn start(name: &str, cmd: &str) -> Tmux {
        let st = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                "160",
                "-y",
                "50",
                cmd,
            ])
            .status()
            .unwrap();
        assert!(st.success());
        Tmux(name.into())
    }
    pub fn send(&self, line: &str) {
        Command::new("tmux")
            .args(["send-keys", "-t", &self.0, line, "Enter"])
            .status()
            .unwrap();
    }
    pub fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-J", "-S", "-200", "-t", &self.0])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    /// Clears the screen and history (Ctrl-L in the line editor), sends a
    /// command and waits until its output (a line containing `marker`) shows.
    pub fn ask(&self, line: &str, marker: &str) -> String {
        // A key sent while the line editor is between two reads can be
        // flushed with the terminal's mode switch, so Ctrl-L is sent again
        // (at most every half second) until the screen is clear.
        let mut sent: Option<std::time::Instant> = None;
        wait_until("a cleared screen", T, || {
            if sent.is_none_or(|at| at.elapsed() > Duration::from_millis(500)) {
                for args in [
                    &["send-keys", "-t", &self.0, "C-l"][..],
                    &["clear-history", "-t", &self.0][..],
                ] {
                    Command::new("tmux").args(args).status().unwrap();
                }
                sent = Some(std::time::Instant::now());
            }
            !self.screen().contains(marker)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", self.screen()));
        self.send(line);
        let mut text = String::new();
        wait_until(&format!("output of {line:?}"), T, || {
            text = self.screen();
            text.contains(marker) && text.trim_end().ends_with('>')
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", self.screen()));
        text
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

impl Tmux {
    /// Sends keys as tmux names them (`C-c`, `q`), without Enter.
    pub fn keys(&self, keys: &str) {
        Command::new("tmux")
            .args(["send-keys", "-t", &self.0, keys])
            .status()
            .unwrap();
    }

    /// Whether the program in the pane left the terminal on the alternate
    /// screen (full-screen mode).
    pub fn alternate_screen(&self) -> bool {
        let out = Command::new("tmux")
            .args(["display-message", "-p", "-t", &self.0, "#{alternate_on}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }
}
