//! Why a command could not go on, as one type whose variant decides the
//! exit code. The table of exit codes lives here and nowhere else:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done (a plan shown, an apply finished, nothing to do) |
//! | 1 | an apply ran and some changes failed or were skipped; the rest applied |
//! | 2 | bad input or configuration, or a connector failed before anything was applied ([`Failure::Input`], [`Failure::Connector`]) |
//! | 3 | refused by a safety rule, e.g. removals above the threshold ([`Failure::Refused`]) |
//! | 4 | the state store failed: what it recorded stands, the rest was not applied; rerun once it is reachable ([`Failure::Store`]) |
//! | 5 | another apply holds the state's lock ([`Failure::Busy`]) |
//! | 130 | interrupted (SIGINT or SIGTERM): the batch in flight was finished and recorded, the rest not sent; rerun to finish |
//!
//! Codes 1 and 130 are outcomes, not failures: the apply's report says them.

use crate::pipeline::{Diagnostic, Diagnostics};
use crate::runtime::CallError;
use crate::state::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Bad input or configuration (exit 2).
    #[error("{0}")]
    Input(String),
    /// A connector failed (exit 2: nothing was applied by this step).
    #[error(transparent)]
    Connector(#[from] CallError),
    /// Refused by a safety rule (exit 3).
    #[error("{0}")]
    Refused(String),
    /// The state store failed (exit 4).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another apply holds the state (exit 5).
    #[error("{0}")]
    Busy(String),
}

/// Exit code of an apply where some changes failed or were skipped.
pub const EXIT_PARTIAL: u8 = 1;

/// Exit code of an apply stopped by SIGINT or SIGTERM.
pub const EXIT_INTERRUPTED: u8 = 130;

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Input(_) | Failure::Connector(_) => 2,
            Failure::Refused(_) => 3,
            Failure::Store(_) => 4,
            Failure::Busy(_) => 5,
        }
    }

    /// Bad input (a component that will not load or start, a cache
    /// directory that cannot be made), with its chain of causes.
    pub fn bad_input(e: anyhow::Error) -> Failure {
        Failure::Input(format!("{e:#}"))
    }
}

impl From<crate::state::lock::LockError> for Failure {
    fn from(e: crate::state::lock::LockError) -> Self {
        use crate::state::lock::LockError;
        match e {
            LockError::Held(_) => Failure::Busy(e.to_string()),
            LockError::Io { .. } => Failure::Store(anyhow::Error::from(e).into()),
        }
    }
}

impl From<Diagnostics> for Failure {
    fn from(d: Diagnostics) -> Self {
        Failure::Input(d.to_string())
    }
}

impl From<Diagnostic> for Failure {
    fn from(d: Diagnostic) -> Self {
        Failure::Input(d.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_failure_is_not_bad_input() {
        let store = Failure::from(StoreError::from(anyhow::anyhow!("disk I/O error")));
        assert_eq!(store.exit_code(), 4);
        assert_eq!(store.to_string(), "disk I/O error");
        assert_eq!(Failure::Input("x".into()).exit_code(), 2);
        assert_eq!(Failure::Refused("x".into()).exit_code(), 3);
    }
}
