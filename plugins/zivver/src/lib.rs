//! Roster connector `zivver`: Zivver's SCIM 2.0 API as a source and a target.
//! Every request it sends, and its source, is in `docs/connectors/zivver.md`.
//!
//! People are `/Users`, functional accounts `/Groups` (members are the
//! delegates' user UUIDs). Users are written with a full PUT carrying the
//! whole Zivver extension, the write-only `SsoAccountKey` included: Zivver
//! never returns it, so the last one sent is kept in the memo and sent again
//! when the source has none (a disable, say). A delete is a disable (no
//! documented delete). A functional account is emptied with a PATCH, because
//! the service ignores a PUT with no members.
//!
//! Guests are not part of Zivver's API: a write meets one as
//! `Alias is a guest: <address>`. The connector then writes the account
//! without that alias, keeps the guest in its memo (so the next plan leaves
//! the alias out, with Zivver's documented remedy, instead of failing again)
//! and tries the alias again after `guest_recheck_hours`, or as soon as a
//! read shows the address on an account. Vendor errors are kept word for
//! word on the record they belong to.

mod kept;
mod resources;

mod guests;

use guests::{GuestMerge, Guests};
use kept::Kept;
use resources::{functional, group_body, person, user_body};
use roster_sdk::prelude::*;
use roster_sdk::scim::ScimClient;
use roster_sdk::{MergeGuest, Update, memo};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};

pub struct Zivver {
    scim: ScimClient,
    guests: Guests,
    page_size: u32,
    /// What the last read saw, by id: the base of full PUTs.
    users: Kept,
    groups: Kept,
    /// Lower-cased userName → user id (members are UUIDs).
    user_ids: HashMap<String, String>,
    /// Whether the caches hold a read (an apply of a saved plan starts without one).
    loaded: bool,
}

/// The memo key of the `SsoAccountKey` last sent for a user.
fn sso_memo(id: &str) -> String {
    format!("sso/{id}")
}

impl Connector for Zivver {
    fn describe() -> Descriptor {
        Descriptor::new("zivver", env!("CARGO_PKG_VERSION"))
            .description("Zivver users and functional accounts (SCIM 2.0); guests as writes meet them")
            .source()
            .target()
            .kinds(&[AccountKind::Person, AccountKind::Functional, AccountKind::Guest])
            // SsoAccountKey is written but never returned: not compared.
            .fields(&[Field::Email, Field::Aliases, Field::DisplayName, Field::Enabled, Field::Delegates])
            .secret("api_key", "Zivver API key (Organisation settings → API keys)")
            .optional("base_url", "SCIM base URL", Some("https://app.zivver.com/api/scim/v2/"))
            .optional(
                "domains",
                "Removed: the pipeline decides the claimed domains (a filter stage's claimed_domains); refused when set",
                None,
            )
            .optional(
                "merge_guests",
                "manual: an alias a guest holds is left out, with Zivver's remedy for the admin; api: merge through merge_route (unverified)",
                Some("manual"),
            )
            .optional(
                "merge_route",
                "With merge_guests = api: the POST path that merges a guest, {guest} = its address, {into} = the account id (not documented by Zivver)",
                None,
            )
            .optional(
                "guest_recheck_hours",
                "How long an alias refused as a guest's is left out before it is tried again",
                Some("24"),
            )
            .optional("page_size", "Resources per SCIM page", Some("1000"))
            .host("app.zivver.com")
    }

    fn configure(config: Config) -> Result<Self> {
        if config.get("domains").is_some() {
            return Err(Error::invalid(
                "`domains` is no longer a Zivver setting: the pipeline owns the claimed domains. Move the list to a filter stage's `claimed_domains` (aliases and delegates elsewhere are left out there, with a warning) and remove `domains` here",
            ));
        }
        Ok(Zivver {
            scim: ScimClient::new(
                config.get_or("base_url", "https://app.zivver.com/api/scim/v2/"),
                config.required("api_key")?,
            ),
            guests: Guests::new(
                GuestMerge::configured(config.get("merge_guests"), config.get("merge_route"))?,
                config.number("guest_recheck_hours", 24u64)?,
            ),
            page_size: config.number("page_size", 1000)?,
            users: Kept::default(),
            groups: Kept::default(),
            user_ids: HashMap::new(),
            loaded: false,
        })
    }

