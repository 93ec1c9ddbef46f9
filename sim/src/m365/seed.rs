//! Seeding a tenant from JSON files in the real shapes, listed by a
//! manifest (`tenant.json`) so the fixtures can be used as they are:
//!
//! ```json
//! { "id": "…", "domains": ["contoso.com"], "apps": [{"client_id", "client_secret", "roles"}],
//!   "users": ["graph-users-list.json", …],          // Graph list or delta pages
//!   "mailboxes": ["mailboxes.sample.json"],         // keyed by primary address
//!   "permissions": ["mailbox-permissions.sample.json"],
//!   "more_permissions": ["grants.json"],            // entries added to a mailbox's list
//!   "groups": ["groups.json"],                      // Graph list
//!   "members": ["group-members.json"] }             // group id → Graph list
//! ```
//!
//! Users are merged by id in file order (later files add or override
//! properties); a delta page's `@removed` items become removals. Every
//! mailbox without a Graph user gets one derived from it.

use super::tenant::{App, Tenant};
use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    id: String,
    #[serde(default)]
    domains: Vec<String>,
    #[serde(default)]
    apps: Vec<App>,
    #[serde(default)]
    users: Vec<PathBuf>,
    #[serde(default)]
    mailboxes: Vec<PathBuf>,
    #[serde(default)]
    permissions: Vec<PathBuf>,
    #[serde(default)]
    more_permissions: Vec<PathBuf>,
    #[serde(default)]
    groups: Vec<PathBuf>,
    #[serde(default)]
    members: Vec<PathBuf>,
}

fn read_json(dir: &Path, file: &Path) -> Result<Value> {
    crate::seed::read_json(&dir.join(file))
}

/// Loads the tenant that `manifest` (a `tenant.json`) describes.
pub fn load(manifest: &Path) -> Result<Tenant> {
    let (m, dir): (Manifest, _) = crate::seed::manifest(manifest, "a tenant manifest")?;
    let dir = dir.as_path();
    let mut t = Tenant::new(&m.id);
    t.domains = m.domains;
    if !m.apps.is_empty() {
        t.apps = m.apps;
    }
    for file in &m.users {
        let v = read_json(dir, file)?;
        t.apply_graph_changes(&v)
            .map_err(anyhow::Error::msg)
            .with_context(|| file.display().to_string())?;
    }
    for file in &m.mailboxes {
        t.apply_mailboxes(&read_json(dir, file)?)
            .map_err(anyhow::Error::msg)
            .with_context(|| file.display().to_string())?;
    }
    for file in &m.permissions {
        t.apply_permissions(&read_json(dir, file)?)
            .map_err(anyhow::Error::msg)
            .with_context(|| file.display().to_string())?;
    }
    for file in &m.more_permissions {
        let v = read_json(dir, file)?;
        let map = v
            .as_object()
            .with_context(|| format!("{}: expected entries keyed by mailbox", file.display()))?;
        for (mailbox, entries) in map {
            for e in entries["value"].as_array().into_iter().flatten() {
                t.add_permission(mailbox, e.clone());
            }
        }
    }
    let mut members = serde_json::Map::new();
    for file in &m.members {
        if let Value::Object(map) = read_json(dir, file)? {
            members.extend(map);
        }
    }
    for file in &m.groups {
        let v = read_json(dir, file)?;
        for g in v["value"].as_array().into_iter().flatten() {
            let id = g["id"].as_str().unwrap_or_default();
            let list = members
                .get(id)
                .and_then(|m| m["value"].as_array())
                .cloned()
                .unwrap_or_default();
            t.upsert_group(g.clone(), list)
                .map_err(anyhow::Error::msg)
                .with_context(|| file.display().to_string())?;
        }
    }
    t.derive_missing_users();
    Ok(t)
}
