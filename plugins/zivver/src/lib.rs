//! Roster connector `zivver`: Zivver's SCIM 2.0 API as a source and a target.
//!
//! People are `/Users`, functional accounts `/Groups` (members are the
//! delegates' user UUIDs), guests `/Guests`. Users are written with a full
//! PUT carrying the whole Zivver extension (the write-only `SsoAccountKey`
//! included); a functional account is emptied with a PATCH, because the
//! service ignores a PUT with no members. Vendor errors are kept word for
//! word on the record they belong to.

mod kept;
mod resources;

use kept::Kept;
use resources::{functional, group_body, guest, person, user_body};
use roster_sdk::prelude::*;
use roster_sdk::scim::ScimClient;
use roster_sdk::{AccountRef, MergeGuest, Update};
use serde_json::{Value, json};
use std::collections::HashMap;

const GUEST_TEXT: &str = "Alias is a guest: ";

pub struct Zivver {
    scim: ScimClient,
    /// Claimed domains (lower case); empty: not checked here.
    domains: Vec<String>,
    merge_guests: bool,
    page_size: u32,
    /// What the last read saw, by id: the base of full PUTs.
    users: Kept,
    groups: Kept,
    /// Lower-cased userName → user id (members are UUIDs).
    user_ids: HashMap<String, String>,
    /// Lower-cased address → guest id.
    guests: HashMap<String, String>,
    snapshot: Vec<Account>,
    /// Whether the caches hold a read (an apply of a saved plan starts without one).
    loaded: bool,
}

impl Connector for Zivver {
    fn describe() -> Descriptor {
        Descriptor::new("zivver", env!("CARGO_PKG_VERSION"))
            .description("Zivver users, functional accounts and guests (SCIM 2.0)")
            .source()
            .target()
            .kinds(&[AccountKind::Person, AccountKind::Functional, AccountKind::Guest])
            // SsoAccountKey is written but never returned: not compared.
            .fields(&[Field::Email, Field::Aliases, Field::DisplayName, Field::Enabled, Field::Delegates])
            .secret("api_key", "Zivver API key (Organisation settings → API keys)")
            .optional("base_url", "SCIM base URL", Some("https://app.zivver.com/api/scim/v2/"))
            .optional(
                "domains",
                "Claimed domains, comma-separated: aliases and delegates elsewhere are left out with a warning",
                None,
            )
            .optional(
                "merge_guests",
                "Merge a guest that still blocks an alias into the account, then write the alias again",
                Some("false"),
            )
            .optional("page_size", "Resources per SCIM page", Some("1000"))
            .host("app.zivver.com")
    }

    fn configure(config: Config) -> Result<Self> {
        Ok(Zivver {
            scim: ScimClient::new(
                config.get_or("base_url", "https://app.zivver.com/api/scim/v2/"),
                config.required("api_key")?,
            ),
            domains: config
                .list("domains")
                .iter()
                .map(|d| d.to_lowercase())
                .collect(),
            merge_guests: config.bool("merge_guests", false)?,
            page_size: config.number("page_size", 1000)?,
            users: Kept::default(),
            groups: Kept::default(),
            user_ids: HashMap::new(),
            guests: HashMap::new(),
            snapshot: vec![],
            loaded: false,
        })
    }

    fn test_connection(&mut self, account: Option<String>) -> Result<ConnectionReport> {
        let users = self.scim.total("Users").map_err(classify)?;
        let mut checks = vec![format!(
            "SCIM API at {} answered; API key accepted ({} user{} seen)",
            self.scim.base(),
            users,
            if users == 1 { "" } else { "s" }
        )];
        let found = match account {
            None => None,
            Some(address) => {
                let a = match self
                    .scim
                    .find("Users", "userName", &address)
                    .map_err(classify)?
                {
                    Some(u) => person(&u),
                    None => self
                        .scim
                        .find("Groups", "externalId", &address)
                        .map_err(classify)?
                        .and_then(|g| functional(&g, &HashMap::new()).map(|(a, _)| a)),
                };
                let a =
                    a.ok_or_else(|| Error::not_found(format!("no Zivver account {address}")))?;
                checks.push(format!("account {address} found ({})", a.id));
                Some(a)
            }
        };
        Ok(ConnectionReport {
            checks,
            account: found,
        })
    }

