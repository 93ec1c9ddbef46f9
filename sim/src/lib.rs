//! Stateful simulators of the vendor APIs Roster's connectors speak.
//!
//! No machine here reaches the real services, so every connector is tested
//! against a simulator the project owns: seeded from JSON in the real APIs'
//! shapes (`sim/fixtures/`, copied verbatim from public samples), stateful
//! (writes are visible to later reads, delta tokens track changes), and able
//! to misbehave on demand (latency, throttling, 5xx, dropped connections,
//! malformed bodies) so the connectors' fault handling is exercised for real.
//!
//! Each simulator is a library (tests start it in-process on a loopback
//! port) and a subcommand of the `roster-sim` binary (the demo and the
//! benchmarks start it as a process).

// Route helpers hand back the finished error `Response` early; boxing it
// would only add noise to every handler.
#![allow(clippy::result_large_err)]

pub mod dynamics;
pub mod entra;
pub mod faults;
pub mod m365;
pub mod replay;
pub mod seed;
pub mod server;
pub mod superoffice;
pub mod zivver;

pub use faults::{FaultGate, Faults, Throttle};
pub use server::Running;
