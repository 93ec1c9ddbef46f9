//! A Graph user (and its mailbox, when it has one) as a Roster account:
//! primary address from `SMTP:`, aliases from `smtp:`, other prefixes
//! ignored; kind from `userType` and the mailbox type; enabled from both.

use crate::directory::{Mailbox, MailboxKind};
use crate::model::GraphUser;
use roster_sdk::{Account, AccountKind, Attribute};
use std::collections::HashSet;

/// Primary address and aliases from proxy addresses (`SMTP:` primary,
/// `smtp:` aliases; `X500:`, `SIP:`, `SPO:` … are not mail addresses).
/// Bare entries (as some Exchange exports show) count as aliases.
pub fn addresses(proxies: &[String]) -> (Option<String>, Vec<String>) {
    let mut primary = None;
    let mut aliases = Vec::new();
    for p in proxies {
        match p.split_once(':') {
            Some(("SMTP", a)) => primary = Some(a.to_string()),
            Some((prefix, a)) if prefix.eq_ignore_ascii_case("smtp") => aliases.push(a.to_string()),
            Some(_) => {}
            None if p.contains('@') => aliases.push(p.clone()),
            None => {}
        }
    }
    (primary, aliases)
}

/// Aliases without the primary and without repeats, compared case-insensitively.
fn distinct(primary: &str, aliases: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::from([primary.to_lowercase()]);
    aliases
        .into_iter()
        .filter(|a| seen.insert(a.to_lowercase()))
        .collect()
}

fn attr(key: &str, value: &str) -> Attribute {
    Attribute {
        key: key.into(),
        value: value.into(),
    }
}

/// The account for `user`; none when it has no mail address at all.
pub fn account(
    user: GraphUser,
    mailbox: Option<&Mailbox>,
    delegates: Vec<String>,
) -> Option<Account> {
    let proxies = user.proxy_addresses.unwrap_or_default();
    let (mut primary, mut aliases) = addresses(&proxies);
    if proxies.is_empty()
        && let Some(m) = mailbox
    {
        aliases = m.addresses.clone();
        primary = Some(m.primary.clone());
    }
    let email = primary.or(user.mail)?;
    let aliases = distinct(&email, aliases);
    let kind = match (user.user_type.as_deref(), mailbox.map(|m| m.kind)) {
        (Some(t), _) if t.eq_ignore_ascii_case("guest") => AccountKind::Guest,
        (_, Some(MailboxKind::Shared | MailboxKind::Resource)) => AccountKind::Functional,
        _ => AccountKind::Person,
    };
    let enabled = match kind {
        // A shared mailbox's sign-in is disabled by design; the mailbox is in use.
        AccountKind::Functional => true,
        _ => user.account_enabled.unwrap_or(true) && !mailbox.is_some_and(|m| m.disabled),
    };
    let mut attributes = Vec::new();
    if let Some(d) = user.department.as_deref().filter(|d| !d.is_empty()) {
        attributes.push(attr("department", d));
    }
    if let Some(upn) = &user.user_principal_name {
        attributes.push(attr("userPrincipalName", upn));
    }
    if let Some(m) = mailbox {
        attributes.push(attr("mailboxType", &m.type_name));
    }
    Some(Account {
        id: user.id.clone(),
        kind,
        email,
        aliases,
        display_name: user.display_name,
        given_name: user.given_name,
        family_name: user.surname,
        enabled,
        org_unit: user
            .on_premises_distinguished_name
            .filter(|d| !d.is_empty()),
        external_key: Some(user.id),
        delegates,
        groups: vec![],
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_prefixes_decide_primary_and_aliases() {
        let (p, a) = addresses(&[
            "smtp:b@x.example".into(),
            "SMTP:A@x.example".into(),
            "SIP:a@x.example".into(),
            "X500:/o=Exchange/cn=a".into(),
            "SPO:SPO_1".into(),
            "c@x.example".into(),
        ]);
        assert_eq!(p.as_deref(), Some("A@x.example"));
        assert_eq!(a, ["b@x.example", "c@x.example"]);
    }

    #[test]
    fn aliases_repeat_nothing_and_not_the_primary() {
        assert_eq!(
            distinct("A@x", vec!["a@x".into(), "b@x".into(), "B@x".into()]),
            ["b@x"]
        );
    }
}
