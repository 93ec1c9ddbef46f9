//! What one connector instance's wasm store holds: its WASI context (which
//! grants nothing but what the pipeline says), its memory cap, the current
//! call's deadline, and the host capabilities it imports (log, http, clock,
//! memo).

use super::http::{HttpFailure, HttpRequest, OutboundHttp};
use super::memo::Memo;
use super::output::GuestOutput;
use super::redact::Redactor;
use crate::contract::v0_1_0::roster::connector as v01;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Lines a connector may log through the `log` import per instance.
const LOG_BUDGET: u64 = 100_000;
const MAX_LOG_LINE: usize = 8192;

pub struct StoreState {
    pub connector: Arc<str>,
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub memory_cap: usize,
    /// Set when the guest tried to grow its memory past the cap.
    pub memory_exceeded: bool,
    /// The most memory the guest grew to, for `-vv` (how much of the cap it needed).
    memory_peak: usize,
    pub deadline: Instant,
    pub http: Arc<OutboundHttp>,
    pub redactor: Redactor,
    pub stderr: GuestOutput,
    pub memo: Memo,
    logged: AtomicU64,
}

impl StoreState {
    pub fn new(
        connector: Arc<str>,
        wasi: WasiCtx,
        memory_cap: usize,
        http: Arc<OutboundHttp>,
        redactor: Redactor,
        stderr: GuestOutput,
    ) -> Self {
        StoreState {
            connector,
            wasi,
            table: ResourceTable::new(),
            memory_cap,
            memory_exceeded: false,
            memory_peak: 0,
            deadline: Instant::now(),
            http,
            redactor,
            stderr,
            memo: Memo::default(),
            logged: AtomicU64::new(0),
        }
    }
}

impl Drop for StoreState {
    fn drop(&mut self) {
        tracing::debug!(
            connector = %self.connector,
            peak_mib = self.memory_peak >> 20,
            cap_mib = self.memory_cap >> 20,
            "connector memory"
        );
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime::ResourceLimiter for StoreState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.memory_exceeded = true;
            return Err(wasmtime::Error::msg(format!(
                "memory cap of {} MiB exceeded (asked for {} MiB)",
                self.memory_cap >> 20,
                desired >> 20
            )));
        }
        self.memory_peak = self.memory_peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }

    fn instances(&self) -> usize {
        64
    }
    fn tables(&self) -> usize {
        64
    }
    fn memories(&self) -> usize {
        16
    }
}

impl v01::types::Host for StoreState {}

impl v01::log::Host for StoreState {
    fn log(&mut self, level: v01::log::Level, message: String, fields: Vec<v01::log::Field>) {
        let n = self.logged.fetch_add(1, Ordering::Relaxed);
        if n == LOG_BUDGET {
            tracing::warn!(connector = %self.connector, "connector logged more than {LOG_BUDGET} lines; further lines are dropped");
        }
        if n >= LOG_BUDGET {
            return;
        }
        let mut line = message;
        for f in fields {
            line.push_str(&format!(" {}={}", f.key, f.value));
        }
        if line.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        let line = self.redactor.redact(&line);
        let c = &self.connector;
        use v01::log::Level;
        match level {
            Level::Trace => tracing::trace!(connector = %c, "{line}"),
            Level::Debug => tracing::debug!(connector = %c, "{line}"),
            Level::Info => tracing::info!(connector = %c, "{line}"),
            Level::Warn => tracing::warn!(connector = %c, "{line}"),
            Level::Error => tracing::error!(connector = %c, "{line}"),
        }
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
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
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
    result: Result<super::http::HttpResponse, HttpFailure>,
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
        let sends = requests.into_iter().map(|r| http.send(to_request(r)));
        futures::future::join_all(sends)
            .await
            .into_iter()
            .map(to_wit)
            .collect()
    }
}
