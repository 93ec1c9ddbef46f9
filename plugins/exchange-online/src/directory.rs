//! What the Exchange admin API says about mailboxes: their type, whether
//! the account is disabled, their addresses, and who holds FullAccess. A
//! full read loads every mailbox up front (`complete`); a delta read looks
//! up only what the changed users need, so lookups can answer "unknown yet".
//!
//! Delegates are the FullAccess holders that are mailboxes of the tenant,
//! followed through shared mailboxes (a shared mailbox holding FullAccess
//! stands for its own holders), cycle-safe. Exchange names a holder by its
//! UserPrincipalName, so mailboxes are found by it too, and by every
//! identity a lookup used.
//!
//! [`Chains::All`] follows holders through user mailboxes as well (the
//! holder of FullAccess on a user's mailbox counts for what that user holds),
//! to at most [`MAX_DEPTH`] mailboxes away, as Zivver's CloudSync does.
//! Exchange's own access does not pass through a user's mailbox that way, so
//! it is not the default.

use crate::convert::addresses;
use crate::model::MailboxJson;
use std::collections::{BTreeSet, HashMap, HashSet};

/// How far delegate walks go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Chains {
    /// Through shared mailboxes only (Exchange's own reading).
    #[default]
    Shared,
    /// Through user mailboxes too (CloudSync's reading), depth-limited.
    All,
}

/// How many mailboxes away a walk through user mailboxes goes (CloudSync: 10).
pub const MAX_DEPTH: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailboxKind {
    User,
    Shared,
    /// Rooms and equipment: functional, not people.
    Resource,
}

#[derive(Clone, Debug)]
pub struct Mailbox {
    pub primary: String,
    pub kind: MailboxKind,
    pub type_name: String,
    pub disabled: bool,
    /// Every address of the mailbox but the primary.
    pub addresses: Vec<String>,
}

impl Mailbox {
    pub fn from_json(m: &MailboxJson) -> Mailbox {
        let type_name = m
            .recipient_type_details
            .clone()
            .unwrap_or_else(|| "UserMailbox".into());
        let kind = match type_name.as_str() {
            "SharedMailbox" => MailboxKind::Shared,
            "RoomMailbox" | "EquipmentMailbox" | "SchedulingMailbox" => MailboxKind::Resource,
            _ => MailboxKind::User,
        };
        let (_, aliases) = addresses(m.email_addresses.as_deref().unwrap_or_default());
        let primary = m.primary_smtp_address.clone();
        let addresses = aliases
            .into_iter()
            .filter(|a| !a.eq_ignore_ascii_case(&primary))
            .collect();
        Mailbox {
            primary,
            kind,
            type_name,
            disabled: m.account_disabled.unwrap_or(false),
            addresses,
        }
    }
}

pub enum Lookup<'a> {
    Found(&'a Mailbox),
    Absent,
    Unknown,
}

/// The outcome of a delegate walk.
#[derive(Debug, PartialEq)]
pub enum Walk {
    Done {
        delegates: Vec<String>,
        /// Holders with an address that is no mailbox of the tenant.
        dropped: Vec<String>,
    },
    /// Look these up first (identities; mailboxes whose holders are unknown).
    Need {
        mailboxes: Vec<String>,
        permissions: Vec<String>,
    },
}

#[derive(Default)]
pub struct Directory {
    /// Every mailbox is loaded: what is not here does not exist.
    pub complete: bool,
    mailboxes: HashMap<String, Mailbox>,
    /// Lower-cased address or object id → lower-cased primary.
    index: HashMap<String, String>,
    absent: HashSet<String>,
    /// FullAccess holders by lower-cased primary, as the API names them.
    holders: HashMap<String, Vec<String>>,
}

impl Directory {
    pub fn len(&self) -> usize {
        self.mailboxes.len()
    }

    /// An empty directory that will hold every mailbox of the tenant.
    pub fn complete() -> Directory {
        Directory {
            complete: true,
            ..Default::default()
        }
    }

    pub fn insert(&mut self, json: &MailboxJson) {
        let m = Mailbox::from_json(json);
        let key = m.primary.to_lowercase();
        for a in &m.addresses {
            self.index.insert(a.to_lowercase(), key.clone());
        }
        let ids = [
            &json.external_directory_object_id,
            &json.user_principal_name,
            &json.guid,
        ];
        for id in ids.into_iter().flatten() {
            self.index.insert(id.to_lowercase(), key.clone());
        }
        self.index.insert(key.clone(), key.clone());
        self.mailboxes.insert(key, m);
    }

    /// Remembers that `identity` (as a lookup named it) is the mailbox `json`.
    pub fn insert_as(&mut self, identity: &str, json: &MailboxJson) {
        self.insert(json);
        self.index.insert(
            identity.to_lowercase(),
            json.primary_smtp_address.to_lowercase(),
        );
    }

    pub fn mark_absent(&mut self, identity: &str) {
        self.absent.insert(identity.to_lowercase());
    }

    pub fn set_holders(&mut self, primary: &str, holders: Vec<String>) {
        self.holders.insert(primary.to_lowercase(), holders);
    }

