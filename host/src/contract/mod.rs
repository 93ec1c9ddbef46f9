//! The connector contracts this host serves, one module per WIT version
//! (`wit/since_vX.Y.Z`), so components built for an older contract keep
//! loading after a new one is added. The version is read from the component
//! before it is compiled ([`version`]).

pub mod v0_1_0;
pub mod version;

/// The contract versions this host can run.
pub const SUPPORTED: &[&str] = &["0.1.0"];

/// A contract version this host serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contract {
    V0_1_0,
}

impl Contract {
    pub fn parse(version: &str) -> Option<Contract> {
        match version {
            "0.1.0" => Some(Contract::V0_1_0),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Contract::V0_1_0 => "0.1.0",
        }
    }
}
