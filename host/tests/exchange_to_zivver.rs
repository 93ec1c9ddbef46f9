//! The first seed scenario through the real binary, the real components and
//! real HTTP: Exchange Online mailboxes into Zivver (both simulated,
//! seeded from `examples/exchange-to-zivver/`), with the final Zivver state
//! checked account by account; vendor errors on their records; throttling;
//! an apply killed part-way.

mod common;

use common::{Run, Work};
use roster_sim::{Faults, Running, Throttle, m365, zivver};
use serde_json::{Value, json};
use std::path::PathBuf;

const Z: &str = "@zivvertest.onmicrosoft.com";
const API_KEY: &str = "zivver-demo-api-key";

fn example(rel: &str) -> PathBuf {
    common::example(&format!("exchange-to-zivver/{rel}"))
}

struct Scenario {
    work: Work,
    m365: m365::Shared,
    zivver: zivver::Shared,
    _running: (Running, Running),
}

impl Scenario {
    /// The example's tenants, changed by `org` first; the example's pipeline, changed by `edit`.
    fn start(org: impl FnOnce(&mut zivver::Org), edit: impl FnOnce(String) -> String) -> Scenario {
        let tenant = m365::seed::load(&example("m365/tenant.json")).unwrap();
        let mut z = zivver::seed::load(&example("zivver/org.json")).unwrap();
        org(&mut z);
        let (m_run, m365) = m365::start(tenant, Faults::default(), 0).unwrap();
        let (z_run, zivver) = zivver::start(z, Faults::default(), 0).unwrap();
        let pipeline = std::fs::read_to_string(example("exchange-to-zivver.toml"))
            .unwrap()
            .replace("http://127.0.0.1:18401", &m_run.url())
            .replace("http://127.0.0.1:18402", &z_run.url());
        let work = Work::new();
        work.write("pipeline.toml", &edit(pipeline));
        Scenario {
            work,
            m365,
            zivver,
            _running: (m_run, z_run),
        }
    }

    fn roster(&self) -> std::process::Command {
        let mut c = self.work.roster();
        c.env("EXCHANGE_CLIENT_SECRET", "sim-client-secret")
            .env("ZIVVER_API_KEY", API_KEY);
        c
    }

    fn run(&self, args: &[&str]) -> Run {
        Run::from(self.roster().args(args).output().unwrap())
    }

    fn state(&self) -> Value {
        self.zivver.org.read().unwrap().dump()
    }
}

fn user<'a>(state: &'a Value, name: &str) -> Option<&'a Value> {
    state["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["userName"].as_str().unwrap().eq_ignore_ascii_case(name))
}

fn group<'a>(state: &'a Value, address: &str) -> &'a Value {
    state["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["externalId"] == address)
        .unwrap_or_else(|| panic!("no functional account {address}"))
}

fn ext<'a>(u: &'a Value, key: &str) -> Vec<&'a str> {
    let mut v: Vec<&str> = u[zivver::org::USER_EXT][key]
        .as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn members(state: &Value, address: &str) -> Vec<String> {
    let mut names: Vec<String> = group(state, address)["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let id = m["value"].as_str().unwrap();
            let u = state["users"]
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["id"] == id)
                .unwrap_or_else(|| panic!("member {id} is no user"));
            u["userName"].as_str().unwrap().to_string()
        })
        .collect();
    names.sort();
    names
}

fn at(locals: &[&str]) -> Vec<String> {
    locals.iter().map(|l| format!("{l}{Z}")).collect()
}

fn count_users(state: &Value, name: &str) -> usize {
    state["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["userName"].as_str().unwrap().eq_ignore_ascii_case(name))
        .count()
}

/// The plan's notes as `account: message`.
fn notes(plan: &Value) -> Vec<String> {
    plan["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            format!(
                "{}: {}",
                n["account"].as_str().unwrap_or(""),
                n["message"].as_str().unwrap()
            )
        })
        .collect()
}

