//! The service's configuration file (`roster serve CONFIG`): where the
//! shared database is, what this node is called, and each pipeline with its
//! schedule, approval mode and notification targets. Every problem is
//! reported at its file, line and column, as the pipeline file's are.

use super::schedule::Schedule;
use crate::pipeline::{Diagnostic, Diagnostics, Pipeline, did_you_mean};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The environment variable that holds the service database's URL, with
/// its password: a password in the file would show wherever the file does.
pub const DATABASE_ENV: &str = "ROSTER_DATABASE_URL";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    pipelines: Vec<Spanned<RawPipeline>>,
    #[serde(default)]
    notify: BTreeMap<String, Spanned<RawNotify>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    database: Option<Spanned<String>>,
    listen: Option<Spanned<String>>,
    node: Option<Spanned<String>>,
    queue: Option<Spanned<String>>,
    workers: Option<Spanned<u32>>,
    heartbeat_secs: Option<Spanned<u64>>,
    missed_heartbeats: Option<Spanned<u32>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    file: Spanned<String>,
    every: Option<Spanned<String>>,
    cron: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    approval: Option<Spanned<String>>,
    #[serde(default)]
    notify: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    webhook: Option<Spanned<String>>,
    command: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    on: Option<Spanned<Vec<String>>>,
}

/// What a plan needs before it is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Approval {
    /// Applied as soon as it is made (a plan a safety rule refuses is not).
    Auto,
    /// Applied when no safety rule refuses it; otherwise it waits.
    AutoBelowThreshold,
    /// Every plan with changes waits for someone to approve it.
    Manual,
}

impl Approval {
    fn parse(text: &str) -> Option<Approval> {
        match text {
            "auto" => Some(Approval::Auto),
            "auto-below-threshold" => Some(Approval::AutoBelowThreshold),
            "manual" => Some(Approval::Manual),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Approval::Auto => "auto",
            Approval::AutoBelowThreshold => "auto-below-threshold",
            Approval::Manual => "manual",
        }
    }
}

/// What a notification target is told about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// A run failed, or some of its changes did.
    Failure,
    /// A plan waits for approval.
    Approval,
    /// A safety rule refused a plan.
    Refused,
}

impl Event {
    pub const ALL: [Event; 3] = [Event::Failure, Event::Approval, Event::Refused];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Failure => "failure",
            Event::Approval => "approval",
            Event::Refused => "refused",
        }
    }
}

#[derive(Clone, Debug)]
pub struct NotifyTarget {
    pub name: String,
    pub webhook: Option<reqwest::Url>,
    pub command: Option<Vec<String>>,
    pub on: Vec<Event>,
}

/// One pipeline the service runs.
#[derive(Clone, Debug)]
pub struct Served {
    pub pipeline: Pipeline,
    pub schedule: Schedule,
    pub approval: Approval,
    pub notify: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub path: PathBuf,
    /// The shared database (credentials only from the environment).
    pub database: String,
    pub listen: SocketAddr,
    /// The API's certificate chain and key (PEM), when it speaks TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub node: String,
    pub queue: String,
    pub workers: u32,
    pub heartbeat: Duration,
    pub missed_heartbeats: u32,
    /// By pipeline name.
    pub pipelines: BTreeMap<String, Served>,
    pub notify: BTreeMap<String, NotifyTarget>,
}

/// The default address: loopback only, until the operator says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8450";

struct Cx<'a> {
    path: &'a Path,
    text: &'a str,
    errors: Vec<Diagnostic>,
}

impl Cx<'_> {
    fn error(&mut self, span: std::ops::Range<usize>, message: impl Into<String>) {
        self.errors
            .push(Diagnostic::at(self.path, self.text, Some(span), message));
    }
    fn error_outside(&mut self, message: impl Into<String>) {
        self.errors
            .push(Diagnostic::at(self.path, self.text, None, message));
    }
}

impl ServeConfig {
    /// Reads the file and every pipeline it names (their secrets resolved).
    pub fn load(path: &Path) -> Result<ServeConfig, Diagnostics> {
        parse(path, &read(path)?)
    }

