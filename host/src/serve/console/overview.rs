//! The overview: every served pipeline with its schedule, last and next
//! run, approvals waiting, paused or not, and a chart of its last 30 runs
//! (changes applied and failed); buttons to run now and pause or resume
//! for operators.

use super::form::Fields;
use super::page::{self, enc};
use super::session::{allowed, signed_in, writing};
use crate::serve::db::{Role, RunRecord};
use crate::serve::node::Shared;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

pub async fn show(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let who = or_answer!(signed_in(&shared, &headers).await);
    let (paused, waiting) = match tokio::try_join!(shared.db.paused(), shared.db.approvals(true)) {
        Ok(x) => x,
        Err(e) => return page::unavailable(&e),
    };
    let now = chrono::Utc::now();
    let mut rows = vec![];
    for (name, served) in &shared.config.pipelines {
        let runs = match shared.db.runs(Some(name), 30).await {
            Ok(r) => r,
            Err(e) => return page::unavailable(&e),
        };
        let approval = waiting
            .iter()
            .find(|a| &a.pipeline == name)
            .map(|a| a.run_id);
        let next = served.schedule.next(now).map(crate::serve::schedule::shown);
        rows.push((name, served, runs, approval, next));
    }
    let body = html! {
        p.muted { (rows.len()) " pipelines · node " code { (shared.config.node) } }
        table {
            thead { tr {
                th scope="col" { "Pipeline" } th scope="col" { "Schedule" } th scope="col" { "Last run" }
                th scope="col" { "Next run" } th scope="col" { "Approval" } th scope="col" { "Last 30 runs" }
                @if who.may(Role::Operator) { th scope="col" { "Actions" } }
            } }
            tbody {
                @for (name, served, runs, approval, next) in &rows {
                    tr {
                        td {
                            a href={ "/console/pipelines/" (enc(name)) "/plan" } { strong { (name) } }
                            br;
                            span.muted { (served.pipeline.source) " → " (served.pipeline.target) }
                            @if paused.contains(*name) { " " span.badge.warn { "paused" } }
                        }
                        td { (served.schedule.to_string()) br; span.muted { "approval: " (served.approval.as_str()) } }
                        td { (last_run(runs.first())) }
                        td { @if paused.contains(*name) { span.muted { "paused" } } @else { (next.as_deref().map(page::when).unwrap_or_else(|| "—".into())) } }
                        td {
                            @if let Some(run) = approval {
                                a href={ "/console/runs/" (run) "/plan" } { "Review plan of run " (run) }
                            } @else { span.muted { "none waiting" } }
                        }
                        td { (chart(name, runs)) }
                        @if who.may(Role::Operator) {
                            td.actions {
                                form method="post" action={ "/console/pipelines/" (enc(name)) "/run" } {
                                    (page::csrf(&who))
                                    button type="submit" aria-label={ "Run " (name) " now" } { "Run now" }
                                }
                                form method="post" action={ "/console/pipelines/" (enc(name)) "/pause" } {
                                    (page::csrf(&who))
                                    @if paused.contains(*name) {
                                        input type="hidden" name="paused" value="false";
                                        button type="submit" aria-label={ "Resume " (name) } { "Resume" }
                                    } @else {
                                        input type="hidden" name="paused" value="true";
                                        button type="submit" aria-label={ "Pause " (name) } { "Pause" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page::page("Overview", &who, body)
}

fn last_run(run: Option<&RunRecord>) -> Markup {
    let Some(r) = run else {
        return html! { span.muted { "never" } };
    };
    html! {
        a href={ "/console/runs/" (r.id) } { "run " (r.id) } " " (page::status(&r.status))
        br;
        span.muted {
            (r.changes.unwrap_or(0)) " changes, " (r.applied.unwrap_or(0)) " applied, " (r.failed.unwrap_or(0)) " failed"
            @if let Some(d) = duration(r) { " · " (d) }
        }
        br;
        span.muted { (page::when(&r.started_at)) }
    }
}

/// How long a run took, as people read it.
pub fn duration(r: &RunRecord) -> Option<String> {
    let start = chrono::DateTime::parse_from_rfc3339(&r.started_at).ok()?;
    let end = chrono::DateTime::parse_from_rfc3339(r.ended_at.as_deref()?).ok()?;
    let ms = (end - start).num_milliseconds().max(0) as u64;
    Some(match ms {
        0..1000 => format!("{ms} ms"),
        _ => humantime::format_duration(std::time::Duration::from_secs(ms / 1000)).to_string(),
    })
}

/// Per run, oldest on the left: changes planned (grey), applied (green)
/// and failed (red).
fn chart(name: &str, runs: &[RunRecord]) -> Markup {
    let (w, h, bar) = (180.0, 36.0, 6.0);
    let n = |v: Option<i32>| v.unwrap_or(0).max(0) as f64;
    let most = runs
        .iter()
        .map(|r| n(r.changes).max(n(r.applied) + n(r.failed)))
        .fold(1.0, f64::max);
    let applied: f64 = runs.iter().map(|r| n(r.applied)).sum();
    let failed: f64 = runs.iter().map(|r| n(r.failed)).sum();
    let label = format!(
        "{name}: last {} runs, {applied} changes applied, {failed} failed",
        runs.len()
    );
    html! {
        svg.chart width=(w) height=(h) viewBox={ "0 0 " (w) " " (h) } role="img" aria-label=(label) {
            title { (label) }
            @for (i, r) in runs.iter().rev().enumerate() {
                @let x = i as f64 * bar;
                @let planned = n(r.changes) / most * h;
                @let a = n(r.applied) / most * h;
                @let f = n(r.failed) / most * h;
                rect.planned x=(x) y=(h - planned) width=(bar - 1.0) height=(planned) {}
                rect.applied x=(x) y=(h - a) width=(bar - 1.0) height=(a) {}
                rect.failed x=(x) y=(h - a - f) width=(bar - 1.0) height=(f) {}
            }
        }
    }
}

pub async fn trigger(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    fields: Fields,
) -> Response {
    let who = or_answer!(allowed(&shared, &headers, &fields, Role::Operator).await);
    match crate::serve::api::queue_run(&shared, &name, &who.actor()).await {
        Ok(_) => Redirect::to(&format!("/console/runs?pipeline={}", enc(&name))).into_response(),
        Err(e) => page::page("Run now", &who, page::notice("error", &e)),
    }
}

pub async fn pause(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    fields: Fields,
) -> Response {
    let (who, _) = or_answer!(writing(&shared, &headers, &fields, Role::Operator, &name).await);
    let paused = fields.get("paused") == Some("true");
    match shared.db.set_paused(&name, paused, &who.actor()).await {
        Ok(()) => Redirect::to("/console").into_response(),
        Err(e) => page::unavailable(&e),
    }
}
