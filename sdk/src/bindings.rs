//! The WIT bindings, generated once here so connectors never touch wit-bindgen.
//!
//! They are generated on every target: on wasm the imports call the host; on
//! a native build they are never called (the [`crate::host`] functions route
//! to the native harness instead), which is what lets connector logic be
//! unit-tested and benchmarked natively.

wit_bindgen::generate!({
    path: "../wit/since_v0.1.0",
    world: "roster:connector/plugin@0.1.0",
    pub_export_macro: true,
    export_macro_name: "__export_plugin",
    default_bindings_module: "roster_sdk::__bindings",
    runtime_path: "roster_sdk::__private::wit_bindgen::rt",
    additional_derives: [PartialEq],
});

pub use roster::connector::types;
