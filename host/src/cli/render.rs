//! Human tables and `--json` documents. Everything printed passes through the
//! redactor: the last line of defence for secrets.

use super::output;
use crate::apply::ApplyReport;
use crate::links::{LinkEdit, StoredLink, Unlinked};
use crate::model::{Account, ConnectionReport, Descriptor, Group};
use crate::operation;
use crate::plan::{Action, NoteLevel, Plan, options_text};
use crate::plugins::Session;
use crate::runtime::{LoadedComponent, Redactor};
use crate::state::{AccountError, RunRecord};
use comfy_table::{ContentArrangement, Table, presets::UTF8_BORDERS_ONLY};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;

pub struct Out<'a> {
    json: bool,
    redactor: &'a Redactor,
}

impl<'a> Out<'a> {
    pub fn new(json: bool, redactor: &'a Redactor) -> Self {
        Out { json, redactor }
    }
    fn print(&self, text: &str) {
        println!("{}", self.redactor.redact(text));
    }
    fn json(&self, value: &impl serde::Serialize) {
        self.print(&serde_json::to_string_pretty(value).unwrap_or_default());
    }

    /// A JSON document already serialised and redacted (a plan also saved to a file).
    pub fn json_text(&self, text: &str) {
        println!("{text}");
    }
}

/// Width of tables when stdout is no terminal (a pipe, a file, a CI log):
/// `$COLUMNS` when set, else this. On a terminal, the terminal's width.
const PIPED_WIDTH: u16 = 100;

fn table() -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic);
    if !std::io::stdout().is_terminal() {
        let columns = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok());
        t.set_width(columns.unwrap_or(PIPED_WIDTH));
    }
    t
}

/// Progress on stderr, only when it is a terminal and output is for people;
/// several bars (the source and the target read at once) share the lines.
pub struct Progress {
    multi: Option<MultiProgress>,
    /// The bars a run's callbacks opened, by what they count.
    open: RefCell<HashMap<String, Bar>>,
}

pub struct Bar(Option<ProgressBar>);

impl Bar {
    pub fn set(&self, n: usize) {
        if let Some(b) = &self.0 {
            b.set_position(n as u64);
        }
    }
    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let on = !quiet && std::io::stderr().is_terminal();
        Progress {
            multi: on.then(MultiProgress::new),
            open: RefCell::default(),
        }
    }
    pub fn counter(&self, what: &str) -> Bar {
        Bar(self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new_spinner().with_message(what.to_string()));
            b.set_style(
                ProgressStyle::with_template("{spinner} {msg}: {pos} accounts")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            b
        }))
    }
    pub fn bar(&self, what: &str, len: usize) -> Bar {
        Bar(self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new(len as u64).with_message(what.to_string()));
            b.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        }))
    }
}

/// A run's progress, drawn as bars: one counter per connector read, one
/// bar for the apply.
impl operation::Progress for Progress {
    fn reading(&self, connector: &str, count: usize) {
        let what = format!("reading {connector}");
        let mut open = self.open.borrow_mut();
        open.entry(what.clone())
            .or_insert_with(|| self.counter(&what))
            .set(count);
    }

    fn read(&self, connector: &str) {
        if let Some(bar) = self
            .open
            .borrow_mut()
            .remove(&format!("reading {connector}"))
        {
            bar.finish();
        }
    }

    fn applying(&self, done: usize, total: usize) {
        let mut open = self.open.borrow_mut();
        let bar = open
            .entry("applying".into())
            .or_insert_with(|| self.bar("applying", total));
        bar.set(done);
        if done == total {
            bar.finish();
        }
    }
}

pub fn check(out: &Out, session: &Session) {
    let doc = output::Check::of(session);
    if out.json {
        out.json(&doc);
        return;
    }
    out.print(&format!(
        "pipeline `{}` is valid: {} → {}",
        doc.pipeline, doc.source, doc.target
    ));
    out.print(&format!("stages: {}", doc.stages.join(" → ")));
    let mut t = table();
    t.set_header([
        "connector",
        "plugin",
        "hosts",
        "directory",
        "memory",
        "call limit",
    ]);
    for c in &doc.connectors {
        let hosts = match c.allowed_hosts.is_empty() {
            true => "none".to_string(),
            false => c.allowed_hosts.join("\n"),
        };
        let dir = match c.directory {
            Some(d) if c.directory_read_only => format!("{} (read-only)", d.display()),
            Some(d) => d.display().to_string(),
            None => "none".into(),
        };
        t.add_row([
            format!("{} ({})", c.name, c.role.as_str()),
            format!("{} {}", c.plugin, c.version),
            hosts,
            dir,
            format!("{} MiB", c.memory_mb),
            format!("{} s", c.call_timeout_secs),
        ]);
    }
    out.print(&t.to_string());
}

