//! The plugins of a pipeline: found, loaded and described, each connector's
//! configuration checked against what its plugin declares, its secrets
//! registered for redaction, and instances started on demand. A [`Session`]
//! is a pipeline with its plugins loaded: what a run ([`crate::operation`])
//! starts from.

use crate::error::Failure;
use crate::model::Descriptor;
use crate::pipeline::{Diagnostic, Pipeline, PluginRef};
use crate::runtime::{ConnectorInstance, LoadedComponent, Redactor, Runtime};
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
            let known = available_plugins(&dirs);
            let suggestion = crate::pipeline::did_you_mean(n, &known)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            let listed = match known.is_empty() {
                true => "none there".to_string(),
                false => format!("there: {}", known.join(", ")),
            };
            pipeline.diagnostic(
                spec.plugin_location,
                format!(
                    "connectors.{name}.plugin: no plugin `{n}` found (looked in {}; {listed}){suggestion}",
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
    let descriptor = describe_component(runtime, name, &component, redactor).await?;
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

    /// Configuration values that are URLs of a host the connector is not
    /// granted: each would be denied at run time. `check` refuses them;
    /// other commands warn (the choke point denies them all the same).
    /// Values from a secret reference are not shown, so not checked.
    pub fn ungranted_urls(&self) -> Vec<crate::pipeline::Diagnostic> {
        let mut out = Vec::new();
        for (name, spec) in &self.pipeline.connectors {
            let granted = &spec.grants.http.allowed;
            for value in spec.config.iter().filter(|v| !v.value.from_reference) {
                let Ok(url) = reqwest::Url::parse(value.value.value.trim()) else {
                    continue;
                };
                if !matches!(url.scheme(), "http" | "https")
                    || granted.iter().any(|p| p.matches(&url))
                {
                    continue;
                }
                let origin = url.origin().ascii_serialization();
                let grants: Vec<String> = granted.iter().map(|p| p.to_string()).collect();
                let grants = match grants.is_empty() {
                    true => "it grants none".to_string(),
                    false => format!("it grants {}", grants.join(", ")),
                };
                out.push(self.pipeline.diagnostic(
                    value.location,
                    format!(
                        "connectors.{name}.config.{} is {origin}, which connectors.{name}.allowed_hosts does not grant ({grants}): every request to it would be denied; add \"{origin}\" to allowed_hosts, or correct the URL",
                        value.key
                    ),
                ));
            }
        }
        out
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
                        let known: Vec<String> = d.settings().map(|f| f.name.clone()).collect();
                        let guess = crate::pipeline::did_you_mean(&value.key, &known)
                            .map(|k| format!("did you mean `{k}`? "))
                            .unwrap_or_default();
                        problems.push(self.pipeline.diagnostic(
                            value.location,
                            format!("connectors.{name}.config.{}: plugin `{}` has no such field ({guess}it has: {})", value.key, d.name, known.join(", ")),
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
        let target = &self.plugins[&self.pipeline.target].descriptor;
        if target
            .fields
            .iter()
            .all(|f| *f == crate::model::Field::Email)
        {
            tracing::warn!(
                "plugin `{}` (the target) declares no field but email: no update will ever be planned for its accounts; a connector declares what it keeps with `.fields(&[…])`",
                target.name
            );
        }
        for d in self.ungranted_urls() {
            tracing::warn!("{d}");
        }
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
        let defaults = p.stages.sync.as_ref().map(|s| &s.options);
        let manual = p.stages.link.iter().flat_map(|l| &l.manual);
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

/// The plugin names (`*.wasm` file stems) in `dirs`, sorted, once each.
fn available_plugins(dirs: &[PathBuf]) -> Vec<String> {
    let mut names: Vec<String> = dirs
        .iter()
        .flat_map(|d| wasm_files(d))
        .filter_map(|path| path.file_stem()?.to_str().map(String::from))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The `*.wasm` files in `dir`, sorted; none when it cannot be read.
pub fn wasm_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    files.sort();
    files
}

/// What `describe` is given: it returns constant data, so a component
/// that needs longer or more is broken (or hostile), and `plugins list`
/// would wait on each such file.
const DESCRIBE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);
const DESCRIBE_MEMORY: usize = 64 << 20;

/// What a loaded component says it is: `describe`, run as `name` with
/// nothing granted (no configuration, network or files) and a short limit.
pub async fn describe_component(
    runtime: &Runtime,
    name: &str,
    component: &LoadedComponent,
    redactor: &Redactor,
) -> Result<Descriptor, Failure> {
    let grants = crate::runtime::Grants {
        call_timeout: DESCRIBE_LIMIT,
        memory: DESCRIBE_MEMORY,
        ..Default::default()
    };
    let mut probe = runtime
        .instantiate(name, component, &grants, redactor)
        .await
        .map_err(Failure::bad_input)?;
    Ok(probe.describe().await?)
}
