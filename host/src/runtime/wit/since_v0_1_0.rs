//! Everything `roster:connector@0.1.0` is to the host: its bindings, the
//! conversions between its records and the host's model, the host side of
//! its imports (log, http, memo, clock, delegating to the version-neutral
//! capabilities in `runtime`), and its exports as calls on model types.
//! No other file names this version.

use crate::model;
use crate::runtime::http::{HttpFailure, HttpRequest, HttpResponse};
use crate::runtime::store::{LogLevel, StoreState};
use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker};

wasmtime::component::bindgen!({
    world: "roster:connector/plugin@0.1.0",
    path: "../wit/since_v0.1.0",
    imports: {
        "roster:connector/http": async,
        default: tracing,
    },
    exports: { default: async },
});

use self::roster::connector as v01;
use self::roster::connector::types as wit;

pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    Plugin::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |s| s)
}

pub fn pre(pre: InstancePre<StoreState>) -> wasmtime::Result<PluginPre<StoreState>> {
    PluginPre::new(pre)
}

/// The connector's exports, called with and answering in model types; the
/// outer `Result` is a trap, the inner one the connector's own error.
pub struct Guest(Plugin);

type Answer<T> = wasmtime::Result<Result<T, model::ConnectorError>>;

impl Guest {
    pub async fn instantiate(
        pre: &PluginPre<StoreState>,
        store: &mut Store<StoreState>,
    ) -> wasmtime::Result<Guest> {
        Ok(Guest(pre.instantiate_async(store).await?))
    }

    pub async fn describe(&self, s: &mut Store<StoreState>) -> wasmtime::Result<model::Descriptor> {
        let d = self.0.roster_connector_connector().call_describe(s).await?;
        Ok(d.into())
    }

    pub async fn configure(
        &self,
        s: &mut Store<StoreState>,
        config: &[(String, String)],
    ) -> Answer<()> {
        let entries: Vec<wit::ConfigEntry> = config
            .iter()
            .map(|(key, value)| wit::ConfigEntry {
                key: key.clone(),
                value: value.clone(),
            })
            .collect();
        let r = self
            .0
            .roster_connector_connector()
            .call_configure(s, &entries)
            .await?;
        Ok(r.map_err(Into::into))
    }

    pub async fn test_connection(
        &self,
        s: &mut Store<StoreState>,
        account: Option<&str>,
    ) -> Answer<model::ConnectionReport> {
        let r = self
            .0
            .roster_connector_connector()
            .call_test_connection(s, account)
            .await?;
        Ok(r.map(Into::into).map_err(Into::into))
    }

    pub async fn read_accounts(
        &self,
        s: &mut Store<StoreState>,
        request: &model::PageRequest,
    ) -> Answer<model::AccountPage> {
        let req = wit::PageRequest::from(request);
        let r = self
            .0
            .roster_connector_connector()
            .call_read_accounts(s, &req)
            .await?;
        Ok(r.map(Into::into).map_err(Into::into))
    }

    pub async fn read_groups(
        &self,
        s: &mut Store<StoreState>,
        request: &model::PageRequest,
    ) -> Answer<model::GroupPage> {
        let req = wit::PageRequest::from(request);
        let r = self
            .0
            .roster_connector_connector()
            .call_read_groups(s, &req)
            .await?;
        Ok(r.map(Into::into).map_err(Into::into))
    }

    pub async fn seats(&self, s: &mut Store<StoreState>) -> Answer<Option<u32>> {
        let r = self.0.roster_connector_connector().call_seats(s).await?;
        Ok(r.map(|s| s.free).map_err(Into::into))
    }

    pub async fn apply(
        &self,
        s: &mut Store<StoreState>,
        changes: Vec<model::Change>,
    ) -> wasmtime::Result<Vec<model::ChangeResult>> {
        let batch: Vec<wit::Change> = changes.into_iter().map(Into::into).collect();
        let results = self
            .0
            .roster_connector_connector()
            .call_apply(s, &batch)
            .await?;
        Ok(results.into_iter().map(Into::into).collect())
    }
}

impl v01::types::Host for StoreState {}

impl v01::log::Host for StoreState {
    fn log(&mut self, level: v01::log::Level, message: String, fields: Vec<v01::log::Field>) {
        use v01::log::Level;
        let level = match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        let fields = fields.into_iter().map(|f| (f.key, f.value));
        self.log_line(level, message, fields);
    }
}

impl v01::memo::Host for StoreState {
    fn get(&mut self, key: String) -> Option<String> {
        self.memo.get(&key)
    }

    fn set(&mut self, key: String, value: String) -> Result<(), String> {
        self.memo.set(key, value, &self.redactor)
    }

    fn remove(&mut self, key: String) {
        self.memo.remove(&key)
    }

