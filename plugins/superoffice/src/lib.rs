//! Roster connector `superoffice`: SuperOffice CRM users (associates) over
//! the REST API (`/api/v1`), as a source and a target.
//!
//! An associate's addresses live on its person card (`Person/{id}` →
//! `Emails`, ranked: the first is the primary). Deleted associates and
//! associates that are no internal user (resources, external and system
//! associates) are not people and are left out. An update rewrites the
//! person card's names and e-mail addresses; a create makes a person, then
//! an associate for it, which takes a user licence (the person is removed
//! again when the associate is refused, so nothing is left half-made). The
//! per-link options (e.g. `diary`, `task`, `contact`) are stored as the
//! associate's individual preferences in one section.

use roster_sdk::Update;
use roster_sdk::http::{Request, Response, send_all};
use roster_sdk::prelude::*;
use serde_json::{Value, json};
use std::collections::HashMap;

pub struct SuperOffice {
    api: HttpClient,
    page_size: u32,
    contact_id: i64,
    section: String,
    /// Person cards by associate id, as last read.
    persons: HashMap<String, Value>,
    snapshot: Vec<Account>,
    loaded: bool,
}

impl Connector for SuperOffice {
    fn describe() -> Descriptor {
        Descriptor::new("superoffice", env!("CARGO_PKG_VERSION"))
            .description("SuperOffice CRM users (associates) and their person cards, REST API v1")
            .source()
            .target()
            .kinds(&[AccountKind::Person])
            .fields(&[
                Field::Email,
                Field::Aliases,
                Field::DisplayName,
                Field::GivenName,
                Field::FamilyName,
            ])
            .field(
                "base_url",
                "REST base, e.g. https://online.superoffice.com/Cust12345/api/v1/",
            )
            .secret("token", "Bearer token, or the ticket when auth = ticket")
            .optional("auth", "bearer or ticket", Some("bearer"))
            .optional(
                "app_token",
                "SO-AppToken (online tenants); a secret when set",
                None,
            )
            .optional(
                "contact_id",
                "The company new person cards belong to",
                Some("0"),
            )
            .optional(
                "preference_section",
                "Preference section the per-link options are stored in",
                Some("Roster"),
            )
            .optional("page_size", "Associates per page", Some("200"))
    }

    fn configure(config: Config) -> Result<Self> {
        let token = config.required("token")?;
        let auth = match config.get_or("auth", "bearer") {
            "bearer" => format!("Bearer {token}"),
            "ticket" => format!("SOTicket {token}"),
            other => {
                return Err(Error::invalid(format!(
                    "auth: `{other}` is not bearer or ticket"
                )));
            }
        };
        let mut api = HttpClient::new(config.required("base_url")?)
            .with_header("Authorization", auth)
            .with_header("Accept", "application/json");
        if let Some(app) = config.get("app_token").filter(|a| !a.is_empty()) {
            api = api.with_header("SO-AppToken", app);
        }
        Ok(SuperOffice {
            api,
            page_size: config.number("page_size", 200)?,
            contact_id: config.number("contact_id", 0)?,
            section: config.get_or("preference_section", "Roster").to_string(),
            persons: HashMap::new(),
            snapshot: vec![],
            loaded: false,
        })
    }

