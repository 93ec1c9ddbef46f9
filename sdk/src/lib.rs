//! The Roster connector SDK.
//!
//! A connector is a type that implements [`Connector`] and is exported with
//! [`export_connector!`]. Built for `wasm32-wasip2` it becomes a component the
//! Roster host loads; built natively (for unit tests and benchmarks) the same
//! code runs against the [`native`] harness, which gives it real HTTP, a clock
//! and logging without wasm.
//!
//! ```ignore
//! use roster_sdk::prelude::*;
//!
//! struct Hello;
//!
//! impl Connector for Hello {
//!     fn describe() -> Descriptor {
//!         Descriptor::new("hello", env!("CARGO_PKG_VERSION")).source()
//!     }
//!     fn configure(_config: Config) -> Result<Self> {
//!         Ok(Hello)
//!     }
//! }
//!
//! roster_sdk::export_connector!(Hello);
//! ```
//!
//! `docs/writing-a-connector.md` walks through a whole connector.

// The generated bindings name this crate by its public path.
extern crate self as roster_sdk;

#[doc(hidden)]
#[path = "bindings.rs"]
pub mod __bindings;
use __bindings as bindings;
pub mod attr;
mod config;
mod connector;
mod descriptor;
mod error;
#[doc(hidden)]
pub mod export;
pub mod fs;
pub mod host;
pub mod http;
pub mod memo;
#[cfg(not(target_arch = "wasm32"))]
pub mod native;
pub mod oauth;
pub mod paging;
pub mod scim;

pub use bindings::types::{
    Account, AccountKind, AccountPage, AccountRef, Applied, Attribute, Change, ChangeResult,
    ConfigEntry, ConfigField, ConnectionReport, Descriptor, Error, ErrorKind, Field, Group,
    GroupPage, MergeGuest, Operation, PageRequest, SeatCount, Update,
};
pub use config::Config;
pub use connector::Connector;
pub use error::Result;

/// The contract version this SDK builds components for.
pub const CONTRACT_VERSION: &str = "0.1.0";

/// Everything a connector usually needs, in one import.
pub mod prelude {
    pub use crate::http::{HttpClient, Request, Response};
    pub use crate::{
        Account, AccountKind, AccountPage, Applied, Attribute, Change, ChangeResult, Config,
        ConnectionReport, Connector, Descriptor, Error, ErrorKind, Field, Group, GroupPage,
        Operation, PageRequest, Result, SeatCount, host,
    };
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}
