//! Roster connector `superoffice`: SuperOffice CRM users (associates) over
//! the REST API (`/api/v1`), as a source and a target. Every request it
//! sends, with its source in SuperOffice's REST reference, is listed in
//! `docs/connectors/superoffice.md`.
//!
//! Users are listed through the `AllUsers` archive (`GET User`), read as
//! associates (`POST Agents/Associate/GetAssociateList`), and their
//! addresses come from their person cards (`GET Person/{id}`, `Emails` in
//! array order: the first is the primary). Deleted associates and those that
//! are no internal user (resources, external, anonymous and system
//! associates) are not people and are left out. An update rewrites the
//! person card's names and e-mail addresses (only when they differ). A
//! create makes a person card, then a user for it with the User agent
//! (`GET User/Default`, `POST User`) holding a user plan; the card is removed
//! again when the user is refused, so nothing is left half-made.
//!
//! On SuperOffice Online partner apps may not manage users (the User agent
//! is closed to them): `seats` then says so, and the plan names, per
//! account, what the admin does instead of failing mid-apply.
//!
//! Per-link options (Diary, Task, Contact, rank) belong to the SuperOffice
//! Synchronizer's user list, not to SuperOffice: they are declared here
//! (`option.*`), kept by Roster with each link and exported with
//! `roster links PIPELINE export`; nothing is written to SuperOffice for them.

use roster_sdk::http::{Request, Response, send_all};
use roster_sdk::prelude::*;
use roster_sdk::{Attribute, Update};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The archive columns asked for when listing users (the `AllUsers`
/// provider's reference lists them).
const USER_COLUMNS: &str = "associateDbId,personId,userName,fullName";

pub struct SuperOffice {
    api: HttpClient,
    page_size: u32,
    contact_id: i64,
    /// The user plan (a module licence's `ModuleName`) new users get;
    /// empty: the one user plan there is.
    user_plan: String,
    online: bool,
    /// Person cards by associate id, as last read.
    persons: HashMap<String, Value>,
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
                "installation",
                "online or onsite; default: online when base_url is on superoffice.com (partner apps may not create users there)",
                None,
            )
            .optional(
                "user_plan",
                "The user plan new users get (a licence module's ModuleName); default: the only one there is",
                None,
            )
            .optional(
                "contact_id",
                "The company new person cards belong to",
                Some("0"),
            )
            .optional("page_size", "Users per archive page", Some("500"))
            .link_option("diary", "Synchronizer: sync the user's diary", "true")
            .link_option("task", "Synchronizer: sync the user's tasks", "true")
            .link_option("contact", "Synchronizer: sync the user's contacts", "false")
            .link_option("rank", "Synchronizer: the server rank that syncs this user", "1")
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
        let base = config.required("base_url")?;
        let online = match config.get("installation") {
            Some("online") => true,
            Some("onsite") => false,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "installation: `{other}` is not online or onsite"
                )));
            }
            None => host_of(base).ends_with("superoffice.com"),
        };
        let mut api = HttpClient::new(base)
            .with_header("Authorization", auth)
            .with_header("Accept", "application/json");
        if let Some(app) = config.get("app_token").filter(|a| !a.is_empty()) {
            api = api.with_header("SO-AppToken", app);
        }
        Ok(SuperOffice {
            api,
            page_size: config.number("page_size", 500)?,
            contact_id: config.number("contact_id", 0)?,
            user_plan: config.get_or("user_plan", "").to_string(),
            online,
            persons: HashMap::new(),
            loaded: false,
        })
    }

    fn test_connection(&mut self, account: Option<String>) -> Result<ConnectionReport> {
        let licences: Value = checked(self.api.request("GET", "License").send()?)?.json()?;
        let mut checks = vec![format!(
            "REST API at {} answered; credentials accepted",
            self.api.base()
        )];
        checks.push(match (self.online, self.plan(&licences)) {
            (true, _) => format!("SuperOffice Online: {}", ONLINE_CREATES),
            (false, Ok(plan)) => format!(
                "users can be created here (onsite), with user plan {}: {} of {} free",
                plan.name, plan.free, plan.total
            ),
            (false, Err(e)) => format!("users cannot be created: {}", e.message),
        });
        ConnectionReport::found(checks, account, |address| self.find_account(address))
    }

    fn read_all(&mut self) -> Result<Vec<Account>> {
        self.load()
    }

    /// A user by the primary address on their person card.
    fn find_account(&mut self, address: &str) -> Result<Account> {
        self.load()?
            .into_iter()
            .find(|a| a.email.eq_ignore_ascii_case(address))
            .ok_or_else(|| {
                Error::not_found(format!(
                    "no SuperOffice user has {address} as the primary address on their person card"
                ))
            })
    }

    /// Free seats of the user plan new users get. On SuperOffice Online no
    /// user can be created by a partner app: an `unauthorized` answer, which
    /// the plan reports per account.
    fn seats(&mut self) -> Result<SeatCount> {
        if self.online {
            return Err(Error::new(ErrorKind::Unauthorized, ONLINE_CREATES));
        }
        let licences: Value = checked(self.api.request("GET", "License").send()?)?.json()?;
        Ok(SeatCount {
            free: self.plan(&licences).ok().map(|p| p.free),
        })
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
        Ok(Applied { id: Some(id) })
    }
}

