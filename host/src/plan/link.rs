//! The link stage: which target account each source account is. A manual
//! link wins; then a link stored by an earlier run (so a changed address is
//! an update, not a delete and a create); then a match by primary address
//! (and, if asked, by alias). Two candidates, or two sources claiming one
//! target, is a conflict: reported, left unlinked, never guessed.

use crate::links::LinkHow;
use crate::links::{LinkEdit, StoredLink, Unlinked};
use crate::model::{Account, AccountKind};
use crate::pipeline::{LinkBy, LinkStage};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The key a source account is linked by: its immutable external key where
/// it has one, else its id in the source.
pub fn source_key(a: &Account) -> String {
    match &a.external_key {
        Some(k) if !k.is_empty() => format!("key:{k}"),
        _ => format!("id:{}", a.id),
    }
}

pub enum Match<'t> {
    Linked {
        target: &'t Account,
        how: LinkHow,
    },
    Unlinked,
    /// A manual or stored link names a target that does not exist.
    Missing {
        target_id: String,
        how: LinkHow,
    },
    Conflict(String),
    /// `roster links remove` staged the unlinking of this account.
    Unlink {
        target_id: Option<String>,
    },
    /// Unlinked on purpose by an earlier apply: left alone, even when the
    /// pipeline file names a manual link for it.
    Held {
        manual_in_pipeline: bool,
    },
}

/// Target accounts indexed for matching.
pub struct TargetIndex<'t> {
    by_id: HashMap<&'t str, &'t Account>,
    by_primary: HashMap<String, Vec<&'t Account>>,
    by_alias: HashMap<String, Vec<&'t Account>>,
    /// Guest accounts by each of their addresses.
    pub guests: HashMap<String, &'t Account>,
}

impl<'t> TargetIndex<'t> {
    pub fn new(target: &'t [Account]) -> Self {
        let mut index = TargetIndex {
            by_id: HashMap::new(),
            by_primary: HashMap::new(),
            by_alias: HashMap::new(),
            guests: HashMap::new(),
        };
        for t in target {
            index.by_id.insert(t.id.as_str(), t);
            if t.kind == AccountKind::Guest {
                for a in t.addresses() {
                    index.guests.insert(a.to_ascii_lowercase(), t);
                }
                continue;
            }
            index
                .by_primary
                .entry(t.email.to_ascii_lowercase())
                .or_default()
                .push(t);
            for a in &t.aliases {
                index
                    .by_alias
                    .entry(a.to_ascii_lowercase())
                    .or_default()
                    .push(t);
            }
        }
        index
    }

    pub fn get(&self, id: &str) -> Option<&'t Account> {
        self.by_id.get(id).copied()
    }

    /// A near miss for an unlinked source account: a target account that
    /// holds one of its addresses, but not as the same primary address.
    pub fn near_miss<'s>(&self, s: &'s Account) -> Option<(&'s str, &'t Account)> {
        let email = s.email.to_ascii_lowercase();
        if let Some(t) = self.by_alias.get(&email).and_then(|v| v.first()) {
            return Some((s.email.as_str(), *t));
        }
        s.aliases.iter().find_map(|a| {
            self.by_primary
                .get(&a.to_ascii_lowercase())
                .and_then(|v| v.first())
                .map(|t| (a.as_str(), *t))
        })
    }

    /// The non-guest target account holding `address` as primary or alias.
    pub fn holder(&self, address: &str) -> Option<&'t Account> {
        let a = address.to_ascii_lowercase();
        self.by_primary
            .get(&a)
            .or_else(|| self.by_alias.get(&a))
            .and_then(|v| v.first().copied())
    }
}

/// Does `name` (an address, external key or id, as an admin typed it) name `s`?
pub fn names(name: &str, s: &Account) -> bool {
    name.eq_ignore_ascii_case(&s.email) || s.external_key.as_deref() == Some(name) || name == s.id
}

pub struct Matcher<'a, 't> {
    stage: &'a LinkStage,
    index: &'a TargetIndex<'t>,
    stored: HashMap<&'a str, &'a StoredLink>,
    edits: &'a [LinkEdit],
    held: HashSet<&'a str>,
    /// The staged edits that matched an account in scope.
    used_edits: RefCell<Vec<String>>,
}

