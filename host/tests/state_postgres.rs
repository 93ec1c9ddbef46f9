//! The state on PostgreSQL through the real binary: a pipeline whose
//! `state` is a server URL (or `ROSTER_STATE_URL`) applies, plans, shows
//! its status and links as with the file, and one apply at a time holds
//! the server's run lock. Each test uses a schema of its own on the
//! machine's PostgreSQL and drops it.

mod common;

use common::{HEADER, Work};

fn pg_url() -> String {
    std::env::var("ROSTER_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A schema for one test, dropped when the test ends.
struct Schema(String);

impl Schema {
    fn new(what: &str) -> Schema {
        Schema(format!("roster_it_{what}_{}", std::process::id()))
    }

    fn url(&self) -> String {
        format!("{}?schema={}", pg_url(), self.0)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let at = roster::state::PgLocation {
            url: pg_url(),
            schema: self.0.clone(),
        };
        if let Ok(store) = roster::state::PgStore::open(&at) {
            let _ = store.drop_schema();
        }
    }
}

fn work(rows: usize, state_line: &str) -> Work {
    let w = Work::new();
    let rows: String = (0..rows)
        .map(|i| format!("u{i},person,user{i:04}@corp.example,,User {i},,,true,,k{i},,\n"))
        .collect();
    w.write("src/accounts.csv", &format!("{HEADER}{rows}"));
    w.write("dst/accounts.csv", HEADER);
    let pipeline = common::into_csv(
        "pg",
        "src",
        "[connectors.src]\nplugin = \"csv\"\ndirectory = \"src\"\n",
    );
    w.write(
        "p.toml",
        &format!(
            "{}\n[apply]\nbatch_size = 1\n",
            pipeline.replacen("\n", &format!("\n{state_line}\n"), 1)
        ),
    );
    w
}

#[test]
fn a_pipeline_keeps_its_state_on_postgres() {
    let schema = Schema::new("basic");
    let w = work(5, &format!("state = \"{}\"", schema.url()));
    let checked = w.run(&["check", "p.toml", "--json"]).ok().json();
    assert!(
        checked["state"].as_str().unwrap().contains(&schema.0),
        "{checked:#}"
    );
    let applied = w.run(&["apply", "p.toml", "--yes", "--json"]).ok().json();
    assert_eq!(applied["report"]["applied"], 5, "{applied:#}");
    assert!(!w.path("p.state.sqlite").exists(), "no file state");
    let again = w.run(&["plan", "p.toml", "--json"]).ok().json();
    assert_eq!(again["changes"], serde_json::json!([]), "{again:#}");
    let status = w.run(&["status", "p.toml", "--json"]).ok().json();
    assert_eq!(status["links"].as_array().unwrap().len(), 5, "{status:#}");
    assert_eq!(status["runs"][0]["outcome"], "done", "{status:#}");
    // A link changed by hand through roster, carried out by the next apply.
    w.run(&["links", "p.toml", "remove", "user0001@corp.example"])
        .ok();
    let plan = w.run(&["plan", "p.toml", "--json"]).ok().json();
    assert_eq!(
        plan["unlinks"].as_array().map(Vec::len),
        Some(1),
        "{plan:#}"
    );
}

#[test]
fn the_state_url_may_come_from_the_environment() {
    let schema = Schema::new("env");
    let w = work(2, "");
    let r = w
        .roster()
        .args(["apply", "p.toml", "--yes", "--json"])
        .env("ROSTER_STATE_URL", schema.url())
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(!w.path("p.state.sqlite").exists());
    let status = w
        .roster()
        .args(["status", "p.toml", "--json"])
        .env("ROSTER_STATE_URL", schema.url())
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(doc["links"].as_array().unwrap().len(), 2);
}

#[test]
fn a_bad_state_url_is_a_located_error_without_its_password() {
    let w = work(
        1,
        "state = \"postgres://u@127.0.0.1/test?schema=Not-Valid\"",
    );
    let r = w.run(&["check", "p.toml"]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(
        r.stderr().contains("p.toml:2:9: state: schema `Not-Valid`"),
        "{}",
        r.stderr()
    );
    // A password in the pipeline file is refused, without showing it.
    let w = work(1, "state = \"postgres://u:hunter22@127.0.0.1/test\"");
    let r = w.run(&["check", "p.toml"]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(
        r.stderr().contains("state: the URL holds a password"),
        "{}",
        r.stderr()
    );
    assert!(!r.stderr().contains("hunter22"), "{}", r.stderr());
    // In the environment it is taken, and a server that does not answer
    // gives the store's exit code, without the password.
    let w = work(1, "");
    let r = common::Run::from(
        w.roster()
            .args(["plan", "p.toml", "-vv"])
            .env("ROSTER_STATE_URL", "postgres://u:hunter22@127.0.0.1:1/test")
            .output()
            .unwrap(),
    );
    assert_eq!(r.code(), 4, "{}", r.stderr());
    assert!(!r.stderr().contains("hunter22"), "{}", r.stderr());
}

#[test]
fn one_apply_at_a_time_holds_the_servers_run_lock() {
    let schema = Schema::new("lock");
    let w = work(300, &format!("state = \"{}\"", schema.url()));
    let mut first = w
        .roster()
        .args(["apply", "p.toml", "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Until the first apply has begun writing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while w.read("dst/accounts.csv").lines().count() < 5 {
        assert!(first.try_wait().unwrap().is_none(), "finished too soon");
        assert!(std::time::Instant::now() < deadline, "no progress");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let second = w.run(&["apply", "p.toml", "--yes"]);
    assert_eq!(second.code(), 5, "{}", second.stderr());
    assert!(
        second.stderr().contains(&format!(
            "another apply is running on this state (pid {} on host",
            first.id()
        )),
        "{}",
        second.stderr()
    );
    // Killed: the server ends its session and the lock with it.
    first.kill().unwrap();
    first.wait().unwrap();
    let rerun = w.run(&["apply", "p.toml", "--yes", "--json"]).ok().json();
    assert_eq!(rerun["report"]["failed"], 0, "{rerun:#}");
    let lines = w.read("dst/accounts.csv").lines().count() - 1;
    assert_eq!(lines, 300, "every account once");
}

#[test]
fn a_state_file_migrates_to_postgres_without_loss() {
    let schema = Schema::new("migrate");
    let w = work(6, "");
    w.run(&["apply", "p.toml", "--yes"]).ok();
    // Something pending, so the plan is not empty: a staged unlink and a new account.
    w.run(&["links", "p.toml", "remove", "user0002@corp.example"])
        .ok();
    let mut src = w.read("src/accounts.csv");
    src.push_str("u9,person,new@corp.example,,New,,,true,,k9,,\n");
    w.write("src/accounts.csv", &src);
    let before = w.run(&["plan", "p.toml", "--json"]).ok().json();
    let status_before = w.run(&["status", "p.toml", "--json"]).ok().json();

    let migrated = w
        .run(&[
            "state",
            "migrate",
            "--from",
            "p.state.sqlite",
            "--to",
            &schema.url(),
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(migrated["rows"]["links"], 6, "{migrated:#}");
    assert_eq!(migrated["rows"]["link_edits"], 1, "{migrated:#}");
    assert_eq!(migrated["rows"]["runs"], 1, "{migrated:#}");
    assert_eq!(migrated["rows"]["journal"], 6, "{migrated:#}");
    assert_eq!(migrated["rows"]["pipeline"], 1, "{migrated:#}");

    let on_server = |args: &[&str]| {
        let out = w
            .roster()
            .args(args)
            .env("ROSTER_STATE_URL", schema.url())
            .output()
            .unwrap();
        let run = common::Run::from(out).ok();
        run.json()
    };
    // The file is moved aside: the server's state is what is read.
    std::fs::rename(w.path("p.state.sqlite"), w.path("old.sqlite")).unwrap();
    let after = on_server(&["plan", "p.toml", "--json"]);
    assert_eq!(after["changes"], before["changes"]);
    assert_eq!(after["summary"], before["summary"]);
    assert_eq!(after["unlinks"], before["unlinks"]);
    let status_after = on_server(&["status", "p.toml", "--json"]);
    assert_eq!(status_after["links"], status_before["links"]);
    assert_eq!(status_after["runs"], status_before["runs"]);
    // An apply on the server numbers its run after the copied one.
    let applied = on_server(&["apply", "p.toml", "--yes", "--json"]);
    assert_eq!(applied["report"]["failed"], 0, "{applied:#}");
    let runs = on_server(&["status", "p.toml", "--json"])["runs"].clone();
    assert_eq!(runs.as_array().unwrap().len(), 2, "{runs:#}");

    // Into a schema that already holds a state: refused.
    let again = w.run(&[
        "state",
        "migrate",
        "--from",
        "old.sqlite",
        "--to",
        &schema.url(),
    ]);
    assert_eq!(again.code(), 4, "{}", again.stderr());
    assert!(
        again.stderr().contains("already holds a state"),
        "{}",
        again.stderr()
    );
}

#[test]
fn several_processes_may_open_a_new_state_at_once() {
    // The ranks of a pipeline under `roster serve` start together.
    for round in 0..3 {
        let schema = Schema::new(&format!("race{round}"));
        let at = roster::state::PgLocation {
            url: pg_url(),
            schema: schema.0.clone(),
        };
        let opened: Vec<_> = (0..4)
            .map(|_| {
                let at = at.clone();
                std::thread::spawn(move || roster::state::PgStore::open(&at).map(|_| ()))
            })
            .collect();
        for o in opened {
            o.join().unwrap().expect("every opener gets the state");
        }
    }
}
