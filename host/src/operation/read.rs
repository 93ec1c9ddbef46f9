//! Reading a connector's accounts and groups page by page, and the
//! source's incremental read: a delta patched onto the snapshot the last
//! read left in the state.

use crate::error::Failure;
use crate::model::{Account, ConnectorError, ErrorKind, Group, PageRequest};
use crate::plan::ReadMode;
use crate::plugins::Session;
use crate::runtime::bounds::{self, Bounded};
use crate::runtime::{CallError, ConnectorInstance};
use crate::state::{SnapshotChange, StateStore};
use std::collections::BTreeMap;

pub const PAGE_SIZE: u32 = 1000;

/// Follows cursors from the first page to the last, collecting every item,
/// each within the host's bounds ([`bounds`]): a record with an oversized
/// field, a read larger than the host keeps, or a repeated cursor is the
/// connector's error, named with the record.
async fn read_pages<T: Bounded>(
    (connector, what, max_records): (&str, &'static str, usize),
    mut read: impl AsyncFnMut(PageRequest) -> Result<(Vec<T>, Option<String>), CallError>,
    mut progress: impl FnMut(usize),
) -> Result<Vec<T>, CallError> {
    let refused = |message: String| CallError::Answered {
        connector: connector.to_string(),
        what,
        error: ConnectorError {
            kind: ErrorKind::Invalid,
            message,
        },
    };
    let mut all = Vec::new();
    let mut totals = bounds::ReadTotals::new(max_records);
    let mut cursor = None;
    loop {
        let (items, next) = read(PageRequest {
            cursor,
            watermark: None,
            size: PAGE_SIZE,
        })
        .await?;
        let mut bytes = 0;
        for (i, item) in items.iter().enumerate() {
            bytes += item
                .weigh()
                .map_err(|e| refused(format!("record {} of the page: {e}", all.len() + i + 1)))?;
        }
        totals.add(items.len(), bytes).map_err(refused)?;
        all.extend(items);
        progress(all.len());
        match next {
            Some(next) => {
                totals.next_cursor(&next).map_err(refused)?;
                cursor = Some(next)
            }
            None => return Ok(all),
        }
    }
}

/// A source read: every account as of now, and how they were obtained.
pub struct SourceRead {
    pub accounts: Vec<Account>,
    pub mode: ReadMode,
}

/// What a snapshot of `connector`'s accounts depends on: the plugin and
/// its configuration, secrets left out (the state must not hold them, even
/// hashed).
fn source_fingerprint(session: &Session, connector: &str) -> String {
    use sha2::{Digest, Sha256};
    let plugin = &session.plugins[connector];
    let mut h = Sha256::new();
    h.update(plugin.component.digest.as_bytes());
    for v in &session.pipeline.connectors[connector].config {
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

/// Reads the source: incrementally when the connector supports it, `full`
/// is not asked for and the state holds a snapshot of the last read;
/// otherwise every account. The state's snapshot is brought up to date in
/// one transaction either way.
pub(super) async fn read_source(
    session: &Session,
    c: &mut ConnectorInstance,
    state: &mut dyn StateStore,
    full: bool,
    mut progress: impl FnMut(usize),
) -> Result<SourceRead, Failure> {
    let name = &session.pipeline.source;
    let incremental = session.plugins[name].descriptor.incremental;
    let fingerprint = source_fingerprint(session, name);
    let prior = match incremental && !full {
        true => state.source_snapshot(name, &fingerprint)?,
        false => None,
    };
    let watermark = prior.as_ref().map(|p| p.watermark.clone());
    let (mut removed, mut last_watermark, mut was_full) = (Vec::new(), None, false);
    let max_records = c.max_records();
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
    let read = read_pages((name, "read-accounts", max_records), read, &mut progress).await?;
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
    let (name, max_records) = (c.name().to_string(), c.max_records());
    let read = async |r: PageRequest| {
        c.read_accounts(&r)
            .await
            .map(|p| (p.accounts, p.next_cursor))
    };
    read_pages((&name, "read-accounts", max_records), read, progress).await
}

pub async fn read_groups(c: &mut ConnectorInstance) -> Result<Vec<Group>, CallError> {
    let (name, max_records) = (c.name().to_string(), c.max_records());
    let read = async |r: PageRequest| c.read_groups(&r).await.map(|p| (p.groups, p.next_cursor));
    read_pages((&name, "read-groups", max_records), read, |_| {}).await
}
