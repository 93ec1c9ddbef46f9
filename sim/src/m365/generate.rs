//! Generated tenants of any size, deterministic from a seed, for
//! benchmarks and scale tests: user mailboxes with aliases, OUs and
//! departments; shared mailboxes with FullAccess holders (some of them
//! other shared mailboxes, `NT AUTHORITY\SELF`, or outside addresses);
//! disabled accounts; guests; groups with members.

use super::tenant::Tenant;
use serde_json::{Map, Value, json};

#[derive(Clone, Debug)]
pub struct Spec {
    /// Mailboxes (user and shared); guests come on top (about 5 %).
    pub mailboxes: usize,
    pub seed: u64,
    pub domain: String,
}

impl Spec {
    pub fn new(mailboxes: usize, seed: u64) -> Spec {
        Spec {
            mailboxes,
            seed,
            domain: "bench.example".into(),
        }
    }
}

const GIVEN: &[&str] = &[
    "Anna", "Bram", "Chris", "Daan", "Eva", "Fleur", "Gijs", "Hanna", "Isa", "Jan", "Kim", "Lars",
    "Mila", "Noah", "Olga", "Piet", "Quinn", "Rosa", "Sem", "Tess",
];
const FAMILY: &[&str] = &[
    "de Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "Mulder", "Bos", "Vos", "Peters",
    "Hendriks", "Dekker", "Brouwer", "Dijkstra", "Kok",
];
const DEPARTMENTS: &[&str] = &[
    "Sales",
    "Finance",
    "Legal",
    "Support",
    "Research",
    "Operations",
];
const SITES: &[&str] = &["Amsterdam", "Utrecht", "Rotterdam", "Remote"];

fn uuid(rng: &mut fastrand::Rng) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        rng.u32(..),
        rng.u16(..),
        rng.u16(..0x1000),
        rng.u16(..0x1000),
        rng.u64(..1 << 48)
    )
}

fn slug(s: &str) -> String {
    s.to_lowercase().replace(' ', "")
}

struct Mailbox {
    id: String,
    primary: String,
    shared: bool,
}

/// A tenant of `spec.mailboxes` mailboxes; the same spec gives the same tenant.
pub fn tenant(spec: &Spec) -> Tenant {
    let mut rng = fastrand::Rng::with_seed(spec.seed);
    let mut t = Tenant::new(&uuid(&mut rng));
    t.domains = vec![spec.domain.clone()];
    let domain = &spec.domain;
    let mut boxes: Vec<Mailbox> = Vec::with_capacity(spec.mailboxes);
    for i in 0..spec.mailboxes {
        let shared = rng.u8(..100) < 10;
        let id = uuid(&mut rng);
        let dept = DEPARTMENTS[rng.usize(..DEPARTMENTS.len())];
        let site = SITES[rng.usize(..SITES.len())];
        let (given, family) = (
            GIVEN[rng.usize(..GIVEN.len())],
            FAMILY[rng.usize(..FAMILY.len())],
        );
        let (primary, display, aliases) = if shared {
            let primary = format!("team{i}@{domain}");
            let aliases = if rng.bool() {
                vec![format!("{}{i}@{domain}", slug(dept))]
            } else {
                vec![]
            };
            (primary, format!("{dept} team {i}"), aliases)
        } else {
            let local = format!("{}.{}{i}", slug(given), slug(family));
            let primary = format!("{local}@{domain}");
            let aliases: Vec<String> = (0..rng.usize(..4))
                .map(|k| match k {
                    0 => format!("{}{}{i}@{domain}", &slug(given)[..1], slug(family)),
                    1 => format!("{local}@mail.{domain}"),
                    _ => format!("{}{i}.{k}@{domain}", slug(given)),
                })
                .collect();
            (primary, format!("{given} {family}"), aliases)
        };
        let disabled = shared || rng.u8(..100) < 3;
        let mut proxies = vec![format!("SMTP:{primary}")];
        proxies.extend(aliases.iter().map(|a| format!("smtp:{a}")));
        if rng.u8(..100) < 30 {
            proxies.push(format!(
                "X500:/o=ExchangeLabs/ou=Exchange/cn=Recipients/cn={id}"
            ));
        }
        let mut user = Map::new();
        user.insert("id".into(), id.clone().into());
        user.insert("userPrincipalName".into(), primary.clone().into());
        user.insert("mail".into(), primary.clone().into());
        user.insert("displayName".into(), display.clone().into());
        user.insert(
            "givenName".into(),
            if shared { Value::Null } else { given.into() },
        );
        user.insert(
            "surname".into(),
            if shared { Value::Null } else { family.into() },
        );
        user.insert("proxyAddresses".into(), json!(proxies));
        user.insert("accountEnabled".into(), Value::Bool(!disabled));
        user.insert("userType".into(), "Member".into());
        user.insert("department".into(), dept.into());
        user.insert(
            "onPremisesDistinguishedName".into(),
            format!("CN={display},OU={dept},OU={site},DC=corp,DC=example").into(),
        );
        let _ = t.upsert_user(user);
        let _ = t.upsert_mailbox(json!({
            "AccountDisabled": disabled,
            "DisplayName": display,
            "EmailAddresses": proxies,
            "ExternalDirectoryObjectId": id,
            "Guid": uuid(&mut rng),
            "PrimarySmtpAddress": primary,
            "RecipientTypeDetails": if shared { "SharedMailbox" } else { "UserMailbox" },
        }));
        boxes.push(Mailbox {
            id,
            primary,
            shared,
        });
    }
    add_permissions(&mut t, &boxes, &mut rng, domain);
    add_guests(&mut t, spec.mailboxes / 20, &mut rng);
    add_groups(&mut t, &boxes, &mut rng);
    t
}

