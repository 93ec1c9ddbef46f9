//! Seeding an organisation from a manifest (`org.json`) naming Web API list
//! bodies (`{"value": [systemuser, …]}`):
//!
//! ```json
//! { "tenant": "contoso.onmicrosoft.com", "client_id": "…", "client_secret": "…",
//!   "systemusers": ["systemusers.json"] }
//! ```

use super::Org;
use anyhow::{Context, Result};
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
    let dir = manifest.parent().unwrap_or(Path::new("."));
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let m: Manifest = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a Dynamics organisation manifest",
            manifest.display()
        )
    })?;
    let mut org = Org {
        tenant: m.tenant,
        client_id: m.client_id,
        client_secret: m.client_secret,
        users: vec![],
    };
    for file in &m.systemusers {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let body: Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
        for row in body["value"].as_array().cloned().unwrap_or_default() {
            org.upsert(row);
        }
    }
    Ok(org)
}
