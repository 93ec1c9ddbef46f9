//! A connector that misbehaves on request, to prove the host survives it.
//! Config `mode` picks what `read-accounts` does:
//!
//! - `trap`: panics (a wasm trap);
//! - `loop`: spins forever;
//! - `alloc`: allocates without end;
//! - `http`: calls `url` (which the pipeline may or may not grant);
//! - `chatty`: prints far more than the host's output budget, then answers;
//! - `leak`: logs, prints and fails with its `token` config value;
//! - `leak-encoded`: logs and fails with the token's hex, base64 and JSON forms;
//! - `host-header`: calls `url` with its own `Host: evil.example`;
//! - `big-answers`: asks `url` for `n` answers at once (one batch);
//! - `log-flood`: logs `n` lines of 8 KiB;
//! - `big-name`: answers an account whose display name is `n` bytes;
//! - `same-cursor`: answers every page with the cursor `again`;
//! - `exit`: calls `exit(3)` in the middle of a call;
//! - `environment`: answers an account whose attributes are the
//!   environment variables it sees;
//! - `files`: tries file operations in and outside the granted `/data` and
//!   answers each outcome as an attribute (`ok` or the error);
//! - anything else: answers one account.

use roster_sdk::http::send_all;
use roster_sdk::prelude::*;
use std::hint::black_box;

pub struct Misbehave {
    mode: String,
    url: String,
    token: String,
    n: usize,
}

impl Connector for Misbehave {
    fn describe() -> Descriptor {
        Descriptor::new("misbehave", env!("CARGO_PKG_VERSION"))
            .description("Test fixture: misbehaves on request")
            .source()
            .target()
            .optional(
                "mode",
                "trap, loop, alloc, http, chatty, leak or well",
                Some("well"),
            )
            .optional("url", "What `http` mode calls", None)
            .optional("n", "How many (answers, lines, bytes)", Some("1"))
            .secret("token", "A secret the `leak` mode tries to leak")
    }

    fn configure(config: Config) -> Result<Self> {
        Ok(Misbehave {
            mode: config.get_or("mode", "well").to_string(),
            url: config.get_or("url", "").to_string(),
            token: config.required("token")?.to_string(),
            n: config.get_or("n", "1").parse().unwrap_or(1),
        })
    }

    fn read_accounts(&mut self, _request: PageRequest) -> Result<AccountPage> {
        match self.mode.as_str() {
            "trap" => panic!("misbehave: deliberate panic"),
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(black_box(vec![1u8; 1 << 20]));
                }
            }
            "http" => {
                let answer = Request::get(&self.url).send()?;
                host::info(&format!("answered {}", answer.status()));
                Ok(AccountPage::last(vec![account("http-ok@example.com")]))
            }
            "chatty" => {
                for i in 0..200_000 {
                    println!(
                        "chatty line {i} with some padding to use up the output budget quickly"
                    );
                }
                Ok(AccountPage::last(vec![account("chatty@example.com")]))
            }
            "leak" => {
                host::warn(&format!("connecting with token {}", self.token));
                eprintln!("stderr token={}", self.token);
                Err(Error::new(
                    ErrorKind::Unauthorized,
                    format!("token {} was refused", self.token),
                ))
            }
            "leak-encoded" => {
                let t = self.token.as_bytes();
                let forms = [
                    hex(t),
                    hex(t).to_uppercase(),
                    base64(t),
                    base64(format!("client:{}", self.token).as_bytes()),
                    format!("{:?}", self.token),
                ];
                for f in &forms {
                    host::warn(&format!("encoded {f}"));
                    eprintln!("stderr encoded {f}");
                }
                Err(Error::new(
                    ErrorKind::Unauthorized,
                    format!("refused: {}", forms.join(" ")),
                ))
            }
            "host-header" => {
                let answer = Request::get(&self.url)
                    .header("Host", "evil.example")
                    .send()?;
                Ok(AccountPage::last(vec![with_attribute(
                    account("host@example.com"),
                    "answer",
                    &answer.text(),
                )]))
            }
            "big-answers" => {
                let requests: Vec<Request> = (0..self.n).map(|_| Request::get(&self.url)).collect();
                let mut failed = Vec::new();
                for r in send_all(&requests) {
                    if let Err(e) = r {
                        failed.push(e.to_string());
                    }
                }
                match failed.first() {
                    Some(e) => Err(Error::invalid(e.clone())),
                    None => Ok(AccountPage::last(vec![account("big@example.com")])),
                }
            }
            "log-flood" => {
                let line = "x".repeat(8192);
                for _ in 0..self.n {
                    host::info(&line);
                }
                Ok(AccountPage::last(vec![account("flood@example.com")]))
            }
            "big-name" => {
                let mut a = account("big-name@example.com");
                a.display_name = Some("n".repeat(self.n));
                Ok(AccountPage::last(vec![a]))
            }
            "exit" => std::process::exit(3),
            "same-cursor" => Ok(AccountPage {
                next_cursor: Some("again".into()),
                ..AccountPage::last(vec![account("page@example.com")])
            }),
            "environment" => {
                let mut a = account("env@example.com");
                for (k, v) in std::env::vars() {
                    a = with_attribute(a, &k, &v);
                }
                Ok(AccountPage::last(vec![a]))
            }
            "files" => Ok(AccountPage::last(vec![files()])),
            _ => Ok(AccountPage::last(vec![account("well@example.com")])),
        }
    }
}

