//! One peer: its protocol state ([`state`], sans-I/O) and the tasks that move
//! its bytes ([`conn`]).

pub mod conn;
pub mod state;
