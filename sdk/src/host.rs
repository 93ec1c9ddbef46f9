//! What the host offers a connector: logging, a clock and raw HTTP. On wasm
//! these are the contract's imports; natively they go to [`crate::native`].

use crate::__bindings::roster::connector::http as wit_http;
pub use crate::__bindings::roster::connector::http::{
    Header, HttpError, Request as RawRequest, Response as RawResponse,
};
pub use crate::__bindings::roster::connector::log::Level;

/// Logs a line with structured fields; the host tags it with the connector's
/// name and redacts secrets.
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::__bindings::roster::connector::log as wit_log;
        let fields: Vec<wit_log::Field> = fields
            .iter()
            .map(|(k, v)| wit_log::Field {
                key: (*k).into(),
                value: (*v).into(),
            })
            .collect();
        wit_log::log(level, message, &fields);
    }
    #[cfg(not(target_arch = "wasm32"))]
    crate::native::log(level, message, fields);
}

pub fn debug(message: &str) {
    log(Level::Debug, message, &[]);
}
pub fn info(message: &str) {
    log(Level::Info, message, &[]);
}
pub fn warn(message: &str) {
    log(Level::Warn, message, &[]);
}
pub fn error(message: &str) {
    log(Level::Error, message, &[]);
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        crate::__bindings::roster::connector::clock::now_ms()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::native::now_ms()
    }
}

pub(crate) fn send(request: &RawRequest) -> Result<RawResponse, HttpError> {
    #[cfg(target_arch = "wasm32")]
    {
        wit_http::send(request)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::native::send(request)
    }
}

pub(crate) fn send_batch(requests: &[RawRequest]) -> Vec<Result<RawResponse, HttpError>> {
    #[cfg(target_arch = "wasm32")]
    {
        wit_http::send_batch(requests)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        requests.iter().map(crate::native::send).collect()
    }
}

#[allow(unused_imports)]
use wit_http as _;
