//! sta-node: the BitTorrent engine.
//!
//! A session owns one listening port and any number of torrents. Each torrent
//! is an actor that owns its piece picker, choker, peer table and statistics;
//! peer connections and disk work run as tasks around it and talk to it
//! through bounded channels. The picker, choker and peer state machine are
//! sans-I/O: time and randomness are passed in, so tests drive them directly.
//! The UI reads [`snapshot`]s from a handle and never touches engine state.

pub mod api;
pub mod bitfield;
pub mod choker;
pub mod config;
pub mod control;
pub mod create;
pub mod http_body;
pub mod peer;
pub mod picker;
pub mod rate;
pub mod ratelimit;
pub mod resume;
pub mod session;
pub mod snapshot;
pub mod source;
pub mod storage;
pub mod torrent;
pub mod tracker_client;
pub mod types;
pub mod verify;
