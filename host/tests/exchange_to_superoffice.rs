//! Exchange Online (the Microsoft 365 simulator) linked to SuperOffice users
//! (the SuperOffice simulator, written from SuperOffice's REST reference),
//! both seeded from `examples/`: automatic links only by the same primary
//! address (case aside), a near miss refused with a warning, a manual link
//! with its own options (validated against what the connector declares),
//! person cards updated, new users only while the user plan has licences and
//! never on SuperOffice Online, ranks balanced and the Synchronizer's user
//! list exported; the second plan empty.

mod common;

use common::{Run, Work, example};
use roster_sim::{Faults, Running, m365, superoffice};
use serde_json::Value;

const Z: &str = "@zivvertest.onmicrosoft.com";

struct Scenario {
    work: Work,
    crm: superoffice::Shared,
    _running: (Running, Running),
}

impl Scenario {
    fn start() -> Scenario {
        Scenario::with(|_| {})
    }

    fn with(change: impl FnOnce(&mut superoffice::Crm)) -> Scenario {
        let tenant = m365::seed::load(&example("exchange-to-zivver/m365/tenant.json")).unwrap();
        let mut crm =
            superoffice::seed::load(&example("exchange-to-superoffice/superoffice/tenant.json"))
                .unwrap();
        change(&mut crm);
        let (m, _) = m365::start(tenant, Faults::default(), 0).unwrap();
        let (s, crm) = superoffice::start(crm, Faults::default(), 0).unwrap();
        let pipeline = std::fs::read_to_string(example(
            "exchange-to-superoffice/exchange-to-superoffice.toml",
        ))
        .unwrap()
        .replace("http://127.0.0.1:18401", &m.url())
        .replace("http://127.0.0.1:18404", &s.url());
        let work = Work::new();
        work.write("pipeline.toml", &pipeline);
        Scenario {
            work,
            crm,
            _running: (m, s),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut c = self.work.roster();
        c.env("EXCHANGE_CLIENT_SECRET", "sim-client-secret")
            .env("SUPEROFFICE_TOKEN", "superoffice-demo-token")
            .env("SUPEROFFICE_APP_TOKEN", "superoffice-demo-app-token");
        Run::from(c.args(args).output().unwrap())
    }

    fn state(&self) -> Value {
        self.crm.crm.read().unwrap().dump()
    }

    /// `roster links add` of Craze's mailbox to user 953, with `options`.
    fn link_craze(&self, options: &str) -> Run {
        let craze = format!("craze.dash{Z}");
        self.run(&[
            "links",
            "pipeline.toml",
            "add",
            &craze,
            "953",
            "--options",
            options,
        ])
    }
}

fn person(state: &Value, id: i64) -> Value {
    state["persons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["PersonId"] == id)
        .cloned()
        .unwrap()
}

fn emails(person: &Value) -> Vec<String> {
    person["Emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Value"].as_str().unwrap().to_string())
        .collect()
}

fn notes<'a>(plan: &'a Value, account: &str) -> Vec<&'a Value> {
    plan["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["account"] == account)
        .collect()
}

