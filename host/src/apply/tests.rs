//! The apply against a target held in memory and a real state file: each
//! change reaches the target once, in phase order, with the ids of accounts
//! created earlier in the same plan filled in, and an apply stopped after
//! any change finishes on the next run with nothing sent twice.

use super::*;
use crate::links::StoredLink;
use crate::model::{Account, AccountKind, ConnectorError, ErrorKind};
use crate::plan::{PlanInput, ReadMode, build};
use crate::state::SqliteStore;
use std::collections::BTreeMap;

/// A target system in memory; it stops (as a crashed connector would)
/// once it has made `stop_after` changes.
#[derive(Default)]
struct Memory {
    accounts: BTreeMap<String, Account>,
    made: Vec<String>,
    /// The change ids of each batch, as sent.
    batches: Vec<Vec<String>>,
    next_id: u32,
    stop_after: Option<usize>,
    /// Answers a create as done but with this id (`""`), as a service that
    /// answers 2xx with `{}` would through a careless connector.
    create_answer: Option<Option<String>>,
    /// Fails every create with this error (kind, message).
    create_error: Option<(ErrorKind, String)>,
}

impl Memory {
    fn make(&mut self, change: &Change) -> Result<Option<String>, ConnectorError> {
        let invalid = |m: &str| ConnectorError {
            kind: ErrorKind::Invalid,
            message: m.to_string(),
        };
        match &change.op {
            Operation::Create { account } => {
                if let Some((kind, message)) = &self.create_error {
                    return Err(ConnectorError {
                        kind: *kind,
                        message: message.clone(),
                    });
                }
                self.next_id += 1;
                let id = format!("new{}", self.next_id);
                let account = Account {
                    id: id.clone(),
                    ..account.clone()
                };
                self.accounts.insert(id.clone(), account);
                match &self.create_answer {
                    Some(answer) => Ok(answer.clone()),
                    None => Ok(Some(id)),
                }
            }
            Operation::Update { id, account, .. } => {
                let have = self
                    .accounts
                    .get_mut(id)
                    .ok_or(invalid("no such account"))?;
                *have = Account {
                    id: id.clone(),
                    ..account.clone()
                };
                Ok(Some(id.clone()))
            }
            Operation::MergeGuest { guest, into } => {
                let into = into
                    .id
                    .clone()
                    .ok_or(invalid("merge into an account without id"))?;
                if !self.accounts.contains_key(&into) {
                    return Err(invalid("merge into a missing account"));
                }
                let guest = guest.id.as_ref().ok_or(invalid("guest without id"))?;
                self.accounts
                    .remove(guest)
                    .ok_or(invalid("no such guest"))?;
                Ok(Some(into))
            }
            Operation::Disable { id } => {
                let have = self
                    .accounts
                    .get_mut(id)
                    .ok_or(invalid("no such account"))?;
                have.enabled = false;
                Ok(Some(id.clone()))
            }
            Operation::Delete { id } => {
                self.accounts.remove(id).ok_or(invalid("no such account"))?;
                Ok(None)
            }
        }
    }
}

impl Target for Memory {
    fn name(&self) -> &str {
        "memory"
    }

    async fn apply(&mut self, changes: Vec<Change>) -> Result<Vec<ChangeResult>, CallError> {
        self.batches
            .push(changes.iter().map(|c| c.id.clone()).collect());
        let mut results = Vec::new();
        for change in changes {
            if self.stop_after.is_some_and(|n| self.made.len() >= n) {
                return Err(CallError::Stopped {
                    connector: "memory".into(),
                    what: "apply",
                    reason: "it crashed".into(),
                });
            }
            let outcome = self.make(&change);
            if outcome.is_ok() {
                self.made.push(change.id.clone());
            }
            results.push(ChangeResult {
                change_id: change.id,
                outcome,
            });
        }
        Ok(results)
    }

    fn memo_written(&mut self) -> Vec<MemoWrite> {
        vec![]
    }
}

fn account(id: &str, kind: AccountKind, email: &str, aliases: &[&str]) -> Account {
    let mut a = Account::new(id, kind, email);
    a.aliases = aliases.iter().map(|a| a.to_string()).collect();
    a
}