/// Accounts (and groups) as a connector read them.
pub fn accounts(out: &Out, connector: &str, accounts: &[Account], groups: &[Group]) {
    if out.json {
        out.json(&output::Accounts {
            format: output::JSON_FORMAT,
            connector,
            accounts,
            groups,
        });
        return;
    }
    let mut t = table();
    t.set_header([
        "email",
        "kind",
        "enabled",
        "aliases",
        "delegates",
        "org unit",
    ]);
    for a in accounts {
        t.add_row([
            a.email.clone(),
            a.kind.as_str().to_string(),
            if a.enabled { "yes" } else { "no" }.to_string(),
            a.aliases.join("\n"),
            a.delegates.join("\n"),
            a.org_unit.clone().unwrap_or_default(),
        ]);
    }
    out.print(&t.to_string());
    let mut summary = format!("{} accounts from {connector}", accounts.len());
    if !groups.is_empty() {
        summary.push_str(&format!(", {} groups", groups.len()));
    }
    out.print(&summary);
}

/// A plugin file's contract version and descriptor, or why it is unusable.
pub type Described = Result<(String, Descriptor), String>;

pub fn plugins_list(json: bool, dirs: &[PathBuf], found: &[(PathBuf, Described)]) {
    if json {
        let plugins = found
            .iter()
            .map(|(file, info)| match info {
                Ok((contract, d)) => output::PluginFile::Usable {
                    file,
                    contract,
                    name: &d.name,
                    version: &d.version,
                    source: d.source,
                    target: d.target,
                },
                Err(error) => output::PluginFile::Unusable { file, error },
            })
            .collect();
        let doc = output::PluginList {
            format: output::JSON_FORMAT,
            directories: dirs,
            plugins,
        };
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return;
    }
    if found.is_empty() {
        let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        println!("no plugins found (looked in {})", searched.join(", "));
        return;
    }
    let mut t = table();
    t.set_header(["name", "version", "roles", "contract", "file"]);
    for (f, info) in found {
        let file = f.display().to_string();
        match info {
            Ok((contract, d)) => t.add_row([
                d.name.clone(),
                d.version.clone(),
                roles(d).join(", "),
                contract.clone(),
                file,
            ]),
            Err(e) => t.add_row([
                "?".into(),
                String::new(),
                String::new(),
                format!("unusable: {e}"),
                file,
            ]),
        };
    }
    println!("{t}");
}

fn roles(d: &Descriptor) -> Vec<&'static str> {
    [("source", d.source), ("target", d.target)]
        .iter()
        .filter(|r| r.1)
        .map(|r| r.0)
        .collect()
}

