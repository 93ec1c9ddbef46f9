//! A Zivver organisation's data and the rules the real service enforces on
//! writes: claimed domains, unique addresses, guests that block aliases,
//! valid divisions, members that must be users, the write-only
//! `SsoAccountKey`, full-PUT semantics, and the quirk that a Group PUT with
//! `members: []` changes nothing.

use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};

pub const USER_EXT: &str = "urn:ietf:params:scim:schemas:zivver:0.1:User";
pub const GROUP_EXT: &str = "urn:ietf:params:scim:schemas:zivver:0.1:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Who holds an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    User(String),
    Group(String),
    Guest(String),
}

/// A refused write: the HTTP status and Zivver's own text.
#[derive(Debug, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub detail: String,
}

fn refuse(status: u16, detail: impl Into<String>) -> Refusal {
    Refusal {
        status,
        detail: detail.into(),
    }
}

pub struct Org {
    pub api_key: String,
    /// Claimed domains (lower case).
    pub domains: Vec<String>,
    /// Valid divisions; empty accepts any.
    pub divisions: Vec<String>,
    pub(crate) users: BTreeMap<String, Value>,
    pub(crate) groups: BTreeMap<String, Value>,
    pub(crate) guests: BTreeMap<String, String>,
    /// Write-only SSO keys by user id.
    pub(crate) sso: HashMap<String, String>,
    owners: HashMap<String, Owner>,
    next_id: u64,
}

