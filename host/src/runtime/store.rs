//! What one connector instance's wasm store holds: its WASI context (which
//! grants nothing but what the pipeline says), its memory cap, the current
//! call's deadline, and the host capabilities it imports (log, http, clock,
//! memo). Each contract version's import traits are implemented in
//! `runtime/wit/since_v*.rs` on top of what is here.

use super::http::OutboundHttp;
use super::memo::Memo;
use super::output::GuestOutput;
use super::redact::Redactor;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Lines a connector may log through the `log` import per instance.
const LOG_BUDGET: u64 = 100_000;
const MAX_LOG_LINE: usize = 8192;
/// Bytes a connector may log per instance: 100,000 lines of 8 KiB would
/// be 800 MB of stderr.
const LOG_BYTES: u64 = 16 << 20;

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
    logged_bytes: u64,
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
            logged_bytes: 0,
        }
    }
}

impl Drop for StoreState {
    fn drop(&mut self) {
        // Exported by `roster serve` (a no-op without a metrics recorder).
        metrics::histogram!("roster_connector_memory_peak_bytes", "connector" => self.connector.to_string())
            .record(self.memory_peak as f64);
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

/// How loud a connector's log line is, whatever contract it came through.
#[derive(Clone, Copy, Debug)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl StoreState {
    /// A connector's log line, within its budget and length, redacted.
    pub fn log_line(
        &mut self,
        level: LogLevel,
        message: String,
        fields: impl Iterator<Item = (String, String)>,
    ) {
        let n = self.logged.fetch_add(1, Ordering::Relaxed);
        let over = n >= LOG_BUDGET || self.logged_bytes >= LOG_BYTES;
        if over && self.logged_bytes != u64::MAX {
            self.logged_bytes = u64::MAX;
            tracing::warn!(connector = %self.connector, "connector logged more than {LOG_BUDGET} lines or {} MiB; further lines are dropped", LOG_BYTES >> 20);
        }
        if over {
            return;
        }
        let mut line = message;
        for (key, value) in fields {
            line.push_str(&format!(" {key}={value}"));
        }
        if line.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        self.logged_bytes += line.len() as u64;
        let line = self.redactor.redact(&line);
        let c = &self.connector;
        match level {
            LogLevel::Trace => tracing::trace!(connector = %c, "{line}"),
            LogLevel::Debug => tracing::debug!(connector = %c, "{line}"),
            LogLevel::Info => tracing::info!(connector = %c, "{line}"),
            LogLevel::Warn => tracing::warn!(connector = %c, "{line}"),
            LogLevel::Error => tracing::error!(connector = %c, "{line}"),
        }
    }
}

/// Milliseconds since the Unix epoch: the `clock` capability.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
