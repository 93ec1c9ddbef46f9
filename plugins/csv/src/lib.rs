//! Roster connector `csv`: accounts (and optionally groups) kept in CSV files
//! inside the directory the pipeline grants. Usable as a source (an HR export)
//! and as a target, which is what lets the whole pipeline be tested end to end
//! without any vendor.
//!
//! Columns of the accounts file: `id, kind, email, aliases, display_name,
//! given_name, family_name, enabled, org_unit, external_key, delegates,
//! groups`; list cells are separated by `;`. Any other column becomes an
//! attribute; per-link options are written to `option.<name>` columns.

mod table;

use roster_sdk::prelude::*;
use roster_sdk::{AccountRef, MergeGuest, SeatCount, Update, fs, paging};
use table::{AccountTable, GroupTable};

pub struct Csv {
    accounts_file: String,
    groups_file: String,
    seats: Option<u32>,
    /// Accounts as read by the last first-page request, served page by page.
    groups: Vec<Group>,
}

impl Connector for Csv {
    fn describe() -> Descriptor {
        Descriptor::new("csv", env!("CARGO_PKG_VERSION"))
            .description("Accounts and groups in CSV files inside a directory the pipeline grants")
            .source()
            .target()
            .kinds(&[
                AccountKind::Person,
                AccountKind::Functional,
                AccountKind::Guest,
            ])
            .fields(&[
                Field::Email,
                Field::Aliases,
                Field::DisplayName,
                Field::GivenName,
                Field::FamilyName,
                Field::Enabled,
                Field::OrgUnit,
                Field::ExternalKey,
                Field::Delegates,
            ])
            .optional(
                "accounts",
                "Accounts file, relative to the granted directory",
                Some("accounts.csv"),
            )
            .optional(
                "groups",
                "Groups file (id, name, email, members), relative to the granted directory",
                Some("groups.csv"),
            )
            .optional(
                "seats",
                "Licence seats: how many enabled people the file may hold",
                None,
            )
    }

    fn configure(config: Config) -> Result<Self> {
        let seats = match config.get("seats") {
            None | Some("") => None,
            Some(_) => Some(config.number("seats", 0u32)?),
        };
        let accounts_file = config.get_or("accounts", "accounts.csv").to_string();
        let groups_file = config.get_or("groups", "groups.csv").to_string();
        fs::resolve(&accounts_file)?;
        fs::resolve(&groups_file)?;
        Ok(Csv {
            accounts_file,
            groups_file,
            seats,
            groups: vec![],
        })
    }

    fn test_connection(&mut self, account: Option<String>) -> Result<ConnectionReport> {
        let table = self.load_accounts()?;
        let checks = vec![format!(
            "{} readable: {} accounts",
            self.accounts_file,
            table.accounts.len()
        )];
        ConnectionReport::found(checks, account, |address| {
            table.find_by_address(address).cloned().ok_or_else(|| {
                Error::not_found(format!(
                    "no account with address {address} in {}",
                    self.accounts_file
                ))
            })
        })
    }

    fn read_all(&mut self) -> Result<Vec<Account>> {
        Ok(self.load_accounts()?.accounts)
    }

    fn read_groups(&mut self, request: PageRequest) -> Result<GroupPage> {
        if request.cursor.is_none() {
            self.groups =
                GroupTable::load(&fs::resolve(&self.groups_file)?, &self.groups_file)?.groups;
        }
        let (groups, next_cursor) = paging::offset_page(&self.groups, &request)?;
        Ok(GroupPage {
            groups,
            next_cursor,
        })
    }

    fn seats(&mut self) -> Result<SeatCount> {
        let Some(total) = self.seats else {
            return Ok(SeatCount { free: None });
        };
        let used = self.load_accounts()?.licensed_count() as u32;
        Ok(SeatCount {
            free: Some(total.saturating_sub(used)),
        })
    }

