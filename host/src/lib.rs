//! Roster: keeps users and groups in sync between a mail platform and the
//! systems that depend on it, through connectors that run as sandboxed
//! WebAssembly components.

pub mod apply;
pub mod cli;
pub mod error;
pub mod links;
pub mod model;
pub mod operation;
pub mod pipeline;
pub mod plan;
pub mod plugins;
pub mod runtime;
pub mod serve;
pub mod state;
