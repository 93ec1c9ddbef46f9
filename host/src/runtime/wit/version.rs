//! Reads which contract a component was built for, and what it imports,
//! straight from its binary: nothing is compiled or run to find out.

use wasmparser::{Encoding, Parser, Payload};

const EXPORT_PREFIX: &str = "roster:connector/connector@";

/// What the top level of a component says about itself.
#[derive(Clone, Debug, PartialEq)]
pub struct ComponentInfo {
    /// The contract version of its `connector` export.
    pub contract: String,
    /// Names of the instances it imports (e.g. `wasi:filesystem/types@0.2.6`).
    pub imports: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum InfoError {
    #[error("not a WebAssembly file")]
    NotWasm,
    #[error(
        "a core WebAssembly module, not a component: build the connector with `--target wasm32-wasip2`"
    )]
    CoreModule,
    #[error("not a Roster connector: it exports no `roster:connector/connector` interface")]
    NoConnectorExport,
    #[error("malformed component: {0}")]
    Malformed(String),
}

pub fn inspect(bytes: &[u8]) -> Result<ComponentInfo, InfoError> {
    if !bytes.starts_with(b"\0asm") {
        return Err(InfoError::NotWasm);
    }
    let mut depth = 0usize;
    let mut contract = None;
    let mut imports = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| InfoError::Malformed(e.to_string()))?;
        match payload {
            Payload::Version {
                encoding: Encoding::Module,
                ..
            } if depth == 0 => return Err(InfoError::CoreModule),
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(exports) if depth == 0 => {
                for export in exports {
                    let export = export.map_err(|e| InfoError::Malformed(e.to_string()))?;
                    if let Some(version) = export.name.name.strip_prefix(EXPORT_PREFIX) {
                        contract = Some(version.to_string());
                    }
                }
            }
            Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    let import = import.map_err(|e| InfoError::Malformed(e.to_string()))?;
                    imports.push(import.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    let contract = contract.ok_or(InfoError::NoConnectorExport)?;
    Ok(ComponentInfo { contract, imports })
}
