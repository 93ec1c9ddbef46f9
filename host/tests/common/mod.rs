//! Helpers for tests that drive the real `roster` binary and the real
//! connector components (built by `cargo xtask test` into `target/plugins`).

#![allow(dead_code)]

pub mod scim_peer;
pub mod service;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A file under the repository's `examples/` (pipelines and their seeds).
pub fn example(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(rel)
}

pub fn plugins_dir() -> PathBuf {
    let dir = std::env::var_os("ROSTER_PLUGINS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins"));
    assert!(
        dir.join("csv.wasm").is_file(),
        "no components in {}: run the tests with `cargo xtask test` (it builds them)",
        dir.display()
    );
    dir
}

pub struct Work {
    pub dir: tempfile::TempDir,
}

impl Work {
    pub fn new() -> Self {
        Work {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    /// A `roster` command with this work dir's compiled cache and the built plugins.
    pub fn roster(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_roster"));
        c.current_dir(self.dir.path())
            .env("ROSTER_PLUGINS_DIR", plugins_dir())
            .env("ROSTER_CACHE_DIR", self.path(".cache"))
            .env_remove("RUST_LOG");
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run(self.roster().args(args).output().expect("running roster"))
    }
}

pub struct Run(pub Output);

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run(o)
    }
}

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or_else(|| {
            panic!(
                "roster died by a signal: {:?}\n{}",
                self.0.status,
                self.stderr()
            )
        })
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            )
        })
    }
    pub fn ok(self) -> Self {
        self.exit(0)
    }
    /// Asserts the exit code (6: the plan has errors, 8: changes pending, …).
    pub fn exit(self, code: i32) -> Self {
        assert_eq!(
            self.code(),
            code,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

pub const HEADER: &str = "id,kind,email,aliases,display_name,given_name,family_name,enabled,org_unit,external_key,delegates,groups\n";

/// A pipeline `name` that reads connector `source` (its tables given in
/// `tables`, starting with `[connectors.<source>]`) into the csv connector
/// in `dst/`, through a link and a sync stage.
pub fn into_csv(name: &str, source: &str, tables: &str) -> String {
    format!(
        r#"name = "{name}"
source = "{source}"
target = "dst"

{tables}

[connectors.dst]
plugin = "csv"
directory = "dst"

[[stages]]
type = "link"

[[stages]]
type = "sync"
"#
    )
}
