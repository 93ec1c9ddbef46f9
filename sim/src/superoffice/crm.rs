//! The state of a simulated SuperOffice tenant and its rules, in the shapes
//! SuperOffice's REST reference documents (SuperOfficeDocs,
//! `docs/en/api/reference/restful/`): associates (the `Associate` carrier of
//! `Agents/Associate/GetAssociate(List)`), the persons that carry their
//! e-mail addresses (`PersonEntity`, `Emails[]` of `Value`, `StrippedValue`,
//! `Description`), licences per owner and module (`GET License`'s
//! `ExtendedLicenseInfo`; a module with `ExtraFlags` 1 is a user plan), and
//! users made with the User agent (`GET User/Default`, `POST User`).
//! What a real tenant refuses is refused here; where SuperOffice's exact
//! words are not documented, the text is marked as this simulator's.

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// An answer the API refuses: HTTP status and message.
pub struct Refusal(pub u16, pub String);

pub type Outcome = Result<Value, Refusal>;

/// One module licence of an owner (`ModuleLicense`).
#[derive(Clone, Debug)]
pub struct Module {
    pub owner: String,
    pub name: String,
    /// A user plan (`ExtraFlags` = 1): each user holds one.
    pub user_plan: bool,
    pub total: u32,
}

pub struct Crm {
    /// How callers authenticate: a bearer token or a ticket (`SOTicket …`).
    pub token: String,
    pub ticket: Option<String>,
    /// Online tenants also insist on `SO-AppToken`.
    pub app_token: Option<String>,
    /// SuperOffice Online: the User agent is not open to partner apps.
    pub online: bool,
    pub associates: BTreeMap<i64, Value>,
    pub persons: BTreeMap<i64, Value>,
    pub modules: Vec<Module>,
    /// Module licences assigned, by associate id.
    pub assigned: BTreeMap<i64, BTreeSet<String>>,
    next_id: i64,
}

/// Associate types that are users who sign in; the rest (resources,
/// external, anonymous and system associates) are not people.
const PEOPLE: &[&str] = &["InternalAssociate"];

/// The archive columns of `AllUsers` the simulator serves, with how each is
/// read off an associate and its person (the provider's reference lists them).
const COLUMNS: &[&str] = &[
    "associateDbId",
    "personId",
    "assocName",
    "assocType",
    "userName",
    "fullName",
    "firstName",
    "lastName",
    "personEmail",
    "isActive",
    "contactId",
];

impl Crm {
    /// A tenant with one user plan (`SALESPREMIUM`, owner `SUPEROFFICE`) of
    /// `user_licences` seats.
    pub fn new(token: &str, user_licences: u32) -> Crm {
        Crm {
            token: token.into(),
            ticket: None,
            app_token: None,
            online: false,
            associates: BTreeMap::new(),
            persons: BTreeMap::new(),
            modules: vec![Module {
                owner: "SUPEROFFICE".into(),
                name: "SALESPREMIUM".into(),
                user_plan: true,
                total: user_licences,
            }],
            assigned: BTreeMap::new(),
            next_id: 1000,
        }
    }

    fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn seed_person(&mut self, mut p: Value) {
        if let Some(id) = p["PersonId"].as_i64() {
            self.next_id = self.next_id.max(id);
            if let Ok(emails) = emails(&p) {
                p["Emails"] = emails;
            }
            self.persons.insert(id, p);
        }
    }

    /// An associate as it is; a person who signs in holds the first user plan.
    pub fn seed_associate(&mut self, a: Value) {
        let Some(id) = a["AssociateId"].as_i64() else {
            return;
        };
        self.next_id = self.next_id.max(id);
        if is_user(&a)
            && let Some(plan) = self.modules.iter().find(|m| m.user_plan)
        {
            self.assigned
                .entry(id)
                .or_default()
                .insert(plan.name.clone());
        }
        self.associates.insert(id, a);
    }

    fn in_use(&self, module: &str) -> u32 {
        self.assigned
            .iter()
            .filter(|(id, mods)| {
                mods.contains(module) && self.associates.get(id).is_some_and(is_user)
            })
            .count() as u32
    }

    fn free(&self, m: &Module) -> u32 {
        m.total.saturating_sub(self.in_use(&m.name))
    }