pub fn inspect(json: bool, component: &LoadedComponent, d: &Descriptor) {
    if json {
        let doc = output::Inspect::of(component, d);
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return;
    }
    println!("{} {} — {}", d.name, d.version, d.description);
    println!("file:       {}", component.path.display());
    println!(
        "contract:   roster:connector@{}",
        component.contract.as_str()
    );
    println!("roles:      {}", roles(d).join(", "));
    println!(
        "kinds:      {}",
        d.kinds
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "fields:     {}",
        d.fields
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("incremental: {}", if d.incremental { "yes" } else { "no" });
    println!(
        "hosts:      {}",
        if d.hosts.is_empty() {
            "none".to_string()
        } else {
            d.hosts.join(", ")
        }
    );
    println!("imports:    {}", component.imports.join(", "));
    let settings: Vec<_> = d.settings().collect();
    if !settings.is_empty() {
        let mut t = table();
        t.set_header([
            "config field",
            "required",
            "secret",
            "default",
            "description",
        ]);
        for f in settings {
            t.add_row([
                f.name.clone(),
                if f.required { "yes" } else { "no" }.into(),
                if f.secret { "yes" } else { "no" }.into(),
                f.default_value.clone().unwrap_or_default(),
                f.description.clone(),
            ]);
        }
        println!("{t}");
    }
    let options: Vec<_> = d.link_options().collect();
    if !options.is_empty() {
        let mut t = table();
        t.set_header(["link option", "default", "description"]);
        for (name, f) in options {
            t.add_row([
                name.to_string(),
                f.default_value.clone().unwrap_or_default(),
                f.description.clone(),
            ]);
        }
        println!("{t}");
    }
}

pub fn connection(out: &Out, reports: &[(String, ConnectionReport)]) {
    if out.json {
        out.json(&output::Connections::of(reports));
        return;
    }
    for (name, report) in reports {
        out.print(&format!("{name}: ok"));
        for check in &report.checks {
            out.print(&format!("  ✓ {check}"));
        }
        if let Some(a) = &report.account {
            out.print(&format!(
                "  account {} ({}, {})",
                a.email,
                a.kind.as_str(),
                if a.enabled { "enabled" } else { "disabled" }
            ));
        }
    }
}

pub(super) fn details(c: &crate::plan::PlannedChange) -> String {
    use crate::model::Operation;
    match &c.change.op {
        Operation::Create { account } => {
            let mut d = vec![account.kind.as_str().to_string()];
            if !account.aliases.is_empty() {
                d.push(format!("aliases {}", account.aliases.join(", ")));
            }
            if !account.delegates.is_empty() {
                d.push(format!("delegates {}", account.delegates.join(", ")));
            }
            if !account.enabled {
                d.push("disabled".into());
            }
            d.join("; ")
        }
        Operation::Update { .. } => c
            .diff
            .iter()
            .map(|d| format!("{}: {} → {}", d.field, empty(&d.from), empty(&d.to)))
            .collect::<Vec<_>>()
            .join("\n"),
        Operation::MergeGuest { guest, into } => {
            format!(
                "guest {} ({}) into {}",
                guest.email,
                guest.id.as_deref().unwrap_or("?"),
                into.id.as_deref().unwrap_or("the new account")
            )
        }
        Operation::Disable { id } | Operation::Delete { id } => format!("target account {id}"),
    }
}

fn empty(s: &str) -> &str {
    if s.is_empty() { "∅" } else { s }
}

/// What a plan's text shows besides its changes and notes.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlanView {
    /// Every skipped or filtered account with its reason (else counts only).
    pub show_skipped: bool,
    /// Counts only: no table of changes, notes counted by level.
    pub summary_only: bool,
}

pub fn plan(out: &Out, plan: &Plan, view: PlanView) {
    if out.json {
        out.json(plan);
        return;
    }
    let s = &plan.summary;
    let read = match s.source_read {
        crate::plan::ReadMode::Full => String::new(),
        crate::plan::ReadMode::Incremental { changed, removed } => {
            format!(", read incrementally: {changed} changed, {removed} removed")
        }
    };
    out.print(&format!(
        "plan {} for `{}`: {} → {} ({} source accounts{read}, {} in scope; {} target accounts)",
        plan.id,
        plan.pipeline,
        plan.source,
        plan.target,
        s.source_accounts,
        s.in_scope,
        s.target_accounts
    ));
    match view.summary_only {
        false => changes(out, plan),
        true => out.print(&format!(
            "{} errors, {} conflicts, {} warnings",
            s.errors, s.conflicts, s.warnings
        )),
    }
    skipped(out, plan, view);
    let count = |a: Action| plan.changes.iter().filter(|c| c.action == a).count();
    if plan.is_empty() {
        out.print(&format!("no changes: {} accounts in sync", s.unchanged));
    } else {
        out.print(&format!(
            "{} to create, {} to update, {} guest merges, {} to disable, {} to delete; {} new links, {} to unlink; {} unchanged, {} skipped",
            count(Action::Create),
            count(Action::Update),
            count(Action::MergeGuest),
            count(Action::Disable),
            count(Action::Delete),
            s.new_links,
            s.unlinks,
            s.unchanged,
            s.skipped
        ));
    }
    if let Some(r) = &plan.refused {
        out.print(&format!("refused: {r}"));
    }
}

