//! The `memo` capability: a connector's small, durable facts (a write-only
//! key it sent, an address its service refused as a guest's), which the
//! service will not tell again. The instance holds the memo in memory, loaded
//! from the state when it starts; what a call writes is collected here and
//! taken by the host at the points where it writes the state (after a read,
//! with an apply batch's outcomes), so a memo entry and the write it
//! describes are kept together or not at all.

use super::redact::Redactor;
pub use crate::state::MemoWrite;
use std::collections::BTreeMap;

pub const MAX_KEY: usize = 512;
pub const MAX_VALUE: usize = 64 * 1024;
pub const MAX_ENTRIES: usize = 1_000_000;
pub const MAX_BYTES: usize = 64 << 20;

#[derive(Default)]
pub struct Memo {
    kept: BTreeMap<String, String>,
    bytes: usize,
    /// Changes since the host last took them, by key (the last one wins).
    written: BTreeMap<String, Option<String>>,
}

impl Memo {
    /// A memo holding what the state kept.
    pub fn loaded(kept: BTreeMap<String, String>) -> Memo {
        let bytes = kept.iter().map(|(k, v)| k.len() + v.len()).sum();
        Memo {
            kept,
            bytes,
            written: BTreeMap::new(),
        }
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.kept.get(key).cloned()
    }

    pub fn set(&mut self, key: String, value: String, redactor: &Redactor) -> Result<(), String> {
        if key.len() > MAX_KEY {
            return Err(format!("memo key longer than {MAX_KEY} bytes"));
        }
        if value.len() > MAX_VALUE {
            return Err(format!("memo value longer than {} KiB", MAX_VALUE >> 10));
        }
        if redactor.redact(&value) != value.as_str() {
            return Err("a memo value may not hold a secret".into());
        }
        let old = self.kept.get(&key).map_or(0, |v| key.len() + v.len());
        let bytes = self.bytes - old + key.len() + value.len();
        if old == 0 && self.kept.len() >= MAX_ENTRIES || bytes > MAX_BYTES {
            return Err(format!(
                "the memo is full ({MAX_ENTRIES} entries or {} MiB)",
                MAX_BYTES >> 20
            ));
        }
        self.bytes = bytes;
        self.written.insert(key.clone(), Some(value.clone()));
        self.kept.insert(key, value);
        Ok(())
    }

    pub fn remove(&mut self, key: &str) {
        if let Some(v) = self.kept.remove(key) {
            self.bytes -= key.len() + v.len();
            self.written.insert(key.to_string(), None);
        }
    }

    /// Every entry whose key starts with `prefix`, in key order.
    pub fn list(&self, prefix: &str) -> Vec<(String, String)> {
        self.kept
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The changes since the last time they were taken.
    pub fn take_written(&mut self) -> Vec<MemoWrite> {
        std::mem::take(&mut self.written).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_kept_listed_and_taken_once() {
        let mut m = Memo::loaded(BTreeMap::from([("sso/u1".into(), "k1".into())]));
        let r = Redactor::default();
        m.set("sso/u2".into(), "k2".into(), &r).unwrap();
        m.set("guest/a@x".into(), "1".into(), &r).unwrap();
        m.remove("sso/u1");
        m.remove("never-there");
        assert_eq!(m.get("sso/u2").as_deref(), Some("k2"));
        assert_eq!(m.list("sso/"), [("sso/u2".to_string(), "k2".to_string())]);
        assert_eq!(
            m.take_written(),
            [
                ("guest/a@x".to_string(), Some("1".to_string())),
                ("sso/u1".to_string(), None),
                ("sso/u2".to_string(), Some("k2".to_string())),
            ]
        );
        assert!(m.take_written().is_empty());
    }

    #[test]
    fn oversized_entries_and_secrets_are_refused() {
        let mut m = Memo::default();
        let r = Redactor::default();
        r.add("s3cret-api-key");
        assert!(m.set("k".repeat(MAX_KEY + 1), "v".into(), &r).is_err());
        assert!(m.set("k".into(), "v".repeat(MAX_VALUE + 1), &r).is_err());
        let e = m.set("k".into(), "Bearer s3cret-api-key".into(), &r);
        assert_eq!(e, Err("a memo value may not hold a secret".into()));
        assert!(m.take_written().is_empty(), "nothing refused is kept");
    }
}
