//! The tenant's data: Graph users (kept as the JSON objects Graph returns,
//! so the fixtures' key names survive), Exchange mailboxes and their
//! permissions, groups and members, and the change sequence that delta
//! tokens point into.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};

/// An app registration allowed to ask for tokens.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct App {
    pub client_id: String,
    pub client_secret: String,
    /// Application permissions with admin consent, e.g. `User.Read.All`,
    /// `GroupMember.Read.All`, `Exchange.ManageAsApp`.
    pub roles: Vec<String>,
}

impl App {
    /// The app the demo and tests use unless told otherwise.
    pub fn default_app() -> App {
        App {
            client_id: "roster-sim-client".into(),
            client_secret: "sim-client-secret".into(),
            roles: vec![
                "User.Read.All".into(),
                "GroupMember.Read.All".into(),
                "Exchange.ManageAsApp".into(),
            ],
        }
    }
}

pub(crate) struct UserRecord {
    pub props: Map<String, Value>,
    /// The change sequence number of the last change.
    pub changed: u64,
}

pub(crate) struct Removed {
    pub id: String,
    pub reason: String,
    pub seq: u64,
}

pub struct Tenant {
    pub id: String,
    /// Domains accepted in place of the id (token and admin API paths).
    pub domains: Vec<String>,
    pub apps: Vec<App>,
    pub(crate) users: BTreeMap<String, UserRecord>,
    pub(crate) removed: Vec<Removed>,
    /// Mailboxes by lower-cased primary address.
    pub(crate) mailboxes: BTreeMap<String, Value>,
    /// The identities `Mailbox('…')` resolves (Get-Mailbox -Identity: any
    /// SMTP address, the Guid, the UserPrincipalName), lower-cased → primary key.
    pub(crate) mailbox_index: HashMap<String, String>,
    /// ExternalDirectoryObjectId → primary key: how a Graph user finds its
    /// mailbox here (no identity the API resolves).
    pub(crate) object_ids: HashMap<String, String>,
    /// Lower-cased userPrincipalName → Graph user id.
    pub(crate) upns: HashMap<String, String>,
    /// Permission entries by lower-cased primary address.
    pub(crate) permissions: HashMap<String, Vec<Value>>,
    pub(crate) groups: BTreeMap<String, Value>,
    pub(crate) members: HashMap<String, Vec<Value>>,
    /// The last change sequence number handed out.
    pub(crate) seq: u64,
    /// Bumped to expire every delta token issued so far.
    pub(crate) epoch: u64,
}

impl Tenant {
    pub fn new(id: &str) -> Tenant {
        Tenant {
            id: id.into(),
            domains: vec![],
            apps: vec![App::default_app()],
            users: BTreeMap::new(),
            removed: vec![],
            mailboxes: BTreeMap::new(),
            mailbox_index: HashMap::new(),
            object_ids: HashMap::new(),
            upns: HashMap::new(),
            permissions: HashMap::new(),
            groups: BTreeMap::new(),
            members: HashMap::new(),
            seq: 1,
            epoch: 1,
        }
    }