    /// A mailbox by address or by its user's object id.
    pub fn find(&self, identity: &str) -> Lookup<'_> {
        let key = identity.to_lowercase();
        match self.index.get(&key).and_then(|p| self.mailboxes.get(p)) {
            Some(m) => Lookup::Found(m),
            None if self.complete || self.absent.contains(&key) => Lookup::Absent,
            None => Lookup::Unknown,
        }
    }

    pub fn mailboxes(&self) -> impl Iterator<Item = &Mailbox> {
        self.mailboxes.values()
    }

    /// The delegates of the mailbox `primary`, or what must be looked up first.
    pub fn delegates(&self, primary: &str, chains: Chains) -> Walk {
        let start = primary.to_lowercase();
        let mut visited = HashSet::from([start.clone()]);
        let mut queue = vec![(start, 0usize)];
        let mut delegates = BTreeSet::new();
        let mut dropped = BTreeSet::new();
        let (mut need_boxes, mut need_perms) = (BTreeSet::new(), BTreeSet::new());
        while let Some((current, depth)) = queue.pop() {
            let Some(holders) = self.holders.get(&current) else {
                need_perms.insert(current);
                continue;
            };
            for h in holders.iter().filter(|h| h.contains('@')) {
                match self.find(h) {
                    Lookup::Unknown => {
                        need_boxes.insert(h.clone());
                    }
                    Lookup::Absent => {
                        dropped.insert(h.clone());
                    }
                    Lookup::Found(m) => {
                        let key = m.primary.to_lowercase();
                        if key == primary.to_lowercase() {
                            continue;
                        }
                        let through = match m.kind {
                            MailboxKind::Shared => true,
                            _ => {
                                delegates.insert(m.primary.clone());
                                chains == Chains::All
                            }
                        };
                        if through && depth < MAX_DEPTH && visited.insert(key.clone()) {
                            queue.push((key, depth + 1));
                        }
                    }
                }
            }
        }
        if need_boxes.is_empty() && need_perms.is_empty() {
            Walk::Done {
                delegates: delegates.into_iter().collect(),
                dropped: dropped.into_iter().collect(),
            }
        } else {
            Walk::Need {
                mailboxes: need_boxes.into_iter().collect(),
                permissions: need_perms.into_iter().collect(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(primary: &str, kind: &str) -> MailboxJson {
        MailboxJson {
            primary_smtp_address: primary.into(),
            user_principal_name: None,
            recipient_type_details: Some(kind.into()),
            account_disabled: None,
            email_addresses: None,
            external_directory_object_id: None,
            guid: None,
        }
    }

    #[test]
    fn delegates_follow_shared_mailboxes_and_survive_cycles() {
        let mut d = Directory {
            complete: true,
            ..Default::default()
        };
        for (p, k) in [
            ("s1@x", "SharedMailbox"),
            ("s2@x", "SharedMailbox"),
            ("a@x", "UserMailbox"),
            ("b@x", "UserMailbox"),
        ] {
            d.insert(&mailbox(p, k));
        }
        d.set_holders(
            "s1@x",
            vec![
                "NT AUTHORITY\\SELF".into(),
                "A@x".into(),
                "s2@x".into(),
                "gone@x".into(),
            ],
        );
        d.set_holders("s2@x", vec!["b@x".into(), "s1@x".into()]);
        d.set_holders("a@x", vec![]);
        d.set_holders("b@x", vec![]);
        assert_eq!(
            d.delegates("s1@x", Chains::Shared),
            Walk::Done {
                delegates: vec!["a@x".into(), "b@x".into()],
                dropped: vec!["gone@x".into()],
            }
        );
    }

    #[test]
    fn chains_through_user_mailboxes_only_when_asked() {
        let mut d = Directory::complete();
        for (p, k) in [
            ("s@x", "SharedMailbox"),
            ("a@x", "UserMailbox"),
            ("b@x", "UserMailbox"),
        ] {
            d.insert(&mailbox(p, k));
        }
        // a holds s; b holds a's mailbox; a holds b's (a cycle).
        d.set_holders("s@x", vec!["a@x".into()]);
        d.set_holders("a@x", vec!["b@x".into()]);
        d.set_holders("b@x", vec!["a@x".into()]);
        let only = |w: Walk| match w {
            Walk::Done { delegates, .. } => delegates,
            other => panic!("{other:?}"),
        };
        assert_eq!(only(d.delegates("s@x", Chains::Shared)), ["a@x"]);
        assert_eq!(only(d.delegates("s@x", Chains::All)), ["a@x", "b@x"]);
    }

    #[test]
    fn a_holder_named_by_upn_is_the_mailbox() {
        let mut d = Directory::complete();
        let mut a = mailbox("ann.smit@x.nl", "UserMailbox");
        a.user_principal_name = Some("asmit@x.onmicrosoft.com".into());
        d.insert(&a);
        d.insert(&mailbox("s@x.nl", "SharedMailbox"));
        d.set_holders("s@x.nl", vec!["ASmit@x.onmicrosoft.com".into()]);
        d.set_holders("ann.smit@x.nl", vec![]);
        assert_eq!(
            d.delegates("s@x.nl", Chains::Shared),
            Walk::Done {
                delegates: vec!["ann.smit@x.nl".into()],
                dropped: vec![],
            }
        );
    }

    #[test]
    fn an_incomplete_directory_asks_for_what_it_lacks() {
        let mut d = Directory::default();
        d.insert(&mailbox("s1@x", "SharedMailbox"));
        d.set_holders("s1@x", vec!["a@x".into()]);
        assert_eq!(
            d.delegates("s1@x", Chains::Shared),
            Walk::Need {
                mailboxes: vec!["a@x".into()],
                permissions: vec![],
            }
        );
        d.mark_absent("a@x");
        assert!(matches!(
            d.delegates("s1@x", Chains::Shared),
            Walk::Done { .. }
        ));
    }
}
