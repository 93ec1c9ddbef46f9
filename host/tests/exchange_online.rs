//! The `exchange-online` component through the real `roster` binary against
//! the Microsoft 365 simulator (real HTTP on loopback), seeded from the
//! fixtures: what the tenant reads into, paging, delta rounds, an expired
//! delta link, throttling and other faults, `test-connection` errors, and
//! the host allow-list.

mod common;

use common::{HEADER, Run, Work};
use roster_sim::m365::{self, App, Shared, Tenant};
use roster_sim::{Faults, Running, Throttle};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;

const SECRET: &str = "sim-client-secret";

fn fixture_tenant() -> Tenant {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim/seeds/m365/tenant.json");
    m365::seed::load(&manifest).expect("seed tenant")
}

fn fixture(rel: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sim/fixtures")
        .join(rel);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

struct M365 {
    work: Work,
    sim: Shared,
    _running: Running,
}

impl M365 {
    /// The tenant on a fresh simulator; the pipeline reads it into a csv target.
    fn start(tenant: Tenant, exo_config: &str) -> M365 {
        let (running, sim) = m365::start(tenant, Faults::default(), 0).unwrap();
        let url = running.url();
        let work = Work::new();
        work.write("secret", SECRET);
        work.write("dst/accounts.csv", HEADER);
        let tables = format!(
            r#"[connectors.exo]
plugin = "exchange-online"
allowed_hosts = ["{url}"]

[connectors.exo.config]
tenant_id = "contoso.com"
client_id = "roster-sim-client"
client_secret = "${{file:secret}}"
login_url = "{url}"
graph_url = "{url}"
admin_url = "{url}"
{exo_config}"#
        );
        work.write("pipeline.toml", &common::into_csv("m365", "exo", &tables));
        M365 {
            work,
            sim,
            _running: running,
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.work.run(args)
    }

    fn read(&self) -> Vec<Value> {
        let doc = self.run(&["read", "pipeline.toml", "--json"]).ok().json();
        doc["accounts"].as_array().unwrap().clone()
    }

    fn plan(&self) -> Value {
        self.run(&["plan", "pipeline.toml", "--json"]).ok().json()
    }

    fn stats(&self) -> roster_sim::faults::Stats {
        self.sim.faults.stats()
    }

    fn change(&self, f: impl FnOnce(&mut Tenant)) {
        f(&mut self.sim.tenant.write().unwrap());
    }
}

fn by_email<'a>(accounts: &'a [Value], email: &str) -> &'a Value {
    accounts
        .iter()
        .find(|a| a["email"].as_str().unwrap().eq_ignore_ascii_case(email))
        .unwrap_or_else(|| panic!("no account {email}"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap()).collect())
        .unwrap_or_default()
}

/// Every account as one comparable line, sorted.
fn fingerprint(accounts: &[Value]) -> Vec<String> {
    let mut lines: Vec<String> = accounts.iter().map(|a| a.to_string()).collect();
    lines.sort();
    lines
}

const Z: &str = "@zivvertest.onmicrosoft.com";

