//! Builds the plan: the filter stage (`filter.rs`, then `shape.rs`) narrows
//! the source, the link stage (`link.rs`) finds each account's target, and
//! each match is handed to the sync stage (`sync.rs`, `removal.rs`), which
//! asks the merge stage (`merge.rs`) for the guests to merge first. This
//! file drives them and finishes the plan: order, summary, id.

use super::filter::{filter, syncable};
use super::link::{Match, Matcher, TargetIndex, source_key};
use super::shape::{Rules, shape};
use super::*;
use crate::links::{LinkEdit, StoredLink, Unlinked};
use crate::model::{Account, Descriptor, ErrorKind, Group};
use crate::pipeline::{Pipeline, SyncStage};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};

pub struct PlanInput<'a> {
    pub pipeline: &'a Pipeline,
    pub source: &'a [Account],
    pub source_groups: &'a [Group],
    pub target: &'a [Account],
    pub target_descriptor: &'a Descriptor,
    pub links: &'a [StoredLink],
    /// Link edits staged with `roster links add|remove`.
    pub link_edits: &'a [LinkEdit],
    /// Accounts unlinked on purpose by an earlier apply.
    pub unlinked: &'a [Unlinked],
    /// Free licence seats in the target; `None` when unlimited or unknown.
    pub free_seats: Option<u32>,
    /// Why the target lets no account be created at all (its `seats`
    /// answered `unauthorized`): each create is a note saying so instead.
    pub creates_refused: Option<String>,
    pub source_read: super::ReadMode,
}

/// Guest merges that free a primary address for the account's create.
pub(super) const PHASE_FREE_PRIMARY: u8 = 0;
pub(super) const PHASE_CREATE: u8 = 1;
/// Guest merges into accounts (new or existing).
pub(super) const PHASE_MERGE: u8 = 2;
pub(super) const PHASE_UPDATE: u8 = 3;
/// Disables and deletes.
pub(super) const PHASE_REMOVE: u8 = 4;

/// The plan as the stages add to it.
pub(super) struct Builder<'a> {
    pub(super) input: &'a PlanInput<'a>,
    /// The sync stage (its defaults when the pipeline has none).
    pub(super) sync: SyncStage,
    pub(super) changes: Vec<PlannedChange>,
    pub(super) links: Vec<PlannedLink>,
    pub(super) unlinks: Vec<PlannedUnlink>,
    pub(super) notes: Vec<Note>,
    pub(super) skipped: Vec<Skipped>,
    pub(super) summary: Summary,
    pub(super) seats_left: Option<u32>,
    /// Target accounts a source account matched in this plan.
    pub(super) matched: HashSet<String>,
}

impl Builder<'_> {
    pub(super) fn note(
        &mut self,
        level: NoteLevel,
        account: &str,
        kind: Option<ErrorKind>,
        message: String,
    ) {
        self.notes.push(Note {
            level,
            account: Some(account.to_string()),
            kind,
            message,
        });
    }

    /// Leaves `account` alone for `reason`: named in the plan (and counted
    /// from that list when the plan is finished).
    pub(super) fn skip(&mut self, account: &str, reason: SkipReason, detail: String) {
        self.skipped.push(Skipped {
            account: account.to_string(),
            reason,
            rule: None,
            detail,
        });
    }
}

