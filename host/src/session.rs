//! A pipeline brought to life: its plugins found, loaded and described, each
//! connector's configuration checked against what the plugin declares, its
//! secrets registered for redaction, and instances started on demand.

use crate::error::Failure;
use crate::model::{Account, Descriptor, Group, PageRequest};
use crate::pipeline::{Diagnostic, Pipeline, PluginRef};
use crate::plan::ReadMode;
use crate::runtime::{CallError, ConnectorInstance, LoadedComponent, Redactor, Runtime};
use crate::state::{SnapshotChange, StateStore};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

/// The component a connector of the pipeline names, loaded and described
/// (nothing configured, nothing granted).
async fn load_plugin(
    pipeline: &Pipeline,
    runtime: &Runtime,
    redactor: &Redactor,
    name: &str,
) -> Result<Plugin, Failure> {
    let dirs = plugin_dirs(pipeline.plugins_dir.as_deref());
    let spec = &pipeline.connectors[name];
    let path = match &spec.plugin {
        PluginRef::Path(p) => p.clone(),
        PluginRef::Name(n) => find_plugin(n, &dirs).ok_or_else(|| {
            let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
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
        .instantiate(name, &component, &Default::default(), redactor)
        .await
        .map_err(Failure::bad_input)?;
    let descriptor = probe.describe().await?;
    Ok(Plugin {
        component,
        descriptor,
    })
}

/// What one connector's plugin declares, for commands that run no
/// connector (`roster links`): its component is loaded, nothing configured.
pub async fn describe(
    pipeline: &Pipeline,
    connector: &str,
    cache_dir: Option<PathBuf>,
) -> Result<Descriptor, Failure> {
    let runtime = Runtime::new(cache_dir).map_err(Failure::bad_input)?;
    let plugin = load_plugin(pipeline, &runtime, Redactor::global(), connector).await?;
    Ok(plugin.descriptor)
}

impl Session {
    pub async fn open(pipeline: Pipeline, cache_dir: Option<PathBuf>) -> Result<Session, Failure> {
        let runtime = Runtime::new(cache_dir).map_err(Failure::bad_input)?;
        let redactor = Redactor::global().clone();
        let mut plugins = BTreeMap::new();
        for name in pipeline.connectors.keys() {
            let plugin = load_plugin(&pipeline, &runtime, &redactor, name).await?;
            plugins.insert(name.clone(), plugin);
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
                if value.key.starts_with(crate::model::LINK_OPTION_PREFIX) {
                    problems.push(self.pipeline.diagnostic(
                        value.location,
                        format!("connectors.{name}.config.{}: a per-link option, not configuration: set it in the sync stage's `options`, a manual link's, or with `roster links add --options`", value.key),
                    ));
                    continue;
                }
                let field = d.config.iter().find(|f| f.name == value.key);
                if value.value.from_reference || field.is_some_and(|f| f.secret) {
                    self.redactor.add(&value.value.value);
                }
                match field {
                    None => {
                        let known: Vec<&str> = d.settings().map(|f| f.name.as_str()).collect();
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
                .settings()
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
        problems.extend(self.check_link_options());
        match problems.is_empty() {
            true => Ok(()),
            false => Err(crate::pipeline::Diagnostics(problems).into()),
        }
    }

    /// The sync stage's default options and each manual link's, against the
    /// options the target declares.
    fn check_link_options(&self) -> Vec<Diagnostic> {
        let p = &self.pipeline;
        let target = &self.plugins[&p.target].descriptor;
        let defaults = p.sync_stage().map(|s| &s.options);
        let manual = p.link_stage().into_iter().flat_map(|l| &l.manual);
        let sets = defaults
            .into_iter()
            .map(|o| ("sync stage options", o))
            .chain(manual.map(|m| ("manual link options", &m.options)));
        let mut problems = Vec::new();
        for (what, options) in sets {
            for (key, value) in options {
                if let Err(e) = target.check_link_option(key, value) {
                    problems.push(p.diagnostic(p.locate_key(key), format!("in {what}: {e}")));
                }
            }
        }
        problems
    }

    /// A configured instance of the named connector.
    pub async fn start(&self, name: &str) -> Result<ConnectorInstance, Failure> {
        let spec = &self.pipeline.connectors[name];
        let plugin = &self.plugins[name];
        let mut instance = self
            .runtime
            .instantiate(name, &plugin.component, &spec.grants, &self.redactor)
            .await
            .map_err(Failure::bad_input)?;
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

/// A source read: every account as of now, and how they were obtained.
pub struct SourceRead {
    pub accounts: Vec<Account>,
    pub mode: ReadMode,
}

impl Session {
    /// What a snapshot of `connector`'s accounts depends on: the plugin and
    /// its configuration, secrets left out (the state must not hold them,
    /// even hashed).
    pub fn source_fingerprint(&self, connector: &str) -> String {
        use sha2::{Digest, Sha256};
        let plugin = &self.plugins[connector];
        let mut h = Sha256::new();
        h.update(plugin.component.digest.as_bytes());
        for v in &self.pipeline.connectors[connector].config {
            let secret = plugin
                .descriptor
                .config
                .iter()
                .any(|f| f.name == v.key && f.secret);
            if !secret && !v.value.from_reference {
                h.update(format!("\0{}={}", v.key, v.value.value).as_bytes());
            }
        }
        hex::encode(&h.finalize()[..16])
    }
}

/// Reads the source: incrementally when the connector supports it, `full`
/// is not asked for and the state holds a snapshot of the last read;
/// otherwise every account. The state's snapshot is brought up to date in
/// one transaction either way.
pub async fn read_source(
    session: &Session,
    c: &mut ConnectorInstance,
    state: &mut dyn StateStore,
    full: bool,
    mut progress: impl FnMut(usize),
) -> Result<SourceRead, Failure> {
    let name = &session.pipeline.source;
    let incremental = session.plugins[name].descriptor.incremental;
    let fingerprint = session.source_fingerprint(name);
    let prior = match incremental && !full {
        true => state.source_snapshot(name, &fingerprint)?,
        false => None,
    };
    let watermark = prior.as_ref().map(|p| p.watermark.clone());
    let (mut removed, mut last_watermark, mut was_full) = (Vec::new(), None, false);
    let read = async |r: PageRequest| {
        let page = c
            .read_accounts(&PageRequest {
                watermark: watermark.clone(),
                ..r
            })
            .await?;
        removed.extend(page.removed_ids);
        was_full |= page.full;
        if page.watermark.is_some() {
            last_watermark = page.watermark;
        }
        Ok((page.accounts, page.next_cursor))
    };
    let read = read_pages(read, &mut progress).await?;
    let keep = if incremental {
        last_watermark.as_deref()
    } else {
        None
    };
    match prior {
        Some(prior) if !was_full => {
            state.save_source_snapshot(
                name,
                &fingerprint,
                keep,
                SnapshotChange::Patch {
                    upserts: &read,
                    removed: &removed,
                },
            )?;
            let mode = ReadMode::Incremental {
                changed: read.len(),
                removed: removed.len(),
            };
            Ok(SourceRead {
                accounts: patch(prior.accounts, read, &removed),
                mode,
            })
        }
        _ => {
            if incremental {
                state.save_source_snapshot(
                    name,
                    &fingerprint,
                    keep,
                    SnapshotChange::Replace(&read),
                )?;
            }
            Ok(SourceRead {
                accounts: read,
                mode: ReadMode::Full,
            })
        }
    }
}

/// The snapshot's accounts with `changed` put in (by id) and `removed` taken out.
fn patch(snapshot: Vec<Account>, changed: Vec<Account>, removed: &[String]) -> Vec<Account> {
    let mut by_id: BTreeMap<String, Account> =
        snapshot.into_iter().map(|a| (a.id.clone(), a)).collect();
    for id in removed {
        by_id.remove(id);
    }
    for a in changed {
        by_id.insert(a.id.clone(), a);
    }
    by_id.into_values().collect()
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
