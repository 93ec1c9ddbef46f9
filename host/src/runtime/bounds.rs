//! What the host accepts from a connector's read: the memory cap bounds a
//! connector, not the host, which keeps every page it is given. Each record
//! is checked as it arrives (no field of megabytes: a 100 MB display name
//! would be copied into plans, state and the target), and a read as a whole
//! is bounded in records and bytes, so a connector that pages forever (or
//! repeats its cursor) is stopped with an error instead of exhausting the
//! host's memory.

use crate::model::{Account, Group};

/// The longest text field accepted in a record (a display name, an address,
/// an attribute value).
pub const MAX_FIELD: usize = 64 << 10;
/// The most entries in one record's list (aliases, groups, delegates,
/// attributes, a group's members).
pub const MAX_LIST: usize = 100_000;
/// The most records one read may return, over all its pages, unless the
/// pipeline grants more (`limits.max_records`): a million accounts is a
/// plan of about 1.5 GB in the host.
pub const MAX_RECORDS: usize = 1_000_000;
/// The most a pipeline may grant.
pub const MAX_RECORDS_GRANT: usize = 50_000_000;
/// The most text one read may return per record allowed, over all its pages.
pub const READ_BYTES_PER_RECORD: usize = 2048;

/// A record the host takes: its approximate size in bytes, or what is wrong.
pub trait Bounded {
    fn weigh(&self) -> Result<usize, String>;
}

fn text(field: &str, value: &str) -> Result<usize, String> {
    match value.len() {
        n if n > MAX_FIELD => Err(format!(
            "`{field}` is {n} bytes long (at most {MAX_FIELD} are accepted)"
        )),
        n => Ok(n),
    }
}

fn list<'a>(
    field: &str,
    values: impl ExactSizeIterator<Item = &'a String>,
) -> Result<usize, String> {
    if values.len() > MAX_LIST {
        return Err(format!(
            "`{field}` has {} entries (at most {MAX_LIST} are accepted)",
            values.len()
        ));
    }
    values.map(|v| text(field, v)).sum()
}

/// A record's id as an error shows it: at most 80 characters.
pub fn shown_id(id: &str) -> String {
    match id.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &id[..cut]),
        None => id.to_string(),
    }
}

impl Bounded for Account {
    fn weigh(&self) -> Result<usize, String> {
        let optional = [
            ("display_name", &self.display_name),
            ("given_name", &self.given_name),
            ("family_name", &self.family_name),
            ("org_unit", &self.org_unit),
            ("external_key", &self.external_key),
        ];
        let mut n = text("id", &self.id)? + text("email", &self.email)?;
        for (field, value) in optional {
            n += value.as_deref().map_or(Ok(0), |v| text(field, v))?;
        }
        n += list("aliases", self.aliases.iter())?;
        n += list("delegates", self.delegates.iter())?;
        n += list("groups", self.groups.iter())?;
        n += list("attributes", self.attributes.keys())?;
        n += list("attributes", self.attributes.values())?;
        Ok(n)
    }
}

impl Bounded for Group {
    fn weigh(&self) -> Result<usize, String> {
        let email = self.email.as_deref().map_or(Ok(0), |e| text("email", e))?;
        Ok(text("id", &self.id)?
            + text("name", &self.name)?
            + email
            + list("member_ids", self.member_ids.iter())?)
    }
}

/// A read's running totals, over its pages.
pub struct ReadTotals {
    max_records: usize,
    records: usize,
    bytes: usize,
    cursors: std::collections::HashSet<String>,
}

impl Default for ReadTotals {
    fn default() -> Self {
        ReadTotals::new(MAX_RECORDS)
    }
}

impl ReadTotals {
    pub fn new(max_records: usize) -> Self {
        ReadTotals {
            max_records,
            records: 0,
            bytes: 0,
            cursors: Default::default(),
        }
    }

    /// Adds a page's records; an error once the read is larger than a host
    /// keeps.
    pub fn add(&mut self, records: usize, bytes: usize) -> Result<(), String> {
        self.records += records;
        self.bytes += bytes;
        if self.records > self.max_records {
            return Err(format!(
                "it returned more than {} records in one read, the pipeline's limit (`limits.max_records`; narrow the read in the connector's configuration, or raise it if the host has the memory)",
                self.max_records
            ));
        }
        let max_bytes = self.max_records.saturating_mul(READ_BYTES_PER_RECORD);
        if self.bytes > max_bytes {
            return Err(format!(
                "it returned more than {} MiB of records in one read ({READ_BYTES_PER_RECORD} bytes per record of `limits.max_records`)",
                max_bytes >> 20
            ));
        }
        Ok(())
    }

    /// A cursor seen before would read the same pages again, for ever.
    pub fn next_cursor(&mut self, cursor: &str) -> Result<(), String> {
        match self.cursors.insert(cursor.to_string()) {
            true => Ok(()),
            false => Err(format!(
                "it returned the cursor `{}` a second time, which would read the same pages for ever",
                shown_id(cursor)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AccountKind;

    #[test]
    fn a_record_with_an_oversized_field_or_list_is_refused() {
        let mut a = Account::new("1", AccountKind::Person, "a@x.com");
        assert_eq!(a.weigh(), Ok(8));
        a.display_name = Some("x".repeat(MAX_FIELD + 1));
        assert!(
            a.weigh()
                .unwrap_err()
                .contains("`display_name` is 65537 bytes")
        );
        a.display_name = None;
        a.aliases = vec!["a".into(); MAX_LIST + 1];
        assert!(
            a.weigh()
                .unwrap_err()
                .contains("`aliases` has 100001 entries")
        );
    }

    #[test]
    fn a_read_is_bounded_and_a_repeated_cursor_refused() {
        let mut t = ReadTotals::default();
        assert!(t.add(MAX_RECORDS, 10).is_ok());
        assert!(t.add(1, 10).unwrap_err().contains("`limits.max_records`"));
        let mut t = ReadTotals::new(10);
        assert!(t.add(1, 10 * READ_BYTES_PER_RECORD + 1).is_err());
        assert!(t.next_cursor("p2").is_ok());
        assert!(t.next_cursor("p3").is_ok());
        assert!(t.next_cursor("p2").unwrap_err().contains("a second time"));
        assert_eq!(shown_id(&"é".repeat(100)).chars().count(), 81);
    }
}
