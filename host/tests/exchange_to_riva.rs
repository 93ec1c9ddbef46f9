//! Exchange Online (the Microsoft 365 simulator) into a Riva sync policy,
//! checked against Dynamics 365 users (the Dynamics simulator), both seeded
//! from `examples/exchange-to-riva/`, by the whole checklist: Riva's Exchange
//! account holds FullAccess, an identical CRM user that is enabled, licensed,
//! Read-Write and holds the privileges Riva needs, Riva's CRM account may act
//! for it, a free licence; the rest are errors on their records with every
//! reason; the import file is replaced whole, never seen half-written; a
//! mailbox that is gone leaves the policy.

mod common;

use common::{Run, Work, example};
use roster_sim::{Faults, Running, dynamics, m365};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const Z: &str = "@zivvertest.onmicrosoft.com";
const BRUNO: &str = "fbf95ad5-8bf5-4d47-9999-a464fdcd3269";
const FILE: &str = "policy/riva-policy-users.csv";

struct Scenario {
    work: Work,
    m365: m365::Shared,
    _running: (Running, Running),
}

impl Scenario {
    fn start() -> Scenario {
        Scenario::with(|_| {})
    }

    fn with(change: impl FnOnce(&mut dynamics::Org)) -> Scenario {
        let tenant = m365::seed::load(&example("exchange-to-riva/m365/tenant.json")).unwrap();
        let mut org = dynamics::seed::load(&example("exchange-to-riva/dynamics/org.json")).unwrap();
        change(&mut org);
        let (m, m365) = m365::start(tenant, Faults::default(), 0).unwrap();
        let (d, _) = dynamics::start(org, Faults::default(), 0).unwrap();
        let pipeline = std::fs::read_to_string(example("exchange-to-riva/exchange-to-riva.toml"))
            .unwrap()
            .replace("http://127.0.0.1:18401", &m.url())
            .replace("http://127.0.0.1:18405", &d.url());
        let work = Work::new();
        work.write("pipeline.toml", &pipeline);
        work.write(
            FILE,
            &std::fs::read_to_string(example("exchange-to-riva/policy/riva-policy-users.csv"))
                .unwrap(),
        );
        Scenario {
            work,
            m365,
            _running: (m, d),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut c = self.work.roster();
        c.env("EXCHANGE_CLIENT_SECRET", "sim-client-secret")
            .env("CRM_CLIENT_SECRET", "sim-crm-secret");
        Run::from(c.args(args).output().unwrap())
    }

    fn policy(&self) -> Vec<String> {
        self.work
            .read(FILE)
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().to_lowercase())
            .collect()
    }
}

fn error_of(plan: &Value, account: &str) -> (String, String) {
    let all = errors_of(plan, account);
    all.into_iter()
        .next()
        .unwrap_or_else(|| panic!("no error for {account}: {plan:#}"))
}

