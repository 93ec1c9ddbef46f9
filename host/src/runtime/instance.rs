//! One running connector: a store with its grants and limits, and typed calls
//! to its exports. Every call runs under a wall-time limit (epoch
//! interruption for wasm code, a timer for host calls it waits on); a trap,
//! timeout or memory breach fails that call with a clear error and retires
//! the instance, and the host carries on.

use super::http::{HttpGrant, OutboundHttp};
use super::output::GuestOutput;
use super::redact::Redactor;
use super::store::StoreState;
use super::wit::Connector;
use super::{LoadedComponent, Runtime};
use crate::model::{
    self, AccountPage, Change, ChangeResult, ConnectionReport, ConnectorError, Descriptor,
    GroupPage, PageRequest,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx};

/// Where a granted directory appears inside the component (the SDK's `fs::GRANTED_DIR`).
const GRANTED_DIR: &str = "/data";

/// What the pipeline grants one connector.
#[derive(Clone, Debug)]
pub struct Grants {
    pub http: HttpGrant,
    /// A host directory, mounted at `/data` inside the component.
    pub directory: Option<PathBuf>,
    pub directory_read_only: bool,
    pub memory: usize,
    pub call_timeout: Duration,
    /// How much stdout/stderr the connector may write before lines are dropped.
    pub output_bytes: usize,
    /// The most records one read of the connector may return: the host
    /// keeps them all (about 1.5 KB each with the plan's copies).
    pub max_records: usize,
}

