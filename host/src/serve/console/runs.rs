//! Runs: the history (newest first), and one run with its per-account
//! outcomes, errors grouped by kind with the vendor's message and what to
//! do; CSV and JSON export of the outcomes.

use super::page::{self, enc, notice};
use super::session::{Signed, signed_in};
use crate::serve::db::RunRecord;
use crate::serve::node::Shared;
use crate::serve::reads::RunOutcomes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use std::collections::BTreeMap;

#[derive(serde::Deserialize, Default)]
pub struct Filter {
    #[serde(default)]
    pipeline: String,
    #[serde(default)]
    page: usize,
}

pub async fn list(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(f): Query<Filter>,
) -> Response {
    let who = or_answer!(signed_in(&shared, &headers).await);
    let only = Some(f.pipeline.as_str()).filter(|p| !p.is_empty());
    let runs = match shared.db.runs(only, 1000).await {
        Ok(r) => r,
        Err(e) => return page::unavailable(&e),
    };
    let body = html! {
        @if let Some(p) = only { (page::tabs(p, "")) }
        table {
            thead { tr {
                th scope="col" { "Run" } th scope="col" { "Pipeline" } th scope="col" { "Trigger" } th scope="col" { "Status" }
                th.num scope="col" { "Changes" } th.num scope="col" { "Applied" } th.num scope="col" { "Failed" }
                th scope="col" { "Started" } th scope="col" { "Took" } th scope="col" { "Node" }
            } }
            tbody { @for r in page::slice(&runs, f.page) { tr {
                td { a href={ "/console/runs/" (r.id) } { (r.id) } @if let Some(k) = r.rank { " · rank " (k) } }
                td { (r.pipeline) } td { (r.trigger) } td { (page::status(&r.status)) }
                td.num { (r.changes.unwrap_or(0)) } td.num { (r.applied.unwrap_or(0)) } td.num { (r.failed.unwrap_or(0)) }
                td { (page::when(&r.started_at)) } td { (super::overview::duration(r).unwrap_or_default()) } td { (r.node) }
            } } }
        }
        (page::pager("/console/runs", &[("pipeline", &f.pipeline)], f.page, runs.len()))
    };
    let title = match only {
        Some(p) => format!("Runs of {p}"),
        None => "Runs".into(),
    };
    page::page(&title, &who, body)
}

/// A run and its outcomes (`None` when it made no plan).
async fn outcomes(
    shared: &Shared,
    who: &Signed,
    id: i64,
) -> Result<(RunRecord, Option<RunOutcomes>), Response> {
    let run = match shared.db.run(id).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err(page::not_found(who, &format!("no run {id}"))),
        Err(e) => return Err(page::unavailable(&e)),
    };
    let (Some(plan_id), Some(served)) = (
        run.plan_id.clone(),
        shared.config.pipelines.get(&run.pipeline).cloned(),
    ) else {
        return Ok((run, None));
    };
    let read =
        super::off_thread(move || crate::serve::reads::outcomes(&served, id, &plan_id)).await;
    match read {
        Ok(text) => Ok((run, serde_json::from_str(&text).ok())),
        Err(e) => Err(page::failed(who, "Run", &e)),
    }
}

/// An outcome's error as (kind, the vendor's message): connectors report
/// `kind: message` (docs/json.md); anything else is `other`.
fn kind_of(error: &str) -> (&str, &str) {
    const KINDS: [&str; 8] = [
        "licence",
        "conflict",
        "not-found",
        "rate-limited",
        "connection",
        "invalid",
        "unauthorized",
        "other",
    ];
    match error.split_once(": ") {
        Some((k, m)) if KINDS.contains(&k) => (k, m),
        _ => ("other", error),
    }
}

/// What an admin can do about errors of a kind.
fn remedy(kind: &str) -> &'static str {
    match kind {
        "licence" => {
            "The target has no free licence or seat: free some or buy more; the next run creates the rest."
        }
        "conflict" => {
            "The target already holds the address or name: link the two accounts by hand (Links), or remove the other one."
        }
        "not-found" => {
            "The target account is gone: the next run plans again from what the target holds."
        }
        "rate-limited" => {
            "The service limited requests: the next run carries on; lower the connector's rate_limit if it recurs."
        }
        "connection" => {
            "The target did not answer: check its URL and the network (Test connection); the next run retries."
        }
        "invalid" => {
            "The target refused the values: fix the account in the source (its message names the field)."
        }
        "unauthorized" => {
            "The credentials were refused or lack a permission: check the connector's secrets and roles (Test connection)."
        }
        _ => "See the vendor's message; `roster explain` shows how the account is planned.",
    }
}

