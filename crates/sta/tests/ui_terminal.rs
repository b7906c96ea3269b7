//! The terminal a person watches: whatever way a node with `--tui` ends
//! (SIGTERM, `--exit-on-complete`, Ctrl-C, `q`), the terminal comes back in
//! its normal mode off the alternate screen; Ctrl-C at the prompt or the
//! dashboard exits 130. Each node runs in tmux, and the shell in the pane
//! records its exit code and `stty -a` right after it ends.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sta_testkit::files::random_file;
use sta_testkit::sta::StaEnv;
use sta_testkit::tools::require_tool;
use sta_testkit::wait_until;

#[path = "support/tmux.rs"]
mod tmux;
use tmux::Tmux;

const STA: &str = env!("CARGO_BIN_EXE_sta");
const T: Duration = Duration::from_secs(60);

/// A node started in tmux through a shell that writes its PID, then its exit
/// code and terminal settings when it ends.
struct InTerminal {
    tmux: Tmux,
    pid_file: PathBuf,
    exit_file: PathBuf,
    stty_file: PathBuf,
    stderr: PathBuf,
}

impl InTerminal {
    fn start(env: &StaEnv, name: &str, sta_args: &str) -> InTerminal {
        let p = |s: &str| env.path(&format!("{name}.{s}"));
        let (pid_file, exit_file, stty_file, stderr) =
            (p("pid"), p("exit"), p("stty"), p("stderr"));
        // `exec` keeps the PID written by the inner shell: it becomes sta's.
        let cmd = format!(
            "sh -c 'echo $$ > {}; exec {STA} {sta_args} 2>{}'; rc=$?; stty -a > {}; echo $rc > {}; exec sleep 600",
            pid_file.display(),
            stderr.display(),
            stty_file.display(),
            exit_file.display(),
        );
        let tmux = Tmux::start(&format!("sta-term-{}-{name}", std::process::id()), &cmd);
        InTerminal {
            tmux,
            pid_file,
            exit_file,
            stty_file,
            stderr,
        }
    }

    fn pid(&self) -> i32 {
        let mut pid = 0;
        wait_until("the node's PID", T, || {
            pid = std::fs::read_to_string(&self.pid_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            pid > 0
        })
        .unwrap();
        pid
    }

    fn wait_for_screen(&self, what: &str) {
        wait_until(what, T, || self.tmux.screen().contains(what))
            .unwrap_or_else(|e| panic!("{e}\n{}\n{}", self.tmux.screen(), self.log()));
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits for the node to end; returns its exit code.
    fn exit_code(&self) -> i32 {
        wait_until("the node to exit", T, || self.exit_file.exists())
            .unwrap_or_else(|e| panic!("{e}\n{}\n{}", self.tmux.screen(), self.log()));
        let code = std::fs::read_to_string(&self.exit_file).unwrap();
        code.trim().parse().unwrap()
    }

    /// The terminal is as a shell expects it: line editing and echo on, off
    /// the alternate screen.
    fn assert_terminal_restored(&self, how: &str) {
        let stty = std::fs::read_to_string(&self.stty_file).unwrap();
        let words: Vec<&str> = stty.split_whitespace().collect();
        for mode in ["icanon", "echo", "isig"] {
            assert!(
                words.contains(&mode),
                "{how}: the terminal was left without {mode}:\n{stty}"
            );
        }
        assert!(
            !self.tmux.alternate_screen(),
            "{how}: the terminal was left on the alternate screen"
        );
    }
}

/// Tracker and a seeder of `name` (1 MiB); returns the torrent.
fn swarm(env: &mut StaEnv, name: &str) -> (Vec<sta_testkit::Proc>, PathBuf) {
    let (tracker, announce, _) = env.tracker(&[]).unwrap();
    let src = env.path(&format!("seed/{name}"));
    random_file(&src, 1 << 20, 31).unwrap();
    let t = env.create(&src, &announce, "32KiB").unwrap();
    let (seeder, _) = env.seeder("seeder", &t, &env.path("seed"), &[]).unwrap();
    (vec![tracker, seeder], t)
}

fn get_args(env: &mut StaEnv, t: &Path, name: &str, extra: &str) -> String {
    format!(
        "get {} -o {} -p 0 --bind {} --state-dir {} --api 127.0.0.1:0 {extra}",
        t.display(),
        env.path(&format!("leech-{name}")).display(),
        env.next_ip(),
        env.path(&format!("state-{name}")).display(),
    )
}

#[test]
fn tui_gives_the_terminal_back_however_the_node_ends() {
    if !require_tool("tmux") || !require_tool("stty") {
        return;
    }
    let mut env = StaEnv::new(STA);
    let (_procs, t) = swarm(&mut env, "tui.bin");

    // SIGTERM while the dashboard is up: a graceful stop, exit 0.
    let args = get_args(&mut env, &t, "term", "--tui");
    let node = InTerminal::start(&env, "term", &args);
    node.wait_for_screen("q quit");
    assert!(node.tmux.alternate_screen(), "the dashboard is full-screen");
    // SAFETY: kill(2) on the PID of the node this test started.
    assert_eq!(unsafe { libc::kill(node.pid(), libc::SIGTERM) }, 0);
    assert_eq!(node.exit_code(), 0, "{}", node.log());
    node.assert_terminal_restored("SIGTERM");

    // --exit-on-complete: the node ends by itself, exit 0.
    let args = get_args(&mut env, &t, "done", "--tui --exit-on-complete");
    let node = InTerminal::start(&env, "done", &args);
    assert_eq!(node.exit_code(), 0, "{}", node.log());
    node.assert_terminal_restored("--exit-on-complete");

    // Ctrl-C (a key in raw mode): interrupted, exit 130.
    let args = get_args(&mut env, &t, "ctrlc", "--tui");
    let node = InTerminal::start(&env, "ctrlc", &args);
    node.wait_for_screen("q quit");
    node.tmux.keys("C-c");
    assert_eq!(node.exit_code(), 130, "{}", node.log());
    node.assert_terminal_restored("Ctrl-C");

    // q: the node stops gracefully, exit 0.
    let args = get_args(&mut env, &t, "q", "--tui");
    let node = InTerminal::start(&env, "q", &args);
    node.wait_for_screen("q quit");
    node.tmux.keys("q");
    assert_eq!(node.exit_code(), 0, "{}", node.log());
    node.assert_terminal_restored("q");
}

#[test]
fn ctrl_c_at_the_prompt_stops_the_node_with_130() {
    if !require_tool("tmux") || !require_tool("stty") {
        return;
    }
    let mut env = StaEnv::new(STA);
    let (_procs, t) = swarm(&mut env, "prompt.bin");
    let args = get_args(&mut env, &t, "prompt", "");
    let node = InTerminal::start(&env, "prompt", &args);
    node.wait_for_screen("sta[1]>");
    node.tmux.keys("C-c");
    assert_eq!(node.exit_code(), 130, "{}", node.log());
    node.assert_terminal_restored("Ctrl-C at the prompt");
}
