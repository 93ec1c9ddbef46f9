//! The filter stage: which source accounts are in scope. Each filter stage
//! narrows what the one before it kept.

use crate::model::{Account, AccountKind, Group, domain_of};
use crate::pipeline::FilterStage;
use std::collections::HashSet;

pub struct FilterOutcome<'a> {
    pub kept: Vec<&'a Account>,
    /// Each account a filter stage dropped, with the first rule that did.
    pub dropped: Vec<(&'a Account, Dropped)>,
}

/// Why a filter stage dropped an account: the rule, and what it saw.
#[derive(Debug, PartialEq)]
pub struct Dropped {
    /// The rule's key in the pipeline file (`include_domains`, `kinds`, …).
    pub rule: &'static str,
    /// "filter stage 2: domain y.nl is not in include_domains".
    pub detail: String,
}

pub fn filter<'a>(
    accounts: &'a [Account],
    groups: &[Group],
    stages: &[&FilterStage],
) -> FilterOutcome<'a> {
    let prepared: Vec<Prepared> = stages.iter().map(|s| Prepared::new(s, groups)).collect();
    let mut kept = Vec::with_capacity(accounts.len());
    let mut dropped = Vec::new();
    for a in accounts {
        let first = prepared.iter().enumerate().find_map(|(i, p)| {
            p.drops(a).map(|(rule, why)| Dropped {
                rule,
                detail: format!("filter stage {}: {why}", i + 1),
            })
        });
        match first {
            None => kept.push(a),
            Some(d) => dropped.push((a, d)),
        }
    }
    FilterOutcome { kept, dropped }
}

/// A filter stage with its lists lower-cased and group memberships resolved once.
struct Prepared<'s> {
    stage: &'s FilterStage,
    include_domains: HashSet<String>,
    exclude_domains: HashSet<String>,
    include_ous: Vec<String>,
    exclude_ous: Vec<String>,
    /// Account ids that are direct members of a named group; `None` when the
    /// stage does not filter on groups.
    members: Option<HashSet<String>>,
    group_ids: HashSet<String>,
}

fn lower(items: &[String]) -> Vec<String> {
    items
        .iter()
        .map(|s| s.trim().to_ascii_lowercase())
        .collect()
}

impl<'s> Prepared<'s> {
    fn new(stage: &'s FilterStage, groups: &[Group]) -> Self {
        let wanted: HashSet<String> = lower(&stage.member_of).into_iter().collect();
        let named: Vec<&Group> = groups
            .iter()
            .filter(|g| {
                wanted.contains(&g.name.to_ascii_lowercase())
                    || wanted.contains(&g.id.to_ascii_lowercase())
                    || g.email
                        .as_ref()
                        .is_some_and(|e| wanted.contains(&e.to_ascii_lowercase()))
            })
            .collect();
        let members = (!stage.member_of.is_empty()).then(|| {
            named
                .iter()
                .flat_map(|g| g.member_ids.iter().cloned())
                .collect::<HashSet<_>>()
        });
        let group_ids = named.iter().map(|g| g.id.clone()).collect();
        Prepared {
            stage,
            include_domains: lower(&stage.include_domains).into_iter().collect(),
            exclude_domains: lower(&stage.exclude_domains).into_iter().collect(),
            include_ous: lower(&stage.include_ous),
            exclude_ous: lower(&stage.exclude_ous),
            members,
            group_ids,
        }
    }

    /// The first rule of this stage that drops `a`, with what it saw; `None`
    /// when the stage keeps it. Rules are tried in the order the pipeline
    /// documents them.
    fn drops(&self, a: &Account) -> Option<(&'static str, String)> {
        let s = self.stage;
        if let Some(kinds) = &s.kinds
            && !kinds.contains(&a.kind)
        {
            return Some(("kinds", format!("kind {} is not in kinds", a.kind.as_str())));
        }
        if s.enabled_only && !a.enabled {
            return Some(("enabled_only", "disabled, and enabled_only = true".into()));
        }
        let domain = domain_of(&a.email);
        if !self.include_domains.is_empty() && !self.include_domains.contains(&domain) {
            let why = format!("domain {domain} is not in include_domains");
            return Some(("include_domains", why));
        }
        if self.exclude_domains.contains(&domain) {
            return Some((
                "exclude_domains",
                format!("domain {domain} is in exclude_domains"),
            ));
        }
        if !s.include_addresses.is_empty() && !s.include_addresses.iter().any(|p| glob(p, &a.email))
        {
            let why = "the address matches no pattern in include_addresses".to_string();
            return Some(("include_addresses", why));
        }
        if let Some(p) = s.exclude_addresses.iter().find(|p| glob(p, &a.email)) {
            let why = format!("the address matches `{p}` in exclude_addresses");
            return Some(("exclude_addresses", why));
        }
        let ou = a.org_unit.as_deref().map(str::to_ascii_lowercase);
        let within = |o: &String| ou.as_deref().is_some_and(|u| inside(u, o));
        if !self.include_ous.is_empty() && !self.include_ous.iter().any(within) {
            let why = match &a.org_unit {
                Some(unit) => format!("org unit `{unit}` is inside none of include_ous"),
                None => "it has no org unit, and include_ous is set".to_string(),
            };
            return Some(("include_ous", why));
        }
        if let Some(o) = self.exclude_ous.iter().find(|o| within(o)) {
            let unit = a.org_unit.as_deref().unwrap_or_default();
            let why = format!("org unit `{unit}` is inside `{o}` in exclude_ous");
            return Some(("exclude_ous", why));
        }
        if !self.member_ok(a) {
            let why = "it is a member of none of the groups in member_of".to_string();
            return Some(("member_of", why));
        }
        None
    }

    fn member_ok(&self, a: &Account) -> bool {
        match &self.members {
            None => true,
            Some(members) => {
                members.contains(&a.id) || a.groups.iter().any(|g| self.group_ids.contains(g))
            }
        }
    }
}

/// Is the organizational unit `unit` inside (or equal to) `ou`? Both are
/// lower-case; distinguished names nest to the left (`CN=x,OU=Sales,DC=corp`
/// is inside `OU=Sales,DC=corp`), paths to the right (`/Sales/EU` inside `/Sales`).
fn inside(unit: &str, ou: &str) -> bool {
    let norm = |s: &str| s.split(',').map(str::trim).collect::<Vec<_>>().join(",");
    if ou.contains('=') {
        let (unit, ou) = (norm(unit), norm(ou));
        unit == ou || unit.ends_with(&format!(",{ou}"))
    } else {
        let ou = ou.trim_end_matches('/');
        unit == ou || unit.starts_with(&format!("{ou}/"))
    }
}

/// Case-insensitive glob with `*` (any run) and `?` (one character).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The account kinds the sync stage acts on.
pub fn syncable(kind: AccountKind) -> bool {
    kind != AccountKind::Guest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*@example.com", "Ann@Example.com"));
        assert!(glob("noreply-?@x.nl", "noreply-1@x.nl"));
        assert!(!glob("noreply-?@x.nl", "noreply-12@x.nl"));
        assert!(glob("*", ""));
        assert!(!glob("a*b", "ac"));
    }

    #[test]
    fn units_nest() {
        assert!(inside("cn=ann,ou=sales,dc=corp", "ou=sales,dc=corp"));
        assert!(inside("cn=ann, ou=sales, dc=corp", "ou=sales,dc=corp"));
        assert!(!inside("cn=ann,ou=presales,dc=corp", "ou=sales,dc=corp"));
        assert!(inside("/sales/eu", "/sales"));
        assert!(!inside("/salesforce", "/sales"));
    }
}
