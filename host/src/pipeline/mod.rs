//! The pipeline file: which connectors, what each is granted, and the ordered
//! stages. Loading it checks everything that can be checked without running a
//! connector and reports each problem at its file, line and column.

pub mod diagnostic;
pub mod file;
pub mod secrets;

use crate::runtime::Grants;
use crate::runtime::http::HostPattern;
pub use diagnostic::{Diagnostic, Diagnostics, did_you_mean};
pub use file::{
    FilterStage, LinkBy, LinkStage, ManualLink, MergeMode, MergeStage, Removal, Stage, Stages,
    SyncStage, UnlinkedPolicy, Unmatched,
};
use file::{RawConnector, RawPipeline};
use secrets::Resolved;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Where something was written in the pipeline file.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Location {
    pub start: usize,
}

#[derive(Clone, Debug)]
pub enum PluginRef {
    Name(String),
    Path(PathBuf),
}

#[derive(Clone, Debug)]
pub struct ConfigValue {
    pub key: String,
    pub value: Resolved,
    pub location: Location,
}

#[derive(Clone, Debug)]
pub struct ConnectorSpec {
    pub name: String,
    pub plugin: PluginRef,
    pub plugin_location: Location,
    pub config: Vec<ConfigValue>,
    pub grants: Grants,
    pub location: Location,
}

/// The most ranks a pipeline may be split into.
pub const MAX_RANKS: u32 = 64;

#[derive(Clone, Debug)]
pub struct Pipeline {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub text: String,
    pub name: String,
    pub description: Option<String>,
    pub source: String,
    pub target: String,
    /// The SQLite file, when the state is not on a server.
    pub state_path: PathBuf,
    /// The state on PostgreSQL (`state = "postgres://…"` or
    /// `ROSTER_STATE_URL`); the file is not used then.
    pub state_url: Option<crate::state::PgLocation>,
    /// Whether the file (or `ROSTER_STATE_URL`) said where the state is;
    /// `roster serve` puts the others on its own database.
    pub state_named: bool,
    pub plugins_dir: Option<PathBuf>,
    pub batch_size: u32,
    /// How many ranks the accounts are split into (1: none).
    pub ranks: u32,
    pub connectors: BTreeMap<String, ConnectorSpec>,
    pub stages: Stages,
    /// A digest of the file's content; a saved plan is only applied to the
    /// pipeline it was made from.
    pub fingerprint: String,
}

impl Pipeline {
    /// Where the state is, as messages show it (a server URL without its
    /// credentials).
    pub fn state_shown(&self) -> String {
        match &self.state_url {
            Some(at) => at.shown(),
            None => self.state_path.display().to_string(),
        }
    }

    /// Whether a state exists yet (a server's is made when first opened).
    pub fn state_exists(&self) -> bool {
        self.state_url.is_some() || self.state_path.exists()
    }

    /// The pipeline's state store, opened (and created or migrated).
    pub fn open_state(
        &self,
    ) -> Result<Box<dyn crate::state::StateStore>, crate::state::StoreError> {
        Ok(match &self.state_url {
            Some(at) => Box::new(crate::state::PgStore::open(at)?),
            None => Box::new(crate::state::SqliteStore::open(&self.state_path)?),
        })
    }

    /// Takes the state's run lock: one apply per state, across processes
    /// and, on a server, across machines. Taken after [`Self::open_state`],
    /// which makes (or migrates) what the lock is kept in.
    pub fn lock_state(&self) -> Result<crate::state::lock::RunLock, crate::state::lock::LockError> {
        self.lock_state_for(None)
    }

    /// The run lock of one rank (`Some`), or of the whole state (`None`).
    /// Ranks apply side by side only on a server's state.
    pub fn lock_state_for(
        &self,
        rank: Option<u32>,
    ) -> Result<crate::state::lock::RunLock, crate::state::lock::LockError> {
        use crate::state::lock::{LockError, RunLock};
        match (&self.state_url, rank) {
            (Some(at), Some(r)) => RunLock::acquire_rank(at, r),
            (None, Some(_)) => Err(LockError::Server {
                at: self.state_shown(),
                message: "ranks are applied side by side only with the state on PostgreSQL".into(),
            }),
            (Some(at), None) => RunLock::acquire_on_server(at),
            (None, None) => RunLock::acquire(&self.state_path),
        }
    }

    pub fn load(path: &Path) -> Result<Pipeline, Diagnostics> {
        parse(path, &read(path)?)
    }