    /// Only what is needed to reach the database and its queue (`roster
    /// serve token`, `roster approve`): the pipelines are not loaded.
    /// Returns the database URL and the queue's name.
    pub fn database_only(path: &Path) -> Result<(String, String), Diagnostics> {
        let text = read(path)?;
        let mut cx = Cx {
            path,
            text: &text,
            errors: vec![],
        };
        let raw = raw(&mut cx)?;
        let database = database(&mut cx, raw.server.database.as_ref());
        let queue = queue(&mut cx, raw.server.queue.as_ref());
        match cx.errors.is_empty() {
            true => Ok((database, queue)),
            false => Err(Diagnostics(cx.errors)),
        }
    }
}

fn read(path: &Path) -> Result<String, Diagnostics> {
    Diagnostics::read(path, "the service configuration")
}

/// The file's TOML in its raw shape, or its syntax error, located.
fn raw(cx: &mut Cx) -> Result<RawConfig, Diagnostics> {
    toml::from_str(cx.text).map_err(|e| {
        cx.error(e.span().unwrap_or(0..0), e.message().to_string());
        Diagnostics(std::mem::take(&mut cx.errors))
    })
}

fn parse(path: &Path, text: &str) -> Result<ServeConfig, Diagnostics> {
    let mut cx = Cx {
        path,
        text,
        errors: vec![],
    };
    let raw = raw(&mut cx)?;
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let database = database(&mut cx, raw.server.database.as_ref());
    let listen = match &raw.server.listen {
        None => DEFAULT_LISTEN.parse().expect("a valid address"),
        Some(l) => l.get_ref().parse().unwrap_or_else(|e| {
            cx.error(l.span(), format!("server.listen: {e} (as 127.0.0.1:8450)"));
            DEFAULT_LISTEN.parse().expect("a valid address")
        }),
    };
    let node = match &raw.server.node {
        Some(n) if !valid_name(n.get_ref()) => {
            cx.error(
                n.span(),
                "server.node: letters, digits, '-', '_' and '.' only, at most 100",
            );
            String::new()
        }
        Some(n) => n.get_ref().clone(),
        None => default_node(),
    };
    let queue = queue(&mut cx, raw.server.queue.as_ref());
    let workers = ranged(
        &mut cx,
        raw.server.workers.as_ref(),
        "server.workers",
        1,
        64,
        2,
    );
    let heartbeat = ranged(
        &mut cx,
        raw.server.heartbeat_secs.as_ref(),
        "server.heartbeat_secs",
        1,
        3600,
        10,
    );
    let missed = ranged(
        &mut cx,
        raw.server.missed_heartbeats.as_ref(),
        "server.missed_heartbeats",
        2,
        100,
        3,
    );
    let tls = match (&raw.server.tls_cert, &raw.server.tls_key) {
        (Some(c), Some(k)) => Some((dir.join(c.get_ref()), dir.join(k.get_ref()))),
        (None, None) => None,
        (Some(c), None) => {
            cx.error(c.span(), "server.tls_cert needs server.tls_key too");
            None
        }
        (None, Some(k)) => {
            cx.error(k.span(), "server.tls_key needs server.tls_cert too");
            None
        }
    };
    let notify = notify_targets(&mut cx, &raw.notify);
    let mut pipelines = BTreeMap::new();
    for p in &raw.pipelines {
        if let Some(served) = served(&mut cx, &dir, p, &notify) {
            let name = served.pipeline.name.clone();
            if pipelines.insert(name.clone(), served).is_some() {
                cx.error(
                    p.span(),
                    format!("pipeline `{name}` is listed twice (pipeline names must be unique)"),
                );
            }
        }
    }
    if raw.pipelines.is_empty() {
        cx.error_outside(
            "no pipelines: add a [[pipelines]] table with file = \"…\" and a schedule",
        );
    }
    if !cx.errors.is_empty() {
        return Err(Diagnostics(cx.errors));
    }
    Ok(ServeConfig {
        path: path.to_path_buf(),
        database,
        listen,
        tls,
        node,
        queue,
        workers: workers as u32,
        heartbeat: Duration::from_secs(heartbeat),
        missed_heartbeats: missed as u32,
        pipelines,
        notify,
    })
}