impl<'a, 't> Matcher<'a, 't> {
    pub fn new(
        stage: &'a LinkStage,
        index: &'a TargetIndex<'t>,
        stored: &'a [StoredLink],
        edits: &'a [LinkEdit],
        held: &'a [Unlinked],
    ) -> Self {
        Matcher {
            stage,
            index,
            stored: stored.iter().map(|l| (l.source_key.as_str(), l)).collect(),
            edits,
            held: held.iter().map(|u| u.source_key.as_str()).collect(),
            used_edits: RefCell::new(vec![]),
        }
    }

    pub fn stored(&self, key: &str) -> Option<&'a StoredLink> {
        self.stored.get(key).copied()
    }

    /// The link's own options: a staged edit's, else the pipeline's manual
    /// link's, else those stored with the link.
    pub fn overrides(&self, s: &Account) -> BTreeMap<String, String> {
        if let Some(edit) = self.edit(s).filter(|e| e.target_id.is_some()) {
            return edit.options.clone();
        }
        if let Some(m) = self.manual(s) {
            return m.options.clone();
        }
        self.stored(&source_key(s))
            .map(|l| l.overrides.clone())
            .unwrap_or_default()
    }

    /// The staged edit for `s`, if any.
    pub fn edit(&self, s: &Account) -> Option<&'a LinkEdit> {
        self.edits.iter().find(|e| names(&e.source, s))
    }

    /// Staged edits carried out by this plan, and those that matched nothing.
    pub fn edits_used(&self) -> (Vec<String>, Vec<&'a LinkEdit>) {
        let used = self.used_edits.borrow().clone();
        let unused = self
            .edits
            .iter()
            .filter(|e| !used.contains(&e.source))
            .collect();
        (used, unused)
    }

    fn manual(&self, s: &Account) -> Option<&'a crate::pipeline::ManualLink> {
        self.stage.manual.iter().find(|m| names(&m.source, s))
    }

    fn to_target(&self, target_id: &str, how: LinkHow) -> Match<'t> {
        match self.index.get(target_id) {
            Some(target) => Match::Linked { target, how },
            None => Match::Missing {
                target_id: target_id.to_string(),
                how,
            },
        }
    }

    pub fn find(&self, s: &Account) -> Match<'t> {
        let key = source_key(s);
        if let Some(edit) = self.edit(s) {
            self.used_edits.borrow_mut().push(edit.source.clone());
            return match &edit.target_id {
                // New options for a link as it is keep how it was made.
                Some(target)
                    if edit.options_only
                        && self.stored(&key).is_some_and(|l| &l.target_id == target) =>
                {
                    self.to_target(target, LinkHow::Stored)
                }
                Some(target) => self.to_target(target, LinkHow::Manual),
                None => Match::Unlink {
                    target_id: self.stored(&key).map(|l| l.target_id.clone()),
                },
            };
        }
        if self.held.contains(key.as_str()) {
            return Match::Held {
                manual_in_pipeline: self.manual(s).is_some(),
            };
        }
        if let Some(m) = self.manual(s) {
            return self.to_target(&m.target, LinkHow::Manual);
        }
        if let Some(link) = self.stored(&key) {
            return self.to_target(&link.target_id, LinkHow::Stored);
        }
        self.by_address(s)
    }

    fn by_address(&self, s: &Account) -> Match<'t> {
        let email = s.email.to_ascii_lowercase();
        let mut candidates: Vec<(&'t Account, LinkHow)> = self
            .index
            .by_primary
            .get(&email)
            .into_iter()
            .flatten()
            .map(|t| (*t, LinkHow::Primary))
            .collect();
        if candidates.is_empty() && self.stage.by == LinkBy::PrimaryOrAlias {
            let via_alias = s.aliases.iter().flat_map(|a| {
                self.index
                    .by_primary
                    .get(&a.to_ascii_lowercase())
                    .into_iter()
                    .flatten()
            });
            let via_target_alias = self.index.by_alias.get(&email).into_iter().flatten();
            candidates = via_alias
                .chain(via_target_alias)
                .map(|t| (*t, LinkHow::Alias))
                .collect();
            candidates.sort_by(|a, b| a.0.id.cmp(&b.0.id));
            candidates.dedup_by(|a, b| a.0.id == b.0.id);
        }
        match candidates.as_slice() {
            [] => Match::Unlinked,
            [(target, how)] => Match::Linked { target, how: *how },
            many => {
                let ids: Vec<String> = many
                    .iter()
                    .map(|(t, _)| format!("{} ({})", t.id, t.email))
                    .collect();
                Match::Conflict(format!(
                    "matches {} target accounts: {}; link it by hand",
                    many.len(),
                    ids.join(", ")
                ))
            }
        }
    }
}
