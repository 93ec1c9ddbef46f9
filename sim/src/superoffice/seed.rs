//! Seeding a tenant from a manifest (`tenant.json`) naming files in the
//! API's own shapes:
//!
//! ```json
//! { "token": "…", "ticket": "…", "app_token": "…", "online": false,
//!   "user_licences": 10,
//!   "modules": [{"owner": "SUPEROFFICE", "name": "MARKETING", "user_plan": false, "total": 3}],
//!   "associates": ["associates.json"], "persons": ["persons.json"] }
//! ```
//! Each file is a JSON array of `Associate` (or `Person`) carriers, or one
//! carrier. `user_licences` is the one user plan (`SALESPREMIUM`) every
//! seeded user holds; `modules` adds others.

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
    #[serde(default)]
    online: bool,
    user_licences: u32,
    #[serde(default)]
    modules: Vec<ModuleSeed>,
    #[serde(default)]
    associates: Vec<PathBuf>,
    #[serde(default)]
    persons: Vec<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModuleSeed {
    owner: String,
    name: String,
    #[serde(default)]
    user_plan: bool,
    total: u32,
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
    crm.online = m.online;
    crm.modules
        .extend(m.modules.into_iter().map(|s| super::crm::Module {
            owner: s.owner,
            name: s.name,
            user_plan: s.user_plan,
            total: s.total,
        }));
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
