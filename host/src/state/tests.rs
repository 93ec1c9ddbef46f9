//! One set of store tests, run against every store: the SQLite file and
//! PostgreSQL (the server on the machine; each run in a schema of its own,
//! dropped afterwards). A store that behaves differently fails here.

use super::*;
use crate::links::LinkHow;
use crate::model::AccountKind;

/// The PostgreSQL the tests use: `ROSTER_TEST_PG_URL`, else the machine's
/// (trust auth, database `test`).
pub fn test_pg_url() -> String {
    std::env::var("ROSTER_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A schema no other test (or test run) uses.
pub fn test_schema(what: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "roster_test_{what}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn link(email: &str, target: &str) -> StoredLink {
    StoredLink {
        source_key: format!("id:{email}"),
        source_email: email.into(),
        target_id: target.into(),
        how: LinkHow::Primary,
        options: BTreeMap::from([("diary".to_string(), "true".to_string())]),
        overrides: BTreeMap::new(),
        updated_at_ms: 7,
    }
}

fn outcome<'a>(
    key: &'a str,
    account: &'a str,
    status: JournalStatus,
    error: Option<&'a str>,
) -> Outcome<'a> {
    Outcome {
        plan_id: "p1",
        key,
        account,
        status,
        target_id: (status == JournalStatus::Applied).then_some("t9"),
        error,
    }
}

/// Everything a store does, through the trait only.
fn exercise(s: &mut dyn StateStore) {
    // A new store.
    assert!(s.is_fresh().unwrap());
    assert_eq!(s.identity().unwrap(), None);
    assert!(s.links().unwrap().is_empty());

    // Identity.
    let id = PipelineIdentity {
        name: "p".into(),
        source: "a".into(),
        target: "b".into(),
    };
    s.set_identity(&id).unwrap();
    assert_eq!(s.identity().unwrap(), Some(id));
    assert!(!s.is_fresh().unwrap());

    // Links.
    s.upsert_link(&link("b@x", "t2")).unwrap();
    s.upsert_link(&link("a@x", "t1")).unwrap();
    s.upsert_link(&link("a@x", "t1b")).unwrap();
    let links = s.links().unwrap();
    assert_eq!(links.len(), 2);
    assert_eq!(
        (links[0].source_email.as_str(), links[0].target_id.as_str()),
        ("a@x", "t1b")
    );
    assert_eq!(links[0].options["diary"], "true");
    assert_eq!(s.links_as_stored().unwrap().1, Vec::<String>::new());
    assert_eq!(s.accept_link_edits().unwrap(), Vec::<String>::new());
    s.remove_link("id:b@x").unwrap();
    assert_eq!(s.links().unwrap().len(), 1);

    // Runs.
    let r1 = s.begin_run("apply", "p1").unwrap();
    let r2 = s.begin_run("apply", "p2").unwrap();
    assert!(r2 > r1);
    s.finish_run(r1, 3, 1, "partial").unwrap();
    let runs = s.recent_runs(10).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[0].id, runs[0].outcome.as_str()), (r2, "running"));
    assert_eq!(
        (runs[1].applied, runs[1].failed, runs[1].outcome.as_str()),
        (3, 1, "partial")
    );
    assert!(runs[1].finished_at_ms.is_some());

    // The journal.
    s.journal_open("p1", &[("k1", "a@x"), ("k2", "c@x"), ("k3", "d@x")])
        .unwrap();
    s.journal_open("p1", &[("k1", "a@x")]).unwrap();
    s.mark_sent("p1", &["k1", "k2"]).unwrap();
    let j = s.journal("p1").unwrap();
    assert_eq!(j.len(), 3);
    assert_eq!(j["k1"].status, JournalStatus::Sent);
    assert_eq!(j["k3"].status, JournalStatus::Pending);
    let memo_writes = vec![
        ("token".to_string(), Some("v1".to_string())),
        ("gone".to_string(), None),
    ];
    s.record(
        &[
            outcome("k1", "a@x", JournalStatus::Applied, None),
            outcome("k2", "c@x", JournalStatus::Failed, Some("conflict: exists")),
        ],
        &[link("c@x", "t3")],
        Some(MemoUpdate {
            connector: "dst",
            writes: &memo_writes,
        }),
    )
    .unwrap();
    let j = s.journal("p1").unwrap();
    assert_eq!(
        (j["k1"].status, j["k1"].target_id.as_deref()),
        (JournalStatus::Applied, Some("t9"))
    );
    assert_eq!(j["k2"].status, JournalStatus::Failed);
    let rows = s.journal_rows("p1", None).unwrap();
    let shown: Vec<(&str, &str, JournalStatus, Option<&str>)> = rows
        .iter()
        .map(|r| {
            (
                r.key.as_str(),
                r.account.as_str(),
                r.status,
                r.error.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("k1", "a@x", JournalStatus::Applied, None),
            ("k2", "c@x", JournalStatus::Failed, Some("conflict: exists")),
            ("k3", "d@x", JournalStatus::Pending, None),
        ]
    );
    assert!(s.journal_rows("no-such-plan", None).unwrap().is_empty());
    let one = s.journal_rows("p1", Some("C@X")).unwrap();
    assert_eq!(
        one.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
        ["k2"],
        "only that account's changes, its address compared case aside"
    );
    assert_eq!(s.links().unwrap().len(), 2);
    let errors = s.account_errors().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (errors[0].account.as_str(), errors[0].message.as_str()),
        ("c@x", "conflict: exists")
    );
    // Applied later: the error is cleared.
    s.record(
        &[outcome("k2", "c@x", JournalStatus::Applied, None)],
        &[],
        None,
    )
    .unwrap();
    assert!(s.account_errors().unwrap().is_empty());
    // A run left running by a dead process ends as interrupted, with its journal's counts.
    assert_eq!(s.end_abandoned_runs().unwrap(), 1);
    let runs = s.recent_runs(1).unwrap();
    assert_eq!(runs[0].outcome, "interrupted");

    // Memo.
    assert_eq!(
        s.memo("dst").unwrap(),
        BTreeMap::from([("token".to_string(), "v1".to_string())])
    );
    let more = vec![
        ("token".to_string(), None),
        ("other".to_string(), Some("2".to_string())),
    ];
    s.save_memo(MemoUpdate {
        connector: "dst",
        writes: &more,
    })
    .unwrap();
    assert_eq!(
        s.memo("dst").unwrap(),
        BTreeMap::from([("other".to_string(), "2".to_string())])
    );
    assert!(s.memo("src").unwrap().is_empty());

    // Staged link edits, carried out.
    let edit = |source: &str, target: Option<&str>| LinkEdit {
        source: source.into(),
        target_id: target.map(str::to_string),
        options: BTreeMap::from([("rank".to_string(), "2".to_string())]),
        staged_at_ms: 5,
        options_only: false,
    };
    s.stage_link_edit(&edit("e@x", Some("t5"))).unwrap();
    s.stage_link_edit(&edit("a@x", None)).unwrap();
    s.stage_link_edit(&edit("e@x", Some("t6"))).unwrap();
    let edits = s.link_edits().unwrap();
    assert_eq!(edits.len(), 2);
    assert_eq!(
        (edits[1].source.as_str(), edits[1].target_id.as_deref()),
        ("e@x", Some("t6"))
    );
    assert_eq!(edits[1].options["rank"], "2");
    assert!(s.unstage_link_edit("e@x").unwrap());
    assert!(!s.unstage_link_edit("e@x").unwrap());
    s.carry_out_link_edits(
        &[link("f@x", "t7")],
        &[Unlinked {
            source_key: "id:a@x".into(),
            source_email: "a@x".into(),
            target_id: Some("t1b".into()),
            at_ms: 9,
        }],
        &["a@x".to_string()],
    )
    .unwrap();
    assert!(s.link_edits().unwrap().is_empty());
    let emails: Vec<String> = s
        .links()
        .unwrap()
        .into_iter()
        .map(|l| l.source_email)
        .collect();
    assert_eq!(emails, ["c@x", "f@x"]);
    assert_eq!(s.unlinked().unwrap()[0].target_id.as_deref(), Some("t1b"));
    // Linked again: no longer unlinked.
    s.upsert_link(&link("a@x", "t1c")).unwrap();
    assert!(s.unlinked().unwrap().is_empty());

    // Source snapshots.
    let account = |id: &str| Account::new(id, AccountKind::Person, format!("{id}@x"));
    assert_eq!(s.source_snapshot("src", "f1").unwrap(), None);
    s.save_source_snapshot(
        "src",
        "f1",
        Some("w1"),
        SnapshotChange::Replace(&[account("1"), account("2")]),
    )
    .unwrap();
    let snap = s.source_snapshot("src", "f1").unwrap().unwrap();
    assert_eq!((snap.watermark.as_str(), snap.accounts.len()), ("w1", 2));
    assert_eq!(s.source_snapshot("src", "other-config").unwrap(), None);
    s.save_source_snapshot(
        "src",
        "f1",
        Some("w2"),
        SnapshotChange::Patch {
            upserts: &[account("3")],
            removed: &["1".to_string()],
        },
    )
    .unwrap();
    let mut ids: Vec<String> = s
        .source_snapshot("src", "f1")
        .unwrap()
        .unwrap()
        .accounts
        .into_iter()
        .map(|a| a.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["2", "3"]);
    s.save_source_snapshot("src", "f1", None, SnapshotChange::Replace(&[]))
        .unwrap();
    assert_eq!(s.source_snapshot("src", "f1").unwrap(), None);
}