pub fn build(input: &PlanInput) -> Plan {
    let pipeline = input.pipeline;
    let filters: Vec<&crate::pipeline::FilterStage> = pipeline.stages.filters.iter().collect();
    let scope = filter(input.source, input.source_groups, &filters);
    let rules = Rules {
        claimed: filters
            .iter()
            .flat_map(|f| &f.claimed_domains)
            .map(|d| d.trim().to_ascii_lowercase())
            .collect(),
        target: input.target,
        delegates: input
            .target_descriptor
            .fields
            .contains(&crate::model::Field::Delegates),
    };
    let shaped = shape(&scope.kept, &rules);
    let sync_stage = pipeline.stages.sync.clone().unwrap_or_default();
    let mut b = Builder {
        input,
        sync: sync_stage,
        changes: vec![],
        links: vec![],
        unlinks: vec![],
        notes: vec![],
        skipped: vec![],
        summary: Summary {
            source_accounts: input.source.len(),
            source_read: input.source_read,
            in_scope: shaped.accounts.len(),
            target_accounts: input.target.len(),
            ..Summary::default()
        },
        seats_left: input.free_seats,
        matched: HashSet::new(),
    };
    let has_sync = pipeline.stages.sync.is_some();
    let default_link = Default::default();
    let link_stage = pipeline.stages.link.as_ref().unwrap_or(&default_link);
    let index = TargetIndex::new(input.target);
    let matcher = Matcher::new(
        link_stage,
        &index,
        input.links,
        input.link_edits,
        input.unlinked,
    );

    for (account, dropped) in &scope.dropped {
        b.skipped.push(Skipped {
            account: account.email.clone(),
            reason: SkipReason::Filtered,
            rule: Some(dropped.rule.to_string()),
            detail: dropped.detail.clone(),
        });
    }
    for account in &shaped.unclaimed {
        let detail = "its primary address is outside the claimed domains".to_string();
        b.skip(account, SkipReason::Unclaimed, detail);
    }
    for (account, message) in &shaped.warnings {
        b.note(NoteLevel::Warning, account, None, message.clone());
    }
    let mut in_scope: Vec<&Account> = Vec::with_capacity(shaped.accounts.len());
    for a in &shaped.accounts {
        match syncable(a.kind) {
            true => in_scope.push(a),
            false => {
                let detail = "a guest in the source: guests are merged into the account whose address they hold, never synced".to_string();
                b.skip(&a.email, SkipReason::Guest, detail);
            }
        }
    }
    // Compared without lowering copies: 100,000 accounts make millions of
    // comparisons.
    let folded = |s: &str| {
        s.bytes()
            .map(|b| b.to_ascii_lowercase())
            .collect::<Vec<u8>>()
    };
    in_scope.sort_by_cached_key(|a| (folded(&a.email), a.id.as_str()));

    // Link every account first, so a target claimed twice is seen before any change is planned.
    let matches: Vec<Match> = in_scope.iter().map(|s| matcher.find(s)).collect();
    let mut claims: HashMap<&str, usize> = HashMap::new();
    for m in &matches {
        if let Match::Linked { target, .. } = m {
            *claims.entry(target.id.as_str()).or_default() += 1;
            b.matched.insert(target.id.clone());
        }
    }
    for (s, m) in in_scope.iter().zip(matches) {
        match m {
            Match::Linked { target, .. } if claims[target.id.as_str()] > 1 => {
                let msg = format!(
                    "target account {} ({}) is matched by more than one source account; link them by hand",
                    target.id, target.email
                );
                b.note(
                    NoteLevel::Conflict,
                    &s.email,
                    Some(ErrorKind::Conflict),
                    msg,
                );
                let detail = format!(
                    "target account {} is matched by more than one source account",
                    target.id
                );
                b.skip(&s.email, SkipReason::Conflict, detail);
            }
            Match::Linked { target, how } => b.linked(s, target, how, &matcher, &index, has_sync),
            Match::Missing {
                target_id,
                how: LinkHow::Manual,
            } => {
                let msg = format!(
                    "the manual link names target account {target_id}, which does not exist"
                );
                b.note(NoteLevel::Error, &s.email, Some(ErrorKind::NotFound), msg);
                let detail = format!(
                    "its manual link names target account {target_id}, which does not exist"
                );
                b.skip(&s.email, SkipReason::MissingTarget, detail);
            }
            Match::Missing { target_id, .. } => {
                let msg = format!(
                    "its linked target account {target_id} no longer exists; it will be created again"
                );
                b.note(NoteLevel::Warning, &s.email, None, msg);
                b.unlinked(s, &matcher, &index, has_sync);
            }
            Match::Unlinked => b.unlinked(s, &matcher, &index, has_sync),
            Match::Unlink { target_id } => {
                b.unlinks.push(PlannedUnlink {
                    source_key: source_key(s),
                    source_email: s.email.clone(),
                    target_id,
                });
            }
            Match::Held { manual_in_pipeline } => {
                let detail = "unlinked with `roster links remove`; left alone until linked again with `roster links add`".to_string();
                b.skip(&s.email, SkipReason::Unlinked, detail);
                if manual_in_pipeline {
                    let msg = "was unlinked with `roster links remove`, which outranks the manual link in the pipeline file; link it again with `roster links add`, or drop the manual link".to_string();
                    b.note(NoteLevel::Warning, &s.email, None, msg);
                }
            }
            Match::Conflict(msg) => {
                b.skip(&s.email, SkipReason::Conflict, msg.clone());
                b.note(
                    NoteLevel::Conflict,
                    &s.email,
                    Some(ErrorKind::Conflict),
                    msg,
                );
            }
        }
    }
    let refused = match has_sync {
        true => b.removals(&index).or(b.unbacked(&rules.claimed)),
        false => None,
    };
    let (edits_done, unused) = matcher.edits_used();
    for edit in unused {
        let msg = format!(
            "the staged link edit for {} matches no source account in scope; drop it with `roster links unstage`",
            edit.source
        );
        b.note(
            NoteLevel::Error,
            &edit.source,
            Some(ErrorKind::NotFound),
            msg,
        );
    }
    b.finish(refused, edits_done)
}

