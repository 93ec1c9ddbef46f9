//! Builds the plan: filter, link, merge and sync, in the pipeline's order.

use super::diff::{desired, diff};
use super::filter::{filter, syncable};
use super::link::{Linker, Match, TargetIndex, source_key};
use super::shape::{Rules, shape};
use super::*;
use crate::links::{LinkEdit, StoredLink, Unlinked};
use crate::model::{
    Account, AccountKind, AccountRef, Change, Descriptor, ErrorKind, Group, Operation,
};
use crate::pipeline::{MergeMode, Pipeline, Removal, SyncStage, UnlinkedPolicy, Unmatched};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};

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

use super::diff::{BLOCKED, REMEDY};

const PHASE_FREE_PRIMARY: u8 = 0;
const PHASE_CREATE: u8 = 1;
const PHASE_MERGE: u8 = 2;
const PHASE_UPDATE: u8 = 3;
const PHASE_REMOVE: u8 = 4;

struct Builder<'a> {
    input: &'a PlanInput<'a>,
    sync: SyncStage,
    changes: Vec<PlannedChange>,
    links: Vec<PlannedLink>,
    unlinks: Vec<PlannedUnlink>,
    notes: Vec<Note>,
    summary: Summary,
    seats_left: Option<u32>,
    /// Target accounts a source account matched in this plan.
    matched: HashSet<String>,
}

impl Builder<'_> {
    fn note(&mut self, level: NoteLevel, account: &str, kind: Option<ErrorKind>, message: String) {
        self.notes.push(Note {
            level,
            account: Some(account.to_string()),
            kind,
            message,
        });
    }
}

pub fn build(input: &PlanInput) -> Plan {
    let pipeline = input.pipeline;
    let filters: Vec<&crate::pipeline::FilterStage> = pipeline.filters().collect();
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
    let sync_stage = pipeline.sync_stage().cloned().unwrap_or_default();
    let mut b = Builder {
        input,
        sync: sync_stage,
        changes: vec![],
        links: vec![],
        unlinks: vec![],
        notes: vec![],
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
    let has_sync = pipeline.sync_stage().is_some();
    let default_link = Default::default();
    let link_stage = pipeline.link_stage().unwrap_or(&default_link);
    let index = TargetIndex::new(input.target);
    let linker = Linker::new(
        link_stage,
        &index,
        input.links,
        input.link_edits,
        input.unlinked,
    );

    for (account, message) in &shaped.warnings {
        b.note(NoteLevel::Warning, account, None, message.clone());
    }
    let mut in_scope: Vec<&Account> = shaped
        .accounts
        .iter()
        .filter(|a| syncable(a.kind))
        .collect();
    b.summary.skipped += b.summary.in_scope - in_scope.len();
    // Compared without lowering copies: 100,000 accounts make millions of
    // comparisons.
    let folded = |s: &str| {
        s.bytes()
            .map(|b| b.to_ascii_lowercase())
            .collect::<Vec<u8>>()
    };
    in_scope.sort_by_cached_key(|a| (folded(&a.email), a.id.as_str()));

    // Link every account first, so a target claimed twice is seen before any change is planned.
    let matches: Vec<Match> = in_scope.iter().map(|s| linker.find(s)).collect();
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
            }
            Match::Linked { target, how } => b.linked(s, target, how, &linker, &index, has_sync),
            Match::Missing {
                target_id,
                how: LinkHow::Manual,
            } => {
                let msg = format!(
                    "the manual link names target account {target_id}, which does not exist"
                );
                b.note(NoteLevel::Error, &s.email, Some(ErrorKind::NotFound), msg);
            }
            Match::Missing { target_id, .. } => {
                let msg = format!(
                    "its linked target account {target_id} no longer exists; it will be created again"
                );
                b.note(NoteLevel::Warning, &s.email, None, msg);
                b.unlinked(s, &linker, &index, has_sync);
            }
            Match::Unlinked => b.unlinked(s, &linker, &index, has_sync),
            Match::Unlink { target_id } => {
                b.unlinks.push(PlannedUnlink {
                    source_key: source_key(s),
                    source_email: s.email.clone(),
                    target_id,
                });
            }
            Match::Held { manual_in_pipeline } => {
                b.summary.skipped += 1;
                if manual_in_pipeline {
                    let msg = "was unlinked with `roster links remove`, which outranks the manual link in the pipeline file; link it again with `roster links add`, or drop the manual link".to_string();
                    b.note(NoteLevel::Warning, &s.email, None, msg);
                }
            }
            Match::Conflict(msg) => b.note(
                NoteLevel::Conflict,
                &s.email,
                Some(ErrorKind::Conflict),
                msg,
            ),
        }
    }
    let refused = match has_sync {
        true => b.removals(&index).or(b.unbacked(&rules.claimed)),
        false => None,
    };
    let (edits_done, unused) = linker.edits_used();
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

