//! `roster-sim --foreground` keeps serving with its stdin closed from the
//! start (as under `nohup`, `&` or a service manager) and stops on SIGTERM;
//! without it, a closed stdin stops it (a parent that dies takes it along).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn start(foreground: bool) -> (std::process::Child, String) {
    let seed = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/exchange-to-zivver/zivver/org.json"
    );
    let mut c = Command::new(env!("CARGO_BIN_EXE_roster-sim"));
    c.args(["zivver", "--seed", seed]);
    if foreground {
        c.arg("--foreground");
    }
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

#[test]
fn in_the_foreground_a_closed_stdin_does_not_stop_it_and_sigterm_does() {
    let (mut child, line) = start(true);
    let url = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no url in {line:?}"))
        .to_string();
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "still running");
    assert_eq!(status_of(&url, "Users"), 200, "serving");
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    assert!(!status.success(), "ended by the signal: {status:?}");

    let (mut bound, _) = start(false);
    let status = bound.wait().unwrap();
    assert!(status.success(), "a closed stdin ends it: {status:?}");
}

/// The status code of an authorised GET of `path` under `base` (plain HTTP).
fn status_of(base: &str, path: &str) -> u16 {
    let rest = base.strip_prefix("http://").expect("an http url");
    let (host, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    write!(
        conn,
        "GET /{prefix}{path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer zivver-demo-api-key\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = [0u8; 64];
    let n = conn.read(&mut head).unwrap();
    let answer = String::from_utf8_lossy(&head[..n]).to_string();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}
