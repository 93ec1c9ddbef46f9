//! Roster connector `exchange-online`: the mailboxes of an Exchange Online
//! tenant, their addresses and who may act for whom, as a source.
//!
//! Accounts come from Microsoft Graph `/users`; the mailbox type (Graph
//! cannot tell a shared mailbox from a user) and the FullAccess delegates
//! from the Exchange admin API. Incremental reads follow `/users/delta`:
//! a full read first takes a delta link (`$deltatoken=latest`), so changes
//! made while it runs are seen by the next round; an expired link (410)
//! falls back to a full read by itself.

mod api;
mod convert;
mod directory;
mod model;

use api::{Api, Service, strip_query};
use directory::{Chains, Directory, Lookup, Walk};
use model::{
    DirectoryObject, GraphGroup, GraphUser, MAILBOX_SELECT, MailboxJson, Page, PermissionEntry,
    USER_SELECT,
};
use roster_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Where the next page of a read comes from.
#[derive(Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
enum Cursor {
    /// A full read over `/users`; `delta` is the watermark to hand back at the end.
    Users { next: String, delta: Option<String> },
    /// A delta round.
    Delta { next: String },
}

impl Cursor {
    fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn decode(s: &str) -> Result<Cursor> {
        serde_json::from_str(s).map_err(|_| Error::invalid(format!("malformed cursor `{s}`")))
    }
}

pub struct ExchangeOnline {
    api: Api,
    page_size: u32,
    read_delegates: bool,
    chains: Chains,
    directory: Directory,
    /// Warnings already given in this read (one per mailbox and holder).
    warned: HashSet<String>,
}

impl Connector for ExchangeOnline {
    fn describe() -> Descriptor {
        Descriptor::new("exchange-online", env!("CARGO_PKG_VERSION"))
            .description("Exchange Online mailboxes, addresses and FullAccess delegates (Microsoft Graph and the Exchange admin API)")
            .source()
            .incremental()
            .kinds(&[AccountKind::Person, AccountKind::Functional, AccountKind::Guest])
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
            .field("tenant_id", "Directory (tenant) id or a verified domain of the tenant")
            .field("client_id", "Application (client) id of the app registration")
            .secret("client_secret", "Client secret value of the app registration")
            .optional("login_url", "Entra token endpoint base", Some("https://login.microsoftonline.com"))
            .optional("graph_url", "Microsoft Graph base", Some("https://graph.microsoft.com"))
            .optional("admin_url", "Exchange Online admin API base", Some("https://outlook.office365.com"))
            .optional("page_size", "Users per Graph page ($top, 1 to 999)", Some("999"))
            .optional(
                "delegates",
                "Read FullAccess delegates (one admin API request per mailbox)",
                Some("true"),
            )
            .optional(
                "delegate_chains",
                "shared: follow FullAccess through shared mailboxes (Exchange's reading); all: through user mailboxes too, 10 deep (Zivver CloudSync's)",
                Some("shared"),
            )
            .host("login.microsoftonline.com")
            .host("graph.microsoft.com")
            .host("outlook.office365.com")
    }

    fn configure(config: Config) -> Result<Self> {
        let page_size: u32 = config.number("page_size", 999)?;
        if !(1..=999).contains(&page_size) {
            return Err(Error::invalid(format!(
                "config field `page_size`: {page_size} is not between 1 and 999"
            )));
        }
        let api = Api::new(
            config.required("tenant_id")?,
            config.required("client_id")?,
            config.required("client_secret")?,
            config.get_or("login_url", "https://login.microsoftonline.com"),
            config.get_or("graph_url", "https://graph.microsoft.com"),
            config.get_or("admin_url", "https://outlook.office365.com"),
        );
        Ok(ExchangeOnline {
            api,
            page_size,
            read_delegates: config.bool("delegates", true)?,
            chains: match config.get_or("delegate_chains", "shared") {
                "shared" => Chains::Shared,
                "all" => Chains::All,
                other => {
                    return Err(Error::invalid(format!(
                        "config field `delegate_chains`: `{other}` is not shared or all"
                    )));
                }
            },
            directory: Directory::default(),
            warned: HashSet::new(),
        })
    }

