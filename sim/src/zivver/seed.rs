//! Seeding an organisation from Zivver's own list responses, named by a
//! manifest (`org.json`):
//!
//! ```json
//! { "api_key": "…", "domains": ["example.com"], "divisions": ["Sales"],
//!   "users": ["scim-users.sample.json"], "groups": ["scim-groups.sample.json"],
//!   "guests": ["someone@outside.example"] }
//! ```

use super::org::Org;
use anyhow::{Context, Result};
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
    let path = dir.join(file);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    Ok(v["Resources"].as_array().cloned().unwrap_or_default())
}

pub fn load(manifest: &Path) -> Result<Org> {
    let dir = manifest.parent().unwrap_or(Path::new("."));
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let m: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{}: not an organisation manifest", manifest.display()))?;
    let domains: Vec<&str> = m.domains.iter().map(String::as_str).collect();
    let mut org = Org::new(&m.api_key, &domains);
    org.divisions = m.divisions;
    for file in &m.users {
        for u in resources(dir, file)? {
            org.seed_user(u);
        }
    }
    for file in &m.groups {
        for g in resources(dir, file)? {
            org.seed_group(g);
        }
    }
    for g in &m.guests {
        org.receive_mail(g);
    }
    Ok(org)
}