fn lower(s: &str) -> String {
    s.trim().to_lowercase()
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl Org {
    pub fn new(api_key: &str, domains: &[&str]) -> Org {
        Org {
            api_key: api_key.into(),
            domains: domains.iter().map(|d| lower(d)).collect(),
            divisions: vec![],
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            guests: BTreeMap::new(),
            sso: HashMap::new(),
            owners: HashMap::new(),
            next_id: 1,
        }
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        let n = self.next_id;
        format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            fastrand::u32(..),
            n & 0xffff,
            fastrand::u16(..0x1000),
            fastrand::u16(..0x1000),
            n
        )
    }

    pub fn claimed(&self, address: &str) -> bool {
        let d = lower(domain_of(address));
        self.domains.is_empty() || self.domains.contains(&d)
    }

    pub fn owner(&self, address: &str) -> Option<&Owner> {
        self.owners.get(&lower(address))
    }

    fn user_addresses(u: &Value) -> Vec<String> {
        let mut a = vec![u["userName"].as_str().unwrap_or_default().to_string()];
        a.extend(strings(&u[USER_EXT]["aliases"]));
        a
    }

    fn group_addresses(g: &Value) -> Vec<String> {
        let mut a = vec![g["externalId"].as_str().unwrap_or_default().to_string()];
        a.extend(strings(&g[GROUP_EXT]["aliases"]));
        a
    }

    fn index(&mut self, addresses: &[String], owner: Owner) {
        for a in addresses.iter().filter(|a| !a.is_empty()) {
            self.owners.insert(lower(a), owner.clone());
        }
    }

    fn unindex(&mut self, owner: &Owner) {
        let addresses = match owner {
            Owner::User(id) => self.users.get(id).map(Self::user_addresses),
            Owner::Group(id) => self.groups.get(id).map(Self::group_addresses),
            Owner::Guest(id) => self.guests.get(id).map(|a| vec![a.clone()]),
        };
        for a in addresses.unwrap_or_default() {
            if self.owners.get(&lower(&a)) == Some(owner) {
                self.owners.remove(&lower(&a));
            }
        }
    }

    /// Adds a resource as it is (seeding): no rules checked.
    pub fn seed_user(&mut self, user: Value) {
        let id = user["id"].as_str().unwrap_or_default().to_string();
        self.index(&Self::user_addresses(&user), Owner::User(id.clone()));
        self.users.insert(id, user);
    }

    pub fn seed_group(&mut self, group: Value) {
        let id = group["id"].as_str().unwrap_or_default().to_string();
        self.index(&Self::group_addresses(&group), Owner::Group(id.clone()));
        self.groups.insert(id, group);
    }

    /// An outside address received Zivver mail: it becomes a guest account,
    /// unless someone already holds it. Returns the owner either way.
    pub fn receive_mail(&mut self, address: &str) -> Owner {
        if let Some(o) = self.owner(address) {
            return o.clone();
        }
        let id = self.new_id();
        self.guests.insert(id.clone(), lower(address));
        self.index(&[lower(address)], Owner::Guest(id.clone()));
        Owner::Guest(id)
    }

    /// An address a resource may take: claimed, not a guest's, not someone else's.
    fn check_alias(&self, alias: &str, me: Option<&Owner>) -> Result<(), Refusal> {
        if !self.claimed(alias) {
            return Err(refuse(400, "Error creating alias: Domain Not Owned"));
        }
        match self.owner(alias) {
            Some(Owner::Guest(_)) => Err(refuse(
                400,
                format!("Error creating alias: Alias is a guest: {}", lower(alias)),
            )),
            Some(o) if Some(o) != me => {
                let uid = match o {
                    Owner::User(id) | Owner::Group(id) | Owner::Guest(id) => id,
                };
                Err(refuse(400, format!("Alias is already taken for {uid}")))
            }
            _ => Ok(()),
        }
    }

    fn check_primary(&self, address: &str, me: Option<&Owner>) -> Result<(), Refusal> {
        if address.is_empty() {
            return Err(refuse(400, "userName is required"));
        }
        if !self.claimed(address) {
            return Err(refuse(400, "Account is outside the organization"));
        }
        match self.owner(address) {
            Some(Owner::Guest(_)) | None => Ok(()),
            Some(o) if Some(o) == me => Ok(()),
            Some(_) => Err(refuse(409, format!("Account {address} already exists"))),
        }
    }

    fn check_division(&self, resource: &Value) -> Result<(), Refusal> {
        let Some(d) = resource[ENTERPRISE]["division"].as_str() else {
            return Ok(());
        };
        if self.divisions.is_empty() || self.divisions.iter().any(|x| x == d) {
            Ok(())
        } else {
            Err(refuse(400, format!("Invalid division: {d}")))
        }
    }

    /// Creates (`id` none) or fully replaces a user; returns the stored resource.
    pub fn put_user(&mut self, id: Option<&str>, mut body: Value) -> Result<Value, Refusal> {
        if let Some(id) = id
            && !self.users.contains_key(id)
        {
            return Err(refuse(400, format!("Unknown account with uuid {id}")));
        }
        let me = id.map(|i| Owner::User(i.to_string()));
        let user_name = body["userName"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_string();
        self.check_primary(&user_name, me.as_ref())?;
        for alias in strings(&body[USER_EXT]["aliases"]) {
            if !alias.eq_ignore_ascii_case(&user_name) {
                self.check_alias(&alias, me.as_ref())?;
            }
        }
        for d in strings(&body[USER_EXT]["delegates"]) {
            if !self.claimed(&d) {
                return Err(refuse(400, "Account is outside the organization"));
            }
        }
        self.check_division(&body)?;
        // Creating an account for a guest's address turns the guest into it.
        if let Some(Owner::Guest(g)) = self.owner(&user_name).cloned() {
            self.unindex(&Owner::Guest(g.clone()));
            self.guests.remove(&g);
        }
        let id = match id {
            Some(id) => id.to_string(),
            None => self.new_id(),
        };
        let owner = Owner::User(id.clone());
        self.unindex(&owner);
        let sso = body
            .get_mut(USER_EXT)
            .and_then(Value::as_object_mut)
            .and_then(|ext| ext.remove("SsoAccountKey"));
        match sso.as_ref().and_then(Value::as_str) {
            Some(k) => self.sso.insert(id.clone(), k.to_string()),
            None => self.sso.remove(&id),
        };
        let created = self
            .users
            .get(&id)
            .and_then(|u| u["meta"]["created"].as_str().map(str::to_string))
            .unwrap_or_else(|| "2026-11-21".into());
        let mut stored = body.as_object().cloned().unwrap_or_default();
        // RFC 7643 §4.1: a password is never returned; Zivver accounts log in
        // with Zivver's own credentials or SSO, so none is kept either.
        stored.remove("password");
        stored.insert("id".into(), id.clone().into());
        stored.insert(
            "meta".into(),
            json!({"created": created, "location": format!("/scim/v2/Users/{id}"), "resourceType": "User"}),
        );
        stored.entry("active").or_insert(Value::Bool(true));
        let stored = Value::Object(stored);
        self.index(&Self::user_addresses(&stored), owner);
        self.users.insert(id, stored.clone());
        Ok(stored)
    }

    pub fn user(&self, id: &str) -> Result<&Value, Refusal> {
        self.users
            .get(id)
            .ok_or_else(|| refuse(400, format!("Unknown account with uuid {id}")))
    }

    pub fn delete_user(&mut self, id: &str) -> Result<(), Refusal> {
        self.user(id)?;
        self.unindex(&Owner::User(id.to_string()));
        self.users.remove(id);
        self.sso.remove(id);
        Ok(())
    }

    fn check_members(&self, members: &[String]) -> Result<(), Refusal> {
        match members.iter().find(|m| !self.users.contains_key(*m)) {
            Some(_) => Err(refuse(400, "Error creating member: Member Not Found")),
            None => Ok(()),
        }
    }

    fn member_ids(group: &Value) -> Vec<String> {
        group["members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["value"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Creates (`id` none) or replaces a group (functional account).
    pub fn put_group(&mut self, id: Option<&str>, body: Value) -> Result<Value, Refusal> {
        let existing = match id {
            Some(id) => Some(
                self.groups
                    .get(id)
                    .cloned()
                    .ok_or_else(|| refuse(400, format!("Unknown account with uuid {id}")))?,
            ),
            None => None,
        };
        let me = id.map(|i| Owner::Group(i.to_string()));
        let address = body["externalId"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_string();
        self.check_primary(&address, me.as_ref())?;
        for alias in strings(&body[GROUP_EXT]["aliases"]) {
            if !alias.eq_ignore_ascii_case(&address) {
                self.check_alias(&alias, me.as_ref())?;
            }
        }
        let mut members = Self::member_ids(&body);
        self.check_members(&members)?;
        // The real service ignores `members: []` in a PUT.
        if members.is_empty()
            && let Some(old) = &existing
        {
            members = Self::member_ids(old);
        }
        let id = match id {
            Some(id) => id.to_string(),
            None => self.new_id(),
        };
        let owner = Owner::Group(id.clone());
        self.unindex(&owner);
        let mut stored: Map<String, Value> = body.as_object().cloned().unwrap_or_default();
        stored.insert("id".into(), id.clone().into());
        stored.insert(
            "members".into(),
            Value::Array(members.iter().map(|m| json!({"value": m})).collect()),
        );
        stored.insert(
            "meta".into(),
            json!({"created": "2026-11-21", "location": format!("/scim/v2/Groups/{id}"), "resourceType": "Group"}),
        );
        let stored = Value::Object(stored);
        self.index(&Self::group_addresses(&stored), owner);
        self.groups.insert(id, stored.clone());
        Ok(stored)
    }

    pub fn group(&self, id: &str) -> Result<&Value, Refusal> {
        self.groups
            .get(id)
            .ok_or_else(|| refuse(400, format!("Unknown account with uuid {id}")))
    }

    /// PATCH: `remove members` (all, or `members[value eq "…"]`), `add members`,
    /// `replace displayName`.
    pub fn patch_group(&mut self, id: &str, ops: &[Value]) -> Result<Value, Refusal> {
        let mut group = self.group(id)?.clone();
        let mut members = Self::member_ids(&group);
        for op in ops {
            let kind = op["op"].as_str().unwrap_or_default().to_ascii_lowercase();
            let path = op["path"].as_str().unwrap_or_default();
            match (kind.as_str(), path) {
                ("remove", "members") => members.clear(),
                ("remove", p) if p.starts_with("members[") => {
                    let value = p.split('"').nth(1).unwrap_or_default();
                    members.retain(|m| m != value);
                }
                ("add", "members") => {
                    let add: Vec<String> = op["value"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|m| m["value"].as_str().map(str::to_string))
                        .collect();
                    self.check_members(&add)?;
                    for m in add {
                        if !members.contains(&m) {
                            members.push(m);
                        }
                    }
                }
                ("replace", "displayName") => group["displayName"] = op["value"].clone(),
                _ => {
                    return Err(refuse(
                        400,
                        format!("Unsupported patch operation {kind} {path}"),
                    ));
                }
            }
        }
        group["members"] = Value::Array(members.iter().map(|m| json!({"value": m})).collect());
        self.groups.insert(id.to_string(), group.clone());
        Ok(group)
    }

    pub fn delete_group(&mut self, id: &str) -> Result<(), Refusal> {
        self.group(id)?;
        self.unindex(&Owner::Group(id.to_string()));
        self.groups.remove(id);
        Ok(())
    }

    /// The admin's remedy Zivver documents for `Alias is a guest` (docs:
    /// "Merge guest accounts": the Synctool profile with "merge guest accounts
    /// into primary account if guest account is an email alias" and "update
    /// existing users"): the guest holding `address` goes into the account
    /// `into` (its id or primary address), and the address becomes one of its
    /// aliases. Not an API call: the simulator's control route stands in.
    pub fn merge_guest(&mut self, address: &str, into: &str) -> Result<(), Refusal> {
        let Some(Owner::Guest(guest)) = self.owner(address).cloned() else {
            return Err(refuse(400, format!("{address} is no guest")));
        };
        let owner = match self.owner(into).cloned() {
            Some(o @ (Owner::User(_) | Owner::Group(_))) => o,
            _ if self.users.contains_key(into) => Owner::User(into.to_string()),
            _ if self.groups.contains_key(into) => Owner::Group(into.to_string()),
            _ => return Err(refuse(400, format!("Unknown account with uuid {into}"))),
        };
        self.unindex(&Owner::Guest(guest.clone()));
        self.guests.remove(&guest);
        let (resource, ext) = match &owner {
            Owner::User(id) => (self.users.get_mut(id), USER_EXT),
            Owner::Group(id) => (self.groups.get_mut(id), GROUP_EXT),
            Owner::Guest(_) => (None, USER_EXT),
        };
        if let Some(r) = resource {
            let aliases = r[ext]["aliases"].as_array().cloned().unwrap_or_default();
            let mut aliases: Vec<Value> = aliases;
            aliases.push(lower(address).into());
            r[ext]["aliases"] = Value::Array(aliases);
        }
        self.index(&[lower(address)], owner);
        Ok(())
    }

    /// The guest holding `address` is gone (merged by other means, or
    /// expired); false when there was none.
    pub fn remove_guest(&mut self, address: &str) -> bool {
        let Some(Owner::Guest(guest)) = self.owner(address).cloned() else {
            return false;
        };
        self.unindex(&Owner::Guest(guest.clone()));
        self.guests.remove(&guest);
        true
    }

    /// Everything, SSO keys included: for tests, never served by the API.
    pub fn dump(&self) -> Value {
        let users: Vec<Value> = self
            .users
            .values()
            .map(|u| {
                let mut u = u.clone();
                if let Some(k) = self.sso.get(u["id"].as_str().unwrap_or_default()) {
                    u[USER_EXT]["SsoAccountKey"] = k.clone().into();
                }
                u
            })
            .collect();
        let guests: Vec<Value> = self
            .guests
            .iter()
            .map(|(id, a)| json!({"id": id, "userName": a}))
            .collect();
        json!({"users": users, "groups": self.groups.values().collect::<Vec<_>>(), "guests": guests})
    }
}