/// The guest addresses Zivver still has.
fn guests(state: &Value) -> Vec<&str> {
    let mut g: Vec<&str> = state["guests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["userName"].as_str().unwrap())
        .collect();
    g.sort();
    g
}

#[test]
fn the_guest_scenario_end_to_end() {
    let s = Scenario::start(|_| {}, |p| p);
    let before = s.state();
    let plan = s.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    let sum = &plan["summary"];
    // Zivver's API shows no guests: nothing is known of them yet.
    assert_eq!(
        (
            sum["creates"].as_u64(),
            sum["updates"].as_u64(),
            sum["merges"].as_u64()
        ),
        (Some(24), Some(3), Some(0)),
        "{sum:#}"
    );
    let notes_1 = notes(&plan);
    assert!(
        notes_1.contains(
            &"test-e2e@pablees.org: is outside the claimed domains; left out".to_string()
        ),
        "{notes_1:#?}"
    );
    assert!(
        notes_1
            .iter()
            .any(|n| n
                .contains("alias test.account@leakfreemail.com is outside the claimed domains"))
    );
    let table = s.run(&["plan", "pipeline.toml"]).ok().stdout();
    assert!(table.contains("24 to create, 3 to update"), "{table}");

    // Apply asks first; without a terminal to ask on, it refuses and touches nothing.
    let unasked = s.run(&["apply", "pipeline.toml"]);
    assert_eq!(unasked.code(), 2);
    assert!(unasked.stderr().contains("--yes"), "{}", unasked.stderr());
    assert!(unasked.stdout().is_empty(), "said before the plan is shown");
    assert_eq!(s.state(), before);

    // The plan as reviewed; meanwhile agile's alias receives Zivver mail and
    // becomes a guest too.
    s.run(&["plan", "pipeline.toml", "--out", "reviewed.json"])
        .ok();
    s.zivver
        .org
        .write()
        .unwrap()
        .receive_mail(&format!("agile{Z}"));
    let apply = s.run(&[
        "apply",
        "pipeline.toml",
        "--plan",
        "reviewed.json",
        "--yes",
        "--json",
    ]);
    let report = apply.ok().json();
    // Every write went through: those that met a guest without that alias,
    // and the admin is told what to do, with Zivver's remedy.
    assert_eq!(report["report"]["failed"], 0, "{report:#}");
    assert_eq!(report["report"]["applied"], 27, "{report:#}");
    let after = s.state();
    assert_eq!(
        guests(&after),
        [
            format!("agile{Z}").as_str(),
            &format!("bruno.alias{Z}"),
            &format!("fancy{Z}"),
            "someone@partner.example",
            &format!("webmaster{Z}"),
        ],
        "Roster merges no guest itself"
    );

    // An existing user, updated with a full PUT: delegates, name, SSO key,
    // the aliases no guest holds; what Roster does not manage (nickName,
    // division) survives.
    let bruno = user(&after, &format!("bruno.broccoli{Z}")).unwrap();
    assert_eq!(bruno["id"], "5d0e1b7a-3c44-4f0e-9b1d-2a6f7c8d9e01");
    assert_eq!(ext(bruno, "aliases"), at(&["bruno.alias2"]));
    assert_eq!(ext(bruno, "delegates"), at(&["agile.bottom", "craze.dash"]));
    assert_eq!(bruno["name"]["formatted"], "Bruno Broccoli");
    assert_eq!(
        bruno[zivver::org::USER_EXT]["SsoAccountKey"],
        "fbf95ad5-8bf5-4d47-9999-a464fdcd3269"
    );
    let agile = user(&after, &format!("agile.bottom{Z}")).unwrap();
    assert_eq!(agile["nickName"], "agile");
    assert_eq!(ext(agile, "aliases"), Vec::<String>::new());

    // New users: created without the guest's alias; aliases outside the
    // claimed domains left out.
    let fancy = user(&after, &format!("fancy.flip{Z}")).unwrap();
    assert_eq!(ext(fancy, "aliases"), Vec::<String>::new());
    assert_eq!(
        fancy[zivver::org::USER_EXT]["SsoAccountKey"],
        "9bac80e9-5a15-4c70-bc2e-4d742c76a15d"
    );
    assert!(user(&after, &format!("stef.mooij{Z}")).is_some());

    // Shared mailboxes: functional accounts whose members are the delegates' user UUIDs.
    assert_eq!(
        members(&after, &format!("teamtangerine{Z}")),
        at(&[
            "bruno.broccoli",
            "fancy.flip",
            "memo.delight",
            "rain.drift",
            "salted.pip"
        ])
    );
    assert_eq!(
        group(&after, &format!("teamtangerine{Z}"))[zivver::org::GROUP_EXT]["aliases"],
        json!([format!("team1{Z}")])
    );
    assert_eq!(
        members(&after, &format!("teampotato{Z}")),
        at(&["bruno.broccoli", "memo.delight", "rain.drift", "salted.pip"])
    );

    // Left out: an excluded OU, a disabled mailbox, an excluded domain, an unclaimed domain.
    for absent in [
        format!("testplugin2{Z}"),
        format!("testgeof{Z}"),
        "cameron.white@contoso.com".into(),
        "test-e2e@pablees.org".into(),
    ] {
        assert!(user(&after, &absent).is_none(), "{absent} was created");
    }
    // The organisation's other accounts are untouched.
    for u in before["users"].as_array().unwrap() {
        let name = u["userName"].as_str().unwrap();
        if name.ends_with("@zivver.com") {
            assert_eq!(user(&after, name), Some(u), "{name} changed");
        }
    }

    // The next plan knows the guests the writes met: nothing to do, and for
    // each withheld alias the remedy.
    let again = s.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    assert_eq!(again["changes"], json!([]), "{again:#}");
    assert_eq!(again["summary"]["source_read"]["mode"], "incremental");
    let withheld: Vec<String> = notes(&again)
        .into_iter()
        .filter(|n| n.contains("is held by a guest account"))
        .collect();
    assert_eq!(withheld.len(), 4, "{withheld:#?}");
    for (account, alias) in [
        ("bruno.broccoli", "bruno.alias"),
        ("fancy.flip", "fancy"),
        ("stef.mooij", "webmaster"),
        ("agile.bottom", "agile"),
    ] {
        let note = withheld
            .iter()
            .find(|n| n.starts_with(&format!("{account}{Z}: alias {alias}{Z}")))
            .unwrap_or_else(|| panic!("no note for {account}: {withheld:#?}"));
        assert!(note.contains("Zivver Synctool"), "{note}");
        assert!(
            note.contains("Merge guest accounts into primary account"),
            "{note}"
        );
    }
    // `status` reads the state only: it needs none of the secrets.
    let status = Run::from(
        s.work
            .roster()
            .args(["status", "pipeline.toml", "--json"])
            .output()
            .unwrap(),
    )
    .ok()
    .json();
    assert_eq!(status["runs"][0]["applied"], 27);
    assert_eq!(status["links"].as_array().unwrap().len(), 27);

    // The admin merges two guests with Zivver's Synctool: the aliases are on
    // the accounts, and the next plan has nothing to do and no more notes for them.
    for (guest, into) in [("bruno.alias", "bruno.broccoli"), ("fancy", "fancy.flip")] {
        s.zivver
            .org
            .write()
            .unwrap()
            .merge_guest(&format!("{guest}{Z}"), &format!("{into}{Z}"))
            .unwrap();
    }
    let merged = s.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    assert_eq!(merged["changes"], json!([]), "{merged:#}");
    let left = notes(&merged)
        .into_iter()
        .filter(|n| n.contains("is held by a guest account"))
        .count();
    assert_eq!(left, 2);

    // A rename in Exchange reaches Zivver as exactly one update, read incrementally.
    s.m365
        .tenant
        .write()
        .unwrap()
        .apply_graph_changes(&json!({"value": [
            {"id": "fbf95ad5-8bf5-4d47-9999-a464fdcd3269", "displayName": "Bruno Broccoli-Groen"}
        ]}))
        .unwrap();
    let renamed = s.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    let changes = renamed["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{renamed:#}");
    assert_eq!(changes[0]["diff"][0]["field"], "display-name");
    assert_eq!(
        renamed["summary"]["source_read"],
        json!({"mode": "incremental", "changed": 1, "removed": 0})
    );
    s.run(&["apply", "pipeline.toml", "--yes"]).ok();
    let bruno = user(&s.state(), &format!("bruno.broccoli{Z}"))
        .unwrap()
        .clone();
    assert_eq!(bruno["name"]["formatted"], "Bruno Broccoli-Groen");
    assert_eq!(ext(&bruno, "aliases"), at(&["bruno.alias2", "bruno.alias"]));
}

#[test]
fn a_guest_alias_is_tried_again_when_due() {
    // With no wait before a refused alias is tried again, every plan proposes
    // it; once the guest is merged, the write takes it.
    let s = Scenario::start(
        |_| {},
        |p| {
            p.replace(
                "guest_recheck_hours = \"24\"\n",
                "guest_recheck_hours = \"0\"\n",
            )
        },
    );
    s.run(&["apply", "pipeline.toml", "--yes"]).ok();
    let again = s.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    assert_eq!(again["summary"]["updates"], 3, "{again:#}");
    // The guest goes away (say it was merged elsewhere): the alias is free,
    // and the next apply writes it.
    assert!(
        s.zivver
            .org
            .write()
            .unwrap()
            .remove_guest(&format!("webmaster{Z}"))
    );
    let report = s
        .run(&["apply", "pipeline.toml", "--yes", "--json"])
        .ok()
        .json();
    assert_eq!(report["report"]["failed"], 0, "{report:#}");
    let stef = user(&s.state(), &format!("stef.mooij{Z}")).unwrap().clone();
    assert_eq!(ext(&stef, "aliases"), at(&["webmaster"]));
}

#[test]
fn vendor_errors_end_up_on_their_records() {
    let s = Scenario::start(
        |org| {
            // Only these divisions exist: agile's stored one does not.
            org.divisions = vec!["/".into(), "tc".into()];
            let mut agile = org.dump()["users"]
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["userName"] == format!("agile.bottom{Z}"))
                .unwrap()
                .clone();
            agile[zivver::org::ENTERPRISE]["division"] = "Kitchen".into();
            org.seed_user(agile);
            // An unlinked account already holds jan-arie's alias.
            org.seed_user(json!({
                "id": "11111111-2222-4333-8444-555555555555",
                "userName": format!("old.jan{Z}"),
                "active": true,
                zivver::org::USER_EXT: {"aliases": [format!("fanvanpat{Z}")], "delegates": []},
            }));
        },
        |p| {
            // Claimed here, though Zivver does not own them.
            p.replace(
                    "claimed_domains = [\"zivvertest.onmicrosoft.com\", \"zivver.com\"]",
                    "claimed_domains = [\"zivvertest.onmicrosoft.com\", \"zivver.com\", \"pablees.org\", \"stef.zivvertest.onmicrosoft.com\"]",
                )
        },
    );
    let run = s.run(&["apply", "pipeline.toml", "--yes", "--json"]);
    assert_eq!(
        run.code(),
        1,
        "some failed, the rest applied: {}",
        run.stderr()
    );
    let report = run.json();
    let error_of = |email: &str| -> String {
        report["report"]["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["email"] == email && o["status"] == "failed")
            .and_then(|o| o["error"].as_str())
            .unwrap_or_else(|| panic!("no failure for {email}: {report:#}"))
            .to_string()
    };
    let expected: [(String, String); 4] = [
        (
            format!("agile.bottom{Z}"),
            "Invalid division: Kitchen".into(),
        ),
        (
            format!("jan-arie{Z}"),
            "Alias is already taken for 11111111-2222-4333-8444-555555555555".into(),
        ),
        (
            format!("stef.mooij{Z}"),
            "Error creating alias: Domain Not Owned".into(),
        ),
        (
            "test-e2e@pablees.org".into(),
            "Account is outside the organization".into(),
        ),
    ];
    for (email, text) in &expected {
        assert!(
            error_of(email).contains(text.as_str()),
            "{email}: {}",
            error_of(email)
        );
    }
    // The rest went in.
    assert!(user(&s.state(), &format!("rain.drift{Z}")).is_some());

    // `roster status` keeps each account's last error.
    let status = s.run(&["status", "pipeline.toml", "--json"]).ok().json();
    for (email, text) in &expected {
        let e = status["errors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["account"] == email.as_str())
            .unwrap_or_else(|| panic!("no error for {email} in status"));
        assert!(e["message"].as_str().unwrap().contains(text.as_str()));
    }

    // A linked account deleted in Zivver after the plan was saved.
    s.run(&["plan", "pipeline.toml", "--out", "saved.json"]);
    let agile_id = user(&s.state(), &format!("agile.bottom{Z}")).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.zivver
        .org
        .write()
        .unwrap()
        .delete_user(&agile_id)
        .unwrap();
    let run = s.run(&[
        "apply",
        "pipeline.toml",
        "--plan",
        "saved.json",
        "--yes",
        "--json",
    ]);
    assert_eq!(run.code(), 1);
    let report = run.json();
    let agile = report["report"]["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["email"] == format!("agile.bottom{Z}"))
        .unwrap();
    assert!(
        agile["error"]
            .as_str()
            .unwrap()
            .contains(&format!("Unknown account with uuid {agile_id}")),
        "{agile:#}"
    );
}

#[test]
fn throttled_writes_are_waited_out_with_nothing_lost_or_doubled() {
    // Without RateLimit header fields the 429s come, and are waited out;
    // with them (as Zivver sends) the host learns the budget and stays under it.
    let mut throttled = vec![];
    for headers in [false, true] {
        let s = Scenario::start(|_| {}, |p| p);
        s.zivver.faults.set(Faults {
            throttle: Some(Throttle {
                budget: 15,
                window_ms: 1000,
                retry_after: true,
                headers,
            }),
            ..Faults::default()
        });
        let report = s
            .run(&["apply", "pipeline.toml", "--yes", "--json"])
            .ok()
            .json();
        assert_eq!(report["report"]["failed"], 0);
        let stats = s.zivver.faults.stats();
        assert!(
            stats.requests > 15,
            "more than one window's worth: {stats:?}"
        );
        throttled.push(stats.throttled);
        let state = s.state();
        for name in at(&["fancy.flip", "stef.mooij", "rain.drift", "bruno.broccoli"]) {
            assert_eq!(count_users(&state, &name), 1, "{name}");
        }
        s.zivver.faults.set(Faults::default());
        let again = s.run(&["plan", "pipeline.toml", "--json"]).ok().json();
        assert_eq!(again["changes"], json!([]));
    }
    // Without the header fields the budget is hit and waited out; with them
    // it is learned: at most one 429, at a window's edge.
    assert!(throttled[0] > 1, "{throttled:?}");
    assert!(throttled[1] <= 1, "{throttled:?}");
}

#[test]
fn an_apply_killed_part_way_finishes_on_rerun_without_duplicates() {
    let s = Scenario::start(
        |_| {},
        |p| {
            p.replace(
                "[[stages]]\ntype = \"link\"",
                "[apply]\nbatch_size = 2\n\n[[stages]]\ntype = \"link\"",
            )
        },
    );
    s.zivver.faults.set(Faults {
        latency_ms: 40,
        ..Faults::default()
    });
    let mut child = s
        .roster()
        .args(["apply", "pipeline.toml", "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until some, not all, accounts are in, then kill it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let created = s.state()["users"].as_array().unwrap().len();
        if created >= 22 || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = s.state()["users"].as_array().unwrap().len();
    s.zivver.faults.set(Faults::default());

    let rerun = s
        .run(&["apply", "pipeline.toml", "--yes", "--json"])
        .ok()
        .json();
    assert_eq!(rerun["report"]["failed"], 0, "{rerun:#}");
    let state = s.state();
    let users = state["users"].as_array().unwrap();
    let mut names: Vec<String> = users
        .iter()
        .map(|u| u["userName"].as_str().unwrap().to_lowercase())
        .collect();
    names.sort();
    let total = names.len();
    names.dedup();
    assert_eq!(names.len(), total, "an account was created twice");
    assert!(
        partial < total,
        "the first apply was cut short ({partial} of {total})"
    );
    let again = s.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    assert_eq!(again["changes"], json!([]));
}

#[test]
fn a_create_answered_503_after_it_took_effect_is_not_sent_twice() {
    // No guests, so that no create is refused and sent again for that.
    let s = Scenario::start(
        |org| {
            for g in ["bruno.alias", "fancy", "webmaster"] {
                assert!(org.remove_guest(&format!("{g}{Z}")));
            }
        },
        |p| p,
    );
    let plan = s.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    let people = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "create" && c["change"]["op"]["account"]["kind"] == "person")
        .count() as u64;
    assert!(people > 10, "{plan:#}");
    // Every third request is carried out and then answered 503.
    s.zivver.faults.set(Faults {
        fail_every: Some(3),
        fail_after_effect: true,
        ..Faults::default()
    });
    let applied = s
        .run(&[
            "apply",
            "pipeline.toml",
            "--yes",
            "--json",
            "--log-format",
            "json",
            "-v",
        ])
        .ok();
    let report = applied.json();
    assert_eq!(report["report"]["failed"], 0, "{report:#}");
    // Each of the run's log lines says its pipeline and run (a collector's fields).
    let told: Vec<Value> = applied
        .stderr()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("left open whether it took effect; it did"))
        })
        .collect();
    assert!(!told.is_empty(), "{}", applied.stderr());
    for line in &told {
        assert_eq!(line["span"]["name"], "run", "{line}");
        assert_eq!(line["span"]["pipeline"], "exchange-to-zivver", "{line}");
        assert_eq!(line["span"]["run"], 1, "{line}");
    }
    let stats = s.zivver.faults.stats();
    assert!(stats.failed >= 10, "{stats:?}");
    assert_eq!(
        stats.methods["POST /api/scim/v2/Users"], people,
        "one POST per new user, whatever its answer: {stats:?}"
    );
    let state = s.state();
    for u in state["users"].as_array().unwrap() {
        let name = u["userName"].as_str().unwrap();
        assert_eq!(count_users(&state, name), 1, "{name}");
    }
    s.zivver.faults.set(Faults::default());
    let again = s.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    assert_eq!(again["changes"], json!([]), "{again:#}");
}

#[test]
fn a_disabled_account_keeps_its_sso_key() {
    let s = Scenario::start(
        |_| {},
        |p| {
            p.replace(
                "update_functional = true",
                "update_functional = true\nremoved = \"disable\"",
            )
        },
    );
    s.run(&["apply", "pipeline.toml", "--yes"]).ok();
    let key = "9bac80e9-5a15-4c70-bc2e-4d742c76a15d";
    let fancy = user(&s.state(), &format!("fancy.flip{Z}")).unwrap().clone();
    assert_eq!(fancy[zivver::org::USER_EXT]["SsoAccountKey"], key);
    // fancy.flip leaves: the mailbox is deleted in Exchange.
    s.m365.tenant.write().unwrap().remove_user(key, "deleted");
    let plan = s.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    assert_eq!(plan["summary"]["disables"], 1, "{plan:#}");
    s.run(&["apply", "pipeline.toml", "--yes"]).ok();
    let fancy = user(&s.state(), &format!("fancy.flip{Z}")).unwrap().clone();
    assert_eq!(fancy["active"], false);
    assert_eq!(
        fancy[zivver::org::USER_EXT]["SsoAccountKey"],
        key,
        "the disable re-sent the key Zivver never returns"
    );
}

#[test]
fn unbacked_accounts_in_the_claimed_domains_are_disabled_only_when_asked() {
    // The organisation already has people in zivver.com (a claimed domain)
    // that no mailbox backs, and one outside the claimed domains.
    let outsider = "pat@partner.example";
    let with = |policy: &'static str| {
        move |p: String| {
            p.replace(
                "update_functional = true",
                &format!("update_functional = true\nunlinked = \"{policy}\""),
            )
        }
    };
    let seed = |org: &mut zivver::Org| {
        org.seed_user(json!({
            "id": "99999999-2222-4333-8444-555555555555",
            "userName": outsider,
            "active": true,
            zivver::org::USER_EXT: {"aliases": [], "delegates": []},
        }));
    };
    let unbacked: Vec<String> = {
        let s = Scenario::start(seed, |p| p);
        let state = s.state();
        let mut names: Vec<String> = state["users"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["active"] == true)
            .map(|u| u["userName"].as_str().unwrap().to_string())
            .filter(|n| n.ends_with("@zivver.com"))
            .collect();
        names.sort();
        names
    };
    assert_eq!(unbacked.len(), 14);

    // report: each named, nothing changes for them.
    let s = Scenario::start(seed, with("report"));
    let plan = s.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    let reported: Vec<String> = notes(&plan)
        .into_iter()
        .filter(|n| n.contains("no source account backs it"))
        .collect();
    assert_eq!(reported.len(), 14, "{reported:#?}");
    assert_eq!(plan["summary"]["disables"], 0);

    // disable: listed by name as disables, refused above the threshold (10).
    let s = Scenario::start(seed, with("disable"));
    let refused = s.run(&["plan", "pipeline.toml", "--json"]);
    assert_eq!(refused.code(), 3, "{}", refused.stderr());
    assert!(
        refused.stderr().contains("no source account backs"),
        "{}",
        refused.stderr()
    );
    let plan = refused.json();
    let mut disabled: Vec<String> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "disable")
        .map(|c| c["email"].as_str().unwrap().to_string())
        .collect();
    disabled.sort();
    assert_eq!(disabled, unbacked);
    let before = s.state();
    assert_eq!(s.run(&["apply", "pipeline.toml", "--yes"]).code(), 3);
    assert_eq!(s.state(), before, "refused: nothing touched");

    s.run(&["apply", "pipeline.toml", "--yes", "--allow-removals"])
        .ok();
    let after = s.state();
    for name in &unbacked {
        assert_eq!(user(&after, name).unwrap()["active"], false, "{name}");
    }
    assert_eq!(
        user(&after, outsider),
        user(&before, outsider),
        "outside the claimed domains: never touched"
    );
    let bruno = user(&after, &format!("bruno.broccoli{Z}")).unwrap();
    assert_eq!(bruno["active"], true, "backed by a mailbox");
    let again = s.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    assert_eq!(again["changes"], json!([]), "{again:#}");
}

