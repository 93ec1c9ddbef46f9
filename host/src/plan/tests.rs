//! Planner table tests at the pure seam, as Terraform's
//! `context_plan_test.go`: [`build`] on in-memory pipelines and accounts,
//! no component, binary or file. Each case names the rule it holds; removing
//! the rule makes its case fail.

use super::*;
use crate::links::{LinkEdit, LinkHow, StoredLink, Unlinked};
use crate::model::{Account, AccountKind, Descriptor, ErrorKind, Field, Operation};
use crate::pipeline::Pipeline;
use std::collections::BTreeMap;

const HEAD: &str = r#"name = "t"
source = "src"
target = "dst"
[connectors.src]
plugin = "csv"
[connectors.dst]
plugin = "csv"
"#;

fn pipeline(stages: &str) -> Pipeline {
    let text = format!("{HEAD}{stages}");
    crate::pipeline::parse(std::path::Path::new("t.toml"), &text)
        .unwrap_or_else(|d| panic!("{d}\n{text}"))
}

const LINK_SYNC: &str = "[[stages]]\ntype = \"link\"\n[[stages]]\ntype = \"sync\"\n";

fn person(id: &str, email: &str) -> Account {
    let mut a = Account::new(id, AccountKind::Person, email);
    a.display_name = Some(email.split('@').next().unwrap_or("").to_lowercase());
    a
}

fn with_aliases(mut a: Account, aliases: &[&str]) -> Account {
    a.aliases = aliases.iter().map(|s| s.to_string()).collect();
    a
}

fn kind(mut a: Account, k: AccountKind) -> Account {
    a.kind = k;
    a
}

fn disabled(mut a: Account) -> Account {
    a.enabled = false;
    a
}

fn attribute(mut a: Account, key: &str, value: &str) -> Account {
    a.attributes.insert(key.into(), value.into());
    a
}

fn target_descriptor() -> Descriptor {
    Descriptor {
        name: "dst".into(),
        version: "1".into(),
        description: String::new(),
        source: false,
        target: true,
        kinds: vec![
            AccountKind::Person,
            AccountKind::Functional,
            AccountKind::Guest,
        ],
        fields: vec![
            Field::Email,
            Field::Aliases,
            Field::DisplayName,
            Field::Enabled,
        ],
        incremental: false,
        config: vec![],
        hosts: vec![],
    }
}

fn stored(source: &Account, target_id: &str) -> StoredLink {
    StoredLink {
        source_key: link::source_key(source),
        source_email: source.email.clone(),
        target_id: target_id.into(),
        how: LinkHow::Primary,
        options: BTreeMap::new(),
        overrides: BTreeMap::new(),
        updated_at_ms: 0,
    }
}

/// One planner case: everything `build` reads, with defaults.
struct Case {
    stages: &'static str,
    source: Vec<Account>,
    target: Vec<Account>,
    links: Vec<StoredLink>,
    edits: Vec<LinkEdit>,
    unlinked: Vec<Unlinked>,
    free_seats: Option<u32>,
    creates_refused: Option<String>,
    source_read: ReadMode,
}

impl Case {
    fn new(stages: &'static str) -> Case {
        Case {
            stages,
            source: vec![],
            target: vec![],
            links: vec![],
            edits: vec![],
            unlinked: vec![],
            free_seats: None,
            creates_refused: None,
            source_read: ReadMode::Full,
        }
    }

    fn source(mut self, accounts: Vec<Account>) -> Case {
        self.source = accounts;
        self
    }

    fn target(mut self, accounts: Vec<Account>) -> Case {
        self.target = accounts;
        self
    }

    fn plan(&self) -> Plan {
        let p = pipeline(self.stages);
        build(&PlanInput {
            pipeline: &p,
            source: &self.source,
            source_groups: &[],
            target: &self.target,
            target_descriptor: &target_descriptor(),
            links: &self.links,
            link_edits: &self.edits,
            unlinked: &self.unlinked,
            free_seats: self.free_seats,
            creates_refused: self.creates_refused.clone(),
            source_read: self.source_read,
        })
    }
}

fn actions(plan: &Plan) -> Vec<(Action, u8, &str)> {
    plan.changes
        .iter()
        .map(|c| (c.action, c.phase, c.email.as_str()))
        .collect()
}

fn notes(plan: &Plan, level: NoteLevel) -> Vec<(&str, Option<ErrorKind>, &str)> {
    plan.notes
        .iter()
        .filter(|n| n.level == level)
        .map(|n| {
            (
                n.account.as_deref().unwrap_or(""),
                n.kind,
                n.message.as_str(),
            )
        })
        .collect()
}

#[test]
fn the_plan_id_is_what_the_plan_does_not_how_the_source_was_read() {
    let case = || Case::new(LINK_SYNC).source(vec![person("s1", "ann@x.com")]);
    let full = case().plan();
    let mut read_changes = case();
    read_changes.source_read = ReadMode::Incremental {
        changed: 0,
        removed: 0,
    };
    let incremental = read_changes.plan();
    assert_ne!(full.summary.source_read, incremental.summary.source_read);
    assert_eq!(
        full.id, incremental.id,
        "an approval of the one is the other"
    );
    let other = Case::new(LINK_SYNC)
        .source(vec![person("s1", "bob@x.com")])
        .plan();
    assert_ne!(full.id, other.id);
}

