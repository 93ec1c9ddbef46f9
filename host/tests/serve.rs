//! `roster serve` through the real binary: several nodes on one database
//! of the machine's PostgreSQL (a database per test, dropped after), the
//! real components, the simulators over real HTTP, the API over real HTTP.

mod common;

use common::service::*;
use common::{HEADER, Work};
use roster_sim::{Faults, Running, m365, zivver};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `n` CSV pipelines, each from its own source directory into its own
/// target directory, with `rows` accounts each.
fn csv_pipelines(w: &Work, n: usize, rows: usize, every: &str, approval: &str) -> String {
    let mut config = String::new();
    for p in 0..n {
        let body: String = (0..rows)
            .map(|i| format!("u{i},person,p{p}u{i}@corp.example,,User {i},,,true,,k{i},,\n"))
            .collect();
        w.write(
            &format!("p{p}/src/accounts.csv"),
            &format!("{HEADER}{body}"),
        );
        w.write(&format!("p{p}/dst/accounts.csv"), HEADER);
        let pipeline = common::into_csv(
            &format!("tenant-{p}"),
            "src",
            "[connectors.src]\nplugin = \"csv\"\ndirectory = \"src\"\n",
        );
        w.write(&format!("p{p}/pipeline.toml"), &pipeline);
        config.push_str(&format!(
            "[[pipelines]]\nfile = \"p{p}/pipeline.toml\"\nevery = \"{every}\"\napproval = \"{approval}\"\n\n"
        ));
    }
    config
}

#[test]
fn three_nodes_run_ten_scheduled_pipelines_once_per_tick() {
    let db = Database::new("ten");
    let w = Work::new();
    // Ten tenants, each an Exchange organisation into its own Zivver.
    let pairs: Vec<Pair> = (0..10).map(|_| Pair::start(12, 0)).collect();
    let mut config = String::new();
    for (p, pair) in pairs.iter().enumerate() {
        w.write(
            &format!("tenant-{p}.toml"),
            &pair.pipeline(&format!("tenant-{p}"), 25),
        );
        config.push_str(&format!(
            "[[pipelines]]\nfile = \"tenant-{p}.toml\"\nevery = \"5s\"\n\n"
        ));
    }
    let nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        // A node counts as dead after 10 s without a heartbeat, not 3: on a
        // loaded machine a live node's heartbeat can be late, and the run
        // it holds would be run again by another (at least once, as
        // designed; this test is about ticks, not failover).
        .map(|n| Node::start_with(&w, &db, n, "missed_heartbeats = 10", &config, &SECRETS))
        .collect();
    // Long enough for several ticks of every pipeline.
    std::thread::sleep(Duration::from_secs(22));
    for mut n in nodes {
        assert!(
            n.terminate().success(),
            "node {} did not stop cleanly",
            n.name
        );
    }
    let rows = db.query(
        "SELECT pipeline || ' ' || tick || ' ' || node || ' ' || status FROM roster_serve.runs WHERE trigger = 'schedule' ORDER BY id",
    );
    let mut per_tick: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut nodes_seen = BTreeSet::new();
    let mut applied = BTreeMap::new();
    for line in rows.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        *per_tick
            .entry((f[0].to_string(), f[1].to_string()))
            .or_default() += 1;
        nodes_seen.insert(f[2].to_string());
        // A tick whose run finds the previous tick's still going is skipped.
        assert!(
            matches!(f[3], "applied" | "no-changes" | "skipped"),
            "{line}\n{rows}"
        );
        if f[3] == "applied" {
            *applied.entry(f[0].to_string()).or_insert(0) += 1;
        }
    }
    let twice: Vec<_> = per_tick.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "ticks run more than once: {twice:?}");
    for (p, pair) in pairs.iter().enumerate() {
        let name = format!("tenant-{p}");
        let ticks = per_tick.keys().filter(|(n, _)| *n == name).count();
        let skipped = rows
            .lines()
            .filter(|l| l.starts_with(&format!("{name} ")) && l.ends_with(" skipped"))
            .count();
        assert!(skipped <= 1, "{name}: {skipped} ticks skipped:\n{rows}");
        assert!(ticks >= 3, "{name} ran {ticks} ticks:\n{rows}");
        // The first run applied the accounts; the later ones found nothing to do.
        assert_eq!(applied.get(&name), Some(&1), "{rows}");
        // At the simulator: every user once, and nothing left to do.
        let users = pair.users();
        assert!(
            users.len() >= 10 && users.values().all(|n| *n == 1),
            "{name}: {users:?}"
        );
        let plan = plan_now(&w, &db, &format!("{name}.toml"));
        assert_eq!(plan["changes"], serde_json::json!([]), "{name}: {plan:#}");
    }
    assert!(nodes_seen.len() >= 2, "the work was shared: {nodes_seen:?}");
    // No run failed in the queue (a tick enqueued as the nodes stopped may wait).
    let failed =
        db.query("SELECT count(*) FROM apalis.jobs WHERE status NOT IN ('Done', 'Pending')");
    assert_eq!(
        failed,
        "0",
        "{}",
        db.query("SELECT status, last_result FROM apalis.jobs")
    );
}

/// An Exchange tenant of `mailboxes` and an empty Zivver organisation,
/// both answering after `latency_ms`, and the pipeline between them.
struct Pair {
    zivver: zivver::Shared,
    m365_url: String,
    zivver_url: String,
    _running: (Running, Running),
}

const ZIVVER_KEY: &str = "serve-test-api-key";

impl Pair {
    fn start(mailboxes: usize, latency_ms: u64) -> Pair {
        Pair::with(mailboxes, latency_ms, None)
    }

