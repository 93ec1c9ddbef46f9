//! Cursor helpers: offset cursors for connectors that hold all records in
//! memory (files), and reading every page through a page function.

use crate::{Account, AccountPage, PageRequest, Result};
use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    /// Accounts read whole for a paging in progress, by the connector
    /// instance (its address) that read them; dropped with the last page.
    static SNAPSHOTS: RefCell<HashMap<usize, Vec<Account>>> = RefCell::default();
}

/// The page `request` asks for out of what `read_all` returns: called for
/// the first page (no cursor), the rest served from what it returned.
pub fn snapshot_page(
    owner: usize,
    request: &PageRequest,
    read_all: impl FnOnce() -> Result<Vec<Account>>,
) -> Result<AccountPage> {
    if request.cursor.is_none() {
        let all = read_all()?;
        SNAPSHOTS.with_borrow_mut(|s| s.insert(owner, all));
    }
    SNAPSHOTS.with_borrow_mut(|s| {
        let snapshot = s.get(&owner).ok_or_else(|| {
            crate::Error::invalid(
                "a page cursor of a read that is over: read again from the first page",
            )
        })?;
        let page = AccountPage::of_snapshot(snapshot, request)?;
        if page.next_cursor.is_none() {
            s.remove(&owner);
        }
        Ok(page)
    })
}

/// The slice of `items` that `request` asks for, and the cursor of the next one.
pub fn offset_page<T: Clone>(
    items: &[T],
    request: &PageRequest,
) -> Result<(Vec<T>, Option<String>)> {
    let start = match &request.cursor {
        None => 0,
        Some(c) => c
            .strip_prefix("offset:")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| crate::Error::invalid(format!("malformed cursor `{c}`")))?,
    };
    let size = request.size.max(1) as usize;
    let end = (start + size).min(items.len());
    let next = (end < items.len()).then(|| format!("offset:{end}"));
    Ok((items.get(start..end).unwrap_or_default().to_vec(), next))
}

/// Reads every page of accounts with `read` (e.g. a connector's `read_accounts`).
pub fn read_all(
    mut read: impl FnMut(PageRequest) -> Result<AccountPage>,
    size: u32,
) -> Result<Vec<Account>> {
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = read(PageRequest {
            cursor,
            watermark: None,
            size,
        })?;
        all.extend(page.accounts);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(all),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(cursor: Option<String>) -> PageRequest {
        PageRequest {
            cursor,
            watermark: None,
            size: 2,
        }
    }

    #[test]
    fn a_snapshot_is_read_once_served_page_by_page_and_dropped_after_the_last() {
        let accounts: Vec<Account> = (0..5)
            .map(|i| {
                Account::new(
                    format!("a{i}"),
                    crate::AccountKind::Person,
                    format!("a{i}@x"),
                )
            })
            .collect();
        let mut reads = 0;
        let mut seen = vec![];
        let mut cursor = None;
        loop {
            let page = snapshot_page(1, &request(cursor), || {
                reads += 1;
                Ok(accounts.clone())
            })
            .unwrap();
            seen.extend(page.accounts.into_iter().map(|a| a.id));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(reads, 1);
        assert_eq!(seen, ["a0", "a1", "a2", "a3", "a4"]);
        let late = snapshot_page(1, &request(Some("offset:2".into())), || Ok(vec![]));
        assert!(late.is_err(), "a cursor after the last page is refused");
    }

    #[test]
    fn offset_pages_cover_everything_once() {
        let items: Vec<u32> = (0..7).collect();
        let mut seen = vec![];
        let mut cursor = None;
        loop {
            let (page, next) = offset_page(
                &items,
                &PageRequest {
                    cursor,
                    watermark: None,
                    size: 3,
                },
            )
            .unwrap();
            seen.extend(page);
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, items);
        assert!(
            offset_page(
                &items,
                &PageRequest {
                    cursor: Some("x".into()),
                    watermark: None,
                    size: 3
                }
            )
            .is_err()
        );
    }
}