    /// The pipeline without resolving `${env:…}` / `${file:…}`: for commands
    /// that only read the state (`status`), so they need no secrets at hand.
    pub fn load_unresolved(path: &Path) -> Result<Pipeline, Diagnostics> {
        parse_with(path, &read(path)?, false)
    }

    /// A diagnostic at a location in this pipeline file.
    pub fn diagnostic(&self, at: Location, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(&self.path, &self.text, Some(at.start..at.start), message)
    }

    /// Where `key = …` is first written in the file (the start, when nowhere):
    /// for diagnostics about values the parsed stages no longer place.
    pub fn locate_key(&self, key: &str) -> Location {
        let mut from = 0;
        while let Some(at) = self.text[from..].find(key) {
            let start = from + at;
            let before = self.text[..start].chars().next_back();
            let after = self.text[start + key.len()..].trim_start();
            let word = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.'));
            if word && after.starts_with('=') {
                return Location { start };
            }
            from = start + key.len();
        }
        Location::default()
    }
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    errors: Vec<Diagnostic>,
    /// Resolve `${env:…}` and `${file:…}` (not for commands that need no secrets).
    resolve_secrets: bool,
}

impl Ctx<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.errors
            .push(Diagnostic::at(self.path, self.text, Some(span), message));
    }

    /// An error about the pipeline that no place in the file caused.
    fn error_outside(&mut self, message: impl Into<String>) {
        self.errors
            .push(Diagnostic::at(self.path, self.text, None, message));
    }
    fn toml_error(&mut self, e: toml::de::Error, what: &str) {
        let message = if what.is_empty() {
            e.message().to_string()
        } else {
            format!("{what}: {}", e.message())
        };
        self.error(e.span().unwrap_or(0..0), message);
    }
}

fn read(path: &Path) -> Result<String, Diagnostics> {
    Diagnostics::read(path, "pipeline file")
}

pub fn parse(path: &Path, text: &str) -> Result<Pipeline, Diagnostics> {
    parse_with(path, text, true)
}

