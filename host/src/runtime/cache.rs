//! Compiled components cached on disk, keyed by the component's digest and
//! the engine's compatibility hash, so a second run loads native code instead
//! of compiling again (tens of milliseconds per component saved).
//!
//! A cache entry is native code run outside the sandbox, so it is not
//! trusted on its name: each entry has a seal beside it (SHA-256 over the
//! component's full digest and the native bytes), checked before the bytes
//! are loaded. A corrupted entry, or one copied over another component's
//! name, is compiled afresh instead. The directory is made 0700 and its
//! files 0600; a directory others may write to is not used at all.

use anyhow::Context;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheOutcome {
    /// Loaded native code from the cache.
    Hit,
    /// Compiled, and stored for next time.
    Miss,
    /// Compiled; caching is off.
    Off,
}

pub struct CompiledCache {
    dir: Option<PathBuf>,
    engine_key: String,
}

impl CompiledCache {
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        CompiledCache {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    /// The default place: `$ROSTER_CACHE_DIR`, else `$XDG_CACHE_HOME/roster`,
    /// else `~/.cache/roster`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("ROSTER_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(PathBuf::from(dir).join("roster"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("roster"))
    }

    pub fn digest(bytes: &[u8]) -> String {
        hex::encode(&Sha256::digest(bytes)[..16])
    }

    pub fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: &str,
    ) -> anyhow::Result<(Component, CacheOutcome)> {
        let Some(dir) = &self.dir else {
            return Ok((Component::new(engine, bytes)?, CacheOutcome::Off));
        };
        let path = dir.join(format!("{digest}-{}.cwasm", self.engine_key));
        let full = Sha256::digest(bytes);
        if let Err(e) = private_dir(dir) {
            tracing::warn!(dir = %dir.display(), "not using the compiled cache: {e:#}");
            return Ok((Component::new(engine, bytes)?, CacheOutcome::Off));
        }
        match read_sealed(&path, &full) {
            Ok(Some(native)) => {
                // SAFETY: these bytes were written by `precompile_component`
                // of an engine with the same compatibility hash (it is in the
                // name) for this very component (the seal, checked just now,
                // binds them to its digest), in a directory only this user
                // may write to.
                match unsafe { Component::deserialize(engine, &native) } {
                    Ok(component) => return Ok((component, CacheOutcome::Hit)),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), "ignoring unusable compiled cache entry: {e:#}")
                    }
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring compiled cache entry: {e:#}; compiling afresh")
            }
        }
        let compiled = engine.precompile_component(bytes)?;
        if let Err(e) = store(dir, &path, &full, &compiled) {
            tracing::warn!(dir = %dir.display(), "cannot write the compiled cache: {e:#}");
        }
        // SAFETY: these bytes come from `precompile_component` just above.
        let component = unsafe { Component::deserialize(engine, &compiled)? };
        Ok((component, CacheOutcome::Miss))
    }
}

/// The seal of an entry: binds the native bytes to the component they were
/// compiled from.
fn seal(component: &[u8], native: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(component);
    h.update(native);
    hex::encode(h.finalize())
}

fn seal_path(path: &Path) -> PathBuf {
    path.with_extension("seal")
}

/// The entry's native bytes if it exists and its seal holds; `None` when
/// there is no entry; an error when there is one that must not be loaded.
fn read_sealed(path: &Path, component: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
    let native = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let expected = std::fs::read_to_string(seal_path(path)).context("it has no seal")?;
    if expected.trim() != seal(component, &native) {
        anyhow::bail!("its seal does not match (corrupted, or another component's code)");
    }
    Ok(Some(native))
}

/// Creates the directory owner-only, and refuses one that others may write
/// to or that belongs to someone else (as ssh does with ~/.ssh).
#[cfg(unix)]
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let meta = std::fs::metadata(dir)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        anyhow::bail!("it belongs to another user (uid {})", meta.uid());
    }
    if meta.mode() & 0o022 != 0 {
        anyhow::bail!(
            "others may write to it (mode {:o}); `chmod go-w {}` to use it",
            meta.mode() & 0o777,
            dir.display()
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

fn store(dir: &Path, path: &Path, component: &[u8], compiled: &[u8]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Unique per process and per writer in it: `roster serve` compiles
    // the same component for several runs at once.
    static WRITER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let me = format!("{}-{n}", std::process::id());
    let tmp = path.with_extension(format!("tmp{me}"));
    let seal_tmp = path.with_extension(format!("sealtmp{me}"));
    write_private(&tmp, compiled)?;
    write_private(&seal_tmp, seal(component, compiled).as_bytes())?;
    // The seal goes first: an entry is never in place without the seal
    // that belongs to it (a half-replaced pair fails the check).
    std::fs::rename(&seal_tmp, seal_path(path))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Writes a file only its owner may read (state, plans, cache entries).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}
