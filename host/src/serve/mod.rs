//! `roster serve`: pipelines run on schedules by any number of nodes that
//! share one PostgreSQL database (docs/service.md). Runs are jobs in
//! apalis's PostgreSQL queue; each run is the library call the CLI makes.

pub mod api;
pub mod approve;
pub mod budget;
pub mod config;
pub mod console;
pub mod db;
pub mod job;
pub mod metrics;
pub mod node;
pub mod notify;
pub mod password;
pub mod reads;
pub mod schedule;
pub mod tls;
pub mod token;
