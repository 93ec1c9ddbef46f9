//! Seeding an organisation from a manifest (`org.json`) naming Web API list
//! bodies (`{"value": [systemuser, …]}`):
//!
//! ```json
//! { "tenant": "contoso.onmicrosoft.com", "client_id": "…", "client_secret": "…",
//!   "systemusers": ["systemusers.json"] }
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
}

pub fn load(manifest: &Path) -> Result<Org> {
    let (m, dir): (Manifest, _) =
        crate::seed::manifest(manifest, "a Dynamics organisation manifest")?;
    let mut org = Org {
        tenant: m.tenant,
        client_id: m.client_id,
        client_secret: m.client_secret,
        users: vec![],
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
