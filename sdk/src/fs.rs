//! Files in the directory the pipeline grants the connector. In the sandbox
//! the host mounts it at [`GRANTED_DIR`]; natively the harness picks it.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the host mounts a granted directory inside the component.
pub const GRANTED_DIR: &str = "/data";

/// The root of the granted directory.
pub fn root() -> PathBuf {
    #[cfg(target_arch = "wasm32")]
    {
        PathBuf::from(GRANTED_DIR)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::native::data_dir()
    }
}

/// A path inside the granted directory; refuses absolute paths and `..`, so
/// a config value cannot point the connector elsewhere.
pub fn resolve(relative: &str) -> crate::Result<PathBuf> {
    let path = Path::new(relative);
    let escapes = path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir));
    if escapes || relative.is_empty() {
        return Err(crate::Error::invalid(format!(
            "`{relative}` must be a relative path inside the granted directory"
        )));
    }
    Ok(root().join(path))
}

/// Writes a file so that readers see the old or the new content, never a
/// half-written one: write a temporary file beside it, sync, then rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> crate::Result<()> {
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{file_name}.roster-tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    Ok(())
}
