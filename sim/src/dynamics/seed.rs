//! Seeding an organisation from a manifest (`org.json`) naming Web API list
//! bodies (`{"value": [systemuser, …]}`):
//!
//! ```json
//! { "tenant": "contoso.onmicrosoft.com", "client_id": "…", "client_secret": "…",
//!   "systemusers": ["systemusers.json"],
//!   "roles": {"Salesperson": ["prvReadContact", …], "Delegate": ["prvActOnBehalfOfAnotherUser"]},
//!   "user_roles": {"<systemuserid>": ["Salesperson"]} }
//! ```

use super::Org;
use anyhow::Result;
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    tenant: String,
    client_id: String,
    client_secret: String,
    #[serde(default)]
    systemusers: Vec<PathBuf>,
    #[serde(default)]
    roles: std::collections::HashMap<String, Vec<String>>,
    #[serde(default)]
    user_roles: std::collections::HashMap<String, Vec<String>>,
}

pub fn load(manifest: &Path) -> Result<Org> {
    let (m, dir): (Manifest, _) =
        crate::seed::manifest(manifest, "a Dynamics organisation manifest")?;
    let mut org = Org {
        tenant: m.tenant,
        client_id: m.client_id,
        client_secret: m.client_secret,
        users: vec![],
        roles: m.roles,
        user_roles: m.user_roles,
    };
    for file in &m.systemusers {
        let mut body = crate::seed::read_json(&dir.join(file))?;
        let rows = match body["value"].take() {
            Value::Array(rows) => rows,
            _ => vec![],
        };
        for row in rows {
            org.upsert(row);
        }
    }
    Ok(org)
}
