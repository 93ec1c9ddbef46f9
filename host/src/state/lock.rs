//! One apply per state at a time. For a state file the lock is an OS file
//! lock on `<state>.lock` (`flock`, via `std::fs::File::try_lock`): the
//! kernel releases it when the process ends, however it ends, so a lock
//! left by a crash or `kill -9` is never in the way and nothing has to
//! guess whether a recorded pid is still alive. The file says who holds it,
//! for the message the next apply gives. For a state on PostgreSQL it is a
//! session advisory lock, which the server releases when the holder's
//! connection ends (`postgres::ServerLock`), across machines.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Held while an apply runs; released when dropped (or the process ends).
pub struct RunLock {
    _held: Held,
}

enum Held {
    File(#[allow(dead_code)] File),
    Server(#[allow(dead_code)] super::postgres::ServerLock),
}

impl std::fmt::Debug for RunLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunLock")
    }
}

/// Who holds the lock, as its holder wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct Holder {
    pub pid: String,
    pub host: String,
    pub since_ms: u64,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = super::now_ms().saturating_sub(self.since_ms) / 1000;
        write!(
            f,
            "pid {} on host {}, for {}",
            self.pid,
            self.host,
            duration(secs)
        )
    }
}

fn duration(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        _ => format!("{} h", secs / 3600),
    }
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another apply is running on this state ({0}); wait for it to finish")]
    Held(Holder),
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot take the run lock of state {at}: {message}")]
    Server { at: String, message: String },
}

pub fn lock_path(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl RunLock {
    /// Takes the lock of the state at `state`, or says who holds it.
    pub fn acquire(state: &Path) -> Result<RunLock, LockError> {
        let path = lock_path(state);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(LockError::Held(read_holder(&mut file))),
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let me = format!(
            "pid={}\nhost={}\nsince_ms={}\n",
            std::process::id(),
            hostname(),
            super::now_ms()
        );
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(me.as_bytes()).map_err(io)?;
        file.sync_data().map_err(io)?;
        Ok(RunLock {
            _held: Held::File(file),
        })
    }

    /// Takes the run lock of the state on a server, or says who holds it.
    pub fn acquire_on_server(at: &super::PgLocation) -> Result<RunLock, LockError> {
        Self::on_server(at, None)
    }

    /// The lock of one rank of the state on a server: ranks apply side by
    /// side, and none while a whole apply holds the state (and the other
    /// way round).
    pub fn acquire_rank(at: &super::PgLocation, rank: u32) -> Result<RunLock, LockError> {
        Self::on_server(at, Some(rank))
    }

    fn on_server(at: &super::PgLocation, rank: Option<u32>) -> Result<RunLock, LockError> {
        let me = Holder {
            pid: std::process::id().to_string(),
            host: hostname(),
            since_ms: super::now_ms(),
        };
        let lock = super::postgres::ServerLock::acquire(at, &me, rank)?;
        Ok(RunLock {
            _held: Held::Server(lock),
        })
    }

    /// Whether an apply holds the lock of the state at `state` now.
    pub fn held(state: &Path) -> bool {
        let Ok(file) = File::open(lock_path(state)) else {
            return false;
        };
        match file.try_lock_shared() {
            Ok(()) => false,
            Err(TryLockError::WouldBlock) => true,
            Err(TryLockError::Error(_)) => false,
        }
    }
}

fn read_holder(file: &mut File) -> Holder {
    let mut text = String::new();
    let _ = file.rewind().and_then(|_| file.read_to_string(&mut text));
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or("?")
            .to_string()
    };
    Holder {
        pid: field("pid"),
        host: field("host"),
        since_ms: field("since_ms").parse().unwrap_or(0),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_taken_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("p.state.sqlite");
        let first = RunLock::acquire(&state).unwrap();
        assert!(RunLock::held(&state));
        match RunLock::acquire(&state) {
            Err(LockError::Held(h)) => assert_eq!(h.pid, std::process::id().to_string()),
            other => panic!("{other:?}"),
        }
        drop(first);
        assert!(!RunLock::held(&state));
        // The file a released (or dead) holder left is taken over.
        RunLock::acquire(&state).unwrap();
    }
}
