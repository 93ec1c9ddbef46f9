//! A connector that traps, loops, allocates past its cap, floods its output or
//! calls a host it was not granted is stopped with a clear error; the host
//! survives, and secrets never reach output, logs or state.

mod common;

use common::{HEADER, Run, Work};
use std::io::{Read, Write};
use std::net::TcpListener;

fn pipeline(mode: &str, extra: &str) -> String {
    common::into_csv(
        "sandbox",
        "bad",
        &format!(
            r#"[connectors.bad]
plugin = "misbehave"
config = {{ mode = "{mode}", token = "${{env:MISBEHAVE_TOKEN}}" }}
{extra}"#
        ),
    )
}

fn plan_with(mode: &str, extra: &str) -> common::Run {
    let w = Work::new();
    w.write("dst/accounts.csv", HEADER);
    w.write("pipeline.toml", &pipeline(mode, extra));
    Run::from(
        w.roster()
            .args(["plan", "pipeline.toml", "-v"])
            .env("MISBEHAVE_TOKEN", "tok-9f8e7d6c5b4a")
            .output()
            .unwrap(),
    )
}

#[test]
fn a_trapping_connector_is_reported_with_its_panic() {
    let r = plan_with("trap", "");
    assert_eq!(r.code(), 2, "{}", r.stderr());
    let err = r.stderr();
    assert!(
        err.contains("connector `bad` was stopped during read-accounts: it crashed"),
        "{err}"
    );
    assert!(
        err.contains("deliberate panic"),
        "the guest's own panic message is shown: {err}"
    );
}

#[test]
fn a_looping_connector_is_interrupted_at_its_time_limit() {
    let started = std::time::Instant::now();
    let r = plan_with("loop", "[connectors.bad.limits]\ncall_timeout_secs = 1");
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(
        r.stderr().contains("ran longer than its limit of 1s"),
        "{}",
        r.stderr()
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "stopped, not waited out"
    );
}

#[test]
fn a_connector_allocating_past_its_cap_is_stopped() {
    let r = plan_with("alloc", "[connectors.bad.limits]\nmemory_mb = 32");
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(
        r.stderr().contains("exceeded its memory cap of 32 MiB"),
        "{}",
        r.stderr()
    );
}

#[test]
fn how_much_of_its_memory_grant_a_connector_used_is_logged_at_debug() {
    let w = Work::new();
    w.write("dst/accounts.csv", HEADER);
    w.write(
        "pipeline.toml",
        &pipeline("well", "[connectors.bad.limits]\nmemory_mb = 48"),
    );
    let r = Run::from(
        w.roster()
            .args(["plan", "pipeline.toml", "-vv"])
            .env("MISBEHAVE_TOKEN", "tok-9f8e7d6c5b4a")
            .env("NO_COLOR", "1")
            .output()
            .unwrap(),
    );
    assert_eq!(r.code(), 0, "{}", r.stderr());
    // The instance that read (the one granted 48 MiB) says what it used.
    let line = r
        .stderr()
        .lines()
        .find(|l| l.contains("connector memory connector=bad") && l.contains("cap_mib=48"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no memory line for `bad`: {}", r.stderr()));
    let peak: u64 = line
        .split("peak_mib=")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no peak in {line}"));
    assert!((1..=48).contains(&peak), "{line}");
}

#[test]
fn a_chatty_connector_does_not_trap() {
    let r = plan_with("chatty", "[connectors.bad.limits]\noutput_kb = 64");
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(r.stderr().contains("exceeds its budget"), "{}", r.stderr());
    assert!(r.stderr().lines().count() < 2000, "output is bounded");
}

/// A one-shot HTTP server on loopback; answers 200 "hello" to each request.
fn serve() -> (u16, std::thread::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(false).unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let mut served = 0;
        listener.set_nonblocking(true).unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < until && served == 0 {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf);
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
                    );
                    served += 1;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
        served
    });
    (port, handle)
}