impl Default for Grants {
    fn default() -> Self {
        Grants {
            http: HttpGrant::default(),
            directory: None,
            directory_read_only: false,
            memory: 256 << 20,
            call_timeout: Duration::from_secs(120),
            output_bytes: 1 << 20,
            max_records: super::bounds::MAX_RECORDS,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The connector ran and answered with an error.
    #[error("connector `{connector}`: {what}: {error}")]
    Answered {
        connector: String,
        what: &'static str,
        error: ConnectorError,
    },
    /// The connector was stopped: trap, timeout, memory cap, or retired earlier.
    #[error("connector `{connector}` was stopped during {what}: {reason}")]
    Stopped {
        connector: String,
        what: &'static str,
        reason: String,
    },
}

impl CallError {
    pub fn kind(&self) -> model::ErrorKind {
        match self {
            CallError::Answered { error, .. } => error.kind,
            CallError::Stopped { .. } => model::ErrorKind::Other,
        }
    }

    /// The connector could not reach its service, was refused its
    /// credentials, or was told to slow down: the service's side, not the
    /// pipeline's (exit 7).
    pub fn unreachable(&self) -> bool {
        use model::ErrorKind as K;
        matches!(
            self.kind(),
            K::Connection | K::Unauthorized | K::RateLimited
        )
    }

    /// The pipeline's name for the connector.
    pub fn connector(&self) -> &str {
        match self {
            CallError::Answered { connector, .. } | CallError::Stopped { connector, .. } => {
                connector
            }
        }
    }
}

pub struct ConnectorInstance {
    name: Arc<str>,
    store: Store<StoreState>,
    guest: Connector,
    call_timeout: Duration,
    retired: Option<String>,
    stderr: GuestOutput,
    http: Arc<OutboundHttp>,
    max_records: usize,
}

impl ConnectorInstance {
    pub(super) async fn new(
        runtime: &Runtime,
        name: &str,
        component: &LoadedComponent,
        grants: &Grants,
        redactor: &Redactor,
    ) -> anyhow::Result<Self> {
        let name: Arc<str> = Arc::from(name);
        let (stdout, stderr) =
            GuestOutput::pair(name.clone(), grants.output_bytes, redactor.clone());
        let mut wasi = WasiCtx::builder();
        wasi.stdout(stdout).stderr(stderr.clone());
        if let Some(dir) = &grants.directory {
            let perms = if grants.directory_read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            wasi.preopened_dir(dir, GRANTED_DIR, perms).map_err(|e| {
                anyhow::anyhow!(
                    "cannot grant directory {} to `{name}`: {e:#}",
                    dir.display()
                )
            })?;
        }
        let http = Arc::new(
            OutboundHttp::new(
                name.clone(),
                grants.http.clone(),
                runtime.client.clone(),
                redactor.clone(),
            )
            .with_answer_limit(grants.memory),
        );
        let state = StoreState::new(
            name.clone(),
            wasi.build(),
            grants.memory,
            http.clone(),
            redactor.clone(),
            stderr.clone(),
        );
        let mut store = Store::new(&runtime.engine, state);
        store.limiter(|s| s);
        store.epoch_deadline_callback(|ctx| {
            Ok(if Instant::now() >= ctx.data().deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        store.data_mut().deadline = Instant::now() + grants.call_timeout;
        store.set_epoch_deadline(1);
        let guest = component
            .pre
            .instantiate(&mut store)
            .await
            .map_err(|e| anyhow::anyhow!("cannot start connector `{name}`: {e:#}"))?;
        Ok(ConnectorInstance {
            name,
            store,
            guest,
            call_timeout: grants.call_timeout,
            retired: None,
            stderr,
            http,
            max_records: grants.max_records,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The most records one read may return (`limits.max_records`).
    pub fn max_records(&self) -> usize {
        self.max_records
    }

    pub fn http(&self) -> &OutboundHttp {
        &self.http
    }

    /// Gives the connector the memo the state kept for it.
    pub fn remember(&mut self, kept: std::collections::BTreeMap<String, String>) {
        self.store.data_mut().memo = super::memo::Memo::loaded(kept);
    }

    /// What the connector wrote to its memo since this was last asked, for
    /// the host to keep with the state write the calls belong to.
    pub fn memo_written(&mut self) -> Vec<super::memo::MemoWrite> {
        self.store.data_mut().memo.take_written()
    }

    /// Runs one export under the call limits and turns traps into errors.
    async fn call<T>(
        &mut self,
        what: &'static str,
        f: impl AsyncFnOnce(&Connector, &mut Store<StoreState>) -> wasmtime::Result<T>,
    ) -> Result<T, CallError> {
        if let Some(reason) = &self.retired {
            return Err(self.stopped(
                what,
                format!("it was retired after an earlier failure ({reason})"),
            ));
        }
        self.store.data_mut().deadline = Instant::now() + self.call_timeout;
        self.store.set_epoch_deadline(1);
        // The epoch stops runaway wasm; this timer stops a call stuck waiting
        // on the host (e.g. a slow HTTP answer) after a short grace period.
        let limit = self.call_timeout + Duration::from_secs(1);
        let started = Instant::now();
        let outcome = tokio::time::timeout(limit, f(&self.guest, &mut self.store)).await;
        // Exported by `roster serve` (a no-op without a metrics recorder).
        metrics::histogram!("roster_connector_call_seconds", "connector" => self.name.to_string(), "call" => what)
            .record(started.elapsed().as_secs_f64());
        let reason = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(trap)) => self.explain(&trap),
            Err(_) => format!(
                "it did not finish within its limit of {:?}",
                self.call_timeout
            ),
        };
        let reason = self.store.data().redactor.redact_owned(reason);
        tracing::error!(connector = %self.name, call = what, "{reason}");
        self.retired = Some(reason.clone());
        Err(self.stopped(what, reason))
    }

    fn explain(&self, error: &wasmtime::Error) -> String {
        if self.store.data().memory_exceeded {
            return format!(
                "it exceeded its memory cap of {} MiB",
                self.store.data().memory_cap >> 20
            );
        }
        if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return format!(
                "it called exit (status {}) instead of returning from the call",
                exit.0
            );
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => {
                format!("it ran longer than its limit of {:?}", self.call_timeout)
            }
            Some(trap) => {
                let said = self.stderr.last_stderr();
                // The guest's own last words: its panic message, else its
                // last line that is not Rust's "note: run with
                // RUST_BACKTRACE" (after an allocation failure, the line
                // before says which allocation failed).
                let panic = said
                    .iter()
                    .rev()
                    .find(|l| l.contains("panicked"))
                    .or_else(|| {
                        said.iter()
                            .rev()
                            .find(|l| !l.trim_start().starts_with("note:"))
                    });
                match panic {
                    Some(line) => format!("it crashed ({trap}): {line}"),
                    None => format!("it crashed ({trap})"),
                }
            }
            None => format!("{error:#}"),
        }
    }

    fn stopped(&self, what: &'static str, reason: String) -> CallError {
        CallError::Stopped {
            connector: self.name.to_string(),
            what,
            reason,
        }
    }

    fn answered(&self, what: &'static str, mut error: ConnectorError) -> CallError {
        error.message = self.store.data().redactor.redact_owned(error.message);
        // A host the pipeline did not grant comes back from the guest as
        // `unauthorized` (the WIT's `denied`): the pipeline's configuration,
        // not a credential the service refused.
        if error.kind == model::ErrorKind::Unauthorized
            && self
                .http
                .stats
                .denied
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        {
            error.kind = model::ErrorKind::Invalid;
        }
        CallError::Answered {
            connector: self.name.to_string(),
            what,
            error,
        }
    }

    pub async fn describe(&mut self) -> Result<Descriptor, CallError> {
        self.call("describe", async |g, s| g.describe(s).await)
            .await
    }

    pub async fn configure(&mut self, config: Vec<(String, String)>) -> Result<(), CallError> {
        let r = self
            .call("configure", async |g, s| g.configure(s, &config).await)
            .await?;
        r.map_err(|e| self.answered("configure", e))
    }

    pub async fn test_connection(
        &mut self,
        account: Option<String>,
    ) -> Result<ConnectionReport, CallError> {
        let r = self
            .call("test-connection", async |g, s| {
                g.test_connection(s, account.as_deref()).await
            })
            .await?;
        r.map_err(|e| self.answered("test-connection", e))
    }

    pub async fn read_accounts(&mut self, request: &PageRequest) -> Result<AccountPage, CallError> {
        let r = self
            .call("read-accounts", async |g, s| {
                g.read_accounts(s, request).await
            })
            .await?;
        r.map_err(|e| self.answered("read-accounts", e))
    }

    pub async fn read_groups(&mut self, request: &PageRequest) -> Result<GroupPage, CallError> {
        let r = self
            .call("read-groups", async |g, s| g.read_groups(s, request).await)
            .await?;
        r.map_err(|e| self.answered("read-groups", e))
    }

    /// Free seats; `None` when unlimited or unknown.
    pub async fn seats(&mut self) -> Result<Option<u32>, CallError> {
        let r = self.call("seats", async |g, s| g.seats(s).await).await?;
        r.map_err(|e| self.answered("seats", e))
    }

    pub async fn apply(&mut self, changes: Vec<Change>) -> Result<Vec<ChangeResult>, CallError> {
        let results = self
            .call("apply", async move |g, s| g.apply(s, changes).await)
            .await?;
        let redactor = self.store.data().redactor.clone();
        Ok(results
            .into_iter()
            .map(|mut r| {
                if let Err(e) = &mut r.outcome {
                    e.message = redactor.redact_owned(std::mem::take(&mut e.message));
                }
                r
            })
            .collect())
    }
}
