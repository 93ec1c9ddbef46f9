//! The host's own account model. Connectors speak a versioned WIT contract;
//! the pipeline stages speak this, so a new contract version only adds a
//! conversion, never a change to filter, link, merge or sync.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum AccountKind {
    Person,
    Functional,
    Guest,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub kind: AccountKind,
    pub email: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_key: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delegates: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl Account {
    /// An enabled account with only its id, kind and primary address set.
    pub fn new(id: impl Into<String>, kind: AccountKind, email: impl Into<String>) -> Self {
        Account {
            id: id.into(),
            kind,
            email: email.into(),
            aliases: vec![],
            display_name: None,
            given_name: None,
            family_name: None,
            enabled: true,
            org_unit: None,
            external_key: None,
            delegates: vec![],
            groups: vec![],
            attributes: BTreeMap::new(),
        }
    }

    /// Every address of the account, primary first.
    pub fn addresses(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.email.as_str()).chain(self.aliases.iter().map(String::as_str))
    }

    pub fn has_address(&self, address: &str) -> bool {
        self.addresses().any(|a| a.eq_ignore_ascii_case(address))
    }

    /// The domain of the primary address, lower-cased.
    pub fn domain(&self) -> String {
        domain_of(&self.email)
    }
}

pub fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default)]
    pub member_ids: Vec<String>,
}

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Field {
    Email,
    Aliases,
    DisplayName,
    GivenName,
    FamilyName,
    Enabled,
    OrgUnit,
    ExternalKey,
    Delegates,
    Attributes,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfigField {
    pub name: String,
    pub description: String,
    pub secret: bool,
    pub required: bool,
    pub default_value: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Descriptor {
    pub name: String,
    pub version: String,
    pub description: String,
    pub source: bool,
    pub target: bool,
    pub kinds: Vec<AccountKind>,
    pub fields: Vec<Field>,
    pub incremental: bool,
    pub config: Vec<ConfigField>,
    pub hosts: Vec<String>,
}

/// Config fields named `option.<name>` declare the per-link options a
/// target takes (the contract reserves the prefix), not configuration.
pub const LINK_OPTION_PREFIX: &str = "option.";

impl Descriptor {
    /// The connector's configuration fields proper (no link options).
    pub fn settings(&self) -> impl Iterator<Item = &ConfigField> {
        self.config
            .iter()
            .filter(|f| !f.name.starts_with(LINK_OPTION_PREFIX))
    }

    /// The per-link options the connector declares, by name.
    pub fn link_options(&self) -> impl Iterator<Item = (&str, &ConfigField)> {
        self.config
            .iter()
            .filter_map(|f| Some((f.name.strip_prefix(LINK_OPTION_PREFIX)?, f)))
    }

    /// Is `key = value` a per-link option this connector takes? Every key and
    /// value is taken when it declares none; else the key must be declared
    /// and the value of its default's type (`true`/`false`; a whole number
    /// from 1; or any text). The reason when not.
    pub fn check_link_option(&self, key: &str, value: &str) -> Result<(), String> {
        let declared: Vec<(&str, &ConfigField)> = self.link_options().collect();
        if declared.is_empty() {
            return Ok(());
        }
        let Some((_, field)) = declared.iter().find(|(n, _)| *n == key) else {
            let names: Vec<&str> = declared.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "`{key}` is no option of plugin `{}` (it takes: {})",
                self.name,
                names.join(", ")
            ));
        };
        let default = field.default_value.as_deref().unwrap_or("");
        let ok = match default {
            "true" | "false" => matches!(value, "true" | "false"),
            d if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => {
                value.parse::<u32>().is_ok_and(|n| n >= 1)
            }
            _ => true,
        };
        match ok {
            true => Ok(()),
            false => Err(format!(
                "option `{key}` = `{value}`: plugin `{}` takes {} ({})",
                self.name,
                match default {
                    "true" | "false" => "true or false",
                    _ => "a whole number from 1",
                },
                field.description
            )),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum ErrorKind {
    Licence,
    Conflict,
    NotFound,
    RateLimited,
    Connection,
    Invalid,
    Unauthorized,
    Other,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// An error a connector reported: its kind and the vendor's own message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}", kind = kind.as_str())]
pub struct ConnectorError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PageRequest {
    pub cursor: Option<String>,
    pub watermark: Option<String>,
    pub size: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AccountPage {
    pub accounts: Vec<Account>,
    pub next_cursor: Option<String>,
    pub watermark: Option<String>,
    pub removed_ids: Vec<String>,
    pub full: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GroupPage {
    pub groups: Vec<Group>,
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectionReport {
    pub checks: Vec<String>,
    pub account: Option<Account>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRef {
    pub id: Option<String>,
    pub email: String,
}

/// What a target is asked to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Operation {
    Create {
        account: Account,
    },
    Update {
        id: String,
        account: Account,
        changed: Vec<Field>,
    },
    Disable {
        id: String,
    },
    Delete {
        id: String,
    },
    MergeGuest {
        guest: AccountRef,
        into: AccountRef,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub id: String,
    pub op: Operation,
    pub options: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ChangeResult {
    pub change_id: String,
    pub outcome: Result<Option<String>, ConnectorError>,
}

#[cfg(test)]
mod names {
    use super::*;
    use crate::links::LinkHow;
    use crate::plan::Action;
    use crate::state::JournalStatus;

    /// `as_str` (strum) and the JSON name (serde) of every variant agree.
    fn agree<T: Copy + Serialize + std::fmt::Debug>(all: &[T], name: impl Fn(T) -> &'static str) {
        for v in all {
            assert_eq!(serde_json::to_value(v).unwrap(), name(*v), "{v:?}");
        }
    }

    #[test]
    fn text_names_are_the_json_names() {
        use AccountKind as K;
        agree(&[K::Person, K::Functional, K::Guest], K::as_str);
        use Field as F;
        let fields = [
            F::Email,
            F::Aliases,
            F::DisplayName,
            F::GivenName,
            F::FamilyName,
            F::Enabled,
            F::OrgUnit,
            F::ExternalKey,
            F::Delegates,
            F::Attributes,
        ];
        agree(&fields, F::as_str);
        use ErrorKind as E;
        let kinds = [
            E::Licence,
            E::Conflict,
            E::NotFound,
            E::RateLimited,
            E::Connection,
            E::Invalid,
            E::Unauthorized,
            E::Other,
        ];
        agree(&kinds, E::as_str);
        use Action as A;
        let actions = [A::MergeGuest, A::Create, A::Update, A::Disable, A::Delete];
        agree(&actions, A::as_str);
        use LinkHow as L;
        let hows = [L::Manual, L::Primary, L::Alias, L::Created, L::Stored];
        agree(&hows, L::as_str);
        for h in hows {
            assert_eq!(h.as_str().parse::<L>().unwrap(), h);
        }
        use JournalStatus as J;
        let statuses = [J::Pending, J::Sent, J::Applied, J::Failed, J::Skipped];
        agree(&statuses, J::as_str);
        for s in statuses {
            assert_eq!(J::parse(s.as_str()), Some(s));
        }
    }
}
