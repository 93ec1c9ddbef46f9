//! What an admin who runs Roster every night relies on, through the real
//! binary and real components: exit codes a script can branch on, every
//! account left alone named with its reason, `explain` for one address,
//! a plan a reviewer can read, and errors that say what to do.

mod common;

use common::{HEADER, Run, Work};
use roster_sim::{Faults, zivver};
use serde_json::Value;

const SOURCE: &str = "\
s1,person,ann@corp.example,ann.alias@corp.example,Ann Smith,Ann,Smith,true,\"OU=Sales,DC=corp\",key-1,,
s2,person,bob@corp.example,,Bob Jones,Bob,Jones,true,\"OU=Sales,DC=corp\",key-2,,
s3,person,carol@corp.example,,Carol King,Carol,King,false,\"OU=Sales,DC=corp\",key-3,,
s5,person,dan@corp.example,,Dan Brown,Dan,Brown,true,\"OU=Robots,DC=corp\",key-5,,
s6,person,eve@other.example,,Eve Other,Eve,Other,true,\"OU=Sales,DC=corp\",key-6,,
";

const TARGET: &str = "\
t1,person,bob@corp.example,,Bob Jones,Bob,Jones,true,\"OU=Sales,DC=corp\",key-2,,
t2,guest,ann.alias@corp.example,,,,,true,,,,
";

const PIPELINE: &str = r#"
name = "ops"
source = "src"
target = "dst"

[connectors.src]
plugin = "csv"
directory = "src"
directory_read_only = true

[connectors.dst]
plugin = "csv"
directory = "dst"

[[stages]]
type = "filter"
include_domains = ["corp.example"]
exclude_ous = ["OU=Robots,DC=corp"]

[[stages]]
type = "link"
MANUAL

[[stages]]
type = "merge"
mode = "alias-only"

[[stages]]
type = "sync"
"#;

fn setup(manual: &str) -> Work {
    let w = Work::new();
    w.write("src/accounts.csv", &format!("{HEADER}{SOURCE}"));
    w.write("dst/accounts.csv", &format!("{HEADER}{TARGET}"));
    w.write("pipeline.toml", &PIPELINE.replace("MANUAL", manual));
    w
}

