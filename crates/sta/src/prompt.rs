//! The interactive prompt of `sta node|seed|get` (only when stdin and stdout
//! are terminals): a line editor with history and tab completion, running on
//! its own thread and executing the shared command language. Log lines and
//! events are printed above the prompt, never through it.

use std::path::PathBuf;

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::error::ReadlineError;
use rustyline::{Context, Editor, ExternalPrinter, Helper, Highlighter, Hinter, Validator};
use sta_node::control::{self, COMMANDS, Controller, Reply};
use tokio_util::sync::CancellationToken;

#[derive(Helper, Hinter, Highlighter, Validator)]
struct PromptHelper {
    files: FilenameCompleter,
}

impl Completer for PromptHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        if !before.contains(char::is_whitespace) {
            let c = COMMANDS
                .iter()
                .filter(|c| c.starts_with(before))
                .map(|c| Pair {
                    display: c.to_string(),
                    replacement: format!("{c} "),
                })
                .collect();
            return Ok((0, c));
        }
        if before.starts_with("add ") {
            return self.files.complete(line, pos, ctx);
        }
        if before.starts_with("peers ") {
            let word_start = before.rfind(' ').map_or(0, |i| i + 1);
            let w = &before[word_start..];
            let c = ["down", "up", "progress", "addr"]
                .iter()
                .filter(|s| s.starts_with(w))
                .map(|s| Pair {
                    display: s.to_string(),
                    replacement: s.to_string(),
                })
                .collect();
            return Ok((word_start, c));
        }
        if before.starts_with("limit ") && before.matches(' ').count() == 1 {
            let w = &before[6..];
            let c = ["up", "down"]
                .iter()
                .filter(|s| s.starts_with(w))
                .map(|s| Pair {
                    display: s.to_string(),
                    replacement: format!("{s} "),
                })
                .collect();
            return Ok((6, c));
        }
        Ok((pos, Vec::new()))
    }
}

/// Saved terminal settings, restored on exit even if the process ends while
/// the editor holds the terminal in raw mode.
pub struct TermGuard(Option<libc::termios>);

impl TermGuard {
    pub fn save() -> Self {
        // SAFETY: tcgetattr writes into a zeroed termios we own.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) == 0 {
                TermGuard(Some(t))
            } else {
                TermGuard(None)
            }
        }
    }
}

impl Drop for TermGuard {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            // SAFETY: restores settings read by tcgetattr on the same descriptor.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, t);
            }
        }
    }
}

/// Starts the prompt thread. Returns a printer for messages above the prompt.
pub fn start(
    rt: tokio::runtime::Handle,
    controller: Controller,
    history: Option<PathBuf>,
    stop: CancellationToken,
) -> anyhow::Result<Box<dyn FnMut(String) + Send>> {
    let mut rl: Editor<PromptHelper, rustyline::history::DefaultHistory> = Editor::new()?;
    rl.set_helper(Some(PromptHelper {
        files: FilenameCompleter::new(),
    }));
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    let mut printer = rl.create_external_printer()?;
    let print: Box<dyn FnMut(String) + Send> = Box::new(move |s: String| {
        let _ = printer.print(s);
    });
    std::thread::Builder::new()
        .name("prompt".into())
        .spawn(move || run(rl, rt, controller, history, stop))?;
    Ok(print)
}

fn run(
    mut rl: Editor<PromptHelper, rustyline::history::DefaultHistory>,
    rt: tokio::runtime::Handle,
    mut controller: Controller,
    history: Option<PathBuf>,
    stop: CancellationToken,
) {
    println!("type help for commands, quit to stop");
    loop {
        let prompt = format!("sta[{}]> ", controller.selected);
        match rl.readline(prompt.as_str()) {
            Ok(line) => {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let _ = rl.add_history_entry(line);
                let width = terminal_width();
                match control::parse(line) {
                    Ok(cmd) => match rt.block_on(controller.execute(cmd)) {
                        Ok(Reply::Quit) => {
                            println!(
                                "{}",
                                crate::tables::format_reply(&Reply::Quit, width).trim_end()
                            );
                            break;
                        }
                        Ok(reply) => print!("{}", crate::tables::format_reply(&reply, width)),
                        Err(e) => println!("error: {e}"),
                    },
                    Err(e) => println!("{e}"),
                }
            }
            Err(ReadlineError::Interrupted) => {
                // Ctrl-C at the prompt stops the node as it would without one:
                // gracefully, with exit code 130.
                stop.cancel();
                break;
            }
            Err(ReadlineError::Eof) => {
                println!(
                    "end of input: the prompt is closed, the node keeps running (Ctrl-C or SIGTERM stops it)"
                );
                break;
            }
            Err(e) => {
                eprintln!("prompt error: {e}");
                break;
            }
        }
    }
    if let Some(h) = &history {
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = rl.save_history(h);
    }
}

pub fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ fills a winsize struct we own.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0 {
            ws.ws_col as usize
        } else {
            100
        }
    }
}