/// A plan with every phase: a create, a guest merged into it, the update
/// that adds the guest's address, an update of a linked account, and a
/// disable of one whose source is gone.
fn plan_and_target() -> (Plan, Memory) {
    let text = r#"name = "t"
source = "src"
target = "dst"
[connectors.src]
plugin = "csv"
[connectors.dst]
plugin = "csv"
[[stages]]
type = "link"
[[stages]]
type = "merge"
mode = "alias-only"
[[stages]]
type = "sync"
removed = "disable"
max_removals = 5
"#;
    let pipeline = crate::pipeline::parse(std::path::Path::new("t.toml"), text).unwrap();
    let ann = account("s1", AccountKind::Person, "ann@x.com", &["a@x.com"]);
    let mut bob = account("s2", AccountKind::Person, "bob@x.com", &[]);
    bob.display_name = Some("Bob".into());
    let carl = account("s3", AccountKind::Person, "carl@x.com", &[]);
    let target = vec![
        account("g1", AccountKind::Guest, "a@x.com", &[]),
        account("t1", AccountKind::Person, "bob@x.com", &[]),
        account("t2", AccountKind::Person, "carl@x.com", &[]),
    ];
    let link = |s: &Account, t: &str| StoredLink {
        source_key: format!("id:{}", s.id),
        source_email: s.email.clone(),
        target_id: t.into(),
        how: crate::links::LinkHow::Primary,
        options: BTreeMap::new(),
        overrides: BTreeMap::new(),
        updated_at_ms: 0,
    };
    let links = vec![link(&bob, "t1"), link(&carl, "t2")];
    let descriptor = crate::model::Descriptor {
        name: "dst".into(),
        version: "1".into(),
        description: String::new(),
        source: false,
        target: true,
        kinds: vec![AccountKind::Person, AccountKind::Guest],
        fields: vec![
            crate::model::Field::Email,
            crate::model::Field::Aliases,
            crate::model::Field::DisplayName,
            crate::model::Field::Enabled,
        ],
        incremental: false,
        config: vec![],
        hosts: vec![],
    };
    let plan = build(&PlanInput {
        pipeline: &pipeline,
        source: &[ann, bob],
        source_groups: &[],
        target: &target,
        target_descriptor: &descriptor,
        links: &links,
        link_edits: &[],
        unlinked: &[],
        free_seats: None,
        creates_refused: None,
        source_read: ReadMode::Full,
    });
    let memory = Memory {
        accounts: target.into_iter().map(|a| (a.id.clone(), a)).collect(),
        ..Memory::default()
    };
    (plan, memory)
}

fn run(plan: &Plan, target: &mut Memory, state: &mut SqliteStore) -> ApplyReport {
    run_in_batches(plan, target, state, 1)
}

fn run_in_batches(
    plan: &Plan,
    target: &mut Memory,
    state: &mut SqliteStore,
    batch_size: usize,
) -> ApplyReport {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(apply(
        plan,
        target,
        state,
        batch_size,
        &AtomicBool::new(false),
        |_| {},
    ))
    .unwrap()
}

/// What the target holds, by primary address: (enabled, aliases).
fn holds(m: &Memory) -> BTreeMap<String, (bool, Vec<String>, Option<String>)> {
    m.accounts
        .values()
        .map(|a| {
            let v = (a.enabled, a.aliases.clone(), a.display_name.clone());
            (a.email.clone(), v)
        })
        .collect()
}

#[test]
fn every_phase_runs_in_order_with_the_new_ids_filled_in() {
    let (plan, mut memory) = plan_and_target();
    let phases: Vec<u8> = plan.changes.iter().map(|c| c.phase).collect();
    assert_eq!(phases, [1, 2, 3, 3, 4], "{:#?}", plan.changes);
    let dir = tempfile::tempdir().unwrap();
    let mut state = SqliteStore::open(&dir.path().join("s.sqlite")).unwrap();
    let report = run(&plan, &mut memory, &mut state);
    assert_eq!((report.applied, report.failed, report.skipped), (5, 0, 0));
    assert_eq!(memory.made.len(), 5);
    let held = holds(&memory);
    assert_eq!(held["ann@x.com"], (true, vec!["a@x.com".into()], None));
    assert_eq!(held["bob@x.com"].2.as_deref(), Some("Bob"));
    assert!(!held["carl@x.com"].0, "carl disabled");
    assert!(!held.contains_key("a@x.com"), "the guest was merged away");
    let links: BTreeMap<String, String> = state
        .links()
        .unwrap()
        .into_iter()
        .map(|l| (l.source_email, l.target_id))
        .collect();
    assert_eq!(links["ann@x.com"], "new1", "the created account's link");
}

