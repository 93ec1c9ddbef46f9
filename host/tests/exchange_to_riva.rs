//! Exchange Online (the Microsoft 365 simulator) into a Riva sync policy,
//! checked against Dynamics 365 users (the Dynamics simulator), both seeded
//! from `examples/exchange-to-riva/`: only mailboxes with an identical,
//! enabled CRM user and a free licence are added; the rest are errors on
//! their records with the reason; the import file is replaced whole, never
//! seen half-written; a mailbox that is gone leaves the policy.

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
        let tenant = m365::seed::load(&example("exchange-to-zivver/m365/tenant.json")).unwrap();
        let org = dynamics::seed::load(&example("exchange-to-riva/dynamics/org.json")).unwrap();
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
    let n = plan["notes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["account"] == account && n["level"] == "error")
        .unwrap_or_else(|| panic!("no error for {account}: {plan:#}"));
    (
        n["kind"].as_str().unwrap().into(),
        n["message"].as_str().unwrap().into(),
    )
}

#[test]
fn only_mailboxes_with_an_identical_enabled_crm_user_and_a_licence_join_the_policy() {
    let s = Scenario::start();
    let plan = s.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    let updates: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        updates,
        [format!("bruno.broccoli{Z}"), format!("craze.dash{Z}")],
        "{plan:#}"
    );
    let (kind, msg) = error_of(&plan, &format!("fancy.flip{Z}"));
    assert_eq!(kind, "not-found");
    assert!(
        msg.contains("no riva account has the primary address"),
        "{msg}"
    );
    let (kind, msg) = error_of(&plan, &format!("rain.drift{Z}"));
    assert_eq!(kind, "invalid");
    assert!(msg.contains("disabled in Dynamics 365"), "{msg}");
    assert_eq!(error_of(&plan, &format!("deejay.foxy{Z}")).0, "licence");
    assert_eq!(error_of(&plan, &format!("salted.pip{Z}")).0, "licence");
    let shortfall: Vec<&str> = plan["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["account"].is_null())
        .map(|n| n["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        shortfall,
        ["2 more licence seats are needed: 2 were free, 4 accounts need one"]
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
        .ok()
        .json();
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.join().unwrap();
    assert_eq!(applied["report"]["applied"], 2, "{applied:#}");
    let after = s.work.read(FILE);
    for text in &seen {
        assert!(
            text == &before || text == &after,
            "a half-written policy file was visible:\n{text}"
        );
    }
    assert_eq!(
        s.policy(),
        [
            format!("bruno.broccoli{Z}"),
            format!("craze.dash{Z}"),
            format!("memo.delight{Z}")
        ]
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

    let again = s.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    assert!(again["changes"].as_array().unwrap().is_empty(), "{again:#}");

    // A mailbox that is gone leaves the policy, and frees its licence.
    s.m365.tenant.write().unwrap().remove_user(BRUNO, "deleted");
    let plan = s.run(&["plan", "pipeline.toml", "--json"]).ok().json();
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
    s.run(&["apply", "pipeline.toml", "--yes"]).ok();
    assert_eq!(
        s.policy(),
        [format!("craze.dash{Z}"), format!("memo.delight{Z}")]
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
}