/// The queue's name (default `roster`).
fn queue(cx: &mut Cx, value: Option<&Spanned<String>>) -> String {
    match value {
        Some(q) if !valid_name(q.get_ref()) => {
            cx.error(
                q.span(),
                "server.queue: letters, digits, '-', '_' and '.' only",
            );
            String::new()
        }
        Some(q) => q.get_ref().clone(),
        None => "roster".into(),
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `ROSTER_NODE` (a pod's name), else this machine's name and the process
/// id: unique among live nodes.
fn default_node() -> String {
    if let Ok(node) = std::env::var("ROSTER_NODE")
        && valid_name(node.trim())
    {
        return node.trim().to_string();
    }
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| valid_name(h))
        .unwrap_or_else(|| "node".into());
    format!("{host}-{}", std::process::id())
}

fn ranged<T: Copy + Into<u64>>(
    cx: &mut Cx,
    value: Option<&Spanned<T>>,
    what: &str,
    min: u64,
    max: u64,
    default: u64,
) -> u64 {
    match value {
        None => default,
        Some(v) => {
            let n: u64 = (*v.get_ref()).into();
            if !(min..=max).contains(&n) {
                cx.error(v.span(), format!("{what} must be {min} to {max}"));
            }
            n.clamp(min, max)
        }
    }
}

/// The database URL: from the environment, else from the file (which may
/// not hold a password).
fn database(cx: &mut Cx, in_file: Option<&Spanned<String>>) -> String {
    if let Ok(url) = std::env::var(DATABASE_ENV)
        && !url.trim().is_empty()
    {
        if let Ok(at) = crate::state::PgLocation::parse(url.trim(), "roster_serve") {
            at.redact_password(crate::runtime::Redactor::global());
        }
        return url.trim().to_string();
    }
    match in_file {
        None => {
            cx.error_outside(format!(
                "server.database is not set: give postgres://USER@HOST/DB there, or the whole URL in {DATABASE_ENV}"
            ));
            String::new()
        }
        Some(d) => match crate::state::PgLocation::parse(d.get_ref(), "roster_serve") {
            Ok(at) if at.has_password() => {
                // Not located: the excerpt would show the password.
                cx.error_outside(format!(
                    "server.database: the URL holds a password, which would show wherever this file does: give it in PGPASSWORD (or ~/.pgpass), or the whole URL in {DATABASE_ENV}"
                ));
                String::new()
            }
            Ok(_) => d.get_ref().clone(),
            Err(e) => {
                cx.error(d.span(), format!("server.database: {e:#}"));
                String::new()
            }
        },
    }
}

fn notify_targets(
    cx: &mut Cx,
    raw: &BTreeMap<String, Spanned<RawNotify>>,
) -> BTreeMap<String, NotifyTarget> {
    let mut out = BTreeMap::new();
    for (name, n) in raw {
        let span = n.span();
        let n = n.get_ref();
        let webhook = n
            .webhook
            .as_ref()
            .and_then(|w| match reqwest::Url::parse(w.get_ref()) {
                Ok(u) if matches!(u.scheme(), "https" | "http") => Some(u),
                Ok(u) => {
                    cx.error(
                        w.span(),
                        format!(
                            "notify.{name}.webhook: scheme `{}` is not http(s)",
                            u.scheme()
                        ),
                    );
                    None
                }
                Err(e) => {
                    cx.error(w.span(), format!("notify.{name}.webhook: {e}"));
                    None
                }
            });
        let command = n
            .command
            .as_ref()
            .and_then(|c| match c.get_ref().is_empty() {
                true => {
                    cx.error(
                        c.span(),
                        format!("notify.{name}.command: name a program to run"),
                    );
                    None
                }
                false => Some(c.get_ref().clone()),
            });
        if n.webhook.is_none() && n.command.is_none() {
            cx.error(
                span.clone(),
                format!("notify.{name}: give a webhook, a command, or both"),
            );
        }
        let on = match &n.on {
            None => Event::ALL.to_vec(),
            Some(list) => {
                let mut on = vec![];
                for e in list.get_ref() {
                    match Event::ALL.iter().find(|k| k.as_str() == e) {
                        Some(k) => on.push(*k),
                        None => cx.error(
                            list.span(),
                            format!("notify.{name}.on: `{e}` is not an event (failure, approval, refused)"),
                        ),
                    }
                }
                on
            }
        };
        out.insert(
            name.clone(),
            NotifyTarget {
                name: name.clone(),
                webhook,
                command,
                on,
            },
        );
    }
    out
}

fn served(
    cx: &mut Cx,
    dir: &Path,
    raw: &Spanned<RawPipeline>,
    notify: &BTreeMap<String, NotifyTarget>,
) -> Option<Served> {
    let p = raw.get_ref();
    let schedule = match (&p.every, &p.cron) {
        (Some(e), None) => {
            Schedule::every(e.get_ref()).map_err(|m| cx.error(e.span(), format!("every: {m}")))
        }
        (None, Some(c)) => {
            let tz = p.timezone.as_ref();
            let zone = tz.map(|t| t.get_ref().as_str()).unwrap_or("UTC");
            match zone.parse::<chrono_tz::Tz>() {
                Err(_) => {
                    let span = tz.map(|t| t.span()).unwrap_or(raw.span());
                    cx.error(
                        span,
                        format!(
                            "timezone: `{zone}` is not an IANA time zone (as Europe/Amsterdam)"
                        ),
                    );
                    Err(())
                }
                Ok(tz) => Schedule::cron(c.get_ref(), tz)
                    .map_err(|m| cx.error(c.span(), format!("cron: {m}"))),
            }
        }
        (Some(_), Some(c)) => {
            cx.error(c.span(), "give `every` or `cron`, not both");
            Err(())
        }
        (None, None) => {
            cx.error(
                raw.span(),
                "no schedule: give every = \"15m\" or cron = \"0 0 2 * * *\"",
            );
            Err(())
        }
    };
    if p.every.is_some()
        && let Some(t) = &p.timezone
    {
        cx.error(
            t.span(),
            "timezone applies to `cron` only (an interval is the same in every zone)",
        );
    }
    let approval = match &p.approval {
        None => Ok(Approval::Auto),
        Some(a) => Approval::parse(a.get_ref()).ok_or_else(|| {
            cx.error(
                a.span(),
                format!(
                    "approval: `{}` is not auto, auto-below-threshold or manual",
                    a.get_ref()
                ),
            )
        }),
    };
    for n in &p.notify {
        if !notify.contains_key(n.get_ref()) {
            let known: Vec<String> = notify.keys().cloned().collect();
            let hint = did_you_mean(n.get_ref(), &known)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            cx.error(
                n.span(),
                format!("notify: no [notify.{}] table{hint}", n.get_ref()),
            );
        }
    }
    let file = dir.join(p.file.get_ref());
    let pipeline = match Pipeline::load(&file) {
        Ok(pipeline) if pipeline.ranks > 1 && !matches!(approval, Ok(Approval::Auto)) => {
            let span = p.approval.as_ref().map(|a| a.span()).unwrap_or(raw.span());
            cx.error(
                span,
                format!(
                    "approval: {} is split into {} ranks, each applied on its own; approval = \"auto\" only (or ranks = 1)",
                    pipeline.name, pipeline.ranks
                ),
            );
            None
        }
        Ok(pipeline) => Some(pipeline),
        Err(d) => {
            cx.error(p.file.span(), format!("pipeline {}:", file.display()));
            cx.errors.extend(d.0);
            None
        }
    };
    Some(Served {
        pipeline: pipeline?,
        schedule: schedule.ok()?,
        approval: approval.ok()?,
        notify: p.notify.iter().map(|n| n.get_ref().clone()).collect(),
    })
}