    fn apply(&mut self, changes: Vec<Change>) -> Vec<ChangeResult> {
        let mut table = match self.load_accounts() {
            Ok(t) => t,
            Err(e) => {
                return changes
                    .into_iter()
                    .map(|c| ChangeResult {
                        change_id: c.id,
                        outcome: Err(e.clone()),
                    })
                    .collect();
            }
        };
        let results: Vec<ChangeResult> = changes
            .into_iter()
            .map(|change| {
                let outcome = apply_one(&mut table, self.seats, &change);
                ChangeResult {
                    change_id: change.id,
                    outcome,
                }
            })
            .collect();
        // One atomic write per batch: a crash leaves the old or the new file.
        let path = match fs::resolve(&self.accounts_file) {
            Ok(p) => p,
            Err(e) => return fail_all(results, e),
        };
        match table.save(&path) {
            Ok(()) => results,
            Err(e) => fail_all(
                results,
                e.context(format!("writing {}", self.accounts_file)),
            ),
        }
    }
}

impl Csv {
    fn load_accounts(&self) -> Result<AccountTable> {
        AccountTable::load(&fs::resolve(&self.accounts_file)?, &self.accounts_file)
    }
}

fn fail_all(results: Vec<ChangeResult>, e: Error) -> Vec<ChangeResult> {
    results
        .into_iter()
        .map(|r| ChangeResult {
            outcome: r.outcome.and(Err(e.clone())),
            change_id: r.change_id,
        })
        .collect()
}

fn apply_one(table: &mut AccountTable, seats: Option<u32>, change: &Change) -> Result<Applied> {
    match &change.op {
        Operation::Create(account) => {
            if let Some(total) = seats
                && account.enabled
                && account.kind == AccountKind::Person
                && table.licensed_count() as u32 >= total
            {
                return Err(Error::new(
                    ErrorKind::Licence,
                    format!("no free seat: all {total} are in use"),
                ));
            }
            table.check_addresses(account, None)?;
            let mut row = account.clone();
            row.id = table.next_id();
            set_options(&mut row, &change.options);
            let id = row.id.clone();
            table.accounts.push(row);
            Ok(Applied { id: Some(id) })
        }
        Operation::Update(Update { id, account, .. }) => {
            table.check_addresses(account, Some(id))?;
            let row = table.get_mut(id)?;
            let (kind, groups) = (row.kind, std::mem::take(&mut row.groups));
            *row = Account {
                id: id.clone(),
                kind,
                groups,
                ..account.clone()
            };
            set_options(row, &change.options);
            Ok(Applied {
                id: Some(id.clone()),
            })
        }
        Operation::Disable(id) => {
            table.get_mut(id)?.enabled = false;
            Ok(Applied {
                id: Some(id.clone()),
            })
        }
        Operation::Delete(id) => {
            table.get_mut(id)?;
            table.accounts.retain(|a| &a.id != id);
            Ok(Applied { id: None })
        }
        Operation::MergeGuest(MergeGuest { guest, into }) => merge_guest(table, guest, into),
    }
}

/// A guest whose address belongs to a real account is removed, which frees
/// the address for that account.
fn merge_guest(table: &mut AccountTable, guest: &AccountRef, into: &AccountRef) -> Result<Applied> {
    let guest_id = match &guest.id {
        Some(id) => id.clone(),
        None => table
            .find_by_address(&guest.email)
            .map(|a| a.id.clone())
            .ok_or_else(|| Error::not_found(format!("no guest account {}", guest.email)))?,
    };
    let row = table.get_mut(&guest_id)?;
    if row.kind != AccountKind::Guest {
        return Err(Error::conflict(format!(
            "{} is not a guest account",
            row.email
        )));
    }
    table.accounts.retain(|a| a.id != guest_id);
    Ok(Applied {
        id: into.id.clone(),
    })
}

fn set_options(row: &mut Account, options: &[Attribute]) {
    row.attributes.retain(|a| !a.key.starts_with("option."));
    row.attributes.extend(options.iter().map(|o| Attribute {
        key: format!("option.{}", o.key),
        value: o.value.clone(),
    }));
}

roster_sdk::export_connector!(Csv);
