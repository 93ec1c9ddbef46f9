//! A pipeline brought to life: its plugins found, loaded and described, each
//! connector's configuration checked against what the plugin declares, its
//! secrets registered for redaction, and instances started on demand.

use crate::model::{Account, Descriptor, Group, PageRequest};
use crate::pipeline::{Diagnostic, Pipeline, PluginRef};
use crate::runtime::{CallError, ConnectorInstance, LoadedComponent, Redactor, Runtime};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a command could not go on; decides the exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Bad input or configuration (exit 2).
    #[error("{0}")]
    Input(String),
    /// A connector failed (exit 2: nothing was applied).
    #[error(transparent)]
    Connector(#[from] CallError),
    /// Refused by a safety rule (exit 3).
    #[error("{0}")]
    Refused(String),
}

impl From<crate::pipeline::Diagnostics> for Failure {
    fn from(d: crate::pipeline::Diagnostics) -> Self {
        Failure::Input(d.to_string())
    }
}

impl From<Diagnostic> for Failure {
    fn from(d: Diagnostic) -> Self {
        Failure::Input(d.to_string())
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Input(format!("{e:#}"))
    }
}

pub struct Plugin {
    pub component: LoadedComponent,
    pub descriptor: Descriptor,
}

pub struct Session {
    pub pipeline: Pipeline,
    pub runtime: Runtime,
    pub redactor: Redactor,
    pub plugins: BTreeMap<String, Plugin>,
}

/// Where plugin names are looked up, in order.
pub fn plugin_dirs(pipeline_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = pipeline_dir {
        dirs.push(d.to_path_buf());
    }
    if let Some(d) = std::env::var_os("ROSTER_PLUGINS_DIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(exe_dir.join("plugins"));
    }
    dirs
}

pub fn find_plugin(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    let candidates = [
        format!("{name}.wasm"),
        format!("roster_{}.wasm", name.replace('-', "_")),
    ];
    dirs.iter()
        .flat_map(|d| candidates.iter().map(move |c| d.join(c)))
        .find(|p| p.is_file())
}

impl Session {
    pub async fn open(pipeline: Pipeline, cache_dir: Option<PathBuf>) -> Result<Session, Failure> {
        let runtime = Runtime::new(cache_dir)?;
        let redactor = Redactor::global().clone();
        let dirs = plugin_dirs(pipeline.plugins_dir.as_deref());
        let mut plugins = BTreeMap::new();
        for (name, spec) in &pipeline.connectors {
            let path = match &spec.plugin {
                PluginRef::Path(p) => p.clone(),
                PluginRef::Name(n) => find_plugin(n, &dirs).ok_or_else(|| {
                    let searched: Vec<String> =
                        dirs.iter().map(|d| d.display().to_string()).collect();
                    pipeline.diagnostic(
                        spec.plugin_location,
                        format!(
                            "connectors.{name}.plugin: no plugin `{n}` found (looked in {})",
                            searched.join(", ")
                        ),
                    )
                })?,
            };
            let component = runtime.load(&path).map_err(|e| {
                pipeline.diagnostic(
                    spec.plugin_location,
                    format!("connectors.{name}.plugin: {e:#}"),
                )
            })?;
            let mut probe = runtime
                .instantiate(name, &component, &Default::default(), &redactor)
                .await?;
            let descriptor = probe.describe().await?;
            plugins.insert(
                name.clone(),
                Plugin {
                    component,
                    descriptor,
                },
            );
        }
        let session = Session {
            pipeline,
            runtime,
            redactor,
            plugins,
        };
        session.check_config()?;
        Ok(session)
    }

    /// Each connector's configuration against its plugin's declared fields;
    /// registers every secret with the redactor.
    fn check_config(&self) -> Result<(), Failure> {
        let mut problems = Vec::new();
        for (name, spec) in &self.pipeline.connectors {
            let d = &self.plugins[name].descriptor;
            for value in &spec.config {
                let field = d.config.iter().find(|f| f.name == value.key);
                if value.value.from_reference || field.is_some_and(|f| f.secret) {
                    self.redactor.add(&value.value.value);
                }
                match field {
                    None => {
                        let known: Vec<&str> = d.config.iter().map(|f| f.name.as_str()).collect();
                        problems.push(self.pipeline.diagnostic(
                            value.location,
                            format!("connectors.{name}.config.{}: plugin `{}` has no such field (it has: {})", value.key, d.name, known.join(", ")),
                        ));
                    }
                    Some(f) if f.secret && !value.value.from_reference => tracing::warn!(
                        "connectors.{name}.config.{}: a secret written in the pipeline file; use ${{env:NAME}} or ${{file:PATH}}",
                        value.key
                    ),
                    Some(_) => {}
                }
            }
            for f in d
                .config
                .iter()
                .filter(|f| f.required && f.default_value.is_none())
            {
                if !spec.config.iter().any(|v| v.key == f.name) {
                    problems.push(self.pipeline.diagnostic(
                        spec.location,
                        format!(
                            "connectors.{name}.config: `{}` is required by plugin `{}` ({})",
                            f.name, d.name, f.description
                        ),
                    ));
                }
            }
        }
        for (role, name, ok) in [
            (
                "source",
                &self.pipeline.source,
                self.plugins[&self.pipeline.source].descriptor.source,
            ),
            (
                "target",
                &self.pipeline.target,
                self.plugins[&self.pipeline.target].descriptor.target,
            ),
        ] {
            if !ok {
                let loc = self.pipeline.connectors[name].plugin_location;
                problems.push(self.pipeline.diagnostic(
                    loc,
                    format!(
                        "plugin `{}` cannot be a {role}",
                        self.plugins[name].descriptor.name
                    ),
                ));
            }
        }
        match problems.is_empty() {
            true => Ok(()),
            false => Err(crate::pipeline::Diagnostics(problems).into()),
        }
    }

    /// A configured instance of the named connector.
    pub async fn start(&self, name: &str) -> Result<ConnectorInstance, Failure> {
        let spec = &self.pipeline.connectors[name];
        let plugin = &self.plugins[name];
        let mut instance = self
            .runtime
            .instantiate(name, &plugin.component, &spec.grants, &self.redactor)
            .await?;
        let config = spec
            .config
            .iter()
            .map(|v| (v.key.clone(), v.value.value.clone()))
            .collect();
        instance.configure(config).await?;
        Ok(instance)
    }
}

pub const PAGE_SIZE: u32 = 1000;

/// Follows cursors from the first page to the last, collecting every item.
async fn read_pages<T>(
    mut read: impl AsyncFnMut(PageRequest) -> Result<(Vec<T>, Option<String>), CallError>,
    mut progress: impl FnMut(usize),
) -> Result<Vec<T>, CallError> {
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let (items, next) = read(PageRequest {
            cursor,
            watermark: None,
            size: PAGE_SIZE,
        })
        .await?;
        all.extend(items);
        progress(all.len());
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(all),
        }
    }
}

/// Reads every account, page by page; `progress` is told the running count.
pub async fn read_accounts(
    c: &mut ConnectorInstance,
    progress: impl FnMut(usize),
) -> Result<Vec<Account>, CallError> {
    let read = async |r: PageRequest| {
        c.read_accounts(&r)
            .await
            .map(|p| (p.accounts, p.next_cursor))
    };
    read_pages(read, progress).await
}

pub async fn read_groups(c: &mut ConnectorInstance) -> Result<Vec<Group>, CallError> {
    let read = async |r: PageRequest| c.read_groups(&r).await.map(|p| (p.groups, p.next_cursor));
    read_pages(read, |_| {}).await
}