#[test]
fn the_fixture_tenant_reads_into_the_expected_accounts() {
    let t = M365::start(fixture_tenant(), "");
    let run = t.run(&["read", "pipeline.toml", "--json"]).ok();
    let accounts = run.json()["accounts"].as_array().unwrap().clone();

    // 37 mailboxes (the Exchange export), 5 Graph docs users with mail, 1 guest;
    // `admin@contoso.com` has no address and the deleted user is gone.
    assert_eq!(accounts.len(), 43, "{accounts:#?}");
    let ids: BTreeSet<&str> = accounts.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), accounts.len(), "no account twice");
    assert!(!ids.contains("4562bcc8-c436-4f95-b7c0-4f8ce89dca5e"));
    assert!(!ids.contains("86462606-fde0-4fc4-9e0c-a20eb73e54c6"));

    let bruno = by_email(&accounts, &format!("bruno.broccoli{Z}"));
    assert_eq!(bruno["kind"], "person");
    assert_eq!(
        bruno["external_key"],
        "fbf95ad5-8bf5-4d47-9999-a464fdcd3269"
    );
    assert_eq!(
        strings(&bruno["aliases"]),
        [format!("bruno.alias2{Z}"), format!("bruno.alias{Z}")]
    );
    assert_eq!(
        strings(&bruno["delegates"]),
        [format!("agile.bottom{Z}"), format!("craze.dash{Z}")]
    );
    assert_eq!(
        bruno["org_unit"],
        "CN=Bruno Broccoli,OU=Kitchen,OU=Users,DC=zivvertest,DC=local"
    );
    assert_eq!(bruno["attributes"]["department"], "Kitchen");
    assert_eq!(bruno["attributes"]["mailboxType"], "UserMailbox");

    // A shared mailbox is functional and in use, though its account is disabled;
    // FullAccess through the shared mailbox `teampotato` is followed.
    let tangerine = by_email(&accounts, &format!("teamtangerine{Z}"));
    assert_eq!(tangerine["kind"], "functional");
    assert_eq!(tangerine["enabled"], true);
    assert_eq!(strings(&tangerine["aliases"]), [format!("team1{Z}")]);
    assert_eq!(
        strings(&tangerine["delegates"]),
        [
            "bruno.broccoli",
            "fancy.flip",
            "memo.delight",
            "rain.drift",
            "salted.pip"
        ]
        .map(|l| format!("{l}{Z}"))
    );
    // Through `hoofdwachtstanna` (shared); `M_BIG` is no mailbox of the tenant.
    let koraal = by_email(&accounts, &format!("big.koraal{Z}"));
    assert_eq!(
        strings(&koraal["delegates"]),
        ["agile.bottom", "bruno.broccoli", "salted.pip"].map(|l| format!("{l}{Z}"))
    );
    assert!(
        run.stderr().contains(&format!(
            "FullAccess holder M_BIG{Z} is no mailbox of the tenant"
        )),
        "{}",
        run.stderr()
    );
    // Holders without an address (groups, NT AUTHORITY\SELF) are not delegates.
    let e2e = by_email(&accounts, "e2e-test-2@pablees.org");
    assert_eq!(strings(&e2e["delegates"]), ["test-e2e@pablees.org"]);

    // Proxy addresses: SMTP: is the primary wherever it stands; SIP:, X500:, SPO: are ignored.
    let cameron = by_email(&accounts, "cameron.white@contoso.com");
    assert_eq!(cameron["email"], "Cameron.White@contoso.com");
    assert_eq!(strings(&cameron["aliases"]), ["cw@contoso.com"]);
    assert_eq!(
        cameron["org_unit"],
        "CN=Cameron White,OU=Sales,OU=Users,DC=contoso,DC=com"
    );
    let delia = by_email(&accounts, "delia.dennis@contoso.com");
    assert_eq!(strings(&delia["aliases"]), ["d.dennis@contoso.com"]);

    // Guests, disabled accounts, and a user with mail but no mailbox.
    assert_eq!(
        by_email(&accounts, "ext.partner@fabrikam.example")["kind"],
        "guest"
    );
    assert_eq!(
        by_email(&accounts, "patti.fernandez@contoso.com")["enabled"],
        false
    );
    let adams = by_email(&accounts, "adams@contoso.com");
    assert_eq!(adams["kind"], "person");
    assert!(adams["attributes"].get("mailboxType").is_none());
}

#[test]
fn paging_across_many_pages_reads_every_account_once() {
    let t = M365::start(fixture_tenant(), "page_size = \"7\"");
    let paged = t.read();
    assert_eq!(
        t.stats().routes["/v1.0/users"],
        7,
        "44 users (one without mail), 7 per page"
    );
    let whole = M365::start(fixture_tenant(), "").read();
    assert_eq!(fingerprint(&paged), fingerprint(&whole));

    // A generated tenant over three pages of 999 (and three pages of mailboxes).
    let spec = m365::generate::Spec {
        domain: "contoso.com".into(),
        ..m365::generate::Spec::new(2500, 7)
    };
    let t = M365::start(m365::generate::tenant(&spec), "");
    let accounts = t.read();
    let stats = t.stats();
    assert_eq!(stats.routes["/v1.0/users"], 3);
    assert_eq!(stats.routes["/adminapi/beta/*/Mailbox"], 3);
    let ids: BTreeSet<&str> = accounts.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2500 + 125, "mailboxes and guests, each once");
}

