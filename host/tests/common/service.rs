//! Helpers for tests of `roster serve`: a database of its own per test on
//! the machine's PostgreSQL, service nodes (the real binary), tokens made
//! with the CLI, HTTP calls to the API.

use super::Work;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn server_url() -> String {
    std::env::var("ROSTER_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A database of its own for one test (apalis keeps its queue in a fixed
/// schema, so a schema per test would not keep tests apart).
pub struct Database(pub String);

impl Database {
    pub fn new(what: &str) -> Database {
        let name = format!("roster_sv_{what}_{}", std::process::id());
        psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        psql(&format!("CREATE DATABASE {name}"));
        Database(name)
    }

    pub fn url(&self) -> String {
        let base = server_url();
        let (root, _) = base.rsplit_once('/').expect("a database URL");
        format!("{root}/{}", self.0)
    }

    /// One value from a query on this database.
    pub fn query(&self, sql: &str) -> String {
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

pub fn psql(sql: &str) {
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
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Node {
    pub child: Child,
    pub port: u16,
    pub name: String,
}

impl Node {
    pub fn start(w: &Work, db: &Database, name: &str, config: &str, env: &[(&str, &str)]) -> Node {
        Node::start_with(w, db, name, "", config, env)
    }

    /// With `server` added to the [server] table.
    pub fn start_with(
        w: &Work,
        db: &Database,
        name: &str,
        server: &str,
        config: &str,
        env: &[(&str, &str)],
    ) -> Node {
        let port = free_port();
        let file = format!("serve-{name}.toml");
        w.write(
            &file,
            &format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\nnode = \"{name}\"\n{}{server}\n{config}",
                // Quick failover by default; `server` may set its own.
                ["heartbeat_secs = 1\n", "missed_heartbeats = 3\n"]
                    .iter()
                    .filter(|line| !server.contains(line.split(' ').next().unwrap()))
                    .copied()
                    .collect::<String>()
            ),
        );
        let log = std::fs::File::create(w.path(&format!("{name}.log"))).unwrap();
        let child = w
            .roster()
            .args(["serve", &file, "-v", "--log-format", "json"])
            .env("ROSTER_DATABASE_URL", db.url())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("roster serve");
        let mut node = Node {
            child,
            port,
            name: name.into(),
        };
        node.wait_ready(w);
        node
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn wait_ready(&mut self, w: &Work) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "node {} ended ({status}): {}",
                    self.name,
                    w.read(&format!("{}.log", self.name))
                );
            }
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

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
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

pub fn unsafe_term(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

/// `roster ARGS` against the service database `db`.
pub fn on_database(w: &Work, db: &Database, args: &[&str]) -> std::process::Output {
    w.roster()
        .args(args)
        .env("ROSTER_DATABASE_URL", db.url())
        .output()
        .unwrap()
}

/// A token of `role`, made with the CLI.
pub fn token(w: &Work, db: &Database, config: &str, role: &str) -> String {
    let name = format!("{role}-{}", fastrand_name());
    let out = on_database(
        w,
        db,
        &[
            "serve", "token", "create", config, "--role", role, "--name", &name,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub fn fastrand_name() -> String {
    format!(
        "{:x}",
        Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id())
    )
}

pub fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = ureq::get(url);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    answer(req.config().http_status_as_error(false).build().call())
}

pub fn post(url: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut req = ureq::post(url).header("Content-Type", "application/json");
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    answer(req.config().http_status_as_error(false).build().send(body))
}

pub fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, String) {
    let mut r = r.expect("an HTTP answer");
    let status = r.status().as_u16();
    (status, r.body_mut().read_to_string().unwrap_or_default())
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Waits until `done` holds, or fails after `secs` with `what`.
pub fn wait_until(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("after {secs} s: {what}");
}
