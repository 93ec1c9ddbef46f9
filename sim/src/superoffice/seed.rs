//! Seeding a tenant from a manifest (`tenant.json`) naming files in the
//! API's own shapes:
//!
//! ```json
//! { "token": "…", "ticket": "…", "app_token": "…", "user_licences": 10,
//!   "associates": ["associates.json"], "persons": ["persons.json"] }
//! ```
//! Each file is a JSON array of `Associate` (or `Person`) carriers, or one carrier.

use super::Crm;
use anyhow::Result;
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    token: String,
    #[serde(default)]
    ticket: Option<String>,
    #[serde(default)]
    app_token: Option<String>,
    user_licences: u32,
    #[serde(default)]
    associates: Vec<PathBuf>,
    #[serde(default)]
    persons: Vec<PathBuf>,
}

fn items(dir: &Path, file: &Path) -> Result<Vec<Value>> {
    Ok(match crate::seed::read_json(&dir.join(file))? {
        Value::Array(list) => list,
        one => vec![one],
    })
}

pub fn load(manifest: &Path) -> Result<Crm> {
    let (m, dir): (Manifest, _) = crate::seed::manifest(manifest, "a SuperOffice tenant manifest")?;
    let mut crm = Crm::new(&m.token, m.user_licences);
    crm.ticket = m.ticket;
    crm.app_token = m.app_token;
    for file in &m.persons {
        for p in items(&dir, file)? {
            crm.seed_person(p);
        }
    }
    for file in &m.associates {
        for a in items(&dir, file)? {
            crm.seed_associate(a);
        }
    }
    Ok(crm)
}
