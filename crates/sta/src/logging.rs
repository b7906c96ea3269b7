//! Logs go to stderr (or `--log-file`), never to stdout: stdout carries the
//! human output or, for scripts, JSON lines only.

use std::path::PathBuf;

use tracing_subscriber::EnvFilter;

#[derive(clap::Args, Debug, Clone)]
pub struct LogArgs {
    /// More log output (-v info for sta, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors in the log.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Write the log to this file instead of stderr.
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

pub struct Guard;

pub fn init(args: &LogArgs) -> anyhow::Result<Guard> {
    let level = if args.quiet {
        "error"
    } else {
        match args.verbose {
            0 => "warn",
            1 => "warn,sta=info,sta_node=info,sta_tracker=info",
            2 => "info,sta=debug,sta_node=debug,sta_tracker=debug",
            _ => "debug,sta=trace,sta_node=trace,sta_tracker=trace",
        }
    };
    // RUST_LOG wins over -v/-q when set.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true);
    match &args.log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| anyhow::anyhow!("cannot open log file {}: {e}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(Guard)
}