    fn test_connection(&mut self, account: Option<String>) -> Result<ConnectionReport> {
        let users = self.scim.total("Users").map_err(classify)?;
        let checks = vec![format!(
            "SCIM API at {} answered; API key accepted ({} user{} seen)",
            self.scim.base(),
            users,
            if users == 1 { "" } else { "s" }
        )];
        ConnectionReport::found(checks, account, |address| self.find_account(address))
    }

    fn read_all(&mut self) -> Result<Vec<Account>> {
        self.load().map_err(classify)
    }

    /// A user by `userName`, else a functional account by `externalId`.
    fn find_account(&mut self, address: &str) -> Result<Account> {
        let user = self
            .scim
            .find("Users", "userName", address)
            .map_err(classify)?;
        let a = match user {
            Some(u) => person(&u),
            None => self
                .scim
                .find("Groups", "externalId", address)
                .map_err(classify)?
                .and_then(|g| functional(&g, &HashMap::new()).map(|(a, _)| a)),
        };
        a.ok_or_else(|| Error::not_found(format!("no Zivver account {address}")))
    }

    /// A batch's writes go out at once, then one by one, in order, those the
    /// wave left (a guest met, a create whose answer left open whether it
    /// took effect). The host decides the order: it never sends people and
    /// the functional accounts they are members of in one batch.
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
        let mut wave = Vec::new();
        for (i, c) in changes.iter().enumerate() {
            if let Some(w) = self.person_write(&c.op) {
                wave.push((i, w));
                continue;
            }
            match self.group_write(&c.op) {
                Ok(Some(w)) => wave.push((i, w)),
                Ok(None) => {}
                Err(e) => outcomes[i] = Some(Err(e)),
            }
        }
        self.send_wave(wave, &mut outcomes);
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
            Operation::Delete(id) => {
                host::info(&format!(
                    "{id}: Zivver documents no delete; the account is disabled instead"
                ));
                self.disable(&id)?
            }
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
    if kind == ErrorKind::Unauthorized && !m.starts_with(REFUSED_KEY) {
        return Error::new(
            kind,
            format!(
                "{REFUSED_KEY}: make a new key in Zivver (Organisation settings → API keys) and give it to the pipeline's api_key, e.g. as ${{env:ZIVVER_API_KEY}} ({m})"
            ),
        );
    }
    Error::new(kind, e.message)
}

/// How a refused key is said, in Zivver's terms.
const REFUSED_KEY: &str = "Zivver refused the API key";

/// A create whose answer leaves open whether it took effect (a 503, a
/// timeout, a broken connection): re-read before anything is sent again.
fn open_outcome(e: &Error) -> bool {
    e.kind == ErrorKind::Connection
}

