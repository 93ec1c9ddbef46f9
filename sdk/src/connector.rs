//! The one trait a connector implements. Every method but `describe` and
//! `configure` has a default, so a read-only source is three methods long
//! (`read_all` reads everything; the SDK serves it page by page).

use crate::{
    AccountPage, Applied, Change, ChangeResult, Config, ConnectionReport, Descriptor, Error,
    GroupPage, PageRequest, Result, SeatCount,
};

pub trait Connector: Sized + 'static {
    /// Name, version, capabilities and configuration fields. Runs with no
    /// configuration, network or files.
    fn describe() -> Descriptor;

    /// Builds the connector from its configuration (secrets already resolved).
    fn configure(config: Config) -> Result<Self>;

    /// Checks the connection; with `account`, that this one account is
    /// readable. The default finds it with [`Connector::find_account`].
    fn test_connection(&mut self, account: Option<String>) -> Result<ConnectionReport> {
        ConnectionReport::found(vec!["configured".into()], account, |address| {
            self.find_account(address)
        })
    }

    /// Every account, read at once: for services with no paging worth
    /// passing through (files, or APIs read whole). The default
    /// [`Connector::read_accounts`] calls it for the first page and serves
    /// the rest from what it returned.
    fn read_all(&mut self) -> Result<Vec<crate::Account>> {
        Err(Error::unsupported("reading accounts"))
    }

    /// One page of accounts. The default pages what [`Connector::read_all`]
    /// returns; override it to pass a service's own paging (or a delta) through.
    fn read_accounts(&mut self, request: PageRequest) -> Result<AccountPage> {
        let owner = self as *const Self as usize;
        crate::paging::snapshot_page(owner, &request, || self.read_all())
    }

    /// The account that has `address` (primary or alias, in any case), or a
    /// not-found error that says what to do. The default looks through
    /// [`Connector::read_all`]; override it where the service can look one
    /// address up, or to say in the service's terms why none matched.
    fn find_account(&mut self, address: &str) -> Result<crate::Account> {
        let all = self.read_all()?;
        all.into_iter()
            .find(|a| a.has_address(address))
            .ok_or_else(|| Error::not_found(format!("no account has the address {address}")))
    }

    /// One page of groups; none by default.
    fn read_groups(&mut self, request: PageRequest) -> Result<GroupPage> {
        let _ = request;
        Ok(GroupPage {
            groups: vec![],
            next_cursor: None,
        })
    }

    /// Free licence seats; unlimited by default.
    fn seats(&mut self) -> Result<SeatCount> {
        Ok(SeatCount { free: None })
    }

    /// Applies a batch. The default applies each change with
    /// [`Connector::apply_change`]; override it to batch requests.
    fn apply(&mut self, changes: Vec<Change>) -> Vec<ChangeResult> {
        changes
            .into_iter()
            .map(|change| {
                let change_id = change.id.clone();
                ChangeResult {
                    change_id,
                    outcome: self.apply_change(change),
                }
            })
            .collect()
    }

    /// Applies one change.
    fn apply_change(&mut self, change: Change) -> Result<Applied> {
        let _ = change;
        Err(Error::unsupported("writing"))
    }
}

impl crate::Account {
    /// An enabled account with only its id, kind and primary address set.
    pub fn new(id: impl Into<String>, kind: crate::AccountKind, email: impl Into<String>) -> Self {
        crate::Account {
            id: id.into(),
            kind,
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

    /// The primary address, then the aliases.
    pub fn addresses(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.email.as_str()).chain(self.aliases.iter().map(String::as_str))
    }

    /// Whether `address` is its primary address or an alias, in any case.
    pub fn has_address(&self, address: &str) -> bool {
        self.addresses().any(|a| a.eq_ignore_ascii_case(address))
    }

    /// The value of attribute `key`, if set.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.key == key)
            .map(|a| a.value.as_str())
    }
}

impl ConnectionReport {
    /// `checks`, and with `address`, the account `find` finds for it (with a
    /// check line naming it), or the error `find` gives.
    pub fn found(
        mut checks: Vec<String>,
        address: Option<String>,
        find: impl FnOnce(&str) -> Result<crate::Account>,
    ) -> Result<ConnectionReport> {
        let Some(address) = address else {
            return Ok(ConnectionReport {
                checks,
                account: None,
            });
        };
        let account = find(&address)?;
        checks.push(format!("account {address} found (id {})", account.id));
        Ok(ConnectionReport {
            checks,
            account: Some(account),
        })
    }
}

impl AccountPage {
    /// The page `request` asks for out of accounts read whole beforehand
    /// (offset cursors): for connectors whose service has no paging of its
    /// own worth passing through, or that read everything at once.
    pub fn of_snapshot(snapshot: &[crate::Account], request: &PageRequest) -> Result<Self> {
        let (accounts, next_cursor) = crate::paging::offset_page(snapshot, request)?;
        Ok(AccountPage {
            accounts,
            next_cursor,
            watermark: None,
            removed_ids: vec![],
            full: true,
        })
    }

    /// A last page with these accounts.
    pub fn last(accounts: Vec<crate::Account>) -> Self {
        AccountPage {
            accounts,
            next_cursor: None,
            watermark: None,
            removed_ids: vec![],
            full: true,
        }
    }
}