    fn list(&mut self, prefix: String) -> Vec<(String, String)> {
        self.memo.list(&prefix)
    }
}

impl v01::clock::Host for StoreState {
    fn now_ms(&mut self) -> u64 {
        crate::runtime::store::now_ms()
    }
}

fn to_request(r: v01::http::Request) -> HttpRequest {
    HttpRequest {
        method: r.method,
        url: r.url,
        headers: r.headers.into_iter().map(|h| (h.name, h.value)).collect(),
        body: r.body,
    }
}

fn to_wit(
    result: Result<HttpResponse, HttpFailure>,
) -> Result<v01::http::Response, v01::http::HttpError> {
    use v01::http::HttpError as E;
    match result {
        Ok(r) => Ok(v01::http::Response {
            status: r.status,
            headers: r
                .headers
                .into_iter()
                .map(|(name, value)| v01::http::Header { name, value })
                .collect(),
            body: r.body,
        }),
        Err(HttpFailure::Denied(m)) => Err(E::Denied(m)),
        Err(HttpFailure::Timeout(m)) => Err(E::Timeout(m)),
        Err(HttpFailure::Connection(m)) => Err(E::Connection(m)),
        Err(HttpFailure::Invalid(m)) => Err(E::Invalid(m)),
    }
}

impl v01::http::Host for StoreState {
    async fn send(
        &mut self,
        request: v01::http::Request,
    ) -> Result<v01::http::Response, v01::http::HttpError> {
        to_wit(self.http.send(to_request(request)).await)
    }

    async fn send_batch(
        &mut self,
        requests: Vec<v01::http::Request>,
    ) -> Vec<Result<v01::http::Response, v01::http::HttpError>> {
        let http = self.http.clone();
        // One budget for the whole batch: every answer is copied into the
        // guest at once, so together they may not exceed its memory grant.
        let answers = http.answer_budget();
        let sends = requests
            .into_iter()
            .map(|r| http.send_within(to_request(r), &answers));
        futures::future::join_all(sends)
            .await
            .into_iter()
            .map(to_wit)
            .collect()
    }
}

impl From<wit::AccountKind> for model::AccountKind {
    fn from(k: wit::AccountKind) -> Self {
        match k {
            wit::AccountKind::Person => model::AccountKind::Person,
            wit::AccountKind::Functional => model::AccountKind::Functional,
            wit::AccountKind::Guest => model::AccountKind::Guest,
        }
    }
}

impl From<model::AccountKind> for wit::AccountKind {
    fn from(k: model::AccountKind) -> Self {
        match k {
            model::AccountKind::Person => wit::AccountKind::Person,
            model::AccountKind::Functional => wit::AccountKind::Functional,
            model::AccountKind::Guest => wit::AccountKind::Guest,
        }
    }
}

impl From<wit::Field> for model::Field {
    fn from(f: wit::Field) -> Self {
        use model::Field as M;
        match f {
            wit::Field::Email => M::Email,
            wit::Field::Aliases => M::Aliases,
            wit::Field::DisplayName => M::DisplayName,
            wit::Field::GivenName => M::GivenName,
            wit::Field::FamilyName => M::FamilyName,
            wit::Field::Enabled => M::Enabled,
            wit::Field::OrgUnit => M::OrgUnit,
            wit::Field::ExternalKey => M::ExternalKey,
            wit::Field::Delegates => M::Delegates,
            wit::Field::Attributes => M::Attributes,
        }
    }
}

impl From<model::Field> for wit::Field {
    fn from(f: model::Field) -> Self {
        use model::Field as M;
        match f {
            M::Email => wit::Field::Email,
            M::Aliases => wit::Field::Aliases,
            M::DisplayName => wit::Field::DisplayName,
            M::GivenName => wit::Field::GivenName,
            M::FamilyName => wit::Field::FamilyName,
            M::Enabled => wit::Field::Enabled,
            M::OrgUnit => wit::Field::OrgUnit,
            M::ExternalKey => wit::Field::ExternalKey,
            M::Delegates => wit::Field::Delegates,
            M::Attributes => wit::Field::Attributes,
        }
    }
}

impl From<wit::ErrorKind> for model::ErrorKind {
    fn from(k: wit::ErrorKind) -> Self {
        use model::ErrorKind as M;
        match k {
            wit::ErrorKind::Licence => M::Licence,
            wit::ErrorKind::Conflict => M::Conflict,
            wit::ErrorKind::NotFound => M::NotFound,
            wit::ErrorKind::RateLimited => M::RateLimited,
            wit::ErrorKind::Connection => M::Connection,
            wit::ErrorKind::Invalid => M::Invalid,
            wit::ErrorKind::Unauthorized => M::Unauthorized,
            wit::ErrorKind::Other => M::Other,
        }
    }
}

