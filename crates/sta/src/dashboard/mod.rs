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
    run(
        &rt.handle().clone(),
        Source::Api {
            addr,
            token: a.token,
        },
        false,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the dashboard until `q` (or Ctrl-C). With `quit_node`, `q` stops the node too.
pub fn run(rt: &tokio::runtime::Handle, mut src: Source, quit_node: bool) -> anyhow::Result<()> {
    let mut terminal = ratatui::init();
    let result = (|| -> anyhow::Result<()> {
        let mut d = DashData {
            selected: 1,
            sort: Some(PeerSort::Down),
            ..Default::default()
        };
        let mut last = Instant::now() - Duration::from_secs(10);
        loop {
            if last.elapsed() >= Duration::from_millis(900) {
                last = Instant::now();
                refresh(rt, &mut src, &mut d);
            }
            terminal.draw(|f| render::draw(f, &d))?;
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
                KeyCode::Char('q') | KeyCode::Esc => break,
                KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => break,
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
        Ok(())
    })();
    ratatui::restore();
    if quit_node {
        let _ = rt.block_on(src.ask("quit"));
    }
    result
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