impl Builder<'_> {
    fn finish(mut self, refused: Option<String>, link_edits: Vec<String>) -> Plan {
        // By key, moving each (large) change once.
        self.changes
            .sort_by_cached_key(|c| (c.phase, c.rank(), c.email.clone(), c.key.clone()));
        self.links
            .sort_by(|a, b| a.source_email.cmp(&b.source_email));
        self.unlinks
            .sort_by(|a, b| a.source_email.cmp(&b.source_email));
        self.skipped.sort_by(|a, b| a.account.cmp(&b.account));
        for k in &self.skipped {
            match k.reason.out_of_scope() {
                true => self.summary.filtered += 1,
                false => self.summary.skipped += 1,
            }
            *self
                .summary
                .skipped_by_reason
                .entry(k.count_key())
                .or_default() += 1;
        }
        self.summary.unlinks = self.unlinks.len();
        let short = self
            .notes
            .iter()
            .filter(|n| n.kind == Some(ErrorKind::Licence))
            .count();
        if short > 0 {
            let free = self.input.free_seats.unwrap_or(0);
            self.notes.push(Note {
                level: NoteLevel::Error,
                account: None,
                kind: Some(ErrorKind::Licence),
                message: format!(
                    "{short} more licence seats are needed: {free} were free, {} accounts need one",
                    free as usize + short
                ),
            });
        }
        for n in &self.notes {
            match n.level {
                NoteLevel::Warning => self.summary.warnings += 1,
                NoteLevel::Conflict => self.summary.conflicts += 1,
                NoteLevel::Error => self.summary.errors += 1,
            }
        }
        self.summary.new_links =
            self.links.len() + self.changes.iter().filter(|c| c.link.is_some()).count();
        let pipeline = self.input.pipeline;
        let mut plan = Plan {
            format: FORMAT,
            id: String::new(),
            pipeline: pipeline.name.clone(),
            pipeline_fingerprint: pipeline.fingerprint.clone(),
            source: pipeline.source.clone(),
            target: pipeline.target.clone(),
            changes: self.changes,
            links: self.links,
            unlinks: self.unlinks,
            link_edits,
            notes: self.notes,
            skipped: self.skipped,
            summary: self.summary,
            refused,
        };
        // Hashed as it is serialised: no copy of a plan that may be 100 MB.
        // How the source was read (whole, or only what changed since the
        // last read) is no part of what the plan does: an approved plan made
        // from a full read is the same plan when the approval run reads
        // incrementally.
        let read = std::mem::take(&mut plan.summary.source_read);
        let mut hasher = Sha256::new();
        let _ = serde_json::to_writer(&mut hasher, &plan);
        let digest = hasher.finalize();
        plan.id = hex::encode(&digest[..8]);
        plan.summary.source_read = read;
        plan
    }
}