/// One write of a concurrent wave.
struct Write {
    method: &'static str,
    path: String,
    body: Value,
    /// The account written.
    account: Box<Account>,
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
        let a = self.with_sso_key(change_target(op).as_deref(), a);
        let aliases = a.aliases.clone();
        let delegates = a.delegates.clone();
        Some(Write {
            method,
            path,
            body: user_body(base.as_ref(), &a, &aliases, &delegates),
            account: Box::new(a),
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
        let aliases = a.aliases.clone();
        Ok(Some(Write {
            method,
            path,
            body: group_body(base.as_ref(), a, &aliases, &members),
            account: Box::new(a.clone()),
        }))
    }

    /// Sends `writes` at once and records each outcome. A write that met a
    /// guest, or a create whose answer leaves open whether it took effect
    /// and that a re-read does not find, is left for the one-by-one path.
    fn send_wave(&mut self, writes: Vec<(usize, Write)>, outcomes: &mut [Option<Result<Applied>>]) {
        let ops: Vec<(&str, String, Value)> = writes
            .iter()
            .map(|(_, w)| (w.method, w.path.clone(), w.body.clone()))
            .collect();
        let answers = self.scim.send_all(&ops);
        for ((i, w), answer) in writes.into_iter().zip(answers) {
            outcomes[i] = match answer.map_err(classify) {
                Ok(stored) => Some(Ok(Applied {
                    id: Some(self.record_write(&w, &stored)),
                })),
                Err(e) if guests::blocking_guest(&e).is_some() => None,
                Err(e) if w.method == "POST" && open_outcome(&e) => match self.adopt(&w.account) {
                    Ok(Some(id)) => Some(Ok(Applied { id: Some(id) })),
                    Ok(None) => None,
                    Err(e) => Some(Err(e)),
                },
                Err(e) => Some(Err(e)),
            };
        }
    }

    /// Keeps what a wave's write changed; the id of the account it wrote.
    fn record_write(&mut self, w: &Write, stored: &Value) -> String {
        let id = match stored["id"].as_str() {
            Some(id) => id.to_string(),
            None => w.path.rsplit('/').next().unwrap_or_default().to_string(),
        };
        match w.account.kind {
            AccountKind::Functional => self.groups.insert(id.clone(), stored),
            _ => {
                self.remember_user(&id, stored, &w.account);
            }
        }
        id
    }

    /// After a create with an open outcome: the account, if it was made
    /// after all (found by its address), is taken as the create's result.
    fn adopt(&mut self, a: &Account) -> Result<Option<String>> {
        let (resource, attribute) = match a.kind {
            AccountKind::Functional => ("Groups", "externalId"),
            _ => ("Users", "userName"),
        };
        let Some(found) = self
            .scim
            .find(resource, attribute, &a.email)
            .map_err(classify)?
        else {
            return Ok(None);
        };
        let Some(id) = found["id"].as_str().map(str::to_string) else {
            return Ok(None);
        };
        host::info(&format!(
            "{}: the create's answer left open whether it took effect; it did ({id})",
            a.email
        ));
        match a.kind {
            AccountKind::Functional => self.groups.insert(id.clone(), &found),
            _ => {
                self.remember_user(&id, &found, a);
            }
        }
        Ok(Some(id))
    }

    /// Reads users and functional accounts into fresh caches, page by page
    /// (each resource kept compact, never all of them parsed at once), and
    /// adds the guests learned from earlier writes and not merged since; the
    /// old caches stay until the whole read has succeeded.
    /// Reads every user and group into the caches; the accounts they make.
    fn load(&mut self) -> Result<Vec<Account>> {
        let (mut users, mut groups) = (Kept::default(), Kept::default());
        let mut user_ids = HashMap::new();
        let mut names = HashMap::new();
        let mut held = HashSet::new();
        let mut snapshot = Vec::new();
        self.scim
            .list_each("Users", None, self.page_size, |u| {
                // id and userName are required of every SCIM User (RFC 7643
                // §3.1, §4.1.1): one without is a broken answer, and leaving
                // it out would have the next plan create the account again.
                let Some(a) = person(&u) else {
                    let id: String = u["id"].to_string().chars().take(80).collect();
                    return Err(Error::invalid(format!(
                        "Users: a user was answered without a string id or userName (id {id}); the answer is no SCIM User, so nothing was read"
                    )));
                };
                names.insert(a.id.clone(), a.email.clone());
                user_ids.insert(a.email.to_lowercase(), a.id.clone());
                held.extend(a.addresses().map(str::to_lowercase));
                users.insert(a.id.clone(), &u);
                snapshot.push(a);
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
                    held.extend(a.addresses().map(str::to_lowercase));
                    groups.insert(a.id.clone(), &g);
                    snapshot.push(a);
                }
                Ok(())
            })
            .map_err(classify)?;
        snapshot.extend(self.guests.accounts(|address| held.contains(address)));
        self.users = users;
        self.groups = groups;
        self.user_ids = user_ids;
        self.loaded = true;
        Ok(snapshot)
    }

