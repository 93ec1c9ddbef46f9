//! The state of a simulated SuperOffice tenant and its rules: associates
//! (users) and the persons that carry their e-mail addresses, user licences,
//! and per-associate preferences. What a real tenant refuses is refused
//! here, in SuperOffice's words where they are known.

use serde_json::{Value, json};
use std::collections::BTreeMap;

/// An answer the API refuses: HTTP status and message.
pub struct Refusal(pub u16, pub String);

pub type Outcome = Result<Value, Refusal>;

pub struct Crm {
    /// How callers authenticate: a bearer token or a ticket (`SOTicket …`).
    pub token: String,
    pub ticket: Option<String>,
    /// Online tenants also insist on `SO-AppToken`.
    pub app_token: Option<String>,
    pub associates: BTreeMap<i64, Value>,
    pub persons: BTreeMap<i64, Value>,
    /// Preferences by associate id: (section, key) → value.
    pub preferences: BTreeMap<i64, BTreeMap<(String, String), String>>,
    pub user_licences: u32,
    next_id: i64,
}

/// Associate types that are users who sign in; the rest (resources,
/// external and system associates) are not people.
const PEOPLE: &[&str] = &["InternalAssociate"];

impl Crm {
    pub fn new(token: &str, user_licences: u32) -> Crm {
        Crm {
            token: token.into(),
            ticket: None,
            app_token: None,
            associates: BTreeMap::new(),
            persons: BTreeMap::new(),
            preferences: BTreeMap::new(),
            user_licences,
            next_id: 1000,
        }
    }

    fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn seed_person(&mut self, p: Value) {
        if let Some(id) = p["PersonId"].as_i64() {
            self.next_id = self.next_id.max(id);
            self.persons.insert(id, p);
        }
    }

    pub fn seed_associate(&mut self, a: Value) {
        if let Some(id) = a["AssociateId"].as_i64() {
            self.next_id = self.next_id.max(id);
            self.associates.insert(id, a);
        }
    }

    /// Licensed users: associates that are people and not deleted.
    pub fn licences_in_use(&self) -> u32 {
        self.associates
            .values()
            .filter(|a| a["Deleted"] != true && PEOPLE.contains(&a["Type"].as_str().unwrap_or("")))
            .count() as u32
    }

    pub fn licence(&self) -> Value {
        let used = self.licences_in_use();
        json!({
            "Name": "user",
            "Description": "SuperOffice CRM user licence",
            "Total": self.user_licences,
            "InUse": used,
            "Free": self.user_licences.saturating_sub(used),
        })
    }

    /// A page of associates, OData style.
    pub fn associates_page(&self, skip: usize, top: usize, base: &str) -> Value {
        let all: Vec<&Value> = self.associates.values().collect();
        let page: Vec<&Value> = all.iter().skip(skip).take(top).copied().collect();
        let mut body = json!({"value": page});
        if skip + top < all.len() {
            body["odata.nextLink"] = format!("{base}?$top={top}&$skip={}", skip + top).into();
        }
        body
    }

    pub fn person(&self, id: i64) -> Outcome {
        self.persons
            .get(&id)
            .cloned()
            .ok_or_else(|| Refusal(404, format!("Person with id {id} not found")))
    }

    /// A full update of a person card: what the body leaves out is kept.
    pub fn update_person(&mut self, id: i64, body: &Value) -> Outcome {
        let person = self
            .persons
            .get_mut(&id)
            .ok_or_else(|| Refusal(404, format!("Person with id {id} not found")))?;
        let emails = emails(body)?;
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

    /// A new user: needs a free user licence and a person that is nobody else's.
    pub fn create_associate(&mut self, body: &Value) -> Outcome {
        let person_id = body["PersonId"]
            .as_i64()
            .ok_or_else(|| Refusal(400, "PersonId is required".into()))?;
        let person = self.person(person_id)?;
        if self.associates.values().any(|a| a["PersonId"] == person_id) {
            return Err(Refusal(
                400,
                format!("Person {person_id} is already an associate"),
            ));
        }
        let user_name = body["UserName"].as_str().unwrap_or("").to_string();
        if user_name.is_empty()
            || self.associates.values().any(|a| {
                a["UserName"]
                    .as_str()
                    .is_some_and(|u| u.eq_ignore_ascii_case(&user_name))
            })
        {
            return Err(Refusal(
                400,
                format!("The user name '{user_name}' is empty or already in use"),
            ));
        }
        if self.licences_in_use() >= self.user_licences {
            return Err(Refusal(
                400,
                format!(
                    "No free user licenses: all {} are in use",
                    self.user_licences
                ),
            ));
        }
        let id = self.id();
        let a = json!({
            "AssociateId": id,
            "Name": body["Name"].as_str().unwrap_or(""),
            "PersonId": person_id,
            "Rank": 1,
            "Tooltip": "",
            "Type": "InternalAssociate",
            "GroupIdx": 0,
            "FullName": person["FullName"],
            "FormalName": format!("{}, {}", person["Lastname"].as_str().unwrap_or(""), person["Firstname"].as_str().unwrap_or("")),
            "Deleted": false,
            "EjUserId": 0,
            "UserName": user_name,
        });
        self.associates.insert(id, a.clone());
        Ok(a)
    }

    /// `Agents/Preference/SetPreferences`: each an individual preference of an associate.
    pub fn set_preferences(&mut self, body: &Value) -> Outcome {
        let list = body
            .as_array()
            .ok_or_else(|| Refusal(400, "expected an array of Preference".into()))?;
        for p in list {
            let target = p["TargetId"]
                .as_i64()
                .filter(|id| self.associates.contains_key(id))
                .ok_or_else(|| Refusal(400, format!("Unknown associate {}", p["TargetId"])))?;
            if p["Level"] != "Individual" {
                return Err(Refusal(
                    400,
                    format!("Unsupported preference level {}", p["Level"]),
                ));
            }
            let section = p["Specification"]["Section"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let key = p["Specification"]["Key"].as_str().unwrap_or("").to_string();
            let value = p["RawValue"].as_str().unwrap_or("").to_string();
            self.preferences
                .entry(target)
                .or_default()
                .insert((section, key), value);
        }
        Ok(json!(true))
    }

    pub fn dump(&self) -> Value {
        let prefs: BTreeMap<String, BTreeMap<String, String>> = self
            .preferences
            .iter()
            .map(|(id, p)| {
                (
                    id.to_string(),
                    p.iter()
                        .map(|((s, k), v)| (format!("{s}/{k}"), v.clone()))
                        .collect(),
                )
            })
            .collect();
        json!({
            "associates": self.associates.values().collect::<Vec<_>>(),
            "persons": self.persons.values().collect::<Vec<_>>(),
            "preferences": prefs,
            "licence": self.licence(),
        })
    }
}

fn full_name(p: &Value) -> String {
    [&p["Firstname"], &p["MiddleName"], &p["Lastname"]]
        .iter()
        .filter_map(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A person's e-mail list, checked: each an address, ranked from 1.
fn emails(body: &Value) -> Outcome {
    let Some(list) = body["Emails"].as_array() else {
        return Ok(json!([]));
    };
    let mut out = Vec::new();
    for (i, e) in list.iter().enumerate() {
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
            "Rank": i + 1,
        }));
    }
    Ok(Value::Array(out))
}
