//! Seeding an organisation from Zivver's own list responses, named by a
//! manifest (`org.json`):
//!
//! ```json
//! { "api_key": "…", "domains": ["example.com"], "divisions": ["Sales"],
//!   "users": ["scim-users.sample.json"], "groups": ["scim-groups.sample.json"],
//!   "guests": ["someone@outside.example"] }
//! ```

use super::org::Org;
use anyhow::Result;
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    api_key: String,
    domains: Vec<String>,
    #[serde(default)]
    divisions: Vec<String>,
    #[serde(default)]
    users: Vec<PathBuf>,
    #[serde(default)]
    groups: Vec<PathBuf>,
    #[serde(default)]
    guests: Vec<String>,
}

fn resources(dir: &Path, file: &Path) -> Result<Vec<Value>> {
    let mut v = crate::seed::read_json(&dir.join(file))?;
    Ok(match v["Resources"].take() {
        Value::Array(list) => list,
        _ => vec![],
    })
}

pub fn load(manifest: &Path) -> Result<Org> {
    let (m, dir): (Manifest, _) = crate::seed::manifest(manifest, "an organisation manifest")?;
    let domains: Vec<&str> = m.domains.iter().map(String::as_str).collect();
    let mut org = Org::new(&m.api_key, &domains);
    org.divisions = m.divisions;
    for file in &m.users {
        for u in resources(&dir, file)? {
            org.seed_user(u);
        }
    }
    for file in &m.groups {
        for g in resources(&dir, file)? {
            org.seed_group(g);
        }
    }
    for g in &m.guests {
        org.receive_mail(g);
    }
    Ok(org)
}
