//! The sync stage: for each source account in scope, what its target
//! account must become. A linked account is updated where the fields the
//! target keeps differ (or its link options changed); an account nobody
//! matched is created where the pipeline creates its kind, within the free
//! licence seats; every reason an account cannot be synced (blocked in the
//! target, a missing FullAccess grant, no seat) is a note naming it.

use super::build::{Builder, PHASE_CREATE, PHASE_FREE_PRIMARY, PHASE_MERGE, PHASE_UPDATE};
use super::diff::{BLOCKED, desired, diff};
use super::link::{Matcher, TargetIndex, source_key};
use super::*;
use crate::model::{Account, AccountKind, ErrorKind, Field, Operation};
use crate::pipeline::Unmatched;
use std::collections::{BTreeMap, HashSet};

impl<'a> Builder<'a> {
    /// The pipeline's default options with the link's own on top, and the latter.
    fn options_for(
        &self,
        s: &Account,
        matcher: &Matcher,
    ) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let overrides = matcher.overrides(s);
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

    fn fields(&self) -> &'a [Field] {
        &self.input.target_descriptor.fields
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

    pub(super) fn linked(
        &mut self,
        s: &Account,
        t: &Account,
        how: LinkHow,
        matcher: &Matcher,
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
            self.note(NoteLevel::Warning, &s.email, None, msg.clone());
            self.skip(&s.email, SkipReason::KindMismatch, msg);
            return;
        }
        let key = source_key(s);
        let (options, overrides) = self.options_for(s, matcher);
        let stored = matcher.stored(&key);
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
            let reason = if blocked {
                let why = format!("target account {} cannot be changed (see its error)", t.id);
                Some((SkipReason::Blocked, why))
            } else if lacks_grant {
                let why = "its mailbox grants no FullAccess to sync.require_delegate";
                Some((SkipReason::NoDelegateGrant, why.to_string()))
            } else {
                self.seat_for_enable(s, t).err()
            };
            if let Some((reason, detail)) = reason {
                self.skip(&s.email, reason, detail);
                return;
            }
            let fields: Vec<Field> = self
                .fields()
                .iter()
                .copied()
                .filter(|f| changed.iter().any(|d| d.field == f.as_str()))
                .collect();
            let key_update = format!("update:{}", t.id);
            let op = Operation::Update {
                id: t.id.clone(),
                account: want,
                changed: fields,
            };
            let update =
                PlannedChange::new(key_update, PHASE_UPDATE, &s.email, Some(key), op, options);
            self.changes.push(PlannedChange {
                diff: changed,
                after: merge_keys,
                link: change_link,
                ..update
            });
            self.summary.updates += 1;
        } else if needs_update {
            let detail = format!(
                "differs from target account {}, but the sync stage does not update {} accounts",
                t.id,
                s.kind.as_str()
            );
            self.skip(&s.email, SkipReason::NotUpdated, detail);
        } else {
            self.summary.unchanged += 1;
        }
    }

    /// Enabling a disabled target account takes a seat; the reason to skip
    /// it when none is left.
    fn seat_for_enable(&mut self, s: &Account, t: &Account) -> Result<(), (SkipReason, String)> {
        if !(s.enabled && !t.enabled && s.kind == AccountKind::Person) {
            return Ok(());
        }
        self.take_seat(s)
    }

    /// Takes a licence seat for `s`, or notes why there is none and says
    /// why to skip it.
    pub(super) fn take_seat(&mut self, s: &Account) -> Result<(), (SkipReason, String)> {
        if let Some(reason) = &self.input.creates_refused {
            let msg = format!("not created: {reason}");
            self.note(
                NoteLevel::Warning,
                &s.email,
                Some(ErrorKind::Unauthorized),
                msg.clone(),
            );
            return Err((SkipReason::CreatesRefused, msg));
        }
        let Some(left) = self.seats_left.as_mut() else {
            return Ok(());
        };
        if *left > 0 {
            *left -= 1;
            return Ok(());
        }
        let free = self.input.free_seats.unwrap_or(0);
        let msg = format!("no free licence seat ({free} free in the target before this plan)");
        self.note(
            NoteLevel::Error,
            &s.email,
            Some(ErrorKind::Licence),
            msg.clone(),
        );
        Err((SkipReason::NoSeat, msg))
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

    pub(super) fn unlinked(
        &mut self,
        s: &Account,
        matcher: &Matcher,
        index: &TargetIndex<'a>,
        has_sync: bool,
    ) {
        if !has_sync {
            return;
        }
        if let Some(holder) = self.warn_near_miss(s, index) {
            // Creating it would make a second account with this address.
            let detail = format!(
                "target account {holder} holds its primary address; creating it would clash (see its warning)"
            );
            self.skip(&s.email, SkipReason::NearMiss, detail);
            return;
        }
        if !s.enabled && !self.sync.create_disabled {
            let detail = "disabled in the source and unmatched; the sync stage does not create disabled accounts (create_disabled)".to_string();
            self.skip(&s.email, SkipReason::Disabled, detail);
            return;
        }
        if !self.may_create(s.kind) {
            self.unmatched(s);
            let detail = format!(
                "no target account matches it, and the sync stage does not create {} accounts",
                s.kind.as_str()
            );
            self.skip(&s.email, SkipReason::NotCreated, detail);
            return;
        }
        if self.lacks_required_delegate(s) {
            let detail = "its mailbox grants no FullAccess to sync.require_delegate".to_string();
            self.skip(&s.email, SkipReason::NoDelegateGrant, detail);
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
        if s.kind == AccountKind::Person
            && (s.enabled || refused)
            && let Err((reason, detail)) = self.take_seat(s)
        {
            self.skip(&s.email, reason, detail);
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
        let (options, overrides) = self.options_for(s, matcher);
        let link = PlannedLink {
            source_key: key.clone(),
            source_email: s.email.clone(),
            target_id: None,
            how: LinkHow::Created,
            options: options.clone(),
            overrides,
        };
        let op = Operation::Create {
            account: first.clone(),
        };
        let create = PlannedChange::new(
            create_key.clone(),
            PHASE_CREATE,
            &s.email,
            Some(key.clone()),
            op,
            options.clone(),
        );
        self.changes.push(PlannedChange {
            after: primary_merges,
            link: Some(link),
            ..create
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
            let op = Operation::Update {
                id: String::new(),
                account: full,
                changed: vec![Field::Aliases],
            };
            let update =
                PlannedChange::new(update_key, PHASE_UPDATE, &s.email, Some(key), op, options);
            self.changes.push(PlannedChange {
                diff: changed,
                after: alias_merges,
                target_from: Some(create_key),
                ..update
            });
            self.summary.updates += 1;
        }
    }

    /// An address of `s` that a target account holds otherwise than as the
    /// same primary address does not link by itself; say so. True when the
    /// target holds the primary address of `s` (as an alias): that
    /// account's id.
    fn warn_near_miss(&mut self, s: &Account, index: &TargetIndex) -> Option<String> {
        if self.input.pipeline.stages.link.as_ref().map(|l| l.by)
            == Some(crate::pipeline::LinkBy::PrimaryOrAlias)
        {
            return None;
        }
        let (address, t) = index.near_miss(s)?;
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
        t.has_address(&s.email).then(|| t.id.clone())
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
