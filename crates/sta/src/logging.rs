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

type Printer = Box<dyn FnMut(String) + Send>;

/// When the prompt is active, log lines go through its printer so they appear
/// above the prompt instead of garbling it.
static PRINTER: std::sync::Mutex<Option<Printer>> = std::sync::Mutex::new(None);

pub fn set_printer(p: Option<Printer>) {
    *PRINTER.lock().unwrap_or_else(|e| e.into_inner()) = p;
}

/// Prints a line above the prompt if there is one, else on stdout.
pub fn print_line(s: String) {
    let mut g = PRINTER.lock().unwrap_or_else(|e| e.into_inner());
    match g.as_mut() {
        Some(p) => p(s),
        None => println!("{s}"),
    }
}

/// Collects one formatted log event, then hands it to the prompt's printer
/// or to stderr.
struct EventWriter(Vec<u8>);

impl std::io::Write for EventWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0).trim_end().to_string();
        if text.is_empty() {
            return;
        }
        let mut g = PRINTER.lock().unwrap_or_else(|e| e.into_inner());
        // A redirected stderr keeps the log; only a terminal's goes above the prompt.
        use std::io::IsTerminal;
        match g.as_mut().filter(|_| std::io::stderr().is_terminal()) {
            Some(p) => p(text),
            None => {
                use std::io::Write;
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            }
        }
    }
}

pub fn init(args: &LogArgs) -> anyhow::Result<Guard> {
    let level = if args.quiet {
        "error"
    } else {
        // Concise progress lines (stdout not a terminal) are info, shown unless -q.
        match args.verbose {
            0 => "warn,sta::progress=info",
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
        None => builder.with_writer(|| EventWriter(Vec::new())).init(),
    }
    Ok(Guard)
}
