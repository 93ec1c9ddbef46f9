//! A connector that misbehaves on request, to prove the host survives it.
//! Config `mode` picks what `read-accounts` does:
//!
//! - `trap`: panics (a wasm trap);
//! - `loop`: spins forever;
//! - `alloc`: allocates without end;
//! - `http`: calls `url` (which the pipeline may or may not grant);
//! - `chatty`: prints far more than the host's output budget, then answers;
//! - `leak`: logs, prints and fails with its `token` config value;
//! - anything else: answers one account.

use roster_sdk::prelude::*;
use std::hint::black_box;

pub struct Misbehave {
    mode: String,
    url: String,
    token: String,
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
            .secret("token", "A secret the `leak` mode tries to leak")
    }

    fn configure(config: Config) -> Result<Self> {
        Ok(Misbehave {
            mode: config.get_or("mode", "well").to_string(),
            url: config.get_or("url", "").to_string(),
            token: config.required("token")?.to_string(),
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
            _ => Ok(AccountPage::last(vec![account("well@example.com")])),
        }
    }
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
