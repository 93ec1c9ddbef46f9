//! The whole path through the real binary and real components: a
//! filter → link → merge → sync plan between two csv connectors, apply, an
//! empty second plan, and an interrupted apply finished without duplicates.

mod common;

use common::{HEADER, Run, Work};
use serde_json::Value;

const SOURCE: &str = "\
s1,person,ann@corp.example,ann.alias@corp.example;ann2@corp.example,Ann Smith,Ann,Smith,true,\"OU=Sales,DC=corp\",key-1,,
s2,person,bob@corp.example,,Bob Jones,Bob,Jones,true,\"OU=Sales,DC=corp\",key-2,,
s3,person,carol@corp.example,,Carol King,Carol,King,false,\"OU=Sales,DC=corp\",key-3,,
s4,functional,team@corp.example,,Team,,,true,\"OU=Shared,DC=corp\",key-4,ann@corp.example;bob@corp.example,
s5,person,dan@corp.example,,Dan Brown,Dan,Brown,true,\"OU=Robots,DC=corp\",key-5,,
s6,person,eve@other.example,,Eve Other,Eve,Other,true,\"OU=Sales,DC=corp\",key-6,,
s7,person,frank@corp.example,,Frank Manual,Frank,Manual,true,\"OU=Sales,DC=corp\",key-7,,
s8,person,gina@corp.example,,Gina Disabled,Gina,Disabled,false,\"OU=Sales,DC=corp\",key-8,,
";

const TARGET: &str = "\
t1,person,bob@corp.example,,Robert Jones,Bob,Jones,true,\"OU=Sales,DC=corp\",,,
t2,guest,ann.alias@corp.example,,,,,true,,,,
t3,person,f.manual@corp.example,,Frank Manual,Frank,Manual,true,\"OU=Sales,DC=corp\",,,
t4,person,gina@corp.example,,Gina Disabled,Gina,Disabled,true,\"OU=Sales,DC=corp\",,,
t5,person,stranger@elsewhere.example,,Not Ours,,,true,,,,
";

const PIPELINE: &str = r#"
name = "e2e"
source = "src"
target = "dst"

[connectors.src]
plugin = "csv"
directory = "src"
directory_read_only = true

[connectors.dst]
plugin = "csv"
directory = "dst"

[apply]
batch_size = 2

[[stages]]
type = "filter"
include_domains = ["corp.example"]
exclude_ous = ["OU=Robots,DC=corp"]

[[stages]]
type = "link"
manual = [{ source = "frank@corp.example", target = "t3", options = { diary = "no" } }]

[[stages]]
type = "merge"
mode = "alias-only"

[[stages]]
type = "sync"
options = { diary = "yes" }
"#;

fn setup() -> Work {
    let w = Work::new();
    w.write("src/accounts.csv", &format!("{HEADER}{SOURCE}"));
    w.write("dst/accounts.csv", &format!("{HEADER}{TARGET}"));
    w.write("pipeline.toml", PIPELINE);
    w
}

fn changes_of<'a>(plan: &'a Value, action: &str) -> Vec<&'a Value> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == action)
        .collect()
}

fn row<'a>(csv: &'a str, email: &str) -> Vec<&'a str> {
    let line = csv
        .lines()
        .find(|l| l.split(',').nth(2) == Some(email))
        .unwrap_or_else(|| panic!("{email} not in\n{csv}"));
    line.split(',').collect()
}