    fn read_accounts(&mut self, request: PageRequest) -> Result<AccountPage> {
        if request.cursor.is_none() {
            self.load()?;
        }
        AccountPage::of_snapshot(&self.snapshot, &request)
    }

    /// A batch's writes of people go out at once, then those of functional
    /// accounts (whose members the people are), then the merges of guests
    /// into accounts already known; the rest, and any write that needs a
    /// guest merged first, one by one in order.
    fn apply(&mut self, changes: Vec<Change>) -> Vec<ChangeResult> {
        if let Err(e) = self.ensure_loaded() {
            return changes
                .into_iter()
                .map(|c| ChangeResult {
                    change_id: c.id,
                    outcome: Err(e.clone()),
                })
                .collect();
        }
        let mut outcomes: Vec<Option<Result<Applied>>> = changes.iter().map(|_| None).collect();
        let people: Vec<(usize, Write)> = changes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| self.person_write(&c.op).map(|w| (i, w)))
            .collect();
        self.send_wave(&changes, people, &mut outcomes);
        let mut groups = Vec::new();
        for (i, c) in changes.iter().enumerate() {
            match self.group_write(&c.op) {
                Ok(Some(w)) => groups.push((i, w)),
                Ok(None) => {}
                Err(e) => outcomes[i] = Some(Err(e)),
            }
        }
        self.send_wave(&changes, groups, &mut outcomes);
        let merges: Vec<(usize, Write)> = changes
            .iter()
            .enumerate()
            .filter(|(i, _)| outcomes[*i].is_none())
            .filter_map(|(i, c)| self.merge_write(&c.op).map(|w| (i, w)))
            .collect();
        self.send_wave(&changes, merges, &mut outcomes);
        changes
            .into_iter()
            .zip(outcomes)
            .map(|(change, outcome)| {
                let change_id = change.id.clone();
                let outcome = outcome.unwrap_or_else(|| self.apply_change(change));
                ChangeResult { change_id, outcome }
            })
            .collect()
    }

    fn apply_change(&mut self, change: Change) -> Result<Applied> {
        self.ensure_loaded()?;
        let id = match change.op {
            Operation::Create(a) if a.kind == AccountKind::Functional => self.create_group(&a)?,
            Operation::Create(a) => self.create_user(&a)?,
            Operation::Update(u) => self.update(u)?,
            Operation::Disable(id) => self.disable(&id)?,
            Operation::Delete(id) => self.delete(&id)?,
            Operation::MergeGuest(m) => self.merge(m)?,
        };
        Ok(Applied { id: Some(id) })
    }
}

/// Vendor texts to error kinds; the text itself is kept.
fn classify(e: Error) -> Error {
    let m = e.message.as_str();
    let kind = if m.contains("Alias is a guest")
        || m.contains("Alias is already taken")
        || m.contains("already exists")
    {
        ErrorKind::Conflict
    } else if m.contains("Unknown account with uuid") || m.contains("Member Not Found") {
        ErrorKind::NotFound
    } else if m.contains("Domain Not Owned")
        || m.contains("outside the organization")
        || m.contains("Invalid division")
    {
        ErrorKind::Invalid
    } else {
        e.kind
    };
    Error::new(kind, e.message)
}

/// The guest address in `Alias is a guest: <address>`.
fn blocking_guest(e: &Error) -> Option<String> {
    let at = e.message.find(GUEST_TEXT)? + GUEST_TEXT.len();
    let rest = &e.message[at..];
    Some(
        rest.split_whitespace()
            .next()
            .unwrap_or(rest)
            .trim_end_matches(['.', ','])
            .to_string(),
    )
}

fn with_remedy(e: Error) -> Error {
    match blocking_guest(&e) {
        Some(guest) => Error::new(
            ErrorKind::Conflict,
            format!(
                "{} ({guest} received Zivver mail as a guest: merge the guest into this account, with the merge stage and `merge_guests = \"true\"` on the zivver connector, or in Zivver)",
                e.message
            ),
        ),
        None => e,
    }
}

