//! Reading and writing the CSV files, with errors that name file, line and column.

use roster_sdk::{Account, AccountKind, Attribute, Error, Group, Result, fs};
use std::path::Path;

const COLUMNS: [&str; 12] = [
    "id",
    "kind",
    "email",
    "aliases",
    "display_name",
    "given_name",
    "family_name",
    "enabled",
    "org_unit",
    "external_key",
    "delegates",
    "groups",
];

pub struct AccountTable {
    pub accounts: Vec<Account>,
    extra_columns: Vec<String>,
}

impl AccountTable {
    /// A missing file is an empty table (a new target).
    pub fn load(path: &Path, name: &str) -> Result<Self> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(AccountTable {
                    accounts: vec![],
                    extra_columns: vec![],
                });
            }
            Err(e) => return Err(Error::from(e).context(format!("reading {name}"))),
        };
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(bytes.as_slice());
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| bad(name, 1, &e.to_string()))?
            .iter()
            .map(String::from)
            .collect();
        for required in ["id", "email"] {
            if !headers.iter().any(|h| h == required) {
                return Err(bad(name, 1, &format!("missing column `{required}`")));
            }
        }
        let extra_columns: Vec<String> = headers
            .iter()
            .filter(|h| !COLUMNS.contains(&h.as_str()))
            .cloned()
            .collect();
        let mut accounts = Vec::new();
        for record in reader.records() {
            let record = record
                .map_err(|e| bad(name, e.position().map_or(0, |p| p.line()), &e.to_string()))?;
            let line = record.position().map_or(0, |p| p.line());
            accounts.push(parse_account(&headers, &record, name, line)?);
        }
        Ok(AccountTable {
            accounts,
            extra_columns,
        })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut extra = self.extra_columns.clone();
        for a in &self.accounts {
            for attr in &a.attributes {
                if !extra.contains(&attr.key) {
                    extra.push(attr.key.clone());
                }
            }
        }
        let mut writer = csv::Writer::from_writer(Vec::new());
        let header: Vec<&str> = COLUMNS
            .iter()
            .copied()
            .chain(extra.iter().map(String::as_str))
            .collect();
        writer.write_record(&header).map_err(csv_error)?;
        for a in &self.accounts {
            let mut row = vec![
                a.id.clone(),
                kind_name(a.kind).to_string(),
                a.email.clone(),
                a.aliases.join(";"),
                a.display_name.clone().unwrap_or_default(),
                a.given_name.clone().unwrap_or_default(),
                a.family_name.clone().unwrap_or_default(),
                a.enabled.to_string(),
                a.org_unit.clone().unwrap_or_default(),
                a.external_key.clone().unwrap_or_default(),
                a.delegates.join(";"),
                a.groups.join(";"),
            ];
            for key in &extra {
                row.push(
                    a.attributes
                        .iter()
                        .find(|x| &x.key == key)
                        .map(|x| x.value.clone())
                        .unwrap_or_default(),
                );
            }
            writer.write_record(&row).map_err(csv_error)?;
        }
        let bytes = writer
            .into_inner()
            .map_err(|e| Error::other(e.to_string()))?;
        fs::write_atomic(path, &bytes)
    }

    pub fn find_by_address(&self, address: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| has_address(a, address))
    }

    pub fn get_mut(&mut self, id: &str) -> Result<&mut Account> {
        self.accounts
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or_else(|| Error::not_found(format!("no account with id {id}")))
    }

    /// Enabled people and functional accounts: what a seat is spent on.
    pub fn licensed_count(&self) -> usize {
        self.accounts
            .iter()
            .filter(|a| a.enabled && a.kind != AccountKind::Guest)
            .count()
    }

    pub fn next_id(&self) -> String {
        let max = self
            .accounts
            .iter()
            .filter_map(|a| a.id.strip_prefix("acc-")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        format!("acc-{}", max + 1)
    }

    /// Refuses an address that another account holds, naming the holder; a
    /// guest holding it blocks it until the guest is merged.
    pub fn check_addresses(&self, account: &Account, own_id: Option<&str>) -> Result<()> {
        let addresses = std::iter::once(&account.email).chain(&account.aliases);
        for address in addresses {
            let holder = self
                .accounts
                .iter()
                .find(|a| Some(a.id.as_str()) != own_id && has_address(a, address));
            match holder {
                Some(h) if h.kind == AccountKind::Guest => {
                    return Err(Error::conflict(format!("Alias is a guest: {address}")));
                }
                Some(h) => {
                    return Err(Error::conflict(format!(
                        "{address} is already taken by {}",
                        h.id
                    )));
                }
                None => {}
            }
        }
        Ok(())
    }
}

