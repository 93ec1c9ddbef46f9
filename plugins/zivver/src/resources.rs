//! Zivver's SCIM resources and Roster accounts, both ways: a User is a
//! person (`userName` = primary address, Zivver extension `aliases`,
//! `delegates` and the write-only `SsoAccountKey`), a Group is a functional
//! account (`externalId` = address, `members` = user UUIDs of the
//! delegates).

use roster_sdk::scim::{object, put_base, strings, with_schema, without};
use roster_sdk::{Account, AccountKind, Attribute};
use serde_json::{Value, json};
use std::collections::HashMap;

pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const USER_EXT: &str = "urn:ietf:params:scim:schemas:zivver:0.1:User";
pub const GROUP_EXT: &str = "urn:ietf:params:scim:schemas:zivver:0.1:Group";

fn attr(key: &str, value: &str) -> Attribute {
    Attribute {
        key: key.into(),
        value: value.into(),
    }
}

pub fn person(u: &Value) -> Option<Account> {
    let email = u["userName"].as_str()?.to_string();
    let mut a = Account::new(u["id"].as_str()?, AccountKind::Person, email.clone());
    a.aliases = without(&email, strings(&u[USER_EXT]["aliases"]));
    a.delegates = strings(&u[USER_EXT]["delegates"]);
    a.display_name = u["name"]["formatted"]
        .as_str()
        .or_else(|| u["displayName"].as_str())
        .map(str::to_string);
    a.enabled = u["active"].as_bool().unwrap_or(true);
    if let Some(d) = u[ENTERPRISE]["division"].as_str() {
        a.attributes.push(attr("division", d));
    }
    Some(a)
}

/// A functional account; members are named by the users' addresses.
pub fn functional(
    g: &Value,
    user_names: &HashMap<String, String>,
) -> Option<(Account, Vec<String>)> {
    let email = g["externalId"]
        .as_str()
        .or_else(|| g["displayName"].as_str())?
        .to_string();
    let mut a = Account::new(g["id"].as_str()?, AccountKind::Functional, email.clone());
    a.aliases = without(&email, strings(&g[GROUP_EXT]["aliases"]));
    a.display_name = g["displayName"].as_str().map(str::to_string);
    let mut unknown = Vec::new();
    for m in g["members"].as_array().into_iter().flatten() {
        let Some(id) = m["value"].as_str() else {
            continue;
        };
        match user_names.get(id) {
            Some(name) => a.delegates.push(name.clone()),
            None => unknown.push(id.to_string()),
        }
    }
    Some((a, unknown))
}

/// The whole User for a PUT or POST: `base` (what Zivver holds) with the
/// account's fields over it, so attributes Roster does not manage survive
/// the full replace; the extension is re-sent whole, `SsoAccountKey` included.
pub fn user_body(
    base: Option<&Value>,
    a: &Account,
    aliases: &[String],
    delegates: &[String],
) -> Value {
    let mut body = put_base(base);
    with_schema(&mut body, USER);
    with_schema(&mut body, USER_EXT);
    body.insert("userName".into(), a.email.clone().into());
    let name = a.display_name.clone().unwrap_or_else(|| a.email.clone());
    object(&mut body, "name").insert("formatted".into(), name.into());
    body.insert("active".into(), a.enabled.into());
    let ext = object(&mut body, USER_EXT);
    ext.insert("aliases".into(), json!(aliases));
    ext.insert("delegates".into(), json!(delegates));
    match &a.external_key {
        Some(k) => ext.insert("SsoAccountKey".into(), k.clone().into()),
        None => ext.remove("SsoAccountKey"),
    };
    Value::Object(body)
}

/// The whole Group for a PUT or POST.
pub fn group_body(
    base: Option<&Value>,
    a: &Account,
    aliases: &[String],
    members: &[String],
) -> Value {
    let mut body = put_base(base);
    with_schema(&mut body, GROUP);
    with_schema(&mut body, GROUP_EXT);
    body.insert("externalId".into(), a.email.clone().into());
    let name = a.display_name.clone().unwrap_or_else(|| a.email.clone());
    body.insert("displayName".into(), name.into());
    body.insert(
        "members".into(),
        Value::Array(members.iter().map(|m| json!({"value": m})).collect()),
    );
    object(&mut body, GROUP_EXT).insert("aliases".into(), json!(aliases));
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_users_read_as_people() {
        let text = include_str!("../../../sim/fixtures/zivver/zivver-scim-user.example.json");
        let u: Value = serde_json::from_str(text).unwrap();
        let a = person(&u).unwrap();
        assert_eq!(a.email, "d.graaf@example");
        assert!(
            a.aliases.is_empty(),
            "the primary is not an alias of itself"
        );
        assert_eq!(a.delegates, ["c.brink@example"]);
        assert_eq!(a.display_name.as_deref(), Some("Dave Graaf"));
    }

    #[test]
    fn a_put_keeps_what_roster_does_not_manage_and_resends_the_sso_key() {
        let base = json!({"id": "u1", "userName": "a@x", "nickName": "Al",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"division": "Sales"},
            USER_EXT: {"aliases": ["old@x"], "delegates": []}});
        let mut a = person(&base).unwrap();
        a.external_key = Some("k-1".into());
        let body = user_body(Some(&base), &a, &["new@x".into()], &[]);
        assert_eq!(body["nickName"], "Al");
        assert_eq!(body[ENTERPRISE]["division"], "Sales");
        assert_eq!(body[USER_EXT]["aliases"], json!(["new@x"]));
        assert_eq!(body[USER_EXT]["SsoAccountKey"], "k-1");
        assert!(body.get("id").is_none());
    }
}
