//! Shared output conventions: JSON lines on stdout for scripts, human text on
//! a terminal.

use std::io::Write;

/// Prints one JSON value as a line and flushes, so readers see it at once.
pub fn json_line(v: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    // A closed stdout must not kill a node: ignore write errors here.
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}