    fn test_connection(&mut self, account: Option<String>) -> Result<ConnectionReport> {
        let mut checks = Vec::new();
        self.api.token(Service::Graph)?;
        checks.push(format!(
            "token for Microsoft Graph from tenant {}",
            self.api.tenant
        ));
        let url = self.api.graph_url("users?$select=id&$top=1");
        self.api
            .get_json::<Page<DirectoryObject>>(Service::Graph, &url)?;
        checks.push("Graph: users readable (User.Read.All)".into());
        let url = self.api.graph_url("groups?$select=id&$top=1");
        let groups = self
            .api
            .get_json::<Page<DirectoryObject>>(Service::Graph, &url)?;
        if let Some(g) = groups.value.first() {
            let url = self.api.graph_url(&format!(
                "groups/{}/members/microsoft.graph.user?$select=id&$top=1",
                g.id
            ));
            self.api
                .get_json::<Page<DirectoryObject>>(Service::Graph, &url)?;
        }
        checks.push("Graph: groups and members readable (GroupMember.Read.All)".into());
        self.api.token(Service::Exchange)?;
        let url = self.api.admin_url("Mailbox?$top=1")?;
        self.api
            .get_json::<Page<MailboxJson>>(Service::Exchange, &url)?;
        checks.push(
            "Exchange admin API: mailboxes readable (Exchange.ManageAsApp and an admin role)"
                .into(),
        );
        let found = match account {
            None => None,
            Some(address) => {
                let a = self.one_account(&address)?;
                checks.push(format!(
                    "mailbox {address} readable ({})",
                    attribute(&a, "mailboxType").unwrap_or("no mailbox")
                ));
                Some(a)
            }
        };
        Ok(ConnectionReport {
            checks,
            account: found,
        })
    }

    fn read_accounts(&mut self, request: PageRequest) -> Result<AccountPage> {
        match (request.cursor, request.watermark) {
            (None, None) => self.start_full(),
            (None, Some(watermark)) => self.start_delta(&watermark),
            (Some(cursor), _) => match Cursor::decode(&cursor)? {
                Cursor::Users { next, delta } => self.users_page(&next, delta),
                Cursor::Delta { next } => {
                    let page = self.api.get_json(Service::Graph, &next)?;
                    self.delta_page(page)
                }
            },
        }
    }

    fn read_groups(&mut self, request: PageRequest) -> Result<GroupPage> {
        let url = match request.cursor {
            Some(next) => next,
            None => self.api.graph_url(&format!(
                "groups?$select=id,displayName,mail&$top={}",
                self.page_size
            )),
        };
        let page: Page<GraphGroup> = self.api.get_json(Service::Graph, &url)?;
        let ids: Vec<String> = page.value.iter().map(|g| g.id.clone()).collect();
        let members = self.members(&ids)?;
        let groups = page
            .value
            .into_iter()
            .zip(members)
            .map(|(g, member_ids)| Group {
                name: g.display_name.unwrap_or_else(|| g.id.clone()),
                id: g.id,
                email: g.mail,
                member_ids,
            })
            .collect();
        Ok(GroupPage {
            groups,
            next_cursor: page.next_link,
        })
    }
}

fn attribute<'a>(a: &'a Account, key: &str) -> Option<&'a str> {
    a.attributes
        .iter()
        .find(|x| x.key == key)
        .map(|x| x.value.as_str())
}

impl ExchangeOnline {
    /// A full read: a delta link first, every mailbox, then `/users` page by page.
    fn start_full(&mut self) -> Result<AccountPage> {
        let latest = self.api.graph_url(&format!(
            "users/delta?$select={USER_SELECT}&$deltatoken=latest"
        ));
        let delta = self
            .api
            .get_json::<Page<serde_json::Value>>(Service::Graph, &latest)?
            .delta_link;
        self.directory = self.load_directory()?;
        self.warned.clear();
        host::info(&format!(
            "{} mailboxes in the Exchange admin API",
            self.directory.len()
        ));
        let first = self.api.graph_url(&format!(
            "users?$select={USER_SELECT}&$top={}",
            self.page_size
        ));
        self.users_page(&first, delta)
    }

    fn start_delta(&mut self, watermark: &str) -> Result<AccountPage> {
        let answer = self.api.get_raw(Service::Graph, watermark)?;
        if answer.status() == 410 {
            host::info("the delta link has expired (410 SyncStateNotFound): reading everything");
            return self.start_full();
        }
        if !answer.is_success() {
            return Err(api::api_error(Service::Graph, watermark, &answer));
        }
        self.directory = Directory::default();
        self.warned.clear();
        let page = match answer.json() {
            Ok(page) => page,
            // Malformed: the retrying path asks again.
            Err(_) => self.api.get_json(Service::Graph, watermark)?,
        };
        self.delta_page(page)
    }

    fn users_page(&mut self, url: &str, delta: Option<String>) -> Result<AccountPage> {
        let page: Page<GraphUser> = self.api.get_json(Service::Graph, url)?;
        let accounts = self.accounts(page.value)?;
        let (next_cursor, watermark) = match page.next_link {
            Some(next) => (Some(Cursor::Users { next, delta }.encode()), None),
            None => (None, delta),
        };
        Ok(AccountPage {
            accounts,
            next_cursor,
            watermark,
            removed_ids: vec![],
            full: true,
        })
    }