impl<'a> Builder<'a> {
    /// The pipeline's default options with the link's own on top, and the latter.
    fn options_for(
        &self,
        s: &Account,
        linker: &Linker,
    ) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let overrides = linker.overrides(s);
        let mut options = self.sync.options.clone();
        options.extend(overrides.clone());
        (options, overrides)
    }

    fn may_create(&self, kind: AccountKind) -> bool {
        match kind {
            AccountKind::Functional => self.sync.create_functional,
            _ => self.sync.create_users,
        }
    }

    fn may_update(&self, kind: AccountKind) -> bool {
        match kind {
            AccountKind::Functional => self.sync.update_functional,
            _ => self.sync.update_users,
        }
    }

    fn fields(&self) -> &'a [crate::model::Field] {
        &self.input.target_descriptor.fields
    }

    /// Guests holding this account's addresses, per the merge mode; a guest
    /// the target says Roster cannot merge (it carries a remedy) never is.
    fn guests_to_merge(&self, s: &Account, index: &TargetIndex<'a>) -> Vec<(&'a Account, bool)> {
        let mode = self.input.pipeline.merge_mode();
        let mut out = Vec::new();
        for (i, address) in s.addresses().enumerate() {
            let is_primary = i == 0;
            let Some(guest) = index.guests.get(&address.to_ascii_lowercase()) else {
                continue;
            };
            if guest.attributes.contains_key(REMEDY) {
                continue;
            }
            match mode {
                MergeMode::AliasOnly | MergeMode::AliasOrPrimary if !is_primary => {
                    out.push((*guest, false))
                }
                MergeMode::AliasOrPrimary => out.push((*guest, true)),
                _ => {}
            }
        }
        out.dedup_by(|a, b| a.0.id == b.0.id);
        out
    }

    /// Aliases of `s` that a guest holds and no planned merge frees: writing
    /// them would fail, so they are left out of the account (lower case),
    /// each with a warning saying what frees it. A guest holding the primary
    /// address is only warned about.
    fn held_by_guests(
        &mut self,
        s: &Account,
        index: &TargetIndex,
        merging: &HashSet<String>,
    ) -> HashSet<String> {
        let mut held = HashSet::new();
        for (i, address) in s.addresses().enumerate() {
            let Some(guest) = index.guests.get(&address.to_ascii_lowercase()) else {
                continue;
            };
            if merging.contains(&guest.id) {
                continue;
            }
            let remedy = match guest.attributes.get(REMEDY) {
                Some(r) => r.clone(),
                None => "add a merge stage (mode alias-only or alias-or-primary) to merge the guest into this account".to_string(),
            };
            let msg = match i {
                0 => format!(
                    "{address} is a guest account ({}) in the target, so writing it may fail; {remedy}",
                    guest.id
                ),
                _ => {
                    held.insert(address.to_ascii_lowercase());
                    format!(
                        "alias {address} is held by a guest account in the target, so it is left out for now: {remedy}"
                    )
                }
            };
            self.note(NoteLevel::Warning, &s.email, Some(ErrorKind::Conflict), msg);
        }
        held
    }

    fn merge_change(
        &mut self,
        s: &Account,
        guest: &Account,
        into_id: Option<String>,
        phase: u8,
        after: Vec<String>,
        target_from: Option<String>,
    ) -> String {
        let key = format!("merge-guest:{}", guest.id);
        self.changes.push(PlannedChange {
            key: key.clone(),
            action: Action::MergeGuest,
            phase,
            email: s.email.clone(),
            source_key: Some(source_key(s)),
            change: Change {
                id: key.clone(),
                op: Operation::MergeGuest {
                    guest: AccountRef {
                        id: Some(guest.id.clone()),
                        email: guest.email.clone(),
                    },
                    into: AccountRef {
                        id: into_id,
                        email: s.email.clone(),
                    },
                },
                options: BTreeMap::new(),
            },
            diff: vec![],
            after,
            target_from,
            link: None,
        });
        self.summary.merges += 1;
        key
    }

    /// A person whose mailbox the account `sync.require_delegate` names
    /// holds no FullAccess on: an error naming the grant to make; true.
    fn lacks_required_delegate(&mut self, s: &Account) -> bool {
        let Some(holder) = &self.sync.require_delegate else {
            return false;
        };
        if s.kind != AccountKind::Person
            || s.delegates.iter().any(|d| d.eq_ignore_ascii_case(holder))
        {
            return false;
        }
        let msg = format!(
            "{holder} holds no FullAccess on this mailbox, and {} syncs only mailboxes it does: grant it in Exchange (`Add-MailboxPermission -Identity {} -User {holder} -AccessRights FullAccess -AutoMapping $false`, or the mailbox's Delegation in the Exchange admin center); the source must read delegates",
            self.input.pipeline.target, s.email
        );
        self.note(
            NoteLevel::Error,
            &s.email,
            Some(ErrorKind::Unauthorized),
            msg,
        );
        true
    }

    fn linked(
        &mut self,
        s: &Account,
        t: &Account,
        how: LinkHow,
        linker: &Linker,
        index: &TargetIndex<'a>,
        has_sync: bool,
    ) {
        if s.kind != t.kind {
            let msg = format!(
                "is a {} in the source but a {} account ({}) in the target; skipped",
                s.kind.as_str(),
                t.kind.as_str(),
                t.id
            );
            self.note(NoteLevel::Warning, &s.email, None, msg);
            self.summary.skipped += 1;
            return;
        }
        let key = source_key(s);
        let (options, overrides) = self.options_for(s, linker);
        let stored = linker.stored(&key);
        let how = match how {
            LinkHow::Stored => stored.map(|l| l.how).unwrap_or(how),
            _ => how,
        };
        // The target learns a link's options with a change: a new link that
        // carries options, or changed options, is an update. Until that
        // update succeeds the link is kept with the options the target has.
        let options_changed = match stored {
            Some(l) => l.options != options || l.target_id != t.id,
            None => !options.is_empty(),
        };
        let recorded = PlannedLink {
            source_key: key.clone(),
            source_email: s.email.clone(),
            target_id: Some(t.id.clone()),
            how,
            options: if options_changed {
                stored
                    .filter(|l| l.target_id == t.id)
                    .map(|l| l.options.clone())
                    .unwrap_or_default()
            } else {
                options.clone()
            },
            overrides: overrides.clone(),
        };
        if stored.is_none_or(|l| {
            l.target_id != t.id
                || l.options != recorded.options
                || l.overrides != overrides
                || l.how != how
        }) {
            self.links.push(recorded.clone());
        }
        let change_link = options_changed.then(|| PlannedLink {
            options: options.clone(),
            ..recorded
        });
        if !has_sync {
            return;
        }
        let merges = self.guests_to_merge(s, index);
        let merging: HashSet<String> = merges.iter().map(|(g, _)| g.id.clone()).collect();
        let held = self.held_by_guests(s, index, &merging);
        let merge_keys: Vec<String> = merges
            .iter()
            .map(|(g, _)| self.merge_change(s, g, Some(t.id.clone()), PHASE_MERGE, vec![], None))
            .collect();
        let mut want = desired(s, Some(t), self.fields());
        want.aliases
            .retain(|a| !held.contains(&a.to_ascii_lowercase()));
        let mut changed = diff(&want, t, self.fields());
        if let Some(link) = &change_link {
            let before = stored.filter(|l| l.target_id == t.id).map(|l| &l.options);
            changed.push(FieldDiff {
                field: "options".into(),
                from: show_options(before.unwrap_or(&BTreeMap::new())),
                to: show_options(&link.options),
            });
        }
        let needs_update =
            !changed.is_empty() || !merge_keys.is_empty() && !addresses_held(&want, t);
        if needs_update && self.may_update(s.kind) {
            // Every reason the account cannot be synced is reported, not the first only.
            let blocked = self.blocked(s, t);
            let lacks_grant = self.lacks_required_delegate(s);
            if blocked || lacks_grant || !self.seat_for_enable(s, t) {
                self.summary.skipped += 1;
                return;
            }
            let fields: Vec<crate::model::Field> = self
                .fields()
                .iter()
                .copied()
                .filter(|f| changed.iter().any(|d| d.field == f.as_str()))
                .collect();
            let key_update = format!("update:{}", t.id);
            self.changes.push(PlannedChange {
                key: key_update.clone(),
                action: Action::Update,
                phase: PHASE_UPDATE,
                email: s.email.clone(),
                source_key: Some(key),
                change: Change {
                    id: key_update,
                    op: Operation::Update {
                        id: t.id.clone(),
                        account: want,
                        changed: fields,
                    },
                    options,
                },
                diff: changed,
                after: merge_keys,
                target_from: None,
                link: change_link,
            });
            self.summary.updates += 1;
        } else if needs_update {
            self.summary.skipped += 1;
        } else {
            self.summary.unchanged += 1;
        }
    }

    /// Enabling a disabled target account takes a seat; false when none is left.
    fn seat_for_enable(&mut self, s: &Account, t: &Account) -> bool {
        if !(s.enabled && !t.enabled && s.kind == AccountKind::Person) {
            return true;
        }
        self.take_seat(s)
    }

    /// Takes a licence seat for `s`, or notes a licence error.
    fn take_seat(&mut self, s: &Account) -> bool {
        if let Some(reason) = &self.input.creates_refused {
            let msg = format!("not created: {reason}");
            self.note(
                NoteLevel::Warning,
                &s.email,
                Some(ErrorKind::Unauthorized),
                msg,
            );
            self.summary.skipped += 1;
            return false;
        }
        let Some(left) = self.seats_left.as_mut() else {
            return true;
        };
        if *left > 0 {
            *left -= 1;
            return true;
        }
        let free = self.input.free_seats.unwrap_or(0);
        let msg = format!("no free licence seat ({free} free in the target before this plan)");
        self.note(NoteLevel::Error, &s.email, Some(ErrorKind::Licence), msg);
        false
    }

    /// A linked target account the target says cannot be changed (e.g. a
    /// CRM user that is disabled in the CRM), with the target's reason.
    fn blocked(&mut self, s: &Account, t: &Account) -> bool {
        let Some(reason) = t.attributes.get(BLOCKED) else {
            return false;
        };
        let msg = format!("target account {} ({}): {reason}", t.id, t.email);
        self.note(NoteLevel::Error, &s.email, Some(ErrorKind::Invalid), msg);
        true
    }

    fn unlinked(&mut self, s: &Account, linker: &Linker, index: &TargetIndex<'a>, has_sync: bool) {
        if !has_sync {
            return;
        }
        if self.warn_near_miss(s, index) {
            // Creating it would make a second account with this address.
            self.summary.skipped += 1;
            return;
        }
        if !s.enabled && !self.sync.create_disabled {
            self.summary.skipped += 1;
            return;
        }
        if !self.may_create(s.kind) {
            self.unmatched(s);
            self.summary.skipped += 1;
            return;
        }
        if self.lacks_required_delegate(s) {
            self.summary.skipped += 1;
            return;
        }
        for alias in &s.aliases {
            if let Some(holder) = index.holder(alias) {
                let msg = format!(
                    "alias {alias} already belongs to target account {} ({})",
                    holder.id, holder.email
                );
                self.note(NoteLevel::Warning, &s.email, Some(ErrorKind::Conflict), msg);
            }
        }
        // A disabled account is made without a licence seat.
        let refused = self.input.creates_refused.is_some();
        if s.kind == AccountKind::Person && (s.enabled || refused) && !self.take_seat(s) {
            return;
        }
        let merges = self.guests_to_merge(s, index);
        let merging: HashSet<String> = merges.iter().map(|(g, _)| g.id.clone()).collect();
        let held_by_guests = self.held_by_guests(s, index, &merging);
        let key = source_key(s);
        let create_key = format!("create:{key}");
        // A guest holding the primary address is merged first; guests holding
        // aliases are merged into the new account, then the aliases are added.
        let primary_merges: Vec<String> = merges
            .iter()
            .filter(|(_, primary)| *primary)
            .map(|(g, _)| self.merge_change(s, g, None, PHASE_FREE_PRIMARY, vec![], None))
            .collect();
        let held: HashSet<String> = merges
            .iter()
            .filter(|(_, p)| !p)
            .flat_map(|(g, _)| g.addresses().map(str::to_ascii_lowercase))
            .collect();
        let mut full = desired(s, None, self.fields());
        full.aliases
            .retain(|a| !held_by_guests.contains(&a.to_ascii_lowercase()));
        let mut first = full.clone();
        first
            .aliases
            .retain(|a| !held.contains(&a.to_ascii_lowercase()));
        let (options, overrides) = self.options_for(s, linker);
        let link = PlannedLink {
            source_key: key.clone(),
            source_email: s.email.clone(),
            target_id: None,
            how: LinkHow::Created,
            options: options.clone(),
            overrides,
        };
        self.changes.push(PlannedChange {
            key: create_key.clone(),
            action: Action::Create,
            phase: PHASE_CREATE,
            email: s.email.clone(),
            source_key: Some(key.clone()),
            change: Change {
                id: create_key.clone(),
                op: Operation::Create {
                    account: first.clone(),
                },
                options: options.clone(),
            },
            diff: vec![],
            after: primary_merges,
            target_from: None,
            link: Some(link),
        });
        self.summary.creates += 1;
        let alias_merges: Vec<String> = merges
            .iter()
            .filter(|(_, primary)| !primary)
            .map(|(g, _)| {
                self.merge_change(
                    s,
                    g,
                    None,
                    PHASE_MERGE,
                    vec![create_key.clone()],
                    Some(create_key.clone()),
                )
            })
            .collect();
        if !alias_merges.is_empty() {
            let update_key = format!("update:{create_key}");
            let changed = diff(&full, &first, self.fields());
            self.changes.push(PlannedChange {
                key: update_key.clone(),
                action: Action::Update,
                phase: PHASE_UPDATE,
                email: s.email.clone(),
                source_key: Some(key),
                change: Change {
                    id: update_key,
                    op: Operation::Update {
                        id: String::new(),
                        account: full,
                        changed: vec![crate::model::Field::Aliases],
                    },
                    options,
                },
                diff: changed,
                after: alias_merges,
                target_from: Some(create_key),
                link: None,
            });
            self.summary.updates += 1;
        }
    }

    /// An address of `s` that a target account holds otherwise than as the
    /// same primary address does not link by itself; say so. True when the
    /// target holds the primary address of `s` (as an alias).
    fn warn_near_miss(&mut self, s: &Account, index: &TargetIndex) -> bool {
        if self.input.pipeline.link_stage().map(|l| l.by)
            == Some(crate::pipeline::LinkBy::PrimaryOrAlias)
        {
            return false;
        }
        let Some((address, t)) = index.near_miss(s) else {
            return false;
        };
        let role = if t.has_address(&s.email) && !t.email.eq_ignore_ascii_case(&s.email) {
            "an alias of"
        } else {
            "the primary address of"
        };
        let msg = format!(
            "not linked: {address} is {role} target account {} ({}), and only the same primary address links by itself; if they are one person, `roster links PIPELINE add {} {}`",
            t.id, t.email, s.email, t.id
        );
        self.note(NoteLevel::Warning, &s.email, Some(ErrorKind::Conflict), msg);
        t.has_address(&s.email)
    }

    /// An enabled source account that matches nothing and is not created.
    fn unmatched(&mut self, s: &Account) {
        let level = match self.sync.unmatched {
            Unmatched::Ignore => return,
            Unmatched::Warn => NoteLevel::Warning,
            Unmatched::Error => NoteLevel::Error,
        };
        let msg = format!(
            "no {} account has the primary address {}, and the pipeline does not create {} accounts; create it there or link it by hand",
            self.input.pipeline.target,
            s.email,
            s.kind.as_str()
        );
        self.note(level, &s.email, Some(ErrorKind::NotFound), msg);
    }

    /// Linked target accounts whose source account is gone from the source
    /// altogether (not merely filtered out), behind the safety threshold.
    fn removals(&mut self, index: &TargetIndex) -> Option<String> {
        if self.sync.removed == Removal::Keep {
            return None;
        }
        let present: HashSet<String> = self.input.source.iter().map(source_key).collect();
        let mut count = 0u32;
        for link in self.input.links {
            if present.contains(&link.source_key) {
                continue;
            }
            let Some(t) = index.get(&link.target_id) else {
                continue;
            };
            let (action, op, key) = match self.sync.removed {
                Removal::Disable if t.enabled => (
                    Action::Disable,
                    Operation::Disable { id: t.id.clone() },
                    format!("disable:{}", t.id),
                ),
                Removal::Delete => (
                    Action::Delete,
                    Operation::Delete { id: t.id.clone() },
                    format!("delete:{}", t.id),
                ),
                _ => continue,
            };
            count += 1;
            match action {
                Action::Disable => self.summary.disables += 1,
                _ => self.summary.deletes += 1,
            }
            self.changes.push(PlannedChange {
                key: key.clone(),
                action,
                phase: PHASE_REMOVE,
                email: t.email.clone(),
                source_key: Some(link.source_key.clone()),
                change: Change {
                    id: key,
                    op,
                    options: link.options.clone(),
                },
                diff: vec![],
                after: vec![],
                target_from: None,
                link: None,
            });
        }
        let linked = self.input.links.len().max(1) as f64;
        let percent = f64::from(count) * 100.0 / linked;
        let (max, max_pct) = (self.sync.max_removals, self.sync.max_removals_percent);
        (count > 0 && (count > max || percent > max_pct)).then(|| {
            format!(
                "the plan removes {count} accounts ({percent:.1}% of {} linked), above the safety threshold of {max} accounts or {max_pct}%; check the source, then pass --allow-removals to apply it",
                self.input.links.len()
            )
        })
    }

    /// Target people in the claimed domains, enabled, that Roster has not
    /// linked, that no source account matched in this plan, and whose
    /// addresses no source account holds (not even one filtered out):
    /// accounts made before Roster, with nobody behind them. Kept, named
    /// with a warning, or disabled behind the removal thresholds (counted
    /// against the people in the claimed domains), per `sync.unlinked`.
    /// Accounts outside the claimed domains are never touched.
    fn unbacked(&mut self, claimed: &HashSet<String>) -> Option<String> {
        let policy = self.sync.unlinked;
        if policy == UnlinkedPolicy::Keep || claimed.is_empty() {
            return None;
        }
        let in_claimed = |address: &str| {
            address
                .rsplit_once('@')
                .is_some_and(|(_, d)| claimed.contains(&d.to_ascii_lowercase()))
        };
        let linked: HashSet<&str> = self
            .input
            .links
            .iter()
            .map(|l| l.target_id.as_str())
            .collect();
        let backed: HashSet<String> = self
            .input
            .source
            .iter()
            .flat_map(|s| s.addresses().map(str::to_ascii_lowercase))
            .collect();
        let people: Vec<&Account> = self
            .input
            .target
            .iter()
            .filter(|t| t.kind == AccountKind::Person && in_claimed(&t.email))
            .collect();
        let unbacked: Vec<&Account> = people
            .iter()
            .copied()
            .filter(|t| t.enabled && !t.attributes.contains_key(BLOCKED))
            .filter(|t| !linked.contains(t.id.as_str()) && !self.matched.contains(&t.id))
            .filter(|t| {
                !t.addresses()
                    .any(|a| backed.contains(&a.to_ascii_lowercase()))
            })
            .collect();
        for t in &unbacked {
            match policy {
                UnlinkedPolicy::Report => {
                    let msg = format!(
                        "target account {} is in a claimed domain, and no source account backs it; `unlinked = \"disable\"` in the sync stage would disable it",
                        t.id
                    );
                    self.note(NoteLevel::Warning, &t.email, None, msg);
                }
                _ => {
                    let key = format!("disable:{}", t.id);
                    self.summary.disables += 1;
                    self.changes.push(PlannedChange {
                        key: key.clone(),
                        action: Action::Disable,
                        phase: PHASE_REMOVE,
                        email: t.email.clone(),
                        source_key: None,
                        change: Change {
                            id: key,
                            op: Operation::Disable { id: t.id.clone() },
                            options: BTreeMap::new(),
                        },
                        diff: vec![],
                        after: vec![],
                        target_from: None,
                        link: None,
                    });
                }
            }
        }
        let count = match policy {
            UnlinkedPolicy::Disable => unbacked.len() as u32,
            _ => 0,
        };
        let percent = f64::from(count) * 100.0 / people.len().max(1) as f64;
        let (max, max_pct) = (self.sync.max_removals, self.sync.max_removals_percent);
        (count > 0 && (count > max || percent > max_pct)).then(|| {
            format!(
                "the plan disables {count} target accounts that no source account backs ({percent:.1}% of the {} people in the claimed domains), above the safety threshold of {max} accounts or {max_pct}%; check them in the plan, then pass --allow-removals to apply it",
                people.len()
            )
        })
    }

    fn finish(mut self, refused: Option<String>, link_edits: Vec<String>) -> Plan {
        // Within a phase, people before functional accounts: a functional
        // account's members (its delegates) must exist when it is written.
        let rank = |c: &PlannedChange| match &c.change.op {
            Operation::Create { account } => u8::from(account.kind == AccountKind::Functional),
            _ => 0,
        };
        // By key, moving each (large) change once.
        self.changes
            .sort_by_cached_key(|c| (c.phase, rank(c), c.email.clone(), c.key.clone()));
        self.links
            .sort_by(|a, b| a.source_email.cmp(&b.source_email));
        self.unlinks
            .sort_by(|a, b| a.source_email.cmp(&b.source_email));
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
            summary: self.summary,
            refused,
        };
        // Hashed as it is serialised: no copy of a plan that may be 100 MB.
        let mut hasher = Sha256::new();
        let _ = serde_json::to_writer(&mut hasher, &plan);
        let digest = hasher.finalize();
        plan.id = hex::encode(&digest[..8]);
        plan
    }
}

/// Options in a diff: `diary=true, task=false`, or `(none)`.
fn show_options(options: &BTreeMap<String, String>) -> String {
    match options.is_empty() {
        true => "(none)".into(),
        false => options_text(options),
    }
}

/// Does the target already hold every address the desired account has?
fn addresses_held(want: &Account, have: &Account) -> bool {
    want.addresses().all(|a| have.has_address(a))
}
