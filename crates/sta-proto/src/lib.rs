//! sta-proto: the BitTorrent protocol as plain data, with no I/O.
//!
//! Bytes go in, typed values come out (and the other way round). Nothing in this
//! crate opens a socket or a file or reads a clock, so every parser here can be
//! driven by unit tests, property tests and fuzzers alone. The engine
//! (`sta-node`) and the tracker (`sta-tracker`) own all I/O.
//!
//! - [`bencode`]: a depth and length pre-scan in front of `bt_bencode`.
//! - [`metainfo`]: `.torrent` files (BEP 3, 12, 27, 47 hybrids through v1 fields).
//! - [`magnet`]: magnet links (BEP 9 form).
//! - [`wire`]: peer wire messages and their `tokio_util` codec (BEP 3).
//! - [`tracker`]: announce and scrape over HTTP (BEP 3, 23, 7) and UDP (BEP 15).
//! - [`units`]: the one parser for sizes and rates used by every flag.

pub mod bencode;
pub mod magnet;
pub mod metainfo;
pub mod tracker;
mod types;
pub mod units;
pub mod wire;

pub use types::{HexError, InfoHash, PeerId};