#[test]
fn a_delta_round_reads_only_what_changed() {
    let t = M365::start(fixture_tenant(), "");
    let first = t.plan();
    assert_eq!(first["summary"]["source_read"]["mode"], "full");
    t.run(&["apply", "pipeline.toml", "--yes"]).ok();

    let unchanged = t.plan();
    assert_eq!(
        unchanged["summary"]["source_read"],
        json!({"mode": "incremental", "changed": 0, "removed": 0})
    );
    assert_eq!(unchanged["changes"], json!([]));

    // The documented delta sample: user 25dcffff (Lidia) renamed, one soft-deleted;
    // and craze.dash deleted.
    t.change(|tenant| {
        tenant
            .apply_graph_changes(&fixture("graph/graph-users-delta-changes.json"))
            .unwrap();
        tenant
            .apply_graph_changes(&json!({"value": [
                {"id": "f0d712e7-71c3-44c4-8d6c-04c5464eadc0", "@removed": {"reason": "deleted"}},
                {"id": "6b74ee1f-7b57-4204-a0a6-31590f26615a", "displayName": "Team Tangerine (NL)"}
            ]}))
            .unwrap();
    });
    t.sim.faults.reset_stats();
    let plan = t.plan();
    let stats = t.stats();
    assert_eq!(
        plan["summary"]["source_read"],
        json!({"mode": "incremental", "changed": 2, "removed": 2})
    );
    assert_eq!(plan["summary"]["source_accounts"], 42);
    assert!(!stats.routes.contains_key("/v1.0/users"), "{stats:?}");
    assert!(
        !stats.routes.contains_key("/adminapi/beta/*/Mailbox"),
        "no mailbox listing in a delta round: {stats:?}"
    );
    assert_eq!(stats.routes["/v1.0/users/delta"], 1);
    let updates: Vec<&Value> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "update")
        .collect();
    assert_eq!(updates.len(), 2, "{plan:#}");
    let lidia = updates
        .iter()
        .find(|u| u["email"] == "lidia.holloway@contoso.com")
        .unwrap();
    assert_eq!(
        lidia["change"]["op"]["account"]["display_name"],
        "MOD Administrator"
    );

    // The changed shared mailbox is looked up on its own, and its delegates are
    // walked through `teampotato` again: only the name differs.
    let tangerine = updates
        .iter()
        .find(|u| u["email"] == format!("teamtangerine{Z}"))
        .unwrap();
    let fields: Vec<&str> = tangerine["diff"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["display-name"], "{tangerine:#}");
    assert_eq!(
        stats.routes["/adminapi/beta/*/Mailbox('*')/MailboxPermission"], 2,
        "teamtangerine's and teampotato's permissions only"
    );
    assert_eq!(
        plan["changes"].as_array().unwrap().len(),
        2,
        "and nothing else: {plan:#}"
    );
}

#[test]
fn an_expired_delta_link_falls_back_to_a_full_read() {
    let t = M365::start(fixture_tenant(), "");
    t.run(&["apply", "pipeline.toml", "--yes"]).ok();
    t.change(|tenant| {
        tenant.expire_delta_tokens();
        tenant
            .apply_graph_changes(&json!({"value": [
                {"id": "ffff7b1a-13b6-477b-8c0c-380905cd99f7", "displayName": "Cameron W."}
            ]}))
            .unwrap();
    });
    t.sim.faults.reset_stats();
    let run = t.run(&["plan", "pipeline.toml", "--json", "-v"]).ok();
    let plan = run.json();
    assert_eq!(plan["summary"]["source_read"]["mode"], "full");
    assert_eq!(plan["summary"]["source_accounts"], 43);
    assert!(run.stderr().contains("410"), "{}", run.stderr());
    let changes = plan["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{plan:#}");
    assert_eq!(
        changes[0]["change"]["op"]["account"]["display_name"],
        "Cameron W."
    );
    assert_eq!(t.stats().routes["/v1.0/users"], 1, "one full read");

    // And the next round is incremental again.
    let again = t.plan();
    assert_eq!(again["summary"]["source_read"]["mode"], "incremental");
}