/// One write of a concurrent wave.
struct Write {
    method: &'static str,
    path: String,
    body: Value,
    what: Written,
}

/// What a wave's write is about, to record its answer.
enum Written {
    Person(Box<Account>),
    Functional,
    /// The guest (its address) merged into the account `into`.
    Merge {
        guest: String,
        into: String,
    },
}

/// The target id a change names, if any.
fn change_target(op: &Operation) -> Option<String> {
    match op {
        Operation::Update(u) => Some(u.id.clone()),
        Operation::Disable(id) | Operation::Delete(id) => Some(id.clone()),
        _ => None,
    }
}

impl Zivver {
    /// The one request a person's create or update is, when it needs nothing
    /// looked up first.
    fn person_write(&self, op: &Operation) -> Option<Write> {
        let (method, path, base, a): (_, _, Option<Value>, _) = match op {
            Operation::Create(a) if a.kind == AccountKind::Person => {
                ("POST", "Users".to_string(), None, a)
            }
            Operation::Update(u) if u.account.kind == AccountKind::Person => (
                "PUT",
                format!("Users/{}", u.id),
                Some(self.users.get(&u.id)?),
                &u.account,
            ),
            _ => return None,
        };
        let aliases = self.in_domains(&a.email, "alias", &a.aliases);
        let delegates = self.in_domains(&a.email, "delegate", &a.delegates);
        Some(Write {
            method,
            path,
            body: user_body(base.as_ref(), a, &aliases, &delegates),
            what: Written::Person(Box::new(a.clone())),
        })
    }

    /// The one request a functional account's create or update is, unless it
    /// must also be emptied (a PUT cannot do that).
    fn group_write(&mut self, op: &Operation) -> Result<Option<Write>> {
        let (method, path, base, a) = match op {
            Operation::Create(a) if a.kind == AccountKind::Functional => {
                ("POST", "Groups".to_string(), None, a)
            }
            Operation::Update(u) if u.account.kind == AccountKind::Functional => {
                match self.groups.get(&u.id) {
                    Some(g) => ("PUT", format!("Groups/{}", u.id), Some(g), &u.account),
                    None => return Ok(None),
                }
            }
            _ => return Ok(None),
        };
        let members = self.member_ids(a)?;
        let had_members = base
            .as_ref()
            .is_some_and(|g| g["members"].as_array().is_some_and(|m| !m.is_empty()));
        if members.is_empty() && had_members {
            return Ok(None);
        }
        let aliases = self.in_domains(&a.email, "alias", &a.aliases);
        Ok(Some(Write {
            method,
            path,
            body: group_body(base.as_ref(), a, &aliases, &members),
            what: Written::Functional,
        }))
    }

    /// Sends `writes` at once and records each outcome; a write blocked by a
    /// guest is left for the one-by-one path, which merges and writes again.
    fn send_wave(
        &mut self,
        changes: &[Change],
        writes: Vec<(usize, Write)>,
        outcomes: &mut [Option<Result<Applied>>],
    ) {
        let ops: Vec<(&str, String, Value)> = writes
            .iter()
            .map(|(_, w)| (w.method, w.path.clone(), w.body.clone()))
            .collect();
        let answers = self.scim.send_all(&ops);
        for ((i, w), answer) in writes.into_iter().zip(answers) {
            outcomes[i] = match answer.map_err(classify) {
                Ok(stored) => Some(Ok(Applied {
                    id: Some(self.record_write(w.what, stored, &changes[i].op)),
                })),
                Err(e) if self.merge_guests && blocking_guest(&e).is_some() => None,
                Err(e) => Some(Err(with_remedy(e))),
            };
        }
    }

    /// Keeps what a wave's write changed; the id of the account it wrote.
    fn record_write(&mut self, what: Written, stored: Value, op: &Operation) -> String {
        match (what, stored["id"].as_str()) {
            (Written::Merge { guest, into }, _) => {
                self.guests.remove(&guest);
                host::info(&format!("guest {guest} merged into {into}"));
                into
            }
            (Written::Functional, Some(id)) => {
                let id = id.to_string();
                self.groups.insert(id.clone(), &stored);
                id
            }
            (Written::Person(account), Some(_)) => self.remember_user(&stored, &account),
            (_, None) => change_target(op).unwrap_or_default(),
        }
    }

