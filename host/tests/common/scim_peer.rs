//! A real, independent SCIM 2.0 server for tests: `scim2-server` from PyPI
//! (installed by `cargo xtask test` into `target/venv-scim`) on loopback.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "peer-bearer-token";

fn server_binary() -> PathBuf {
    let path = std::env::var_os("SCIM2_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/venv-scim/bin/scim2-server")
        });
    assert!(
        path.is_file(),
        "scim2-server is not installed at {}: run the tests with `cargo xtask test` (it installs it), or set SCIM2_SERVER",
        path.display()
    );
    path
}

pub struct Peer {
    child: Child,
    pub url: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    /// Starts a server; `zivver` adds the Zivver extension schemas.
    pub fn start(zivver: bool) -> Peer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim/fixtures/scim");
        let mut command = Command::new(server_binary());
        command
            .args(["--hostname", "127.0.0.1", "--port", &port.to_string()])
            .args(["--bearer-token", TOKEN]);
        if zivver {
            command
                .arg("--schema")
                .arg(fixtures.join("zivver-schemas.json"))
                .arg("--resource-type")
                .arg(fixtures.join("zivver-resource-types.json"));
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting scim2-server");
        let peer = Peer {
            child,
            url: format!("http://127.0.0.1:{port}/v2"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while peer.get("Users").is_none() {
            assert!(Instant::now() < deadline, "scim2-server did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        peer
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        let answer = ureq::get(&format!("{}/{path}", self.url))
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .call()
            .ok()?;
        answer.into_body().read_json().ok()
    }

    pub fn resources(&self, kind: &str) -> Vec<Value> {
        self.get(kind).unwrap()["Resources"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}
