//! Why a command could not go on, as one type whose variant decides the
//! exit code. The table of exit codes lives here and nowhere else:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done (a plan shown, an apply finished, nothing to do) |
//! | 1 | an apply ran and some changes failed or were skipped; the rest applied |
//! | 2 | bad input or configuration, or a connector failed before anything was applied ([`Failure::Input`], [`Failure::Connector`]) |
//! | 3 | refused by a safety rule, e.g. removals above the threshold ([`Failure::Refused`]) |
//! | 4 | the state store failed or is damaged (empty, tables missing, pages corrupt, link rows edited): what it recorded stands, the rest was not applied; rerun once it is reachable, restore a damaged one ([`Failure::Store`]) |
//! | 5 | another apply holds the state's lock ([`Failure::Busy`]) |
//! | 6 | the plan has errors: accounts it cannot sync, named in its notes (`plan`; an `apply` made the rest) |
//! | 7 | a connector could not connect, was refused its credentials, or was rate-limited ([`Failure::Connector`] of kind connection, unauthorized or rate-limited) |
//! | 8 | `plan --detailed-exitcode` only: the plan has changes (0 when it has none) |
//! | 130 | interrupted (SIGINT or SIGTERM): the batch in flight was finished and recorded, the rest not sent; rerun to finish |
//!
//! Codes 1, 6, 8 and 130 are outcomes, not failures: the plan or the
//! apply's report says them. When several hold, the first of 130, 1, 6
//! applies.

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

/// Exit code of a plan with errors (and of the apply of one).
pub const EXIT_PLAN_ERRORS: u8 = 6;

/// Exit code of `plan --detailed-exitcode` when the plan has changes.
pub const EXIT_CHANGES_PENDING: u8 = 8;

/// The exit codes, for `--help`: the table above, in one line each.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    done: a plan shown, an apply finished, nothing to do
  1    apply: some changes failed or were skipped; the rest applied
  2    bad input or configuration, or a connector failed
  3    refused by a safety rule (removals above the threshold)
  4    the state store failed or is damaged; rerun once it is reachable
  5    another apply holds the state's lock
  6    the plan has errors: accounts it cannot sync (see its notes)
  7    a connector could not connect, was refused its credentials, or was rate-limited
  8    plan --detailed-exitcode: the plan has changes
  130  interrupted; rerun to finish";

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Connector(e) if e.unreachable() => 7,
            Failure::Input(_) | Failure::Connector(_) => 2,
            Failure::Refused(_) => 3,
            Failure::Store(_) => 4,
            Failure::Busy(_) => 5,
        }
    }

    /// What to do about it, where there is one thing to say.
    pub fn hint(&self) -> Option<String> {
        use crate::model::ErrorKind as K;
        Some(match self {
            Failure::Input(_) => return None,
            Failure::Connector(e) => match e.kind() {
                K::Unauthorized => format!(
                    "check the credentials in the pipeline's `{}` connector (the `${{env:…}}` secrets it names) and what they are allowed; `roster test-connection PIPELINE` tries them",
                    e.connector()
                ),
                K::Connection => format!(
                    "check the `{}` connector's URL and the network; `roster test-connection PIPELINE` tries it",
                    e.connector()
                ),
                K::RateLimited => "the service is limiting requests: rerun later, or lower the connector's `rate_limit`".to_string(),
                _ => return None,
            },
            Failure::Refused(_) => "review the plan; if the removals are intended, apply with --allow-removals (or raise the sync stage's thresholds)".to_string(),
            Failure::Store(_) => "what the state recorded stands; rerun once it is reachable (nothing applied is sent again); a damaged state is never written to: restore it from a backup".to_string(),
            Failure::Busy(_) => "wait for that apply to finish; a lock whose process has died is taken over by the next run".to_string(),
        })
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
            LockError::Io { .. } | LockError::Server { .. } => {
                Failure::Store(anyhow::Error::from(e).into())
            }
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

    fn answered(kind: crate::model::ErrorKind) -> Failure {
        Failure::Connector(CallError::Answered {
            connector: "zivver".into(),
            what: "read-accounts",
            error: crate::model::ConnectorError {
                kind,
                message: "m".into(),
            },
        })
    }

    #[test]
    fn unreachable_connectors_have_their_own_code() {
        use crate::model::ErrorKind as K;
        for kind in [K::Connection, K::Unauthorized, K::RateLimited] {
            let f = answered(kind);
            assert_eq!(f.exit_code(), 7, "{kind:?}");
            assert!(f.hint().is_some_and(|h| !h.is_empty()), "{kind:?}");
        }
        for kind in [K::Invalid, K::Conflict, K::Other] {
            assert_eq!(answered(kind).exit_code(), 2, "{kind:?}");
        }
        assert!(
            answered(K::Unauthorized)
                .hint()
                .unwrap()
                .contains("`zivver`")
        );
    }
}
