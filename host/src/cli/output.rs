//! The `--json` documents, as types (`docs/json.md` describes them): each
//! built from the host's data and serialised once, and where a command also
//! prints a table, the table reads the same values. The plan and the apply
//! report are the library's own types (`plan::Plan`, `apply::ApplyReport`).

use crate::apply::ApplyReport;
use crate::links::{LinkEdit, LinkHow, StoredLink, Unlinked};
use crate::model::{Account, ConnectionReport, Descriptor, Group};
use crate::plugins::Session;
use crate::runtime::LoadedComponent;
use crate::runtime::cache::CacheOutcome;
use crate::state::{AccountError, RunRecord};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The version of every `--json` document here (`format` in each); the plan
/// and the explanation carry their own (`plan::FORMAT`, `EXPLAIN_FORMAT`).
pub const JSON_FORMAT: u32 = 1;

/// `roster check --json`.
#[derive(Serialize)]
pub struct Check<'a> {
    pub format: u32,
    pub pipeline: &'a str,
    pub source: &'a str,
    pub target: &'a str,
    pub state: String,
    pub stages: Vec<&'static str>,
    pub connectors: Vec<Grant<'a>>,
}

/// What one connector is and is granted.
#[derive(Serialize)]
pub struct Grant<'a> {
    pub name: &'a str,
    pub role: Role,
    pub plugin: &'a str,
    pub version: &'a str,
    pub component: &'a Path,
    pub contract: &'static str,
    pub cache: CacheOutcome,
    pub allowed_hosts: Vec<String>,
    pub directory: Option<&'a Path>,
    pub directory_read_only: bool,
    pub memory_mb: usize,
    pub call_timeout_secs: u64,
    pub http_timeout_secs: u64,
    pub concurrency: usize,
    pub rate_limit: Option<RateLimit>,
}

#[derive(Clone, Copy, Serialize, PartialEq, Eq, strum::IntoStaticStr)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Role {
    Source,
    Target,
    Unused,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Serialize)]
pub struct RateLimit {
    pub requests: u32,
    pub per_seconds: f64,
}

impl<'a> Check<'a> {
    pub fn of(session: &'a Session) -> Check<'a> {
        let p = &session.pipeline;
        let connectors = p
            .connectors
            .iter()
            .map(|(name, spec)| {
                let plugin = &session.plugins[name];
                let grants = &spec.grants;
                let role = match name {
                    n if *n == p.source => Role::Source,
                    n if *n == p.target => Role::Target,
                    _ => Role::Unused,
                };
                Grant {
                    name,
                    role,
                    plugin: &plugin.descriptor.name,
                    version: &plugin.descriptor.version,
                    component: &plugin.component.path,
                    contract: plugin.component.contract.as_str(),
                    cache: plugin.component.cache,
                    allowed_hosts: grants.http.allowed.iter().map(|h| h.to_string()).collect(),
                    directory: grants.directory.as_deref(),
                    directory_read_only: grants.directory_read_only,
                    memory_mb: grants.memory >> 20,
                    call_timeout_secs: grants.call_timeout.as_secs(),
                    http_timeout_secs: grants.http.timeout.as_secs(),
                    concurrency: grants.http.concurrency,
                    rate_limit: grants.http.rate.map(|(requests, per)| RateLimit {
                        requests,
                        per_seconds: per.as_secs_f64(),
                    }),
                }
            })
            .collect();
        Check {
            format: JSON_FORMAT,
            pipeline: &p.name,
            source: &p.source,
            target: &p.target,
            state: p.state_shown(),
            stages: p.stages.kinds(),
            connectors,
        }
    }
}

/// `roster read --json`.
#[derive(Serialize)]
pub struct Accounts<'a> {
    pub format: u32,
    pub connector: &'a str,
    pub accounts: &'a [Account],
    pub groups: &'a [Group],
}

/// `roster plugins list --json`.
#[derive(Serialize)]
pub struct PluginList<'a> {
    pub format: u32,
    pub directories: &'a [PathBuf],
    pub plugins: Vec<PluginFile<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum PluginFile<'a> {
    Usable {
        file: &'a Path,
        contract: &'a str,
        name: &'a str,
        version: &'a str,
        source: bool,
        target: bool,
    },
    Unusable {
        file: &'a Path,
        error: &'a str,
    },
}

/// `roster plugins inspect --json`.
#[derive(Serialize)]
pub struct Inspect<'a> {
    pub format: u32,
    pub file: &'a Path,
    pub digest: &'a str,
    pub contract: &'static str,
    pub cache: CacheOutcome,
    pub imports: &'a [String],
    pub descriptor: &'a Descriptor,
}

