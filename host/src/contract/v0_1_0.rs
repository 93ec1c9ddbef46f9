//! Bindings for `roster:connector@0.1.0` and the conversions between its
//! records and the host's model.

use crate::model;

wasmtime::component::bindgen!({
    world: "roster:connector/plugin@0.1.0",
    path: "../wit/since_v0.1.0",
    imports: {
        "roster:connector/http": async,
        default: tracing,
    },
    exports: { default: async },
});

pub use self::exports::roster::connector::connector as guest;
pub use self::roster::connector::types as wit;

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