    fn delta_page(&mut self, page: Page<GraphUser>) -> Result<AccountPage> {
        let (removed, changed): (Vec<GraphUser>, Vec<GraphUser>) =
            page.value.into_iter().partition(|u| u.removed.is_some());
        for u in &removed {
            let reason = u.removed.as_ref().and_then(|r| r.reason.as_deref());
            host::debug(&format!(
                "user {} removed ({})",
                u.id,
                reason.unwrap_or("deleted")
            ));
        }
        let accounts = self.accounts(changed)?;
        let next_cursor = page.next_link.map(|next| Cursor::Delta { next }.encode());
        if next_cursor.is_none() && page.delta_link.is_none() {
            return Err(Error::other(
                "a delta page without @odata.nextLink or @odata.deltaLink",
            ));
        }
        Ok(AccountPage {
            accounts,
            next_cursor,
            watermark: page.delta_link,
            removed_ids: removed.into_iter().map(|u| u.id).collect(),
            full: false,
        })
    }

    /// Every mailbox, and (when delegates are read) every mailbox's permissions.
    fn load_directory(&mut self) -> Result<Directory> {
        let mut d = Directory::complete();
        let mut url = Some(
            self.api
                .admin_url(&format!("Mailbox?$select={MAILBOX_SELECT}"))?,
        );
        while let Some(u) = url {
            let page: Page<MailboxJson> = self.api.get_json(Service::Exchange, &u)?;
            for m in &page.value {
                d.insert(m);
            }
            url = page.next_link;
        }
        if self.read_delegates {
            let primaries: Vec<String> = d.mailboxes().map(|m| m.primary.clone()).collect();
            self.fetch_permissions(&mut d, &primaries)?;
        }
        Ok(d)
    }

    fn fetch_permissions(&mut self, d: &mut Directory, primaries: &[String]) -> Result<()> {
        let urls: Vec<String> = primaries
            .iter()
            .map(|p| self.api.mailbox_url(p, "/MailboxPermission"))
            .collect::<Result<_>>()?;
        let answers = self
            .api
            .get_many::<Page<PermissionEntry>>(Service::Exchange, &urls)?;
        for (primary, answer) in primaries.iter().zip(answers) {
            let holders = answer?
                .map(|page| {
                    page.value
                        .into_iter()
                        .filter(|e| e.grants_full_access())
                        .map(|e| e.user)
                        .collect()
                })
                .unwrap_or_default();
            d.set_holders(primary, holders);
        }
        Ok(())
    }

    /// Looks up mailboxes by `(identity, also)`: what the lookup is known by
    /// afterwards is the identity and `also` (a user's object id), found or
    /// absent, so no lookup is asked twice.
    fn fetch_mailboxes(&mut self, lookups: &[(String, Option<String>)]) -> Result<()> {
        let urls: Vec<String> = lookups
            .iter()
            .map(|(i, _)| self.api.mailbox_url(i, ""))
            .collect::<Result<_>>()?;
        let answers = self.api.get_many::<MailboxJson>(Service::Exchange, &urls)?;
        for ((identity, also), answer) in lookups.iter().zip(answers) {
            let names = std::iter::once(identity).chain(also);
            match answer? {
                Some(m) => names.for_each(|n| self.directory.insert_as(n, &m)),
                None => names.for_each(|n| self.directory.mark_absent(n)),
            }
        }
        Ok(())
    }

    /// Looks up, in batches, whatever the users' mailboxes and delegate walks still lack.
    /// Looks up what a page of users needs (their mailboxes, then round by
    /// round the mailboxes and FullAccess lists their delegate walks pass
    /// through); the finished walks, by primary address, so each user's
    /// delegates are walked only until they are known.
    fn resolve(&mut self, users: &[GraphUser]) -> Result<HashMap<String, Walk>> {
        // A user's mailbox is asked for by its UPN (an identity Get-Mailbox
        // takes; an Entra object id is not documented as one), known
        // afterwards by the user's id as well.
        let mut unknown = Vec::new();
        for u in users {
            if !matches!(self.directory.find(&u.id), Lookup::Unknown) {
                continue;
            }
            match u.user_principal_name.as_ref().or(u.mail.as_ref()) {
                Some(identity) => unknown.push((identity.clone(), Some(u.id.clone()))),
                None => self.directory.mark_absent(&u.id),
            }
        }
        if !unknown.is_empty() {
            self.fetch_mailboxes(&unknown)?;
        }
        let mut walks = HashMap::new();
        if !self.read_delegates {
            return Ok(walks);
        }
        let mut pending: Vec<String> = users
            .iter()
            .filter_map(|u| match self.directory.find(&u.id) {
                Lookup::Found(m) => Some(m.primary.clone()),
                _ => None,
            })
            .collect();
        for _round in 0..32 {
            let mut boxes = HashSet::new();
            let mut perms = HashSet::new();
            let mut still = Vec::new();
            for primary in pending {
                match self.directory.delegates(&primary, self.chains) {
                    Walk::Need {
                        mailboxes,
                        permissions,
                    } => {
                        boxes.extend(mailboxes);
                        perms.extend(permissions);
                        still.push(primary);
                    }
                    done => {
                        walks.insert(primary, done);
                    }
                }
            }
            if still.is_empty() {
                return Ok(walks);
            }
            pending = still;
            let boxes: Vec<(String, Option<String>)> =
                boxes.into_iter().map(|b| (b, None)).collect();
            self.fetch_mailboxes(&boxes)?;
            let mut d = std::mem::take(&mut self.directory);
            let result = self.fetch_permissions(&mut d, &perms.into_iter().collect::<Vec<_>>());
            self.directory = d;
            result?;
        }
        Err(Error::other(
            "delegate lookups did not settle after 32 rounds",
        ))
    }