#[test]
fn an_unmatched_person_is_created_and_linked_as_created() {
    let plan = Case::new(LINK_SYNC)
        .source(vec![person("s1", "ann@x.com")])
        .plan();
    assert_eq!(actions(&plan), [(Action::Create, 1, "ann@x.com")]);
    let link = plan.changes[0]
        .link
        .as_ref()
        .expect("a link with the create");
    assert_eq!(
        (link.how, link.target_id.as_deref()),
        (LinkHow::Created, None)
    );
    assert_eq!(plan.summary.creates, 1);
}

#[test]
fn the_same_primary_address_links_without_a_change() {
    let plan = Case::new(LINK_SYNC)
        .source(vec![person("s1", "Ann@X.com")])
        .target(vec![person("t1", "ann@x.com")])
        .plan();
    assert!(plan.changes.is_empty(), "{:?}", actions(&plan));
    assert_eq!(plan.links.len(), 1);
    assert_eq!(plan.links[0].how, LinkHow::Primary);
    assert_eq!(plan.links[0].target_id.as_deref(), Some("t1"));
    assert_eq!(plan.summary.unchanged, 1);
}

#[test]
fn a_changed_field_of_a_linked_account_is_an_update_with_its_diff() {
    let mut source = person("s1", "ann@x.com");
    source.display_name = Some("Ann Smith".into());
    let plan = Case::new(LINK_SYNC)
        .source(vec![source])
        .target(vec![person("t1", "ann@x.com")])
        .plan();
    assert_eq!(actions(&plan), [(Action::Update, 3, "ann@x.com")]);
    let diff = &plan.changes[0].diff;
    assert_eq!(diff.len(), 1);
    assert_eq!(
        (
            diff[0].field.as_str(),
            diff[0].from.as_str(),
            diff[0].to.as_str()
        ),
        ("display-name", "ann", "Ann Smith")
    );
}

#[test]
fn a_near_miss_is_named_not_created() {
    // The source's primary address is the target account's alias.
    let plan = Case::new(LINK_SYNC)
        .source(vec![person("s1", "ann@x.com")])
        .target(vec![with_aliases(
            person("t1", "a.smith@x.com"),
            &["ann@x.com"],
        )])
        .plan();
    assert!(plan.changes.is_empty(), "{:?}", actions(&plan));
    let warned = notes(&plan, NoteLevel::Warning);
    assert!(
        warned
            .iter()
            .any(|(a, _, m)| *a == "ann@x.com"
                && m.contains("roster links PIPELINE add ann@x.com t1")),
        "{warned:?}"
    );
    assert_eq!(plan.summary.skipped, 1);
}

#[test]
fn linking_by_alias_links_what_primary_only_names_a_near_miss() {
    let stages =
        "[[stages]]\ntype = \"link\"\nby = \"primary-or-alias\"\n[[stages]]\ntype = \"sync\"\n";
    let plan = Case::new(stages)
        .source(vec![person("s1", "ann@x.com")])
        .target(vec![with_aliases(
            person("t1", "a.smith@x.com"),
            &["ann@x.com"],
        )])
        .plan();
    assert_eq!(plan.links.len(), 1);
    assert_eq!(plan.links[0].how, LinkHow::Alias);
}

#[test]
fn a_target_claimed_by_two_sources_is_a_conflict_for_both() {
    let stages =
        "[[stages]]\ntype = \"link\"\nby = \"primary-or-alias\"\n[[stages]]\ntype = \"sync\"\n";
    let plan = Case::new(stages)
        .source(vec![
            person("s1", "ann@x.com"),
            person("s2", "a.smith@x.com"),
        ])
        .target(vec![with_aliases(
            person("t1", "a.smith@x.com"),
            &["ann@x.com"],
        )])
        .plan();
    assert!(plan.changes.is_empty());
    assert!(plan.links.is_empty());
    assert_eq!(notes(&plan, NoteLevel::Conflict).len(), 2);
}

#[test]
fn creates_beyond_the_free_seats_are_licence_errors_with_a_total() {
    let mut case = Case::new(LINK_SYNC).source(vec![
        person("s1", "a@x.com"),
        person("s2", "b@x.com"),
        person("s3", "c@x.com"),
        kind(person("s4", "desk@x.com"), AccountKind::Functional),
    ]);
    case.free_seats = Some(1);
    let plan = case.plan();
    // Seats go in address order; a functional account needs none.
    assert_eq!(
        actions(&plan),
        [
            (Action::Create, 1, "a@x.com"),
            (Action::Create, 1, "desk@x.com")
        ]
    );
    let errors = notes(&plan, NoteLevel::Error);
    let per_account: Vec<&str> = errors
        .iter()
        .filter(|(a, k, _)| !a.is_empty() && *k == Some(ErrorKind::Licence))
        .map(|(a, _, _)| *a)
        .collect();
    assert_eq!(per_account, ["b@x.com", "c@x.com"]);
    assert!(
        errors.iter().any(|(a, _, m)| a.is_empty()
            && m.starts_with("2 more licence seats are needed: 1 were free")),
        "{errors:?}"
    );
}