#[test]
fn mailboxes_link_to_superoffice_users_by_primary_address_and_by_hand() {
    let s = Scenario::start();
    let plan = s.run(&["plan", "pipeline.toml", "--json"]).exit(6).json();
    let linked: Vec<(String, String, String)> = plan["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["source_email"].as_str().unwrap().to_string(),
                l["target_id"].as_str().unwrap().to_string(),
                l["how"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        linked,
        [
            (format!("bruno.broccoli{Z}"), "950".into(), "primary".into()),
            (format!("memo.delight{Z}"), "951".into(), "primary".into()),
        ],
        "the same primary address links, case aside; nothing else does: {plan:#}"
    );
    let rain = notes(&plan, &format!("rain.drift{Z}"));
    assert_eq!(rain.len(), 1, "{plan:#}");
    assert!(
        rain[0]["message"]
            .as_str()
            .unwrap()
            .contains("is an alias of target account 952")
    );
    let creates: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "create")
        .map(|c| c["email"].as_str().unwrap())
        .collect();
    // One licence is free: the first of the unmatched mailboxes gets it. The
    // deleted associate (salted.pip) and the system associate (deejay.foxy's
    // address) are no users, so their mailboxes are unmatched too.
    assert_eq!(creates, [format!("craze.dash{Z}")], "{plan:#}");
    let licence: Vec<&Value> = plan["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "licence")
        .collect();
    assert_eq!(
        licence.len(),
        4,
        "three mailboxes short of a licence, and the sum: {plan:#}"
    );

    // Craze's user has another address: linked by hand, with an option of its own.
    s.link_craze("diary=false").ok();
    let plan = s.run(&["plan", "pipeline.toml", "--json"]).exit(6).json();
    let created: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "create")
        .map(|c| c["email"].as_str().unwrap())
        .collect();
    assert_eq!(created, [format!("deejay.foxy{Z}")], "{plan:#}");
    let applied = s
        .run(&["apply", "pipeline.toml", "--yes", "--json"])
        .exit(6)
        .json();
    assert_eq!(applied["report"]["applied"], 4, "{applied:#}");
    assert_eq!(applied["report"]["failed"], 0);

    let state = s.state();
    let bruno = person(&state, 500);
    assert_eq!(
        bruno["FullName"], "Bruno Broccoli",
        "the person card follows the mailbox"
    );
    assert_eq!(
        emails(&bruno)[0],
        format!("bruno.broccoli{Z}"),
        "the primary stays first"
    );
    assert_eq!(emails(&bruno).len(), 3, "with the mailbox's aliases");
    assert_eq!(emails(&person(&state, 503))[0], format!("craze.dash{Z}"));
    assert_eq!(
        person(&state, 501)["Firstname"],
        "Memo",
        "a name the mailbox lacks is kept"
    );
    let new_user = state["associates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["UserName"] == format!("deejay.foxy{Z}"))
        .expect("a user for deejay");
    assert_eq!(new_user["Type"], "InternalAssociate");
    let id = new_user["AssociateId"].to_string();
    assert_eq!(
        state["assigned"][&id],
        serde_json::json!(["SALESPREMIUM"]),
        "the new user holds the user plan"
    );
    let plan_free = |state: &Value| {
        state["licence"][0]["ExtendedModuleLicenses"][0]["NumberOfLicensesFree"].clone()
    };
    assert_eq!(plan_free(&state), 0);

    let links = s.run(&["links", "pipeline.toml", "--json"]).ok().json();
    let craze = links["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["target_id"] == "953")
        .unwrap();
    assert_eq!(craze["manual"], true);
    assert_eq!(craze["options"]["diary"], "false");

    let again = s.run(&["plan", "pipeline.toml", "--json"]).exit(6).json();
    assert!(again["changes"].as_array().unwrap().is_empty(), "{again:#}");
    assert!(again["links"].as_array().unwrap().is_empty(), "{again:#}");

    // The Synchronizer's user list: every linked user, mailbox and options.
    s.run(&["links", "pipeline.toml", "export", "--out", "users.csv"])
        .ok();
    let list = s.work.read("users.csv");
    let rows: Vec<&str> = list.lines().collect();
    assert_eq!(rows[0], "target_id,source,diary,task,contact,rank");
    assert!(
        rows.contains(&format!("953,craze.dash{Z},false,true,false,1").as_str()),
        "{list}"
    );
    assert!(
        rows.contains(&format!("950,bruno.broccoli{Z},true,true,false,1").as_str()),
        "{list}"
    );
    assert_eq!(rows.len(), 5, "four linked users: {list}");

    // Ranks spread over two, evenly and stably; the plan shows them as
    // option changes, the apply keeps them, no card is rewritten for them.
    s.run(&["links", "pipeline.toml", "balance", "--ranks", "2"])
        .ok();
    let before = s.state();
    let ranked = s.run(&["plan", "pipeline.toml", "--json"]).exit(6).json();
    assert_eq!(ranked["summary"]["updates"], 4, "{ranked:#}");
    s.run(&["apply", "pipeline.toml", "--yes"]).exit(6);
    assert_eq!(
        s.state()["persons"],
        before["persons"],
        "only the list changed"
    );
    s.run(&["links", "pipeline.toml", "export", "--out", "users.csv"])
        .ok();
    let list = s.work.read("users.csv");
    let mut per_rank = [0, 0];
    for row in list.lines().skip(1) {
        let rank: usize = row.rsplit(',').next().unwrap().parse().unwrap();
        per_rank[rank - 1] += 1;
    }
    assert_eq!(per_rank, [2, 2], "{list}");
    let links = s.run(&["links", "pipeline.toml", "--json"]).ok().json();
    let hows: Vec<&str> = links["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["how"].as_str().unwrap_or(""))
        .collect();
    assert!(
        hows.contains(&"primary"),
        "a rank does not make a link manual: {links:#}"
    );
    let again = s.run(&["plan", "pipeline.toml", "--json"]).exit(6).json();
    assert!(again["changes"].as_array().unwrap().is_empty(), "{again:#}");
}

#[test]
fn options_the_connector_does_not_declare_are_refused() {
    let s = Scenario::start();
    let bad = s.link_craze("diary=maybe");
    assert_eq!(bad.code(), 2);
    assert!(
        bad.stderr().contains("takes true or false"),
        "{}",
        bad.stderr()
    );
    let bad = s.link_craze("colour=blue");
    assert_eq!(bad.code(), 2);
    assert!(
        bad.stderr().contains(
            "`colour` is no option of plugin `superoffice` (it takes: diary, task, contact, rank)"
        ),
        "{}",
        bad.stderr()
    );
    // In the pipeline file too, with its line.
    let text = s.work.read("pipeline.toml");
    s.work.write(
        "pipeline.toml",
        &text.replace(
            "contact = \"false\" }",
            "contact = \"false\", colour = \"blue\" }",
        ),
    );
    let check = s.run(&["check", "pipeline.toml"]);
    assert_eq!(check.code(), 2);
    assert!(
        check.stderr().contains("pipeline.toml:")
            && check.stderr().contains("`colour` is no option"),
        "{}",
        check.stderr()
    );
}

#[test]
fn on_superoffice_online_no_user_is_created_and_the_plan_says_what_to_do() {
    let s = Scenario::with(|crm| crm.online = true);
    let text = s.work.read("pipeline.toml");
    s.work.write(
        "pipeline.toml",
        &text.replace("installation = \"onsite\"", "installation = \"online\""),
    );
    let plan = s.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    let creates = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "create")
        .count();
    assert_eq!(creates, 0, "{plan:#}");
    let craze = notes(&plan, &format!("craze.dash{Z}"));
    assert!(
        craze.iter().any(|n| n["message"]
            .as_str()
            .unwrap()
            .contains("partner apps may not create users in SuperOffice Online")),
        "{plan:#}"
    );
    let report = s.run(&["apply", "pipeline.toml", "--yes", "--json"]);
    assert_eq!(report.code(), 0, "{}", report.stderr());
    let status = s
        .run(&[
            "test-connection",
            "pipeline.toml",
            "--connector",
            "superoffice",
        ])
        .ok()
        .stdout();
    assert!(status.contains("SuperOffice Online"), "{status}");
    // The simulator refuses the User agent there, as SuperOffice does.
    assert!(s.state()["associates"].as_array().unwrap().len() == 7);
}

#[test]
fn a_wrong_app_token_is_a_clear_error_naming_the_connector() {
    let s = Scenario::start();
    let mut c = s.work.roster();
    c.env("EXCHANGE_CLIENT_SECRET", "sim-client-secret")
        .env("SUPEROFFICE_TOKEN", "superoffice-demo-token")
        .env("SUPEROFFICE_APP_TOKEN", "not-the-app-token");
    let r = Run::from(
        c.args([
            "test-connection",
            "pipeline.toml",
            "--connector",
            "superoffice",
        ])
        .output()
        .unwrap(),
    );
    assert_ne!(r.code(), 0);
    let text = format!("{}{}", r.stdout(), r.stderr());
    assert!(
        text.contains("superoffice") && text.contains("SO-AppToken"),
        "{text}"
    );
    assert!(
        !text.contains("not-the-app-token"),
        "the secret is not printed: {text}"
    );
}

#[test]
fn inspect_shows_the_link_options_apart_from_the_config() {
    let w = Work::new();
    let component = common::plugins_dir().join("superoffice.wasm");
    let out = w
        .run(&["plugins", "inspect", component.to_str().unwrap()])
        .ok()
        .stdout();
    let (config, options) = out
        .split_once("link option")
        .unwrap_or_else(|| panic!("no link option table: {out}"));
    assert!(config.contains("user_plan"), "{out}");
    assert!(!config.contains("option."), "{out}");
    for name in ["diary", "task", "contact", "rank"] {
        assert!(options.contains(name), "{name}: {out}");
    }
}
