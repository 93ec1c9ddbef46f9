//! Plan review: a plan (a pipeline's plan now, or one kept for approval)
//! grouped by kind of change, searchable, paged on the server, errors and
//! warnings on top, skipped and filtered accounts with their reasons; and
//! for a plan that waits, Approve / Reject with a comment. The parsed plan
//! stays in memory (`Cache`), so paging a 100,000-change plan reads it once.

use super::form::Fields;
use super::page::{self, enc, notice};
use super::rows::{self, Row, View};
use super::session::{Signed, allowed, reading, signed_in};
use crate::model::Operation;
use crate::plan::{NoteLevel, Plan, PlannedChange};
use crate::serve::db::{ApprovalRecord, DecideError, Role};
use crate::serve::node::Shared;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

#[derive(serde::Deserialize, Default)]
pub struct Filter {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: usize,
}

/// The kinds a plan is grouped by, as tabs.
const KINDS: [(&str, &str); 9] = [
    ("", "All changes"),
    ("create", "Create"),
    ("update", "Update"),
    ("disable", "Disable"),
    ("delete", "Delete"),
    ("merge-guest", "Merge"),
    ("link", "Link"),
    ("unlink", "Unlink"),
    ("skipped", "Skipped and filtered"),
];

pub async fn current(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(filter): Query<Filter>,
) -> Response {
    let (who, served) = or_answer!(reading(&shared, &headers, &name).await);
    let kept = match current_plan(&shared, &name, served).await {
        Ok(k) => k,
        Err(e) => return page::failed(&who, &format!("Plan of {name}"), &e),
    };
    let base = format!("/console/pipelines/{}/plan", enc(&name));
    let head = html! {
        (page::tabs(&name, "plan"))
        form.toolbar method="post" action={ (base) "/refresh" } {
            (page::csrf(&who))
            span { "Planned at " (kept.at) " by this node; nothing was changed in either system." }
            button type="submit" { "Plan again" }
        }
    };
    let view = rows::in_memory(&kept.value, &filter.kind, &filter.q, filter.page);
    review(
        &who,
        &format!("Plan of {name}"),
        head,
        &base,
        &view,
        &filter,
    )
}

/// The plan pipeline `name` would carry out now: made once, kept until
/// "Plan again".
pub(super) async fn current_plan(
    shared: &Shared,
    name: &str,
    served: crate::serve::config::Served,
) -> Result<std::sync::Arc<super::cache::Kept<Plan>>, crate::error::Failure> {
    let key = super::cache::current_key(name);
    if let Some(kept) = shared.console.plan(&key) {
        return Ok(kept);
    }
    let cache = shared.cache_dir.clone();
    let plan = super::off_thread(move || crate::serve::reads::masked_plan(&served, cache)).await?;
    Ok(shared.console.keep_plan(&key, plan))
}

pub async fn refresh(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    fields: Fields,
) -> Response {
    if let Err(r) = allowed(&shared, &headers, &fields, Role::Viewer).await {
        return r;
    }
    shared
        .console
        .forget_plan(&super::cache::current_key(&name));
    Redirect::to(&format!("/console/pipelines/{}/plan", enc(&name))).into_response()
}

/// A plan kept for approval, with Approve / Reject while it waits.
pub async fn kept(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(filter): Query<Filter>,
) -> Response {
    let who = or_answer!(signed_in(&shared, &headers).await);
    let approval = match shared.db.approval(id).await {
        Ok(Some(a)) => a,
        Ok(None) => return page::not_found(&who, &format!("run {id} keeps no plan")),
        Err(e) => return page::unavailable(&e),
    };
    let view = or_answer!(view_of_kept(&shared, &who, id, &filter).await);
    let head = html! {
        (page::tabs(&approval.pipeline, ""))
        (decision(&who, &approval))
    };
    let title = format!("Plan of run {id} ({})", approval.pipeline);
    review(
        &who,
        &title,
        head,
        &format!("/console/runs/{id}/plan"),
        &view,
        &filter,
    )
}

