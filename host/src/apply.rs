//! Applies a plan to the target, phase by phase and batch by batch (a batch
//! holds one phase and one rank: the order the plan decided), writing
//! each change's outcome to the journal as it comes back. A change already
//! applied under the same plan is not sent again, so an interrupted apply of a
//! saved plan resumes; a change whose prerequisite failed is skipped, not tried.

use crate::links::{StoredLink, Unlinked};
use crate::model::{Change, ChangeResult, Operation};
use crate::plan::{Action, Plan, PlannedChange, PlannedLink};
use crate::runtime::{CallError, ConnectorInstance};
use crate::state::{JournalStatus, MemoUpdate, MemoWrite, Outcome, StateStore, StoreError, now_ms};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ChangeOutcome {
    pub key: String,
    pub action: Action,
    pub email: String,
    pub status: JournalStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ApplyReport {
    pub applied: u64,
    pub failed: u64,
    pub skipped: u64,
    pub links_recorded: u64,
    pub unlinked: u64,
    pub outcomes: Vec<ChangeOutcome>,
    /// Set when the connector was stopped and the rest was not attempted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Set when the apply was asked to stop (SIGINT, SIGTERM): the batch in
    /// flight was finished and recorded, the rest not sent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

/// What an apply writes through: a connector instance (or, in tests, a
/// target held in memory).
#[allow(async_fn_in_trait)]
pub trait Target {
    /// The name the target's memo is kept under.
    fn name(&self) -> &str;
    /// Makes a batch of changes; an error means the whole batch is in doubt.
    async fn apply(&mut self, changes: Vec<Change>) -> Result<Vec<ChangeResult>, CallError>;
    /// What the target put in its memo since this was last asked.
    fn memo_written(&mut self) -> Vec<MemoWrite>;
}

impl Target for ConnectorInstance {
    fn name(&self) -> &str {
        ConnectorInstance::name(self)
    }

    async fn apply(&mut self, changes: Vec<Change>) -> Result<Vec<ChangeResult>, CallError> {
        ConnectorInstance::apply(self, changes).await
    }

    fn memo_written(&mut self) -> Vec<MemoWrite> {
        ConnectorInstance::memo_written(self)
    }
}

impl ApplyReport {
    /// How the run ended, as `status` shows it.
    pub fn outcome(&self) -> &'static str {
        if self.interrupted {
            "interrupted"
        } else if self.stopped.is_some() {
            "stopped"
        } else if self.failed > 0 {
            "partial"
        } else {
            "done"
        }
    }
}

fn stored(link: &PlannedLink, target_id: String) -> StoredLink {
    StoredLink {
        source_key: link.source_key.clone(),
        source_email: link.source_email.clone(),
        target_id,
        how: link.how,
        options: link.options.clone(),
        overrides: link.overrides.clone(),
        updated_at_ms: now_ms(),
    }
}

struct Run<'a> {
    plan: &'a Plan,
    state: &'a mut dyn StateStore,
    status: HashMap<String, JournalStatus>,
    /// Target ids known per change key (from creates).
    ids: HashMap<String, String>,
    /// Creates left in flight by an earlier apply: never sent by this one.
    in_doubt: std::collections::HashSet<String>,
    report: ApplyReport,
}

