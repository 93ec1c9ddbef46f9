//! Roster connector `scim`: any SCIM 2.0 service (RFC 7643/7644) as a source
//! and a target.
//!
//! People are `/Users`; functional accounts are `/Groups` whose `externalId`
//! is their address and whose members are their delegates. What the service
//! supports is read from `/ServiceProviderConfig`: with PATCH, an update
//! sends only the changed attributes, else a full PUT built on what the
//! service holds; with ETags, every write names the version it was based on
//! (`If-Match`) and a write that lost a race is read again and retried once.
//! The SCIM client itself lives in the SDK, shared with `zivver`.

mod resources;

use resources::{functional, group, group_body, person, user_body, user_patch};
use roster_sdk::prelude::*;
use roster_sdk::scim::{Capabilities, ScimClient, patch_body};
use roster_sdk::{Update, paging};
use serde_json::{Value, json};
use std::collections::HashMap;

pub struct Scim {
    scim: ScimClient,
    page_size: u32,
    /// `auto` asks the service; `true`/`false` overrides it.
    patch_setting: Option<bool>,
    enterprise: bool,
    caps: Option<Capabilities>,
    users: HashMap<String, Value>,
    groups: HashMap<String, Value>,
    /// Lower-cased address → user id, for members.
    user_ids: HashMap<String, String>,
    all_groups: Vec<Group>,
    loaded: bool,
}

impl Connector for Scim {
    fn describe() -> Descriptor {
        Descriptor::new("scim", env!("CARGO_PKG_VERSION"))
            .description("Any SCIM 2.0 service: users, and groups as functional accounts with members")
            .source()
            .target()
            .kinds(&[AccountKind::Person, AccountKind::Functional])
            .fields(&[
                Field::Email,
                Field::Aliases,
                Field::DisplayName,
                Field::GivenName,
                Field::FamilyName,
                Field::Enabled,
                // externalId is written on users (the source's immutable key) but
                // not compared: a group's externalId is its address.
                Field::Delegates,
            ])
            .field("base_url", "SCIM base URL, e.g. https://host/scim/v2/")
            .secret("token", "Bearer token")
            .optional(
                "patch",
                "Use PATCH for updates: auto (ask /ServiceProviderConfig), true or false",
                Some("auto"),
            )
            .optional(
                "enterprise",
                "Write the org unit to the enterprise extension's department (the service must know the extension)",
                Some("false"),
            )
            .optional("page_size", "Resources per SCIM page", Some("500"))
    }

    fn configure(config: Config) -> Result<Self> {
        let patch_setting = match config.get_or("patch", "auto") {
            "auto" => None,
            "true" => Some(true),
            "false" => Some(false),
            other => {
                return Err(Error::invalid(format!(
                    "patch: `{other}` is not auto, true or false"
                )));
            }
        };
        Ok(Scim {
            scim: ScimClient::new(config.required("base_url")?, config.required("token")?),
            page_size: config.number("page_size", 500)?,
            patch_setting,
            enterprise: config.bool("enterprise", false)?,
            caps: None,
            users: HashMap::new(),
            groups: HashMap::new(),
            user_ids: HashMap::new(),
            all_groups: vec![],
            loaded: false,
        })
    }

    fn test_connection(&mut self, account: Option<String>) -> Result<ConnectionReport> {
        let caps = self.capabilities()?;
        let users = self.scim.total("Users")?;
        let checks = vec![
            format!(
                "SCIM service at {} answered; token accepted ({} user{} seen)",
                self.scim.base(),
                users,
                if users == 1 { "" } else { "s" }
            ),
            format!(
                "updates by {}; ETags {}",
                if caps.patch { "PATCH" } else { "PUT" },
                if caps.etag { "used" } else { "not offered" }
            ),
        ];
        ConnectionReport::found(checks, account, |address| self.find_account(address))
    }

    fn read_all(&mut self) -> Result<Vec<Account>> {
        self.load()
    }

    fn find_account(&mut self, address: &str) -> Result<Account> {
        let u = self
            .scim
            .find("Users", "userName", address)?
            .ok_or_else(|| Error::not_found(format!("no SCIM user {address}")))?;
        person(&u).ok_or_else(|| Error::invalid(format!("SCIM user {address} has no address")))
    }