/// Every error the plan names for `account`, as (kind, message).
fn errors_of(plan: &Value, account: &str) -> Vec<(String, String)> {
    plan["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["account"] == account && n["level"] == "error")
        .map(|n| {
            (
                n["kind"].as_str().unwrap().into(),
                n["message"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn only_mailboxes_with_an_identical_enabled_crm_user_and_a_licence_join_the_policy() {
    let s = Scenario::start();
    let plan = s.run(&["plan", "pipeline.toml", "--json"]).exit(6).json();
    let updates: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["email"].as_str().unwrap())
        .collect();
    assert_eq!(updates, [format!("bruno.broccoli{Z}")], "{plan:#}");
    let (kind, msg) = error_of(&plan, &format!("fancy.flip{Z}"));
    assert_eq!(kind, "not-found");
    assert!(
        msg.contains("no riva account has the primary address"),
        "{msg}"
    );
    let (kind, msg) = error_of(&plan, &format!("rain.drift{Z}"));
    assert_eq!(kind, "invalid");
    assert!(msg.contains("disabled in Dynamics 365"), "{msg}");
    // Riva's Exchange account holds no FullAccess on deejay's mailbox.
    let (kind, msg) = error_of(&plan, &format!("deejay.foxy{Z}"));
    assert_eq!(kind, "unauthorized");
    assert!(
        msg.contains("riva.sync@zivvertest.onmicrosoft.com holds no FullAccess")
            && msg.contains("Add-MailboxPermission -Identity deejay.foxy@"),
        "{msg}"
    );
    // salted's CRM user is Read-only and lacks write privileges: both named.
    let (kind, msg) = error_of(&plan, &format!("salted.pip{Z}"));
    assert_eq!(kind, "invalid");
    assert!(
        msg.contains("access mode is Read")
            && msg.contains("lacks prvWriteContact, prvWriteActivity, prvCreateActivity")
            && msg.contains("security role"),
        "{msg}"
    );
    assert_eq!(error_of(&plan, &format!("craze.dash{Z}")).0, "licence");
    let shortfall: Vec<&str> = plan["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["account"].is_null())
        .map(|n| n["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        shortfall,
        ["1 more licence seats are needed: 1 were free, 2 accounts need one"]
    );

    // While the apply runs, a reader (Riva Manager) only ever sees a whole file.
    let before = s.work.read(FILE);
    let stop = Arc::new(AtomicBool::new(false));
    let path = s.work.path(FILE);
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seen = std::collections::BTreeSet::new();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(text) = std::fs::read_to_string(&path) {
                    seen.insert(text);
                }
            }
            seen
        })
    };
    let applied = s
        .run(&["apply", "pipeline.toml", "--yes", "--json"])
        .exit(6)
        .json();
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.join().unwrap();
    assert_eq!(applied["report"]["applied"], 1, "{applied:#}");
    let after = s.work.read(FILE);
    for text in &seen {
        assert!(
            text == &before || text == &after,
            "a half-written policy file was visible:\n{text}"
        );
    }
    assert_eq!(
        s.policy(),
        [format!("bruno.broccoli{Z}"), format!("memo.delight{Z}")]
    );
    assert!(after.starts_with("EmailAddress,DisplayName,CrmUser\n"));
    let leftovers: Vec<_> = std::fs::read_dir(s.work.path("policy"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "no temporary file is left: {leftovers:?}"
    );

    let again = s.run(&["plan", "pipeline.toml", "--json"]).exit(6).json();
    assert!(again["changes"].as_array().unwrap().is_empty(), "{again:#}");

    // A mailbox that is gone leaves the policy, and frees its licence.
    s.m365.tenant.write().unwrap().remove_user(BRUNO, "deleted");
    let plan = s.run(&["plan", "pipeline.toml", "--json"]).exit(6).json();
    let actions: Vec<(&str, &str)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["action"].as_str().unwrap(), c["email"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [("disable", format!("bruno.broccoli{Z}").as_str())],
        "{plan:#}"
    );
    s.run(&["apply", "pipeline.toml", "--yes"]).exit(6);
    assert_eq!(s.policy(), [format!("memo.delight{Z}")]);
}

#[test]
fn a_crm_connection_account_that_may_not_act_for_others_blocks_everyone() {
    let s = Scenario::with(|org| {
        org.user_roles.insert(
            "5f1c0e2a-0000-4000-8000-000000000009".into(),
            vec!["Salesperson".into()],
        );
    });
    let plan = s.run(&["plan", "pipeline.toml", "--json"]).exit(6).json();
    assert!(plan["changes"].as_array().unwrap().is_empty(), "{plan:#}");
    let (_, msg) = error_of(&plan, &format!("bruno.broccoli{Z}"));
    assert!(
        msg.contains("riva.crm@zivvertest.onmicrosoft.com may not act on behalf of other users")
            && msg.contains("prvActOnBehalfOfAnotherUser")
            && msg.contains("Delegate role"),
        "{msg}"
    );
}

#[test]
fn test_connection_checks_the_directory_the_crm_and_one_user() {
    let s = Scenario::start();
    let ok = s
        .run(&[
            "test-connection",
            "pipeline.toml",
            "--connector",
            "riva",
            "--account",
            &format!("memo.delight{Z}"),
        ])
        .ok();
    assert!(
        ok.stdout().contains("policy file") && ok.stdout().contains("in the policy"),
        "{}",
        ok.stdout()
    );
    let disabled = s.run(&[
        "test-connection",
        "pipeline.toml",
        "--connector",
        "riva",
        "--account",
        &format!("rain.drift{Z}"),
    ]);
    assert_ne!(disabled.code(), 0);
    assert!(
        format!("{}{}", disabled.stdout(), disabled.stderr()).contains("disabled in Dynamics 365")
    );
    let missing = s.run(&[
        "test-connection",
        "pipeline.toml",
        "--connector",
        "riva",
        "--account",
        &format!("fancy.flip{Z}"),
    ]);
    assert_ne!(missing.code(), 0);
    assert!(
        format!("{}{}", missing.stdout(), missing.stderr()).contains("no Dynamics 365 user has")
    );
    let app = s.run(&[
        "test-connection",
        "pipeline.toml",
        "--connector",
        "riva",
        "--account",
        "riva.app@zivvertest.onmicrosoft.com",
    ]);
    assert_ne!(app.code(), 0);
    assert!(
        format!("{}{}", app.stdout(), app.stderr()).contains("an application user"),
        "{}",
        app.stderr()
    );
    // Both sides, as the plan checks them: deejay's mailbox lacks the grant.
    let grant = s.run(&[
        "test-connection",
        "pipeline.toml",
        "--account",
        &format!("deejay.foxy{Z}"),
    ]);
    assert_ne!(grant.code(), 0);
    assert!(
        grant
            .stderr()
            .contains("holds no FullAccess on deejay.foxy@"),
        "{}",
        grant.stderr()
    );
    let fine = s
        .run(&[
            "test-connection",
            "pipeline.toml",
            "--account",
            &format!("bruno.broccoli{Z}"),
        ])
        .ok();
    assert!(
        fine.stdout()
            .contains("riva.sync@zivvertest.onmicrosoft.com holds FullAccess")
            && fine.stdout().contains("may act on behalf of it"),
        "{}",
        fine.stdout()
    );
}
