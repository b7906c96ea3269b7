//! `sta`: the command line. Each subcommand lives in `cmd/`; this file only
//! parses arguments, sets up logging and turns outcomes into exit codes
//! (0 done, 1 failed, 2 usage error, 130 interrupted).

mod cmd;
mod config;
mod dashboard;
mod logging;
mod output;
mod piece_map;
mod progress;
mod prompt;
mod runner;
mod tables;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sta",
    version,
    about = "A BitTorrent tracker and node: share files with many machines at once."
)]
struct Cli {
    #[command(flatten)]
    log: logging::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a .torrent file from a file or folder.
    Create(cmd::create::Args),
    /// Show what a .torrent file or magnet link holds.
    Info(cmd::info::Args),
    /// Run a tracker: HTTP and UDP announce, scrape, stats pages, metrics, torrent catalog.
    Tracker(cmd::tracker::Args),
    /// Upload a .torrent to an sta tracker's catalog (for magnet links).
    Publish(cmd::publish::Args),
    /// Run a node: seed and download one or more torrents.
    Node(cmd::node::NodeCmd),
    /// Seed a torrent, or a file or folder (a torrent is made next to it).
    Seed(cmd::node::SeedCmd),
    /// Download a torrent (then seed it, unless --exit-on-complete).
    Get(cmd::node::GetCmd),
    /// A whole swarm on this machine: tracker, seeder and leechers on loopback.
    Swarm(cmd::swarm::Args),
    /// Send a prompt command (status, peers, pieces, pause, quit, ...) to a running node.
    Ctl(cmd::ctl::Args),
    /// Live dashboard of a running node.
    Top(dashboard::Args),
    /// A multi-host lab on this machine: hosts in network namespaces with shaped links (root).
    Lab(cmd::lab::Args),
    /// sta.toml: print a commented example, or check a file.
    #[command(subcommand)]
    Config(config::ConfigCmd),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let _guard = match logging::init(&cli.log) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("sta: {e:#}");
            return std::process::ExitCode::from(1);
        }
    };
    let result = match cli.command {
        Command::Create(a) => cmd::create::run(a),
        Command::Info(a) => cmd::info::run(a),
        Command::Tracker(a) => cmd::tracker::run(a),
        Command::Publish(a) => cmd::publish::run(a),
        Command::Node(a) => cmd::node::run_node(a),
        Command::Seed(a) => cmd::node::run_seed(a),
        Command::Get(a) => cmd::node::run_get(a),
        Command::Swarm(a) => cmd::swarm::run(a),
        Command::Ctl(a) => cmd::ctl::run(a),
        Command::Top(a) => dashboard::run_top(a),
        Command::Lab(a) => cmd::lab::run(a),
        Command::Config(c) => config::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sta: error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