    fn read_groups(&mut self, request: PageRequest) -> Result<GroupPage> {
        if request.cursor.is_none() {
            self.load()?;
        }
        let (groups, next_cursor) = paging::offset_page(&self.all_groups, &request)?;
        Ok(GroupPage {
            groups,
            next_cursor,
        })
    }

    fn apply_change(&mut self, change: Change) -> Result<Applied> {
        if !self.loaded {
            self.load()?;
        }
        let id = match change.op {
            Operation::Create(a) if a.kind == AccountKind::Functional => self.create_group(&a)?,
            Operation::Create(a) => self.create_user(&a)?,
            Operation::Update(u) if u.account.kind == AccountKind::Functional => {
                self.update_group(&u)?
            }
            Operation::Update(u) => self.update_user(&u)?,
            Operation::Disable(id) => self.disable(&id)?,
            Operation::Delete(id) => self.delete(&id)?,
            Operation::MergeGuest(_) => {
                return Err(Error::unsupported("guest accounts (SCIM has none)"));
            }
        };
        Ok(Applied { id: Some(id) })
    }
}

/// The id the service gave a resource it stored.
fn id_of(stored: &Value) -> Result<String> {
    stored["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::other("the service answered a write without an id"))
}

impl Scim {
    fn capabilities(&mut self) -> Result<Capabilities> {
        if let Some(c) = self.caps {
            return Ok(c);
        }
        let mut c = self.scim.capabilities()?;
        if let Some(p) = self.patch_setting {
            c.patch = p;
        }
        self.caps = Some(c);
        Ok(c)
    }

    /// Reads every user and group; the accounts they make.
    fn load(&mut self) -> Result<Vec<Account>> {
        let users = self.scim.list_all("Users", None, self.page_size)?;
        let groups = self.scim.list_all("Groups", None, self.page_size)?;
        self.users.clear();
        self.groups.clear();
        self.user_ids.clear();
        let mut accounts = Vec::new();
        let mut addresses = HashMap::new();
        for u in users {
            let Some(a) = person(&u) else {
                host::warn(&format!(
                    "SCIM user {} has no e-mail address; left out",
                    u["id"].as_str().unwrap_or("?")
                ));
                continue;
            };
            addresses.insert(a.id.clone(), a.email.clone());
            self.user_ids.insert(a.email.to_lowercase(), a.id.clone());
            self.users.insert(a.id.clone(), u);
            accounts.push(a);
        }
        self.all_groups = groups.iter().filter_map(group).collect();
        for g in groups {
            if let Some(a) = functional(&g, &addresses) {
                self.groups.insert(a.id.clone(), g);
                accounts.push(a);
            }
        }
        self.loaded = true;
        Ok(accounts)
    }

    /// The member ids for the delegates' addresses; an address with no user is an error.
    fn members(&self, delegates: &[String]) -> Result<Vec<String>> {
        delegates
            .iter()
            .map(|d| {
                self.user_ids
                    .get(&d.to_lowercase())
                    .cloned()
                    .ok_or_else(|| {
                        Error::not_found(format!("member {d} is no user of the SCIM service"))
                    })
            })
            .collect()
    }

    fn remember_user(&mut self, stored: Value, a: &Account) -> Result<String> {
        let id = id_of(&stored)?;
        self.user_ids.insert(a.email.to_lowercase(), id.clone());
        self.users.insert(id.clone(), stored);
        Ok(id)
    }

    fn create_user(&mut self, a: &Account) -> Result<String> {
        let body = user_body(None, a, self.enterprise);
        let stored = self
            .scim
            .create_once("Users", &body, "userName", &a.email)?;
        self.remember_user(stored, a)
    }

    fn create_group(&mut self, a: &Account) -> Result<String> {
        let members = self.members(&a.delegates)?;
        let body = group_body(None, a, &members);
        let stored = self
            .scim
            .create_once("Groups", &body, "externalId", &a.email)?;
        let id = id_of(&stored)?;
        self.groups.insert(id.clone(), stored);
        Ok(id)
    }

    fn update_user(&mut self, u: &Update) -> Result<String> {
        let caps = self.capabilities()?;
        let enterprise = self.enterprise;
        let account = u.account.clone();
        let changed = u.changed.clone();
        self.write("Users", &u.id, caps, move |base| match caps.patch {
            true => (
                "PATCH",
                patch_body(user_patch(&account, &changed, enterprise)),
            ),
            false => ("PUT", user_body(base, &account, enterprise)),
        })?;
        self.user_ids
            .insert(u.account.email.to_lowercase(), u.id.clone());
        Ok(u.id.clone())
    }

    fn update_group(&mut self, u: &Update) -> Result<String> {
        let caps = self.capabilities()?;
        let members = self.members(&u.account.delegates)?;
        let account = u.account.clone();
        self.write("Groups", &u.id, caps, move |base| match caps.patch {
            true => {
                let display = account
                    .display_name
                    .clone()
                    .unwrap_or_else(|| account.email.clone());
                let value: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
                let mut ops =
                    vec![json!({"op": "replace", "path": "displayName", "value": display})];
                ops.push(match value.is_empty() {
                    true => json!({"op": "remove", "path": "members"}),
                    false => json!({"op": "replace", "path": "members", "value": value}),
                });
                ("PATCH", patch_body(ops))
            }
            false => ("PUT", group_body(base, &account, &members)),
        })?;
        Ok(u.id.clone())
    }

    /// One write of the resource `resource/id`, built by `body` on what the
    /// service holds. With ETags it names that version; a stale version is
    /// read again and the write tried once more.
    fn write(
        &mut self,
        resource: &str,
        id: &str,
        caps: Capabilities,
        body: impl Fn(Option<&Value>) -> (&'static str, Value),
    ) -> Result<()> {
        let mut fresh = false;
        loop {
            let base = self.cached(resource, id).cloned();
            if base.is_none() && !fresh {
                self.refresh(resource, id)?;
                fresh = true;
                continue;
            }
            let version = caps
                .etag
                .then(|| base.as_ref().and_then(|b| b["meta"]["version"].as_str()))
                .flatten()
                .map(str::to_string);
            let (method, payload) = body(base.as_ref());
            match self
                .scim
                .write_if_match(method, resource, id, &payload, version.as_deref())
            {
                Ok(stored) => {
                    // PATCH may answer 204 with no body: read the resource again.
                    if stored.is_object() {
                        self.cache(resource, id, stored);
                    } else {
                        self.refresh(resource, id)?;
                    }
                    return Ok(());
                }
                Err(e) if e.kind == ErrorKind::Conflict && version.is_some() && !fresh => {
                    self.refresh(resource, id)?;
                    fresh = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn cached(&self, resource: &str, id: &str) -> Option<&Value> {
        match resource {
            "Users" => self.users.get(id),
            _ => self.groups.get(id),
        }
    }

    fn cache(&mut self, resource: &str, id: &str, value: Value) {
        match resource {
            "Users" => self.users.insert(id.to_string(), value),
            _ => self.groups.insert(id.to_string(), value),
        };
    }

    fn refresh(&mut self, resource: &str, id: &str) -> Result<()> {
        let current = self.scim.get(resource, id)?;
        self.cache(resource, id, current);
        Ok(())
    }

    fn disable(&mut self, id: &str) -> Result<String> {
        let caps = self.capabilities()?;
        if self.groups.contains_key(id) {
            // A functional account is disabled by emptying it.
            self.write("Groups", id, caps, |base| match caps.patch {
                true => (
                    "PATCH",
                    patch_body(vec![json!({"op": "remove", "path": "members"})]),
                ),
                false => {
                    let mut body = roster_sdk::scim::put_base(base);
                    body.insert("members".into(), json!([]));
                    ("PUT", Value::Object(body))
                }
            })?;
        } else {
            self.write("Users", id, caps, |base| match caps.patch {
                true => (
                    "PATCH",
                    patch_body(vec![
                        json!({"op": "replace", "path": "active", "value": false}),
                    ]),
                ),
                false => {
                    let mut body = roster_sdk::scim::put_base(base);
                    body.insert("active".into(), false.into());
                    ("PUT", Value::Object(body))
                }
            })?;
        }
        Ok(id.to_string())
    }

    fn delete(&mut self, id: &str) -> Result<String> {
        let resource = if self.groups.contains_key(id) {
            "Groups"
        } else {
            "Users"
        };
        self.scim.delete(resource, id)?;
        self.users.remove(id);
        self.groups.remove(id);
        Ok(id.to_string())
    }
}

roster_sdk::export_connector!(Scim);
