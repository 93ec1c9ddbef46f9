//! The connector's memo: small facts it learned from its service that the
//! service will not tell again (a write-only key it sent, an address the
//! service refused as a guest's). The host keeps them in Roster's state per
//! pipeline and connector, together with the read or apply batch that wrote
//! them, and hands them back at the next run. No secret may be kept.
//!
//! ```ignore
//! roster_sdk::memo::set(&format!("sso/{id}"), &key)?;
//! let key = roster_sdk::memo::get(&format!("sso/{id}"));
//! ```

use crate::{Error, Result};

/// The value kept under `key`, if any.
pub fn get(key: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    {
        crate::__bindings::roster::connector::memo::get(key)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::native::memo_get(key)
    }
}

/// Keeps `value` under `key`; refused when too long, when the memo is full
/// or when the value holds a secret.
pub fn set(key: &str, value: &str) -> Result<()> {
    #[cfg(target_arch = "wasm32")]
    let kept = crate::__bindings::roster::connector::memo::set(key, value);
    #[cfg(not(target_arch = "wasm32"))]
    let kept = crate::native::memo_set(key, value);
    kept.map_err(|reason| Error::other(format!("memo `{key}` not kept: {reason}")))
}

pub fn remove(key: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::__bindings::roster::connector::memo::remove(key);
    #[cfg(not(target_arch = "wasm32"))]
    crate::native::memo_remove(key);
}

/// Every entry whose key starts with `prefix`, in key order.
pub fn list(prefix: &str) -> Vec<(String, String)> {
    #[cfg(target_arch = "wasm32")]
    {
        crate::__bindings::roster::connector::memo::list(prefix)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::native::memo_list(prefix)
    }
}
