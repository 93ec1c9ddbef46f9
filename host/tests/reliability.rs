//! The quick part of the reliability and security suite (docs/reliability.md):
//! each probe of the review that found Roster broken, or found it holding,
//! tried again through the real binary, the real `misbehave` component and
//! real HTTP. The long part (kill loops, fault runs, fuzzing at volume) is
//! `cargo xtask soak`.

mod common;

use common::{HEADER, Run, Work};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const TOKEN: &str = "hostile-SECRET-42abc";

/// A pipeline reading the `misbehave` component (mode and extra config)
/// into csv, with `extra` tables after the connector's.
fn hostile(mode: &str, config: &str, extra: &str) -> String {
    common::into_csv(
        "reliability",
        "bad",
        &format!(
            r#"[connectors.bad]
plugin = "misbehave"
config = {{ mode = "{mode}", token = "${{env:MISBEHAVE_TOKEN}}"{config} }}
{extra}"#
        ),
    )
}

fn read_hostile(w: &Work, mode: &str, config: &str, extra: &str, verbose: &[&str]) -> Run {
    w.write("dst/accounts.csv", HEADER);
    w.write("p.toml", &hostile(mode, config, extra));
    let mut args = vec!["read", "p.toml", "--connector", "bad", "--json"];
    args.extend(verbose);
    Run::from(
        w.roster()
            .args(&args)
            .env("MISBEHAVE_TOKEN", TOKEN)
            .env("ROSTER_CANARY", "host-environment-canary")
            .output()
            .unwrap(),
    )
}

fn not_a_panic(r: &Run) {
    let code = r.code();
    assert_ne!(code, 101, "roster panicked:\n{}", r.stderr());
    assert!(!r.stderr().contains("panicked"), "{}", r.stderr());
}