#[test]
fn a_target_that_refuses_creates_says_why_for_each() {
    let mut case = Case::new(LINK_SYNC).source(vec![person("s1", "a@x.com")]);
    case.creates_refused = Some("this key may not create users".into());
    let plan = case.plan();
    assert!(plan.changes.is_empty());
    assert_eq!(
        notes(&plan, NoteLevel::Warning),
        [(
            "a@x.com",
            Some(ErrorKind::Unauthorized),
            "not created: this key may not create users"
        )]
    );
}

#[test]
fn a_disabled_source_account_is_created_only_when_asked() {
    let source = vec![disabled(person("s1", "gone@x.com"))];
    let plan = Case::new(LINK_SYNC).source(source.clone()).plan();
    assert!(plan.changes.is_empty());
    assert_eq!(plan.summary.skipped, 1);
    let asked =
        "[[stages]]\ntype = \"link\"\n[[stages]]\ntype = \"sync\"\ncreate_disabled = true\n";
    let mut case = Case::new(asked).source(source);
    // A disabled account takes no seat.
    case.free_seats = Some(0);
    let plan = case.plan();
    assert_eq!(actions(&plan), [(Action::Create, 1, "gone@x.com")]);
}

#[test]
fn a_blocked_target_account_is_an_error_not_an_update() {
    let mut source = person("s1", "ann@x.com");
    source.display_name = Some("Ann Smith".into());
    let target = attribute(
        person("t1", "ann@x.com"),
        diff::BLOCKED,
        "disabled in the CRM",
    );
    let plan = Case::new(LINK_SYNC)
        .source(vec![source])
        .target(vec![target])
        .plan();
    assert!(plan.changes.is_empty());
    let errors = notes(&plan, NoteLevel::Error);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].1, Some(ErrorKind::Invalid));
    assert!(errors[0].2.ends_with("disabled in the CRM"), "{errors:?}");
}

#[test]
fn a_person_without_the_required_delegate_is_an_error_naming_the_grant() {
    let stages = "[[stages]]\ntype = \"link\"\n[[stages]]\ntype = \"sync\"\nrequire_delegate = \"svc@x.com\"\n";
    let mut granted = person("s2", "bob@x.com");
    granted.delegates = vec!["SVC@x.com".into()];
    let plan = Case::new(stages)
        .source(vec![person("s1", "ann@x.com"), granted])
        .plan();
    assert_eq!(actions(&plan), [(Action::Create, 1, "bob@x.com")]);
    let errors = notes(&plan, NoteLevel::Error);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, "ann@x.com");
    assert!(
        errors[0]
            .2
            .contains("Add-MailboxPermission -Identity ann@x.com -User svc@x.com")
    );
}

fn removal_case(stages: &'static str, linked: usize, gone: usize) -> Plan {
    let all: Vec<Account> = (0..linked)
        .map(|i| person(&format!("s{i}"), &format!("p{i}@x.com")))
        .collect();
    let mut case = Case::new(stages).source(all[gone..].to_vec()).target(
        (0..linked)
            .map(|i| person(&format!("t{i}"), &format!("p{i}@x.com")))
            .collect(),
    );
    case.links = all
        .iter()
        .enumerate()
        .map(|(i, s)| stored(s, &format!("t{i}")))
        .collect();
    case.plan()
}

#[test]
fn linked_accounts_whose_source_is_gone_are_removed_behind_the_threshold() {
    let disable = "[[stages]]\ntype = \"link\"\n[[stages]]\ntype = \"sync\"\nremoved = \"disable\"\nmax_removals = 2\nmax_removals_percent = 50.0\n";
    let plan = removal_case(disable, 10, 2);
    assert_eq!(
        actions(&plan),
        [
            (Action::Disable, 4, "p0@x.com"),
            (Action::Disable, 4, "p1@x.com")
        ]
    );
    assert_eq!(plan.refused, None);
    let plan = removal_case(disable, 10, 3);
    assert_eq!(plan.summary.disables, 3);
    let refused = plan.refused.expect("3 > max_removals = 2");
    assert!(
        refused.starts_with("the plan removes 3 accounts (30.0% of 10 linked)"),
        "{refused}"
    );
    let delete = "[[stages]]\ntype = \"link\"\n[[stages]]\ntype = \"sync\"\nremoved = \"delete\"\n";
    let plan = removal_case(delete, 10, 1);
    assert_eq!(actions(&plan), [(Action::Delete, 4, "p0@x.com")]);
    let keep = "[[stages]]\ntype = \"link\"\n[[stages]]\ntype = \"sync\"\nremoved = \"keep\"\n";
    assert!(removal_case(keep, 10, 5).changes.is_empty());
}

#[test]
fn an_account_filtered_out_is_not_a_removal() {
    let stages = "[[stages]]\ntype = \"filter\"\nexclude_addresses = [\"p0@*\"]\n[[stages]]\ntype = \"link\"\n[[stages]]\ntype = \"sync\"\nremoved = \"disable\"\n";
    let plan = removal_case(stages, 3, 0);
    assert!(plan.changes.is_empty(), "{:?}", actions(&plan));
}