#[test]
fn plan_apply_and_a_second_plan_is_empty() {
    let w = setup();
    let plan = w.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    let s = &plan["summary"];
    assert_eq!(s["source_accounts"], 8);
    // eve (domain) and dan (OU) are filtered out.
    assert_eq!(s["in_scope"], 6);

    // ann is new; her alias is held by guest t2, merged into her new account, then the alias is added.
    let creates: Vec<&str> = changes_of(&plan, "create")
        .iter()
        .map(|c| c["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        creates,
        ["ann@corp.example", "team@corp.example"],
        "carol is disabled and not created"
    );
    let ann_create = changes_of(&plan, "create")[0];
    assert_eq!(
        ann_create["change"]["op"]["account"]["aliases"],
        serde_json::json!(["ann2@corp.example"])
    );
    let merges = changes_of(&plan, "merge-guest");
    assert_eq!(merges.len(), 1);
    assert_eq!(merges[0]["change"]["op"]["guest"]["id"], "t2");
    assert_eq!(merges[0]["after"], serde_json::json!(["create:key:key-1"]));

    // bob: display name; frank: manual link, address change is an update; gina: disabled in the source.
    let updates: Vec<&Value> = changes_of(&plan, "update");
    let by_email = |e: &str| {
        updates
            .iter()
            .find(|u| u["email"] == e)
            .copied()
            .unwrap_or_else(|| panic!("no update for {e}"))
    };
    assert_eq!(
        by_email("bob@corp.example")["diff"][0]["field"],
        "display-name"
    );
    assert_eq!(by_email("frank@corp.example")["change"]["op"]["id"], "t3");
    assert_eq!(
        by_email("frank@corp.example")["change"]["options"]["diary"],
        "no",
        "manual link options win"
    );
    assert!(
        by_email("gina@corp.example")["diff"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["field"] == "enabled" && d["to"] == "false")
    );
    assert_eq!(
        by_email("ann@corp.example")["target_from"],
        "create:key:key-1"
    );
    // The functional account's delegates travel with it.
    assert_eq!(
        changes_of(&plan, "create")[1]["change"]["op"]["account"]["delegates"],
        serde_json::json!(["ann@corp.example", "bob@corp.example"])
    );

    let applied = w
        .run(&["apply", "pipeline.toml", "--yes", "--json"])
        .ok()
        .json();
    assert_eq!(applied["report"]["failed"], 0, "{applied:#}");
    assert_eq!(
        applied["report"]["applied"].as_u64().unwrap(),
        plan["changes"].as_array().unwrap().len() as u64
    );

    let target = w.read("dst/accounts.csv");
    let ann = row(&target, "ann@corp.example");
    assert!(
        ann[3].contains("ann.alias@corp.example") && ann[3].contains("ann2@corp.example"),
        "aliases: {}",
        ann[3]
    );
    assert!(
        !target.contains(",guest,ann.alias@corp.example"),
        "the guest is merged away:\n{target}"
    );
    assert_eq!(row(&target, "bob@corp.example")[4], "Bob Jones");
    assert_eq!(
        row(&target, "frank@corp.example")[0],
        "t3",
        "the manual link updated t3, not a new account"
    );
    assert_eq!(row(&target, "gina@corp.example")[7], "false");
    assert!(
        target.contains("stranger@elsewhere.example"),
        "accounts Roster does not manage are untouched"
    );
    assert!(
        !target.contains("eve@other.example") && !target.contains("dan@corp.example"),
        "filtered accounts are not created"
    );
    assert!(
        !target.contains("carol@corp.example"),
        "a disabled source account is not created"
    );

    let again = w.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    assert_eq!(again["changes"], serde_json::json!([]), "{again:#}");
    assert_eq!(again["links"], serde_json::json!([]));

    let status = w.run(&["status", "pipeline.toml", "--json"]).ok().json();
    let links = status["links"].as_array().unwrap();
    assert_eq!(
        links.len(),
        5,
        "carol is disabled and was never created, so never linked"
    );
    let frank = links
        .iter()
        .find(|l| l["source_email"] == "frank@corp.example")
        .unwrap();
    assert_eq!(
        (frank["how"].as_str(), frank["target_id"].as_str()),
        (Some("manual"), Some("t3"))
    );
    assert_eq!(status["runs"][0]["outcome"], "done");
}

#[test]
fn a_changed_source_address_is_an_update_of_the_linked_account() {
    let w = setup();
    w.run(&["apply", "pipeline.toml", "--yes"]).ok();
    let before = w.read("dst/accounts.csv");
    let bob_id = row(&before, "bob@corp.example")[0].to_string();
    w.write(
        "src/accounts.csv",
        &format!(
            "{HEADER}{}",
            SOURCE.replace("bob@corp.example", "robert@corp.example")
        ),
    );
    let plan = w.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    assert!(changes_of(&plan, "create").is_empty(), "{plan:#}");
    let updates = changes_of(&plan, "update");
    let robert = updates
        .iter()
        .find(|u| u["email"] == "robert@corp.example")
        .expect("an update for the renamed account");
    assert_eq!(robert["change"]["op"]["id"], bob_id.as_str());
    assert_eq!(robert["diff"][0]["to"], "robert@corp.example");
    // The team's delegate list follows the new address too.
    assert!(updates.iter().any(|u| u["email"] == "team@corp.example"));
    assert_eq!(updates.len(), 2, "{plan:#}");
}

#[test]
fn removals_are_refused_above_the_threshold_unless_allowed() {
    let w = setup();
    w.write(
        "pipeline.toml",
        &PIPELINE.replace(
            "options = { diary = \"yes\" }",
            "removed = \"disable\"\nmax_removals = 1",
        ),
    );
    w.run(&["apply", "pipeline.toml", "--yes"]).ok();
    // Two linked people leave the source.
    let fewer: String = SOURCE
        .lines()
        .filter(|l| !l.starts_with("s1,") && !l.starts_with("s2,"))
        .map(|l| format!("{l}\n"))
        .collect();
    w.write("src/accounts.csv", &format!("{HEADER}{fewer}"));
    let refused = w.run(&["plan", "pipeline.toml"]);
    assert_eq!(refused.code(), 3, "{}", refused.stderr());
    assert!(
        refused.stderr().contains("safety threshold"),
        "{}",
        refused.stderr()
    );
    let refused = w.run(&["apply", "pipeline.toml", "--yes"]);
    assert_eq!(refused.code(), 3);
    assert!(
        row(&w.read("dst/accounts.csv"), "bob@corp.example")[7] == "true",
        "nothing was disabled"
    );
    let allowed = w
        .run(&[
            "apply",
            "pipeline.toml",
            "--yes",
            "--allow-removals",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(allowed["report"]["applied"], 2);
    let target = w.read("dst/accounts.csv");
    assert_eq!(row(&target, "bob@corp.example")[7], "false");
    assert_eq!(row(&target, "ann@corp.example")[7], "false");
}

#[test]
fn licence_seats_turn_extra_creates_into_plan_errors() {
    let w = setup();
    // Four enabled people already hold seats (bob, frank, gina, stranger); one seat is left.
    w.write(
        "pipeline.toml",
        &PIPELINE.replace(
            "directory = \"dst\"",
            "directory = \"dst\"\nconfig = { seats = 5 }",
        ),
    );
    let many: String = (0..3)
        .map(|i| format!("n{i},person,new{i}@corp.example,,New {i},,,true,,key-n{i},,\n"))
        .collect();
    w.write("src/accounts.csv", &format!("{HEADER}{SOURCE}{many}"));
    let plan = w.run(&["plan", "pipeline.toml", "--json"]).exit(6).json();
    let people_created = changes_of(&plan, "create")
        .iter()
        .filter(|c| c["change"]["op"]["account"]["kind"] == "person")
        .count();
    assert_eq!(people_created, 1, "{plan:#}");
    let licence: Vec<&Value> = plan["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "licence" && n["account"].is_string())
        .collect();
    assert_eq!(
        licence.len(),
        3,
        "ann and two of the new people wait for a seat: {plan:#}"
    );
    let shortfall: Vec<&str> = plan["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "licence" && n["account"].is_null())
        .filter_map(|n| n["message"].as_str())
        .collect();
    assert_eq!(
        shortfall,
        ["3 more licence seats are needed: 1 were free, 4 accounts need one"],
        "the plan says how many seats are missing"
    );
    let applied = w
        .run(&["apply", "pipeline.toml", "--yes", "--json"])
        .exit(6)
        .json();
    assert_eq!(
        applied["report"]["failed"], 0,
        "no create was attempted beyond the seats (exit 6: the plan had errors): {applied:#}"
    );
}

#[test]
fn an_apply_killed_midway_finishes_on_rerun_without_duplicates() {
    let w = Work::new();
    let n = 400;
    let rows: String = (0..n)
        .map(|i| format!("u{i},person,user{i:04}@corp.example,,User {i},,,true,,k{i},,\n"))
        .collect();
    w.write("src/accounts.csv", &format!("{HEADER}{rows}"));
    w.write("dst/accounts.csv", HEADER);
    w.write(
        "pipeline.toml",
        &PIPELINE
            .replace("batch_size = 2", "batch_size = 1")
            .replace("include_domains = [\"corp.example\"]", ""),
    );

    let mut child = w
        .roster()
        .args(["apply", "pipeline.toml", "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state = w.path("pipeline.state.sqlite");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        // Read-only: opening it read-write would create an empty file
        // before roster does, which roster refuses as a truncated state.
        let applied: i64 = rusqlite::Connection::open_with_flags(
            &state,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|c| {
            c.query_row(
                "SELECT count(*) FROM journal WHERE status = 'applied'",
                [],
                |r| r.get(0),
            )
        })
        .unwrap_or(0);
        if applied >= 10 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "apply finished before it could be interrupted"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "apply made no progress"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.code().is_none(),
        "apply was killed, not finished: {status:?}"
    );
    let partial = w.read("dst/accounts.csv").lines().count() - 1;
    assert!(
        partial > 0 && partial < n,
        "killed part-way: {partial} of {n} written"
    );
    // The dead run is never shown as running.
    let status = w.run(&["status", "pipeline.toml", "--json"]).ok().json();
    assert_eq!(status["runs"][0]["outcome"], "interrupted", "{status:#}");

    let rerun = w
        .run(&["apply", "pipeline.toml", "--yes", "--json"])
        .ok()
        .json();
    assert!(
        rerun["report"]["applied"].as_u64().unwrap() <= (n - partial + 1) as u64,
        "{rerun:#}"
    );
    let target = w.read("dst/accounts.csv");
    for i in 0..n {
        let email = format!(",user{i:04}@corp.example,");
        assert_eq!(
            target.matches(&email).count(),
            1,
            "{email} must exist exactly once"
        );
    }
    let again = w.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    assert_eq!(again["changes"], serde_json::json!([]));
}

#[test]
fn a_saved_plan_is_applied_as_reviewed_and_refused_once_the_pipeline_changed() {
    let w = setup();
    w.run(&["plan", "pipeline.toml", "--out", "reviewed.json"])
        .ok();
    // A new source account after the review: the saved plan must not pick it up.
    let mut source = w.read("src/accounts.csv");
    source.push_str(
        "s9,person,hank@corp.example,,Hank Late,Hank,Late,true,\"OU=Sales,DC=corp\",key-9,,\n",
    );
    w.write("src/accounts.csv", &source);

    let report = w
        .run(&[
            "apply",
            "pipeline.toml",
            "--plan",
            "reviewed.json",
            "--yes",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(report["report"]["failed"], 0, "{report}");
    let target = w.read("dst/accounts.csv");
    assert!(target.contains("ann@corp.example"), "{target}");
    assert!(!target.contains("hank@corp.example"), "{target}");

    // The next live plan sees only hank.
    let plan = w.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    let emails: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["hank@corp.example"]);

    // A plan made under another version of the pipeline is not applied.
    w.run(&["plan", "pipeline.toml", "--out", "old.json"]).ok();
    w.write(
        "pipeline.toml",
        &PIPELINE.replace("batch_size = 2", "batch_size = 3"),
    );
    let refused = w.run(&["apply", "pipeline.toml", "--plan", "old.json", "--yes"]);
    assert_eq!(refused.code(), 2, "{}", refused.stderr());
    assert!(
        refused.stderr().contains("different version of"),
        "{}",
        refused.stderr()
    );
    assert!(!w.read("dst/accounts.csv").contains("hank@corp.example"));
}

#[test]
fn plugins_list_describes_every_component_in_the_plugins_dir() {
    let w = Work::new();
    let listed = w.run(&["plugins", "list", "--json"]).ok().json();
    let plugins = listed["plugins"].as_array().unwrap();
    let csv = plugins
        .iter()
        .find(|p| p["name"] == "csv")
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(csv["contract"], "0.1.0");
    assert_eq!(
        (csv["source"].as_bool(), csv["target"].as_bool()),
        (Some(true), Some(true))
    );

    // A broken file among them is reported, and the rest still listed.
    let dir = w.path("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(common::plugins_dir().join("csv.wasm"), dir.join("csv.wasm")).unwrap();
    w.write("plugins/broken.wasm", "not a component");
    let listed = Run::from(
        w.roster()
            .env("ROSTER_PLUGINS_DIR", &dir)
            .args(["plugins", "list"])
            .output()
            .unwrap(),
    )
    .ok()
    .stdout();
    assert!(
        listed.contains("broken.wasm") && listed.contains("unusable"),
        "{listed}"
    );
    assert!(
        listed.contains("csv") && listed.contains("source, target"),
        "{listed}"
    );
}

#[test]
fn test_connection_checks_a_connector_and_one_account() {
    let w = setup();
    let report = w
        .run(&[
            "test-connection",
            "pipeline.toml",
            "--connector",
            "dst",
            "--account",
            "BOB@corp.example",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(report["connectors"][0]["connector"], "dst");
    assert_eq!(report["connectors"][0]["account"]["id"], "t1");

    let missing = w.run(&[
        "test-connection",
        "pipeline.toml",
        "--account",
        "nobody@corp.example",
    ]);
    assert_eq!(missing.code(), 2);
    assert!(
        missing.stderr().contains("src")
            && missing
                .stderr()
                .contains("no account with address nobody@corp.example"),
        "{}",
        missing.stderr()
    );

    let unknown = w.run(&["test-connection", "pipeline.toml", "--connector", "nope"]);
    assert_eq!(unknown.code(), 2);
    assert!(
        unknown.stderr().contains("--connector nope"),
        "{}",
        unknown.stderr()
    );
}

/// The `option.diary` column the csv target keeps for `address`.
fn diary_of(w: &Work, address: &str) -> String {
    let text = w.read("dst/accounts.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "option.diary")
        .expect("an option.diary column");
    lines
        .find(|l| l.contains(address))
        .map(|l| csv_fields(l).get(col).cloned().unwrap_or_default())
        .unwrap_or_else(|| panic!("{address} not in the target:\n{text}"))
}

/// One CSV line's fields, quotes honoured.
fn csv_fields(line: &str) -> Vec<String> {
    let (mut fields, mut field, mut quoted) = (vec![], String::new(), false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    fields
}

#[test]
fn links_are_listed_staged_by_hand_shown_in_the_plan_and_kept_after_apply() {
    let w = setup();
    w.run(&["apply", "pipeline.toml", "--yes"]).ok();
    let listed = w.run(&["links", "pipeline.toml", "--json"]).ok().json();
    let link = |v: &Value, source: &str| -> Value {
        v["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["source"] == source)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(link(&listed, "bob@corp.example")["how"], "primary");
    assert_eq!(link(&listed, "bob@corp.example")["manual"], false);
    assert_eq!(link(&listed, "frank@corp.example")["manual"], true);
    assert_eq!(
        link(&listed, "frank@corp.example")["options"]["diary"],
        "no"
    );
    assert_eq!(
        diary_of(&w, "bob@corp.example"),
        "yes",
        "the default reached the target"
    );

    // Bob is linked by hand, with his own options, and
    // Frank's link is removed; nothing changes before the apply.
    w.run(&[
        "links",
        "pipeline.toml",
        "add",
        "Bob@Corp.Example",
        "t1",
        "--options",
        "diary=later",
    ])
    .ok();
    w.run(&["links", "pipeline.toml", "remove", "frank@corp.example"])
        .ok();
    let staged = w.run(&["links", "pipeline.toml", "--json"]).ok().json();
    assert_eq!(staged["staged"].as_array().unwrap().len(), 2, "{staged:#}");
    assert_eq!(
        link(&staged, "bob@corp.example")["manual"],
        false,
        "not yet applied"
    );

    let plan = w.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    assert_eq!(
        plan["unlinks"][0]["source_email"], "frank@corp.example",
        "{plan:#}"
    );
    assert_eq!(plan["unlinks"][0]["target_id"], "t3");
    let bob = changes_of(&plan, "update")
        .into_iter()
        .find(|c| c["email"] == "bob@corp.example")
        .expect("bob's link carries its new options to t1");
    assert_eq!(bob["change"]["op"]["id"], "t1");
    assert_eq!(bob["change"]["options"]["diary"], "later");
    let text = w.run(&["plan", "pipeline.toml"]).ok().stdout();
    assert!(
        text.contains("frank@corp.example") && text.contains("no longer synced"),
        "{text}"
    );
    assert!(
        text.contains("link by hand: bob@corp.example → t1 (diary=later)"),
        "{text}"
    );

    // A mistake is undone before it lands.
    w.run(&["links", "pipeline.toml", "unstage", "frank@corp.example"])
        .ok();
    let plan = w.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    assert!(plan.get("unlinks").is_none(), "{plan:#}");
    w.run(&["links", "pipeline.toml", "remove", "frank@corp.example"])
        .ok();

    w.run(&["apply", "pipeline.toml", "--yes"]).ok();
    let after = w.run(&["links", "pipeline.toml", "--json"]).ok().json();
    assert_eq!(link(&after, "bob@corp.example")["target_id"], "t1");
    assert_eq!(link(&after, "bob@corp.example")["manual"], true);
    assert!(link(&after, "frank@corp.example").is_null(), "{after:#}");
    assert_eq!(after["unlinked"][0]["source_email"], "frank@corp.example");
    assert!(after["staged"].as_array().unwrap().is_empty());
    assert_eq!(diary_of(&w, "bob@corp.example"), "later");
    assert_eq!(
        diary_of(&w, "frank@corp.example"),
        "no",
        "an unlinked account is left as it is"
    );

    // Frank stays unlinked although the pipeline names a manual link (a warning says so); the next plan is empty.
    let plan = w.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    assert!(plan["changes"].as_array().unwrap().is_empty(), "{plan:#}");
    assert!(plan["links"].as_array().unwrap().is_empty(), "{plan:#}");

    // Staging something that names no account is an error in the plan, and a bad flag a clear error.
    w.run(&["links", "pipeline.toml", "add", "nobody@corp.example", "t1"])
        .ok();
    let plan = w.run(&["plan", "pipeline.toml", "--json"]).exit(6).json();
    assert!(
        plan["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["level"] == "error" && n["account"] == "nobody@corp.example"),
        "{plan:#}"
    );
    let bad = w.run(&[
        "links",
        "pipeline.toml",
        "add",
        "x@corp.example",
        "t1",
        "--options",
        "diary",
    ]);
    assert_eq!(bad.code(), 2);
    assert!(
        bad.stderr().contains("`diary` is not KEY=VALUE"),
        "{}",
        bad.stderr()
    );
}

#[test]
fn a_state_file_that_is_not_a_database_is_a_store_failure_not_bad_input() {
    let w = setup();
    w.write("pipeline.state.sqlite", &"not a database\n".repeat(400));
    for args in [
        &["status", "pipeline.toml"][..],
        &["apply", "pipeline.toml", "--yes"][..],
    ] {
        let r = w.run(args);
        assert_eq!(r.code(), 4, "{args:?}: {}", r.stderr());
        assert!(
            r.stderr().contains("opening state") && r.stderr().contains("pipeline.state.sqlite"),
            "{args:?}: names the state file: {}",
            r.stderr()
        );
    }
    // Nothing was written to the target.
    assert_eq!(
        std::fs::read_to_string(w.path("dst/accounts.csv")).unwrap(),
        format!("{HEADER}{TARGET}")
    );
}

/// 400 people into an empty csv target, one change per batch: an apply
/// long enough to be caught in the middle.
fn slow_apply() -> Work {
    let w = Work::new();
    let rows: String = (0..400)
        .map(|i| format!("u{i},person,user{i:04}@corp.example,,User {i},,,true,,k{i},,\n"))
        .collect();
    w.write("src/accounts.csv", &format!("{HEADER}{rows}"));
    w.write("dst/accounts.csv", HEADER);
    w.write(
        "pipeline.toml",
        &PIPELINE
            .replace("batch_size = 2", "batch_size = 1")
            .replace("include_domains = [\"corp.example\"]", ""),
    );
    w
}

fn applied_in_journal(w: &Work) -> i64 {
    rusqlite::Connection::open_with_flags(
        w.path("pipeline.state.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .and_then(|c| {
        c.query_row(
            "SELECT count(*) FROM journal WHERE status = 'applied'",
            [],
            |r| r.get(0),
        )
    })
    .unwrap_or(0)
}

#[test]
fn a_second_apply_is_refused_while_one_runs_and_sigint_stops_it_cleanly() {
    let w = slow_apply();
    let mut first = w
        .roster()
        .args(["apply", "pipeline.toml", "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while applied_in_journal(&w) < 10 {
        assert!(first.try_wait().unwrap().is_none(), "finished too soon");
        assert!(std::time::Instant::now() < deadline, "no progress");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // A second apply (and a plan-and-apply from a saved plan alike) stops at once.
    let second = w.run(&["apply", "pipeline.toml", "--yes"]);
    assert_eq!(second.code(), 5, "{}", second.stderr());
    let holder = format!(
        "another apply is running on this state (pid {} on host",
        first.id()
    );
    assert!(second.stderr().contains(&holder), "{}", second.stderr());

    let kill = std::process::Command::new("kill")
        .args(["-INT", &first.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = first.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("rerun `roster apply` to finish"),
        "{stderr}"
    );

    let status = w.run(&["status", "pipeline.toml", "--json"]).ok().json();
    let run = &status["runs"][0];
    assert_eq!(run["outcome"], "interrupted", "{status:#}");
    let applied = applied_in_journal(&w);
    assert_eq!(run["applied"].as_i64(), Some(applied), "{status:#}");
    let written = w.read("dst/accounts.csv").lines().count() as i64 - 1;
    assert_eq!(written, applied, "the batch in flight was recorded");
    assert!(applied < 400, "stopped part-way");

    // The rerun finishes: each account once, nothing sent twice.
    let rerun = w
        .run(&["apply", "pipeline.toml", "--yes", "--json"])
        .ok()
        .json();
    assert_eq!(
        rerun["report"]["applied"].as_i64(),
        Some(400 - applied),
        "{rerun:#}"
    );
    let target = w.read("dst/accounts.csv");
    for i in 0..400 {
        let email = format!(",user{i:04}@corp.example,");
        assert_eq!(target.matches(&email).count(), 1, "{email}");
    }
}

#[test]
fn a_renamed_pipeline_does_not_silently_start_over_with_an_empty_state() {
    let w = setup();
    w.run(&["apply", "pipeline.toml", "--yes"]).ok();
    let linked = w.read("dst/accounts.csv");
    std::fs::rename(w.path("pipeline.toml"), w.path("renamed.toml")).unwrap();

    let plan = w.run(&["plan", "renamed.toml"]);
    assert_eq!(plan.code(), 0, "a plan only warns: {}", plan.stderr());
    assert!(
        plan.stderr()
            .contains("pipeline.state.sqlite holds the state of pipeline `e2e`"),
        "{}",
        plan.stderr()
    );
    let apply = w.run(&["apply", "renamed.toml", "--yes"]);
    assert_eq!(apply.code(), 2, "{}", apply.stderr());
    assert!(
        apply
            .stderr()
            .contains("set `state = \"pipeline.state.sqlite\"` in the pipeline")
            && apply.stderr().contains("--new-state"),
        "{}",
        apply.stderr()
    );
    assert_eq!(w.read("dst/accounts.csv"), linked, "nothing written");
    w.run(&["apply", "renamed.toml", "--yes", "--new-state"])
        .ok();

    // A state that belongs to another pipeline is refused the same way.
    w.write(
        "other.toml",
        &PIPELINE.replace(
            "name = \"e2e\"",
            "name = \"other\"\nstate = \"pipeline.state.sqlite\"",
        ),
    );
    let other = w.run(&["apply", "other.toml", "--yes"]);
    assert_eq!(other.code(), 2, "{}", other.stderr());
    assert!(
        other.stderr().contains("belongs to pipeline `e2e`"),
        "{}",
        other.stderr()
    );
}
