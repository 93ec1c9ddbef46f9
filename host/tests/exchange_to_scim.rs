//! Exchange Online (the Microsoft 365 simulator, seeded from the
//! exchange-to-zivver example) into the generic `scim` connector against a
//! real, independent SCIM server (`scim2-server` from PyPI): users and
//! groups created, a rename, a removed mailbox disabled, a group's members
//! changed; each second plan empty. Once with PATCH and ETags (what the
//! server offers), once forced to full PUTs.

mod common;

use common::scim_peer::{Peer, TOKEN};
use common::{Run, Work, example};
use roster_sim::{Faults, Running, m365};
use serde_json::{Value, json};

const Z: &str = "@zivvertest.onmicrosoft.com";
const BRUNO: &str = "fbf95ad5-8bf5-4d47-9999-a464fdcd3269";
const LAURENS: &str = "0317f127-358d-4d37-968b-7877304c211f";

struct Scenario {
    work: Work,
    m365: m365::Shared,
    peer: Peer,
    _running: Running,
}

impl Scenario {
    fn start(patch: &str) -> Scenario {
        let tenant = m365::seed::load(&example("exchange-to-zivver/m365/tenant.json")).unwrap();
        let (running, m365) = m365::start(tenant, Faults::default(), 0).unwrap();
        let peer = Peer::start(false);
        let origin = peer.url.trim_end_matches("/v2").to_string();
        let pipeline = std::fs::read_to_string(example("exchange-to-scim/exchange-to-scim.toml"))
            .unwrap()
            .replace("http://127.0.0.1:18401", &running.url())
            .replace("http://127.0.0.1:18403", &origin)
            .replace("patch = \"auto\"", &format!("patch = \"{patch}\""));
        let work = Work::new();
        work.write("pipeline.toml", &pipeline);
        Scenario {
            work,
            m365,
            peer,
            _running: running,
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut c = self.work.roster();
        c.env("EXCHANGE_CLIENT_SECRET", "sim-client-secret")
            .env("SCIM_TOKEN", TOKEN);
        Run::from(c.args(args).output().unwrap())
    }

    fn users(&self) -> Vec<Value> {
        self.peer.resources("Users?count=1000")
    }

    fn user(&self, name: &str) -> Value {
        self.users()
            .into_iter()
            .find(|u| u["userName"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no SCIM user {name}"))
    }

    /// The userNames of a group's members.
    fn members(&self, address: &str) -> Vec<String> {
        let users = self.users();
        let group = self
            .peer
            .resources("Groups?count=1000")
            .into_iter()
            .find(|g| g["externalId"] == address)
            .unwrap_or_else(|| panic!("no SCIM group {address}"));
        let mut names: Vec<String> = group["members"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let u = users
                    .iter()
                    .find(|u| u["id"] == m["value"])
                    .unwrap_or_else(|| panic!("member {m} is no user"));
                u["userName"].as_str().unwrap().to_string()
            })
            .collect();
        names.sort();
        names
    }

    fn plan_is_empty(&self, full: bool) {
        let mut args = vec!["plan", "pipeline.toml", "--json"];
        if full {
            args.push("--full");
        }
        let plan = self.run(&args).ok().json();
        assert!(plan["changes"].as_array().unwrap().is_empty(), "{plan:#}");
    }
}

fn at(locals: &[&str]) -> Vec<String> {
    locals.iter().map(|l| format!("{l}{Z}")).collect()
}

fn scenario(patch: &str) {
    let s = Scenario::start(patch);
    let plan = s.run(&["plan", "pipeline.toml", "--json"]).ok().json();
    assert_eq!(plan["summary"]["creates"], 27, "{:#}", plan["summary"]);
    let applied = s
        .run(&["apply", "pipeline.toml", "--yes", "--json"])
        .ok()
        .json();
    assert_eq!(applied["report"]["applied"], 27, "{applied:#}");
    assert_eq!(s.users().len(), 16);
    assert_eq!(s.peer.resources("Groups?count=1000").len(), 11);

    let bruno = s.user(&format!("bruno.broccoli{Z}"));
    assert_eq!(bruno["externalId"], BRUNO);
    assert_eq!(bruno["active"], true);
    let mut emails: Vec<&str> = bruno["emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    emails.sort();
    assert_eq!(
        emails,
        at(&["bruno.alias2", "bruno.alias", "bruno.broccoli"]),
        "the primary and the aliases"
    );
    assert_eq!(
        s.members(&format!("teampotato{Z}")),
        at(&["bruno.broccoli", "memo.delight", "rain.drift", "salted.pip"]),
        "a shared mailbox's FullAccess holders are the group's members"
    );
    s.plan_is_empty(false);

    // A rename, a deleted mailbox and a FullAccess holder removed.
    {
        let mut t = s.m365.tenant.write().unwrap();
        t.apply_graph_changes(&json!({"value": [
            {"id": BRUNO, "displayName": "Bruno Broccoli-Groen"}
        ]}))
        .unwrap();
        t.remove_user(LAURENS, "deleted");
        t.set_permissions(
            &format!("teampotato{Z}"),
            vec![
                json!({"User": format!("bruno.broccoli{Z}"), "PermissionList": [{"AccessRights": ["FullAccess"]}]}),
                json!({"User": format!("salted.pip{Z}"), "PermissionList": [{"AccessRights": ["FullAccess"]}]}),
            ],
        );
    }
    // Permissions are not in Graph's delta: a full read sees them.
    let plan = s
        .run(&["plan", "pipeline.toml", "--json", "--full"])
        .ok()
        .json();
    let mut actions: Vec<(String, String)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["action"].as_str().unwrap().into(),
                c["email"].as_str().unwrap().into(),
            )
        })
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        [
            ("disable".to_string(), format!("laurens.hellinger{Z}")),
            ("update".to_string(), format!("bruno.broccoli{Z}")),
            ("update".to_string(), format!("teampotato{Z}")),
            // Its holders reach teamtangerine through teampotato (delegates follow shared mailboxes).
            ("update".to_string(), format!("teamtangerine{Z}")),
        ],
        "{plan:#}"
    );
    s.run(&["apply", "pipeline.toml", "--yes", "--full"]).ok();
    let bruno = s.user(&format!("bruno.broccoli{Z}"));
    assert_eq!(bruno["displayName"], "Bruno Broccoli-Groen");
    assert_eq!(bruno["name"]["formatted"], "Bruno Broccoli-Groen");
    assert_eq!(
        bruno["externalId"], BRUNO,
        "what the update did not touch is kept"
    );
    assert_eq!(bruno["emails"].as_array().unwrap().len(), 3);
    assert_eq!(s.user(&format!("laurens.hellinger{Z}"))["active"], false);
    assert_eq!(
        s.members(&format!("teampotato{Z}")),
        at(&["bruno.broccoli", "salted.pip"])
    );
    assert_eq!(
        s.members(&format!("teamtangerine{Z}")),
        at(&["bruno.broccoli", "fancy.flip", "memo.delight", "salted.pip"]),
        "memo holds teamtangerine itself; rain only through teampotato"
    );
    s.plan_is_empty(true);
}

#[test]
fn exchange_into_a_real_scim_server_with_patch_and_etags() {
    scenario("auto");
}

#[test]
fn exchange_into_a_real_scim_server_with_full_puts() {
    scenario("false");
}