#[test]
fn a_stored_link_outranks_the_address_so_a_renamed_account_is_updated() {
    let mut source = person("s1", "ann.smith@x.com");
    source.external_key = Some("guid-1".into());
    let mut old = source.clone();
    old.email = "ann@x.com".into();
    let mut case = Case::new(LINK_SYNC)
        .source(vec![source])
        .target(vec![person("t1", "ann@x.com")]);
    case.links = vec![stored(&old, "t1")];
    let plan = case.plan();
    assert_eq!(actions(&plan), [(Action::Update, 3, "ann.smith@x.com")]);
    match &plan.changes[0].change.op {
        Operation::Update { id, account, .. } => {
            assert_eq!(
                (id.as_str(), account.email.as_str()),
                ("t1", "ann.smith@x.com")
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_manual_link_wins_and_one_to_a_missing_target_is_an_error() {
    let stages = "[[stages]]\ntype = \"link\"\nmanual = [{ source = \"ann@x.com\", target = \"t9\", options = { diary = \"true\" } }, { source = \"bob@x.com\", target = \"nope\" }]\n[[stages]]\ntype = \"sync\"\n";
    let plan = Case::new(stages)
        .source(vec![person("s1", "ann@x.com"), person("s2", "bob@x.com")])
        .target(vec![person("t1", "ann@x.com"), person("t9", "ann@x.com")])
        .plan();
    // The link's options reach the target with an update.
    let update = plan
        .changes
        .iter()
        .find(|c| c.email == "ann@x.com")
        .expect("update");
    let link = update.link.as_ref().expect("link recorded with the update");
    assert_eq!(
        (link.how, link.target_id.as_deref()),
        (LinkHow::Manual, Some("t9"))
    );
    assert_eq!(
        update.change.options.get("diary").map(String::as_str),
        Some("true")
    );
    let errors = notes(&plan, NoteLevel::Error);
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (errors[0].0, errors[0].1),
        ("bob@x.com", Some(ErrorKind::NotFound))
    );
}

#[test]
fn staged_link_edits_are_carried_out_and_an_unused_one_is_named() {
    let edit = |source: &str, target: Option<&str>| LinkEdit {
        source: source.into(),
        target_id: target.map(Into::into),
        options: BTreeMap::new(),
        staged_at_ms: 0,
        options_only: false,
    };
    let ann = person("s1", "ann@x.com");
    let bob = person("s2", "bob@x.com");
    let mut case = Case::new(LINK_SYNC)
        .source(vec![ann.clone(), bob.clone()])
        .target(vec![
            person("t1", "ann@x.com"),
            person("t2", "robert@x.com"),
        ]);
    case.links = vec![stored(&ann, "t1")];
    case.edits = vec![
        edit("ann@x.com", None),
        edit("bob@x.com", Some("t2")),
        edit("nobody@x.com", Some("t1")),
    ];
    let plan = case.plan();
    assert_eq!(plan.unlinks.len(), 1);
    assert_eq!(plan.unlinks[0].source_email, "ann@x.com");
    let bob_link = plan
        .changes
        .iter()
        .filter_map(|c| c.link.as_ref())
        .chain(&plan.links)
        .find(|l| l.source_email == "bob@x.com")
        .expect("bob linked by hand");
    assert_eq!(
        (bob_link.how, bob_link.target_id.as_deref()),
        (LinkHow::Manual, Some("t2"))
    );
    let mut done = plan.link_edits.clone();
    done.sort();
    assert_eq!(done, ["ann@x.com", "bob@x.com"]);
    let errors = notes(&plan, NoteLevel::Error);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].2.contains("roster links unstage"), "{errors:?}");
}

#[test]
fn an_account_unlinked_on_purpose_is_neither_matched_nor_created() {
    let ann = person("s1", "ann@x.com");
    let mut case = Case::new(LINK_SYNC)
        .source(vec![ann.clone()])
        .target(vec![person("t1", "ann@x.com")]);
    case.unlinked = vec![Unlinked {
        source_key: link::source_key(&ann),
        source_email: ann.email.clone(),
        target_id: Some("t1".into()),
        at_ms: 0,
    }];
    let plan = case.plan();
    assert!(plan.changes.is_empty() && plan.links.is_empty());
    assert_eq!(plan.summary.skipped, 1);
}

const MERGE: &str = "[[stages]]\ntype = \"link\"\n[[stages]]\ntype = \"merge\"\nmode = \"MODE\"\n[[stages]]\ntype = \"sync\"\n";

fn merge_stages(mode: &str) -> &'static str {
    MERGE.replace("MODE", mode).leak()
}

fn guest(id: &str, email: &str) -> Account {
    kind(person(id, email), AccountKind::Guest)
}

