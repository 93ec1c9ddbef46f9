//! Roster connector `riva-crm`: who syncs in a Riva sync policy, as a target.
//!
//! Riva has no public API: its admins add users to a policy in Riva
//! Manager, which reads them from a csv file. This connector keeps that
//! file, in the directory the pipeline grants it, and writes it atomically
//! (a temporary file, synced, renamed: Riva Manager sees the old list or the
//! new one, never half of it). Whether a mailbox may sync is the vendor's
//! checklist: a CRM user (Dynamics 365 `systemusers`) whose primary e-mail
//! is the mailbox's, enabled, and a free e-mail and CRM licence.
//!
//! Accounts are the CRM's users with an e-mail address; `enabled` means "in
//! the policy". A disabled CRM user is marked `roster:blocked` with the
//! reason, so the plan reports it instead of trying.

use roster_sdk::http::Request;
use roster_sdk::oauth::ClientCredentials;
use roster_sdk::prelude::*;
use roster_sdk::{Update, attr, fs};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// The columns of Riva Manager's import file. *Assumption*: no public
/// specification of the format is in reach; `write_policy` is its one writer.
const HEADER: &str = "EmailAddress,DisplayName,CrmUser";

/// The properties read of each CRM user (Web API reference, systemuser).
const SELECT: &str = "systemuserid,fullname,internalemailaddress,domainname,isdisabled,accessmode,islicensed,applicationid";

/// The privilege that lets an account act for another user (impersonation;
/// "Act on Behalf of Another User", which the built-in Delegate role has).
const IMPERSONATE: &str = "prvActOnBehalfOfAnotherUser";

/// What Riva does as the user in the CRM: read and write contacts and
/// activities (appointments, tasks, e-mail). *Assumption*: Riva documents
/// no minimal set; the admin can set `crm_user_privileges`.
const USER_PRIVILEGES: &str =
    "prvReadContact,prvWriteContact,prvReadActivity,prvWriteActivity,prvCreateActivity";

pub struct Riva {
    file: PathBuf,
    api: HttpClient,
    scope: String,
    oauth: ClientCredentials,
    /// Seats: the lower of the e-mail and CRM licence counts, when given.
    licences: Option<u32>,
    /// Riva's CRM connection account (its address), whose impersonation
    /// privilege is checked; none: not checked.
    connection_account: Option<String>,
    /// Privileges each syncing CRM user must hold in their own right.
    user_privileges: Vec<String>,
    /// CRM users by id, and ids by lower-cased address.
    users: HashMap<String, Value>,
    by_address: HashMap<String, String>,
    /// The policy's users: lower-cased address → the row as written.
    policy: BTreeMap<String, String>,
    snapshot: Vec<Account>,
    loaded: bool,
}

impl Connector for Riva {
    fn describe() -> Descriptor {
        Descriptor::new("riva-crm", env!("CARGO_PKG_VERSION"))
            .description("A Riva sync policy's users (Riva Manager's import file), checked against Dynamics 365 users")
            .target()
            .kinds(&[AccountKind::Person])
            .fields(&[Field::Email, Field::Enabled])
            .optional("policy_file", "The policy's import file, in the granted directory", Some("riva-policy-users.csv"))
            .field("crm_url", "Dynamics 365 organisation URL, e.g. https://contoso.crm4.dynamics.com")
            .field("tenant_id", "Entra tenant of the CRM's app registration")
            .field("client_id", "Application (client) id")
            .secret("client_secret", "Client secret")
            .optional("login_url", "Entra login endpoint", Some("https://login.microsoftonline.com"))
            .optional("email_licences", "Riva e-mail licences (one per syncing user)", None)
            .optional("crm_licences", "Riva CRM licences (one per syncing user)", None)
            .optional(
                "crm_connection_account",
                "The address of the CRM user Riva connects as: it must be allowed to act on behalf of the users it syncs",
                None,
            )
            .optional(
                "crm_user_privileges",
                "Privileges every syncing CRM user must hold (comma-separated)",
                Some(USER_PRIVILEGES),
            )
    }

