//! What each fuzz target asserts about one input, shared by the libFuzzer
//! entries in `fuzz_targets/` and by `tests/fuzz_corpus.rs` in sta-proto
//! (which mounts this file with `#[path]`), so the two cannot drift.
//!
//! Every `check` takes arbitrary bytes and panics only when a parser breaks a
//! promise: a panic inside the parser itself, an accepted value that breaks
//! an invariant, or an encode→parse round trip that does not give it back.
//! Paths inside refer to `super::`/`sta_proto::` only, never `crate::`, so the
//! file compiles as a crate root and as a module alike.

pub mod bencode;
pub mod http_tracker;
pub mod magnet;
pub mod metainfo;
pub mod udp_tracker;
pub mod wire;

/// One target's checks: panics when the input breaks a parser's promise.
pub type Check = fn(&[u8]);

/// Every target by the name of its corpus directory.
pub const TARGETS: &[(&str, Check)] = &[
    ("bencode", bencode::check),
    ("metainfo", metainfo::check),
    ("magnet", magnet::check),
    ("wire", wire::check),
    ("http_tracker", http_tracker::check),
    ("udp_tracker", udp_tracker::check),
];