#[test]
fn a_guest_holding_an_alias_is_merged_into_the_new_account_then_the_alias_added() {
    let plan = Case::new(merge_stages("alias-only"))
        .source(vec![with_aliases(person("s1", "ann@x.com"), &["a@x.com"])])
        .target(vec![guest("g1", "a@x.com")])
        .plan();
    assert_eq!(
        actions(&plan),
        [
            (Action::Create, 1, "ann@x.com"),
            (Action::MergeGuest, 2, "ann@x.com"),
            (Action::Update, 3, "ann@x.com"),
        ]
    );
    let (create, merge, update) = (&plan.changes[0], &plan.changes[1], &plan.changes[2]);
    // The create leaves the guest's alias out; the update after the merge adds it.
    match &create.change.op {
        Operation::Create { account } => assert!(account.aliases.is_empty()),
        other => panic!("{other:?}"),
    }
    assert_eq!(merge.after, std::slice::from_ref(&create.key));
    assert_eq!(merge.target_from.as_ref(), Some(&create.key));
    assert_eq!(update.after, std::slice::from_ref(&merge.key));
    match &update.change.op {
        Operation::Update { account, .. } => assert_eq!(account.aliases, ["a@x.com"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_guest_holding_the_primary_address_is_merged_first_only_when_the_mode_says_so() {
    let source = vec![person("s1", "ann@x.com")];
    let target = vec![guest("g1", "ann@x.com")];
    let plan = Case::new(merge_stages("alias-or-primary"))
        .source(source.clone())
        .target(target.clone())
        .plan();
    assert_eq!(
        actions(&plan),
        [
            (Action::MergeGuest, 0, "ann@x.com"),
            (Action::Create, 1, "ann@x.com")
        ]
    );
    assert_eq!(plan.changes[1].after, [plan.changes[0].key.clone()]);
    let plan = Case::new(merge_stages("alias-only"))
        .source(source)
        .target(target)
        .plan();
    assert_eq!(actions(&plan), [(Action::Create, 1, "ann@x.com")]);
    assert!(
        notes(&plan, NoteLevel::Warning)
            .iter()
            .any(|(_, _, m)| m.contains("is a guest account (g1)"))
    );
}

#[test]
fn a_guest_the_target_cannot_merge_keeps_its_alias_and_the_remedy_is_named() {
    let remedy = "ask the guest to merge in the Zivver web app";
    let plan = Case::new(merge_stages("alias-only"))
        .source(vec![with_aliases(person("s1", "ann@x.com"), &["a@x.com"])])
        .target(vec![attribute(
            guest("g1", "a@x.com"),
            diff::REMEDY,
            remedy,
        )])
        .plan();
    assert_eq!(actions(&plan), [(Action::Create, 1, "ann@x.com")]);
    match &plan.changes[0].change.op {
        Operation::Create { account } => assert!(account.aliases.is_empty()),
        other => panic!("{other:?}"),
    }
    assert!(
        notes(&plan, NoteLevel::Warning)
            .iter()
            .any(|(_, _, m)| m.contains("alias a@x.com is held by a guest") && m.ends_with(remedy))
    );
}

#[test]
fn without_a_merge_stage_no_guest_is_merged() {
    let plan = Case::new(LINK_SYNC)
        .source(vec![with_aliases(person("s1", "ann@x.com"), &["a@x.com"])])
        .target(vec![guest("g1", "a@x.com")])
        .plan();
    assert_eq!(actions(&plan), [(Action::Create, 1, "ann@x.com")]);
    assert_eq!(plan.summary.merges, 0);
}

const CLAIMED: &str = "[[stages]]\ntype = \"filter\"\nclaimed_domains = [\"x.com\"]\n[[stages]]\ntype = \"link\"\n[[stages]]\ntype = \"sync\"\nunlinked = \"POLICY\"\nmax_removals = 5\n";

#[test]
fn unbacked_people_in_the_claimed_domains_are_reported_or_disabled_and_others_never() {
    let run = |policy: &str| {
        Case::new(CLAIMED.replace("POLICY", policy).leak())
            .source(vec![person("s1", "ann@x.com")])
            .target(vec![
                person("t1", "ann@x.com"),
                person("t2", "old@x.com"),
                person("t3", "partner@elsewhere.com"),
            ])
            .plan()
    };
    let plan = run("disable");
    assert_eq!(actions(&plan), [(Action::Disable, 4, "old@x.com")]);
    let plan = run("report");
    assert!(plan.changes.is_empty());
    assert!(
        notes(&plan, NoteLevel::Warning)
            .iter()
            .any(|(a, _, m)| *a == "old@x.com" && m.contains("no source account backs it"))
    );
    assert!(run("keep").notes.is_empty());
}

#[test]
fn claimed_domains_leave_out_aliases_elsewhere_with_a_warning() {
    let stages = "[[stages]]\ntype = \"filter\"\nclaimed_domains = [\"x.com\"]\n[[stages]]\ntype = \"link\"\n[[stages]]\ntype = \"sync\"\n";
    let plan = Case::new(stages)
        .source(vec![with_aliases(
            person("s1", "ann@x.com"),
            &["ann@other.org", "a@x.com"],
        )])
        .plan();
    match &plan.changes[0].change.op {
        Operation::Create { account } => assert_eq!(account.aliases, ["a@x.com"]),
        other => panic!("{other:?}"),
    }
    assert!(!notes(&plan, NoteLevel::Warning).is_empty());
}

#[test]
fn unmatched_accounts_the_pipeline_does_not_create_follow_the_unmatched_policy() {
    let run = |policy: &str| {
        let stages = format!(
            "[[stages]]\ntype = \"link\"\n[[stages]]\ntype = \"sync\"\ncreate_users = false\nunmatched = \"{policy}\"\n"
        );
        Case::new(stages.leak())
            .source(vec![person("s1", "ann@x.com")])
            .plan()
    };
    assert!(run("ignore").notes.is_empty());
    assert_eq!(notes(&run("warn"), NoteLevel::Warning).len(), 1);
    let plan = run("error");
    let errors = notes(&plan, NoteLevel::Error);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].1, Some(ErrorKind::NotFound));
    assert!(plan.changes.is_empty());
}

#[test]
fn people_are_created_before_functional_accounts_whose_members_they_are() {
    let mut desk = kind(person("s1", "a-desk@x.com"), AccountKind::Functional);
    desk.delegates = vec!["zed@x.com".into()];
    let plan = Case::new(LINK_SYNC)
        .source(vec![desk, person("s2", "zed@x.com")])
        .plan();
    assert_eq!(
        actions(&plan),
        [
            (Action::Create, 1, "zed@x.com"),
            (Action::Create, 1, "a-desk@x.com")
        ]
    );
}

#[test]
fn the_plan_id_follows_its_content() {
    let a = Case::new(LINK_SYNC).source(vec![person("s1", "ann@x.com")]);
    let b = Case::new(LINK_SYNC).source(vec![person("s1", "bob@x.com")]);
    assert_eq!(a.plan().id, a.plan().id);
    assert_ne!(a.plan().id, b.plan().id);
}

/// (account, reason key) of each skipped or filtered account.
fn skips(plan: &Plan) -> Vec<(&str, String)> {
    plan.skipped
        .iter()
        .map(|k| (k.account.as_str(), k.count_key()))
        .collect()
}

#[test]
fn every_account_left_alone_is_named_with_its_reason_and_counted() {
    let stages = "[[stages]]\ntype = \"filter\"\ninclude_domains = [\"x.com\"]\n[[stages]]\ntype = \"link\"\n[[stages]]\ntype = \"sync\"\n";
    let mut case = Case::new(stages).source(vec![
        person("s1", "ann@x.com"),
        person("s2", "bob@y.com"),
        disabled(person("s3", "off@x.com")),
        person("s4", "cy@x.com"),
        kind(person("s5", "g@x.com"), AccountKind::Guest),
    ]);
    case.free_seats = Some(1);
    let plan = case.plan();
    assert_eq!(actions(&plan), [(Action::Create, 1, "ann@x.com")]);
    assert_eq!(
        skips(&plan),
        [
            ("bob@y.com", "filtered:include_domains".to_string()),
            ("cy@x.com", "no-seat".to_string()),
            ("g@x.com", "guest".to_string()),
            ("off@x.com", "disabled".to_string()),
        ]
    );
    let s = &plan.summary;
    assert_eq!((s.skipped, s.filtered), (3, 1));
    let by_reason: Vec<(&str, usize)> = s
        .skipped_by_reason
        .iter()
        .map(|(k, n)| (k.as_str(), *n))
        .collect();
    assert_eq!(
        by_reason,
        [
            ("disabled", 1),
            ("filtered:include_domains", 1),
            ("guest", 1),
            ("no-seat", 1)
        ]
    );
    let bob = &plan.skipped[0];
    assert_eq!(
        bob.detail,
        "filter stage 1: domain y.com is not in include_domains"
    );
}

#[test]
fn a_filter_names_the_first_rule_that_drops_an_account() {
    let mut ou = person("s1", "ann@x.com");
    ou.org_unit = Some("OU=Sales,DC=corp".into());
    let cases: [(&str, Account, &str, &str); 9] = [
        (
            "kinds = [\"functional\"]",
            person("s1", "ann@x.com"),
            "kinds",
            "kind person is not in kinds",
        ),
        (
            "enabled_only = true",
            disabled(person("s1", "ann@x.com")),
            "enabled_only",
            "disabled, and enabled_only = true",
        ),
        (
            "include_domains = [\"y.com\"]",
            person("s1", "ann@x.com"),
            "include_domains",
            "domain x.com is not in include_domains",
        ),
        (
            "exclude_domains = [\"X.com\"]",
            person("s1", "ann@x.com"),
            "exclude_domains",
            "domain x.com is in exclude_domains",
        ),
        (
            "include_addresses = [\"bob@*\"]",
            person("s1", "ann@x.com"),
            "include_addresses",
            "the address matches no pattern in include_addresses",
        ),
        (
            "exclude_addresses = [\"a*@x.com\"]",
            person("s1", "ann@x.com"),
            "exclude_addresses",
            "the address matches `a*@x.com` in exclude_addresses",
        ),
        (
            "include_ous = [\"OU=HR,DC=corp\"]",
            ou.clone(),
            "include_ous",
            "org unit `OU=Sales,DC=corp` is inside none of include_ous",
        ),
        (
            "exclude_ous = [\"DC=corp\"]",
            ou.clone(),
            "exclude_ous",
            "org unit `OU=Sales,DC=corp` is inside `dc=corp` in exclude_ous",
        ),
        (
            "member_of = [\"All Staff\"]",
            person("s1", "ann@x.com"),
            "member_of",
            "it is a member of none of the groups in member_of",
        ),
    ];
    for (rule, account, key, why) in cases {
        let stages = format!(
            "[[stages]]\ntype = \"filter\"\n[[stages]]\ntype = \"filter\"\n{rule}\n{LINK_SYNC}"
        );
        let plan = Case::new(stages.leak()).source(vec![account]).plan();
        assert!(plan.changes.is_empty(), "{rule}: {:?}", actions(&plan));
        assert_eq!(plan.skipped.len(), 1, "{rule}");
        let k = &plan.skipped[0];
        assert_eq!(
            (k.reason, k.rule.as_deref(), k.detail.as_str()),
            (
                SkipReason::Filtered,
                Some(key),
                format!("filter stage 2: {why}").as_str()
            ),
            "{rule}"
        );
    }
}

#[test]
fn accounts_outside_the_claimed_domains_are_named_as_unclaimed() {
    let stages = "[[stages]]\ntype = \"filter\"\nclaimed_domains = [\"x.com\"]\n[[stages]]\ntype = \"link\"\n[[stages]]\ntype = \"sync\"\n";
    let plan = Case::new(stages)
        .source(vec![person("s1", "ann@x.com"), person("s2", "bob@y.com")])
        .plan();
    assert_eq!(skips(&plan), [("bob@y.com", "unclaimed".to_string())]);
    assert_eq!((plan.summary.skipped, plan.summary.filtered), (0, 1));
}

#[test]
fn skips_in_sync_name_blocked_kind_and_unlinked_accounts() {
    let mut changed = person("s1", "ann@x.com");
    changed.display_name = Some("Ann Smith".into());
    let blocked = attribute(
        person("t1", "ann@x.com"),
        diff::BLOCKED,
        "disabled in the CRM",
    );
    let team = kind(person("s2", "team@x.com"), AccountKind::Functional);
    let plan = Case::new(LINK_SYNC)
        .source(vec![changed, team])
        .target(vec![blocked, person("t2", "team@x.com")])
        .plan();
    assert_eq!(
        skips(&plan),
        [
            ("ann@x.com", "blocked".to_string()),
            ("team@x.com", "kind-mismatch".to_string()),
        ]
    );
}

fn explained(case: &Case, address: &str) -> Explanation {
    let p = pipeline(case.stages);
    let input = PlanInput {
        pipeline: &p,
        source: &case.source,
        source_groups: &[],
        target: &case.target,
        target_descriptor: &target_descriptor(),
        links: &case.links,
        link_edits: &case.edits,
        unlinked: &case.unlinked,
        free_seats: case.free_seats,
        creates_refused: case.creates_refused.clone(),
        source_read: ReadMode::Full,
    };
    let plan = build(&input);
    explain(&input, &plan, address)
}

fn stage<'e>(e: &'e Explanation, name: &str) -> &'e str {
    e.steps
        .iter()
        .find(|s| s.stage == name)
        .map(|s| s.decision.as_str())
        .unwrap_or_else(|| panic!("no {name} step: {:#?}", e.steps))
}