    fn test_connection(&mut self, account: Option<String>) -> Result<ConnectionReport> {
        let licence = self.licence()?;
        let mut checks = vec![format!(
            "REST API at {} answered; credentials accepted; {} of {} user licences free",
            self.api.base(),
            licence["Free"],
            licence["Total"]
        )];
        let found = match account {
            None => None,
            Some(address) => {
                self.load()?;
                let a = self
                    .snapshot
                    .iter()
                    .find(|a| a.email.eq_ignore_ascii_case(&address))
                    .cloned()
                    .ok_or_else(|| {
                        Error::not_found(format!("no SuperOffice user has {address} as the primary address on their person card"))
                    })?;
                checks.push(format!("user {address} found (associate {})", a.id));
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
        let free = self.licence()?["Free"].as_u64().map(|f| f as u32);
        Ok(SeatCount { free })
    }

    fn apply_change(&mut self, change: Change) -> Result<Applied> {
        if !self.loaded {
            self.load()?;
        }
        let id = match change.op {
            Operation::Create(a) => self.create(&a)?,
            Operation::Update(u) => self.update(&u)?,
            Operation::Disable(_) | Operation::Delete(_) => {
                return Err(Error::unsupported(
                    "disabling or deleting SuperOffice users (do it in SuperOffice Admin; unlink with `roster links remove`)",
                ));
            }
            Operation::MergeGuest(_) => return Err(Error::unsupported("guest accounts")),
        };
        self.set_preferences(&id, &change.options)?;
        Ok(Applied { id: Some(id) })
    }
}

/// SuperOffice's error text (`Error`, else `Message`), on an error of the status's kind.
fn refused(r: &Response) -> Error {
    let body: Value = serde_json::from_slice(r.bytes()).unwrap_or(Value::Null);
    let text = body["Error"]
        .as_str()
        .or_else(|| body["Message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| format!("HTTP {}", r.status()));
    let kind = if text.contains("licen") {
        ErrorKind::Licence
    } else if text.contains("already") {
        ErrorKind::Conflict
    } else {
        match r.status() {
            400 => ErrorKind::Invalid,
            s => ErrorKind::from_status(s),
        }
    };
    Error::new(kind, text)
}

fn checked(r: Response) -> Result<Response> {
    if r.is_success() {
        Ok(r)
    } else {
        Err(refused(&r))
    }
}

fn text(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A person card as an account of associate `id`.
fn account(id: &str, associate: &Value, person: &Value) -> Option<Account> {
    let mut emails: Vec<(i64, String)> = person["Emails"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["Rank"].as_i64().unwrap_or(i64::MAX), text(&e["Value"])?)))
        .collect();
    emails.sort_by_key(|(rank, _)| *rank);
    let mut addresses = emails.into_iter().map(|(_, v)| v);
    let email = addresses.next()?;
    let mut a = Account::new(id, AccountKind::Person, email.clone());
    a.aliases = addresses
        .filter(|x| !x.eq_ignore_ascii_case(&email))
        .collect();
    a.display_name = text(&person["FullName"]).or_else(|| text(&associate["FullName"]));
    a.given_name = text(&person["Firstname"]);
    a.family_name = text(&person["Lastname"]);
    if let Some(u) = text(&associate["UserName"]) {
        a.attributes.push(Attribute {
            key: "username".into(),
            value: u,
        });
    }
    Some(a)
}

fn is_person(associate: &Value) -> bool {
    associate["Deleted"] != true && associate["Type"] == "InternalAssociate"
}

/// The person card's fields from the account (names, ranked e-mail addresses).
fn person_body(base: Option<&Value>, a: &Account, contact_id: i64) -> Value {
    let mut body = base
        .cloned()
        .unwrap_or_else(|| json!({"Contact": {"ContactId": contact_id}}));
    let (first, last) = names(a);
    body["Firstname"] = first.into();
    body["Lastname"] = last.into();
    body["Emails"] = card_addresses(a)
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"Value": v, "Rank": i + 1}))
        .collect();
    body
}

/// Given and family name, else split from the display name.
fn names(a: &Account) -> (String, String) {
    if a.given_name.is_some() || a.family_name.is_some() {
        return (
            a.given_name.clone().unwrap_or_default(),
            a.family_name.clone().unwrap_or_default(),
        );
    }
    let display = a.display_name.clone().unwrap_or_default();
    match display.rsplit_once(' ') {
        Some((f, l)) => (f.to_string(), l.to_string()),
        None => (String::new(), display),
    }
}

/// The person card's addresses: the primary first.
fn card_addresses(a: &Account) -> Vec<String> {
    std::iter::once(a.email.clone())
        .chain(a.aliases.iter().cloned())
        .collect()
}

impl SuperOffice {
    fn licence(&self) -> Result<Value> {
        checked(self.api.request("GET", "License").send()?)?.json()
    }