    fn configure(config: Config) -> Result<Self> {
        let crm = config
            .required("crm_url")?
            .trim_end_matches('/')
            .to_string();
        let login = config
            .get_or("login_url", "https://login.microsoftonline.com")
            .trim_end_matches('/');
        let token_url = format!(
            "{login}/{}/oauth2/v2.0/token",
            config.required("tenant_id")?
        );
        let count = |key: &str| -> Result<Option<u32>> {
            match config.get(key).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => v
                    .parse()
                    .map(Some)
                    .map_err(|_| Error::invalid(format!("{key}: `{v}` is not a number"))),
            }
        };
        let licences = match (count("email_licences")?, count("crm_licences")?) {
            (Some(e), Some(c)) => Some(e.min(c)),
            (one, other) => one.or(other),
        };
        Ok(Riva {
            file: fs::resolve(config.get_or("policy_file", "riva-policy-users.csv"))?,
            // Dataverse asks clients for the OData version headers.
            api: HttpClient::new(&format!("{crm}/api/data/v9.2/"))
                .with_header("Accept", "application/json")
                .with_header("OData-MaxVersion", "4.0")
                .with_header("OData-Version", "4.0"),
            scope: format!("{crm}/.default"),
            oauth: ClientCredentials::new(
                &token_url,
                config.required("client_id")?,
                config.required("client_secret")?,
            ),
            licences,
            connection_account: config
                .get("crm_connection_account")
                .filter(|a| !a.is_empty())
                .map(str::to_lowercase),
            user_privileges: match config.get("crm_user_privileges") {
                Some(_) => config.list("crm_user_privileges"),
                None => USER_PRIVILEGES.split(',').map(str::to_string).collect(),
            },
            users: HashMap::new(),
            by_address: HashMap::new(),
            policy: BTreeMap::new(),
            snapshot: vec![],
            loaded: false,
        })
    }

    fn test_connection(&mut self, account: Option<String>) -> Result<ConnectionReport> {
        self.read_policy()?;
        let mut checks = vec![format!(
            "policy file {} readable ({} users)",
            self.file.display(),
            self.policy.len()
        )];
        self.load()?;
        checks.push(format!(
            "Dynamics 365 answered; {} CRM users with an e-mail address",
            self.by_address.len()
        ));
        let found = match account {
            None => None,
            Some(address) => {
                let a = self.find_account(&address)?;
                if let Some(reason) = a.attribute(attr::BLOCKED) {
                    return Err(Error::invalid(format!("{address}: {reason}")));
                }
                checks.push(format!(
                    "CRM user {address} found ({}): enabled, licensed, Read-Write, a person, holding {}{}; {} the policy",
                    a.id,
                    self.user_privileges.join(", "),
                    match &self.connection_account {
                        Some(c) => format!("; {c} may act on behalf of it"),
                        None => String::new(),
                    },
                    if a.enabled { "in" } else { "not yet in" }
                ));
                Some(a)
            }
        };
        Ok(ConnectionReport {
            checks,
            account: found,
        })
    }

    fn read_all(&mut self) -> Result<Vec<Account>> {
        self.load()?;
        Ok(self.snapshot.clone())
    }

    /// A CRM user by primary e-mail, from the last read (or a new one).
    fn find_account(&mut self, address: &str) -> Result<Account> {
        if !self.loaded {
            self.load()?;
        }
        self.snapshot
            .iter()
            .find(|a| a.email.eq_ignore_ascii_case(address))
            .cloned()
            .ok_or_else(|| Error::not_found(no_crm_user(address)))
    }

    fn seats(&mut self) -> Result<SeatCount> {
        self.read_policy()?;
        Ok(SeatCount {
            free: self
                .licences
                .map(|l| l.saturating_sub(self.policy.len() as u32)),
        })
    }

    /// The whole batch changes the policy in memory; the file is written once.
    fn apply(&mut self, changes: Vec<Change>) -> Vec<ChangeResult> {
        if let Err(e) = self.load() {
            return changes
                .into_iter()
                .map(|c| ChangeResult {
                    change_id: c.id,
                    outcome: Err(e.clone()),
                })
                .collect();
        }
        let before = self.policy.clone();
        let mut results: Vec<ChangeResult> = changes
            .into_iter()
            .map(|c| ChangeResult {
                change_id: c.id.clone(),
                outcome: self.stage(c),
            })
            .collect();
        if self.policy != before
            && let Err(e) = self.write_policy()
        {
            self.policy = before;
            for r in results.iter_mut().filter(|r| r.outcome.is_ok()) {
                r.outcome = Err(e.clone());
            }
        }
        results
    }
}

