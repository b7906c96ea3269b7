//! One module per subcommand.

pub mod create;
pub mod ctl;
pub mod info;
pub mod node;
pub mod swarm;
mod swarm_procs;
mod swarm_view;