#[test]
fn disabled_mailboxes_are_created_inactive_only_when_asked() {
    let name = format!("testgeof{Z}"); // a disabled user mailbox
    let s = Scenario::start(|_| {}, |p| p);
    s.run(&["apply", "pipeline.toml", "--yes"]).ok();
    assert!(user(&s.state(), &name).is_none(), "left out by default");

    let s = Scenario::start(
        |_| {},
        |p| {
            p.replace(
                "update_functional = true",
                "update_functional = true\ncreate_disabled = true",
            )
        },
    );
    s.run(&["apply", "pipeline.toml", "--yes"]).ok();
    let geof = user(&s.state(), &name).unwrap().clone();
    assert_eq!(geof["active"], false, "created as an inactive account");
    let again = s.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    assert_eq!(again["changes"], json!([]), "{again:#}");
}

#[test]
fn the_claimed_domains_are_the_pipelines_and_zivver_refuses_its_old_setting() {
    let s = Scenario::start(
        |_| {},
        |p| {
            p.replace(
                "guest_recheck_hours = \"24\"\n",
                "guest_recheck_hours = \"24\"\ndomains = \"zivvertest.onmicrosoft.com\"\n",
            )
        },
    );
    let check = s.run(&["check", "pipeline.toml"]);
    assert_eq!(check.code(), 2, "{}", check.stderr());
    assert!(
        check
            .stderr()
            .contains("`domains` is no longer a Zivver setting")
            && check.stderr().contains("claimed_domains"),
        "{}",
        check.stderr()
    );
    // The plan leaves out an alias outside the claimed domains (the filter
    // stage), with a warning naming it: nothing reaches Zivver to refuse.
    let s = Scenario::start(|_| {}, |p| p);
    let plan = s.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    assert!(
        notes(&plan)
            .iter()
            .any(|n| n.contains("pablees.org") && n.contains("outside the claimed domains")),
        "{:#}",
        plan["notes"]
    );
    let changes = plan["changes"].to_string();
    assert!(!changes.contains("pablees.org"), "{changes}");
}
