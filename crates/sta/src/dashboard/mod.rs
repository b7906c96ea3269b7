//! The live dashboard: `sta top` (a client of a node's control API) and
//! `sta node --tui` (in the same process). A full-screen ratatui view updated
//! about once a second; keys pause, resume, switch torrents and sort peers.
//! The terminal is restored on exit, on error and on panic.

pub mod render;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use sta_node::control::{self, Controller, PeerSort, Reply};
use tokio_util::sync::CancellationToken;

use render::DashData;

/// Where the dashboard gets its replies.
pub enum Source {
    Api { addr: String, token: Option<String> },
    Local(Box<Controller>),
}

impl Source {
    async fn ask(&mut self, line: &str) -> Result<Reply, String> {
        match self {
            Source::Api { addr, token } => crate::cmd::ctl::send(addr, token.as_deref(), line)
                .await
                .map_err(|e| format!("{e:#}")),
            Source::Local(c) => match control::parse(line) {
                Ok(cmd) => c.execute(cmd).await,
                Err(e) => Err(e),
            },
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Control API address [default: from the node's state folder, else 127.0.0.1:6880].
    #[arg(long, env = "STA_API", value_name = "ADDR")]
    pub addr: Option<String>,
    #[arg(long, env = "STA_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[arg(long, env = "STA_API_TOKEN")]
    pub token: Option<String>,
}

/// `sta top`.
pub fn run_top(a: Args) -> anyhow::Result<ExitCode> {
    let addr = crate::cmd::ctl::api_addr(a.addr, a.state_dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Fail before taking over the screen if nothing answers.
    rt.block_on(crate::cmd::ctl::send(&addr, a.token.as_deref(), "torrents"))?;
    let leave = run(
        &rt.handle().clone(),
        Source::Api {
            addr,
            token: a.token,
        },
        &CancellationToken::new(),
    )?;
    Ok(match leave {
        Leave::Interrupted => ExitCode::from(130),
        Leave::Quit | Leave::Shutdown => ExitCode::SUCCESS,
    })
}

/// Why the dashboard ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// `q` or Esc.
    Quit,
    /// Ctrl-C (a key in raw mode, not a signal).
    Interrupted,
    /// The owner cancelled `shutdown` (the node is stopping by itself).
    Shutdown,
}

/// The terminal in raw mode on the alternate screen, restored when dropped:
/// on a normal return, on `?`, and while unwinding (ratatui's panic hook
/// restores it too when the panic aborts instead).
struct Screen(ratatui::DefaultTerminal);

impl Screen {
    fn take() -> Self {
        Screen(ratatui::init())
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Runs the dashboard until `q`, Ctrl-C or `shutdown`, and says which. The
/// terminal is restored on every way out.
pub fn run(
    rt: &tokio::runtime::Handle,
    mut src: Source,
    shutdown: &CancellationToken,
) -> anyhow::Result<Leave> {
    let mut screen = Screen::take();
    let mut d = DashData {
        selected: 1,
        sort: Some(PeerSort::Down),
        ..Default::default()
    };
    let mut last = Instant::now() - Duration::from_secs(10);
    loop {
        // Checked at least every 250 ms (the key poll below), so an owner
        // that stops waits no longer than that for the screen back.
        if shutdown.is_cancelled() {
            return Ok(Leave::Shutdown);
        }
        if last.elapsed() >= Duration::from_millis(900) {
            last = Instant::now();
            refresh(rt, &mut src, &mut d);
        }
        screen.0.draw(|f| render::draw(f, &d))?;
        if !event::poll(Duration::from_millis(250))? {
            continue;
        }
        let Event::Key(k) = event::read()? else {
            continue;
        };
        if k.kind != KeyEventKind::Press {
            continue;
        }
        let n = d.torrents.len().max(1);
        match k.code {
            KeyCode::Char('q') | KeyCode::Esc => return Ok(Leave::Quit),
            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                return Ok(Leave::Interrupted);
            }
            KeyCode::Char('?') | KeyCode::Char('h') => d.help = !d.help,
            KeyCode::Right | KeyCode::Tab => d.selected = d.selected % n + 1,
            KeyCode::Left | KeyCode::BackTab => {
                d.selected = if d.selected <= 1 { n } else { d.selected - 1 }
            }
            KeyCode::Char('s') => {
                d.sort = Some(match d.sort.unwrap_or(PeerSort::Down) {
                    PeerSort::Down => PeerSort::Up,
                    PeerSort::Up => PeerSort::Progress,
                    PeerSort::Progress => PeerSort::Addr,
                    PeerSort::Addr => PeerSort::Down,
                })
            }
            KeyCode::Char('p') => {
                d.message = Some(done(
                    rt.block_on(src.ask(&format!("pause #{}", d.selected))),
                ))
            }
            KeyCode::Char('r') => {
                d.message = Some(done(
                    rt.block_on(src.ask(&format!("resume #{}", d.selected))),
                ))
            }
            _ => {}
        }
        last = Instant::now() - Duration::from_secs(10);
    }
}

/// `sta node --tui`: the dashboard on a thread of its own, in the node's
/// process. The node stops it (and gets the terminal back) on every way out
/// through [`LocalDashboard::stop`], or by dropping it on an early error.
pub struct LocalDashboard {
    shutdown: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LocalDashboard {
    /// `q` cancels `quit` (a graceful stop, exit 0); Ctrl-C cancels
    /// `interrupt` (exit 130).
    pub fn start(
        rt: tokio::runtime::Handle,
        controller: Controller,
        quit: CancellationToken,
        interrupt: CancellationToken,
    ) -> anyhow::Result<Self> {
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name("dashboard".into())
            .spawn(move || {
                match run(&rt, Source::Local(Box::new(controller)), &stop) {
                    Ok(Leave::Quit) => quit.cancel(),
                    Ok(Leave::Interrupted) => interrupt.cancel(),
                    Ok(Leave::Shutdown) => {}
                    Err(e) => {
                        // The screen is back by now: the message stays readable.
                        eprintln!("dashboard: {e:#}");
                        quit.cancel();
                    }
                }
            })?;
        Ok(LocalDashboard {
            shutdown,
            thread: Some(thread),
        })
    }

    /// Tells the dashboard to leave and waits until the terminal is restored.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

impl Drop for LocalDashboard {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            // Only on an early error of the node: wait (at most one key poll)
            // so the process never ends with the terminal still raw.
            tokio::task::block_in_place(|| {
                let _ = t.join();
            });
        }
    }
}

fn done(r: Result<Reply, String>) -> String {
    match r {
        Ok(Reply::Done { message }) => message,
        Ok(_) => String::new(),
        Err(e) => format!("error: {e}"),
    }
}

fn refresh(rt: &tokio::runtime::Handle, src: &mut Source, d: &mut DashData) {
    let sort = match d.sort.unwrap_or(PeerSort::Down) {
        PeerSort::Down => "down",
        PeerSort::Up => "up",
        PeerSort::Progress => "progress",
        PeerSort::Addr => "addr",
    };
    let t = d.selected;
    let r = rt.block_on(async {
        let torrents = src.ask("torrents").await?;
        let status = src.ask(&format!("status #{t}")).await?;
        let peers = src.ask(&format!("peers {sort} #{t}")).await?;
        let pieces = src.ask(&format!("pieces #{t}")).await?;
        Ok::<_, String>((torrents, status, peers, pieces))
    });
    match r {
        Ok((
            Reply::Torrents { torrents },
            Reply::Status { snapshot, .. },
            Reply::Peers { peers, .. },
            Reply::Pieces { states, .. },
        )) => {
            d.torrents = torrents;
            let mut s = *snapshot;
            s.peers = peers;
            d.status = Some(s);
            d.pieces = states;
            if d.message
                .as_deref()
                .is_some_and(|m| m.starts_with("node unreachable"))
            {
                d.message = None;
            }
        }
        Ok(_) => {}
        Err(e) => d.message = Some(format!("node unreachable: {e}")),
    }
}
