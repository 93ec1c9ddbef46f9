//! A link row as both stores keep it: its text columns, and the checksum
//! that tells a row roster wrote from one edited outside it (schema 6).
//! One definition, so the SQLite file and PostgreSQL seal and check rows
//! the same way.

use crate::links::{LinkHow, StoredLink};
use anyhow::Context;

/// A link row as stored, before its text columns are parsed.
pub(super) struct LinkRow {
    pub(super) source_key: String,
    pub(super) source_email: String,
    pub(super) target_id: String,
    pub(super) how: String,
    pub(super) options: String,
    pub(super) overrides: String,
    pub(super) updated_at_ms: i64,
}

impl LinkRow {
    /// The row a link is stored as.
    pub(super) fn of(link: &StoredLink) -> LinkRow {
        // A map of strings always serialises.
        let text = |m: &std::collections::BTreeMap<String, String>| {
            serde_json::to_string(m).unwrap_or_else(|_| "{}".into())
        };
        LinkRow {
            source_key: link.source_key.clone(),
            source_email: link.source_email.clone(),
            target_id: link.target_id.clone(),
            how: link.how.as_str().to_string(),
            options: text(&link.options),
            overrides: text(&link.overrides),
            updated_at_ms: link.updated_at_ms as i64,
        }
    }

    /// What the row says, hashed: a row edited by hand (another target
    /// id, how, options) no longer matches it. Not a defence against
    /// someone who means harm and can write the file, but it stops a stray
    /// edit or a bad restore from being acted on silently.
    pub(super) fn checksum(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [
            &self.source_key,
            &self.source_email,
            &self.target_id,
            &self.how,
            &self.options,
            &self.overrides,
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        hex::encode(&h.finalize()[..16])
    }

    /// The checksum to store when `stored` is not this row's (a row from
    /// before checksums, or one edited outside roster).
    pub(super) fn reseal(&self, stored: Option<&str>) -> Option<String> {
        let sum = self.checksum();
        (stored != Some(sum.as_str())).then_some(sum)
    }

    pub(super) fn into_link(self) -> anyhow::Result<StoredLink> {
        let parse = |text: &str, what: &str| {
            serde_json::from_str(text).with_context(|| {
                format!(
                    "the {what} of the link of {} are not readable",
                    self.source_email
                )
            })
        };
        Ok(StoredLink {
            options: parse(&self.options, "options")?,
            overrides: parse(&self.overrides, "overrides")?,
            // Anything unknown reads as an earlier run's link.
            how: self.how.parse().unwrap_or(LinkHow::Stored),
            source_key: self.source_key,
            source_email: self.source_email,
            target_id: self.target_id,
            updated_at_ms: self.updated_at_ms as u64,
        })
    }
}

/// Rows read with their stored checksums: the links, and the accounts
/// whose rows were changed outside roster.
pub(super) fn checked(
    rows: impl IntoIterator<Item = (LinkRow, Option<String>)>,
) -> anyhow::Result<(Vec<StoredLink>, Vec<String>)> {
    let (mut links, mut edited) = (Vec::new(), Vec::new());
    for (row, stored) in rows {
        if row.reseal(stored.as_deref()).is_some() {
            edited.push(row.source_email.clone());
        }
        links.push(row.into_link()?);
    }
    Ok((links, edited))
}

/// Link rows whose checksum does not match what they say.
pub(super) fn edited_links(accounts: &[String]) -> anyhow::Error {
    let shown: Vec<&str> = accounts.iter().take(5).map(String::as_str).collect();
    let more = match accounts.len() {
        n if n > 5 => format!(" and {} more", n - 5),
        _ => String::new(),
    };
    anyhow::anyhow!(
        "the stored link of {}{more} was changed outside roster (target id, how or options no longer match the row's checksum), so no plan is made from it. Links are changed with `roster links`; if the edit was deliberate and checked, accept it with `roster links PIPELINE accept-edits`, otherwise restore the state from a backup",
        shown.join(", ")
    )
}