/// The changes, unlinks, manual links and notes of a plan.
fn changes(out: &Out, plan: &Plan) {
    if !plan.changes.is_empty() {
        let mut t = table();
        t.set_header(["action", "account", "details"]);
        for c in &plan.changes {
            t.add_row([c.action.as_str().to_string(), c.email.clone(), details(c)]);
        }
        out.print(&t.to_string());
    }
    if !plan.unlinks.is_empty() {
        let mut t = table();
        t.set_header(["unlink", "from target id", "what happens"]);
        for u in &plan.unlinks {
            t.add_row([
                u.source_email.clone(),
                u.target_id.clone().unwrap_or_else(|| "-".into()),
                "no longer synced; the target account is left as it is".into(),
            ]);
        }
        out.print(&t.to_string());
    }
    // A link whose options reach the target with a change is listed with the change's options.
    let mut manual = std::collections::BTreeMap::new();
    for l in plan
        .links
        .iter()
        .chain(plan.changes.iter().filter_map(|c| c.link.as_ref()))
        .filter(|l| l.how == crate::links::LinkHow::Manual)
    {
        manual.insert(&l.source_key, l);
    }
    for l in manual.values() {
        out.print(&format!(
            "link by hand: {} → {}{}",
            l.source_email,
            l.target_id.as_deref().unwrap_or("-"),
            show_options(&l.options)
        ));
    }
    for level in NoteLevel::ALL {
        let notes = plan.notes_at(level);
        if notes.is_empty() {
            continue;
        }
        out.print(&format!("{}s ({}):", level.as_str(), notes.len()));
        for (kind, message, accounts) in grouped(&notes) {
            let kind = kind
                .map(|k| format!("[{}] ", k.as_str()))
                .unwrap_or_default();
            let who = match accounts.len() {
                0 => "-".to_string(),
                1..=3 => accounts.join(", "),
                n => format!("{}, {} and {} more", accounts[0], accounts[1], n - 2),
            };
            out.print(&format!("  {who}: {kind}{message}"));
        }
    }
}

/// Notes with the same kind and message, one line each with the accounts
/// they name, in the order first seen: 400 accounts outside the claimed
/// domains are one line, not 400.
fn grouped<'n>(
    notes: &[&'n crate::plan::Note],
) -> Vec<(Option<crate::model::ErrorKind>, &'n str, Vec<&'n str>)> {
    let mut groups: Vec<(Option<crate::model::ErrorKind>, &str, Vec<&str>)> = Vec::new();
    let mut index: HashMap<(Option<crate::model::ErrorKind>, &str), usize> = HashMap::new();
    for n in notes {
        let key = (n.kind, n.message.as_str());
        let i = *index.entry(key).or_insert_with(|| {
            groups.push((n.kind, n.message.as_str(), vec![]));
            groups.len() - 1
        });
        if let Some(a) = &n.account {
            groups[i].2.push(a);
        }
    }
    groups
}

/// Skipped and filtered accounts: counted by reason, and listed with
/// `--show-skipped`.
fn skipped(out: &Out, plan: &Plan, view: PlanView) {
    let s = &plan.summary;
    if s.skipped_by_reason.is_empty() {
        return;
    }
    let counts: Vec<String> = s
        .skipped_by_reason
        .iter()
        .map(|(reason, n)| format!("{reason} {n}"))
        .collect();
    let more = match view.show_skipped {
        true => "",
        false => "; --show-skipped lists them",
    };
    out.print(&format!(
        "skipped {}, filtered {} ({}){more}",
        s.skipped,
        s.filtered,
        counts.join(", ")
    ));
    if !view.show_skipped {
        return;
    }
    let mut t = table();
    t.set_header(["account", "reason", "why"]);
    for k in &plan.skipped {
        t.add_row([k.account.clone(), k.count_key(), k.detail.clone()]);
    }
    out.print(&t.to_string());
}