#[test]
fn an_apply_stopped_after_any_change_finishes_on_rerun_with_nothing_sent_twice() {
    let (plan, reference) = plan_and_target();
    let mut whole = Memory {
        accounts: reference.accounts.clone(),
        ..Memory::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut state = SqliteStore::open(&dir.path().join("whole.sqlite")).unwrap();
    run(&plan, &mut whole, &mut state);
    for stop in 0..plan.changes.len() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = SqliteStore::open(&dir.path().join("s.sqlite")).unwrap();
        let mut target = Memory {
            accounts: reference.accounts.clone(),
            stop_after: Some(stop),
            ..Memory::default()
        };
        let first = run(&plan, &mut target, &mut state);
        assert!(first.stopped.is_some(), "stopped after {stop}");
        assert_eq!(first.applied as usize, stop);
        // The connector is started afresh; the target keeps what was made.
        target.stop_after = None;
        let second = run(&plan, &mut target, &mut state);
        assert_eq!(second.stopped, None, "after {stop}");
        assert_eq!(
            (first.applied + second.applied) as usize,
            plan.changes.len(),
            "after {stop}: {second:#?}"
        );
        let mut made = target.made.clone();
        made.sort();
        made.dedup();
        assert_eq!(
            made.len(),
            target.made.len(),
            "after {stop}: sent twice: {:?}",
            target.made
        );
        assert_eq!(holds(&target), holds(&whole), "after {stop}");
        // A third run has nothing left to do.
        let third = run(&plan, &mut target, &mut state);
        assert_eq!((third.applied, third.failed), (0, 0), "after {stop}");
    }
}

#[test]
fn a_change_whose_prerequisite_failed_is_skipped_not_sent() {
    let (plan, mut memory) = plan_and_target();
    // The guest is gone before the apply: its merge fails, so the update
    // that would add its address is skipped.
    memory.accounts.remove("g1");
    let dir = tempfile::tempdir().unwrap();
    let mut state = SqliteStore::open(&dir.path().join("s.sqlite")).unwrap();
    let report = run(&plan, &mut memory, &mut state);
    assert_eq!((report.applied, report.failed, report.skipped), (3, 1, 1));
    let skipped = report
        .outcomes
        .iter()
        .find(|o| o.status == JournalStatus::Skipped)
        .unwrap();
    assert!(
        skipped
            .error
            .as_deref()
            .unwrap()
            .starts_with("skipped: merge-guest:g1")
    );
    assert!(!memory.made.contains(&skipped.key));
}

#[test]
fn a_batch_never_holds_people_and_the_functional_accounts_they_are_members_of() {
    let (mut plan, mut memory) = plan_and_target();
    // A functional account created in the same phase as the person.
    let mut desk = account("s9", AccountKind::Functional, "desk@x.com", &[]);
    desk.delegates = vec!["ann@x.com".into()];
    let key = "create:id:s9".to_string();
    let create = PlannedChange::new(
        key,
        1,
        "desk@x.com",
        None,
        Operation::Create { account: desk },
        BTreeMap::new(),
    );
    plan.changes.insert(1, create);
    let dir = tempfile::tempdir().unwrap();
    let mut state = SqliteStore::open(&dir.path().join("s.sqlite")).unwrap();
    let report = run_in_batches(&plan, &mut memory, &mut state, 100);
    assert_eq!(report.failed, 0, "{report:#?}");
    let ids: Vec<Vec<&str>> = memory
        .batches
        .iter()
        .map(|b| b.iter().map(String::as_str).collect())
        .collect();
    assert_eq!(
        ids,
        [
            vec!["create:id:s1"],
            vec!["create:id:s9"],
            vec!["merge-guest:g1"],
            vec!["update:create:id:s1", "update:t1"],
            vec!["disable:t2"],
        ]
    );
}