fn skipped(plan: &Value) -> Vec<(String, String)> {
    plan["skipped"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|k| {
                    let key = match k["rule"].as_str() {
                        Some(rule) => format!("{}:{rule}", k["reason"].as_str().unwrap()),
                        None => k["reason"].as_str().unwrap().to_string(),
                    };
                    (k["account"].as_str().unwrap().to_string(), key)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn exit_codes_tell_changes_pending_and_plan_errors_apart() {
    let w = setup("");
    let pending = w.run(&["plan", "pipeline.toml", "--detailed-exitcode"]);
    assert_eq!(pending.code(), 8, "{}", pending.stderr());
    let saved = w.run(&["plan", "pipeline.toml", "--out", "p.json"]).ok();
    assert!(
        saved
            .stderr()
            .contains("next: `roster apply pipeline.toml --plan p.json`"),
        "{}",
        saved.stderr()
    );
    w.run(&["apply", "pipeline.toml", "--yes"]).ok();
    let empty = w.run(&["plan", "pipeline.toml", "--detailed-exitcode"]);
    assert_eq!(empty.code(), 0, "{}", empty.stdout());

    // A manual link to a target account that does not exist is an error in
    // the plan: plan and apply say so with 6, the rest is applied.
    let w = setup(r#"manual = [{ source = "carol@corp.example", target = "t99" }]"#);
    let plan = w.run(&["plan", "pipeline.toml", "--json"]);
    assert_eq!(plan.code(), 6, "{}", plan.stderr());
    let doc = plan.json();
    assert_eq!(doc["summary"]["errors"], 1);
    assert!(plan.stderr().contains("1 error(s)"), "{}", plan.stderr());
    let apply = w.run(&["apply", "pipeline.toml", "--yes"]);
    assert_eq!(apply.code(), 6, "{}\n{}", apply.stdout(), apply.stderr());
    assert!(w.read("dst/accounts.csv").contains("ann@corp.example"));

    let help = w.run(&["--help"]).ok();
    for line in ["Exit codes:", "  6 ", "  7 ", "  8 ", "  130 "] {
        assert!(help.stdout().contains(line), "{line}: {}", help.stdout());
    }
}

#[test]
fn every_account_left_alone_is_named_with_its_reason() {
    let w = setup("");
    let plan = w.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    assert_eq!(
        skipped(&plan),
        [
            ("carol@corp.example".into(), "disabled".into()),
            ("dan@corp.example".into(), "filtered:exclude_ous".into()),
            (
                "eve@other.example".into(),
                "filtered:include_domains".into()
            ),
        ]
    );
    let s = &plan["summary"];
    assert_eq!(
        (s["skipped"].as_u64(), s["filtered"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(s["skipped_by_reason"]["filtered:include_domains"], 1);

    let text = w.run(&["plan", "pipeline.toml"]).ok();
    assert!(
        text.stdout().contains("skipped 1, filtered 2 (disabled 1, filtered:exclude_ous 1, filtered:include_domains 1); --show-skipped lists them"),
        "{}",
        text.stdout()
    );
    let listed = Run::from(
        w.roster()
            .args(["plan", "pipeline.toml", "--show-skipped"])
            .env("COLUMNS", "250")
            .output()
            .unwrap(),
    )
    .ok();
    assert!(
        listed
            .stdout()
            .contains("filter stage 1: domain other.example is not in include_domains"),
        "{}",
        listed.stdout()
    );
    let summary = w.run(&["plan", "pipeline.toml", "--summary"]).ok();
    assert!(
        !summary.stdout().contains("ann@corp.example"),
        "{}",
        summary.stdout()
    );
    assert!(
        summary.stdout().contains("1 to create"),
        "{}",
        summary.stdout()
    );
}

#[test]
fn explain_walks_one_address_through_the_stages() {
    let w = setup("");
    // By alias: ann's account, the guest holding the alias merged into it.
    let ann = w
        .run(&[
            "explain",
            "pipeline.toml",
            "ann.alias@corp.example",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(ann["source"]["id"], "s1");
    assert_eq!(ann["source"]["holds"], "alias");
    let stages: Vec<&str> = ann["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["source", "filter", "link", "merge", "sync"]);
    assert!(
        ann["outcome"].as_str().unwrap().starts_with("create"),
        "{ann:#}"
    );

    let dan = w
        .run(&["explain", "pipeline.toml", "dan@corp.example"])
        .ok();
    assert!(
        dan.stdout().contains("not synced: filtered out (filter stage 1: org unit `OU=Robots,DC=corp` is inside `ou=robots,dc=corp` in exclude_ous)"),
        "{}",
        dan.stdout()
    );
    let bob = w
        .run(&[
            "plan",
            "pipeline.toml",
            "--account",
            "BOB@corp.example",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(bob["outcome"], "in sync: nothing to change");
    assert!(
        bob["steps"][2]["decision"]
            .as_str()
            .unwrap()
            .starts_with("links to t1 (primary)"),
        "{bob:#}"
    );
}

#[test]
fn a_plan_renders_as_markdown_for_an_approval_ticket() {
    let w = setup("");
    let md = w
        .run(&["plan", "pipeline.toml", "--format", "markdown"])
        .ok()
        .stdout();
    assert!(md.starts_with("# Plan `"), "{md}");
    assert!(md.contains("| create | 1 |"), "{md}");
    assert!(md.contains("## create (1)"), "{md}");
    assert!(
        md.contains("| eve@other.example | filtered:include_domains |"),
        "{md}"
    );
    assert!(!md.contains('\u{1b}'), "no ANSI in markdown");
}

#[test]
fn a_refused_key_exits_7_with_a_hint_and_a_json_error() {
    let org = zivver::seed::load(&common::example("exchange-to-zivver/zivver/org.json")).unwrap();
    let (running, _shared) = zivver::start(org, Faults::default(), 0).unwrap();
    let w = Work::new();
    w.write(
        "pipeline.toml",
        &format!(
            r#"name = "z"
source = "src"
target = "zivver"

[connectors.src]
plugin = "csv"
directory = "src"

[connectors.zivver]
plugin = "zivver"
allowed_hosts = ["{url}"]

[connectors.zivver.config]
base_url = "{url}/api/scim/v2/"
api_key = "${{env:ZIVVER_API_KEY}}"
"#,
            url = running.url()
        ),
    );
    w.write("src/accounts.csv", HEADER);
    let wrong = Run::from(
        w.roster()
            .args(["plan", "pipeline.toml", "--json"])
            .env("ZIVVER_API_KEY", "not-the-key")
            .output()
            .unwrap(),
    );
    assert_eq!(wrong.code(), 7, "{}", wrong.stderr());
    let doc = wrong.json();
    assert_eq!(doc["error"]["connector_kind"], "unauthorized");
    assert_eq!(doc["error"]["exit_code"], 7);
    assert_eq!(doc["format"], 1);
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Zivver refused the API key: make a new key in Zivver (Organisation settings → API keys)")
            && message.contains("/api/scim/v2/Users: HTTP 401)"),
        "{message}"
    );
    let hint = doc["error"]["hint"].as_str().unwrap();
    assert!(
        hint.contains("`zivver`") && hint.contains("test-connection"),
        "{hint}"
    );
    assert!(wrong.stderr().contains("hint: "), "{}", wrong.stderr());
    assert!(!wrong.stdout().contains("not-the-key") && !wrong.stderr().contains("not-the-key"));

    let empty = Run::from(
        w.roster()
            .args(["plan", "pipeline.toml"])
            .env("ZIVVER_API_KEY", "")
            .output()
            .unwrap(),
    );
    assert_eq!(empty.code(), 2);
    assert!(
        empty
            .stderr()
            .contains("environment variable ZIVVER_API_KEY is set but empty"),
        "{}",
        empty.stderr()
    );

    // A URL of a host the pipeline does not grant: `check` names the line.
    let text = w.read("pipeline.toml");
    let http = running.url();
    let https = http.replace("http://", "https://");
    w.write(
        "pipeline.toml",
        &text.replace(
            &format!("allowed_hosts = [\"{http}\"]"),
            &format!("allowed_hosts = [\"{https}\"]"),
        ),
    );
    let check = Run::from(
        w.roster()
            .args(["check", "pipeline.toml"])
            .env("ZIVVER_API_KEY", "k")
            .output()
            .unwrap(),
    );
    assert_eq!(check.code(), 2, "{}", check.stderr());
    // Other commands warn, and --log-format json makes each log line a JSON object.
    let logged = Run::from(
        w.roster()
            .args(["--log-format", "json", "plan", "pipeline.toml"])
            .env("ZIVVER_API_KEY", "zivver-demo-api-key")
            .output()
            .unwrap(),
    );
    let lines: Vec<Value> = logged
        .stderr()
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "WARN"
            && l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("does not grant"))),
        "{}",
        logged.stderr()
    );
    assert!(!logged.stderr().contains("zivver-demo-api-key"));
    // Piped, the logs have no colour; --color always asks for it.
    assert!(!logged.stderr().contains('\u{1b}'));
    let coloured = Run::from(
        w.roster()
            .args(["--color", "always", "plan", "pipeline.toml"])
            .env("ZIVVER_API_KEY", "zivver-demo-api-key")
            .output()
            .unwrap(),
    );
    assert!(
        coloured.stderr().contains("\u{1b}["),
        "{}",
        coloured.stderr()
    );
    assert!(
        check.stderr().contains("pipeline.toml:14:")
            && check.stderr().contains(&format!("connectors.zivver.config.base_url is {http}, which connectors.zivver.allowed_hosts does not grant (it grants {https})")),
        "{}",
        check.stderr()
    );
}

#[test]
fn completions_and_the_man_page_follow_the_flags() {
    let w = Work::new();
    let bash = w.run(&["completions", "bash"]).ok().stdout();
    for word in [
        "explain",
        "--detailed-exitcode",
        "--show-skipped",
        "markdown",
    ] {
        assert!(bash.contains(word), "{word} not in the bash completions");
    }
    let zsh = w.run(&["completions", "zsh"]).ok().stdout();
    assert!(
        zsh.starts_with("#compdef roster"),
        "{}",
        &zsh[..zsh.len().min(200)]
    );
    let man = w.run(&["man"]).ok().stdout();
    assert!(man.contains(".TH roster"), "{}", &man[..man.len().min(300)]);
    assert!(
        man.contains("Exit codes"),
        "the exit codes are in the man page"
    );
    let bad = w.run(&["completions", "tcsh"]);
    assert_eq!(bad.code(), 2);
    assert!(bad.stderr().contains("possible values"), "{}", bad.stderr());
}

#[test]
fn init_writes_a_pipeline_that_checks_once_filled_in() {
    let org = zivver::seed::load(&common::example("exchange-to-zivver/zivver/org.json")).unwrap();
    let (running, _shared) = zivver::start(org, Faults::default(), 0).unwrap();
    let w = Work::new();
    w.run(&["init", "--source", "csv", "--target", "zivver"])
        .ok();
    let text = w.read("csv-to-zivver.toml");
    assert!(
        text.contains("api_key = \"${env:ZIVVER_API_KEY}\""),
        "{text}"
    );
    assert!(
        text.contains("allowed_hosts = [\"app.zivver.com\"]"),
        "{text}"
    );
    let again = w.run(&["init", "--source", "csv", "--target", "zivver"]);
    assert_eq!(again.code(), 2);
    assert!(
        again.stderr().contains("never overwrites"),
        "{}",
        again.stderr()
    );
    let wrong = w.run(&[
        "init", "--source", "riva-crm", "--target", "csv", "--out", "x.toml",
    ]);
    assert_eq!(wrong.code(), 2);
    assert!(
        wrong
            .stderr()
            .contains("plugin `riva-crm` (riva-crm) cannot be a source; it can be a target"),
        "{}",
        wrong.stderr()
    );

    // Filled in as an admin would: the file checks and plans.
    let url = running.url();
    let filled = text
        .replacen("# directory = \"data\"", "directory = \"src\"", 1)
        .replace(
            "allowed_hosts = [\"app.zivver.com\"]",
            &format!("allowed_hosts = [\"{url}\"]"),
        )
        .replace(
            "# base_url = \"https://app.zivver.com/api/scim/v2/\"",
            &format!("base_url = \"{url}/api/scim/v2/\""),
        )
        .replace(
            "claimed_domains = []",
            "claimed_domains = [\"zivvertest.onmicrosoft.com\"]",
        );
    w.write("csv-to-zivver.toml", &filled);
    w.write("src/accounts.csv", HEADER);
    let env = |args: &[&str]| {
        Run::from(
            w.roster()
                .args(args)
                .env("ZIVVER_API_KEY", "zivver-demo-api-key")
                .output()
                .unwrap(),
        )
    };
    env(&["check", "csv-to-zivver.toml"]).ok();
    env(&["plan", "csv-to-zivver.toml"]).ok();
}

#[test]
fn the_cli_reference_names_every_command() {
    let help = Work::new().run(&["--help"]).ok().stdout();
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/cli.md")).unwrap();
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 12, "{commands:?}");
    for c in commands {
        assert!(
            doc.contains(&format!("| `{c}")),
            "docs/cli.md does not describe `{c}`"
        );
    }
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::process::Stdio;
    let w = setup("");
    let mut child = w
        .roster()
        .args(["plan", "pipeline.toml", "--show-skipped"])
        .env("COLUMNS", "250")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before roster writes (as `| head -0` would).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
}
