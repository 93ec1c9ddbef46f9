//! Ranks: a large pipeline's accounts split into `ranks = N` shares that
//! are applied side by side (by several `roster serve` nodes), as the
//! SuperOffice Synchronizer's server ranks divide users between services.
//!
//! An account's rank is its link's `rank` option when that is 1..=N (set by
//! hand or by `roster links balance --ranks N`), else a stable hash of its
//! source key: it depends on the account alone, never on what else the
//! plan holds, so ranks planned at different moments (each rank plans for
//! itself) never both take an account. The changes of one account (a
//! guest merge, the create, the update after it) share its key and so its
//! rank. A functional account whose delegates are created by another rank
//! gets the delegates that exist when it is written, and the rest on the
//! next run (docs/service.md).

use super::{Plan, PlannedChange};
use sha2::{Digest, Sha256};

/// The link option that names a rank.
pub const RANK_OPTION: &str = "rank";

/// The rank (1..=`ranks`) of an account, by its link's options or its key.
pub fn rank_of(options: &std::collections::BTreeMap<String, String>, key: &str, ranks: u32) -> u32 {
    if let Some(r) = options
        .get(RANK_OPTION)
        .and_then(|r| r.trim().parse::<u32>().ok())
        && (1..=ranks).contains(&r)
    {
        return r;
    }
    let d = Sha256::digest(key.as_bytes());
    let n = u64::from_be_bytes(d[..8].try_into().unwrap_or_default());
    (n % u64::from(ranks.max(1))) as u32 + 1
}

fn change_rank(c: &PlannedChange, ranks: u32) -> u32 {
    let options = c
        .link
        .as_ref()
        .filter(|l| l.options.contains_key(RANK_OPTION))
        .map(|l| &l.options)
        .unwrap_or(&c.change.options);
    rank_of(options, c.source_key.as_deref().unwrap_or(&c.email), ranks)
}

impl Plan {
    /// The part of the plan rank `rank` of `ranks` carries out. Link edits,
    /// unlinks and the notes go with rank 1. The id says which part it is.
    pub fn only_rank(&self, rank: u32, ranks: u32) -> Plan {
        let mut part = self.clone();
        part.changes.retain(|c| change_rank(c, ranks) == rank);
        part.links
            .retain(|l| rank_of(&l.options, &l.source_key, ranks) == rank);
        if rank != 1 {
            part.unlinks.clear();
            part.link_edits.clear();
            part.notes.clear();
            part.skipped.clear();
        }
        part.id = format!("{}-r{rank}of{ranks}", self.id);
        part
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_rank_option_in_range_wins_else_the_hash_is_stable() {
        let with = BTreeMap::from([(RANK_OPTION.to_string(), "2".to_string())]);
        assert_eq!(rank_of(&with, "anyone", 3), 2);
        let out_of_range = BTreeMap::from([(RANK_OPTION.to_string(), "7".to_string())]);
        let hashed = rank_of(&BTreeMap::new(), "ann@example.com", 3);
        assert_eq!(rank_of(&out_of_range, "ann@example.com", 3), hashed);
        assert_eq!(rank_of(&BTreeMap::new(), "ann@example.com", 3), hashed);
        // Spread over every rank.
        let mut seen = [0; 3];
        for i in 0..300 {
            seen[rank_of(&BTreeMap::new(), &format!("u{i}"), 3) as usize - 1] += 1;
        }
        assert!(seen.iter().all(|n| *n > 70), "{seen:?}");
        assert_eq!(rank_of(&BTreeMap::new(), "x", 1), 1);
    }
}