    /// With Zivver allowing `budget` requests per second (429 beyond).
    fn with(mailboxes: usize, latency_ms: u64, budget: Option<u32>) -> Pair {
        let tenant = m365::generate::tenant(&m365::generate::Spec::new(mailboxes, 7));
        let org = zivver::generate::from_tenant(&tenant, 0.0, 7, ZIVVER_KEY);
        let slow = Faults {
            latency_ms,
            throttle: budget.map(|budget| roster_sim::Throttle {
                budget,
                window_ms: 1000,
                retry_after: true,
                headers: true,
            }),
            ..Faults::default()
        };
        let (z, zivver) = zivver::start(org, slow, 0).unwrap();
        let (m, _) = m365::start(tenant, Faults::default(), 0).unwrap();
        Pair {
            zivver,
            m365_url: m.url(),
            zivver_url: z.url(),
            _running: (m, z),
        }
    }

    fn pipeline(&self, name: &str, batch: u32) -> String {
        self.pipeline_with(name, &format!("[apply]\nbatch_size = {batch}\n"), "")
    }

    fn pipeline_with(&self, name: &str, apply: &str, zivver_limits: &str) -> String {
        format!(
            r#"name = "{name}"
source = "exchange"
target = "zivver"

{apply}

[connectors.exchange]
plugin = "exchange-online"
allowed_hosts = ["{m}"]
[connectors.exchange.config]
tenant_id = "bench.example"
client_id = "roster-sim-client"
client_secret = "${{env:EXCHANGE_CLIENT_SECRET}}"
login_url = "{m}"
graph_url = "{m}"
admin_url = "{m}"

[connectors.zivver]
plugin = "zivver"
allowed_hosts = ["{z}"]
{zivver_limits}
[connectors.zivver.config]
base_url = "{z}/api/scim/v2/"
api_key = "${{env:ZIVVER_API_KEY}}"

[[stages]]
type = "filter"
claimed_domains = ["bench.example"]

[[stages]]
type = "link"

[[stages]]
type = "merge"
mode = "alias-only"

[[stages]]
type = "sync"
"#,
            m = self.m365_url,
            z = self.zivver_url
        )
    }

    /// Zivver's users by userName (lower case), how many of each.
    fn users(&self) -> BTreeMap<String, usize> {
        let state = self.zivver.org.read().unwrap().dump();
        let mut count = BTreeMap::new();
        for u in state["users"].as_array().unwrap() {
            let name = u["userName"].as_str().unwrap().to_lowercase();
            *count.entry(name).or_insert(0) += 1;
        }
        count
    }
}

/// `roster plan FILE --json` with the state the nodes keep.
fn plan_now(w: &Work, db: &Database, file: &str) -> Value {
    let out = w
        .roster()
        .args(["plan", file, "--json"])
        .env("ROSTER_STATE_URL", db.url())
        .envs(SECRETS)
        .output()
        .unwrap();
    json(&String::from_utf8_lossy(&out.stdout))
}

const SECRETS: [(&str, &str); 2] = [
    ("EXCHANGE_CLIENT_SECRET", "sim-client-secret"),
    ("ZIVVER_API_KEY", ZIVVER_KEY),
];

#[test]
fn a_run_whose_node_is_killed_is_finished_by_another_without_duplicates() {
    let db = Database::new("failover");
    let pair = Pair::start(400, 10);
    let w = Work::new();
    w.write("big.toml", &pair.pipeline("big", 10));
    let config = "[[pipelines]]\nfile = \"big.toml\"\nevery = \"1h\"\n";
    let mut nodes = vec![Node::start(&w, &db, "a", config, &SECRETS)];
    nodes.push(Node::start(&w, &db, "b", config, &SECRETS));
    // The hour's tick runs at once; wait until part of it is applied.
    wait_until(120, "the run applied some users", || {
        pair.users().len() >= 40
    });
    let holder = db.query("SELECT node FROM roster_serve.runs WHERE status = 'running'");
    let before = pair.users().len();
    let victim = nodes
        .iter()
        .position(|n| n.name == holder)
        .unwrap_or_else(|| panic!("running on `{holder}`"));
    nodes[victim].kill9();
    let survivor = &nodes[1 - victim];
    wait_until(180, "another node finished the run", || {
        db.query("SELECT count(*) FROM roster_serve.runs WHERE status = 'applied'") == "1"
    });
    let runs = db.query("SELECT node || ' ' || status || ' ' || attempt || ' ' || coalesce(job_id, '') FROM roster_serve.runs ORDER BY id");
    eprintln!("runs:\n{runs}\nusers before the kill: {before}");
    let lines: Vec<&str> = runs.lines().collect();
    assert_eq!(lines.len(), 2, "{runs}");
    let (first, second): (Vec<&str>, Vec<&str>) =
        (lines[0].split(' ').collect(), lines[1].split(' ').collect());
    assert_eq!(
        (first[0], first[1]),
        (holder.as_str(), "interrupted"),
        "{runs}"
    );
    assert_eq!(
        (second[0], second[1]),
        (survivor.name.as_str(), "applied"),
        "{runs}"
    );
    assert_eq!(first[3], second[3], "the same job, resumed: {runs}");
    assert_eq!((first[2], second[2]), ("1", "2"), "attempts: {runs}");
    // At the simulator: every user once, none lost.
    let users = pair.users();
    let twice: Vec<_> = users.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "duplicates: {twice:?}");
    assert!(
        users.len() > before,
        "the survivor went on: {before} then {}",
        users.len()
    );
    let plan = plan_now(&w, &db, "big.toml");
    assert_eq!(
        plan["changes"],
        serde_json::json!([]),
        "nothing lost: {plan:#}"
    );
}