/// A page of the plan kept under run `id`: from this node's memory, else
/// from its rows in the service database, else (rows not in yet) parsed
/// whole, kept, and its rows stored for the next reader.
async fn view_of_kept(
    shared: &Shared,
    who: &Signed,
    id: i64,
    f: &Filter,
) -> Result<View, Response> {
    if let Some(kept) = shared.console.plan(&super::cache::kept_key(id)) {
        return Ok(rows::in_memory(&kept.value, &f.kind, &f.q, f.page));
    }
    match rows::in_database(shared, id, &f.kind, &f.q, f.page).await {
        Ok(Some(view)) => return Ok(view),
        Ok(None) => {}
        Err(e) => return Err(page::unavailable(&e)),
    }
    let text = match shared.db.approval_plan(id).await {
        Ok(Some(t)) => t,
        Ok(None) => return Err(page::not_found(who, &format!("run {id} keeps no plan"))),
        Err(e) => return Err(page::unavailable(&e)),
    };
    let kept = super::take_in(shared, id, text)
        .await
        .map_err(|e| page::failed(who, "Plan", &e))?;
    Ok(rows::in_memory(&kept.value, &f.kind, &f.q, f.page))
}

/// The approval's state, and its buttons while it waits (operators).
fn decision(who: &Signed, a: &ApprovalRecord) -> Markup {
    html! {
        section.toolbar aria-label="Approval" {
            span { "Approval: " (page::status(&a.status)) " · kept " (page::when(&a.created_at)) }
            @if let Some(by) = &a.decided_by {
                span { " · decided by " (by) @if let Some(at) = &a.decided_at { " at " (page::when(at)) } }
            }
            @if let Some(c) = &a.comment { span { " · “" (c) "”" } }
            @if a.status == "pending" && who.may(Role::Operator) {
                form method="post" action={ "/console/runs/" (a.run_id) "/decide" } {
                    (page::csrf(who))
                    label for="comment" { "Comment" }
                    input #comment type="text" name="comment" size="40" placeholder="why (kept in the audit log)";
                    " "
                    button.primary type="submit" name="decision" value="approve" { "Approve" }
                    " "
                    button.danger type="submit" name="decision" value="reject" { "Reject" }
                }
            } @else if a.status == "pending" {
                span.muted { "Waiting for an operator to approve or reject it." }
            }
        }
    }
}