fn has_address(a: &Account, address: &str) -> bool {
    a.email.eq_ignore_ascii_case(address)
        || a.aliases.iter().any(|x| x.eq_ignore_ascii_case(address))
}

fn parse_account(
    headers: &[String],
    record: &csv::StringRecord,
    file: &str,
    line: u64,
) -> Result<Account> {
    let cell = |column: &str| -> Option<String> {
        headers
            .iter()
            .position(|h| h == column)
            .and_then(|i| record.get(i))
            .filter(|v| !v.is_empty())
            .map(String::from)
    };
    let list = |column: &str| -> Vec<String> {
        cell(column)
            .map(|v| {
                v.split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let id = cell("id").ok_or_else(|| bad(file, line, "column `id` is empty"))?;
    let email = cell("email").ok_or_else(|| bad(file, line, "column `email` is empty"))?;
    if !email.contains('@') {
        return Err(bad(
            file,
            line,
            &format!("column `email`: `{email}` is not an e-mail address"),
        ));
    }
    let kind = match cell("kind").as_deref() {
        None | Some("person") => AccountKind::Person,
        Some("functional") => AccountKind::Functional,
        Some("guest") => AccountKind::Guest,
        Some(other) => {
            return Err(bad(
                file,
                line,
                &format!("column `kind`: expected person, functional or guest, got `{other}`"),
            ));
        }
    };
    let enabled = match cell("enabled").as_deref() {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            return Err(bad(
                file,
                line,
                &format!("column `enabled`: expected true or false, got `{other}`"),
            ));
        }
    };
    let attributes = headers
        .iter()
        .enumerate()
        .filter(|(_, h)| !COLUMNS.contains(&h.as_str()))
        .filter_map(|(i, h)| {
            record.get(i).filter(|v| !v.is_empty()).map(|v| Attribute {
                key: h.clone(),
                value: v.into(),
            })
        })
        .collect();
    Ok(Account {
        id,
        kind,
        email,
        aliases: list("aliases"),
        display_name: cell("display_name"),
        given_name: cell("given_name"),
        family_name: cell("family_name"),
        enabled,
        org_unit: cell("org_unit"),
        external_key: cell("external_key"),
        delegates: list("delegates"),
        groups: list("groups"),
        attributes,
    })
}

pub struct GroupTable {
    pub groups: Vec<Group>,
}

impl GroupTable {
    /// A missing groups file means no groups.
    pub fn load(path: &Path, name: &str) -> Result<Self> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(GroupTable { groups: vec![] });
            }
            Err(e) => return Err(Error::from(e).context(format!("reading {name}"))),
        };
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(bytes.as_slice());
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| bad(name, 1, &e.to_string()))?
            .iter()
            .map(String::from)
            .collect();
        let col = |n: &str| headers.iter().position(|h| h == n);
        let (Some(id), Some(gname)) = (col("id"), col("name")) else {
            return Err(bad(name, 1, "a groups file needs columns `id` and `name`"));
        };
        let (email, members) = (col("email"), col("members"));
        let mut groups = Vec::new();
        for record in reader.records() {
            let record = record
                .map_err(|e| bad(name, e.position().map_or(0, |p| p.line()), &e.to_string()))?;
            let get = |i: Option<usize>| i.and_then(|i| record.get(i)).unwrap_or("").to_string();
            groups.push(Group {
                id: get(Some(id)),
                name: get(Some(gname)),
                email: Some(get(email)).filter(|e| !e.is_empty()),
                member_ids: get(members)
                    .split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            });
        }
        Ok(GroupTable { groups })
    }
}

fn kind_name(kind: AccountKind) -> &'static str {
    match kind {
        AccountKind::Person => "person",
        AccountKind::Functional => "functional",
        AccountKind::Guest => "guest",
    }
}

fn bad(file: &str, line: u64, message: &str) -> Error {
    Error::invalid(format!("{file} line {line}: {message}"))
}

fn csv_error(e: csv::Error) -> Error {
    Error::other(format!("cannot write CSV: {e}"))
}
