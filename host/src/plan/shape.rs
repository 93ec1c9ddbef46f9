//! What of a source account the target can take: addresses outside the
//! claimed domains (the filter stages' `claimed_domains`) are left out,
//! whole accounts when it is their primary address; delegates that will not
//! be accounts in the target are dropped. Each omission is a warning in the
//! plan, so the admin sees it and a second plan stays empty.

use crate::model::{Account, AccountKind, domain_of};
use std::collections::HashSet;

pub struct Shaped {
    pub accounts: Vec<Account>,
    /// (account, message) for each warning.
    pub warnings: Vec<(String, String)>,
    /// Accounts left out whole: their primary address is not claimed.
    pub unclaimed: Vec<String>,
}

pub struct Rules<'a> {
    /// Lower-cased claimed domains; empty: no such rule.
    pub claimed: HashSet<String>,
    /// The target's accounts, to know which delegates exist there.
    pub target: &'a [Account],
    /// Whether the target stores delegates at all.
    pub delegates: bool,
}

impl Rules<'_> {
    fn claimed(&self, address: &str) -> bool {
        self.claimed.is_empty() || self.claimed.contains(&domain_of(address))
    }
}

pub fn shape(kept: &[&Account], rules: &Rules) -> Shaped {
    let mut warnings = Vec::new();
    let mut accounts = Vec::with_capacity(kept.len());
    let mut unclaimed = Vec::new();
    for a in kept {
        if !rules.claimed(&a.email) {
            unclaimed.push(a.email.clone());
            warnings.push((
                a.email.clone(),
                "is outside the claimed domains; left out".to_string(),
            ));
            continue;
        }
        let mut a = (*a).clone();
        a.aliases.retain(|alias| {
            let keep = rules.claimed(alias);
            if !keep {
                warnings.push((
                    a.email.clone(),
                    format!("alias {alias} is outside the claimed domains; left out"),
                ));
            }
            keep
        });
        accounts.push(a);
    }
    if rules.delegates {
        let known = known_accounts(&accounts, rules.target);
        for a in &mut accounts {
            let email = a.email.clone();
            a.delegates.retain(|d| {
                let why = if !rules.claimed(d) {
                    "is outside the claimed domains"
                } else if !known.contains(&d.to_ascii_lowercase()) {
                    "is no account in the target and will not become one"
                } else {
                    return true;
                };
                warnings.push((email.clone(), format!("delegate {d} {why}; left out")));
                false
            });
        }
    }
    Shaped {
        accounts,
        warnings,
        unclaimed,
    }
}

/// Addresses that will belong to accounts in the target: the in-scope
/// source accounts' that are enabled (disabled ones are not created) and the
/// target's own (guests do not count).
fn known_accounts(in_scope: &[Account], target: &[Account]) -> HashSet<String> {
    in_scope
        .iter()
        .filter(|a| a.kind != AccountKind::Guest && a.enabled)
        .flat_map(|a| std::iter::once(&a.email).chain(&a.aliases))
        .chain(
            target
                .iter()
                .filter(|t| t.kind != AccountKind::Guest)
                .flat_map(|t| std::iter::once(&t.email).chain(&t.aliases)),
        )
        .map(|s| s.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(email: &str, kind: AccountKind, enabled: bool, delegates: &[&str]) -> Account {
        let mut a = Account::new(email, kind, email);
        a.enabled = enabled;
        a.delegates = delegates.iter().map(|d| d.to_string()).collect();
        a
    }

    #[test]
    fn delegates_that_will_not_be_accounts_are_left_out() {
        let team = account(
            "team@x.nl",
            AccountKind::Functional,
            true,
            &["ann@x.nl", "off@x.nl", "old@x.nl", "out@y.nl", "guest@x.nl"],
        );
        let ann = account("ann@x.nl", AccountKind::Person, true, &[]);
        let off = account("off@x.nl", AccountKind::Person, false, &[]);
        let target = [
            account("old@x.nl", AccountKind::Person, true, &[]),
            account("guest@x.nl", AccountKind::Guest, true, &[]),
        ];
        let rules = Rules {
            claimed: HashSet::from(["x.nl".to_string()]),
            target: &target,
            delegates: true,
        };
        let shaped = shape(&[&team, &ann, &off], &rules);
        assert_eq!(shaped.accounts[0].delegates, ["ann@x.nl", "old@x.nl"]);
        assert_eq!(shaped.warnings.len(), 3, "{:?}", shaped.warnings);
    }
}
