//! A builder for the connector's `descriptor`, so `describe` reads like a spec.

use crate::{AccountKind, ConfigField, Descriptor, Field};

/// Config fields named `option.<name>` declare per-link options, not configuration.
pub const LINK_OPTION_PREFIX: &str = "option.";

impl Descriptor {
    pub fn new(name: &str, version: &str) -> Self {
        Descriptor {
            name: name.into(),
            version: version.into(),
            description: String::new(),
            source: false,
            target: false,
            kinds: vec![AccountKind::Person],
            fields: vec![Field::Email],
            incremental: false,
            config: vec![],
            hosts: vec![],
        }
    }
    pub fn description(mut self, text: &str) -> Self {
        self.description = text.into();
        self
    }
    pub fn source(mut self) -> Self {
        self.source = true;
        self
    }
    pub fn target(mut self) -> Self {
        self.target = true;
        self
    }
    pub fn incremental(mut self) -> Self {
        self.incremental = true;
        self
    }
    pub fn kinds(mut self, kinds: &[AccountKind]) -> Self {
        self.kinds = kinds.to_vec();
        self
    }
    pub fn fields(mut self, fields: &[Field]) -> Self {
        self.fields = fields.to_vec();
        self
    }
    pub fn host(mut self, host: &str) -> Self {
        self.hosts.push(host.into());
        self
    }
    /// A required field.
    pub fn field(self, name: &str, description: &str) -> Self {
        self.config_field(name, description, false, true, None)
    }
    /// An optional field with a default.
    pub fn optional(self, name: &str, description: &str, default: Option<&str>) -> Self {
        self.config_field(name, description, false, false, default)
    }
    /// A per-link option the target takes (`diary`, `rank`, …): set in the
    /// sync stage's `options`, a manual link's, or `roster links add
    /// --options`; the host checks every value against `default`'s type
    /// (`true`/`false`: a boolean; digits: a whole number ≥ 1; else any
    /// text) and refuses an option not declared. Declared as the config
    /// field `option.<name>`, which the contract reserves for this.
    pub fn link_option(self, name: &str, description: &str, default: &str) -> Self {
        self.config_field(
            &format!("{}{name}", LINK_OPTION_PREFIX),
            description,
            false,
            false,
            Some(default),
        )
    }
    /// A required secret field (never logged, always redacted by the host).
    pub fn secret(self, name: &str, description: &str) -> Self {
        self.config_field(name, description, true, true, None)
    }
    fn config_field(
        mut self,
        name: &str,
        description: &str,
        secret: bool,
        required: bool,
        default: Option<&str>,
    ) -> Self {
        self.config.push(ConfigField {
            name: name.into(),
            description: description.into(),
            secret,
            required,
            default_value: default.map(String::from),
        });
        self
    }
}
