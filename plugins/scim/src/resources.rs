//! SCIM 2.0 core resources (RFC 7643) and Roster accounts, both ways: a User
//! is a person (`emails` primary = primary address, the other emails its
//! aliases, `externalId` its external key, the enterprise extension's
//! `department` its org unit), a Group whose `externalId` is an address is
//! a functional account whose members are its delegates.

use roster_sdk::scim::{object, put_base, with_schema, without};
use roster_sdk::{Account, AccountKind, Attribute, Field, Group};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The host's reserved attribute: fields this account does not keep.
use roster_sdk::attr::UNSTORED;

fn attr(key: &str, value: &str) -> Attribute {
    Attribute {
        key: key.into(),
        value: value.into(),
    }
}

fn text(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The addresses of a User, primary first: the `emails` entry marked
/// primary, else the first one, else a `userName` that is an address.
fn addresses(u: &Value) -> Vec<String> {
    let emails: Vec<&Value> = u["emails"].as_array().into_iter().flatten().collect();
    let mut out: Vec<String> = emails
        .iter()
        .filter(|e| e["primary"].as_bool() == Some(true))
        .chain(
            emails
                .iter()
                .filter(|e| e["primary"].as_bool() != Some(true)),
        )
        .filter_map(|e| text(&e["value"]))
        .collect();
    if out.is_empty()
        && let Some(name) = text(&u["userName"]).filter(|n| n.contains('@'))
    {
        out.push(name);
    }
    out.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    out
}

pub fn person(u: &Value) -> Option<Account> {
    let mut all = addresses(u).into_iter();
    let email = all.next()?;
    let mut a = Account::new(u["id"].as_str()?, AccountKind::Person, email.clone());
    a.aliases = without(&email, all.collect());
    a.display_name = text(&u["displayName"]).or_else(|| text(&u["name"]["formatted"]));
    a.given_name = text(&u["name"]["givenName"]);
    a.family_name = text(&u["name"]["familyName"]);
    a.enabled = u["active"].as_bool().unwrap_or(true);
    a.external_key = text(&u["externalId"]);
    a.org_unit = text(&u[ENTERPRISE]["department"]);
    if let Some(n) = text(&u["userName"]) {
        a.attributes.push(attr("userName", &n));
    }
    // A SCIM user has no delegates.
    a.attributes.push(attr(UNSTORED, "delegates"));
    Some(a)
}

/// A Group whose `externalId` is an address, as a functional account; its
/// members named by the users' addresses (`addresses` maps user id → address).
pub fn functional(g: &Value, addresses: &HashMap<String, String>) -> Option<Account> {
    let email = text(&g["externalId"]).filter(|e| e.contains('@'))?;
    let mut a = Account::new(g["id"].as_str()?, AccountKind::Functional, email);
    a.display_name = text(&g["displayName"]);
    a.delegates = member_ids(g)
        .filter_map(|id| addresses.get(id).cloned())
        .collect();
    // A group has one address and no names or active flag of its own.
    a.attributes
        .push(attr(UNSTORED, "aliases,given-name,family-name,enabled"));
    Some(a)
}

/// Every Group, for the pipeline's `member_of` filters.
pub fn group(g: &Value) -> Option<Group> {
    Some(Group {
        id: g["id"].as_str()?.to_string(),
        name: text(&g["displayName"]).unwrap_or_default(),
        email: text(&g["externalId"]).filter(|e| e.contains('@')),
        member_ids: member_ids(g).map(str::to_string).collect(),
    })
}

fn member_ids(g: &Value) -> impl Iterator<Item = &str> {
    g["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["value"].as_str())
}

fn emails(a: &Account) -> Value {
    let mut list = vec![json!({"value": a.email, "type": "work", "primary": true})];
    list.extend(
        a.aliases
            .iter()
            .map(|x| json!({"value": x, "type": "other", "primary": false})),
    );
    Value::Array(list)
}

fn name(a: &Account) -> Value {
    let mut n = Map::new();
    let formatted = a.display_name.clone().unwrap_or_else(|| a.email.clone());
    n.insert("formatted".into(), formatted.into());
    if let Some(g) = &a.given_name {
        n.insert("givenName".into(), g.clone().into());
    }
    if let Some(f) = &a.family_name {
        n.insert("familyName".into(), f.clone().into());
    }
    Value::Object(n)
}

/// The whole User for a POST or PUT: `base` (what the service holds) with
/// the account over it, so attributes Roster does not manage survive.
pub fn user_body(base: Option<&Value>, a: &Account, enterprise: bool) -> Value {
    let mut body = put_base(base);
    with_schema(&mut body, USER);
    body.insert("userName".into(), a.email.clone().into());
    body.insert("name".into(), name(a));
    let display = a.display_name.clone().unwrap_or_else(|| a.email.clone());
    body.insert("displayName".into(), display.into());
    body.insert("emails".into(), emails(a));
    body.insert("active".into(), a.enabled.into());
    match &a.external_key {
        Some(k) => body.insert("externalId".into(), k.clone().into()),
        None => body.remove("externalId"),
    };
    if enterprise && let Some(ou) = &a.org_unit {
        with_schema(&mut body, ENTERPRISE);
        object(&mut body, ENTERPRISE).insert("department".into(), ou.clone().into());
    }
    Value::Object(body)
}

/// PATCH operations for the fields that changed.
pub fn user_patch(a: &Account, changed: &[Field], enterprise: bool) -> Vec<Value> {
    let mut ops = Vec::new();
    let mut replace = |path: &str, value: Value| {
        ops.push(json!({"op": "replace", "path": path, "value": value}));
    };
    for f in changed {
        match f {
            Field::Email => {
                replace("userName", a.email.clone().into());
                replace("emails", emails(a));
            }
            Field::Aliases => replace("emails", emails(a)),
            Field::DisplayName => {
                let display = a.display_name.clone().unwrap_or_else(|| a.email.clone());
                replace("displayName", display.clone().into());
                replace("name.formatted", display.into());
            }
            Field::GivenName => replace("name.givenName", json!(a.given_name)),
            Field::FamilyName => replace("name.familyName", json!(a.family_name)),
            Field::Enabled => replace("active", a.enabled.into()),
            Field::ExternalKey => replace("externalId", json!(a.external_key)),
            Field::OrgUnit if enterprise => {
                replace(&format!("{ENTERPRISE}:department"), json!(a.org_unit))
            }
            _ => {}
        }
    }
    ops
}

/// The whole Group for a POST or PUT; `members` are user ids.
pub fn group_body(base: Option<&Value>, a: &Account, members: &[String]) -> Value {
    let mut body = put_base(base);
    with_schema(&mut body, GROUP);
    body.insert("externalId".into(), a.email.clone().into());
    let display = a.display_name.clone().unwrap_or_else(|| a.email.clone());
    body.insert("displayName".into(), display.into());
    body.insert(
        "members".into(),
        Value::Array(members.iter().map(|m| json!({"value": m})).collect()),
    );
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primary_email_is_the_address_and_the_rest_are_aliases() {
        let u = json!({"id": "1", "userName": "ann", "emails": [
            {"value": "a2@x", "type": "other"}, {"value": "ann@x", "primary": true}],
            "name": {"givenName": "Ann"}, "active": false, "externalId": "k1"});
        let a = person(&u).unwrap();
        assert_eq!(a.email, "ann@x");
        assert_eq!(a.aliases, ["a2@x"]);
        assert!(!a.enabled);
        assert_eq!(a.external_key.as_deref(), Some("k1"));
        let no_emails = json!({"id": "2", "userName": "bob@x"});
        assert_eq!(person(&no_emails).unwrap().email, "bob@x");
        assert!(person(&json!({"id": "3", "userName": "carol"})).is_none());
    }
}
