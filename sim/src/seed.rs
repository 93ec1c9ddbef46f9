//! Reading a simulator's seed: a manifest (`tenant.json`, `org.json`) naming
//! JSON files beside it, in the real API's response shapes. Every error
//! names the file.

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A JSON file.
pub fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))
}

/// The manifest at `path`, as `what` (e.g. "a tenant manifest"), and the
/// directory its files are named from.
pub fn manifest<T: DeserializeOwned>(path: &Path, what: &str) -> Result<(T, PathBuf)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let m =
        serde_json::from_str(&text).with_context(|| format!("{}: not {what}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    Ok((m, dir))
}