/// Every route but health wants a token, and the least role it names:
/// (method, the route as the OpenAPI document names it, a concrete path, role).
const ROUTES: [(&str, &str, &str, &str); 19] = [
    (
        "GET",
        "/api/v1/runs/{id}/outcomes",
        "/api/v1/runs/1/outcomes",
        "viewer",
    ),
    (
        "GET",
        "/api/v1/pipelines/{name}/links",
        "/api/v1/pipelines/tenant-0/links",
        "viewer",
    ),
    (
        "POST",
        "/api/v1/pipelines/{name}/links",
        "/api/v1/pipelines/tenant-0/links",
        "operator",
    ),
    (
        "GET",
        "/api/v1/pipelines/{name}/connectors",
        "/api/v1/pipelines/tenant-0/connectors",
        "viewer",
    ),
    (
        "GET",
        "/api/v1/pipelines/{name}/plan",
        "/api/v1/pipelines/tenant-0/plan",
        "viewer",
    ),
    (
        "GET",
        "/api/v1/pipelines/{name}/explain",
        "/api/v1/pipelines/tenant-0/explain?address=p0u0@corp.example",
        "viewer",
    ),
    ("GET", "/metrics", "/metrics", "viewer"),
    (
        "GET",
        "/api/v1/openapi.json",
        "/api/v1/openapi.json",
        "viewer",
    ),
    ("GET", "/api/v1/pipelines", "/api/v1/pipelines", "viewer"),
    ("GET", "/api/v1/runs", "/api/v1/runs?limit=5", "viewer"),
    ("GET", "/api/v1/runs/{id}", "/api/v1/runs/1", "viewer"),
    (
        "GET",
        "/api/v1/runs/{id}/plan",
        "/api/v1/runs/1/plan",
        "viewer",
    ),
    ("GET", "/api/v1/approvals", "/api/v1/approvals", "viewer"),
    (
        "POST",
        "/api/v1/pipelines/{name}/runs",
        "/api/v1/pipelines/tenant-0/runs",
        "operator",
    ),
    (
        "POST",
        "/api/v1/pipelines/{name}/pause",
        "/api/v1/pipelines/tenant-0/pause",
        "operator",
    ),
    (
        "POST",
        "/api/v1/pipelines/{name}/resume",
        "/api/v1/pipelines/tenant-0/resume",
        "operator",
    ),
    (
        "POST",
        "/api/v1/runs/{id}/approve",
        "/api/v1/runs/1/approve",
        "operator",
    ),
    (
        "POST",
        "/api/v1/runs/{id}/reject",
        "/api/v1/runs/1/reject",
        "operator",
    ),
    ("GET", "/api/v1/audit", "/api/v1/audit", "admin"),
];

/// The routes without a token.
const OPEN: [&str; 2] = ["/healthz", "/readyz"];

/// The checked-in OpenAPI document.
fn openapi_file() -> String {
    std::fs::read_to_string(common::example("../docs/openapi.json")).unwrap()
}

/// One node serving CSV pipelines, with a viewer's and an operator's token.
struct Service {
    // Dropped in this order: the node before its database.
    node: Node,
    viewer: String,
    operator: String,
    w: Work,
    db: Database,
}

impl Service {
    fn csv(what: &str, rows: usize, approval: &str) -> Service {
        let db = Database::new(what);
        let w = Work::new();
        let config = csv_pipelines(&w, 1, rows, "1h", approval);
        w.write("serve.toml", &config);
        let node = Node::start(&w, &db, "a", &config, &[]);
        let viewer = token(&w, &db, "serve.toml", "viewer");
        let operator = token(&w, &db, "serve.toml", "operator");
        Service {
            node,
            viewer,
            operator,
            w,
            db,
        }
    }
}

fn call(method: &str, url: &str, token: Option<&str>) -> (u16, String) {
    match method {
        "GET" => get(url, token),
        _ => post(url, token, "{}"),
    }
}

