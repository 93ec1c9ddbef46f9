//! The glue behind [`crate::export_connector!`]: it implements the generated
//! `Guest` trait once, for any [`Connector`], and keeps the configured
//! instance between calls.

use crate::__bindings::exports::roster::connector::connector::Guest;
use crate::{
    AccountPage, Change, ChangeResult, ConfigEntry, ConnectionReport, Connector, Descriptor, Error,
    GroupPage, PageRequest, Result, SeatCount,
};
use std::cell::RefCell;
use std::marker::PhantomData;

/// Object-safe view of a configured connector.
trait Instance {
    fn test_connection(&mut self, account: Option<String>) -> Result<ConnectionReport>;
    fn read_accounts(&mut self, request: PageRequest) -> Result<AccountPage>;
    fn read_groups(&mut self, request: PageRequest) -> Result<GroupPage>;
    fn seats(&mut self) -> Result<SeatCount>;
    fn apply(&mut self, changes: Vec<Change>) -> Vec<ChangeResult>;
}

impl<T: Connector> Instance for T {
    fn test_connection(&mut self, account: Option<String>) -> Result<ConnectionReport> {
        Connector::test_connection(self, account)
    }
    fn read_accounts(&mut self, request: PageRequest) -> Result<AccountPage> {
        Connector::read_accounts(self, request)
    }
    fn read_groups(&mut self, request: PageRequest) -> Result<GroupPage> {
        Connector::read_groups(self, request)
    }
    fn seats(&mut self) -> Result<SeatCount> {
        Connector::seats(self)
    }
    fn apply(&mut self, changes: Vec<Change>) -> Vec<ChangeResult> {
        Connector::apply(self, changes)
    }
}

thread_local! {
    static INSTANCE: RefCell<Option<Box<dyn Instance>>> = const { RefCell::new(None) };
}

fn with_instance<R>(f: impl FnOnce(&mut dyn Instance) -> Result<R>) -> Result<R> {
    INSTANCE.with_borrow_mut(|slot| match slot {
        Some(instance) => f(instance.as_mut()),
        None => Err(Error::invalid(
            "the connector was called before `configure`",
        )),
    })
}

/// Implements the component's exports for `T`.
pub struct Glue<T>(PhantomData<T>);

impl<T: Connector> Guest for Glue<T> {
    fn describe() -> Descriptor {
        T::describe()
    }

    fn configure(config: Vec<ConfigEntry>) -> Result<()> {
        let instance = T::configure(config.into())?;
        INSTANCE.set(Some(Box::new(instance)));
        Ok(())
    }

    fn test_connection(account: Option<String>) -> Result<ConnectionReport> {
        with_instance(|c| c.test_connection(account))
    }

    fn read_accounts(request: PageRequest) -> Result<AccountPage> {
        with_instance(|c| c.read_accounts(request))
    }

    fn read_groups(request: PageRequest) -> Result<GroupPage> {
        with_instance(|c| c.read_groups(request))
    }

    fn seats() -> Result<SeatCount> {
        with_instance(|c| c.seats())
    }

    fn apply(changes: Vec<Change>) -> Vec<ChangeResult> {
        let ids: Vec<String> = changes.iter().map(|c| c.id.clone()).collect();
        match with_instance(|c| Ok(c.apply(changes))) {
            Ok(results) => results,
            Err(e) => ids
                .into_iter()
                .map(|change_id| ChangeResult {
                    change_id,
                    outcome: Err(e.clone()),
                })
                .collect(),
        }
    }
}

/// Exports a [`Connector`] implementation as the component's `connector`
/// interface. Use it once, at the crate root of a `cdylib`. On a native build
/// it expands to nothing, so the same crate can be unit-tested natively.
#[macro_export]
macro_rules! export_connector {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type RosterGlue = $crate::export::Glue<$ty>;
    $crate::__bindings::__export_plugin!(RosterGlue with_types_in $crate::__bindings);
        };
    };
}