fn with_attribute(mut a: Account, key: &str, value: &str) -> Account {
    a.attributes.push(Attribute {
        key: key.to_string(),
        value: value.to_string(),
    });
    a
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            match i <= chunk.len() {
                true => out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char),
                false => out.push('='),
            }
        }
    }
    out
}

/// Each file operation tried, with its outcome: inside `/data` they may
/// succeed; everything that would reach outside it must fail.
fn files() -> Account {
    use std::fs;
    let outcome = |r: std::io::Result<()>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("refused: {e}"),
    };
    let tries: Vec<(&str, std::io::Result<()>)> = vec![
        ("inside-write", fs::write("/data/inside.txt", "in")),
        ("inside-read", fs::read("/data/inside.txt").map(|_| ())),
        ("etc-passwd", fs::read("/etc/passwd").map(|_| ())),
        ("root-list", fs::read_dir("/").map(|_| ())),
        ("dotdot-read", fs::read("/data/../secret.txt").map(|_| ())),
        ("dotdot-write", fs::write("/data/../escaped.txt", "out")),
        (
            "deep-dotdot",
            fs::read("/data/a/../../secret.txt").map(|_| ()),
        ),
        ("absolute-tmp", fs::write("/tmp/escaped.txt", "out")),
        ("relative", fs::read("secret.txt").map(|_| ())),
        (
            "hardlink-out",
            fs::hard_link("/data/inside.txt", "/data/../hard.txt"),
        ),
        ("create-dir-out", fs::create_dir("/data/../made")),
        ("remove-out", fs::remove_file("/data/../secret.txt")),
        (
            "rename-out",
            fs::rename("/data/inside.txt", "/data/../moved.txt"),
        ),
        ("proc-self", fs::read("/proc/self/environ").map(|_| ())),
    ];
    let mut a = account("files@example.com");
    for (name, r) in tries {
        a = with_attribute(a, name, &outcome(r));
    }
    a
}

fn account(email: &str) -> Account {
    Account {
        id: email.into(),
        kind: AccountKind::Person,
        email: email.into(),
        aliases: vec![],
        display_name: None,
        given_name: None,
        family_name: None,
        enabled: true,
        org_unit: None,
        external_key: None,
        delegates: vec![],
        groups: vec![],
        attributes: vec![],
    }
}

roster_sdk::export_connector!(Misbehave);