#[test]
fn every_route_wants_a_token_of_its_role() {
    // Bound so that the node stops before its files and database go.
    let Service {
        db,
        w,
        node,
        viewer,
        operator,
    } = Service::csv("auth", 2, "manual");
    let admin = token(&w, &db, "serve.toml", "admin");
    for (path, code) in [("/healthz", 200), ("/readyz", 200)] {
        assert_eq!(get(&node.url(path), None).0, code, "{path}");
    }
    let rank = |r: &str| {
        ["viewer", "operator", "admin"]
            .iter()
            .position(|x| *x == r)
            .unwrap()
    };
    for (method, _, path, least) in ROUTES {
        let url = node.url(path);
        let (code, body) = call(method, &url, None);
        assert_eq!(code, 401, "{method} {path} without a token: {body}");
        let (code, _) = call(method, &url, Some("roster_0000"));
        assert_eq!(code, 401, "{method} {path} with an unknown token");
        for (role, t) in [
            ("viewer", &viewer),
            ("operator", &operator),
            ("admin", &admin),
        ] {
            let (code, body) = call(method, &url, Some(t));
            if rank(role) < rank(least) {
                assert_eq!(code, 403, "{method} {path} as {role}: {body}");
            } else {
                assert!(
                    ![401, 403].contains(&code),
                    "{method} {path} as {role}: {code} {body}"
                );
            }
        }
    }
    // Only hashes are kept; the tokens themselves are nowhere in the database.
    let kept = db.query("SELECT string_agg(hash, ',') FROM roster_serve.tokens");
    for t in [&viewer, &operator, &admin] {
        assert!(!kept.contains(t.as_str()));
        assert!(kept.contains(&common_hash(t)));
    }
    // Each write is in the audit log, under the token's name.
    let (_, audit) = get(&node.url("/api/v1/audit"), Some(&admin));
    let audit = json(&audit);
    let actions: Vec<String> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a["action"].as_str().unwrap(),
                a["actor"].as_str().unwrap()
            )
        })
        .collect();
    for expected in [
        "run token:operator",
        "pause token:operator",
        "resume token:operator",
        "run token:admin",
    ] {
        assert!(
            actions.iter().any(|a| a.starts_with(expected)),
            "{expected} in {actions:?}"
        );
    }
    assert!(
        !audit.to_string().contains(&operator),
        "no token in the audit log"
    );
    // The server's OpenAPI document is the one checked in, and it lists
    // exactly the routes above, each with the bearer scheme but health.
    let (code, served) = get(&node.url("/api/v1/openapi.json"), Some(&viewer));
    assert_eq!(code, 200);
    assert_eq!(
        served,
        openapi_file(),
        "docs/openapi.json is stale: roster serve openapi > docs/openapi.json"
    );
    let doc = json(&served);
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            documented.insert((method.to_uppercase(), path.clone()));
            let secured = op.get("security").is_some();
            assert_eq!(
                secured,
                !OPEN.contains(&path.as_str()),
                "{method} {path} security"
            );
        }
    }
    let mut routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _, _)| (m.to_string(), p.to_string()))
        .collect();
    routed.extend(OPEN.iter().map(|p| ("GET".to_string(), p.to_string())));
    assert_eq!(documented, routed);
}

#[test]
fn the_openapi_document_checked_in_is_the_one_the_binary_makes() {
    let w = Work::new();
    let out = w.run(&["serve", "openapi"]).ok();
    assert_eq!(
        out.stdout(),
        openapi_file(),
        "docs/openapi.json is stale: roster serve openapi > docs/openapi.json"
    );
}

fn common_hash(token: &str) -> String {
    roster::serve::token::hash(token)
}

fn pending(node: &Node, token: &str) -> Vec<Value> {
    let (code, body) = get(&node.url("/api/v1/approvals?pending=true"), Some(token));
    assert_eq!(code, 200, "{body}");
    json(&body).as_array().unwrap().clone()
}