fn parse_with(path: &Path, text: &str, resolve_secrets: bool) -> Result<Pipeline, Diagnostics> {
    let mut cx = Ctx {
        path,
        text,
        errors: vec![],
        resolve_secrets,
    };
    let root = DeTable::parse(text).map_err(|e| {
        Diagnostics(vec![Diagnostic::at(
            path,
            text,
            e.span(),
            e.message().to_string(),
        )])
    })?;
    let root_span = root.span();
    let mut table = root.into_inner();
    let stages_value = table.remove("stages");
    let raw =
        RawPipeline::deserialize(toml::de::Deserializer::from(Spanned::new(root_span, table)));
    let stages = Stages::from_checked(parse_stages(&mut cx, stages_value));
    let raw = match raw {
        Ok(raw) => raw,
        Err(e) => {
            cx.toml_error(e, "");
            return Err(Diagnostics(cx.errors));
        }
    };
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    let mut connectors = BTreeMap::new();
    for (name, spec) in raw.connectors {
        let location = Location {
            start: spec.span().start,
        };
        if let Some(spec) = connector_spec(&mut cx, &dir, &name, spec.into_inner(), location) {
            connectors.insert(name, spec);
        }
    }
    for (role, which) in [("source", &raw.source), ("target", &raw.target)] {
        if !connectors.contains_key(which.get_ref())
            && !cx
                .errors
                .iter()
                .any(|d| d.message.contains(which.get_ref().as_str()))
        {
            let known: Vec<&str> = connectors.keys().map(String::as_str).collect();
            cx.error(
                which.span(),
                format!(
                    "{role} `{}` is not a connector of this pipeline (known: {})",
                    which.get_ref(),
                    known.join(", ")
                ),
            );
        }
    }
    if raw.source.get_ref() == raw.target.get_ref() {
        cx.error(
            raw.target.span(),
            "source and target must be different connectors",
        );
    }
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("pipeline");
    let default_file = dir.join(format!("{stem}.state.sqlite"));
    let (state_path, state_url) = match &raw.state {
        Some(s) if is_server_url(s.get_ref()) => {
            match crate::state::PgLocation::parse(s.get_ref(), &raw.name) {
                // Not located: the snippet would show the password.
                Ok(at) if at.has_password() => {
                    cx.error_outside(
                        "state: the URL holds a password, which would show wherever the pipeline file does: give it in PGPASSWORD (or ~/.pgpass), or the whole URL in ROSTER_STATE_URL",
                    );
                    (default_file, None)
                }
                Ok(at) => (default_file, Some(at)),
                Err(e) => {
                    cx.error(s.span(), format!("state: {e:#}"));
                    (default_file, None)
                }
            }
        }
        Some(s) => (dir.join(s.get_ref()), None),
        // The service's shared database, for every pipeline that names
        // no state of its own.
        None => match std::env::var("ROSTER_STATE_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
        {
            Some(url) => match crate::state::PgLocation::parse(url.trim(), &raw.name) {
                Ok(at) => {
                    at.redact_password(crate::runtime::Redactor::global());
                    (default_file, Some(at))
                }
                Err(e) => {
                    cx.error_outside(format!("ROSTER_STATE_URL: {e:#}"));
                    (default_file, None)
                }
            },
            None => (default_file, None),
        },
    };
    let batch_size = match raw.apply.batch_size {
        Some(b) if *b.get_ref() == 0 => {
            cx.error(b.span(), "apply.batch_size must be at least 1");
            1
        }
        Some(b) => b.into_inner(),
        None => 100,
    };
    let ranks = match raw.apply.ranks {
        Some(r) if !(1..=MAX_RANKS).contains(r.get_ref()) => {
            cx.error(r.span(), format!("apply.ranks must be 1 to {MAX_RANKS}"));
            1
        }
        Some(r) => r.into_inner(),
        None => 1,
    };
    if !cx.errors.is_empty() {
        return Err(Diagnostics(cx.errors));
    }
    Ok(Pipeline {
        path: path.to_path_buf(),
        dir: dir.clone(),
        text: text.to_string(),
        name: raw.name,
        description: raw.description,
        source: raw.source.into_inner(),
        target: raw.target.into_inner(),
        state_path,
        state_named: state_url.is_some() || raw.state.is_some(),
        state_url,
        plugins_dir: raw.plugins_dir.map(|p| dir.join(p.get_ref())),
        batch_size,
        ranks,
        connectors,
        stages,
        fingerprint: hex::encode(&Sha256::digest(text.as_bytes())[..12]),
    })
}

/// `state = "postgres://…"` names a server, anything else a file.
fn is_server_url(state: &str) -> bool {
    state.starts_with("postgres://") || state.starts_with("postgresql://")
}

/// More stages than any pipeline needs; the order checks are quadratic.
const MAX_STAGES: usize = 1000;

fn parse_stages(cx: &mut Ctx, value: Option<Spanned<DeValue<'_>>>) -> Vec<Stage> {
    let Some(value) = value else {
        return vec![];
    };
    let span = value.span();
    let DeValue::Array(items) = value.into_inner() else {
        cx.error(
            span,
            "`stages` must be an array of tables: write each stage as [[stages]]",
        );
        return vec![];
    };
    if items.len() > MAX_STAGES {
        cx.error(
            span,
            format!(
                "{} stages: a pipeline has at most {MAX_STAGES} (filter stages can each name many domains, groups and OUs)",
                items.len()
            ),
        );
        return vec![];
    }
    let mut stages = Vec::new();
    for item in items {
        let span = item.span();
        let DeValue::Table(mut table) = item.into_inner() else {
            cx.error(span, "each stage must be a table");
            continue;
        };
        let Some(kind) = table.remove("type") else {
            cx.error(
                span,
                "stage has no `type` (one of filter, link, merge, sync)",
            );
            continue;
        };
        let kind_span = kind.span();
        let stage_de = || toml::de::Deserializer::from(Spanned::new(span.clone(), table.clone()));
        let parsed = match kind.get_ref() {
            DeValue::String(s) => match s.as_ref() {
                "filter" => FilterStage::deserialize(stage_de()).map(Stage::Filter),
                "link" => LinkStage::deserialize(stage_de()).map(Stage::Link),
                "merge" => MergeStage::deserialize(stage_de()).map(Stage::Merge),
                "sync" => SyncStage::deserialize(stage_de()).map(Stage::Sync),
                other => {
                    let kinds = ["filter", "link", "merge", "sync"].map(String::from);
                    let hint = did_you_mean(other, &kinds)
                        .map(|k| format!("; did you mean `{k}`?"))
                        .unwrap_or_default();
                    cx.error(
                        kind_span,
                        format!(
                            "unknown stage type `{other}`, expected filter, link, merge or sync{hint}"
                        ),
                    );
                    continue;
                }
            },
            _ => {
                cx.error(kind_span, "stage `type` must be a string");
                continue;
            }
        };
        match parsed {
            Ok(stage) => {
                check_order(cx, &stages, &stage, span.clone());
                check_unlinked(cx, &stages, &stage, span);
                stages.push(stage);
            }
            Err(e) => cx.toml_error(e, &format!("in {} stage", kind_name(&kind))),
        }
    }
    stages
}

fn kind_name(kind: &Spanned<DeValue<'_>>) -> String {
    match kind.get_ref() {
        DeValue::String(s) => s.to_string(),
        _ => "?".into(),
    }
}

/// Filters narrow the source before linking; link comes before merge and
/// sync; sync comes last; each of link, merge and sync at most once.
fn check_order(cx: &mut Ctx, before: &[Stage], stage: &Stage, span: Range<usize>) {
    let seen = |k: &str| before.iter().any(|s| s.kind() == k);
    let problem = match stage {
        Stage::Filter(_) if seen("link") => Some("a filter stage must come before the link stage"),
        Stage::Link(_) if seen("link") => Some("only one link stage is allowed"),
        Stage::Merge(_) if seen("merge") => Some("only one merge stage is allowed"),
        Stage::Merge(_) if !seen("link") => Some("the merge stage must come after the link stage"),
        Stage::Sync(_) if seen("sync") => Some("only one sync stage is allowed"),
        Stage::Sync(_) if !seen("link") => Some("the sync stage must come after the link stage"),
        _ if seen("sync") => Some("the sync stage must be the last stage"),
        _ => None,
    };
    if let Some(p) = problem {
        cx.error(span, p);
    }
}

/// `unlinked` other than keep acts on the claimed domains only: a filter
/// stage must name them (the sync stage is last, so every filter is before it).
fn check_unlinked(cx: &mut Ctx, before: &[Stage], stage: &Stage, span: Range<usize>) {
    let Stage::Sync(sync) = stage else {
        return;
    };
    let claimed = before.iter().any(|s| match s {
        Stage::Filter(f) => !f.claimed_domains.is_empty(),
        _ => false,
    });
    if sync.unlinked != UnlinkedPolicy::Keep && !claimed {
        cx.error(
            span,
            "in sync stage: `unlinked` acts only on the claimed domains: name them with `claimed_domains` in a filter stage (accounts outside them are never touched)",
        );
    }
}

fn connector_spec(
    cx: &mut Ctx,
    dir: &Path,
    name: &str,
    raw: RawConnector,
    location: Location,
) -> Option<ConnectorSpec> {
    let errors_before = cx.errors.len();
    let plugin_location = Location {
        start: raw.plugin.span().start,
    };
    let plugin_text = raw.plugin.get_ref().trim();
    let plugin = if plugin_text.is_empty() {
        cx.error(
            raw.plugin.span(),
            format!("connectors.{name}.plugin is empty"),
        );
        PluginRef::Name(String::new())
    } else if plugin_text.contains('/') || plugin_text.ends_with(".wasm") {
        PluginRef::Path(dir.join(plugin_text))
    } else {
        PluginRef::Name(plugin_text.to_string())
    };
    let mut config = Vec::new();
    for (key, value) in raw.config {
        let location = Location {
            start: value.span().start,
        };
        let span = value.span();
        let text = match value.into_inner() {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) if items.iter().all(|v| v.is_str()) => items
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(","),
            _ => {
                cx.error(span, format!("connectors.{name}.config.{key}: expected a string, number, boolean or list of strings"));
                continue;
            }
        };
        let resolved = match cx.resolve_secrets {
            true => secrets::resolve(&text, dir),
            false => Ok(secrets::Resolved {
                from_reference: text.contains("${"),
                value: String::new(),
            }),
        };
        match resolved {
            Ok(value) => config.push(ConfigValue {
                key,
                value,
                location,
            }),
            Err(e) => cx.error(span, format!("connectors.{name}.config.{key}: {e}")),
        }
    }
    let mut grants = Grants::default();
    for host in &raw.allowed_hosts {
        match host.get_ref().parse::<HostPattern>() {
            Ok(p) => grants.http.allowed.push(p),
            Err(e) => cx.error(host.span(), format!("connectors.{name}.allowed_hosts: {e}")),
        }
    }
    if let Some(d) = &raw.directory {
        let full = dir.join(d.get_ref());
        match cap_std::fs::Dir::open_ambient_dir(&full, cap_std::ambient_authority()) {
            Ok(_) => grants.directory = Some(full),
            Err(e) => cx.error(
                d.span(),
                format!(
                    "connectors.{name}.directory: cannot open {}: {e}",
                    full.display()
                ),
            ),
        }
    }
    grants.directory_read_only = raw.directory_read_only;
    apply_limits(cx, name, raw.limits, &mut grants);
    (cx.errors.len() == errors_before).then(|| ConnectorSpec {
        name: name.to_string(),
        plugin,
        plugin_location,
        config,
        grants,
        location,
    })
}