    /// `GET License`: an `ExtendedLicenseInfo` per owner.
    pub fn licence(&self) -> Value {
        let owners: BTreeSet<&str> = self.modules.iter().map(|m| m.owner.as_str()).collect();
        let infos: Vec<Value> = owners
            .into_iter()
            .map(|owner| {
                let modules: Vec<Value> = self
                    .modules
                    .iter()
                    .filter(|m| m.owner == owner)
                    .map(|m| {
                        json!({
                            "New": null,
                            "Current": {
                                "OwnerName": m.owner,
                                "ModuleName": m.name,
                                "ModuleDescription": m.name,
                                "ExtraFlags": if m.user_plan { 1 } else { 0 },
                                "NumberOfLicenses": m.total,
                                "Unrestricted": false,
                                "IsHidden": false,
                            },
                            "NumberOfLicensesInUse": self.in_use(&m.name),
                            "NumberOfLicensesFree": self.free(m),
                            "NumberOfLicensesAdded": 0,
                            "NumberOfLicensesNewTotal": m.total,
                            "NumberOfLicensesNewFree": self.free(m),
                            "NumberOfLicensesTotal": m.total,
                        })
                    })
                    .collect();
                json!({
                    "Reason": "",
                    "CanBeActivated": false,
                    "New": null,
                    "Current": {"OwnerName": owner},
                    "ExtendedModuleLicenses": modules,
                    "AccumulatedNextCheckDate": "2027-01-01T00:00:00",
                })
            })
            .collect();
        Value::Array(infos)
    }

    /// One row of the `AllUsers` archive, with the `columns` asked for.
    fn archive_row(&self, a: &Value, columns: &[&str]) -> Value {
        let id = a["AssociateId"].as_i64().unwrap_or_default();
        let person = a["PersonId"].as_i64().and_then(|p| self.persons.get(&p));
        let p = |k: &str| person.map_or(Value::Null, |p| p[k].clone());
        let mut row = json!({"PrimaryKey": id, "EntityName": "associate"});
        for c in columns {
            row[*c] = match *c {
                "associateDbId" => json!(id),
                "personId" => a["PersonId"].clone(),
                "assocName" => a["Name"].clone(),
                "assocType" => a["Type"].clone(),
                "userName" => a["UserName"].clone(),
                "fullName" => a["FullName"].clone(),
                "firstName" => p("Firstname"),
                "lastName" => p("Lastname"),
                "personEmail" => p("Emails")[0]["Value"].clone(),
                "isActive" => json!(a["Deleted"] != true),
                "contactId" => p("Contact")["ContactId"].clone(),
                _ => Value::Null,
            };
        }
        row
    }

    /// `GET User`: the `AllUsers` archive, OData style (`$select`, `$top`,
    /// `$skip`, `odata.nextLink`). A column the provider does not have is
    /// refused (*assumption*: the text).
    pub fn users_archive(
        &self,
        select: Option<&str>,
        top: usize,
        skip: usize,
        base: &str,
    ) -> Outcome {
        let columns: Vec<&str> = match select {
            Some(s) => s
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect(),
            None => vec!["associateDbId", "fullName", "userName"],
        };
        if let Some(bad) = columns.iter().find(|c| !COLUMNS.contains(c)) {
            return Err(Refusal(
                400,
                format!("Unknown column '{bad}' in archive provider AllUsers"),
            ));
        }
        let all: Vec<&Value> = self.associates.values().collect();
        let rows: Vec<Value> = all
            .iter()
            .skip(skip)
            .take(top)
            .map(|a| self.archive_row(a, &columns))
            .collect();
        let mut body = json!({"odata.metadata": format!("{base}/$metadata"), "value": rows});
        if skip + top < all.len() {
            let mut link = format!("{base}?$top={top}&$skip={}", skip + top);
            if let Some(s) = select {
                link.push_str(&format!("&$select={s}"));
            }
            body["odata.nextLink"] = link.into();
        }
        Ok(body)
    }

    /// `Agents/Associate/GetAssociateList`: the associates of these ids that exist.
    pub fn associate_list(&self, ids: &[i64]) -> Value {
        Value::Array(
            ids.iter()
                .filter_map(|id| self.associates.get(id))
                .cloned()
                .collect(),
        )
    }

    pub fn person(&self, id: i64) -> Outcome {
        self.persons
            .get(&id)
            .cloned()
            .ok_or_else(|| Refusal(404, format!("Person with id {id} not found")))
    }

    /// A full update of a person card: what the body leaves out is kept.
    pub fn update_person(&mut self, id: i64, body: &Value) -> Outcome {
        let emails = emails(body)?;
        let person = self
            .persons
            .get_mut(&id)
            .ok_or_else(|| Refusal(404, format!("Person with id {id} not found")))?;
        for key in ["Firstname", "Lastname", "MiddleName"] {
            if let Some(v) = body.get(key) {
                person[key] = v.clone();
            }
        }
        person["Emails"] = emails;
        person["FullName"] = full_name(person).into();
        Ok(person.clone())
    }