/// A server on loopback answering every request with `answer(request
/// head)`, until dropped; counts the requests.
struct Canned {
    port: u16,
    served: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Canned {
    fn start(answer: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> Canned {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (served.clone(), stop.clone());
        let answer = Arc::new(answer);
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let answer = answer.clone();
                        s.fetch_add(1, Ordering::Relaxed);
                        std::thread::spawn(move || {
                            conn.set_nonblocking(false).unwrap();
                            let mut buf = vec![0u8; 16384];
                            let n = conn.read(&mut buf).unwrap_or(0);
                            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                            let _ = conn.write_all(&answer(&head));
                        });
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        Canned { port, served, stop }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn grant(&self) -> String {
        format!("allowed_hosts = [\"http://127.0.0.1:{}\"]", self.port)
    }
}

impl Drop for Canned {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn http(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{headers}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

// ---- A. Hostile components ---------------------------------------------

#[test]
fn a_guest_cannot_choose_the_host_header_the_server_sees() {
    let server = Canned::start(|head| {
        let host = head
            .lines()
            .find_map(|l| l.strip_prefix("host: ").or(l.strip_prefix("Host: ")))
            .unwrap_or("none")
            .to_string();
        http("200 OK", "", host.as_bytes())
    });
    let w = Work::new();
    let config = format!(", url = \"{}/who\"", server.url());
    let r = read_hostile(&w, "host-header", &config, &server.grant(), &[]).ok();
    let seen = r.json()["accounts"][0]["attributes"]["answer"].clone();
    assert_eq!(seen, format!("127.0.0.1:{}", server.port), "{}", r.stdout());
}

#[test]
fn answers_larger_than_the_connectors_memory_are_not_buffered_by_the_host() {
    // 12 answers of 8 MiB to a connector granted 32 MiB: the host stops
    // reading once the batch's answers pass the grant.
    let body = Arc::new(vec![b'x'; 8 << 20]);
    let server = Canned::start(move |_| http("200 OK", "", &body));
    let w = Work::new();
    let config = format!(", url = \"{}/big\", n = \"12\"", server.url());
    let extra = format!("{}\nlimits = {{ memory_mb = 32 }}", server.grant());
    let r = read_hostile(&w, "big-answers", &config, &extra, &[]);
    not_a_panic(&r);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(
        r.stderr()
            .contains("answers to this call would exceed 32 MiB, the connector's memory grant"),
        "{}",
        r.stderr()
    );
}

#[test]
fn a_connector_flooding_its_log_is_cut_off_in_bytes_too() {
    // 20,000 lines of 8 KiB would be 160 MiB on stderr.
    let w = Work::new();
    let r = read_hostile(&w, "log-flood", ", n = \"20000\"", "", &["-v"]).ok();
    let err = r.0.stderr.len();
    assert!(err < 20 << 20, "{} MiB of stderr", err >> 20);
    assert!(
        r.stderr().contains("further lines are dropped"),
        "the cut is said"
    );
}

#[test]
fn a_record_with_a_huge_field_is_refused_naming_it() {
    let w = Work::new();
    let r = read_hostile(&w, "big-name", ", n = \"200000\"", "", &[]);
    not_a_panic(&r);
    assert_ne!(r.code(), 0);
    assert!(
        r.stderr().contains(
            "connector `bad`: read-accounts: invalid: record 1 of the page: `display_name` is 200000 bytes long"
        ),
        "{}",
        r.stderr()
    );
}

#[test]
fn a_connector_repeating_its_cursor_is_stopped() {
    let w = Work::new();
    let r = read_hostile(&w, "same-cursor", "", "", &[]);
    assert_ne!(r.code(), 0);
    assert!(
        r.stderr()
            .contains("returned the cursor `again` a second time"),
        "{}",
        r.stderr()
    );
}

#[test]
fn a_connector_sees_no_host_environment() {
    let w = Work::new();
    let r = read_hostile(&w, "environment", "", "", &[]).ok();
    let attributes = &r.json()["accounts"][0]["attributes"];
    let text = attributes.to_string();
    assert!(!text.contains("host-environment-canary"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
    assert!(!text.contains("PATH"), "{text}");
}

#[test]
fn file_operations_outside_the_granted_directory_are_refused() {
    let w = Work::new();
    w.write("secret.txt", "outside");
    std::fs::create_dir_all(w.path("data")).unwrap();
    let r = read_hostile(&w, "files", "", "directory = \"data\"", &[]).ok();
    let attributes = r.json()["accounts"][0]["attributes"].clone();
    let outcomes = attributes.as_object().unwrap();
    assert_eq!(outcomes.len(), 14, "{attributes:#}");
    for (op, outcome) in outcomes {
        let outcome = outcome.as_str().unwrap();
        match op.starts_with("inside-") {
            true => assert_eq!(outcome, "ok", "{op}"),
            false => assert!(outcome.starts_with("refused"), "{op}: {outcome}"),
        }
    }
    assert_eq!(w.read("data/inside.txt"), "in");
    for escaped in ["escaped.txt", "moved.txt", "hard.txt", "made"] {
        assert!(!w.path(escaped).exists(), "{escaped} was written outside");
    }
    assert_eq!(w.read("secret.txt"), "outside");
}

#[test]
fn encoded_forms_of_a_secret_are_masked_too() {
    let w = Work::new();
    let r = read_hostile(&w, "leak-encoded", "", "", &["-vv"]);
    let all = format!("{}{}", r.stdout(), r.stderr());
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let forms = [
        TOKEN.to_string(),
        hex::encode(TOKEN),
        hex::encode_upper(TOKEN),
        b64.encode(TOKEN),
    ];
    for form in forms {
        assert!(!all.contains(&form), "{form} leaked:\n{all}");
    }
    assert!(all.contains("encoded [redacted]"), "{all}");
}

/// 42 ways to write a URL that is not the granted one: none passes the
/// choke point (which also hands back the URL that is then sent).
#[test]
fn allow_list_evasions_reach_no_ungranted_host() {
    use roster::runtime::http::{HostPattern, HttpGrant, OutboundHttp};
    let grant = HttpGrant {
        allowed: vec!["http://127.0.0.1:18600".parse::<HostPattern>().unwrap()],
        ..HttpGrant::default()
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = OutboundHttp::new(
        "probe".into(),
        grant,
        reqwest::Client::new(),
        Default::default(),
    );
    assert!(http.check("http://127.0.0.1:18600/ok").is_ok());
    let evasions = [
        "http://127.0.0.1:18601/",
        "https://127.0.0.1:18600/",
        "http://127.0.0.1/",
        "http://127.0.0.1:18600@evil.example/",
        "http://evil.example#@127.0.0.1:18600/",
        "http://evil.example?@127.0.0.1:18600/",
        "http://evil.example\\@127.0.0.1:18600/",
        "http://evil.example%2f@127.0.0.1:18600/",
        "http://127.0.0.1:18600.evil.example/",
        "http://127.0.0.1.evil.example:18600/",
        "http://127.0.0.2:18600/",
        "http://127.1:18601/",
        "http://2130706434:18600/",
        "http://0x7f000002:18600/",
        "http://[::1]:18600/",
        "http://[::ffff:127.0.0.2]:18600/",
        "http://localhost:18600/",
        "http://LOCALHOST:18600/",
        "http://localhost.:18600/",
        "http://evil.example:18600/",
        "ftp://127.0.0.1:18600/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:18600/",
        "ws://127.0.0.1:18600/",
        "data:text/plain,hi",
        "javascript:alert(1)",
        "http:127.0.0.2:18600/",
        "http:/evil.example/",
        "//evil.example/",
        "/relative",
        "",
        "http://",
        "http://:18600/",
        "http://0.0.0.0:18600/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00::1]:18600/",
        "http://evil.example:18600\\@127.0.0.1:18600/",
        "http://127.0.0.1:18600%40evil.example/",
        "http://xn--80ak6aa92e.com:18600/",
        "http://127.0.0.1:018600/",
        "http://127.0.0.1:65536/",
        "http://evil.example/?u=http://127.0.0.1:18600/",
    ];
    assert_eq!(evasions.len(), 42);
    for url in evasions {
        if let Ok(parsed) = http.check(url) {
            // Some spellings are the granted origin after parsing (`018600`):
            // then what is sent goes there and nowhere else.
            assert_eq!(
                (parsed.host_str(), parsed.port_or_known_default()),
                (Some("127.0.0.1"), Some(18600)),
                "{url} passed as {parsed}"
            );
        }
    }
}

#[test]
fn a_redirect_to_an_ungranted_host_is_not_followed() {
    let elsewhere = Canned::start(|_| http("200 OK", "", b"reached"));
    let target = format!("{}/x", elsewhere.url());
    let granted =
        Canned::start(move |_| http("302 Found", &format!("location: {target}\r\n"), b""));
    let w = Work::new();
    let config = format!(", url = \"{}/go\"", granted.url());
    let r = read_hostile(&w, "http", &config, &granted.grant(), &["-v"]).ok();
    assert!(r.stderr().contains("answered 302"), "{}", r.stderr());
    assert_eq!(elsewhere.served.load(Ordering::Relaxed), 0);
}

// ---- B. Faults from the server ------------------------------------------

#[test]
fn absurd_retry_after_and_ratelimit_reset_values_never_crash_the_host() {
    for (header, value) in [
        ("retry-after", "1e300"),
        ("retry-after", "1e20"),
        ("retry-after", "18446744073709551615"),
        ("retry-after", "-1"),
        ("retry-after", "NaN"),
        ("ratelimit-reset", "18446744073709551615"),
        ("ratelimit-reset", "1e300"),
    ] {
        let line = format!("{header}: {value}\r\nratelimit-remaining: 0\r\n");
        let server = Canned::start(move |_| http("429 Too Many Requests", &line, b"slow down"));
        let w = Work::new();
        let config = format!(", url = \"{}/x\"", server.url());
        let extra = format!(
            "{}\nlimits = {{ retries = 1, max_retry_wait_secs = 1 }}",
            server.grant()
        );
        let r = read_hostile(&w, "http", &config, &extra, &["-v"]);
        not_a_panic(&r);
        // The 429 goes back to the connector, which reports it.
        assert!(
            r.code() == 0 || r.code() == 7,
            "{header}: {value}: {}",
            r.stderr()
        );
    }
}

// ---- C. The state file ----------------------------------------------------

/// A csv → csv pipeline applied once: 3 links in its state.
fn synced() -> Work {
    let w = Work::new();
    w.write(
        "src/accounts.csv",
        &format!(
            "{HEADER}s1,person,ann@x.example,,Ann,,,true,,k1,,\ns2,person,bob@x.example,,Bob,,,true,,k2,,\ns3,person,cy@x.example,,Cy,,,true,,k3,,\n"
        ),
    );
    w.write("dst/accounts.csv", HEADER);
    w.write(
        "p.toml",
        &common::into_csv(
            "state",
            "src",
            "[connectors.src]\nplugin = \"csv\"\ndirectory = \"src\"\n",
        ),
    );
    w.run(&["apply", "p.toml", "--yes"]).ok();
    w
}

fn sql(w: &Work, statement: &str) {
    let conn = rusqlite::Connection::open(w.path("p.state.sqlite")).unwrap();
    conn.execute_batch(statement).unwrap();
}

#[test]
fn an_empty_or_damaged_state_is_refused_not_taken_for_a_new_one() {
    type Damage = fn(&Work);
    let cases: &[(&str, Damage, &str)] = &[
        (
            "zero-length",
            |w| std::fs::write(w.path("p.state.sqlite"), b"").unwrap(),
            "is empty (0 bytes)",
        ),
        (
            "links table dropped",
            |w| sql(w, "DROP TABLE links"),
            "table(s) links are missing",
        ),
        (
            "not a database",
            |w| std::fs::write(w.path("p.state.sqlite"), vec![7u8; 8192]).unwrap(),
            "file is not a database",
        ),
        (
            "a page overwritten",
            |w| {
                sql(w, "PRAGMA wal_checkpoint(TRUNCATE)");
                let path = w.path("p.state.sqlite");
                let mut bytes = std::fs::read(&path).unwrap();
                // Every page after the first two: the tables' b-trees.
                for b in bytes.iter_mut().skip(8192) {
                    *b = 0xA5;
                }
                std::fs::write(&path, bytes).unwrap();
            },
            "",
        ),
    ];
    for (name, damage, said) in cases {
        let w = synced();
        damage(&w);
        for command in ["plan", "status"] {
            let r = w.run(&[command, "p.toml"]);
            not_a_panic(&r);
            assert_eq!(r.code(), 4, "{name}: {command}: {}", r.stderr());
            assert!(
                r.stderr().contains(said),
                "{name}: {command}: {}",
                r.stderr()
            );
        }
        let applied = w.run(&["apply", "p.toml", "--yes"]);
        assert_eq!(applied.code(), 4, "{name}: apply: {}", applied.stderr());
        assert!(
            w.read("dst/accounts.csv").lines().count() == 4,
            "{name}: the target is as it was"
        );
    }
}

#[test]
fn a_link_row_edited_outside_roster_is_not_acted_on_until_accepted() {
    let w = synced();
    sql(
        &w,
        "UPDATE links SET target_id = 'someone-else' WHERE source_email = 'bob@x.example'",
    );
    let r = w.run(&["plan", "p.toml"]);
    assert_eq!(r.code(), 4, "{}", r.stderr());
    assert!(
        r.stderr()
            .contains("the stored link of bob@x.example was changed outside roster"),
        "{}",
        r.stderr()
    );
    // Listed, with the way out.
    let listed = w.run(&["links", "p.toml"]).ok();
    assert!(
        listed.stderr().contains("accept-edits"),
        "{}",
        listed.stderr()
    );
    let accepted = w.run(&["links", "p.toml", "accept-edits"]).ok();
    assert!(
        accepted.stdout().contains("accepted 1 link row(s)"),
        "{}",
        accepted.stdout()
    );
    // Taken as it now is: the plan acts on the edited row (its target is gone).
    let plan = w.run(&["plan", "p.toml", "--json"]).ok().json();
    assert!(
        plan["notes"].to_string().contains("someone-else"),
        "{plan:#}"
    );
}

#[cfg(unix)]
#[test]
fn state_plans_and_cache_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let w = synced();
    w.run(&["plan", "p.toml", "--out", "plan.json"]).ok();
    let mode = |rel: &str| std::fs::metadata(w.path(rel)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("p.state.sqlite"), 0o600);
    assert_eq!(mode("plan.json"), 0o600);
    assert_eq!(mode(".cache"), 0o700);
    for entry in std::fs::read_dir(w.path(".cache")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert_eq!(mode(&format!(".cache/{name}")), 0o600, "{name}");
    }
}

// ---- D. The compiled cache --------------------------------------------------

fn inspect(w: &Work, plugin: &str) -> Run {
    let path = common::plugins_dir().join(format!("{plugin}.wasm"));
    w.run(&["plugins", "inspect", path.to_str().unwrap(), "--json"])
}

fn entry(w: &Work, prefix: &str) -> std::path::PathBuf {
    std::fs::read_dir(w.path(".cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|x| x == "cwasm")
                && p.file_name().unwrap().to_str().unwrap().starts_with(prefix)
        })
        .unwrap_or_else(|| panic!("no cache entry {prefix}"))
}

#[test]
fn a_swapped_or_corrupted_cache_entry_is_never_run() {
    let w = Work::new();
    let zivver = inspect(&w, "zivver").ok().json();
    let zivver_digest = zivver["digest"].as_str().unwrap().to_string();
    let misbehave = inspect(&w, "misbehave").ok().json();
    let misbehave_digest = misbehave["digest"].as_str().unwrap().to_string();
    let (z, m) = (entry(&w, &zivver_digest), entry(&w, &misbehave_digest));

    // Another component's code under zivver's name (and its seal too).
    std::fs::copy(&m, &z).unwrap();
    let r = inspect(&w, "zivver").ok();
    assert_eq!(r.json()["descriptor"]["name"], "zivver", "{}", r.stdout());
    assert!(r.stderr().contains("seal does not match"), "{}", r.stderr());
    std::fs::copy(m.with_extension("seal"), z.with_extension("seal")).unwrap();
    std::fs::copy(&m, &z).unwrap();
    assert_eq!(
        inspect(&w, "zivver").ok().json()["descriptor"]["name"],
        "zivver"
    );

    // Bytes of the native code flipped: compiled afresh, not crashed.
    let mut bytes = std::fs::read(&z).unwrap();
    for i in (4096..bytes.len()).step_by(97) {
        bytes[i] = 0xCC;
    }
    std::fs::write(&z, bytes).unwrap();
    let r = inspect(&w, "zivver").ok();
    assert_eq!(r.json()["descriptor"]["name"], "zivver");
    assert_eq!(r.json()["cache"], "miss", "{}", r.stdout());
}

#[cfg(unix)]
#[test]
fn a_cache_directory_others_may_write_is_not_used() {
    use std::os::unix::fs::PermissionsExt;
    let w = Work::new();
    std::fs::create_dir_all(w.path(".cache")).unwrap();
    std::fs::set_permissions(w.path(".cache"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let r = inspect(&w, "csv").ok();
    assert_eq!(r.json()["cache"], "off", "{}", r.stdout());
    assert!(
        r.stderr().contains("others may write to it"),
        "{}",
        r.stderr()
    );
}

// ---- E. Pipeline files ---------------------------------------------------------

const GOOD: &str = r#"name = "fuzz"
source = "src"
target = "dst"

[connectors.src]
plugin = "csv"
directory = "src"
limits = { memory_mb = 64, call_timeout_secs = 30, concurrency = 4, rate_limit = { requests = 10, per_seconds = 1.0 } }

[connectors.dst]
plugin = "csv"
directory = "dst"

[[stages]]
type = "filter"
include_domains = ["x.example"]

[[stages]]
type = "link"

[[stages]]
type = "sync"
"#;

fn check(w: &Work, text: &str) -> Run {
    w.write("p.toml", text);
    w.run(&["check", "p.toml"])
}

#[test]
fn limits_out_of_range_are_located_errors_not_panics() {
    let w = Work::new();
    w.write("src/accounts.csv", HEADER);
    w.write("dst/accounts.csv", HEADER);
    check(&w, GOOD).ok();
    let cases = [
        (
            "call_timeout_secs = 30",
            "call_timeout_secs = 9223372036854775807",
            "call_timeout_secs must be between 1 and",
        ),
        (
            "concurrency = 4",
            "concurrency = 9223372036854775807",
            "concurrency must be between 1 and 1024",
        ),
        (
            "concurrency = 4",
            "concurrency = 2305843009213693952",
            "concurrency must be between 1 and 1024",
        ),
        (
            "per_seconds = 1.0",
            "per_seconds = 1e20",
            "per_seconds between 0 and",
        ),
        (
            "per_seconds = 1.0",
            "per_seconds = 1e300",
            "per_seconds between 0 and",
        ),
        (
            "memory_mb = 64",
            "memory_mb = 17592186044416",
            "memory_mb must be between 1 and 4096",
        ),
        (
            "memory_mb = 64",
            "memory_mb = 9223372036854775807",
            "memory_mb must be between 1 and 4096",
        ),
        (
            "memory_mb = 64",
            "memory_mb = 0",
            "memory_mb must be between 1 and 4096",
        ),
    ];
    for (from, to, said) in cases {
        let r = check(&w, &GOOD.replace(from, to));
        not_a_panic(&r);
        assert_eq!(r.code(), 2, "{to}: {}", r.stderr());
        assert!(
            r.stderr().contains("p.toml:8:"),
            "{to}: located: {}",
            r.stderr()
        );
        assert!(r.stderr().contains(said), "{to}: {}", r.stderr());
    }
    // 100,000 stages: refused at once (the order checks were quadratic).
    let many = format!(
        "{GOOD}{}",
        "\n[[stages]]\ntype = \"filter\"\n".repeat(100_000)
    );
    let r = check(&w, &many);
    assert_eq!(r.code(), 2);
    assert!(
        r.stderr().contains("a pipeline has at most 1000"),
        "{}",
        r.stderr()
    );
}

/// Seeded random mutations of a good pipeline: none panics.
#[test]
fn mutated_pipelines_never_panic() {
    let tries: usize = std::env::var("ROSTER_FUZZ_TRIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(60);
    let w = Work::new();
    w.write("src/accounts.csv", HEADER);
    w.write("dst/accounts.csv", HEADER);
    let mut rng = fastrand::Rng::with_seed(15);
    let tokens = [
        "0",
        "-1",
        "1e308",
        "nan",
        "inf",
        "9223372036854775807",
        "18446744073709551616",
        "\"\"",
        "[]",
        "{}",
        "true",
        "\"x\"",
        "[[stages]]",
        "=",
        "\"\\u0000\"",
        "type = \"sync\"",
        "\n[connectors.z]\n",
        "'''",
        "\"${env:NOPE}\"",
        "\"${file:/etc/passwd}\"",
    ];
    let mut codes = std::collections::BTreeMap::new();
    for _ in 0..tries {
        let mut text = GOOD.to_string();
        for _ in 0..rng.usize(1..4) {
            let at = rng.usize(0..text.len());
            let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap();
            let token = tokens[rng.usize(0..tokens.len())];
            match rng.u8(0..3) {
                0 => text.insert_str(at, token),
                1 => {
                    let end = (at + rng.usize(1..12)).min(text.len());
                    let end = (end..=text.len())
                        .find(|i| text.is_char_boundary(*i))
                        .unwrap();
                    text.replace_range(at..end, token);
                }
                _ => {
                    let end = (at + rng.usize(1..40)).min(text.len());
                    let end = (end..=text.len())
                        .find(|i| text.is_char_boundary(*i))
                        .unwrap();
                    text.replace_range(at..end, "");
                }
            }
        }
        let r = check(&w, &text);
        not_a_panic(&r);
        *codes.entry(r.code()).or_insert(0) += 1;
    }
    assert!(codes.keys().all(|c| [0, 2].contains(c)), "{codes:?}");
}

/// A Zivver SCIM list answered with something that is no list of users:
/// an error naming it, never a read of zero users (which the next plan
/// would take for "create everyone again").
#[test]
fn a_malformed_scim_list_is_an_error_not_an_empty_read() {
    let bodies = [
        "null",
        r#"{"Resources":"x","totalResults":"many"}"#,
        r#"{"Resources":{"a":1},"totalResults":1}"#,
        r#"{"totalResults":3}"#,
        r#"{"Resources":[{"id":"u-1"}],"totalResults":1}"#,
        r#"{"Resources":[{"id":5,"userName":7}],"totalResults":1}"#,
    ];
    for body in bodies {
        let server = Canned::start(move |head| {
            let empty = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":0,"itemsPerPage":0,"startIndex":1,"Resources":[]}"#;
            let first = head.lines().next().unwrap_or_default();
            let answer = match first.contains("/Users") {
                true => body,
                false => empty,
            };
            http(
                "200 OK",
                "content-type: application/scim+json\r\n",
                answer.as_bytes(),
            )
        });
        let w = Work::new();
        w.write("dst/accounts.csv", HEADER);
        w.write(
            "z.toml",
            &common::into_csv(
                "scim-list",
                "zivver",
                &format!(
                    "[connectors.zivver]\nplugin = \"zivver\"\n{}\nconfig = {{ base_url = \"{}/api/scim/v2/\", api_key = \"k-123456\" }}\n",
                    server.grant(),
                    server.url()
                ),
            ),
        );
        let r = w.run(&["read", "z.toml", "--connector", "zivver", "--json"]);
        not_a_panic(&r);
        assert_ne!(r.code(), 0, "{body}: read as {}", r.stdout());
        assert!(
            r.stderr().contains("connector `zivver`"),
            "{body}: {}",
            r.stderr()
        );
    }
}

#[test]
fn a_read_larger_than_the_pipeline_allows_is_refused() {
    let w = Work::new();
    let rows: String = (0..5)
        .map(|i| format!("s{i},person,u{i}@x.example,,U,,,true,,k{i},,\n"))
        .collect();
    w.write("src/accounts.csv", &format!("{HEADER}{rows}"));
    w.write("dst/accounts.csv", HEADER);
    w.write(
        "p.toml",
        &common::into_csv(
            "big",
            "src",
            "[connectors.src]\nplugin = \"csv\"\ndirectory = \"src\"\nlimits = { max_records = 3 }\n",
        ),
    );
    let r = w.run(&["plan", "p.toml"]);
    assert_ne!(r.code(), 0);
    assert!(
        r.stderr()
            .contains("returned more than 3 records in one read"),
        "{}",
        r.stderr()
    );
}

#[test]
fn a_connector_calling_exit_is_reported_in_words_not_a_backtrace() {
    let w = Work::new();
    let r = read_hostile(&w, "exit", "", "", &[]);
    not_a_panic(&r);
    assert_ne!(r.code(), 0);
    assert!(
        r.stderr()
            // wasi:cli/exit carries success or failure only: 3 arrives as 1.
            .contains("it called exit (status 1) instead of returning from the call"),
        "{}",
        r.stderr()
    );
    assert!(!r.stderr().contains("wasm backtrace"), "{}", r.stderr());
}

#[test]
fn malformed_components_are_refused_before_compiling() {
    let w = Work::new();
    let csv = std::fs::read(common::plugins_dir().join("csv.wasm")).unwrap();
    let cases: [(&str, Vec<u8>); 5] = [
        ("empty", vec![]),
        ("truncated", csv[..csv.len() / 2].to_vec()),
        ("garbage", b"MZ\x90\x00this is no component".to_vec()),
        ("core-module", b"\0asm\x01\0\0\0".to_vec()),
        ("text", b"(component)".to_vec()),
    ];
    for (name, bytes) in cases {
        let path = w.path(&format!("{name}.wasm"));
        std::fs::write(&path, bytes).unwrap();
        let r = w.run(&["plugins", "inspect", path.to_str().unwrap()]);
        not_a_panic(&r);
        assert_eq!(r.code(), 2, "{name}: {}", r.stderr());
        assert!(
            r.stderr().contains(&format!("{name}.wasm")),
            "{name}: names the file: {}",
            r.stderr()
        );
    }
}