pub async fn show(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let who = or_answer!(signed_in(&shared, &headers).await);
    let (run, outcomes) = match outcomes(&shared, &who, id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let rows = outcomes
        .as_ref()
        .map(|o| o.outcomes.as_slice())
        .unwrap_or_default();
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_kind: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for r in rows {
        *by_status.entry(r.status.as_str()).or_default() += 1;
        if let Some(e) = &r.error {
            let (kind, message) = kind_of(e);
            by_kind.entry(kind).or_default().push((&r.account, message));
        }
    }
    let body = html! {
        (page::tabs(&run.pipeline, ""))
        p { (page::status(&run.status)) " · " (run.trigger) " on " code { (run.node) } " · attempt " (run.attempt) " · started " (page::when(&run.started_at))
            @if let Some(d) = super::overview::duration(&run) { " · took " (d) } }
        @if let Some(m) = &run.message { (notice(if run.status == "failed" { "error" } else { "warning" }, m)) }
        @if run.status == "awaiting-approval" { p { a href={ "/console/runs/" (id) "/plan" } { "Review the plan waiting for approval" } } }
        @if outcomes.is_some() {
            div.cards { @for (status, n) in &by_status { div.card { div.n { (n) } div.muted { (status) } } } }
            p { a.button href={ "/console/runs/" (id) "/outcomes.csv" } download { "Export CSV" } " " a.button href={ "/console/runs/" (id) "/outcomes.json" } download { "Export JSON" } }
            @if !by_kind.is_empty() {
                h2 { "Errors by kind" }
                @for (kind, errors) in &by_kind {
                    details open {
                        summary { strong { (kind) } " · " (errors.len()) " accounts" }
                        p { (remedy(kind)) }
                        table { thead { tr { th scope="col" { "Account" } th scope="col" { "Vendor's message" } } }
                        tbody { @for (account, message) in errors.iter().take(500) { tr { td { (account) } td { (message) } } } } }
                    }
                }
            }
            h2 { "Outcomes (" (rows.len()) ")" }
            table { thead { tr { th scope="col" { "Account" } th scope="col" { "Outcome" } th scope="col" { "Target id" } th scope="col" { "Error" } } }
            tbody { @for r in rows.iter().take(1000) { tr {
                td { a href={ "/console/pipelines/" (enc(&run.pipeline)) "/account?address=" (enc(&r.account)) } { (r.account) } }
                td { (page::status(r.status.as_str())) } td.mono { (r.target_id.as_deref().unwrap_or("")) } td { (r.error.as_deref().unwrap_or("")) }
            } } } }
            @if rows.len() > 1000 { p.muted { "The first 1000 are shown; the exports hold all " (rows.len()) "." } }
        } @else { p.muted { "This run made no plan, so it has no outcomes." } }
    };
    page::page(&format!("Run {id} · {}", run.pipeline), &who, body)
}

pub async fn csv(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    export(shared, headers, id, true).await
}

pub async fn json(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    export(shared, headers, id, false).await
}

async fn export(shared: Shared, headers: HeaderMap, id: i64, csv: bool) -> Response {
    let who = or_answer!(signed_in(&shared, &headers).await);
    let (_, outcomes) = match outcomes(&shared, &who, id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(o) = outcomes else {
        return page::not_found(&who, &format!("run {id} made no plan"));
    };
    let (ctype, ext, text) = match csv {
        true => ("text/csv; charset=utf-8", "csv", to_csv(&o)),
        false => (
            "application/json",
            "json",
            serde_json::to_string_pretty(&o).unwrap_or_default(),
        ),
    };
    let disposition = format!("attachment; filename=\"run-{id}-outcomes.{ext}\"");
    (
        [
            (header::CONTENT_TYPE, ctype.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        text,
    )
        .into_response()
}

fn to_csv(o: &RunOutcomes) -> String {
    let mut w = csv::Writer::from_writer(vec![]);
    let _ = w.write_record(["account", "outcome", "target_id", "error_kind", "error"]);
    for r in &o.outcomes {
        let (kind, message) = r.error.as_deref().map(kind_of).unwrap_or(("", ""));
        let _ = w.write_record([
            &r.account,
            r.status.as_str(),
            r.target_id.as_deref().unwrap_or(""),
            kind,
            message,
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn errors_are_grouped_by_the_kind_the_connector_names() {
        assert_eq!(
            super::kind_of("licence: no seat left"),
            ("licence", "no seat left")
        );
        assert_eq!(
            super::kind_of("rate-limited: slow down"),
            ("rate-limited", "slow down")
        );
        assert_eq!(
            super::kind_of("boom: it broke"),
            ("other", "boom: it broke")
        );
    }
}
