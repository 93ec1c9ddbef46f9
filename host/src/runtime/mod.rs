//! The connector runtime: one wasmtime Engine and Linker for the process,
//! components compiled once (and cached on disk), a fresh sandboxed store per
//! connector instance. Each host capability lives in its own module
//! (`http`, `memo`, `output`, `redact`, `store`) and is granted per connector;
//! the contracts' bindings are sealed in `wit/`.

pub mod bounds;
mod budget;
pub mod cache;
pub mod http;
pub mod instance;
pub mod memo;
pub mod output;
pub mod redact;
pub mod store;
pub mod wit;

use anyhow::{Context, anyhow};
use cache::{CacheOutcome, CompiledCache};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use store::StoreState;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine};
use wit::{ConnectorPre, Contract};

pub use instance::{CallError, ConnectorInstance, Grants};
pub use redact::Redactor;

/// How often the epoch advances; the granularity of call time limits.
const EPOCH_TICK: Duration = Duration::from_millis(10);

pub struct Runtime {
    engine: Engine,
    linker: Linker<StoreState>,
    cache: CompiledCache,
    client: reqwest::Client,
    ticker_stop: Arc<AtomicBool>,
}

/// A component compiled and pre-instantiated, ready for stores.
pub struct LoadedComponent {
    pub path: PathBuf,
    pub contract: Contract,
    pub imports: Vec<String>,
    pub digest: String,
    pub cache: CacheOutcome,
    pre: ConnectorPre,
}

impl Runtime {
    pub fn new(cache_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        // `ROSTER_PERFMAP=1`: name the connectors' compiled functions for
        // `perf` (a /tmp/perf-PID.map), for profiles like docs/performance.md's.
        if std::env::var_os("ROSTER_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wit::add_to_linker(&mut linker)?;
        let cache = CompiledCache::new(&engine, cache_dir);
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_ticker(engine.clone(), ticker_stop.clone());
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("roster/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Runtime {
            engine,
            linker,
            cache,
            client,
            ticker_stop,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Reads, checks, compiles (or maps from the cache) and pre-instantiates a
    /// component. The contract version is checked before anything is compiled.
    pub fn load(&self, path: &Path) -> anyhow::Result<LoadedComponent> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read component {}", path.display()))?;
        let info = wit::version::inspect(&bytes).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let contract = Contract::parse(&info.contract).ok_or_else(|| {
            anyhow!(
                "{}: built for contract roster:connector@{}, but this roster serves roster:connector@{}",
                path.display(),
                info.contract,
                wit::SUPPORTED.join(", @")
            )
        })?;
        let digest = CompiledCache::digest(&bytes);
        let (component, cache) = self
            .cache
            .load(&self.engine, &bytes, &digest)
            .with_context(|| format!("cannot compile {}", path.display()))?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            anyhow!(
                "{}: the component needs something this host does not offer: {e:#}",
                path.display()
            )
        })?;
        let pre = ConnectorPre::new(contract, pre).map_err(|e| {
            anyhow!(
                "{}: exports do not match the contract: {e:#}",
                path.display()
            )
        })?;
        Ok(LoadedComponent {
            path: path.to_path_buf(),
            contract,
            imports: info.imports,
            digest,
            cache,
            pre,
        })
    }

    /// A fresh, sandboxed instance of a loaded component with these grants.
    pub async fn instantiate(
        &self,
        name: &str,
        component: &LoadedComponent,
        grants: &Grants,
        redactor: &Redactor,
    ) -> anyhow::Result<ConnectorInstance> {
        ConnectorInstance::new(self, name, component, grants, redactor).await
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

fn spawn_ticker(engine: Engine, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("roster-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .expect("spawning the epoch thread");
}