    pub fn create_person(&mut self, body: &Value) -> Outcome {
        let emails = emails(body)?;
        let id = self.id();
        let mut p = json!({
            "PersonId": id,
            "Firstname": body["Firstname"].as_str().unwrap_or(""),
            "MiddleName": "",
            "Lastname": body["Lastname"].as_str().unwrap_or(""),
            "Emails": emails,
            "Contact": body["Contact"].clone(),
        });
        p["FullName"] = full_name(&p).into();
        self.persons.insert(id, p.clone());
        Ok(p)
    }

    pub fn delete_person(&mut self, id: i64) -> Outcome {
        if self.associates.values().any(|a| a["PersonId"] == id) {
            return Err(Refusal(
                400,
                format!("Person {id} is an associate and cannot be deleted"),
            ));
        }
        self.persons
            .remove(&id)
            .ok_or_else(|| Refusal(404, format!("Person with id {id} not found")))
    }

    /// `LicenseOwners` as a `User` carries them: each owner's module
    /// licences (`ModuleLicenseLink`), with what this associate is assigned.
    fn license_owners(&self, associate: i64) -> Value {
        let owners: BTreeSet<&str> = self.modules.iter().map(|m| m.owner.as_str()).collect();
        let mine = self.assigned.get(&associate);
        Value::Array(
            owners
                .into_iter()
                .map(|owner| {
                    let links: Vec<Value> = self
                        .modules
                        .iter()
                        .filter(|m| m.owner == owner)
                        .enumerate()
                        .map(|(i, m)| {
                            json!({
                                "Unrestricted": false,
                                "Total": m.total,
                                "Tooltip": "",
                                "CanAssign": self.free(m) > 0,
                                "Free": self.free(m),
                                "InUse": self.in_use(&m.name),
                                "IsHidden": false,
                                "Assigned": mine.is_some_and(|s| s.contains(&m.name)),
                                "ModuleLicenseId": i + 1,
                                "Name": m.name,
                                "Description": m.name,
                                "PrerequisiteModuleName": "",
                                "SortOrder": i,
                                "ExtraFlags": if m.user_plan { 1 } else { 0 },
                            })
                        })
                        .collect();
                    json!({
                        "Name": owner,
                        "Description": owner,
                        "RestrictedModuleLicenses": links,
                        "UnrestrictedModuleLicenses": [],
                    })
                })
                .collect(),
        )
    }

    /// A `User` entity for an associate.
    fn user_entity(&self, a: &Value) -> Value {
        let id = a["AssociateId"].as_i64().unwrap_or_default();
        let person = a["PersonId"]
            .as_i64()
            .and_then(|p| self.persons.get(&p))
            .cloned()
            .unwrap_or(Value::Null);
        json!({
            "AssociateId": id,
            "Name": a["Name"],
            "Rank": a["Rank"],
            "Tooltip": a["Tooltip"],
            "LicenseOwners": self.license_owners(id),
            "Role": {"Id": 1, "Value": "User"},
            "UserGroup": {"Id": 1, "Value": "Everyone"},
            "OtherGroups": [],
            "Person": person,
            "Deleted": a["Deleted"],
            "EjUserId": a["EjUserId"],
            "Type": a["Type"],
            "IsPersonRetired": false,
            "Credentials": [],
            "UserName": a["UserName"],
            "NickName": "",
            "WaitingForApproval": false,
        })
    }

    pub fn user(&self, id: i64) -> Outcome {
        self.associates
            .get(&id)
            .map(|a| self.user_entity(a))
            .ok_or_else(|| Refusal(404, format!("User with id {id} not found")))
    }

    /// `GET User/Default?userType=…&personId=…`: a new user's entity with
    /// nothing assigned yet.
    pub fn default_user(&self, user_type: &str, person_id: i64) -> Outcome {
        let person = match person_id {
            0 => Value::Null,
            id => self.person(id)?,
        };
        Ok(json!({
            "AssociateId": 0,
            "Name": "",
            "Rank": 0,
            "Tooltip": "",
            "LicenseOwners": self.license_owners(0),
            "Role": {"Id": 1, "Value": "User"},
            "UserGroup": {"Id": 1, "Value": "Everyone"},
            "OtherGroups": [],
            "Person": person,
            "Deleted": false,
            "EjUserId": 0,
            "Type": user_type,
            "IsPersonRetired": false,
            "Credentials": [],
            "UserName": "",
            "NickName": "",
            "WaitingForApproval": false,
        }))
    }