fn full_access(user: &str) -> Value {
    json!({"PermissionList": [{"AccessRights": ["FullAccess"]}], "User": user})
}

fn add_permissions(t: &mut Tenant, boxes: &[Mailbox], rng: &mut fastrand::Rng, domain: &str) {
    let people: Vec<&Mailbox> = boxes.iter().filter(|b| !b.shared).collect();
    let shared: Vec<&Mailbox> = boxes.iter().filter(|b| b.shared).collect();
    for b in boxes {
        let mut entries = vec![json!({
            "PermissionList": [{"AccessRights": ["FullAccess", "ReadPermission"]}],
            "User": "NT AUTHORITY\\SELF",
        })];
        let holders = match (b.shared, people.is_empty()) {
            (_, true) => 0,
            (true, false) => 1 + rng.usize(..4),
            (false, false) => usize::from(rng.u8(..100) < 5),
        };
        for _ in 0..holders {
            entries.push(full_access(&people[rng.usize(..people.len())].primary));
        }
        if b.shared && !shared.is_empty() && rng.u8(..100) < 10 {
            entries.push(full_access(&shared[rng.usize(..shared.len())].primary));
        }
        if b.shared && rng.u8(..100) < 5 {
            entries.push(full_access(&format!(
                "former.employee{}@{domain}",
                rng.u32(..)
            )));
        }
        t.set_permissions(&b.primary, entries);
    }
}

fn add_guests(t: &mut Tenant, count: usize, rng: &mut fastrand::Rng) {
    for g in 0..count {
        let id = uuid(rng);
        let mail = format!("guest{g}@partner{}.example", g % 50);
        let mut user = Map::new();
        user.insert("id".into(), id.into());
        user.insert(
            "userPrincipalName".into(),
            format!("{}#EXT#@{}", mail.replace('@', "_"), t.domains[0]).into(),
        );
        user.insert("mail".into(), mail.clone().into());
        user.insert("displayName".into(), format!("Guest {g}").into());
        user.insert("proxyAddresses".into(), json!([format!("SMTP:{mail}")]));
        user.insert("accountEnabled".into(), Value::Bool(true));
        user.insert("userType".into(), "Guest".into());
        let _ = t.upsert_user(user);
    }
}

fn add_groups(t: &mut Tenant, boxes: &[Mailbox], rng: &mut fastrand::Rng) {
    let people: Vec<&Mailbox> = boxes.iter().filter(|b| !b.shared).collect();
    if people.is_empty() {
        return;
    }
    for g in 0..(boxes.len() / 100).max(1) {
        let id = uuid(rng);
        let members: Vec<Value> = (0..5 + rng.usize(..46))
            .map(|_| {
                let m = people[rng.usize(..people.len())];
                json!({"@odata.type": "#microsoft.graph.user", "id": m.id, "mail": m.primary})
            })
            .collect();
        let group = json!({
            "id": id,
            "displayName": format!("Group {g}"),
            "mail": format!("group{g}@{}", t.domains[0]),
        });
        let _ = t.upsert_group(group, members);
    }
}
