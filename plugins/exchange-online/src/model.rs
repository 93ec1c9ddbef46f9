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

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MailboxJson {
    pub primary_smtp_address: String,
    pub recipient_type_details: Option<String>,
    pub account_disabled: Option<bool>,
    pub email_addresses: Option<Vec<String>>,
    pub external_directory_object_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PermissionEntry {
    pub user: String,
    #[serde(default)]
    pub permission_list: Vec<AccessRightsList>,
    /// Older answers carry the rights at the top level.
    #[serde(default)]
    pub access_rights: Vec<String>,
    #[serde(default)]
    pub deny: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccessRightsList {
    #[serde(default)]
    pub access_rights: Vec<String>,
}

impl PermissionEntry {
    pub fn grants_full_access(&self) -> bool {
        !self.deny
            && self
                .permission_list
                .iter()
                .flat_map(|p| &p.access_rights)
                .chain(&self.access_rights)
                .any(|r| r == "FullAccess")
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