/// What an admin of SuperOffice Online does instead (`v1User_PostUser.md`:
/// "User management is not allowed for partner apps").
const ONLINE_CREATES: &str = "partner apps may not create users in SuperOffice Online, so Roster does not: create the user in SuperOffice (Settings and maintenance → Users) with the mailbox's address as the first e-mail on the person card; the next plan links it by that primary address";

fn host_of(url: &str) -> String {
    url.split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', ':'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// A user plan's licences.
struct Plan {
    name: String,
    free: u32,
    total: u32,
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
    Error::new(
        kind,
        format!("{text} ({}: HTTP {})", r.request(), r.status()),
    )
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

/// An id from an archive cell: a number, or digits in a string.
fn number(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// A person card as an account of associate `id`: the first e-mail is the
/// primary, the others are aliases; a value that is no address is passed
/// over (the card's field is free text).
fn account(id: &str, associate: &Value, person: &Value) -> Option<Account> {
    let mut addresses = person["Emails"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| text(&e["Value"]).filter(|v| v.contains('@')));
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

/// An internal user who is not retired (`Associate.Type`, `Deleted`).
fn is_person(associate: &Value) -> bool {
    associate["Deleted"] != true && associate["Type"] == "InternalAssociate"
}

/// The person card's fields from the account: names, e-mail addresses in
/// order (the primary first; `PersonEntity.Emails` has no rank).
fn person_body(base: Option<&Value>, a: &Account, contact_id: i64) -> Value {
    let mut body = base
        .cloned()
        .unwrap_or_else(|| json!({"Contact": {"ContactId": contact_id}}));
    let (first, last) = names(a);
    body["Firstname"] = first.into();
    body["Lastname"] = last.into();
    let old: Vec<Value> = base
        .and_then(|b| b["Emails"].as_array().cloned())
        .unwrap_or_default();
    body["Emails"] = card_addresses(a)
        .iter()
        .map(|v| {
            // An address the card had keeps its description.
            old.iter()
                .find(|e| {
                    e["Value"]
                        .as_str()
                        .is_some_and(|x| x.eq_ignore_ascii_case(v))
                })
                .map(|e| {
                    let mut e = e.clone();
                    e["Value"] = v.clone().into();
                    e
                })
                .unwrap_or_else(|| json!({"Value": v}))
        })
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

/// Does the card already hold these names and addresses, in this order?
fn same_card(card: &Value, body: &Value) -> bool {
    let addresses = |v: &Value| -> Vec<String> {
        v["Emails"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["Value"].as_str().map(str::to_ascii_lowercase))
            .collect()
    };
    card["Firstname"] == body["Firstname"]
        && card["Lastname"] == body["Lastname"]
        && addresses(card) == addresses(body)
}

impl SuperOffice {
    /// The user plan new users get, from `GET License`: the module whose
    /// `ModuleName` is `user_plan`, else the only one marked a user plan
    /// (`ExtraFlags` 1), with its free and total licences over all owners.
    fn plan(&self, licences: &Value) -> Result<Plan> {
        let modules: Vec<&Value> = licences
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|owner| {
                owner["ExtendedModuleLicenses"]
                    .as_array()
                    .into_iter()
                    .flatten()
            })
            .collect();
        let name_of = |m: &Value| {
            m["Current"]["ModuleName"]
                .as_str()
                .unwrap_or("")
                .to_string()
        };
        let chosen: Vec<&Value> = match self.user_plan.as_str() {
            "" => modules
                .iter()
                .copied()
                .filter(|m| m["Current"]["ExtraFlags"].as_i64() == Some(1))
                .collect(),
            wanted => modules
                .iter()
                .copied()
                .filter(|m| name_of(m).eq_ignore_ascii_case(wanted))
                .collect(),
        };
        let mut names: Vec<String> = chosen.iter().map(|m| name_of(m)).collect();
        names.dedup();
        match names.len() {
            1 => Ok(Plan {
                name: names.remove(0),
                free: chosen
                    .iter()
                    .filter_map(|m| m["NumberOfLicensesFree"].as_u64())
                    .sum::<u64>() as u32,
                total: chosen
                    .iter()
                    .filter_map(|m| m["NumberOfLicensesTotal"].as_u64())
                    .sum::<u64>() as u32,
            }),
            0 if self.user_plan.is_empty() => Err(Error::invalid(
                "no user plan among the licences (GET License): set user_plan to the module new users get",
            )),
            0 => Err(Error::invalid(format!(
                "user_plan `{}` is no licence module here",
                self.user_plan
            ))),
            _ => Err(Error::invalid(format!(
                "several user plans ({}): set user_plan to the one new users get",
                names.join(", ")
            ))),
        }
    }

    /// Every user: the archive's ids page by page, the associates in one
    /// call, then the person cards of the internal users (concurrently).
    /// Reads every user (associate and person card); the accounts they make.
    fn load(&mut self) -> Result<Vec<Account>> {
        let mut ids = Vec::new();
        let mut path = format!(
            "User?$select={USER_COLUMNS}&$top={}&$skip=0",
            self.page_size
        );
        loop {
            let page: Value = checked(self.api.request("GET", &path).send()?)?.json()?;
            let rows = page["value"].as_array().ok_or_else(|| {
                Error::invalid("the AllUsers archive answered without a `value` list")
            })?;
            for row in rows {
                let id = number(&row["associateDbId"]).or_else(|| number(&row["PrimaryKey"]));
                match id {
                    Some(id) => ids.push(id),
                    None => host::warn(&format!("an AllUsers row without an associate id: {row}")),
                }
            }
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
        ids.sort_unstable();
        ids.dedup();
        let associates: Value = checked(
            self.api
                .request("POST", "Agents/Associate/GetAssociateList")
                .idempotent()
                .json(&json!({ "AssociateIds": ids }))?
                .send()?,
        )?
        .json()?;
        let people: Vec<&Value> = associates
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| is_person(a))
            .collect();
        let requests: Vec<Request> = people
            .iter()
            .map(|a| {
                self.api
                    .request("GET", &format!("Person/{}", a["PersonId"]))
            })
            .collect();
        self.persons.clear();
        let mut accounts = Vec::new();
        for (associate, answer) in people.into_iter().zip(send_all(&requests)) {
            let id = associate["AssociateId"].to_string();
            let person: Value = checked(answer?)?.json()?;
            match account(&id, associate, &person) {
                Some(a) => accounts.push(a),
                None => host::warn(&format!(
                    "associate {id} has no e-mail address on its person card; left out"
                )),
            }
            self.persons.insert(id, person);
        }
        self.loaded = true;
        Ok(accounts)
    }

    fn update(&mut self, u: &Update) -> Result<String> {
        let base = self
            .persons
            .get(&u.id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("no SuperOffice associate {}", u.id)))?;
        let body = person_body(Some(&base), &u.account, self.contact_id);
        // An update for the link's options alone leaves the card as it is.
        if same_card(&base, &body) {
            return Ok(u.id.clone());
        }
        let person_id = base["PersonId"].to_string();
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

    /// A person card, then a user for it holding the user plan; without the
    /// user, the card goes again.
    fn create(&mut self, a: &Account) -> Result<String> {
        if self.online {
            return Err(Error::new(ErrorKind::Unauthorized, ONLINE_CREATES));
        }
        let licences: Value = checked(self.api.request("GET", "License").send()?)?.json()?;
        let plan = self.plan(&licences)?;
        let body = person_body(None, a, self.contact_id);
        let person: Value =
            checked(self.api.request("POST", "Person").json(&body)?.send()?)?.json()?;
        let person_id = person["PersonId"]
            .as_i64()
            .ok_or_else(|| Error::other("SuperOffice answered a new person without PersonId"))?;
        match self.new_user(a, person_id, &plan.name) {
            Ok(id) => {
                self.persons.insert(id.clone(), person);
                Ok(id)
            }
            Err(e) => {
                // Leave no person card behind for a user that was not made.
                let _ = self
                    .api
                    .request("DELETE", &format!("Person/{person_id}"))
                    .send();
                Err(e)
            }
        }
    }

    /// `GET User/Default` for the person, the user plan assigned, `POST User`.
    fn new_user(&self, a: &Account, person_id: i64, plan: &str) -> Result<String> {
        let mut user: Value = checked(
            self.api
                .request(
                    "GET",
                    &format!("User/Default?userType=InternalAssociate&personId={person_id}"),
                )
                .send()?,
        )?
        .json()?;
        let (first, last) = names(a);
        let initials: String = [first, last]
            .iter()
            .filter_map(|n| n.chars().next())
            .collect::<String>()
            .to_uppercase();
        user["Name"] = initials.into();
        user["UserName"] = a.email.clone().into();
        let mut assigned = false;
        for owner in user["LicenseOwners"].as_array_mut().into_iter().flatten() {
            for link in owner["RestrictedModuleLicenses"]
                .as_array_mut()
                .into_iter()
                .flatten()
            {
                if link["Name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(plan))
                {
                    link["Assigned"] = true.into();
                    assigned = true;
                }
            }
        }
        if !assigned {
            return Err(Error::new(
                ErrorKind::Licence,
                format!("the new user's licences offer no user plan {plan}"),
            ));
        }
        let made: Value = checked(self.api.request("POST", "User").json(&user)?.send()?)?.json()?;
        made["AssociateId"]
            .as_i64()
            .map(|id| id.to_string())
            .ok_or_else(|| Error::other("SuperOffice answered a new user without AssociateId"))
    }
}

roster_sdk::export_connector!(SuperOffice);