fn run_status(node: &Node, token: &str, id: i64) -> String {
    let (_, body) = get(&node.url(&format!("/api/v1/runs/{id}")), Some(token));
    json(&body)["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn an_approval_applies_the_approved_plan_and_a_stale_one_is_refused() {
    // Bound so that the node stops before its files and database go.
    let Service {
        db,
        w,
        node,
        viewer,
        operator,
    } = Service::csv("approve", 3, "manual");
    // The hour's tick plans, and the plan waits.
    wait_until(60, "a plan waits for approval", || {
        pending(&node, &viewer).len() == 1
    });
    let first = pending(&node, &viewer)[0]["run_id"].as_i64().unwrap();
    assert_eq!(run_status(&node, &viewer, first), "awaiting-approval");
    let (_, plan) = get(
        &node.url(&format!("/api/v1/runs/{first}/plan")),
        Some(&viewer),
    );
    assert_eq!(
        json(&plan)["changes"].as_array().unwrap().len(),
        3,
        "{plan}"
    );
    assert_eq!(
        w.read("p0/dst/accounts.csv"),
        HEADER,
        "nothing applied before approval"
    );
    // A viewer may read the plan but not approve it.
    let (code, _) = post(
        &node.url(&format!("/api/v1/runs/{first}/approve")),
        Some(&viewer),
        "{}",
    );
    assert_eq!(code, 403);

    // The source changes before the approval: the approved plan is stale.
    let src = w.read("p0/src/accounts.csv");
    w.write(
        "p0/src/accounts.csv",
        &format!("{src}u9,person,late@corp.example,,Late,,,true,,k9,,\n"),
    );
    let approved = w
        .roster()
        .args([
            "approve",
            "serve.toml",
            &first.to_string(),
            "--comment",
            "looks right",
            "--json",
        ])
        .env("ROSTER_DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    assert_eq!(
        json(&String::from_utf8_lossy(&approved.stdout))["status"],
        "approved"
    );
    wait_until(60, "the approval run ended", || {
        db.query("SELECT status FROM roster_serve.runs WHERE trigger = 'approval'") == "stale"
    });
    assert_eq!(
        w.read("p0/dst/accounts.csv"),
        HEADER,
        "a stale plan is not applied"
    );
    assert_eq!(
        db.query(&format!(
            "SELECT status FROM roster_serve.approvals WHERE run_id = {first}"
        )),
        "stale"
    );
    // Approving it again is refused: it is no longer pending.
    let (code, body) = post(
        &node.url(&format!("/api/v1/runs/{first}/approve")),
        Some(&operator),
        "{}",
    );
    assert_eq!(code, 409, "{body}");

    // A new run plans the four accounts; approved as is, it is applied.
    let (code, body) = post(
        &node.url("/api/v1/pipelines/tenant-0/runs"),
        Some(&operator),
        "{}",
    );
    assert_eq!(code, 200, "{body}");
    wait_until(60, "the new plan waits", || {
        pending(&node, &viewer)
            .first()
            .is_some_and(|a| a["run_id"].as_i64() != Some(first))
    });
    let second = pending(&node, &viewer)[0]["run_id"].as_i64().unwrap();
    let (code, body) = post(
        &node.url(&format!("/api/v1/runs/{second}/approve")),
        Some(&operator),
        r#"{"comment": "four new starters"}"#,
    );
    assert_eq!(code, 200, "{body}");
    wait_until(60, "the approved plan was applied", || {
        db.query(&format!(
            "SELECT status FROM roster_serve.approvals WHERE run_id = {second}"
        )) == "applied"
    });
    assert_eq!(
        w.read("p0/dst/accounts.csv").lines().count(),
        5,
        "the four accounts"
    );
    let statuses = db.query(
        "SELECT string_agg(trigger || ':' || status, ' ' ORDER BY id) FROM roster_serve.runs",
    );
    assert_eq!(
        statuses,
        "schedule:awaiting-approval approval:stale manual:awaiting-approval approval:applied",
    );
    let audit = db.query("SELECT string_agg(action || ' ' || actor || ' ' || coalesce(detail, ''), '; ' ORDER BY id) FROM roster_serve.audit WHERE action IN ('approve', 'reject', 'run')");
    assert!(
        audit.contains("approve cli:") && audit.contains("looks right"),
        "{audit}"
    );
    assert!(
        audit.contains("approve token:operator-") && audit.contains("four new starters"),
        "{audit}"
    );
    // The metrics count the runs by outcome.
    let (_, metrics) = get(&node.url("/metrics"), Some(&viewer));
    assert!(
        metrics.contains("roster_runs_total{pipeline=\"tenant-0\",outcome=\"applied\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("roster_pending_approvals 0"), "{metrics}");
}

/// A webhook receiver on loopback: answers the first `fail` requests 503,
/// then 200; keeps every body.
struct Hook {
    port: u16,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Hook {
    fn start(fail: usize) -> Hook {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                kept.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
                let status = if n < fail {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Hook { port, bodies }
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| json(b))
            .collect()
    }
}

#[test]
fn a_failure_and_a_waiting_plan_are_notified_by_webhook_and_command() {
    let db = Database::new("notify");
    let w = Work::new();
    let hook = Hook::start(1);
    let mut config = csv_pipelines(&w, 2, 2, "1h", "manual");
    config = config.replace(
        "approval = \"manual\"\n",
        "approval = \"manual\"\nnotify = [\"ops\"]\n",
    );
    // The second pipeline's target file is not a roster CSV: its runs fail.
    w.write("p1/dst/accounts.csv", "name,mail\nx,y\n");
    config.push_str(&format!(
        "[notify.ops]\nwebhook = \"http://127.0.0.1:{}/hook\"\ncommand = [\"sh\", \"-c\", \"cat >> notified.jsonl; echo >> notified.jsonl\"]\n",
        hook.port
    ));
    let _node = Node::start(&w, &db, "a", &config, &[]);
    // The first answer is 503: the webhook is tried again (after 1 s).
    wait_until(60, "both notices delivered", || {
        let events: BTreeSet<String> = hook
            .bodies()
            .iter()
            .map(|b| b["event"].to_string())
            .collect();
        events.len() == 2 && hook.bodies().len() >= 3
    });
    let bodies = hook.bodies();
    let approval = bodies.iter().find(|b| b["event"] == "approval").unwrap();
    assert_eq!(approval["pipeline"], "tenant-0", "{approval:#}");
    assert_eq!(approval["status"], "awaiting-approval");
    assert_eq!(approval["changes"], 2);
    assert_eq!(approval["node"], "a");
    let failure = bodies.iter().find(|b| b["event"] == "failure").unwrap();
    assert_eq!(failure["pipeline"], "tenant-1", "{failure:#}");
    assert_eq!(failure["status"], "failed");
    assert!(
        failure["message"]
            .as_str()
            .unwrap()
            .contains("accounts.csv"),
        "{failure:#}"
    );
    // Three deliveries for two notices: the one answered 503 was sent again.
    assert_eq!(bodies.len(), 3, "{bodies:#?}");
    wait_until(30, "the command ran twice", || {
        std::fs::read_to_string(w.path("notified.jsonl"))
            .is_ok_and(|t| t.lines().filter(|l| !l.is_empty()).count() == 2)
    });
    let lines = w.read("notified.jsonl");
    assert!(
        lines.contains("\"event\":\"approval\"") && lines.contains("\"event\":\"failure\""),
        "{lines}"
    );
}

#[test]
fn sigterm_finishes_the_batch_and_hands_the_run_to_another_node() {
    let db = Database::new("sigterm");
    let pair = Pair::start(300, 10);
    let w = Work::new();
    w.write("big.toml", &pair.pipeline("big", 10));
    let config = "[[pipelines]]\nfile = \"big.toml\"\nevery = \"1h\"\n";
    let mut a = Node::start(&w, &db, "a", config, &SECRETS);
    wait_until(120, "a applied some users", || pair.users().len() >= 30);
    // Only now a second node: the run is certainly a's.
    let b = Node::start(&w, &db, "b", config, &SECRETS);
    let stopping = Instant::now();
    assert!(a.terminate().success(), "{}", w.read("a.log"));
    let stopped_in = stopping.elapsed();
    let at_stop = pair.users().len();
    assert!(at_stop < 300, "a stopped before the end ({at_stop})");
    wait_until(180, "b finished the run", || {
        db.query("SELECT count(*) FROM roster_serve.runs WHERE status = 'applied'") == "1"
    });
    let runs = db.query("SELECT node || ' ' || status FROM roster_serve.runs ORDER BY id");
    assert_eq!(runs, "a interrupted\nb applied", "{runs}");
    let users = pair.users();
    assert!(users.values().all(|n| *n == 1), "no duplicates");
    assert!(users.len() > at_stop);
    let log = w.read("a.log");
    assert!(log.contains("runs in flight finish their batch"), "{log}");
    eprintln!("a stopped {stopped_in:?} after SIGTERM; b went on from {at_stop} users");
    drop(b);
}

#[test]
fn a_ranked_pipeline_is_applied_by_several_nodes_within_one_shared_budget() {
    let db = Database::new("ranks");
    // Zivver answers 429 beyond 25 requests a second; the connector's grant
    // is 10 a second (bursts of 10): at most 20 in any second, for the
    // pipeline as a whole however many nodes apply it.
    let pair = Pair::with(120, 5, Some(25));
    let w = Work::new();
    let limits = "limits = { rate_limit = { requests = 10, per_seconds = 1.0 } }";
    w.write(
        "ranked.toml",
        &pair.pipeline_with("ranked", "[apply]\nbatch_size = 10\nranks = 3\n", limits),
    );
    // One worker a node, so that one node cannot take every rank.
    let config = "[[pipelines]]\nfile = \"ranked.toml\"\nevery = \"1h\"\n";
    let nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|n| Node::start_with(&w, &db, n, "workers = 1\n", config, &SECRETS))
        .collect();
    wait_until(240, "the three ranks ran", || {
        db.query("SELECT count(*) FROM roster_serve.runs WHERE status NOT IN ('running')") == "3"
    });
    let runs = db.query("SELECT rank || ' ' || node || ' ' || status || ' ' || coalesce(applied, 0) || ' ' || coalesce(failed, 0) FROM roster_serve.runs ORDER BY rank");
    let lines: Vec<Vec<&str>> = runs.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(
        lines.iter().map(|l| l[0]).collect::<Vec<_>>(),
        ["1", "2", "3"],
        "{runs}"
    );
    let failed = db.query("SELECT string_agg(key || ': ' || coalesce(error, ''), E'\n') FROM roster_ranked.journal WHERE status <> 'applied'");
    let messages =
        db.query("SELECT string_agg(coalesce(message, ''), E'\n') FROM roster_serve.runs");
    assert!(
        lines.iter().all(|l| l[2] == "applied"),
        "{runs}\n{failed}\n{messages}"
    );
    assert!(
        lines.iter().all(|l| l[3].parse::<u32>().unwrap() > 0),
        "each rank applied a share: {runs}"
    );
    let by: BTreeSet<&str> = lines.iter().map(|l| l[1]).collect();
    assert!(by.len() >= 2, "ranks on different nodes: {runs}");
    let stats = pair.zivver.faults.stats();
    assert_eq!(stats.throttled, 0, "no 429 from the target: {stats:?}");
    let users = pair.users();
    assert!(users.values().all(|n| *n == 1), "no duplicates");
    // A team whose delegates another rank created gets them on the next
    // run: one more, asked for through the API.
    w.write("serve.toml", config);
    let operator = token(&w, &db, "serve.toml", "operator");
    let (code, body) = post(
        &nodes[0].url("/api/v1/pipelines/ranked/runs"),
        Some(&operator),
        "{}",
    );
    assert_eq!(code, 200, "{body}");
    wait_until(240, "the second run's three ranks", || {
        db.query("SELECT count(*) FROM roster_serve.runs WHERE trigger = 'manual' AND status IN ('applied', 'no-changes')") == "3"
    });
    assert_eq!(pair.zivver.faults.stats().throttled, 0);
    let plan = plan_now(&w, &db, "ranked.toml");
    assert_eq!(
        plan["changes"],
        serde_json::json!([]),
        "nothing left: {plan:#}"
    );
    eprintln!("ranks: {runs}; {} Zivver requests", stats.requests);
    // JSON logs: every line of a run says its pipeline, node and rank,
    // also the connectors' own lines deep inside the apply.
    let mut connector_lines = 0;
    for node in &nodes {
        for line in w
            .read(&format!("{}.log", node.name))
            .lines()
            .filter(|l| l.starts_with('{'))
        {
            let line = json(line);
            let Some(run) = line["spans"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s.get("service_run").is_some()))
            else {
                continue;
            };
            assert_eq!(run["node"], node.name.as_str(), "{line}");
            assert_eq!(run["pipeline"], "ranked", "{line}");
            assert!((1..=3).contains(&run["rank"].as_u64().unwrap()), "{line}");
            if line["fields"].get("connector").is_some() {
                connector_lines += 1;
            }
        }
    }
    assert!(
        connector_lines > 0,
        "connector log lines carry the run's fields"
    );
    // Metrics: the run, the target's requests, the connector's memory, the accounts.
    let (_, metrics) = get(&nodes[0].url("/metrics"), Some(&operator));
    for expected in [
        "roster_runs_total{pipeline=\"ranked\",outcome=\"",
        "roster_target_requests_total{connector=\"zivver\"}",
        "roster_connector_memory_peak_bytes_count{connector=\"zivver\"}",
        "roster_accounts{pipeline=\"ranked\",side=\"source\"} 1",
        "roster_queue_depth 0",
        "roster_changes_total{pipeline=\"ranked\",kind=\"create\",result=\"applied\"}",
        "roster_connector_call_seconds_count{connector=\"zivver\",call=\"",
    ] {
        assert!(metrics.contains(expected), "{expected} in\n{metrics}");
    }
    drop(nodes);
}

#[test]
fn the_api_reads_and_stages_links_as_the_cli_does() {
    // Bound so that the node stops before its files and database go.
    let Service {
        db,
        w,
        node,
        viewer,
        operator,
    } = Service::csv("links", 3, "auto");
    wait_until(60, "the first run applied", || {
        db.query("SELECT count(*) FROM roster_serve.runs WHERE status = 'applied'") == "1"
    });
    let cli = |args: &[&str]| {
        let out = w
            .roster()
            .args(args)
            .env("ROSTER_STATE_URL", db.url())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json(&String::from_utf8_lossy(&out.stdout))
    };
    let url = |path: &str| node.url(&format!("/api/v1/pipelines/tenant-0{path}"));
    // The first run, account by account.
    let (code, outcomes) = get(&node.url("/api/v1/runs/1/outcomes"), Some(&viewer));
    assert_eq!(code, 200, "{outcomes}");
    let outcomes = json(&outcomes);
    let rows: Vec<(&str, &str)> = outcomes["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["account"].as_str().unwrap(),
                o["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("p0u0@corp.example", "applied"),
            ("p0u1@corp.example", "applied"),
            ("p0u2@corp.example", "applied")
        ],
        "{outcomes:#}"
    );
    // The links, as `roster links --json` shows them.
    let (code, links) = get(&url("/links"), Some(&viewer));
    assert_eq!(code, 200, "{links}");
    assert_eq!(json(&links), cli(&["links", "p0/pipeline.toml", "--json"]));
    assert_eq!(json(&links)["links"].as_array().unwrap().len(), 3);
    // Bad requests are refused and say why.
    let (code, body) = post(
        &url("/links"),
        Some(&operator),
        r#"{"source": "p0u1@corp.example", "target": " "}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("target account id is empty"), "{body}");
    let (code, body) = post(&url("/links"), Some(&operator), "not json");
    assert_eq!(code, 400, "{body}");
    // An unlink, staged: the links show it, the plan carries it out.
    let (code, body) = post(
        &url("/links"),
        Some(&operator),
        r#"{"source": "P0U1@corp.example", "target": null}"#,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["source"], "p0u1@corp.example");
    let (_, links) = get(&url("/links"), Some(&viewer));
    assert_eq!(json(&links), cli(&["links", "p0/pipeline.toml", "--json"]));
    assert!(links.contains("p0u1@corp.example"), "{links}");
    let (code, plan) = get(&url("/plan"), Some(&viewer));
    assert_eq!(code, 200, "{plan}");
    let plan = json(&plan);
    assert_eq!(
        plan["unlinks"][0]["source_email"], "p0u1@corp.example",
        "{plan:#}"
    );
    assert_eq!(plan["changes"], serde_json::json!([]));
    // explain, and the connectors with their grants.
    let (code, explained) = get(&url("/explain?address=p0u2@corp.example"), Some(&viewer));
    assert_eq!(code, 200, "{explained}");
    assert_eq!(
        json(&explained),
        cli(&["explain", "p0/pipeline.toml", "p0u2@corp.example", "--json"])
    );
    let (code, connectors) = get(&url("/connectors"), Some(&viewer));
    assert_eq!(code, 200, "{connectors}");
    let connectors = json(&connectors);
    let names: Vec<&str> = connectors["connectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dst", "src"]);
    let audit = db.query("SELECT string_agg(action || ' ' || detail, '; ') FROM roster_serve.audit WHERE action = 'links.stage'");
    assert_eq!(audit, "links.stage unlink p0u1@corp.example");
}

#[test]
fn the_api_speaks_tls_when_given_a_certificate() {
    let db = Database::new("tls");
    let w = Work::new();
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ])
        .current_dir(w.dir.path())
        .output()
        .expect("openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let pipelines = csv_pipelines(&w, 1, 1, "1h", "auto");
    // Half a pair is a located error.
    w.write(
        "half.toml",
        &format!("[server]\ntls_cert = \"cert.pem\"\n{pipelines}"),
    );
    let half = w
        .roster()
        .args(["serve", "half.toml"])
        .env("ROSTER_DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert_eq!(half.status.code(), Some(2));
    let said = String::from_utf8_lossy(&half.stderr);
    assert!(
        said.contains("half.toml:2:12") && said.contains("needs server.tls_key"),
        "{said}"
    );
    let port = free_port();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n\n{pipelines}"
    );
    w.write("serve.toml", &config);
    let log = std::fs::File::create(w.path("tls.log")).unwrap();
    let mut child = w
        .roster()
        .args(["serve", "serve.toml"])
        .env("ROSTER_DATABASE_URL", db.url())
        .stdin(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let curl = |path: &str, extra: &[&str]| {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "5",
                "--cacert",
                "cert.pem",
                "-w",
                "\n%{http_code}",
            ])
            .args(extra)
            .arg(format!("https://127.0.0.1:{port}{path}"))
            .current_dir(w.dir.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_until(60, "the TLS API answers", || {
        curl("/readyz", &[]).ends_with("200")
    });
    assert_eq!(curl("/healthz", &[]), "ok\n\n200");
    let viewer = token(&w, &db, "serve.toml", "viewer");
    let auth = format!("Authorization: Bearer {viewer}");
    let pipelines = curl("/api/v1/pipelines", &["-H", &auth]);
    assert!(
        pipelines.ends_with("200") && pipelines.contains("tenant-0"),
        "{pipelines}"
    );
    // Plain HTTP gets no answer from a TLS port.
    assert!(
        ureq::get(&format!("http://127.0.0.1:{port}/healthz"))
            .call()
            .is_err()
    );
    assert!(
        w.read("tls.log")
            .contains(&format!("https://127.0.0.1:{port}"))
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn finished_queue_jobs_older_than_a_month_are_forgotten() {
    use roster::serve::job::{RunJob, Trigger};
    let db = Database::new("prune");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let service = roster::serve::db::ServiceDb::open(&db.url()).await.unwrap();
        for tick in [1, 2, 3] {
            let job = RunJob { pipeline: "p".into(), trigger: Trigger::Schedule { tick }, rank: None };
            assert!(roster::serve::node::enqueue_on(&service, "roster", &job).await.unwrap());
        }
        // The same tick again is not a second job.
        let again = RunJob { pipeline: "p".into(), trigger: Trigger::Schedule { tick: 1 }, rank: None };
        assert!(!roster::serve::node::enqueue_on(&service, "roster", &again).await.unwrap());
        db.query("UPDATE apalis.jobs SET status = 'Done', done_at = now() - interval '40 days' WHERE idempotency_key = 'p@1'");
        db.query("UPDATE apalis.jobs SET status = 'Done', done_at = now() - interval '2 days' WHERE idempotency_key = 'p@2'");
        assert_eq!(service.prune_queue("roster", 30).await.unwrap(), 1);
        assert_eq!(service.prune_queue("other-queue", 0).await.unwrap(), 0);
        // The console's rows of a plan decided long ago go; the plan stays.
        db.query("INSERT INTO roster_serve.runs (id, pipeline, trigger, node, status) VALUES (1, 'p', 'schedule', 'n', 'applied'), (2, 'p', 'schedule', 'n', 'awaiting-approval')");
        db.query("INSERT INTO roster_serve.approvals (run_id, pipeline, plan_id, plan, status, head, decided_at) VALUES (1, 'p', 'a', '{}', 'applied', '{}', now() - interval '40 days'), (2, 'p', 'b', '{}', 'pending', '{}', NULL)");
        db.query("INSERT INTO roster_serve.approval_rows (run_id, seq, kind, search, body) VALUES (1, 0, 'create', 'x', '{}'), (2, 0, 'create', 'y', '{}')");
        assert_eq!(service.prune_plan_rows(30).await.unwrap(), 1);
        assert_eq!(db.query("SELECT string_agg(run_id::text, ' ') FROM roster_serve.approval_rows"), "2");
        assert_eq!(db.query("SELECT count(*) FROM roster_serve.approvals WHERE head IS NULL AND plan = '{}'"), "1");
    });
    let left = db.query("SELECT string_agg(idempotency_key || ':' || status, ' ' ORDER BY idempotency_key) FROM apalis.jobs");
    assert_eq!(left, "p@2:Done p@3:Pending");
}

#[test]
fn a_paused_pipeline_is_not_scheduled_until_resumed() {
    let db = Database::new("pause");
    let w = Work::new();
    let config = csv_pipelines(&w, 1, 1, "2s", "auto");
    w.write("serve.toml", &config);
    let node = Node::start(&w, &db, "a", &config, &[]);
    let operator = token(&w, &db, "serve.toml", "operator");
    let runs = || {
        db.query("SELECT count(*) FROM roster_serve.runs")
            .parse::<u32>()
            .unwrap()
    };
    wait_until(60, "a first run", || runs() >= 1);
    let (code, body) = post(
        &node.url("/api/v1/pipelines/tenant-0/pause"),
        Some(&operator),
        "",
    );
    assert_eq!(code, 200, "{body}");
    let (_, listed) = get(&node.url("/api/v1/pipelines"), Some(&operator));
    assert_eq!(json(&listed)[0]["paused"], true, "{listed}");
    // A tick enqueued just before the pause may still run; none after it.
    std::thread::sleep(Duration::from_secs(3));
    let paused_at = runs();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(runs(), paused_at, "no run while paused");
    let (code, _) = post(
        &node.url("/api/v1/pipelines/tenant-0/resume"),
        Some(&operator),
        "",
    );
    assert_eq!(code, 200);
    wait_until(30, "runs again after resume", || runs() > paused_at);
}

#[test]
fn serve_check_shows_each_schedule_or_every_problem_located() {
    let w = Work::new();
    let mut config = csv_pipelines(&w, 2, 1, "15m", "auto");
    config = config.replacen(
        "every = \"15m\"",
        "cron = \"0 2 * * 1-5\"\ntimezone = \"Europe/Amsterdam\"",
        1,
    );
    w.write("serve.toml", &config);
    let check = |file: &str| {
        w.roster()
            .args(["serve", "check", file])
            .env("ROSTER_DATABASE_URL", server_url())
            .output()
            .unwrap()
    };
    let out = check("serve.toml");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("tenant-0: cron 0 2 * * 1-5 (Europe/Amsterdam), next "),
        "{shown}"
    );
    assert!(shown.contains("tenant-1: every 15m, next "), "{shown}");
    // A ranked pipeline may not wait for approval; a bad zone; an unknown target.
    let p1 = w.read("p1/pipeline.toml");
    w.write(
        "p1/pipeline.toml",
        &p1.replacen("[[stages]]", "[apply]\nranks = 2\n\n[[stages]]", 1),
    );
    let bad = config
        .replacen(
            "approval = \"auto\"",
            "approval = \"manual\"\nnotify = [\"opps\"]",
            2,
        )
        .replace("Europe/Amsterdam", "Europe/Atlantis");
    w.write(
        "bad.toml",
        &format!("{bad}[notify.ops]\ncommand = [\"true\"]\n"),
    );
    let out = check("bad.toml");
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "timezone: `Europe/Atlantis` is not an IANA time zone",
        "notify: no [notify.opps] table (did you mean `ops`?)",
        "tenant-1 is split into 2 ranks",
    ] {
        assert!(said.contains(expected), "{expected} in\n{said}");
    }
    assert!(said.contains("bad.toml:"), "located: {said}");
}
