//! The `zivver` component against a real, independent SCIM 2.0 server:
//! `scim2-server` from PyPI (installed by `cargo xtask test` into
//! `target/venv-scim`), started on loopback with the Zivver extension
//! schemas. Users and groups are created, updated and emptied through the
//! real binary; the server's own answers are checked.

mod common;

use common::scim_peer::{Peer, TOKEN};
use common::{HEADER, Work};
use serde_json::Value;

const SOURCE: &str = "\
s1,person,ann@corp.example,ann.alias@corp.example,Ann Smith,Ann,Smith,true,,key-1,,
s2,person,bob@corp.example,,Bob Jones,Bob,Jones,true,,key-2,,
s3,functional,team@corp.example,team.alias@corp.example,Team,,,true,,key-3,ann@corp.example;bob@corp.example,
";

fn pipeline(url: &str) -> String {
    let origin = url.trim_end_matches("/v2");
    format!(
        r#"
name = "peer"
source = "hr"
target = "zivver"

[connectors.hr]
plugin = "csv"
directory = "hr"
directory_read_only = true

[connectors.zivver]
plugin = "zivver"
allowed_hosts = ["{origin}"]
config = {{ base_url = "{url}/", api_key = "${{file:token}}" }}

[[stages]]
type = "link"

[[stages]]
type = "sync"
"#
    )
}

fn ext<'a>(u: &'a Value, key: &str) -> Vec<&'a str> {
    let mut v: Vec<&str> = u["urn:ietf:params:scim:schemas:zivver:0.1:User"][key]
        .as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn users_and_groups_are_created_updated_and_emptied_on_a_real_scim_server() {
    let peer = Peer::start(true);
    let w = Work::new();
    w.write("token", TOKEN);
    w.write("hr/accounts.csv", &format!("{HEADER}{SOURCE}"));
    w.write("pipeline.toml", &pipeline(&peer.url));

    let report = w
        .run(&["apply", "pipeline.toml", "--yes", "--json"])
        .ok()
        .json();
    assert_eq!(report["report"]["failed"], 0, "{report:#}");
    let users = peer.resources("Users");
    assert_eq!(users.len(), 2);
    let ann = users
        .iter()
        .find(|u| u["userName"] == "ann@corp.example")
        .unwrap();
    assert_eq!(ext(ann, "aliases"), ["ann.alias@corp.example"]);
    assert_eq!(ann["name"]["formatted"], "Ann Smith");
    assert_eq!(
        ann["urn:ietf:params:scim:schemas:zivver:0.1:User"]["SsoAccountKey"],
        "key-1"
    );
    let groups = peer.resources("Groups");
    assert_eq!(groups.len(), 1);
    let team = &groups[0];
    assert_eq!(team["externalId"], "team@corp.example");
    let mut member_ids: Vec<&str> = team["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    member_ids.sort();
    let mut user_ids: Vec<&str> = users.iter().map(|u| u["id"].as_str().unwrap()).collect();
    user_ids.sort();
    assert_eq!(member_ids, user_ids, "members are the delegates' user ids");

    let again = w.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    assert_eq!(again["changes"], serde_json::json!([]), "{again:#}");

    // A rename, a new alias, and the functional account loses its delegates.
    let changed = SOURCE
        .replace("Ann Smith", "Ann de Smith")
        .replace(
            "ann.alias@corp.example",
            "ann.alias@corp.example;a.smith@corp.example",
        )
        .replace("ann@corp.example;bob@corp.example", "");
    w.write("hr/accounts.csv", &format!("{HEADER}{changed}"));
    let report = w
        .run(&["apply", "pipeline.toml", "--yes", "--json"])
        .ok()
        .json();
    assert_eq!(report["report"]["failed"], 0, "{report:#}");
    let users = peer.resources("Users");
    let ann = users
        .iter()
        .find(|u| u["userName"] == "ann@corp.example")
        .unwrap();
    assert_eq!(ann["name"]["formatted"], "Ann de Smith");
    assert_eq!(
        ext(ann, "aliases"),
        ["a.smith@corp.example", "ann.alias@corp.example"]
    );
    let team = &peer.resources("Groups")[0];
    assert!(
        team["members"].as_array().is_none_or(Vec::is_empty),
        "{team:#}"
    );
    let again = w.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    assert_eq!(again["changes"], serde_json::json!([]), "{again:#}");
}

#[test]
fn the_exchange_to_zivver_pipeline_runs_against_the_real_scim_server() {
    use roster_sim::{Faults, m365};
    let peer = Peer::start(true);
    let example = common::example("exchange-to-zivver");
    let tenant = m365::seed::load(&example.join("m365/tenant.json")).unwrap();
    let (running, sim) = m365::start(tenant, Faults::default(), 0).unwrap();
    let origin = peer.url.trim_end_matches("/v2").to_string();
    let pipeline = std::fs::read_to_string(example.join("exchange-to-zivver.toml"))
        .unwrap()
        .replace("http://127.0.0.1:18401", &running.url())
        .replace(
            "http://127.0.0.1:18402/api/scim/v2/",
            &format!("{}/", peer.url),
        )
        .replace("http://127.0.0.1:18402", &origin);
    let w = Work::new();
    w.write("pipeline.toml", &pipeline);
    let run = |args: &[&str]| {
        common::Run::from(
            w.roster()
                .env("EXCHANGE_CLIENT_SECRET", "sim-client-secret")
                .env("ZIVVER_API_KEY", TOKEN)
                .args(args)
                .output()
                .unwrap(),
        )
    };
    let report = run(&["apply", "pipeline.toml", "--yes", "--json"])
        .ok()
        .json();
    assert_eq!(report["report"]["failed"], 0, "{report:#}");
    let users = peer.resources("Users");
    let groups = peer.resources("Groups");
    assert_eq!(
        (users.len(), groups.len()),
        (16, 11),
        "people and functional accounts"
    );
    let bruno = users
        .iter()
        .find(|u| u["userName"] == "bruno.broccoli@zivvertest.onmicrosoft.com")
        .unwrap();
    assert_eq!(
        ext(bruno, "aliases"),
        [
            "bruno.alias2@zivvertest.onmicrosoft.com",
            "bruno.alias@zivvertest.onmicrosoft.com"
        ]
    );
    let tangerine = groups
        .iter()
        .find(|g| g["externalId"] == "teamtangerine@zivvertest.onmicrosoft.com")
        .unwrap();
    assert_eq!(tangerine["members"].as_array().unwrap().len(), 5);
    let again = run(&["plan", "pipeline.toml", "--json"]).ok().json();
    assert_eq!(again["changes"], serde_json::json!([]), "{again:#}");

    // A rename in Exchange is one PUT on the peer.
    sim.tenant
        .write()
        .unwrap()
        .apply_graph_changes(&serde_json::json!({"value": [
            {"id": "fbf95ad5-8bf5-4d47-9999-a464fdcd3269", "displayName": "Bruno Groen"}
        ]}))
        .unwrap();
    let report = run(&["apply", "pipeline.toml", "--yes", "--json"])
        .ok()
        .json();
    assert_eq!(report["report"]["applied"], 1, "{report:#}");
    let bruno = peer
        .resources("Users")
        .into_iter()
        .find(|u| u["userName"] == "bruno.broccoli@zivvertest.onmicrosoft.com")
        .unwrap();
    assert_eq!(bruno["name"]["formatted"], "Bruno Groen");
}
