//! Helpers for sta's end-to-end and interop tests: start a process with stdin
//! closed, wait for its `ready` JSON line, read its JSON lines with a deadline,
//! stop it by PID. Every wait here has a deadline; nothing sleeps to
//! synchronise.

pub mod files;
pub mod http;
pub mod peer;
pub mod proc;
pub mod reference;
pub mod sta;
pub mod tools;
pub mod udp;

pub use files::{random_file, sha256_file};
pub use proc::{Proc, wait_until};
pub use tools::require_tool;
