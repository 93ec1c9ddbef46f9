//! What a linked target account should look like, and which of the fields the
//! target stores differ. Lists of addresses compare as sets, case-insensitively,
//! so order and case alone never cause an update.

use super::FieldDiff;
use crate::model::{Account, Field};
use std::collections::BTreeSet;

/// The account the target should hold for source account `s`.
pub fn desired(s: &Account, existing: Option<&Account>, fields: &[Field]) -> Account {
    let primary = s.email.to_ascii_lowercase();
    let mut seen = BTreeSet::new();
    let aliases = s
        .aliases
        .iter()
        .filter(|a| a.to_ascii_lowercase() != primary && seen.insert(a.to_ascii_lowercase()))
        .cloned()
        .collect();
    let attributes = if fields.contains(&Field::Attributes) {
        s.attributes.clone()
    } else {
        existing.map(|t| t.attributes.clone()).unwrap_or_default()
    };
    Account {
        id: existing.map(|t| t.id.clone()).unwrap_or_default(),
        kind: s.kind,
        email: s.email.clone(),
        aliases,
        // A name the source does not know is not a name to erase.
        display_name: s
            .display_name
            .clone()
            .or_else(|| existing.and_then(|t| t.display_name.clone())),
        given_name: s
            .given_name
            .clone()
            .or_else(|| existing.and_then(|t| t.given_name.clone())),
        family_name: s
            .family_name
            .clone()
            .or_else(|| existing.and_then(|t| t.family_name.clone())),
        enabled: s.enabled,
        org_unit: s.org_unit.clone(),
        external_key: s
            .external_key
            .clone()
            .or_else(|| existing.and_then(|t| t.external_key.clone())),
        delegates: s.delegates.clone(),
        groups: existing.map(|t| t.groups.clone()).unwrap_or_default(),
        attributes,
    }
}

fn addr_set(items: &[String]) -> BTreeSet<String> {
    items
        .iter()
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

fn text(v: &Option<String>) -> &str {
    v.as_deref().map(str::trim).unwrap_or("")
}

fn list(items: &[String]) -> String {
    items.join(", ")
}

/// The attribute by which a target marks an account it will not let Roster
/// change, with the reason as its value (see docs/writing-a-connector.md).
pub const BLOCKED: &str = "roster:blocked";

/// The attribute by which a target marks a guest account Roster cannot
/// merge, with what the admin must do as its value: no merge is planned for
/// it, and an alias it holds is left out of writes, with this remedy.
pub const REMEDY: &str = "roster:remedy";

/// The attribute by which a target says which of its declared fields this
/// one account does not keep (comma-separated field names, e.g. a SCIM
/// group has no aliases): they are never compared for it.
pub const UNSTORED: &str = "roster:unstored";

/// The fields `have` keeps, of those the target declares.
fn kept_by(have: &Account, fields: &[Field]) -> Vec<Field> {
    let Some(unstored) = have.attributes.get(UNSTORED) else {
        return fields.to_vec();
    };
    let names: Vec<&str> = unstored.split(',').map(str::trim).collect();
    fields
        .iter()
        .copied()
        .filter(|f| !names.contains(&f.as_str()))
        .collect()
}

/// The differences, over the fields the target stores, between what it has and what it should have.
pub fn diff(want: &Account, have: &Account, fields: &[Field]) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    let fields = kept_by(have, fields);
    let want_attributes: std::collections::BTreeMap<&String, &String> = want
        .attributes
        .iter()
        .filter(|(k, _)| !k.starts_with("roster:"))
        .collect();
    let have_attributes: std::collections::BTreeMap<&String, &String> = have
        .attributes
        .iter()
        .filter(|(k, _)| !k.starts_with("roster:"))
        .collect();
    let mut push = |f: Field, from: String, to: String| {
        out.push(FieldDiff {
            field: f.as_str().into(),
            from,
            to,
        })
    };
    for f in fields {
        match f {
            Field::Email if !want.email.eq_ignore_ascii_case(&have.email) => {
                push(f, have.email.clone(), want.email.clone())
            }
            Field::Aliases if addr_set(&want.aliases) != addr_set(&have.aliases) => {
                push(f, list(&have.aliases), list(&want.aliases))
            }
            Field::Delegates if addr_set(&want.delegates) != addr_set(&have.delegates) => {
                push(f, list(&have.delegates), list(&want.delegates))
            }
            Field::DisplayName if text(&want.display_name) != text(&have.display_name) => push(
                f,
                text(&have.display_name).into(),
                text(&want.display_name).into(),
            ),
            Field::GivenName if text(&want.given_name) != text(&have.given_name) => push(
                f,
                text(&have.given_name).into(),
                text(&want.given_name).into(),
            ),
            Field::FamilyName if text(&want.family_name) != text(&have.family_name) => push(
                f,
                text(&have.family_name).into(),
                text(&want.family_name).into(),
            ),
            Field::Enabled if want.enabled != have.enabled => {
                push(f, have.enabled.to_string(), want.enabled.to_string())
            }
            Field::OrgUnit if !text(&want.org_unit).eq_ignore_ascii_case(text(&have.org_unit)) => {
                push(f, text(&have.org_unit).into(), text(&want.org_unit).into())
            }
            Field::ExternalKey
                if want.external_key.is_some()
                    && text(&want.external_key) != text(&have.external_key) =>
            {
                push(
                    f,
                    text(&have.external_key).into(),
                    text(&want.external_key).into(),
                )
            }
            Field::Attributes if want_attributes != have_attributes => push(
                f,
                format!("{have_attributes:?}"),
                format!("{want_attributes:?}"),
            ),
            _ => {}
        }
    }
    out
}