    pub fn knows(&self, tenant: &str) -> bool {
        self.id.eq_ignore_ascii_case(tenant)
            || self.domains.iter().any(|d| d.eq_ignore_ascii_case(tenant))
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn mailbox_count(&self) -> usize {
        self.mailboxes.len()
    }

    /// Adds or changes a user: `props` are merged over what is there.
    pub fn upsert_user(&mut self, props: Map<String, Value>) -> Result<(), String> {
        let id = props
            .get("id")
            .and_then(Value::as_str)
            .ok_or("a user without an `id`")?
            .to_string();
        self.seq += 1;
        let seq = self.seq;
        self.removed.retain(|r| r.id != id);
        let record = self.users.entry(id).or_insert_with(|| UserRecord {
            props: Map::new(),
            changed: seq,
        });
        for (k, v) in props {
            if !k.starts_with('@') {
                record.props.insert(k, v);
            }
        }
        record.changed = seq;
        let upn = record
            .props
            .get("userPrincipalName")
            .and_then(Value::as_str);
        if let Some(upn) = upn.map(str::to_lowercase) {
            let id = record.props["id"].as_str().unwrap_or_default().to_string();
            self.upns.retain(|_, v| *v != id);
            self.upns.insert(upn, id);
        }
        Ok(())
    }

    /// Removes a user; `reason` is `deleted` (hard) or `changed` (soft delete).
    pub fn remove_user(&mut self, id: &str, reason: &str) {
        self.seq += 1;
        self.users.remove(id);
        self.upns.retain(|_, v| v != id);
        self.removed.retain(|r| r.id != id);
        self.removed.push(Removed {
            id: id.into(),
            reason: reason.into(),
            seq: self.seq,
        });
    }

    /// Applies a Graph list or delta body (`{"value": [...]}`): each item
    /// is upserted, or removed when it carries `@removed` (reason `deleted`
    /// or `changed`). Returns how many items were applied.
    pub fn apply_graph_changes(&mut self, body: &Value) -> Result<usize, String> {
        let items = body["value"]
            .as_array()
            .ok_or("expected {\"value\": [users]}")?;
        for item in items {
            let obj = item
                .as_object()
                .ok_or_else(|| format!("not a user object: {item}"))?;
            match obj.get("@removed") {
                Some(removed) => {
                    let id = obj.get("id").and_then(Value::as_str).unwrap_or_default();
                    self.remove_user(id, removed["reason"].as_str().unwrap_or("deleted"));
                }
                None => self.upsert_user(obj.clone())?,
            }
        }
        Ok(items.len())
    }

    /// Mailboxes keyed by primary address (the fixture's shape) or a `value` list.
    pub fn apply_mailboxes(&mut self, body: &Value) -> Result<usize, String> {
        let mailboxes: Vec<&Value> = match body {
            Value::Object(o) if o.contains_key("value") => {
                body["value"].as_array().into_iter().flatten().collect()
            }
            Value::Object(o) => o.values().collect(),
            _ => return Err("expected mailboxes keyed by address".into()),
        };
        for m in &mailboxes {
            self.upsert_mailbox((*m).clone())?;
        }
        Ok(mailboxes.len())
    }

    /// Permission lists keyed by mailbox (the fixture's shape).
    pub fn apply_permissions(&mut self, body: &Value) -> Result<usize, String> {
        let map = body
            .as_object()
            .ok_or("expected permissions keyed by mailbox")?;
        for (mailbox, entries) in map {
            let list = entries["value"].as_array().cloned().unwrap_or_default();
            self.set_permissions(mailbox, list);
        }
        Ok(map.len())
    }

    /// Renames every `step`-th member user (display name), as a change for
    /// delta rounds to find; returns how many changed.
    pub fn touch(&mut self, step: usize) -> usize {
        let ids: Vec<String> = self
            .users
            .iter()
            .filter(|(_, u)| u.props.get("userType").and_then(Value::as_str) != Some("Guest"))
            .map(|(id, _)| id.clone())
            .step_by(step.max(1))
            .collect();
        for id in &ids {
            let name = self.users[id]
                .props
                .get("displayName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let mut change = Map::new();
            change.insert("id".into(), id.clone().into());
            change.insert("displayName".into(), format!("{name} (renamed)").into());
            let _ = self.upsert_user(change);
        }
        ids.len()
    }

    /// Every delta token issued so far answers 410 from now on.
    pub fn expire_delta_tokens(&mut self) {
        self.epoch += 1;
    }

    /// Adds or replaces a mailbox (Exchange admin shape).
    pub fn upsert_mailbox(&mut self, mailbox: Value) -> Result<(), String> {
        let primary = mailbox
            .get("PrimarySmtpAddress")
            .and_then(Value::as_str)
            .ok_or("a mailbox without `PrimarySmtpAddress`")?
            .to_lowercase();
        let mut keys = vec![primary.clone()];
        for k in ["Guid", "UserPrincipalName"] {
            if let Some(v) = mailbox.get(k).and_then(Value::as_str) {
                keys.push(v.to_lowercase());
            }
        }
        if let Some(id) = mailbox
            .get("ExternalDirectoryObjectId")
            .and_then(Value::as_str)
        {
            self.object_ids.insert(id.to_lowercase(), primary.clone());
        }
        if let Some(addrs) = mailbox.get("EmailAddresses").and_then(Value::as_array) {
            for a in addrs.iter().filter_map(Value::as_str) {
                match a.split_once(':') {
                    Some((prefix, rest)) if prefix.eq_ignore_ascii_case("smtp") => {
                        keys.push(rest.to_lowercase())
                    }
                    Some(_) => {}
                    None => keys.push(a.to_lowercase()),
                }
            }
        }
        for k in keys {
            self.mailbox_index.insert(k, primary.clone());
        }
        self.mailboxes.insert(primary, mailbox);
        Ok(())
    }

    pub fn set_permissions(&mut self, mailbox: &str, entries: Vec<Value>) {
        let key = self
            .mailbox_index
            .get(&mailbox.to_lowercase())
            .cloned()
            .unwrap_or_else(|| mailbox.to_lowercase());
        self.permissions.insert(key, entries);
    }

    /// Adds one permission entry to a mailbox's list (the admin API's shape).
    pub fn add_permission(&mut self, mailbox: &str, entry: Value) {
        let key = self
            .mailbox_index
            .get(&mailbox.to_lowercase())
            .cloned()
            .unwrap_or_else(|| mailbox.to_lowercase());
        self.permissions.entry(key).or_default().push(entry);
    }

    pub fn upsert_group(&mut self, group: Value, members: Vec<Value>) -> Result<(), String> {
        let id = group
            .get("id")
            .and_then(Value::as_str)
            .ok_or("a group without an `id`")?
            .to_string();
        self.members.insert(id.clone(), members);
        self.groups.insert(id, group);
        Ok(())
    }

    /// The mailbox an identity names: an SMTP address, the Guid, or the
    /// UserPrincipalName (its own, or its Graph user's).
    pub(crate) fn mailbox(&self, identity: &str) -> Option<&Value> {
        let identity = identity.to_lowercase();
        let key = match self.mailbox_index.get(&identity) {
            Some(key) => key,
            None => {
                let user = self.upns.get(&identity)?;
                self.object_ids.get(&user.to_lowercase())?
            }
        };
        self.mailboxes.get(key)
    }

    /// The mailbox's UserPrincipalName: its own, else its Graph user's, else
    /// its primary address (the fixtures, from CloudSync, omit it).
    pub(crate) fn upn_of(&self, mailbox: &Value) -> String {
        if let Some(upn) = mailbox["UserPrincipalName"].as_str() {
            return upn.to_string();
        }
        mailbox["ExternalDirectoryObjectId"]
            .as_str()
            .and_then(|id| self.users.get(id))
            .and_then(|u| u.props.get("userPrincipalName"))
            .and_then(Value::as_str)
            .or_else(|| mailbox["PrimarySmtpAddress"].as_str())
            .unwrap_or_default()
            .to_string()
    }

    /// A mailbox as the admin API answers it. The fixtures come from
    /// CloudSync's test data, which CloudSync had already trimmed; the real
    /// answer (CloudSync's own parsing shows it) names the addresses with
    /// their prefixes (`SMTP:` primary, `smtp:` others) and carries the
    /// UserPrincipalName.
    pub(crate) fn mailbox_view(&self, mailbox: &Value) -> Value {
        let mut m = mailbox.clone();
        let primary = m["PrimarySmtpAddress"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some(addrs) = m["EmailAddresses"].as_array_mut() {
            for a in addrs.iter_mut() {
                let Some(text) = a.as_str().filter(|t| !t.contains(':')) else {
                    continue;
                };
                let prefix = if text.eq_ignore_ascii_case(&primary) {
                    "SMTP"
                } else {
                    "smtp"
                };
                *a = format!("{prefix}:{text}").into();
            }
        }
        m["UserPrincipalName"] = self.upn_of(mailbox).into();
        m
    }

    /// A mailbox's permission entries as the admin API answers them: each
    /// item of `PermissionList` with its `Deny`, `IsInherited` and
    /// `InheritanceType` (CloudSync's sample of the real answer), and a
    /// holder that is a mailbox of the tenant named by its
    /// UserPrincipalName, as Exchange names holders.
    pub(crate) fn permissions_view(&self, primary: &str) -> Vec<Value> {
        let entries = self.permissions.get(primary).cloned().unwrap_or_default();
        entries
            .into_iter()
            .map(|mut e| {
                if let Some(items) = e["PermissionList"].as_array_mut() {
                    for item in items.iter_mut().filter(|i| i.is_object()) {
                        for (k, v) in [
                            ("Deny", Value::Bool(false)),
                            ("IsInherited", Value::Bool(false)),
                            ("InheritanceType", "All".into()),
                        ] {
                            item.as_object_mut().map(|o| o.entry(k).or_insert(v));
                        }
                    }
                }
                let holder = e["User"].as_str().and_then(|u| self.mailbox(u));
                if let Some(m) = holder {
                    e["User"] = self.upn_of(m).into();
                }
                e
            })
            .collect()
    }

    /// A Graph user for every mailbox, as Entra would have one: the
    /// fixtures of the Exchange side carry no Graph users of their own.
    /// Properties a user file already gave are kept.
    pub fn derive_missing_users(&mut self) {
        let derived: Vec<Map<String, Value>> = self
            .mailboxes
            .values()
            .filter_map(|m| {
                let id = m.get("ExternalDirectoryObjectId")?.as_str()?;
                Some(user_for_mailbox(id, m))
            })
            .collect();
        for mut u in derived {
            let id = u["id"].as_str().unwrap_or_default().to_string();
            if let Some(existing) = self.users.get(&id) {
                u.retain(|k, _| !existing.props.contains_key(k));
                u.insert("id".into(), id.into());
            }
            let _ = self.upsert_user(u);
        }
    }
}

fn user_for_mailbox(id: &str, m: &Value) -> Map<String, Value> {
    let primary = m["PrimarySmtpAddress"].as_str().unwrap_or_default();
    let proxies: Vec<Value> = m["EmailAddresses"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|addr| {
                    if addr.contains(':') {
                        addr.to_string()
                    } else if addr.eq_ignore_ascii_case(primary) {
                        format!("SMTP:{addr}")
                    } else {
                        format!("smtp:{addr}")
                    }
                })
                .map(Value::String)
                .collect()
        })
        .unwrap_or_default();
    let disabled = m["AccountDisabled"].as_bool().unwrap_or(false);
    let mut u = Map::new();
    u.insert("id".into(), id.into());
    u.insert("userPrincipalName".into(), primary.into());
    u.insert("mail".into(), primary.into());
    u.insert("displayName".into(), m["DisplayName"].clone());
    u.insert("proxyAddresses".into(), Value::Array(proxies));
    u.insert("accountEnabled".into(), Value::Bool(!disabled));
    u.insert("userType".into(), "Member".into());
    u
}