/// `roster explain`: each stage's decision for one address, then the
/// plan's changes and notes for it.
pub fn explanation(out: &Out, e: &crate::plan::Explanation) {
    if out.json {
        out.json(e);
        return;
    }
    out.print(&format!("{} in `{}`: {}", e.address, e.pipeline, e.outcome));
    let mut t = table();
    t.set_header(["stage", "decision"]);
    for step in &e.steps {
        t.add_row([step.stage, step.decision.as_str()]);
    }
    out.print(&t.to_string());
    if !e.changes.is_empty() {
        let mut t = table();
        t.set_header(["action", "account", "details"]);
        for c in &e.changes {
            t.add_row([c.action.as_str().to_string(), c.email.clone(), details(c)]);
        }
        out.print(&t.to_string());
    }
    for n in &e.notes {
        let kind = n
            .kind
            .map(|k| format!("[{}] ", k.as_str()))
            .unwrap_or_default();
        out.print(&format!("{}: {kind}{}", n.level.as_str(), n.message));
    }
}

pub fn apply(out: &Out, plan: &Plan, report: &ApplyReport) {
    if out.json {
        out.json(&output::Applied {
            format: output::JSON_FORMAT,
            plan: &plan.id,
            report,
        });
        return;
    }
    let problems: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| o.error.is_some())
        .collect();
    if !problems.is_empty() {
        let mut t = table();
        t.set_header(["action", "account", "outcome"]);
        for o in problems {
            t.add_row([
                o.action.as_str().to_string(),
                o.email.clone(),
                format!(
                    "{}: {}",
                    o.status.as_str(),
                    o.error.clone().unwrap_or_default()
                ),
            ]);
        }
        out.print(&t.to_string());
    }
    out.print(&format!(
        "applied {}, failed {}, skipped {}; {} links recorded, {} unlinked",
        report.applied, report.failed, report.skipped, report.links_recorded, report.unlinked
    ));
    if let Some(s) = &report.stopped {
        out.print(&format!("stopped: {s}"));
    }
}

/// ` (diary=true, task=false)`, or nothing.
fn show_options(options: &std::collections::BTreeMap<String, String>) -> String {
    if options.is_empty() {
        return String::new();
    }
    format!(" ({})", options_text(options))
}

/// How a link was made, as the admin thinks of it.
fn linked_by(how: crate::links::LinkHow) -> String {
    use crate::links::LinkHow;
    match how {
        LinkHow::Manual => "manual".into(),
        other => format!("auto ({})", other.as_str()),
    }
}

fn link_table(links: &[StoredLink]) -> Table {
    let mut t = table();
    t.set_header(["source", "target id", "linked", "options"]);
    for l in links {
        t.add_row([
            l.source_email.clone(),
            l.target_id.clone(),
            linked_by(l.how),
            options_text(&l.options),
        ]);
    }
    t
}

/// `roster links`: the links, the staged edits and the accounts unlinked on purpose.
pub fn links(json: bool, links: &[StoredLink], edits: &[LinkEdit], unlinked: &[Unlinked]) {
    if json {
        let doc = output::Links::of(links, edits, unlinked);
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return;
    }
    println!("{} linked accounts:\n{}", links.len(), link_table(links));
    if !edits.is_empty() {
        println!("staged for the next apply (see `roster plan`):");
        for e in edits {
            match &e.target_id {
                Some(t) => println!("  link {} → {t}{}", e.source, show_options(&e.options)),
                None => println!("  unlink {}", e.source),
            }
        }
    }
    if !unlinked.is_empty() {
        println!("unlinked on purpose (not synced until linked by hand):");
        for u in unlinked {
            println!(
                "  {} (was {})",
                u.source_email,
                u.target_id.as_deref().unwrap_or("-")
            );
        }
    }
}

pub fn status(json: bool, runs: &[RunRecord], links: &[StoredLink], errors: &[AccountError]) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&output::Status {
                format: output::JSON_FORMAT,
                runs,
                links,
                errors
            })
            .unwrap_or_default()
        );
        return;
    }
    let mut t = table();
    t.set_header(["run", "command", "plan", "outcome", "applied", "failed"]);
    for r in runs {
        t.add_row([
            r.id.to_string(),
            r.command.clone(),
            r.plan_id.clone(),
            r.outcome.clone(),
            r.applied.to_string(),
            r.failed.to_string(),
        ]);
    }
    println!("recent runs:\n{t}");
    println!("{} linked accounts:\n{}", links.len(), link_table(links));
    if !errors.is_empty() {
        let mut t = table();
        t.set_header(["account", "change", "last error"]);
        for e in errors {
            t.add_row([e.account.clone(), e.change.clone(), e.message.clone()]);
        }
        println!("accounts with errors:\n{t}");
    }
}