    fn load(&mut self) -> Result<()> {
        let mut associates = Vec::new();
        let mut path = format!("Associate?$top={}&$skip=0", self.page_size);
        loop {
            let page: Value = checked(self.api.request("GET", &path).send()?)?.json()?;
            associates.extend(page["value"].as_array().cloned().unwrap_or_default());
            match page["odata.nextLink"].as_str() {
                Some(next) => {
                    path = next
                        .rsplit_once("/api/v1/")
                        .map(|(_, p)| p)
                        .unwrap_or(next)
                        .to_string()
                }
                None => break,
            }
        }
        let people: Vec<&Value> = associates.iter().filter(|a| is_person(a)).collect();
        let requests: Vec<Request> = people
            .iter()
            .map(|a| {
                self.api
                    .request("GET", &format!("Person/{}", a["PersonId"]))
            })
            .collect();
        self.persons.clear();
        self.snapshot.clear();
        for (associate, answer) in people.into_iter().zip(send_all(&requests)) {
            let id = associate["AssociateId"].to_string();
            let person: Value = checked(answer?)?.json()?;
            match account(&id, associate, &person) {
                Some(a) => self.snapshot.push(a),
                None => host::warn(&format!(
                    "associate {id} has no e-mail address on its person card; left out"
                )),
            }
            self.persons.insert(id, person);
        }
        self.loaded = true;
        Ok(())
    }

    fn update(&mut self, u: &Update) -> Result<String> {
        let base = self
            .persons
            .get(&u.id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("no SuperOffice associate {}", u.id)))?;
        let person_id = base["PersonId"].to_string();
        let body = person_body(Some(&base), &u.account, self.contact_id);
        let stored: Value = checked(
            self.api
                .request("PUT", &format!("Person/{person_id}"))
                .json(&body)?
                .send()?,
        )?
        .json()?;
        self.persons.insert(u.id.clone(), stored);
        Ok(u.id.clone())
    }

    fn create(&mut self, a: &Account) -> Result<String> {
        let body = person_body(None, a, self.contact_id);
        let person: Value =
            checked(self.api.request("POST", "Person").json(&body)?.send()?)?.json()?;
        let person_id = person["PersonId"]
            .as_i64()
            .ok_or_else(|| Error::other("SuperOffice answered a new person without PersonId"))?;
        let local = a.email.split('@').next().unwrap_or(&a.email).to_string();
        let (first, last) = names(a);
        let initials: String = [first, last]
            .iter()
            .filter_map(|n| n.chars().next())
            .collect::<String>()
            .to_uppercase();
        let associate = json!({"PersonId": person_id, "Name": initials, "UserName": local, "Type": "InternalAssociate"});
        let answer = self
            .api
            .request("POST", "Associate")
            .json(&associate)?
            .send()?;
        if !answer.is_success() {
            let e = refused(&answer);
            // Leave no person card behind for a user that was not made.
            let _ = self
                .api
                .request("DELETE", &format!("Person/{person_id}"))
                .send();
            return Err(e);
        }
        let made: Value = answer.json()?;
        let id = made["AssociateId"].to_string();
        self.persons.insert(id.clone(), person);
        Ok(id)
    }

    fn set_preferences(&self, associate: &str, options: &[Attribute]) -> Result<()> {
        if options.is_empty() {
            return Ok(());
        }
        let target: i64 = associate
            .parse()
            .map_err(|_| Error::invalid(format!("associate id `{associate}` is not a number")))?;
        let prefs: Vec<Value> = options
            .iter()
            .map(|o| {
                json!({
                    "Level": "Individual",
                    "TargetId": target,
                    "Specification": {"Section": self.section, "Key": o.key},
                    "RawValue": o.value,
                })
            })
            .collect();
        checked(
            self.api
                .request("POST", "Agents/Preference/SetPreferences")
                .json(&prefs)?
                .send()?,
        )?;
        Ok(())
    }
}

roster_sdk::export_connector!(SuperOffice);