pub async fn decide(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    fields: Fields,
) -> Response {
    let who = or_answer!(allowed(&shared, &headers, &fields, Role::Operator).await);
    let approve = match fields.get("decision") {
        Some("approve") => true,
        Some("reject") => false,
        _ => {
            let body = notice("error", "the form says neither approve nor reject");
            return (StatusCode::BAD_REQUEST, page::page("Approval", &who, body)).into_response();
        }
    };
    let comment = fields.text("comment");
    let decided = crate::serve::approve::decide(
        &shared.db,
        &shared.config.queue,
        id,
        approve,
        &who.actor(),
        comment,
    )
    .await;
    match decided {
        Ok(_) => Redirect::to(&format!("/console/runs/{id}")).into_response(),
        Err(DecideError::Db(e)) => page::unavailable(&e),
        Err(e) => {
            let status = match e {
                DecideError::NotFound(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::CONFLICT,
            };
            (
                status,
                page::page("Approval", &who, notice("error", &e.to_string())),
            )
                .into_response()
        }
    }
}

/// The plan page proper: summary, notes, kinds, search, one page of rows.
fn review(
    who: &Signed,
    title: &str,
    head: Markup,
    base: &str,
    view: &View,
    f: &Filter,
) -> Response {
    let plan = &view.head;
    let s = &plan.summary;
    let count = |kind: &str| view.counts.get(kind).copied().unwrap_or(0);
    let body = html! {
        (head)
        @if let Some(why) = &plan.refused { (notice("error", &format!("refused: {why}"))) }
        @if view.empty() && plan.refused.is_none() { (notice("ok", "Nothing to change: the target is in sync.")) }
        div.cards {
            (card("to create", s.creates)) (card("to update", s.updates)) (card("merges", s.merges))
            (card("to disable", s.disables)) (card("to delete", s.deletes)) (card("new links", s.new_links))
            (card("unlinks", s.unlinks)) (card("unchanged", s.unchanged)) (card("skipped", s.skipped))
            (card("filtered", s.filtered))
        }
        p.muted { "Plan " code { (plan.id) } " · " (s.source_accounts) " source accounts, " (s.in_scope) " in scope, " (s.target_accounts) " in the target" }
        (notes(plan))
        nav.kinds aria-label="Kinds of change" {
            @for (kind, label) in KINDS {
                @let href = format!("{base}?kind={kind}&q={}", enc(&f.q));
                @if kind == f.kind { a href=(href) aria-current="page" { (label) " (" (count(kind)) ")" } }
                @else { a href=(href) { (label) " (" (count(kind)) ")" } }
            }
        }
        form.toolbar method="get" action=(base) role="search" {
            input type="hidden" name="kind" value=(f.kind);
            label for="q" { "Search accounts" }
            input #q type="search" name="q" value=(f.q) placeholder="address, key or id";
            button type="submit" { "Search" }
        }
        (rows(&f.kind, &view.rows))
        (page::pager(base, &[("kind", &f.kind), ("q", &f.q)], f.page, view.total))
    };
    page::page(title, who, body)
}

fn card(label: &str, n: usize) -> Markup {
    html! { div.card { div.n { (n) } div.muted { (label) } } }
}

/// Errors, conflicts and warnings, the most severe first (at most 200 of each shown).
fn notes(plan: &Plan) -> Markup {
    html! {
        @for level in NoteLevel::ALL {
            @let notes = plan.notes_at(level);
            @if !notes.is_empty() {
                details open[level != NoteLevel::Warning] {
                    summary { strong { (notes.len()) " " (level.as_str()) "s" } }
                    ul {
                        @for n in notes.iter().take(200) {
                            li { @if let Some(a) = &n.account { code { (a) } ": " } (n.message) }
                        }
                    }
                    @if notes.len() > 200 { p.muted { "… and " (notes.len() - 200) " more (roster plan --json has them all)" } }
                }
            }
        }
    }
}

/// One page of rows, as the table of their kind.
fn rows(kind: &str, rows: &[Row]) -> Markup {
    match kind {
        "link" => html! {
            table { thead { tr { th scope="col" { "Source account" } th scope="col" { "Target id" } th scope="col" { "How" } th scope="col" { "Options" } } }
            tbody { @for r in rows { @if let Row::Link(l) = r { tr {
                td { (l.source_email) } td.mono { (l.target_id.as_deref().unwrap_or("(new)")) }
                td { (l.how.as_str()) } td { (crate::plan::options_text(&l.options)) }
            } } } } }
        },
        "unlink" => html! {
            table { thead { tr { th scope="col" { "Source account" } th scope="col" { "Target id" } } }
            tbody { @for r in rows { @if let Row::Unlink(u) = r { tr {
                td { (u.source_email) } td.mono { (u.target_id.as_deref().unwrap_or("")) }
            } } } } }
        },
        "skipped" => html! {
            table { thead { tr { th scope="col" { "Account" } th scope="col" { "Reason" } th scope="col" { "Why" } } }
            tbody { @for r in rows { @if let Row::Skipped(s) = r { tr {
                td { (s.account) }
                td { (s.reason.as_str()) @if let Some(rule) = &s.rule { " (" code { (rule) } ")" } }
                td { (s.detail) }
            } } } } }
        },
        _ => html! {
            table { thead { tr { th scope="col" { "Change" } th scope="col" { "Account" } th scope="col" { "What" } th scope="col" { "Options" } } }
            tbody { @for r in rows { @if let Row::Change(c) = r { tr {
                td { span class={ "badge " (badge(c)) } { (c.action.as_str()) } }
                td { (c.email) }
                td { (what(c)) }
                td { (crate::plan::options_text(&c.change.options)) }
            } } } } }
        },
    }
}

fn badge(c: &PlannedChange) -> &'static str {
    match c.action {
        crate::plan::Action::Create => "ok",
        crate::plan::Action::Update | crate::plan::Action::MergeGuest => "neutral",
        _ => "bad",
    }
}

/// What a change does, field by field for an update.
fn what(c: &PlannedChange) -> Markup {
    match &c.change.op {
        Operation::Create { account } => html! {
            (account.display_name.as_deref().unwrap_or("")) " · " (format!("{:?}", account.kind).to_lowercase())
            @if !account.enabled { " · disabled" }
        },
        Operation::Update { id, .. } => html! {
            span.mono { (id) }
            table.diff { @for d in &c.diff { tr { th scope="row" { (d.field) } td.from { (d.from) } td.to { (d.to) } } } }
        },
        Operation::Disable { id } | Operation::Delete { id } => html! { span.mono { (id) } },
        Operation::MergeGuest { guest, into } => html! {
            "guest " (guest.email) " into " (into.email)
        },
    }
}