#[test]
fn explain_follows_one_address_through_every_stage() {
    let stages = "[[stages]]\ntype = \"filter\"\ninclude_domains = [\"x.com\"]\nclaimed_domains = [\"x.com\"]\n[[stages]]\ntype = \"link\"\n[[stages]]\ntype = \"merge\"\nmode = \"alias-only\"\n[[stages]]\ntype = \"sync\"\n";
    let kept = person("s1", "kept@x.com");
    let mut case = Case::new(stages)
        .source(vec![
            person("s2", "out@y.com"),
            kept.clone(),
            with_aliases(person("s3", "new@x.com"), &["n.ew@x.com"]),
            person("s4", "zed@x.com"),
        ])
        .target(vec![
            person("t1", "kept@x.com"),
            kind(person("g1", "n.ew@x.com"), AccountKind::Guest),
            person("t9", "only@x.com"),
        ]);
    case.links = vec![stored(&kept, "t1")];
    case.free_seats = Some(1);

    let out = explained(&case, "OUT@y.com");
    assert_eq!(out.source.as_ref().map(|s| s.id.as_str()), Some("s2"));
    assert!(
        stage(&out, "filter").contains("include_domains"),
        "{out:#?}"
    );
    assert!(
        out.outcome.starts_with("not synced: filtered out"),
        "{}",
        out.outcome
    );
    assert!(out.steps.iter().all(|s| s.stage != "sync"));

    let linked = explained(&case, "kept@x.com");
    assert_eq!(stage(&linked, "filter"), "kept by the filter stage");
    assert_eq!(
        stage(&linked, "claimed-domains"),
        "its addresses are in the claimed domains"
    );
    assert!(
        stage(&linked, "link").starts_with("linked to t1 (primary), recorded by an earlier run"),
        "{linked:#?}"
    );
    assert_eq!(linked.outcome, "in sync: nothing to change");

    // By its alias: the account, the guest merged into it, then its create.
    let merged = explained(&case, "n.ew@x.com");
    assert_eq!(
        merged.source.as_ref().map(|s| (s.id.as_str(), s.holds)),
        Some(("s3", "alias"))
    );
    assert_eq!(
        merged
            .target
            .iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>(),
        ["g1"]
    );
    assert!(
        stage(&merged, "merge").contains("guest n.ew@x.com (g1)"),
        "{merged:#?}"
    );
    assert!(
        stage(&merged, "link").starts_with("no target account matches: a new one is created"),
        "{merged:#?}"
    );
    assert!(merged.changes.iter().any(|c| c.action == Action::Create));
    assert!(merged.outcome.contains("create"), "{}", merged.outcome);

    // The one seat went to new@… (accounts are planned in address order).
    let full = explained(&case, "zed@x.com");
    assert!(
        stage(&full, "sync").starts_with("skipped (no-seat)"),
        "{full:#?}"
    );
    assert_eq!(full.outcome, "not synced: no-seat");
    assert!(
        full.notes
            .iter()
            .any(|n| n.kind == Some(ErrorKind::Licence))
    );

    let only = explained(&case, "only@x.com");
    assert!(only.source.is_none());
    assert!(
        stage(&only, "link").contains("linked to no source account"),
        "{only:#?}"
    );
    assert_eq!(only.outcome, "only in the target: left alone");

    let nobody = explained(&case, "nobody@x.com");
    assert_eq!(nobody.outcome, "unknown address: in neither system");
}

