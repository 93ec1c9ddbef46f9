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
use roster_sdk::{Update, fs};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

const HEADER: &str = "EmailAddress,DisplayName,CrmUser";

pub struct Riva {
    file: PathBuf,
    api: HttpClient,
    scope: String,
    oauth: ClientCredentials,
    /// Seats: the lower of the e-mail and CRM licence counts, when given.
    licences: Option<u32>,
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
            api: HttpClient::new(&format!("{crm}/api/data/v9.2/"))
                .with_header("Accept", "application/json"),
            scope: format!("{crm}/.default"),
            oauth: ClientCredentials::new(
                &token_url,
                config.required("client_id")?,
                config.required("client_secret")?,
            ),
            licences,
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
                let a = self
                    .snapshot
                    .iter()
                    .find(|a| a.email.eq_ignore_ascii_case(&address))
                    .cloned()
                    .ok_or_else(|| Error::not_found(no_crm_user(&address)))?;
                if let Some(reason) = a.attribute("roster:blocked") {
                    return Err(Error::invalid(format!("{address}: {reason}")));
                }
                checks.push(format!(
                    "CRM user {address} found ({}), enabled; {} the policy",
                    a.id,
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

    fn read_accounts(&mut self, request: PageRequest) -> Result<AccountPage> {
        if request.cursor.is_none() {
            self.load()?;
        }
        AccountPage::of_snapshot(&self.snapshot, &request)
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
        let mut url = self.api.url(
            "systemusers?$select=systemuserid,fullname,internalemailaddress,domainname,isdisabled",
        );
        loop {
            let r = Request::get(&url)
                .bearer(&token)
                .header("Prefer", "odata.maxpagesize=500")
                .send()?;
            if !r.is_success() {
                let body: Value = serde_json::from_slice(r.bytes()).unwrap_or(Value::Null);
                let text = body["error"]["message"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("HTTP {}", r.status()));
                return Err(Error::new(
                    ErrorKind::from_status(r.status()),
                    format!("Dynamics 365: {text}"),
                ));
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

    fn load(&mut self) -> Result<()> {
        self.read_policy()?;
        let rows = self.crm_users()?;
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
            if u["isdisabled"] == true {
                a.attributes.push(Attribute {
                    key: "roster:blocked".into(),
                    value: "the CRM user is disabled in Dynamics 365; enable it there before Riva can sync this mailbox".into(),
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
        if user["isdisabled"] == true {
            return Err(Error::invalid(format!(
                "{email}: the CRM user is disabled in Dynamics 365"
            )));
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
