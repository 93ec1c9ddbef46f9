//! `roster serve` through the real binary: several nodes on one database
//! of the machine's PostgreSQL (a database per test, dropped after), the
//! real components, the simulators over real HTTP, the API over real HTTP.

mod common;

use common::{HEADER, Work};
use roster_sim::{Faults, Running, m365, zivver};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn server_url() -> String {
    std::env::var("ROSTER_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A database of its own for one test (apalis keeps its queue in a fixed
/// schema, so a schema per test would not keep tests apart).
struct Database(String);

impl Database {
    fn new(what: &str) -> Database {
        let name = format!("roster_sv_{what}_{}", std::process::id());
        psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        psql(&format!("CREATE DATABASE {name}"));
        Database(name)
    }

    fn url(&self) -> String {
        let base = server_url();
        let (root, _) = base.rsplit_once('/').expect("a database URL");
        format!("{root}/{}", self.0)
    }

    /// One value from a query on this database.
    fn query(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([self.url().as_str(), "-tA", "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0));
    }
}

fn psql(sql: &str) {
    let out = Command::new("psql")
        .args([server_url().as_str(), "-tA", "-c", sql])
        .output()
        .expect("psql on the PATH");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A free loopback port for a node's API.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Node {
    child: Child,
    port: u16,
    name: String,
}

impl Node {
    fn start(w: &Work, db: &Database, name: &str, config: &str, env: &[(&str, &str)]) -> Node {
        let port = free_port();
        let file = format!("serve-{name}.toml");
        w.write(
            &file,
            &format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\nnode = \"{name}\"\nheartbeat_secs = 1\nmissed_heartbeats = 3\n\n{config}"
            ),
        );
        let log = std::fs::File::create(w.path(&format!("{name}.log"))).unwrap();
        let child = w
            .roster()
            .args(["serve", &file, "-v"])
            .env("ROSTER_DATABASE_URL", db.url())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("roster serve");
        let node = Node {
            child,
            port,
            name: name.into(),
        };
        node.wait_ready(w);
        node
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn wait_ready(&self, w: &Work) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if let Ok(r) = ureq::get(&self.url("/readyz")).call()
                && r.status() == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "node {} not ready: {}",
            self.name,
            w.read(&format!("{}.log", self.name))
        );
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        unsafe_term(self.child.id());
        self.child.wait().unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_term(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

/// A token of `role`, made with the CLI.
fn token(w: &Work, db: &Database, config: &str, role: &str) -> String {
    let out = w
        .roster()
        .args([
            "serve",
            "token",
            "create",
            config,
            "--role",
            role,
            "--name",
            &format!("{role}-{}", fastrand_name()),
        ])
        .env("ROSTER_DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn fastrand_name() -> String {
    format!(
        "{:x}",
        Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id())
    )
}

fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = ureq::get(url);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    answer(req.config().http_status_as_error(false).build().call())
}

fn post(url: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut req = ureq::post(url).header("Content-Type", "application/json");
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    answer(req.config().http_status_as_error(false).build().send(body))
}

fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, String) {
    let mut r = r.expect("an HTTP answer");
    let status = r.status().as_u16();
    (status, r.body_mut().read_to_string().unwrap_or_default())
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Waits until `done` holds, or fails after `secs` with `what`.
fn wait_until(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("after {secs} s: {what}");
}

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
    let config = csv_pipelines(&w, 10, 5, "3s", "auto");
    let nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|n| Node::start(&w, &db, n, &config, &[]))
        .collect();
    // Long enough for several ticks of every pipeline.
    std::thread::sleep(Duration::from_secs(14));
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
        assert!(matches!(f[3], "applied" | "no-changes"), "{line}\n{rows}");
        if f[3] == "applied" {
            *applied.entry(f[0].to_string()).or_insert(0) += 1;
        }
    }
    let twice: Vec<_> = per_tick.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "ticks run more than once: {twice:?}");
    for p in 0..10 {
        let name = format!("tenant-{p}");
        let ticks = per_tick.keys().filter(|(n, _)| *n == name).count();
        assert!(ticks >= 3, "{name} ran {ticks} ticks:\n{rows}");
        // The first run applied the accounts; the later ones found nothing to do.
        assert_eq!(applied.get(&name), Some(&1), "{rows}");
        let dst = w.read(&format!("p{p}/dst/accounts.csv"));
        assert_eq!(dst.lines().count(), 6, "{name}: each account once:\n{dst}");
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
