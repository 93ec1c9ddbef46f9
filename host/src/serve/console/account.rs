//! Account: `explain` for one address (each stage's decision), its link,
//! its last outcomes and error history; and **Test connection** for that
//! user (the Riva Manager's tab), kept as the pipeline's last test.

use super::cache::{Kept, Tested};
use super::form::Fields;
use super::page::{self, enc, notice};
use super::session::{Signed, reading, writing};
use crate::serve::db::Role;
use crate::serve::node::Shared;
use crate::state::{AccountError, JournalRow};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::Value;

#[derive(serde::Deserialize, Default)]
pub struct Ask {
    #[serde(default)]
    address: String,
}

/// What the state says of one account: its link, errors, last outcomes.
struct History {
    link: Option<crate::links::StoredLink>,
    errors: Vec<AccountError>,
    outcomes: Vec<(i64, JournalRow)>,
}

pub async fn show(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(ask): Query<Ask>,
) -> Response {
    let (who, served) = or_answer!(reading(&shared, &headers, &name).await);
    let address = ask.address.trim().to_string();
    let base = format!("/console/pipelines/{}/account", enc(&name));
    let form = html! {
        (page::tabs(&name, "account"))
        form.toolbar method="get" action=(base) role="search" {
            label for="address" { "E-mail address" }
            input #address type="search" name="address" value=(address) size="40" placeholder="primary address or alias" required;
            button type="submit" { "Explain" }
        }
    };
    if address.is_empty() {
        return page::page(&format!("Account · {name}"), &who, form);
    }
    let runs = match shared.db.runs(Some(&name), 10).await {
        Ok(r) => r,
        Err(e) => return page::unavailable(&e),
    };
    let cache = shared.cache_dir.clone();
    let asked = address.clone();
    let read = super::off_thread(move || {
        let text = crate::serve::reads::explain(&served, cache, &asked)?;
        let history = history(&served, &asked, &runs)?;
        Ok::<_, crate::error::Failure>((text, history))
    })
    .await;
    let (text, history) = match read {
        Ok(x) => x,
        Err(e) => return page::failed(&who, &format!("Account {address}"), &e),
    };
    let explained: Value = serde_json::from_str(&text).unwrap_or_default();
    let test = shared
        .console
        .test(&name)
        .filter(|t| t.value.address.as_deref() == Some(address.as_str()));
    let body = html! {
        (form)
        (explanation(&explained))
        h2 { "Link" }
        @match &history.link {
            Some(l) => p { "Linked to " code { (l.target_id) } " (" (l.how.as_str()) ")" @if !l.options.is_empty() { " · " (crate::plan::options_text(&l.options)) } },
            None => p.muted { "Not linked." },
        }
        h2 { "Last outcomes" }
        @if history.outcomes.is_empty() { p.muted { "No run of the last ten changed this account." } }
        @else {
            table { thead { tr { th scope="col" { "Run" } th scope="col" { "Outcome" } th scope="col" { "Target id" } th scope="col" { "Error" } } }
            tbody { @for (run, row) in &history.outcomes { tr {
                td { a href={ "/console/runs/" (run) } { (run) } }
                td { (page::status(row.status.as_str())) }
                td.mono { (row.target_id.as_deref().unwrap_or("")) }
                td { (row.error.as_deref().unwrap_or("")) }
            } } } }
        }
        h2 { "Error history" }
        @if history.errors.is_empty() { p.muted { "No error recorded." } }
        @else {
            table { thead { tr { th scope="col" { "Change" } th scope="col" { "Error" } } }
            tbody { @for e in &history.errors { tr { td { (e.change) } td { (e.message) } } } } }
        }
        h2 { "Test connection" }
        (tested(&who, &base, &address, test.as_deref()))
    };
    page::page(&format!("Account {address}"), &who, body)
}