#[test]
fn a_host_not_granted_is_denied_before_any_connection() {
    let (port, server) = serve();
    let url = format!("http://127.0.0.1:{port}/users");
    let w = Work::new();
    w.write("dst/accounts.csv", HEADER);
    let text = pipeline("http", "").replace(
        "mode = \"http\"",
        &format!("mode = \"http\", url = \"{url}\""),
    );
    w.write("pipeline.toml", &text);
    let denied = Run::from(
        w.roster()
            .args(["plan", "pipeline.toml"])
            .env("MISBEHAVE_TOKEN", "x")
            .output()
            .unwrap(),
    );
    assert_eq!(denied.code(), 2);
    assert!(
        denied.stderr().contains(&format!(
            "connector `bad` is not granted host http://127.0.0.1:{port}"
        )),
        "{}",
        denied.stderr()
    );

    let granted = text.replace(
        "[connectors.dst]",
        &format!("allowed_hosts = [\"http://127.0.0.1:{port}\"]\n\n[connectors.dst]"),
    );
    w.write("pipeline.toml", &granted);
    let ok = Run::from(
        w.roster()
            .args(["plan", "pipeline.toml", "--json"])
            .env("MISBEHAVE_TOKEN", "x")
            .output()
            .unwrap(),
    )
    .ok();
    assert_eq!(ok.json()["summary"]["source_accounts"], 1);
    assert_eq!(
        server.join().unwrap(),
        1,
        "exactly one request reached the server: the granted one"
    );
}

#[test]
fn secrets_appear_nowhere() {
    let secret = "tok-9f8e7d6c5b4a";
    let w = Work::new();
    w.write("dst/accounts.csv", HEADER);
    w.write("pipeline.toml", &pipeline("leak", ""));
    let r = Run::from(
        w.roster()
            .args(["plan", "pipeline.toml", "-vv"])
            .env("MISBEHAVE_TOKEN", secret)
            .output()
            .unwrap(),
    );
    // The connector says the service refused its token: 7.
    assert_eq!(r.code(), 7);
    let all = format!("{}{}", r.stdout(), r.stderr());
    assert!(!all.contains(secret), "secret leaked:\n{all}");
    assert!(
        all.contains("token [redacted] was refused"),
        "the error is still useful:\n{all}"
    );
    assert!(
        all.contains("connecting with token [redacted]"),
        "connector logs are redacted:\n{all}"
    );
    assert!(
        all.contains("stderr token=[redacted]"),
        "connector stderr is redacted:\n{all}"
    );
    // Even dependencies' own debug logs (wasmtime echoes guest output) are masked.
    let debug = Run::from(
        w.roster()
            .args(["plan", "pipeline.toml"])
            .env("RUST_LOG", "debug")
            .env("MISBEHAVE_TOKEN", secret)
            .output()
            .unwrap(),
    );
    let all = format!("{}{}", debug.stdout(), debug.stderr());
    assert!(
        all.contains("worker writing") && !all.contains(secret),
        "secret in debug logs"
    );

    // A working pipeline with a secret: neither plan output nor the state file holds it.
    w.write(
        "src/accounts.csv",
        &format!("{HEADER}s1,person,a@x.example,,A,,,true,,k1,,\n"),
    );
    w.write("ok.toml", &pipeline("well", ""));
    let applied = Run::from(
        w.roster()
            .args(["apply", "ok.toml", "--yes", "--json", "-vv"])
            .env("MISBEHAVE_TOKEN", secret)
            .output()
            .unwrap(),
    )
    .ok();
    assert!(!format!("{}{}", applied.stdout(), applied.stderr()).contains(secret));
    let state = std::fs::read(w.path("ok.state.sqlite")).unwrap();
    assert!(!String::from_utf8_lossy(&state).contains(secret));
}

#[test]
fn the_host_carries_on_after_a_connector_is_stopped() {
    // One runtime, one engine: a trapped instance does not poison the next one.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let runtime = roster::runtime::Runtime::new(None).unwrap();
        let component = runtime
            .load(&common::plugins_dir().join("misbehave.wasm"))
            .unwrap();
        let redactor = roster::runtime::Redactor::default();
        let grants = roster::runtime::Grants::default();
        let request = roster::model::PageRequest {
            size: 10,
            ..Default::default()
        };
        let mut bad = runtime
            .instantiate("bad", &component, &grants, &redactor)
            .await
            .unwrap();
        bad.configure(vec![
            ("mode".into(), "trap".into()),
            ("token".into(), "t".into()),
        ])
        .await
        .unwrap();
        let err = bad.read_accounts(&request).await.unwrap_err().to_string();
        assert!(err.contains("crashed"), "{err}");
        let again = bad.read_accounts(&request).await.unwrap_err().to_string();
        assert!(
            again.contains("retired"),
            "a trapped instance is not used again: {again}"
        );
        let mut good = runtime
            .instantiate("good", &component, &grants, &redactor)
            .await
            .unwrap();
        good.configure(vec![("token".into(), "t".into())])
            .await
            .unwrap();
        let page = good.read_accounts(&request).await.unwrap();
        assert_eq!(page.accounts[0].email, "well@example.com");
    });
}