#[test]
fn throttling_is_waited_out_and_nothing_is_lost_or_doubled() {
    let baseline = M365::start(fixture_tenant(), "").read();

    let t = M365::start(fixture_tenant(), "page_size = \"10\"");
    t.sim.faults.set(Faults {
        throttle: Some(Throttle {
            budget: 25,
            window_ms: 1000,
            retry_after: true,
            headers: false,
        }),
        ..Faults::default()
    });
    let throttled = t.read();
    assert!(t.stats().throttled > 0, "the budget was hit");
    assert_eq!(fingerprint(&throttled), fingerprint(&baseline));

    // Without Retry-After the host backs off with jitter.
    t.sim.faults.reset_stats();
    t.sim.faults.set(Faults {
        throttle: Some(Throttle {
            budget: 40,
            window_ms: 500,
            retry_after: false,
            headers: false,
        }),
        ..Faults::default()
    });
    let backed_off = t.read();
    assert!(t.stats().throttled > 0);
    assert_eq!(fingerprint(&backed_off), fingerprint(&baseline));
}

#[test]
fn server_errors_dropped_connections_and_malformed_bodies_are_retried() {
    let baseline = M365::start(fixture_tenant(), "").read();
    let t = M365::start(fixture_tenant(), "page_size = \"10\"");
    t.sim.faults.set(Faults {
        fail_every: Some(7),
        drop_every: Some(11),
        malformed_every: Some(13),
        ..Faults::default()
    });
    let accounts = t.read();
    let stats = t.stats();
    assert!(
        stats.failed > 0 && stats.dropped > 0 && stats.malformed > 0,
        "{stats:?}"
    );
    assert_eq!(fingerprint(&accounts), fingerprint(&baseline));
}

#[test]
fn test_connection_says_what_to_fix() {
    let mut tenant = fixture_tenant();
    tenant.apps.push(App {
        client_id: "no-groups".into(),
        client_secret: SECRET.into(),
        roles: vec!["User.Read.All".into(), "Exchange.ManageAsApp".into()],
    });
    tenant.apps.push(App {
        client_id: "no-exchange".into(),
        client_secret: SECRET.into(),
        roles: vec!["User.Read.All".into(), "GroupMember.Read.All".into()],
    });
    let t = M365::start(tenant, "");
    let ok = t
        .run(&[
            "test-connection",
            "pipeline.toml",
            "--connector",
            "exo",
            "--account",
            &format!("TeamPotato{Z}"),
            "--json",
        ])
        .ok()
        .json();
    let report = &ok["connectors"][0];
    assert_eq!(report["checks"].as_array().unwrap().len(), 5, "{report:#}");
    assert_eq!(report["account"]["kind"], "functional");
    assert_eq!(strings(&report["account"]["delegates"]).len(), 4);

    // Refused credentials, an unknown tenant and missing grants: the
    // service refused the sign-in or the call (7), with a hint.
    let fails = |pipeline: String, code: i32, expected: &[&str]| {
        t.work.write("variant.toml", &pipeline);
        let run = t.run(&["test-connection", "variant.toml", "--connector", "exo"]);
        assert_eq!(run.code(), code, "{}", run.stderr());
        for e in expected {
            assert!(run.stderr().contains(e), "`{e}` not in:\n{}", run.stderr());
        }
        assert!(!run.stderr().contains(SECRET) && !run.stdout().contains(SECRET));
    };
    let base = t.work.read("pipeline.toml");
    t.work.write("wrong", "not-the-secret");
    fails(
        base.replace("${file:secret}", "${file:wrong}"),
        7,
        &[
            "exo",
            "hint: check the credentials",
            "client_secret is wrong",
            "AADSTS7000215",
        ],
    );
    fails(
        base.replace(
            "tenant_id = \"contoso.com\"",
            "tenant_id = \"fabrikam.example\"",
        ),
        7,
        &["tenant_id `fabrikam.example`", "AADSTS90002"],
    );
    fails(
        base.replace("roster-sim-client", "no-groups"),
        7,
        &["403", "GroupMember.Read.All"],
    );
    fails(
        base.replace("roster-sim-client", "no-exchange"),
        7,
        &["Exchange.ManageAsApp", "Exchange Administrator"],
    );
    let missing = t.run(&[
        "test-connection",
        "pipeline.toml",
        "--account",
        "nobody@contoso.com",
    ]);
    assert_eq!(missing.code(), 2);
    assert!(
        missing.stderr().contains("no mailbox nobody@contoso.com"),
        "{}",
        missing.stderr()
    );
}