    fn accounts(&mut self, users: Vec<GraphUser>) -> Result<Vec<Account>> {
        let mut walks = self.resolve(&users)?;
        let mut out = Vec::with_capacity(users.len());
        for user in users {
            let mailbox = match self.directory.find(&user.id) {
                Lookup::Found(m) => Some(m.clone()),
                _ => None,
            };
            let delegates = match (&mailbox, self.read_delegates) {
                (Some(m), true) => {
                    let walk = walks
                        .remove(&m.primary)
                        .unwrap_or_else(|| self.directory.delegates(&m.primary, self.chains));
                    self.delegates(&m.primary, walk)
                }
                _ => vec![],
            };
            if user.mail.is_none()
                && user.proxy_addresses.as_ref().is_none_or(Vec::is_empty)
                && mailbox.is_none()
            {
                host::debug(&format!("user {} has no mail address; skipped", user.id));
                continue;
            }
            if let Some(a) = convert::account(user, mailbox.as_ref(), delegates) {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// The delegates a finished walk found; each holder that is no mailbox
    /// warned about once.
    fn delegates(&mut self, primary: &str, walk: Walk) -> Vec<String> {
        match walk {
            Walk::Done { delegates, dropped } => {
                for holder in dropped {
                    if self.warned.insert(format!("{primary}\u{0}{holder}")) {
                        host::warn(&format!(
                            "{primary}: FullAccess holder {holder} is no mailbox of the tenant; left out of the delegates"
                        ));
                    }
                }
                delegates
            }
            Walk::Need { .. } => vec![],
        }
    }

    /// Direct member ids of each group, following each member list's pages.
    fn members(&mut self, group_ids: &[String]) -> Result<Vec<Vec<String>>> {
        let mut result: Vec<Vec<String>> = vec![vec![]; group_ids.len()];
        let mut pending: Vec<(usize, String)> = group_ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                (
                    i,
                    // Users only: members are also groups, devices, contacts.
                    self.api.graph_url(&format!(
                        "groups/{id}/members/microsoft.graph.user?$select=id&$top={}",
                        self.page_size
                    )),
                )
            })
            .collect();
        while !pending.is_empty() {
            let urls: Vec<String> = pending.iter().map(|(_, u)| u.clone()).collect();
            let answers = self
                .api
                .get_many::<Page<DirectoryObject>>(Service::Graph, &urls)?;
            let mut next = Vec::new();
            for ((i, url), answer) in pending.into_iter().zip(answers) {
                let Some(page) = answer? else {
                    host::warn(&format!("group members at {} not found", strip_query(&url)));
                    continue;
                };
                result[i].extend(page.value.into_iter().map(|m| m.id));
                if let Some(link) = page.next_link {
                    next.push((i, link));
                }
            }
            pending = next;
        }
        Ok(result)
    }

    /// One mailbox by address, as an account (for `test-connection --account`).
    fn one_account(&mut self, address: &str) -> Result<Account> {
        let url = self.api.mailbox_url(address, "")?;
        let mailbox = self
            .api
            .get_many::<MailboxJson>(Service::Exchange, &[url])?
            .pop()
            .unwrap_or(Ok(None))?
            .ok_or_else(|| {
                Error::not_found(format!(
                    "no mailbox {address} in tenant {}",
                    self.api.tenant
                ))
            })?;
        self.directory.insert(&mailbox);
        let id = mailbox
            .external_directory_object_id
            .clone()
            .ok_or_else(|| {
                Error::other(format!(
                    "mailbox {address} has no ExternalDirectoryObjectId"
                ))
            })?;
        let url = self
            .api
            .graph_url(&format!("users/{id}?$select={USER_SELECT}"));
        let user: GraphUser = self.api.get_json(Service::Graph, &url)?;
        self.accounts(vec![user])?
            .pop()
            .ok_or_else(|| Error::other(format!("user {id} has no mail address")))
    }
}

roster_sdk::export_connector!(ExchangeOnline);
