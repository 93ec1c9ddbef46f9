//! The link stage: which target account each source account is. A manual
//! link wins; then a link stored by an earlier run (so a changed address is
//! an update, not a delete and a create); then a match by primary address
//! (and, if asked, by alias). Two candidates, or two sources claiming one
//! target, is a conflict: reported, left unlinked, never guessed.

use super::LinkHow;
use crate::model::{Account, AccountKind};
use crate::pipeline::{LinkBy, LinkStage};
use crate::state::StoredLink;
use std::collections::HashMap;

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

    /// The non-guest target account holding `address` as primary or alias.
    pub fn holder(&self, address: &str) -> Option<&'t Account> {
        let a = address.to_ascii_lowercase();
        self.by_primary
            .get(&a)
            .or_else(|| self.by_alias.get(&a))
            .and_then(|v| v.first().copied())
    }
}

pub struct Linker<'a, 't> {
    stage: &'a LinkStage,
    index: &'a TargetIndex<'t>,
    stored: HashMap<&'a str, &'a StoredLink>,
}

impl<'a, 't> Linker<'a, 't> {
    pub fn new(stage: &'a LinkStage, index: &'a TargetIndex<'t>, stored: &'a [StoredLink]) -> Self {
        Linker {
            stage,
            index,
            stored: stored.iter().map(|l| (l.source_key.as_str(), l)).collect(),
        }
    }

    pub fn stored(&self, key: &str) -> Option<&'a StoredLink> {
        self.stored.get(key).copied()
    }

    pub fn manual_options(
        &self,
        s: &Account,
    ) -> Option<&'a std::collections::BTreeMap<String, String>> {
        self.manual(s).map(|m| &m.options)
    }

    fn manual(&self, s: &Account) -> Option<&'a crate::pipeline::ManualLink> {
        self.stage.manual.iter().find(|m| {
            m.source.eq_ignore_ascii_case(&s.email)
                || s.external_key.as_deref() == Some(m.source.as_str())
                || m.source == s.id
        })
    }

    pub fn find(&self, s: &Account) -> Match<'t> {
        if let Some(m) = self.manual(s) {
            return match self.index.get(&m.target) {
                Some(target) => Match::Linked {
                    target,
                    how: LinkHow::Manual,
                },
                None => Match::Missing {
                    target_id: m.target.clone(),
                    how: LinkHow::Manual,
                },
            };
        }
        if let Some(link) = self.stored(&source_key(s)) {
            return match self.index.get(&link.target_id) {
                Some(target) => Match::Linked {
                    target,
                    how: LinkHow::Stored,
                },
                None => Match::Missing {
                    target_id: link.target_id.clone(),
                    how: LinkHow::Stored,
                },
            };
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