fn history(
    served: &crate::serve::config::Served,
    address: &str,
    runs: &[crate::serve::db::RunRecord],
) -> Result<History, crate::error::Failure> {
    let state = served.pipeline.open_state()?;
    let link = state
        .links()?
        .into_iter()
        .find(|l| l.source_email.eq_ignore_ascii_case(address));
    let errors = state
        .account_errors()?
        .into_iter()
        .filter(|e| e.account.eq_ignore_ascii_case(address))
        .collect();
    let mut outcomes = vec![];
    for run in runs {
        let Some(plan) = &run.plan_id else { continue };
        outcomes.extend(
            state
                .journal_rows(plan, Some(address))?
                .into_iter()
                .map(|r| (run.id, r)),
        );
    }
    Ok(History {
        link,
        errors,
        outcomes,
    })
}

/// `roster explain --json`, rendered.
fn explanation(e: &Value) -> Markup {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    html! {
        p { strong { (s(&e["outcome"])) } }
        @if let Some(src) = e.get("source") {
            p { "Source account " code { (s(&src["id"])) } " holds it as " (s(&src["holds"])) " (" (s(&src["email"])) ", " (s(&src["kind"])) @if src["enabled"] == Value::Bool(false) { ", disabled" } ")" }
        } @else { p.muted { "No source account holds this address." } }
        @for t in e["target"].as_array().into_iter().flatten() {
            p { "Target account " code { (s(&t["id"])) } " holds it as " (s(&t["holds"])) " (" (s(&t["email"])) ")" }
        }
        table {
            caption { "Each stage's decision" }
            thead { tr { th scope="col" { "Stage" } th scope="col" { "Decision" } } }
            tbody { @for step in e["steps"].as_array().into_iter().flatten() { tr { td { (s(&step["stage"])) } td { (s(&step["decision"])) } } } }
        }
        @for n in e["notes"].as_array().into_iter().flatten() {
            (notice(if n["level"] == "warning" { "warning" } else { "error" }, &s(&n["message"])))
        }
    }
}

fn tested(who: &Signed, base: &str, address: &str, test: Option<&Kept<Tested>>) -> Markup {
    html! {
        @if let Some(t) = test {
            p.muted { "Tested at " (t.at) }
            (results(&t.value))
        }
        @if who.may(Role::Operator) {
            form method="post" action={ (base) "/test" } {
                (page::csrf(who))
                input type="hidden" name="address" value=(address);
                button type="submit" { "Test connection for " (address) }
            }
        }
    }
}

/// Each connector's checks, or its error.
pub fn results(t: &Tested) -> Markup {
    html! {
        table {
            thead { tr { th scope="col" { "Connector" } th scope="col" { "Result" } } }
            tbody { @for (connector, result) in &t.results { tr {
                td { (connector) }
                td { @match result {
                    Ok(checks) => { span.badge.ok { "ok" } ul { @for c in checks { li { (c) } } } },
                    Err(e) => { span.badge.bad { "failed" } " " (e) },
                } }
            } } }
        }
    }
}

pub async fn test(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    fields: Fields,
) -> Response {
    let (who, served) =
        or_answer!(writing(&shared, &headers, &fields, Role::Operator, &name).await);
    let address = fields.text("address").map(str::to_string);
    let cache = shared.cache_dir.clone();
    let asked = address.clone();
    let tested =
        super::off_thread(move || crate::serve::reads::test_connection(&served, cache, asked))
            .await;
    match tested {
        Ok(results) => {
            shared.console.keep_test(
                &name,
                Tested {
                    address: address.clone(),
                    results,
                },
            );
            let to = match &address {
                Some(a) => format!(
                    "/console/pipelines/{}/account?address={}",
                    enc(&name),
                    enc(a)
                ),
                None => format!("/console/pipelines/{}/connectors", enc(&name)),
            };
            Redirect::to(&to).into_response()
        }
        Err(e) => page::failed(&who, "Test connection", &e),
    }
}
