//! The native harness: runs connector logic without wasm, for unit tests and
//! for benchmarks that compare native and wasm builds of the same code.
//!
//! HTTP goes out directly (no host policy: the harness is trusted test code),
//! logs are kept for assertions, and the granted directory is whatever the
//! test sets with [`set_data_dir`].

use crate::host::{Header, HttpError, Level, RawRequest, RawResponse};
use crate::{Account, Config, Connector, Result};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

thread_local! {
    static LOGS: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
    static DATA_DIR: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
    static MEMO: RefCell<BTreeMap<String, String>> = const { RefCell::new(BTreeMap::new()) };
}

/// The memo as this thread's connector left it (what the host would keep).
pub fn memo() -> BTreeMap<String, String> {
    MEMO.with_borrow(Clone::clone)
}

/// Starts this thread's connector with `kept` as its memo.
pub fn set_memo(kept: BTreeMap<String, String>) {
    MEMO.set(kept);
}

pub(crate) fn memo_get(key: &str) -> Option<String> {
    MEMO.with_borrow(|m| m.get(key).cloned())
}

pub(crate) fn memo_set(key: &str, value: &str) -> Result<(), String> {
    MEMO.with_borrow_mut(|m| m.insert(key.into(), value.into()));
    Ok(())
}

pub(crate) fn memo_remove(key: &str) {
    MEMO.with_borrow_mut(|m| m.remove(key));
}

pub(crate) fn memo_list(prefix: &str) -> Vec<(String, String)> {
    MEMO.with_borrow(|m| {
        m.range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

/// Sets the directory [`crate::fs::root`] answers, for this thread.
pub fn set_data_dir(dir: impl Into<PathBuf>) {
    DATA_DIR.set(Some(dir.into()));
}

pub(crate) fn data_dir() -> PathBuf {
    DATA_DIR
        .with_borrow(|d| d.clone())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Takes the lines logged so far on this thread.
pub fn take_logs() -> Vec<(Level, String)> {
    LOGS.take()
}

pub(crate) fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let line = if fields.is_empty() {
        message.to_string()
    } else {
        format!("{message} {}", fields.join(" "))
    };
    LOGS.with_borrow_mut(|logs| logs.push((level, line)));
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn agent() -> ureq::Agent {
    thread_local! {
        static AGENT: ureq::Agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(60)))
                .build(),
        );
    }
    AGENT.with(Clone::clone)
}

pub(crate) fn send(request: &RawRequest) -> Result<RawResponse, HttpError> {
    let mut builder = ureq::http::Request::builder()
        .method(request.method.as_str())
        .uri(request.url.as_str());
    // As the host does: the retry mark is not for the service.
    for h in request
        .headers
        .iter()
        .filter(|h| !h.name.eq_ignore_ascii_case(crate::http::IDEMPOTENT_HEADER))
    {
        builder = builder.header(h.name.as_str(), h.value.as_str());
    }
    let body = request.body.clone().unwrap_or_default();
    let built = builder
        .body(body)
        .map_err(|e| HttpError::Invalid(e.to_string()))?;
    let mut answer = agent().run(built).map_err(|e| match e {
        ureq::Error::Timeout(t) => HttpError::Timeout(t.to_string()),
        other => HttpError::Connection(other.to_string()),
    })?;
    let headers = answer
        .headers()
        .iter()
        .map(|(n, v)| Header {
            name: n.to_string(),
            value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
        })
        .collect();
    let status = answer.status().as_u16();
    let body = answer
        .body_mut()
        .with_config()
        .limit(256 * 1024 * 1024)
        .read_to_vec()
        .map_err(|e| HttpError::Connection(e.to_string()))?;
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

/// Configures a connector natively from key/value pairs.
pub fn configure<T: Connector>(pairs: &[(&str, &str)]) -> Result<T> {
    T::configure(pairs.iter().map(|(k, v)| (*k, *v)).collect::<Config>())
}

/// Reads every account of a configured connector, page by page.
pub fn read_all_accounts<T: Connector>(connector: &mut T, page_size: u32) -> Result<Vec<Account>> {
    crate::paging::read_all(|request| connector.read_accounts(request), page_size)
}