#[test]
fn the_sqlite_store_does_what_a_store_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("s.sqlite")).unwrap();
    exercise(&mut store);
}

#[test]
fn the_postgres_store_does_what_a_store_does() {
    let location = PgLocation {
        url: test_pg_url(),
        schema: test_schema("store"),
    };
    let mut store = PgStore::open(&location).unwrap_or_else(|e| {
        panic!(
            "PostgreSQL at {} is needed for this test: {e:#}",
            location.shown()
        )
    });
    exercise(&mut store);
    // Opened again (migrations already run): the data is there.
    let again = PgStore::open(&location).unwrap();
    assert_eq!(again.links().unwrap().len(), 3);
    drop(store);
    again.drop_schema().unwrap();
}

#[test]
fn postgres_locations_take_their_schema_from_the_url_or_the_pipeline() {
    let l = PgLocation::parse(
        "postgres://u:secret@db.example:5432/roster?sslmode=require&schema=hr_sync",
        "x",
    )
    .unwrap();
    assert_eq!(l.schema, "hr_sync");
    assert_eq!(
        l.url,
        "postgres://u:secret@db.example:5432/roster?sslmode=require"
    );
    assert!(!l.shown().contains("secret"), "{}", l.shown());
    let l = PgLocation::parse("postgresql://db/roster", "Exchange → Zivver").unwrap();
    assert_eq!(l.schema, "roster_exchange___zivver");
    assert!(PgLocation::parse("mysql://db/x", "p").is_err());
    assert!(PgLocation::parse("postgres://db/x?schema=Bad;Drop", "p").is_err());
}
