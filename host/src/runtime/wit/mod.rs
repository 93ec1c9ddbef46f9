//! The connector contracts this host serves, one module per WIT version
//! (`wit/since_vX.Y.Z`), so components built for an older contract keep
//! loading after a new one is added. The version is read from the component
//! before it is compiled ([`version`]); from then on the rest of the host
//! holds a [`ConnectorPre`] or [`Connector`] and calls it in model types,
//! never naming a version (as Zed's `wasm_host/wit.rs` does).
//!
//! Adding a contract: a `since_vX_Y_Z.rs` beside `since_v0_1_0.rs`, a
//! variant in [`Contract`], [`ConnectorPre`] and [`Connector`], and a line in
//! each `match` below.

mod since_v0_1_0;
pub mod version;

use super::store::StoreState;
use crate::model::{
    AccountPage, Change, ChangeResult, ConnectionReport, ConnectorError, Descriptor, GroupPage,
    PageRequest,
};
use wasmtime::Store;
use wasmtime::component::{InstancePre, Linker};

/// The contract versions this host can run.
pub const SUPPORTED: &[&str] = &["0.1.0"];

/// A contract version this host serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contract {
    V0_1_0,
}

impl Contract {
    pub fn parse(version: &str) -> Option<Contract> {
        match version {
            "0.1.0" => Some(Contract::V0_1_0),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Contract::V0_1_0 => "0.1.0",
        }
    }
}

/// Adds the host side of every contract's imports.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    since_v0_1_0::add_to_linker(linker)
}

/// A component pre-instantiated for the contract it was built for.
pub enum ConnectorPre {
    V0_1_0(since_v0_1_0::PluginPre<StoreState>),
}

impl ConnectorPre {
    /// Checks the component's exports against `contract`.
    pub fn new(contract: Contract, pre: InstancePre<StoreState>) -> wasmtime::Result<Self> {
        Ok(match contract {
            Contract::V0_1_0 => ConnectorPre::V0_1_0(since_v0_1_0::pre(pre)?),
        })
    }

    pub async fn instantiate(&self, store: &mut Store<StoreState>) -> wasmtime::Result<Connector> {
        Ok(match self {
            ConnectorPre::V0_1_0(pre) => {
                Connector::V0_1_0(since_v0_1_0::Guest::instantiate(pre, store).await?)
            }
        })
    }
}

/// A running component's exports, whatever its contract. The outer
/// `Result` is a trap; the inner one the connector's own answer.
pub enum Connector {
    V0_1_0(since_v0_1_0::Guest),
}

type Answer<T> = wasmtime::Result<Result<T, ConnectorError>>;

impl Connector {
    pub async fn describe(&self, s: &mut Store<StoreState>) -> wasmtime::Result<Descriptor> {
        match self {
            Connector::V0_1_0(g) => g.describe(s).await,
        }
    }

    pub async fn configure(
        &self,
        s: &mut Store<StoreState>,
        config: &[(String, String)],
    ) -> Answer<()> {
        match self {
            Connector::V0_1_0(g) => g.configure(s, config).await,
        }
    }

    pub async fn test_connection(
        &self,
        s: &mut Store<StoreState>,
        account: Option<&str>,
    ) -> Answer<ConnectionReport> {
        match self {
            Connector::V0_1_0(g) => g.test_connection(s, account).await,
        }
    }

    pub async fn read_accounts(
        &self,
        s: &mut Store<StoreState>,
        request: &PageRequest,
    ) -> Answer<AccountPage> {
        match self {
            Connector::V0_1_0(g) => g.read_accounts(s, request).await,
        }
    }

    pub async fn read_groups(
        &self,
        s: &mut Store<StoreState>,
        request: &PageRequest,
    ) -> Answer<GroupPage> {
        match self {
            Connector::V0_1_0(g) => g.read_groups(s, request).await,
        }
    }

    pub async fn seats(&self, s: &mut Store<StoreState>) -> Answer<Option<u32>> {
        match self {
            Connector::V0_1_0(g) => g.seats(s).await,
        }
    }

    pub async fn apply(
        &self,
        s: &mut Store<StoreState>,
        changes: Vec<Change>,
    ) -> wasmtime::Result<Vec<ChangeResult>> {
        match self {
            Connector::V0_1_0(g) => g.apply(s, changes).await,
        }
    }
}