    /// The caches, read once when an apply starts without a read.
    fn ensure_loaded(&mut self) -> Result<()> {
        match self.loaded {
            true => Ok(()),
            false => self.load().map(drop),
        }
    }

    /// Delegates as user UUIDs; those that are no Zivver user are dropped with a warning.
    fn member_ids(&mut self, a: &Account) -> Result<Vec<String>> {
        self.ensure_loaded()?;
        Ok(a.delegates
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

    /// The account with the `SsoAccountKey` last sent for user `id` when the
    /// source gives none: a PUT without it would erase it, and Zivver never
    /// returns it.
    fn with_sso_key(&self, id: Option<&str>, a: &Account) -> Account {
        let mut a = a.clone();
        if a.external_key.is_none()
            && let Some(id) = id
        {
            a.external_key = memo::get(&sso_memo(id));
        }
        a
    }

    /// Keeps what a user write left in Zivver, and the key it sent.
    fn remember_user(&mut self, id: &str, stored: &Value, a: &Account) {
        self.user_ids.insert(a.email.to_lowercase(), id.to_string());
        if stored.is_object() {
            self.users.insert(id.to_string(), stored);
        }
        if let Some(key) = &a.external_key
            && memo::get(&sso_memo(id)).as_ref() != Some(key)
            && let Err(e) = memo::set(&sso_memo(id), key)
        {
            host::warn(&e.message);
        }
    }

    /// Writes with `aliases`; an alias Zivver refuses as a guest's is
    /// learned and left out, and the write sent again. The answer, and the
    /// aliases left out. The guest is merged only when a plan's merge stage
    /// asks for it (the next plan sees the learned guest), never here.
    fn past_guests(
        &mut self,
        owner: &str,
        mut aliases: Vec<String>,
        mut write: impl FnMut(&mut Self, &[String]) -> Result<Value>,
    ) -> Result<(Value, Vec<String>)> {
        let mut withheld = Vec::new();
        loop {
            let e = match write(self, &aliases) {
                Ok(stored) => return Ok((stored, withheld)),
                Err(e) => e,
            };
            let Some(guest) = guests::blocking_guest(&e) else {
                return Err(e);
            };
            if !aliases.iter().any(|a| a.eq_ignore_ascii_case(&guest)) {
                return Err(e);
            }
            self.guests.learn(&guest);
            let next = match self.guests.merge {
                GuestMerge::Manual => guests::remedy(&guest),
                GuestMerge::Api { .. } => {
                    "the next plan merges the guest (the pipeline's merge stage), then writes it"
                        .into()
                }
            };
            host::warn(&format!("{owner}: alias {guest} left out: {next}"));
            aliases.retain(|a| !a.eq_ignore_ascii_case(&guest));
            withheld.push(guest);
        }
    }

    /// POST, and after an answer that leaves open whether it took effect, a
    /// re-read: the account found is the result, else the POST is sent once more.
    fn post(&mut self, resource: &str, body: &Value, a: &Account) -> Result<Value> {
        let attribute = match a.kind {
            AccountKind::Functional => "externalId",
            _ => "userName",
        };
        self.scim
            .create_once(resource, body, attribute, &a.email)
            .map_err(classify)
    }

    fn put_user(&mut self, id: &str, a: &Account) -> Result<(Value, Vec<String>)> {
        let a = self.with_sso_key(Some(id), a);
        let aliases = a.aliases.clone();
        let delegates = a.delegates.clone();
        let (stored, withheld) = self.past_guests(&a.email, aliases, |z, aliases| {
            let base = z.user(id)?;
            let body = user_body(Some(&base), &a, aliases, &delegates);
            z.scim.replace("Users", id, &body).map_err(classify)
        })?;
        self.remember_user(id, &stored, &a);
        Ok((stored, withheld))
    }

    fn create_user(&mut self, a: &Account) -> Result<String> {
        let aliases = a.aliases.clone();
        let delegates = a.delegates.clone();
        let (stored, _) = self.past_guests(&a.email, aliases, |z, aliases| {
            z.post("Users", &user_body(None, a, aliases, &delegates), a)
        })?;
        let id = stored["id"]
            .as_str()
            .ok_or_else(|| Error::other("Zivver answered the create without an id"))?
            .to_string();
        self.remember_user(&id, &stored, a);
        Ok(id)
    }

    fn update(&mut self, u: Update) -> Result<String> {
        let a = u.account;
        if self.groups.contains_key(&u.id) || a.kind == AccountKind::Functional {
            return self.update_group(&u.id, &a);
        }
        self.put_user(&u.id, &a)?;
        Ok(u.id)
    }

    fn create_group(&mut self, a: &Account) -> Result<String> {
        let aliases = a.aliases.clone();
        let members = self.member_ids(a)?;
        let (stored, _) = self.past_guests(&a.email, aliases, |z, aliases| {
            z.post("Groups", &group_body(None, a, aliases, &members), a)
        })?;
        let id = stored["id"]
            .as_str()
            .ok_or_else(|| Error::other("Zivver answered the create without an id"))?
            .to_string();
        if stored.get("externalId").is_some() {
            self.groups.insert(id.clone(), &stored);
        }
        Ok(id)
    }

    fn update_group(&mut self, id: &str, a: &Account) -> Result<String> {
        let base = match self.groups.get(id) {
            Some(g) => g,
            None => self.scim.get("Groups", id).map_err(classify)?,
        };
        let aliases = a.aliases.clone();
        let members = self.member_ids(a)?;
        let (stored, _) = self.past_guests(&a.email, aliases, |z, aliases| {
            let body = group_body(Some(&base), a, aliases, &members);
            z.scim.replace("Groups", id, &body).map_err(classify)
        })?;
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

    /// A person is deactivated (with the `SsoAccountKey` last sent, so SSO
    /// keeps working when it is enabled again); a functional account cannot
    /// be, so it loses its members.
    fn disable(&mut self, id: &str) -> Result<String> {
        if self.groups.contains_key(id) {
            self.empty_group(id)?;
            return Ok(id.to_string());
        }
        let base = self.user(id)?;
        let mut a =
            person(&base).ok_or_else(|| Error::other(format!("user {id} has no userName")))?;
        a.enabled = false;
        self.put_user(id, &a)?;
        Ok(id.to_string())
    }

    /// A merge the plan asks for (only with `merge_guests = "api"`: in
    /// manual mode guests carry the admin's remedy and are never planned).
    fn merge(&mut self, m: MergeGuest) -> Result<String> {
        let into = m
            .into
            .id
            .clone()
            .or_else(|| self.user_ids.get(&m.into.email.to_lowercase()).cloned());
        match into {
            Some(id) => {
                self.merge_address(&m.guest.email, &id)?;
                Ok(id)
            }
            // The guest holds the new account's own address: the create takes it over.
            None if m.guest.email.eq_ignore_ascii_case(&m.into.email) => {
                Ok(m.guest.id.unwrap_or_default())
            }
            None => Err(Error::not_found(format!(
                "{} is no Zivver account yet: the guest {} cannot be merged into it",
                m.into.email, m.guest.email
            ))),
        }
    }

    /// Merges the guest holding `address` into account `into` through the
    /// configured route.
    fn merge_address(&mut self, address: &str, into: &str) -> Result<()> {
        let Some((path, body)) = self.guests.merge_request(address, into) else {
            return Err(Error::invalid(format!(
                "{address} is a Zivver guest and merge_guests is manual: {}",
                guests::remedy(address)
            )));
        };
        self.scim.post(&path, &body).map_err(classify)?;
        memo::remove(&format!("guest/{}", address.to_lowercase()));
        host::info(&format!("guest {address} merged into {into}"));
        Ok(())
    }
}

/// The target id a change names, if any.
fn change_target(op: &Operation) -> Option<String> {
    match op {
        Operation::Update(u) => Some(u.id.clone()),
        Operation::Disable(id) | Operation::Delete(id) => Some(id.clone()),
        _ => None,
    }
}

roster_sdk::export_connector!(Zivver);