pub async fn apply(
    plan: &Plan,
    target: &mut impl Target,
    state: &mut dyn StateStore,
    batch_size: usize,
    stop: &AtomicBool,
    mut progress: impl FnMut(usize),
) -> Result<ApplyReport, StoreError> {
    let keys: Vec<(&str, &str)> = plan
        .changes
        .iter()
        .map(|c| (c.key.as_str(), c.email.as_str()))
        .collect();
    state.journal_open(&plan.id, &keys)?;
    let journal = state.journal(&plan.id)?;
    let mut run = Run {
        plan,
        status: journal.iter().map(|(k, e)| (k.clone(), e.status)).collect(),
        ids: journal
            .into_iter()
            .filter_map(|(k, e)| e.target_id.map(|id| (k, id)))
            .collect(),
        state,
        in_doubt: Default::default(),
        report: ApplyReport::default(),
    };
    let links: Vec<StoredLink> = plan
        .links
        .iter()
        .filter_map(|l| l.target_id.clone().map(|id| stored(l, id)))
        .collect();
    let unlinks: Vec<Unlinked> = plan
        .unlinks
        .iter()
        .map(|u| Unlinked {
            source_key: u.source_key.clone(),
            source_email: u.source_email.clone(),
            target_id: u.target_id.clone(),
            at_ms: now_ms(),
        })
        .collect();
    run.state
        .carry_out_link_edits(&links, &unlinks, &plan.link_edits)?;
    run.report.links_recorded += links.len() as u64;
    run.report.unlinked += unlinks.len() as u64;

    run.hold_in_doubt();
    let mut phases: Vec<u8> = plan.changes.iter().map(|c| c.phase).collect();
    phases.dedup();
    let mut done = 0;
    for phase in phases {
        let todo: Vec<&PlannedChange> = plan
            .changes
            .iter()
            .filter(|c| {
                c.phase == phase
                    && run.status.get(&c.key) != Some(&JournalStatus::Applied)
                    && !run.in_doubt.contains(&c.key)
            })
            .collect();
        let ready = run.skip_blocked(todo)?;
        // Batches never mix ranks (people, then the functional accounts
        // they are members of): the order inside a batch is no connector's
        // business.
        let batches = ready
            .chunk_by(|a, b| a.rank() == b.rank())
            .flat_map(|rank| rank.chunks(batch_size.max(1)));
        for batch in batches {
            if stop.load(Ordering::Relaxed) {
                run.report.interrupted = true;
                return Ok(run.report);
            }
            let changes: Vec<Change> = batch.iter().map(|c| run.resolve(c)).collect();
            let keys: Vec<&str> = batch.iter().map(|c| c.key.as_str()).collect();
            run.state.mark_sent(&plan.id, &keys)?;
            let answered = target.apply(changes).await;
            // What the target learned while making these changes is kept with them.
            let memo = target.memo_written();
            let memo = MemoUpdate {
                connector: target.name(),
                writes: &memo,
            };
            match answered {
                Ok(results) => run.record(batch, results, memo)?,
                Err(e) => {
                    let message = bounded(e.to_string());
                    let failed: Vec<ChangeResult> = batch
                        .iter()
                        .map(|c| ChangeResult {
                            change_id: c.key.clone(),
                            outcome: Err(crate::model::ConnectorError {
                                kind: e.kind(),
                                message: message.clone(),
                            }),
                        })
                        .collect();
                    run.record(batch, failed, memo)?;
                    run.report.stopped = Some(message);
                    return Ok(run.report);
                }
            }
            done += batch.len();
            progress(done);
        }
    }
    Ok(run.report)
}

/// Why a create left `sent` by an earlier, stopped apply is not sent again.
pub const IN_DOUBT: &str = "in doubt: an earlier apply of this plan was stopped while this create was in flight, so the account may exist now; it is not sent again. Run `roster apply` without --plan: a fresh plan reads the target and links the account if it was made, or creates it";