    /// The one request a guest's merge is, when the guest and the account it
    /// goes into are both known.
    fn merge_write(&self, op: &Operation) -> Option<Write> {
        let Operation::MergeGuest(m) = op else {
            return None;
        };
        let guest = m.guest.email.to_lowercase();
        let gid = m
            .guest
            .id
            .clone()
            .or_else(|| self.guests.get(&guest).cloned())?;
        let into = m
            .into
            .id
            .clone()
            .or_else(|| self.user_ids.get(&m.into.email.to_lowercase()).cloned())?;
        Some(Write {
            method: "POST",
            path: format!("Guests/{gid}/merge"),
            body: json!({ "into": into }),
            what: Written::Merge { guest, into },
        })
    }

    /// Reads users, functional accounts and guests into fresh caches, page
    /// by page (each resource kept compact, never all of them parsed at
    /// once); the old caches stay until the whole read has succeeded.
    fn load(&mut self) -> Result<()> {
        let (mut users, mut groups) = (Kept::default(), Kept::default());
        let (mut user_ids, mut guests) = (HashMap::new(), HashMap::new());
        let mut names = HashMap::new();
        let mut snapshot = Vec::new();
        self.scim
            .list_each("Users", None, self.page_size, |u| {
                if let Some(a) = person(&u) {
                    names.insert(a.id.clone(), a.email.clone());
                    user_ids.insert(a.email.to_lowercase(), a.id.clone());
                    users.insert(a.id.clone(), &u);
                    snapshot.push(a);
                }
                Ok(())
            })
            .map_err(classify)?;
        self.scim
            .list_each("Groups", None, self.page_size, |g| {
                if let Some((a, unknown)) = functional(&g, &names) {
                    if let Some(first) = unknown.first() {
                        host::warn(&format!(
                            "functional account {}: {} member(s) are no Zivver user (e.g. {first})",
                            a.email,
                            unknown.len(),
                        ));
                    }
                    groups.insert(a.id.clone(), &g);
                    snapshot.push(a);
                }
                Ok(())
            })
            .map_err(classify)?;
        let mut guest_accounts = Vec::new();
        let read_guests = self.scim.list_each("Guests", None, self.page_size, |g| {
            guest_accounts.extend(guest(&g));
            Ok(())
        });
        match read_guests {
            Ok(()) => {
                for a in guest_accounts {
                    guests.insert(a.email.to_lowercase(), a.id.clone());
                    snapshot.push(a);
                }
            }
            Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::Invalid) => {
                host::debug(&format!(
                    "no Guests resource here ({}); reading no guests",
                    e.message
                ));
            }
            Err(e) => return Err(classify(e)),
        }
        self.users = users;
        self.groups = groups;
        self.user_ids = user_ids;
        self.guests = guests;
        self.snapshot = snapshot;
        self.loaded = true;
        Ok(())
    }

    /// The caches, read once when an apply starts without a read.
    fn ensure_loaded(&mut self) -> Result<()> {
        match self.loaded {
            true => Ok(()),
            false => self.load(),
        }
    }

    fn claimed(&self, address: &str) -> bool {
        let domain = address
            .rsplit_once('@')
            .map(|(_, d)| d.to_lowercase())
            .unwrap_or_default();
        self.domains.is_empty() || self.domains.contains(&domain)
    }

    /// `list` without addresses outside the claimed domains, each with a warning.
    fn in_domains(&self, owner: &str, what: &str, list: &[String]) -> Vec<String> {
        list.iter()
            .filter(|a| {
                let ok = self.claimed(a);
                if !ok {
                    host::warn(&format!(
                        "{owner}: {what} {a} is outside the claimed domains; left out"
                    ));
                }
                ok
            })
            .cloned()
            .collect()
    }

    /// Delegates as user UUIDs; those that are no Zivver user are dropped with a warning.
    fn member_ids(&mut self, a: &Account) -> Result<Vec<String>> {
        self.ensure_loaded()?;
        Ok(self
            .in_domains(&a.email, "delegate", &a.delegates)
            .iter()
            .filter_map(|d| {
                let id = self.user_ids.get(&d.to_lowercase()).cloned();
                if id.is_none() {
                    host::warn(&format!(
                        "{}: delegate {d} is no Zivver account; left out",
                        a.email
                    ));
                }
                id
            })
            .collect())
    }

    fn user(&mut self, id: &str) -> Result<Value> {
        if let Some(u) = self.users.get(id) {
            return Ok(u);
        }
        let u = self.scim.get("Users", id).map_err(classify)?;
        self.users.insert(id.to_string(), &u);
        Ok(u)
    }

    fn remember_user(&mut self, stored: &Value, a: &Account) -> String {
        let id = stored["id"].as_str().unwrap_or_default().to_string();
        self.user_ids.insert(a.email.to_lowercase(), id.clone());
        self.users.insert(id.clone(), stored);
        id
    }

    fn put_user(&mut self, id: &str, a: &Account, aliases: &[String]) -> Result<Value> {
        let base = self.user(id)?;
        let delegates = self.in_domains(&a.email, "delegate", &a.delegates);
        let body = user_body(Some(&base), a, aliases, &delegates);
        self.scim.replace("Users", id, &body).map_err(classify)
    }

    fn create_user(&mut self, a: &Account) -> Result<String> {
        let aliases = self.in_domains(&a.email, "alias", &a.aliases);
        let delegates = self.in_domains(&a.email, "delegate", &a.delegates);
        let body = user_body(None, a, &aliases, &delegates);
        match self.scim.create("Users", &body).map_err(classify) {
            Ok(stored) => Ok(self.remember_user(&stored, a)),
            Err(e) if self.merge_guests && blocking_guest(&e).is_some() => {
                // Create without the blocked alias, merge the guest, then add it.
                let guest = blocking_guest(&e).unwrap_or_default();
                let fewer: Vec<String> = aliases
                    .iter()
                    .filter(|x| !x.eq_ignore_ascii_case(&guest))
                    .cloned()
                    .collect();
                let stored = self
                    .scim
                    .create("Users", &user_body(None, a, &fewer, &delegates))
                    .map_err(classify)?;
                let id = self.remember_user(&stored, a);
                self.merge_address(&guest, &id)?;
                self.put_user(&id, a, &aliases).map_err(with_remedy)?;
                Ok(id)
            }
            Err(e) => Err(with_remedy(e)),
        }
    }

    fn update(&mut self, u: Update) -> Result<String> {
        let a = u.account;
        if self.groups.contains_key(&u.id) || a.kind == AccountKind::Functional {
            return self.update_group(&u.id, &a);
        }
        let aliases = self.in_domains(&a.email, "alias", &a.aliases);
        let stored = match self.put_user(&u.id, &a, &aliases) {
            Ok(stored) => stored,
            Err(e) if self.merge_guests && blocking_guest(&e).is_some() => {
                let guest = blocking_guest(&e).unwrap_or_default();
                self.merge_address(&guest, &u.id)?;
                self.put_user(&u.id, &a, &aliases).map_err(with_remedy)?
            }
            Err(e) => return Err(with_remedy(e)),
        };
        if stored.is_object() {
            self.remember_user(&stored, &a);
        }
        Ok(u.id)
    }

    fn create_group(&mut self, a: &Account) -> Result<String> {
        let aliases = self.in_domains(&a.email, "alias", &a.aliases);
        let members = self.member_ids(a)?;
        let stored = self
            .scim
            .create("Groups", &group_body(None, a, &aliases, &members))
            .map_err(classify)
            .map_err(with_remedy)?;
        let id = stored["id"].as_str().unwrap_or_default().to_string();
        self.groups.insert(id.clone(), &stored);
        Ok(id)
    }

    fn update_group(&mut self, id: &str, a: &Account) -> Result<String> {
        let base = match self.groups.get(id) {
            Some(g) => g,
            None => self.scim.get("Groups", id).map_err(classify)?,
        };
        let aliases = self.in_domains(&a.email, "alias", &a.aliases);
        let members = self.member_ids(a)?;
        let stored = self
            .scim
            .replace(
                "Groups",
                id,
                &group_body(Some(&base), a, &aliases, &members),
            )
            .map_err(classify)
            .map_err(with_remedy)?;
        // A PUT with no members leaves them as they were: empty them explicitly.
        let had_members = base["members"].as_array().is_some_and(|m| !m.is_empty());
        if members.is_empty() && had_members {
            self.empty_group(id)?;
        } else if stored.is_object() {
            self.groups.insert(id.to_string(), &stored);
        }
        Ok(id.to_string())
    }

    fn empty_group(&mut self, id: &str) -> Result<()> {
        let stored = self
            .scim
            .patch(
                "Groups",
                id,
                vec![json!({"op": "remove", "path": "members"})],
            )
            .map_err(classify)?;
        match stored.is_object() {
            true => self.groups.insert(id.to_string(), &stored),
            false => self.groups.remove(id),
        };
        Ok(())
    }

    /// A person is deactivated; a functional account cannot be, so it loses its members.
    fn disable(&mut self, id: &str) -> Result<String> {
        if self.groups.contains_key(id) {
            self.empty_group(id)?;
            return Ok(id.to_string());
        }
        let base = self.user(id)?;
        let mut a =
            person(&base).ok_or_else(|| Error::other(format!("user {id} has no userName")))?;
        a.enabled = false;
        let aliases = a.aliases.clone();
        let body = user_body(Some(&base), &a, &aliases, &a.delegates);
        let stored = self.scim.replace("Users", id, &body).map_err(classify)?;
        if stored.is_object() {
            self.users.insert(id.to_string(), &stored);
        }
        Ok(id.to_string())
    }

    fn delete(&mut self, id: &str) -> Result<String> {
        let resource = if self.groups.contains_key(id) {
            "Groups"
        } else {
            "Users"
        };
        self.scim.delete(resource, id).map_err(classify)?;
        self.users.remove(id);
        self.groups.remove(id);
        Ok(id.to_string())
    }

    fn merge(&mut self, m: MergeGuest) -> Result<String> {
        let MergeGuest { guest, into } = m;
        let AccountRef {
            id: into_id,
            email: into_email,
        } = into;
        let into_id = into_id.or_else(|| self.user_ids.get(&into_email.to_lowercase()).cloned());
        match into_id {
            Some(id) => {
                self.merge_guest(&guest, &id)?;
                Ok(id)
            }
            // The guest holds the new account's own address: Zivver turns
            // the guest into the account when it is created.
            None if guest.email.eq_ignore_ascii_case(&into_email) => {
                Ok(guest.id.unwrap_or_default())
            }
            None => Err(Error::not_found(format!(
                "{into_email} is no Zivver account yet: the guest {} cannot be merged into it",
                guest.email
            ))),
        }
    }

    fn merge_guest(&mut self, guest: &AccountRef, into: &str) -> Result<()> {
        let gid = match &guest.id {
            Some(id) => id.clone(),
            None => self
                .guests
                .get(&guest.email.to_lowercase())
                .cloned()
                .ok_or_else(|| Error::not_found(format!("no guest {}", guest.email)))?,
        };
        self.scim
            .post(&format!("Guests/{gid}/merge"), &json!({"into": into}))
            .map_err(classify)?;
        self.guests.remove(&guest.email.to_lowercase());
        host::info(&format!("guest {} merged into {into}", guest.email));
        Ok(())
    }

    /// Merges the guest holding `address` (found by listing guests when unknown).
    fn merge_address(&mut self, address: &str, into: &str) -> Result<()> {
        if !self.guests.contains_key(&address.to_lowercase()) {
            for g in self
                .scim
                .list_all("Guests", None, self.page_size)
                .map_err(classify)?
            {
                if let Some(a) = guest(&g) {
                    self.guests.insert(a.email.to_lowercase(), a.id);
                }
            }
        }
        let guest = AccountRef {
            id: self.guests.get(&address.to_lowercase()).cloned(),
            email: address.into(),
        };
        self.merge_guest(&guest, into)
    }
}

roster_sdk::export_connector!(Zivver);
