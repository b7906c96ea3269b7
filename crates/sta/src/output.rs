//! Shared output conventions: JSON lines on stdout for scripts, human text on
//! a terminal.

use std::io::{IsTerminal, Write};

/// Whether stdout should carry JSON lines: asked for, or not a terminal.
pub fn json_mode(flag: bool) -> bool {
    flag || !std::io::stdout().is_terminal()
}

/// Prints one JSON value as a line and flushes, so readers see it at once.
pub fn json_line(v: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    // A closed stdout must not kill a node: ignore write errors here.
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}