    /// `POST User`: a new user for an existing person, with the module
    /// licences assigned in its `LicenseOwners`; a user of a person who
    /// signs in holds a user plan with a free licence.
    pub fn create_user(&mut self, body: &Value) -> Outcome {
        let person_id = body["Person"]["PersonId"]
            .as_i64()
            .filter(|id| *id > 0)
            .ok_or_else(|| Refusal(400, "Person is required".into()))?;
        let person = self.person(person_id)?;
        if self.associates.values().any(|a| a["PersonId"] == person_id) {
            return Err(Refusal(
                400,
                format!("Person {person_id} is already a user"),
            ));
        }
        let user_name = body["UserName"].as_str().unwrap_or("").trim().to_string();
        let taken = self.associates.values().any(|a| {
            a["UserName"]
                .as_str()
                .is_some_and(|u| u.eq_ignore_ascii_case(&user_name))
        });
        if user_name.is_empty() || taken {
            return Err(Refusal(
                400,
                format!("The user name '{user_name}' is empty or already in use"),
            ));
        }
        let user_type = body["Type"]
            .as_str()
            .unwrap_or("InternalAssociate")
            .to_string();
        let wanted: BTreeSet<String> = body["LicenseOwners"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|o| {
                o["RestrictedModuleLicenses"]
                    .as_array()
                    .into_iter()
                    .flatten()
            })
            .filter(|l| l["Assigned"] == true)
            .filter_map(|l| l["Name"].as_str().map(str::to_string))
            .collect();
        for name in &wanted {
            let m = self
                .modules
                .iter()
                .find(|m| &m.name == name)
                .ok_or_else(|| Refusal(400, format!("Unknown module license {name}")))?;
            if self.free(m) == 0 {
                return Err(Refusal(
                    400,
                    format!(
                        "No free licenses for module {name}: all {} are in use",
                        m.total
                    ),
                ));
            }
        }
        let has_plan = self
            .modules
            .iter()
            .any(|m| m.user_plan && wanted.contains(&m.name));
        if PEOPLE.contains(&user_type.as_str()) && !has_plan {
            return Err(Refusal(
                400,
                "An internal user needs a user plan license".into(),
            ));
        }
        let id = self.id();
        let a = json!({
            "AssociateId": id,
            "Name": body["Name"].as_str().unwrap_or(""),
            "PersonId": person_id,
            "Rank": 1,
            "Tooltip": "",
            "Type": user_type,
            "GroupIdx": body["UserGroup"]["Id"].as_i64().unwrap_or(0),
            "FullName": person["FullName"],
            "FormalName": format!("{}, {}", person["Lastname"].as_str().unwrap_or(""), person["Firstname"].as_str().unwrap_or("")),
            "Deleted": false,
            "EjUserId": 0,
            "UserName": user_name,
        });
        self.associates.insert(id, a.clone());
        self.assigned.insert(id, wanted);
        Ok(self.user_entity(&a))
    }

    pub fn dump(&self) -> Value {
        json!({
            "associates": self.associates.values().collect::<Vec<_>>(),
            "persons": self.persons.values().collect::<Vec<_>>(),
            "licence": self.licence(),
            "assigned": self.assigned.iter().map(|(id, m)| (id.to_string(), m.iter().collect::<Vec<_>>())).collect::<BTreeMap<_, _>>(),
        })
    }
}

fn is_user(a: &Value) -> bool {
    a["Deleted"] != true && PEOPLE.contains(&a["Type"].as_str().unwrap_or(""))
}

fn full_name(p: &Value) -> String {
    [&p["Firstname"], &p["MiddleName"], &p["Lastname"]]
        .iter()
        .filter_map(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A person's e-mail list as `PersonEntity` carries it: each an address, in
/// the order given (`Value`, `StrippedValue`, `Description`; there is no rank).
fn emails(body: &Value) -> Outcome {
    let Some(list) = body["Emails"].as_array() else {
        return Ok(json!([]));
    };
    let mut out = Vec::new();
    for e in list {
        let value = e["Value"].as_str().unwrap_or("").trim();
        if !value.contains('@') {
            return Err(Refusal(
                400,
                format!("'{value}' is not a valid e-mail address"),
            ));
        }
        out.push(json!({
            "Value": value,
            "StrippedValue": value.to_lowercase(),
            "Description": e["Description"].as_str().unwrap_or(""),
        }));
    }
    Ok(Value::Array(out))
}