#[test]
fn a_create_answered_without_a_target_id_fails_and_links_nothing() {
    for answer in [None, Some(String::new()), Some("  ".to_string())] {
        let (plan, mut memory) = plan_and_target();
        memory.create_answer = Some(answer.clone());
        let dir = tempfile::tempdir().unwrap();
        let mut state = SqliteStore::open(&dir.path().join("s.sqlite")).unwrap();
        let report = run(&plan, &mut memory, &mut state);
        let create = report
            .outcomes
            .iter()
            .find(|o| o.action == crate::plan::Action::Create)
            .expect("ann's create");
        assert_eq!(create.status, JournalStatus::Failed, "{answer:?}");
        assert!(
            create
                .error
                .as_deref()
                .is_some_and(|e| e.contains("named no target id")),
            "{:?}",
            create.error
        );
        let links = state.links().unwrap();
        assert!(
            links.iter().all(|l| !l.target_id.trim().is_empty()),
            "{answer:?}: {links:?}"
        );
        assert!(links.iter().all(|l| l.source_email != "ann@x.com"));
    }
}

#[test]
fn a_create_left_in_flight_by_a_killed_apply_is_not_sent_again_on_resume() {
    let (plan, mut memory) = plan_and_target();
    let dir = tempfile::tempdir().unwrap();
    let mut state = SqliteStore::open(&dir.path().join("s.sqlite")).unwrap();
    // What a `kill -9` leaves: the journal opened, the create's batch
    // marked sent, its answer never recorded; the target made the account.
    let keys: Vec<(&str, &str)> = plan
        .changes
        .iter()
        .map(|c| (c.key.as_str(), c.email.as_str()))
        .collect();
    state.journal_open(&plan.id, &keys).unwrap();
    let create = plan
        .changes
        .iter()
        .find(|c| c.action == crate::plan::Action::Create)
        .unwrap();
    state.mark_sent(&plan.id, &[create.key.as_str()]).unwrap();
    memory.make(&create.change).unwrap();
    let before = memory.accounts.len();

    let report = run(&plan, &mut memory, &mut state);
    assert!(
        !memory.made.contains(&create.key),
        "the create was sent again: {:?}",
        memory.made
    );
    assert_eq!(
        memory.accounts.len(),
        before,
        "no second ann (and the guest merge into her was skipped)"
    );
    let outcome = |key: &str| report.outcomes.iter().find(|o| o.key == key).unwrap();
    assert_eq!(outcome(&create.key).status, JournalStatus::Failed);
    assert_eq!(outcome(&create.key).error.as_deref(), Some(IN_DOUBT));
    // What depends on it is skipped; what does not is applied.
    for c in &plan.changes {
        if c.after.contains(&create.key) {
            assert_eq!(outcome(&c.key).status, JournalStatus::Skipped, "{}", c.key);
        }
    }
    assert!(report.applied >= 2, "{report:#?}");
    // It stays in doubt for every later resume of this plan.
    assert_eq!(
        state.journal(&plan.id).unwrap()[&create.key].status,
        JournalStatus::Sent
    );
    let again = run(&plan, &mut memory, &mut state);
    assert!(!memory.made.contains(&create.key), "{:?}", memory.made);
    assert_eq!(again.failed, 1, "{again:#?}");
}

#[test]
fn a_failed_create_says_when_it_may_have_taken_effect_and_keeps_at_most_2_kib() {
    for (kind, message, open) in [
        (ErrorKind::Connection, "connection reset".to_string(), true),
        (ErrorKind::Conflict, "exists".to_string(), false),
        (ErrorKind::Invalid, "x".repeat(3 << 20), false),
    ] {
        let (plan, mut memory) = plan_and_target();
        memory.create_error = Some((kind, message.clone()));
        let dir = tempfile::tempdir().unwrap();
        let mut state = SqliteStore::open(&dir.path().join("s.sqlite")).unwrap();
        let report = run(&plan, &mut memory, &mut state);
        let create = report
            .outcomes
            .iter()
            .find(|o| o.action == crate::plan::Action::Create)
            .unwrap();
        let error = create.error.as_deref().unwrap();
        assert_eq!(error.contains("may have taken effect"), open, "{kind:?}");
        assert!(error.len() < 2200, "{} bytes kept", error.len());
        let kept = state.account_errors().unwrap();
        assert!(kept.iter().all(|e| e.message.len() < 2200));
    }
}
