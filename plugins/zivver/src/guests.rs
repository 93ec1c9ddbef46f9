//! Guests, as far as Zivver lets a client know them. Zivver's API has no
//! guest resource: an address that received Zivver mail becomes a guest, and
//! a client only learns of it when a write answers
//! `Error creating alias: Alias is a guest: <address>`. Zivver documents the
//! remedy (docs.zivver.com, "Merge guest accounts"): the admin runs the Zivver
//! Synctool with "merge guest accounts into primary account if guest account
//! is an email alias", which merges the guest and writes the alias.
//!
//! So a guest refused write is learned into the memo (`guest/<address>` =
//! when), reported by the next reads as a guest account carrying that remedy
//! (the planner leaves the alias out and tells the admin), and forgotten when
//! a read shows the address on an account (merged) or after the recheck time,
//! when the alias is tried once more.
//!
//! `merge_guests = "api"` merges through a configured route instead; Zivver
//! documents none, so that mode is for an installation that has one.

use roster_sdk::http::encode;
use roster_sdk::prelude::*;
use roster_sdk::{Attribute, memo};

const GUEST_TEXT: &str = "Alias is a guest: ";
const MEMO_PREFIX: &str = "guest/";
/// The attribute a guest account carries: what the admin must do.
pub use roster_sdk::attr::REMEDY;

#[derive(Clone, Debug, PartialEq)]
pub enum GuestMerge {
    /// The admin merges with Zivver's own tool; the alias waits.
    Manual,
    /// `POST {route}` with `{guest}` and `{into}` filled in.
    Api { route: String },
}

impl GuestMerge {
    pub fn configured(mode: Option<&str>, route: Option<&str>) -> Result<Self> {
        match (mode.unwrap_or("manual"), route.filter(|r| !r.is_empty())) {
            ("manual", _) => Ok(GuestMerge::Manual),
            ("api", Some(route)) => Ok(GuestMerge::Api {
                route: route.to_string(),
            }),
            ("api", None) => Err(Error::invalid(
                "merge_guests = \"api\" needs merge_route: Zivver documents no merge call, so name the one your installation has",
            )),
            ("true" | "false", _) => Err(Error::invalid(
                "merge_guests: `true`/`false` are gone (the /Guests route they used is not Zivver's): use \"manual\" (the default) or \"api\" with merge_route",
            )),
            (other, _) => Err(Error::invalid(format!(
                "merge_guests: `{other}` is not manual or api"
            ))),
        }
    }
}

pub struct Guests {
    pub merge: GuestMerge,
    recheck_ms: u64,
}

/// The guest address in `Alias is a guest: <address>`.
pub fn blocking_guest(e: &Error) -> Option<String> {
    let at = e.message.find(GUEST_TEXT)? + GUEST_TEXT.len();
    let rest = &e.message[at..];
    Some(
        rest.split_whitespace()
            .next()
            .unwrap_or(rest)
            .trim_end_matches(['.', ','])
            .to_lowercase(),
    )
}

/// What the admin must do about the guest holding `address`.
pub fn remedy(address: &str) -> String {
    format!(
        "{address} received Zivver mail as a guest before it became an alias, and Zivver refuses a guest's address as an alias. Zivver's remedy (docs.zivver.com, \"Merge guest accounts\"): run the Zivver Synctool with \"Merge guest accounts into primary account if guest account is an email alias\" (and \"Update existing users in Zivver\") switched on; the first Roster run after the merge sees the alias, or writes it"
    )
}

impl Guests {
    pub fn new(merge: GuestMerge, recheck_hours: u64) -> Self {
        Guests {
            merge,
            recheck_ms: recheck_hours.saturating_mul(3_600_000),
        }
    }

    /// Remembers that Zivver refused `address` as a guest's, now.
    pub fn learn(&self, address: &str) {
        let key = format!("{MEMO_PREFIX}{}", address.to_lowercase());
        if let Err(e) = memo::set(&key, &host::now_ms().to_string()) {
            host::warn(&e.message);
        }
    }

    /// The guests learned and not yet seen merged, as accounts for the
    /// planner; `held` says whether an account holds an address now (then
    /// the guest was merged and is forgotten). A guest learned longer ago
    /// than the recheck time is left out, so its alias is tried again.
    pub fn accounts(&self, held: impl Fn(&str) -> bool) -> Vec<Account> {
        let now = host::now_ms();
        let mut out = Vec::new();
        for (key, learned) in memo::list(MEMO_PREFIX) {
            let address = &key[MEMO_PREFIX.len()..];
            if held(address) {
                memo::remove(&key);
                continue;
            }
            let learned: u64 = learned.parse().unwrap_or(0);
            if now.saturating_sub(learned) >= self.recheck_ms {
                continue;
            }
            let mut a = Account::new(format!("guest:{address}"), AccountKind::Guest, address);
            // With merges through the API the merge stage plans it;
            // otherwise the admin is told what to do.
            if self.merge == GuestMerge::Manual {
                a.attributes.push(Attribute {
                    key: REMEDY.into(),
                    value: remedy(address),
                });
            }
            out.push(a);
        }
        out
    }

    /// The path and body of a merge through the configured route.
    pub fn merge_request(&self, guest: &str, into: &str) -> Option<(String, serde_json::Value)> {
        let GuestMerge::Api { route } = &self.merge else {
            return None;
        };
        let path = route
            .replace("{guest}", &encode(guest))
            .replace("{into}", &encode(into));
        Some((path, serde_json::json!({ "into": into })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_address_is_read_from_zivvers_text() {
        let e = Error::conflict("Error creating alias: Alias is a guest: Ann.Old@Example.com");
        assert_eq!(blocking_guest(&e).as_deref(), Some("ann.old@example.com"));
        assert_eq!(
            blocking_guest(&Error::conflict("Alias is already taken for u1")),
            None
        );
    }

    #[test]
    fn merge_modes() {
        assert_eq!(
            GuestMerge::configured(None, None).unwrap(),
            GuestMerge::Manual
        );
        assert!(GuestMerge::configured(Some("api"), None).is_err());
        assert!(GuestMerge::configured(Some("true"), None).is_err());
        let g = Guests::new(
            GuestMerge::configured(Some("api"), Some("Guests/{guest}/merge")).unwrap(),
            24,
        );
        let (path, body) = g.merge_request("a+b@x.nl", "u-1").unwrap();
        assert_eq!(path, "Guests/a%2Bb%40x.nl/merge");
        assert_eq!(body["into"], "u-1");
    }

    #[test]
    fn learned_guests_are_reported_until_merged_or_due_again() {
        roster_sdk::native::set_memo(Default::default());
        let g = Guests::new(GuestMerge::Manual, 24);
        g.learn("Old@X.nl");
        g.learn("merged@x.nl");
        let found = g.accounts(|a| a == "merged@x.nl");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].email, "old@x.nl");
        assert_eq!(found[0].kind, AccountKind::Guest);
        assert!(found[0].attribute(REMEDY).unwrap().contains("Synctool"));
        assert!(!roster_sdk::native::memo().contains_key("guest/merged@x.nl"));
        let due = Guests::new(GuestMerge::Manual, 0);
        assert!(
            due.accounts(|_| false).is_empty(),
            "due again: tried once more"
        );
    }
}
