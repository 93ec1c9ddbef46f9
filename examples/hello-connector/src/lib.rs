//! The connector `docs/writing-a-connector.md` walks through: people from a
//! small JSON API ("Hello"), read as a source and written as a target. It is
//! a workspace member, so the guide's code is compiled and linted on every
//! CI run. The API is made up; a real connector cites its vendor's reference
//! for every request it sends.

use roster_sdk::prelude::*;
use serde_json::{Value, json};

pub struct Hello {
    api: HttpClient,
}

impl Connector for Hello {
    fn describe() -> Descriptor {
        Descriptor::new("hello", env!("CARGO_PKG_VERSION"))
            .description("People in the Hello API")
            .source()
            .target()
            // What the target keeps. Left out, a target declares only
            // `email`, and no update is ever planned for the other fields.
            .kinds(&[AccountKind::Person])
            .fields(&[Field::Email, Field::DisplayName, Field::Enabled])
            .field(
                "base_url",
                "Where the API lives, e.g. https://api.hello.example/v1",
            )
            .secret("api_key", "API key (use ${env:NAME} in the pipeline)")
            .host("api.hello.example")
    }

    fn configure(config: Config) -> Result<Self> {
        let key = config.required("api_key")?;
        let api = HttpClient::new(config.required("base_url")?)
            .with_header("Authorization", format!("Bearer {key}"));
        Ok(Hello { api })
    }

    /// Pages as the service pages: its `next` link is the cursor.
    fn read_accounts(&mut self, request: PageRequest) -> Result<AccountPage> {
        let path = request.cursor.unwrap_or_else(|| "people?limit=500".into());
        let page: Value = self.api.get_json(&path)?; // an absolute next link is kept as it is
        let people = page["people"]
            .as_array()
            .ok_or_else(|| Error::invalid(format!("GET {path}: no `people` list in the answer")))?;
        let accounts = people.iter().map(account).collect::<Result<Vec<_>>>()?;
        Ok(AccountPage {
            accounts,
            next_cursor: page["next"].as_str().map(String::from),
            watermark: None,
            removed_ids: vec![],
            full: true,
        })
    }

    /// One change; the default `apply` calls this for each change of a batch.
    fn apply_change(&mut self, change: Change) -> Result<Applied> {
        match change.op {
            Operation::Create(a) => {
                let created: Value = self
                    .api
                    .request("POST", "people")
                    .json(&body(&a))?
                    .send()?
                    .error_for_status()?
                    .json()?;
                // The new account's id links it; an answer without one is an error.
                let id = created["id"]
                    .as_str()
                    .filter(|id| !id.is_empty())
                    .ok_or_else(|| Error::invalid("POST people: the answer has no `id`"))?;
                Ok(Applied {
                    id: Some(id.to_string()),
                })
            }
            Operation::Update(u) => {
                let path = format!("people/{}", u.id);
                self.api
                    .request("PUT", &path)
                    .json(&body(&u.account))?
                    .send()?
                    .error_for_status()?;
                Ok(Applied { id: Some(u.id) })
            }
            Operation::Disable(id) => {
                let path = format!("people/{id}");
                self.api
                    .request("PATCH", &path)
                    .json(&json!({ "active": false }))?
                    .send()?
                    .error_for_status()?;
                Ok(Applied { id: Some(id) })
            }
            Operation::Delete(_) | Operation::MergeGuest(_) => {
                Err(Error::unsupported("deleting or merging in Hello"))
            }
        }
    }
}

/// A Hello person as Roster's account.
fn account(p: &Value) -> Result<Account> {
    let (Some(id), Some(email)) = (p["id"].as_str(), p["email"].as_str()) else {
        return Err(Error::invalid(format!(
            "a person without `id` or `email`: {p}"
        )));
    };
    let mut a = Account::new(id, AccountKind::Person, email);
    a.display_name = p["name"].as_str().map(String::from);
    a.enabled = p["active"].as_bool().unwrap_or(true);
    Ok(a)
}

/// Roster's account as the body Hello takes.
fn body(a: &Account) -> Value {
    json!({ "email": a.email, "name": a.display_name, "active": a.enabled })
}

roster_sdk::export_connector!(Hello);

/// Native tests: the same code, run with `cargo test -p roster-hello`, no
/// component or host needed (`roster_sdk::native` also runs the
/// connector's calls natively against a real HTTP server).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_person_maps_to_an_account_and_back() {
        let p = json!({ "id": "7", "email": "ann@example.com", "name": "Ann", "active": false });
        let a = account(&p).unwrap();
        assert_eq!(
            (a.id.as_str(), a.email.as_str(), a.enabled),
            ("7", "ann@example.com", false)
        );
        assert_eq!(
            body(&a),
            json!({ "email": "ann@example.com", "name": "Ann", "active": false })
        );
        assert!(account(&json!({ "name": "no address" })).is_err());
    }

    #[test]
    fn it_declares_what_it_keeps() {
        let d = Hello::describe();
        assert!(d.source && d.target);
        assert!(d.fields.contains(&Field::DisplayName));
    }
}
