//! The vendor's JSON, typed: Graph users and pages, Exchange mailboxes and
//! permission entries. Only the properties the connector uses are named;
//! everything else in an answer is ignored.

use serde::Deserialize;

/// The Graph user properties the connector asks for with `$select`.
pub const USER_SELECT: &str = "id,userPrincipalName,mail,proxyAddresses,displayName,givenName,surname,accountEnabled,userType,department,onPremisesDistinguishedName";

#[derive(Debug, Deserialize)]
pub struct Page<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    pub delta_link: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphUser {
    pub id: String,
    pub user_principal_name: Option<String>,
    pub mail: Option<String>,
    pub proxy_addresses: Option<Vec<String>>,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub account_enabled: Option<bool>,
    pub user_type: Option<String>,
    pub department: Option<String>,
    pub on_premises_distinguished_name: Option<String>,
    #[serde(rename = "@removed")]
    pub removed: Option<Removed>,
}

#[derive(Debug, Deserialize)]
pub struct Removed {
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct GraphGroup {
    pub id: String,
    #[serde(rename = "displayName")]
    pub display_name: Option<String>,
    pub mail: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct DirectoryObject {
    pub id: String,
}

/// The mailbox properties the connector asks for with `$select` (CloudSync
/// `get_exo_mailbox.py` selects the same, and `UserPrincipalName`: Exchange
/// names FullAccess holders by it).
pub const MAILBOX_SELECT: &str = "PrimarySmtpAddress,UserPrincipalName,EmailAddresses,RecipientTypeDetails,AccountDisabled,ExternalDirectoryObjectId,Guid";

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MailboxJson {
    pub primary_smtp_address: String,
    pub user_principal_name: Option<String>,
    pub recipient_type_details: Option<String>,
    pub account_disabled: Option<bool>,
    pub email_addresses: Option<Vec<String>>,
    pub external_directory_object_id: Option<String>,
    pub guid: Option<String>,
}

/// One `MailboxPermission` entry: the holder (`User`, a UPN for a
/// mailbox of the tenant) and its `PermissionList` items, each with its own
/// `AccessRights`, `Deny` and `IsInherited` (CloudSync's sample of the real
/// answer, `models/exo/mailbox_permissions.py`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PermissionEntry {
    pub user: String,
    #[serde(default)]
    pub permission_list: Vec<PermissionItem>,
    /// Get-MailboxPermission's flat shape (rights and deny on the entry),
    /// taken when there is no `PermissionList`.
    #[serde(default)]
    pub access_rights: Vec<String>,
    #[serde(default)]
    pub deny: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PermissionItem {
    #[serde(default)]
    pub access_rights: Vec<String>,
    #[serde(default)]
    pub deny: bool,
}

impl PermissionEntry {
    /// FullAccess granted: an item that allows it (a denying item grants
    /// nothing), or, without items, the entry's own rights unless denied.
    pub fn grants_full_access(&self) -> bool {
        let full = |rights: &[String]| rights.iter().any(|r| r == "FullAccess");
        if self.permission_list.is_empty() {
            return !self.deny && full(&self.access_rights);
        }
        !self.deny
            && self
                .permission_list
                .iter()
                .any(|i| !i.deny && full(&i.access_rights))
            && !self
                .permission_list
                .iter()
                .any(|i| i.deny && full(&i.access_rights))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(json: &str) -> PermissionEntry {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn deny_is_read_per_permission_item() {
        let granted = entry(
            r#"{"User": "a@x", "PermissionList": [{"AccessRights": ["FullAccess"], "IsInherited": false, "Deny": false, "InheritanceType": "All"}]}"#,
        );
        assert!(granted.grants_full_access());
        let denied = entry(
            r#"{"User": "a@x", "PermissionList": [{"AccessRights": ["FullAccess"], "IsInherited": false, "Deny": true, "InheritanceType": "All"}]}"#,
        );
        assert!(!denied.grants_full_access());
        let both = entry(
            r#"{"User": "a@x", "PermissionList": [{"AccessRights": ["FullAccess"], "Deny": false}, {"AccessRights": ["FullAccess"], "Deny": true}]}"#,
        );
        assert!(!both.grants_full_access(), "an explicit deny wins");
        let flat = entry(r#"{"User": "a@x", "AccessRights": ["FullAccess"], "Deny": true}"#);
        assert!(!flat.grants_full_access());
        let read_only =
            entry(r#"{"User": "a@x", "PermissionList": [{"AccessRights": ["ReadPermission"]}]}"#);
        assert!(!read_only.grants_full_access());
    }
}

/// Graph's and Exchange's error bodies: `{"error": {"code", "message"}}`.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}