/// The largest value each limit may take: beyond these a value is a typo,
/// and some would overflow a clock or a semaphore.
const MAX_MEMORY_MB: u64 = 4096; // a wasm32 memory cannot be larger
const MAX_CALL_SECS: u64 = 7 * 24 * 3600;
const MAX_HTTP_SECS: u64 = 3600;
const MAX_RETRIES: u32 = 100;
const MAX_RETRY_WAIT_SECS: u64 = 24 * 3600;
const MAX_CONCURRENCY: usize = 1024;
const MAX_RATE_PERIOD_SECS: f64 = 24.0 * 3600.0;
const MAX_OUTPUT_KB: usize = 1 << 20;

fn apply_limits(cx: &mut Ctx, name: &str, limits: file::RawLimits, grants: &mut Grants) {
    let mut within = |v: &Spanned<u64>, field: &str, max: u64| -> Option<u64> {
        let n = *v.get_ref();
        if n == 0 || n > max {
            cx.error(
                v.span(),
                format!("connectors.{name}.limits.{field} must be between 1 and {max}, not {n}"),
            );
            return None;
        }
        Some(n)
    };
    if let Some(mb) = limits
        .memory_mb
        .as_ref()
        .and_then(|v| within(v, "memory_mb", MAX_MEMORY_MB))
    {
        grants.memory = (mb as usize) << 20;
    }
    if let Some(s) = limits
        .call_timeout_secs
        .as_ref()
        .and_then(|v| within(v, "call_timeout_secs", MAX_CALL_SECS))
    {
        grants.call_timeout = Duration::from_secs(s);
    }
    if let Some(s) = limits
        .http_timeout_secs
        .as_ref()
        .and_then(|v| within(v, "http_timeout_secs", MAX_HTTP_SECS))
    {
        grants.http.timeout = Duration::from_secs(s);
    }
    if let Some(r) = &limits.retries {
        match *r.get_ref() {
            n if n > MAX_RETRIES => cx.error(
                r.span(),
                format!("connectors.{name}.limits.retries must be at most {MAX_RETRIES}, not {n}"),
            ),
            n => grants.http.retries = n,
        }
    }
    if let Some(s) = &limits.max_retry_wait_secs {
        match *s.get_ref() {
            n if n > MAX_RETRY_WAIT_SECS => cx.error(
                s.span(),
                format!(
                    "connectors.{name}.limits.max_retry_wait_secs must be at most {MAX_RETRY_WAIT_SECS}, not {n}"
                ),
            ),
            n => grants.http.max_retry_wait = Duration::from_secs(n),
        }
    }
    if let Some(c) = &limits.concurrency {
        match *c.get_ref() {
            n if n == 0 || n > MAX_CONCURRENCY => cx.error(
                c.span(),
                format!(
                    "connectors.{name}.limits.concurrency must be between 1 and {MAX_CONCURRENCY}, not {n}"
                ),
            ),
            n => grants.http.concurrency = n,
        }
    }
    if let Some(rate) = &limits.rate_limit {
        let per = *rate.per_seconds.get_ref();
        let requests = *rate.requests.get_ref();
        if requests == 0 || !(per > 0.0 && per <= MAX_RATE_PERIOD_SECS) {
            cx.error(
                rate.requests.span(),
                format!(
                    "connectors.{name}.limits.rate_limit needs requests >= 1 and per_seconds between 0 and {MAX_RATE_PERIOD_SECS} (a day)"
                ),
            );
        } else {
            grants.http.rate = Some((requests, Duration::from_secs_f64(per)));
        }
    }
    if let Some(n) = &limits.max_records {
        let max = crate::runtime::bounds::MAX_RECORDS_GRANT;
        match *n.get_ref() {
            v if v == 0 || v > max => cx.error(
                n.span(),
                format!(
                    "connectors.{name}.limits.max_records must be between 1 and {max}, not {v}"
                ),
            ),
            v => grants.max_records = v,
        }
    }
    if let Some(kb) = &limits.output_kb {
        match *kb.get_ref() {
            n if n > MAX_OUTPUT_KB => cx.error(
                kb.span(),
                format!(
                    "connectors.{name}.limits.output_kb must be at most {MAX_OUTPUT_KB}, not {n}"
                ),
            ),
            n => grants.output_bytes = n << 10,
        }
    }
}