#[test]
fn the_connector_reaches_only_the_hosts_it_is_granted() {
    let t = M365::start(fixture_tenant(), "");
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = elsewhere.local_addr().unwrap().port();
    let pipeline = t.work.read("pipeline.toml");
    let granted = t.sim.faults.stats().requests;
    let line = pipeline
        .lines()
        .find(|l| l.starts_with("graph_url"))
        .unwrap()
        .to_string();
    t.work.write(
        "pipeline.toml",
        &pipeline.replace(&line, &format!("graph_url = \"http://127.0.0.1:{port}\"")),
    );
    let run = t.run(&["read", "pipeline.toml"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr().contains("exo") && run.stderr().contains(&format!("127.0.0.1:{port}")),
        "{}",
        run.stderr()
    );
    elsewhere.set_nonblocking(true).unwrap();
    assert!(
        elsewhere.accept().is_err(),
        "nothing connected to the ungranted host"
    );
    // Only the token request reached the simulator.
    assert_eq!(t.sim.faults.stats().requests - granted, 1);
}

#[test]
fn holders_named_by_upn_are_found_in_full_and_delta_reads() {
    // rain.drift signs in as rdrift@…: Exchange names the FullAccess holder
    // by that UPN, not by the mailbox's address. craze.dash holds FullAccess
    // on teamtangerine too, but denied in its permission item.
    let mut tenant = fixture_tenant();
    tenant
        .apply_graph_changes(&json!({"value": [
            {"id": "f04ec7d0-3993-4b5e-9511-2a53b3e43215", "userPrincipalName": format!("rdrift{Z}")}
        ]}))
        .unwrap();
    tenant.add_permission(
        &format!("teamtangerine{Z}"),
        json!({"User": format!("craze.dash{Z}"), "PermissionList": [
            {"AccessRights": ["FullAccess"], "IsInherited": false, "Deny": true, "InheritanceType": "All"}
        ]}),
    );
    let t = M365::start(tenant, "");
    let accounts = t.read();
    let tangerine = by_email(&accounts, &format!("teamtangerine{Z}"));
    let delegates = strings(&tangerine["delegates"]);
    assert!(
        delegates.contains(&format!("rain.drift{Z}").as_str()),
        "{delegates:?}"
    );
    assert!(
        !delegates.contains(&format!("craze.dash{Z}").as_str()),
        "a denied FullAccess is no delegate: {delegates:?}"
    );
    let full = delegates.len();

    t.run(&["apply", "pipeline.toml", "--yes"]).ok();
    // A delta round that must look the UPN-named holder up on its own settles.
    t.change(|tenant| {
        tenant
            .apply_graph_changes(&json!({"value": [
                {"id": "6b74ee1f-7b57-4204-a0a6-31590f26615a", "displayName": "Team Tangerine (NL)"}
            ]}))
            .unwrap();
    });
    let plan = t.plan();
    assert_eq!(
        plan["summary"]["source_read"]["mode"], "incremental",
        "{plan:#}"
    );
    let changes = plan["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{plan:#}");
    let diff = changes[0]["diff"].as_array().unwrap();
    assert_eq!(diff.len(), 1, "only the name: {plan:#}");
    assert_eq!(
        strings(&changes[0]["change"]["op"]["account"]["delegates"]).len(),
        full
    );
}

#[test]
fn group_members_are_users_only() {
    // The seed's group 02bd9fd6 has three users and a nested group as members.
    let t = M365::start(fixture_tenant(), "");
    let doc = t
        .run(&["read", "pipeline.toml", "--groups", "--json"])
        .ok()
        .json();
    let group = doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == "02bd9fd6-8f93-4758-87c3-1fb73740a315")
        .unwrap_or_else(|| panic!("{doc:#}"));
    let mut members = strings(&group["member_ids"]);
    members.sort();
    assert_eq!(
        members,
        [
            "1b6e3cc5-d234-4d53-9fee-70c6d7c9f9ab",
            "f0d712e7-71c3-44c4-8d6c-04c5464eadc0",
            "fbf95ad5-8bf5-4d47-9999-a464fdcd3269"
        ]
    );
    assert!(
        t.stats()
            .routes
            .contains_key("/v1.0/groups/*/members/microsoft.graph.user"),
        "{:?}",
        t.stats()
    );
}