/// Dataverse's `error.message`, on an error of the status's kind.
fn dataverse_error(r: &roster_sdk::http::Response) -> Error {
    let body: Value = serde_json::from_slice(r.bytes()).unwrap_or(Value::Null);
    let text = body["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("HTTP {}", r.status()));
    Error::new(
        ErrorKind::from_status(r.status()),
        format!(
            "Dynamics 365: {text} ({}: HTTP {})",
            r.request(),
            r.status()
        ),
    )
}

/// Why a CRM user cannot sync, from its row (Web API reference, systemuser:
/// `isdisabled`, `applicationid`, `accessmode` 0 Read-Write, 1 Administrative,
/// 2 Read, 3 Support User, 4 Non-interactive, 5 Delegated Admin; `islicensed`).
fn row_problems(u: &Value) -> Vec<String> {
    let mut why = Vec::new();
    if u["isdisabled"] == true {
        why.push("the CRM user is disabled in Dynamics 365; enable it there before Riva can sync this mailbox".to_string());
    }
    if u["applicationid"].as_str().is_some_and(|a| !a.is_empty()) {
        why.push("the CRM user is an application user, not a person: Riva syncs a mailbox with its owner's CRM user".to_string());
    } else {
        let mode = match u["accessmode"].as_i64() {
            Some(0) | None => None,
            Some(1) => Some("Administrative (no access to CRM data)"),
            Some(2) => Some("Read (Riva must write)"),
            Some(3) => Some("Support User"),
            Some(4) => Some("Non-interactive"),
            Some(5) => Some("Delegated Admin"),
            Some(_) => Some("not Read-Write"),
        };
        if let Some(mode) = mode {
            why.push(format!(
                "the CRM user's access mode is {mode}: set it to Read-Write in Dynamics 365"
            ));
        }
    }
    if u["islicensed"] == false {
        why.push("the CRM user has no Dynamics 365 licence: assign one in the Microsoft 365 admin center".to_string());
    }
    why
}

fn no_crm_user(address: &str) -> String {
    format!(
        "no Dynamics 365 user has {address} as primary e-mail (internalemailaddress); Riva syncs a mailbox only to a CRM user with the identical address"
    )
}

/// A csv field, quoted when it must be.
fn csv(field: &str) -> String {
    if field.contains([',', '"', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

impl Riva {
    fn read_policy(&mut self) -> Result<()> {
        self.policy.clear();
        let text = match std::fs::read_to_string(&self.file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(Error::other(format!(
                    "cannot read the policy file {}: {e}",
                    self.file.display()
                )));
            }
        };
        for line in text
            .lines()
            .skip_while(|l| l.trim() == HEADER || l.trim().is_empty())
        {
            let address = line
                .split(',')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"');
            if address.contains('@') {
                self.policy.insert(address.to_lowercase(), line.to_string());
            }
        }
        Ok(())
    }

    fn write_policy(&self) -> Result<()> {
        let mut text = format!("{HEADER}\n");
        for row in self.policy.values() {
            text.push_str(row);
            text.push('\n');
        }
        fs::write_atomic(&self.file, text.as_bytes()).map_err(|e| {
            Error::other(format!(
                "cannot write the policy file {}: {}",
                self.file.display(),
                e.message
            ))
        })
    }

    fn crm_users(&mut self) -> Result<Vec<Value>> {
        let token = self.oauth.token(&self.scope)?;
        let mut rows = Vec::new();
        let mut url = self.api.url(&format!("systemusers?$select={SELECT}"));
        loop {
            let r = self
                .api
                .request("GET", &url)
                .bearer(&token)
                .header("Prefer", "odata.maxpagesize=500")
                .send()?;
            if !r.is_success() {
                return Err(dataverse_error(&r));
            }
            let page: Value = r.json()?;
            rows.extend(page["value"].as_array().cloned().unwrap_or_default());
            match page["@odata.nextLink"].as_str() {
                Some(next) if next.starts_with("http") => url = next.to_string(),
                Some(next) => {
                    url = self.api.url(
                        next.rsplit_once("/api/data/v9.2/")
                            .map(|(_, p)| p)
                            .unwrap_or(next),
                    )
                }
                None => return Ok(rows),
            }
        }
    }

    /// Each user's privileges (`RetrieveUserPrivileges`), by id, asked for
    /// concurrently.
    fn privileges(&mut self, ids: &[String]) -> Result<HashMap<String, Vec<String>>> {
        let token = self.oauth.token(&self.scope)?;
        let requests: Vec<Request> = ids
            .iter()
            .map(|id| {
                self.api
                    .request(
                        "GET",
                        &format!(
                            "systemusers({id})/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()"
                        ),
                    )
                    .bearer(&token)
            })
            .collect();
        let mut out = HashMap::new();
        for (id, answer) in ids.iter().zip(roster_sdk::http::send_all(&requests)) {
            let r = answer?;
            if !r.is_success() {
                return Err(dataverse_error(&r));
            }
            let body: Value = r.json()?;
            let names = body["RolePrivileges"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["PrivilegeName"].as_str().map(str::to_string))
                .collect();
            out.insert(id.clone(), names);
        }
        Ok(out)
    }

    /// Why nobody can sync when the connection account may not act for
    /// others (none when not configured or allowed).
    fn connection_problem(
        &self,
        rows: &[Value],
        privileges: &HashMap<String, Vec<String>>,
    ) -> Option<String> {
        let account = self.connection_account.as_ref()?;
        let row = rows.iter().find(|u| {
            u["internalemailaddress"]
                .as_str()
                .is_some_and(|e| e.eq_ignore_ascii_case(account))
        });
        let Some(id) = row.and_then(|u| u["systemuserid"].as_str()) else {
            return Some(format!(
                "Riva's CRM connection account {account} is no Dynamics 365 user: set crm_connection_account to the address of the user Riva connects as"
            ));
        };
        let allowed = privileges
            .get(id)
            .is_some_and(|p| p.iter().any(|n| n == IMPERSONATE));
        (!allowed).then(|| format!(
            "Riva's CRM connection account {account} may not act on behalf of other users: give it a security role with the privilege Act on Behalf of Another User ({IMPERSONATE}; the built-in Delegate role has it)"
        ))
    }

    fn load(&mut self) -> Result<()> {
        self.read_policy()?;
        let rows = self.crm_users()?;
        let people: Vec<String> = rows
            .iter()
            .filter(|u| {
                u["internalemailaddress"]
                    .as_str()
                    .is_some_and(|e| e.contains('@'))
            })
            .filter_map(|u| u["systemuserid"].as_str().map(str::to_string))
            .collect();
        let privileges = self.privileges(&people)?;
        let everyone = self.connection_problem(&rows, &privileges);
        self.users.clear();
        self.by_address.clear();
        self.snapshot.clear();
        for u in rows {
            let (Some(id), Some(email)) = (
                u["systemuserid"].as_str(),
                u["internalemailaddress"]
                    .as_str()
                    .filter(|e| e.contains('@')),
            ) else {
                continue;
            };
            let mut a = Account::new(id, AccountKind::Person, email);
            a.display_name = u["fullname"].as_str().map(str::to_string);
            a.enabled = self.policy.contains_key(&email.to_lowercase());
            if let Some(d) = u["domainname"].as_str() {
                a.attributes.push(Attribute {
                    key: "domainname".into(),
                    value: d.into(),
                });
            }
            let mut why = row_problems(&u);
            let held = privileges.get(id).cloned().unwrap_or_default();
            let missing: Vec<&str> = self
                .user_privileges
                .iter()
                .filter(|p| !held.contains(p))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                why.push(format!(
                    "the CRM user lacks {} (Riva works in the CRM as this user): give them a security role that has it (e.g. Salesperson)",
                    missing.join(", ")
                ));
            }
            why.extend(everyone.clone());
            if !why.is_empty() {
                a.attributes.push(Attribute {
                    key: attr::BLOCKED.into(),
                    value: why.join("; "),
                });
            }
            self.by_address.insert(email.to_lowercase(), id.to_string());
            self.users.insert(id.to_string(), u);
            self.snapshot.push(a);
        }
        self.loaded = true;
        Ok(())
    }

    /// One change to the in-memory policy.
    fn stage(&mut self, change: Change) -> Result<Applied> {
        match change.op {
            Operation::Update(Update { id, account, .. }) if account.enabled => {
                self.add(&id).map(|_| Applied { id: Some(id) })
            }
            Operation::Update(Update { id, .. })
            | Operation::Disable(id)
            | Operation::Delete(id) => {
                self.remove(&id);
                Ok(Applied { id: Some(id) })
            }
            Operation::Create(a) => Err(Error::not_found(no_crm_user(&a.email))),
            Operation::MergeGuest(_) => Err(Error::unsupported("guest accounts")),
        }
    }

    fn add(&mut self, id: &str) -> Result<()> {
        let user = self
            .users
            .get(id)
            .ok_or_else(|| Error::not_found(format!("no Dynamics 365 user {id}")))?;
        let email = user["internalemailaddress"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some(why) = self
            .snapshot
            .iter()
            .find(|a| a.id == id)
            .and_then(|a| a.attribute(attr::BLOCKED))
        {
            return Err(Error::invalid(format!("{email}: {why}")));
        }
        if self.policy.contains_key(&email.to_lowercase()) {
            return Ok(());
        }
        if let Some(total) = self.licences
            && self.policy.len() as u32 >= total
        {
            return Err(Error::new(
                ErrorKind::Licence,
                format!(
                    "no free Riva licence for {email}: all {total} e-mail/CRM licences are in use"
                ),
            ));
        }
        let row = [
            email.as_str(),
            user["fullname"].as_str().unwrap_or(""),
            user["domainname"].as_str().unwrap_or(""),
        ]
        .map(csv)
        .join(",");
        self.policy.insert(email.to_lowercase(), row);
        Ok(())
    }

    fn remove(&mut self, id: &str) {
        if let Some(email) = self
            .users
            .get(id)
            .and_then(|u| u["internalemailaddress"].as_str())
        {
            self.policy.remove(&email.to_lowercase());
        }
    }
}

roster_sdk::export_connector!(Riva);
