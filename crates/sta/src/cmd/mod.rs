//! One module per subcommand.

pub mod create;
pub mod ctl;
pub mod info;
pub mod lab;
mod lab_net;
pub mod node;
pub mod publish;
pub mod swarm;
mod swarm_procs;
mod swarm_view;
mod swarm_work;
pub mod tracker;