impl<'a> Inspect<'a> {
    pub fn of(component: &'a LoadedComponent, descriptor: &'a Descriptor) -> Self {
        Inspect {
            format: JSON_FORMAT,
            file: &component.path,
            digest: &component.digest,
            contract: component.contract.as_str(),
            cache: component.cache,
            imports: &component.imports,
            descriptor,
        }
    }
}

/// `roster test-connection --json`.
#[derive(Serialize)]
pub struct Connections<'a> {
    pub format: u32,
    pub connectors: Vec<Connection<'a>>,
}

#[derive(Serialize)]
pub struct Connection<'a> {
    pub connector: &'a str,
    pub checks: &'a [String],
    pub account: &'a Option<Account>,
}

impl<'a> Connections<'a> {
    pub fn of(reports: &'a [(String, ConnectionReport)]) -> Self {
        let connectors = reports
            .iter()
            .map(|(connector, r)| Connection {
                connector,
                checks: &r.checks,
                account: &r.account,
            })
            .collect();
        Connections {
            format: JSON_FORMAT,
            connectors,
        }
    }
}

/// `roster apply --json`.
#[derive(Serialize)]
pub struct Applied<'a> {
    pub format: u32,
    pub plan: &'a str,
    pub report: &'a ApplyReport,
}

/// `roster links --json`.
#[derive(Serialize)]
pub struct Links<'a> {
    pub format: u32,
    pub links: Vec<Link<'a>>,
    pub staged: Vec<Staged<'a>>,
    pub unlinked: &'a [Unlinked],
}

#[derive(Serialize)]
pub struct Link<'a> {
    pub source: &'a str,
    pub source_key: &'a str,
    pub target_id: &'a str,
    pub how: LinkHow,
    pub manual: bool,
    pub options: &'a BTreeMap<String, String>,
    pub overrides: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
pub struct Staged<'a> {
    pub source: &'a str,
    pub action: StagedAction,
    pub target_id: &'a Option<String>,
    pub options: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StagedAction {
    Link,
    Unlink,
}

impl<'a> Links<'a> {
    pub fn of(links: &'a [StoredLink], edits: &'a [LinkEdit], unlinked: &'a [Unlinked]) -> Self {
        let links = links
            .iter()
            .map(|l| Link {
                source: &l.source_email,
                source_key: &l.source_key,
                target_id: &l.target_id,
                how: l.how,
                manual: l.how == LinkHow::Manual,
                options: &l.options,
                overrides: &l.overrides,
            })
            .collect();
        let staged = edits
            .iter()
            .map(|e| Staged {
                source: &e.source,
                action: match e.target_id {
                    Some(_) => StagedAction::Link,
                    None => StagedAction::Unlink,
                },
                target_id: &e.target_id,
                options: &e.options,
            })
            .collect();
        Links {
            format: JSON_FORMAT,
            links,
            staged,
            unlinked,
        }
    }
}

/// `roster status --json`.
#[derive(Serialize)]
pub struct Status<'a> {
    pub format: u32,
    pub runs: &'a [RunRecord],
    pub links: &'a [StoredLink],
    pub errors: &'a [AccountError],
}

/// Any command's `--json` when it fails: `{"error": {"kind", "message", "hint", "exit_code"}}`.
#[derive(Serialize)]
pub struct Failed {
    pub format: u32,
    pub error: FailedError,
}

#[derive(Serialize)]
pub struct FailedError {
    /// input, connector, refused, store or busy.
    pub kind: &'static str,
    /// The connector's error kind, when a connector failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector_kind: Option<&'static str>,
    pub message: String,
    /// What to do about it, where there is one thing to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    pub exit_code: u8,
}

impl Failed {
    pub fn of(failure: &crate::error::Failure) -> Failed {
        use crate::error::Failure as F;
        let (kind, connector_kind) = match failure {
            F::Input(_) => ("input", None),
            F::Connector(e) => ("connector", Some(e.kind().as_str())),
            F::Refused(_) => ("refused", None),
            F::Store(_) => ("store", None),
            F::Busy(_) => ("busy", None),
        };
        Failed {
            format: JSON_FORMAT,
            error: FailedError {
                kind,
                connector_kind,
                message: failure.to_string(),
                hint: failure.hint(),
                exit_code: failure.exit_code(),
            },
        }
    }
}