impl From<wit::Error> for model::ConnectorError {
    fn from(e: wit::Error) -> Self {
        model::ConnectorError {
            kind: e.kind.into(),
            message: e.message,
        }
    }
}

impl From<wit::Account> for model::Account {
    fn from(a: wit::Account) -> Self {
        model::Account {
            id: a.id,
            kind: a.kind.into(),
            email: a.email,
            aliases: a.aliases,
            display_name: a.display_name,
            given_name: a.given_name,
            family_name: a.family_name,
            enabled: a.enabled,
            org_unit: a.org_unit,
            external_key: a.external_key,
            delegates: a.delegates,
            groups: a.groups,
            attributes: a.attributes.into_iter().map(|x| (x.key, x.value)).collect(),
        }
    }
}

impl From<model::Account> for wit::Account {
    fn from(a: model::Account) -> Self {
        wit::Account {
            id: a.id,
            kind: a.kind.into(),
            email: a.email,
            aliases: a.aliases,
            display_name: a.display_name,
            given_name: a.given_name,
            family_name: a.family_name,
            enabled: a.enabled,
            org_unit: a.org_unit,
            external_key: a.external_key,
            delegates: a.delegates,
            groups: a.groups,
            attributes: a
                .attributes
                .into_iter()
                .map(|(key, value)| wit::Attribute { key, value })
                .collect(),
        }
    }
}

impl From<wit::Group> for model::Group {
    fn from(g: wit::Group) -> Self {
        model::Group {
            id: g.id,
            name: g.name,
            email: g.email,
            member_ids: g.member_ids,
        }
    }
}

impl From<wit::Descriptor> for model::Descriptor {
    fn from(d: wit::Descriptor) -> Self {
        model::Descriptor {
            name: d.name,
            version: d.version,
            description: d.description,
            source: d.source,
            target: d.target,
            kinds: d.kinds.into_iter().map(Into::into).collect(),
            fields: d.fields.into_iter().map(Into::into).collect(),
            incremental: d.incremental,
            config: d
                .config
                .into_iter()
                .map(|c| model::ConfigField {
                    name: c.name,
                    description: c.description,
                    secret: c.secret,
                    required: c.required,
                    default_value: c.default_value,
                })
                .collect(),
            hosts: d.hosts,
        }
    }
}

impl From<wit::AccountPage> for model::AccountPage {
    fn from(p: wit::AccountPage) -> Self {
        model::AccountPage {
            accounts: p.accounts.into_iter().map(Into::into).collect(),
            next_cursor: p.next_cursor,
            watermark: p.watermark,
            removed_ids: p.removed_ids,
            full: p.full,
        }
    }
}

impl From<wit::GroupPage> for model::GroupPage {
    fn from(p: wit::GroupPage) -> Self {
        model::GroupPage {
            groups: p.groups.into_iter().map(Into::into).collect(),
            next_cursor: p.next_cursor,
        }
    }
}

impl From<&model::PageRequest> for wit::PageRequest {
    fn from(r: &model::PageRequest) -> Self {
        wit::PageRequest {
            cursor: r.cursor.clone(),
            watermark: r.watermark.clone(),
            size: r.size,
        }
    }
}

impl From<wit::ConnectionReport> for model::ConnectionReport {
    fn from(r: wit::ConnectionReport) -> Self {
        model::ConnectionReport {
            checks: r.checks,
            account: r.account.map(Into::into),
        }
    }
}

fn account_ref(r: model::AccountRef) -> wit::AccountRef {
    wit::AccountRef {
        id: r.id,
        email: r.email,
    }
}

impl From<model::Change> for wit::Change {
    fn from(c: model::Change) -> Self {
        let op = match c.op {
            model::Operation::Create { account } => wit::Operation::Create(account.into()),
            model::Operation::Update {
                id,
                account,
                changed,
            } => wit::Operation::Update(wit::Update {
                id,
                account: account.into(),
                changed: changed.into_iter().map(Into::into).collect(),
            }),
            model::Operation::Disable { id } => wit::Operation::Disable(id),
            model::Operation::Delete { id } => wit::Operation::Delete(id),
            model::Operation::MergeGuest { guest, into } => {
                wit::Operation::MergeGuest(wit::MergeGuest {
                    guest: account_ref(guest),
                    into: account_ref(into),
                })
            }
        };
        wit::Change {
            id: c.id,
            op,
            options: c
                .options
                .into_iter()
                .map(|(key, value)| wit::Attribute { key, value })
                .collect(),
        }
    }
}

impl From<wit::ChangeResult> for model::ChangeResult {
    fn from(r: wit::ChangeResult) -> Self {
        model::ChangeResult {
            change_id: r.change_id,
            outcome: r.outcome.map(|a| a.id).map_err(Into::into),
        }
    }
}
