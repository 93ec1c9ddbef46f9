//! A Zivver organisation to go with a generated Microsoft 365 tenant, for
//! benchmarks: a share of the tenant's user mailboxes already in Zivver and
//! in sync (same address, aliases, delegates and name), a share of its
//! shared mailboxes as functional accounts, and guests holding some of the
//! other mailboxes' aliases. Deterministic from the seed.

use super::org::{GROUP_EXT, Org, USER_EXT};
use crate::m365::Tenant;
use serde_json::{Value, json};

/// `in_sync` (0.0–1.0) of the tenant's mailboxes exist in Zivver already.
pub fn from_tenant(tenant: &Tenant, in_sync: f64, seed: u64, api_key: &str) -> Org {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x5a17);
    let domains: Vec<&str> = tenant.domains.iter().map(String::as_str).collect();
    let mut org = Org::new(api_key, &domains);
    let claimed = |a: &str| {
        domains.iter().any(|d| {
            a.to_lowercase()
                .ends_with(&format!("@{}", d.to_lowercase()))
        })
    };
    let mut shared = Vec::new();
    for m in tenant.mailboxes.values() {
        let primary = m["PrimarySmtpAddress"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let aliases: Vec<String> = m["EmailAddresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|a| a.strip_prefix("smtp:"))
            .filter(|a| claimed(a))
            .map(str::to_string)
            .collect();
        let is_shared = m["RecipientTypeDetails"] == "SharedMailbox";
        if rng.f64() >= in_sync {
            // Not in Zivver yet: now and then one of its aliases received mail as a guest.
            if let Some(a) = aliases.first()
                && rng.u8(..100) < 5
            {
                org.receive_mail(a);
            }
            continue;
        }
        if is_shared {
            shared.push((primary, aliases, m["DisplayName"].clone()));
            continue;
        }
        let id = uuid(&mut rng);
        org.seed_user(json!({
            "id": id,
            "userName": primary,
            "name": {"formatted": m["DisplayName"]},
            "active": !m["AccountDisabled"].as_bool().unwrap_or(false),
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", USER_EXT],
            USER_EXT: {"aliases": aliases, "delegates": []},
        }));
    }
    for (primary, aliases, name) in shared {
        let id = uuid(&mut rng);
        org.seed_group(json!({
            "id": id,
            "externalId": primary,
            "displayName": name,
            "members": [],
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", GROUP_EXT],
            GROUP_EXT: {"aliases": aliases},
        }));
    }
    org
}

fn uuid(rng: &mut fastrand::Rng) -> String {
    let h = format!("{:032x}", rng.u128(..));
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}