#[test]
fn the_percentage_threshold_counts_only_from_its_minimum_number_of_removals() {
    let disable =
        "[[stages]]\ntype = \"link\"\n[[stages]]\ntype = \"sync\"\nremoved = \"disable\"\n";
    // One leaver of seven is 14 %, far above 5 %: below 4 removals it passes.
    let plan = removal_case(disable, 7, 1);
    assert_eq!(plan.summary.disables, 1);
    assert_eq!(plan.refused, None);
    assert_eq!(removal_case(disable, 7, 3).refused, None);
    let refused = removal_case(disable, 7, 4).refused.expect("4 of 7 is 57 %");
    assert!(
        refused.starts_with("the plan removes 4 accounts (57.1% of 7 linked), above the safety threshold of 10 accounts or 5% (from 4 on)"),
        "{refused}"
    );
    let strict = format!("{disable}percent_min_removals = 1\n");
    let refused = removal_case(strict.leak(), 7, 1)
        .refused
        .expect("1 of 7 is 14 %");
    assert!(
        refused.starts_with("the plan removes 1 account (14.3%"),
        "{refused}"
    );
}

#[test]
fn ranks_split_a_plan_whole_stably_and_keep_an_accounts_changes_together() {
    // Twenty new people, and five with guests to merge (create, merge, update each).
    let mut source: Vec<Account> = (0..20)
        .map(|i| person(&format!("s{i}"), &format!("p{i}@x.com")))
        .collect();
    let mut target = vec![];
    for i in 0..5 {
        source.push(with_aliases(
            person(&format!("m{i}"), &format!("m{i}@x.com")),
            &[&format!("g{i}@x.com")],
        ));
        target.push(guest(&format!("g{i}"), &format!("g{i}@x.com")));
    }
    // And a team whose delegates are four of the new people.
    let mut team = kind(person("t1", "team@x.com"), AccountKind::Functional);
    team.delegates = (0..4).map(|i| format!("p{i}@x.com")).collect();
    source.push(team);
    let plan = Case::new(merge_stages("alias-only"))
        .source(source)
        .target(target)
        .plan();
    assert_eq!(plan.changes.len(), 36);
    let parts: Vec<Plan> = (1..=3).map(|r| plan.only_rank(r, 3)).collect();
    let mut keys: Vec<&str> = parts
        .iter()
        .flat_map(|p| p.changes.iter().map(|c| c.key.as_str()))
        .collect();
    keys.sort();
    let mut all: Vec<&str> = plan.changes.iter().map(|c| c.key.as_str()).collect();
    all.sort();
    assert_eq!(keys, all, "every change in exactly one rank");
    for part in &parts {
        assert!(!part.changes.is_empty(), "each rank has a share");
        let here: std::collections::BTreeSet<&str> =
            part.changes.iter().map(|c| c.key.as_str()).collect();
        for c in &part.changes {
            for dep in c.after.iter().chain(c.target_from.iter()) {
                assert!(
                    here.contains(dep.as_str()),
                    "{} waits for {dep} in another rank",
                    c.key
                );
            }
        }
    }
    assert_ne!(parts[0].id, parts[1].id);
    // An account's rank does not depend on the rest of the plan: with half
    // the changes gone (applied by now), the others stay where they were.
    let mut later = plan.clone();
    later.changes.retain(|c| !c.email.starts_with("p1"));
    for r in 1..=3 {
        let part = later.only_rank(r, 3);
        let now: Vec<&str> = part.changes.iter().map(|c| c.key.as_str()).collect();
        let before: Vec<&str> = parts[r as usize - 1]
            .changes
            .iter()
            .map(|c| c.key.as_str())
            .filter(|k| later.changes.iter().any(|c| c.key == *k))
            .collect();
        assert_eq!(now, before, "rank {r}");
    }
    // A link's rank option decides, whatever the hash says.
    let mut pinned = plan.clone();
    for c in &mut pinned.changes {
        c.change.options.insert("rank".into(), "2".into());
    }
    assert_eq!(pinned.only_rank(2, 3).changes.len(), 36);
    assert!(pinned.only_rank(1, 3).changes.is_empty());
}