impl Run<'_> {
    /// Creates an earlier apply of this plan sent without recording an
    /// answer (killed mid-batch) may have taken effect: sending them again
    /// would make a second account on a target that allows it. They are
    /// reported failed as in doubt and stay `sent` in the journal (so every
    /// later resume of this plan holds them too); whatever depends on them
    /// is skipped; changes that are safe to repeat (updates, disables,
    /// deletes) are sent again.
    fn hold_in_doubt(&mut self) {
        let held: Vec<&PlannedChange> = self
            .plan
            .changes
            .iter()
            .filter(|c| {
                matches!(c.action, Action::Create | Action::MergeGuest)
                    && self.status.get(&c.key) == Some(&JournalStatus::Sent)
            })
            .collect();
        if held.is_empty() {
            return;
        }
        tracing::warn!(
            changes = held.len(),
            "not sending again creates an earlier apply left in flight"
        );
        for c in held {
            self.in_doubt.insert(c.key.clone());
            self.not_sent(c, JournalStatus::Failed, IN_DOUBT.to_string());
        }
    }

    /// Reports a change this apply does not send (failed or skipped, and why).
    fn not_sent(&mut self, c: &PlannedChange, status: JournalStatus, why: String) {
        self.status.insert(c.key.clone(), status);
        match status {
            JournalStatus::Skipped => self.report.skipped += 1,
            _ => self.report.failed += 1,
        }
        self.report.outcomes.push(ChangeOutcome {
            key: c.key.clone(),
            action: c.action,
            email: c.email.clone(),
            status,
            target_id: None,
            error: Some(why),
        });
    }

    /// Splits off changes whose prerequisites did not succeed, recording them as skipped.
    fn skip_blocked<'p>(
        &mut self,
        todo: Vec<&'p PlannedChange>,
    ) -> Result<Vec<&'p PlannedChange>, StoreError> {
        let mut ready = Vec::new();
        let mut skipped = Vec::new();
        for c in todo {
            match c
                .after
                .iter()
                .find(|dep| self.status.get(*dep) != Some(&JournalStatus::Applied))
            {
                None => ready.push(c),
                Some(dep) => skipped.push((c, format!("skipped: {dep} did not succeed"))),
            }
        }
        let outcomes: Vec<Outcome> = skipped
            .iter()
            .map(|(c, why)| Outcome {
                plan_id: &self.plan.id,
                key: &c.key,
                account: &c.email,
                status: JournalStatus::Skipped,
                target_id: None,
                error: Some(why),
            })
            .collect();
        self.state.record(&outcomes, &[], None)?;
        for (c, why) in skipped {
            self.not_sent(c, JournalStatus::Skipped, why);
        }
        Ok(ready)
    }

    /// The change as sent: ids of accounts created earlier in this apply filled in.
    fn resolve(&self, c: &PlannedChange) -> Change {
        let mut change = c.change.clone();
        if let Some(id) = c.target_from.as_ref().and_then(|k| self.ids.get(k)) {
            match &mut change.op {
                Operation::Update { id: target, .. } => *target = id.clone(),
                Operation::MergeGuest { into, .. } => into.id = Some(id.clone()),
                _ => {}
            }
        }
        change
    }

    fn record(
        &mut self,
        batch: &[&PlannedChange],
        results: Vec<ChangeResult>,
        memo: MemoUpdate,
    ) -> Result<(), StoreError> {
        let mut by_id: HashMap<String, ChangeResult> = results
            .into_iter()
            .map(|r| (r.change_id.clone(), r))
            .collect();
        let mut outcomes = Vec::new();
        let mut links = Vec::new();
        for c in batch {
            let result = by_id.remove(&c.key);
            let (status, target_id, error) = match result.map(|r| r.outcome) {
                // A create is linked by the id it answers: one without an
                // id (a 2xx with `{}`) would be linked to nothing and made
                // again by every later apply.
                Some(Ok(id)) if c.action == Action::Create && id.as_deref().is_none_or(|i| i.trim().is_empty()) => (
                    JournalStatus::Failed,
                    None,
                    Some("invalid: the connector said the create succeeded but named no target id, so nothing was linked; look the account up in the target (it may exist now), link it with `roster links add`, or rerun".to_string()),
                ),
                Some(Ok(id)) => {
                    let id = id.filter(|i| !i.trim().is_empty()).or_else(|| existing_id(c));
                    if let (Some(link), Some(id)) = (&c.link, &id) {
                        links.push(stored(link, id.clone()));
                    }
                    (JournalStatus::Applied, id, None)
                }
                Some(Err(e)) => (
                    JournalStatus::Failed,
                    None,
                    Some(bounded(format!(
                        "{}: {}{}",
                        e.kind.as_str(),
                        e.message,
                        open_outcome(c.action, e.kind)
                    ))),
                ),
                None => (
                    JournalStatus::Failed,
                    None,
                    Some("the connector returned no result for this change".to_string()),
                ),
            };
            if let Some(id) = &target_id {
                self.ids.insert(c.key.clone(), id.clone());
            }
            self.status.insert(c.key.clone(), status);
            match status {
                JournalStatus::Applied => self.report.applied += 1,
                _ => self.report.failed += 1,
            }
            outcomes.push(ChangeOutcome {
                key: c.key.clone(),
                action: c.action,
                email: c.email.clone(),
                status,
                target_id,
                error,
            });
        }
        let rows: Vec<Outcome> = outcomes
            .iter()
            .map(|o| Outcome {
                plan_id: &self.plan.id,
                key: &o.key,
                account: &o.email,
                status: o.status,
                target_id: o.target_id.as_deref(),
                error: o.error.as_deref(),
            })
            .collect();
        self.state.record(&rows, &links, Some(memo))?;
        self.report.links_recorded += links.len() as u64;
        self.report.outcomes.extend(outcomes);
        Ok(())
    }
}

/// A create or merge whose answer was lost (the connection broke, or the
/// answer was cut) may have taken effect: said, so the operator does not
/// make the account by hand. The next apply reads the target and links it.
fn open_outcome(action: Action, kind: crate::model::ErrorKind) -> &'static str {
    match (action, kind) {
        (Action::Create | Action::MergeGuest, crate::model::ErrorKind::Connection) => {
            " (the answer was lost, so it may have taken effect: the next apply reads the target and links the account if it was made)"
        }
        _ => "",
    }
}

/// The longest error text kept per change: a service (or connector) that
/// answers with megabytes would otherwise fill the state and `status`.
const MAX_ERROR: usize = 2048;

/// `message`, cut at [`MAX_ERROR`] bytes (on a character boundary).
pub fn bounded(mut message: String) -> String {
    if message.len() > MAX_ERROR {
        let mut cut = MAX_ERROR;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        let dropped = message.len() - cut;
        message.truncate(cut);
        message.push_str(&format!("… ({dropped} more bytes not kept)"));
    }
    message
}

/// The target id a change is about, when the plan already knows it.
fn existing_id(c: &PlannedChange) -> Option<String> {
    match &c.change.op {
        Operation::Update { id, .. } | Operation::Disable { id } | Operation::Delete { id }
            if !id.is_empty() =>
        {
            Some(id.clone())
        }
        Operation::MergeGuest { into, .. } => into.id.clone(),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
