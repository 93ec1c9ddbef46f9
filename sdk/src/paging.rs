//! Cursor helpers: offset cursors for connectors that hold all records in
//! memory (files), and reading every page through a page function.

use crate::{Account, AccountPage, PageRequest, Result};

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
