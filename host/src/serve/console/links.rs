//! Links: the seed's "User Synchronization Settings" panel. Linked pairs
//! with how they were made and their options; external users loaded from
//! both systems side by side; auto-link with a preview; link by hand; new
//! options (the target connector's declared ones: Diary, Task, Contact,
//! rank…) for selected links; balance ranks; remove selected. Every change
//! is a draft of this session until **Save** stages them all for the next
//! plan (as the seed's "Save Added Users").

use super::draft::{edit, what};
use super::form::Fields;
use super::page::{self, enc, notice};
use super::session::{Signed, reading, writing};
use crate::links::{LinkEdit, LinkHow, StoredLink};
use crate::model::{Account, Descriptor};
use crate::serve::db::Role;
use crate::serve::node::Shared;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

#[derive(serde::Deserialize, Default)]
pub struct Filter {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: usize,
    #[serde(default)]
    saved: Option<usize>,
}

/// What the state holds about links.
struct Held {
    links: Vec<StoredLink>,
    staged: Vec<LinkEdit>,
}

async fn held(shared: &Shared, name: &str) -> Result<Held, crate::error::Failure> {
    let served = shared.config.pipelines[name].clone();
    super::off_thread(move || {
        let state = served.pipeline.open_state()?;
        let (links, _) = state.links_as_stored()?;
        Ok(Held {
            links,
            staged: state.link_edits()?,
        })
    })
    .await
}

/// The target connector's descriptor, described once per node.
async fn target(shared: &Shared, name: &str) -> Result<Arc<Descriptor>, crate::error::Failure> {
    if let Some(d) = shared.console.target(name) {
        return Ok(d);
    }
    let served = shared.config.pipelines[name].clone();
    let cache = shared.cache_dir.clone();
    let d = super::off_thread(move || crate::serve::reads::describe_target(&served, cache)).await?;
    Ok(shared.console.keep_target(name, d))
}

fn made(how: LinkHow) -> &'static str {
    match how {
        LinkHow::Manual => "manual",
        LinkHow::Primary | LinkHow::Alias => "auto",
        LinkHow::Created => "created",
        LinkHow::Stored => "stored",
    }
}

fn hit(q: &str, texts: &[&str]) -> bool {
    q.is_empty() || texts.iter().any(|t| t.to_lowercase().contains(q))
}

pub async fn show(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(f): Query<Filter>,
) -> Response {
    let (who, _) = or_answer!(reading(&shared, &headers, &name).await);
    let (held, target) = match tokio::try_join!(held(&shared, &name), target(&shared, &name)) {
        Ok(x) => x,
        Err(e) => return page::failed(&who, &format!("Links of {name}"), &e),
    };
    let q = f.q.trim().to_lowercase();
    let hits: Vec<&StoredLink> = held
        .links
        .iter()
        .filter(|l| hit(&q, &[&l.source_email, &l.source_key, &l.target_id]))
        .collect();
    let base = format!("/console/pipelines/{}/links", enc(&name));
    let operator = who.may(Role::Operator);
    let loaded = shared.console.accounts(&name);
    let body = html! {
        (page::tabs(&name, "links"))
        @if let Some(n) = f.saved { (notice("ok", &format!("Saved: {n} link change(s) staged; the next plan shows them, the next apply makes them."))) }
        (drafts(&who, &name, &base))
        @if !held.staged.is_empty() {
            section.staged aria-labelledby="staged-h" {
                h2 #staged-h { "Saved for the next apply (" (held.staged.len()) ")" }
                table { thead { tr { th scope="col" { "Source account" } th scope="col" { "Change" } } }
                tbody { @for e in held.staged.iter().take(200) { tr {
                    td { (e.source) }
                    td { (what(e)) }
                } } } }
            }
        }
        div.toolbar {
            form method="get" action=(base) role="search" {
                label for="q" { "Search" }
                input #q type="search" name="q" value=(f.q) placeholder="address, key or target id";
                button type="submit" { "Search" }
            }
            @if operator {
                form method="post" action={ (base) "/load" } {
                    (page::csrf(&who))
                    button type="submit" { "Load external users" }
                }
                a.button href={ (base) "/auto" } { "Auto link users" }
                form method="post" action={ (base) "/draft" } {
                    (page::csrf(&who))
                    input type="hidden" name="op" value="balance";
                    label for="ranks" { "Ranks" }
                    input #ranks type="number" name="ranks" min="1" max="64" value="2" size="3";
                    button type="submit" { "Balance ranks" }
                }
            }
        }
        @if let Some(loaded) = &loaded { (external(&who, &base, &held, &loaded.value, &loaded.at, &q, &target)) }
        h2 { "Linked users (" (held.links.len()) ")" }
        form method="post" action={ (base) "/draft" } {
            (page::csrf(&who))
            table {
                thead { tr {
                    @if operator { th scope="col" { input type="checkbox" data-select-all="select" aria-label="Select all shown"; } }
                    th scope="col" { "Source account" } th scope="col" { "Target id" } th scope="col" { "How" } th scope="col" { "Options" }
                } }
                tbody { @for l in page::slice(&hits, f.page) { tr {
                    @if operator { td { input type="checkbox" name="select" value=(l.source_email) aria-label={ "Select " (l.source_email) }; } }
                    td { a href={ "/console/pipelines/" (enc(&name)) "/account?address=" (enc(&l.source_email)) } { (l.source_email) } }
                    td.mono { (l.target_id) }
                    td { (made(l.how)) }
                    td { (crate::plan::options_text(&l.options)) }
                } } }
            }
            (page::pager(&base, &[("q", &f.q)], f.page, hits.len()))
            @if operator {
                fieldset.toolbar {
                    legend { "Selected links" }
                    (option_inputs(&target, "sel"))
                    button type="submit" name="op" value="options" { "Set options" }
                    button.danger type="submit" name="op" value="remove" { "Remove selected users" }
                }
            }
        }
    };
    page::page(&format!("Links of {name}"), &who, body)
}

/// The session's unsaved changes, with Save and Discard.
fn drafts(who: &Signed, name: &str, base: &str) -> Markup {
    let Some(d) = who.drafts.of(name) else {
        return html! {};
    };
    html! {
        section.staged aria-labelledby="draft-h" {
            h2 #draft-h { "Not saved yet (" (d.len()) ")" }
            table { thead { tr { th scope="col" { "Source account" } th scope="col" { "Change" } } }
            tbody { @for (source, draft) in d.iter().take(500) { tr { td { (source) } td { (what(draft)) } } } } }
            div.toolbar {
                form method="post" action={ (base) "/save" } {
                    (page::csrf(who))
                    button.primary type="submit" { "Save " (d.len()) " changes" }
                }
                form method="post" action={ (base) "/draft" } {
                    (page::csrf(who))
                    input type="hidden" name="op" value="discard";
                    button type="submit" { "Discard" }
                }
            }
        }
    }
}

/// Inputs for each link option the target declares (`opt.NAME`).
fn option_inputs(target: &Descriptor, id: &str) -> Markup {
    html! {
        @for (option, field) in target.link_options() {
            @let fid = format!("{id}-opt-{option}");
            @let default = field.default_value.as_deref().unwrap_or("");
            label for=(fid) title=(field.description) { (title_case(option)) }
            @if default == "true" || default == "false" {
                select id=(fid) name={ "opt." (option) } {
                    option value="" { "unchanged" }
                    option value="true" { "on" }
                    option value="false" { "off" }
                }
            } @else if !default.is_empty() && default.bytes().all(|b| b.is_ascii_digit()) {
                input id=(fid) type="number" min="1" name={ "opt." (option) } size="4";
            } @else {
                input id=(fid) type="text" name={ "opt." (option) } size="10";
            }
        }
    }
}

fn title_case(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Source and target accounts not linked yet, side by side, to link by hand.
fn external(
    who: &Signed,
    base: &str,
    held: &Held,
    loaded: &super::cache::Loaded,
    at: &str,
    q: &str,
    target: &Descriptor,
) -> Markup {
    let linked_sources: HashSet<&str> = held.links.iter().map(|l| l.source_key.as_str()).collect();
    let linked_targets: HashSet<&str> = held.links.iter().map(|l| l.target_id.as_str()).collect();
    let sources = unlinked(&loaded.source, q, |a| {
        linked_sources.contains(crate::plan::source_key(a).as_str())
    });
    let targets = unlinked(&loaded.target, q, |a| {
        linked_targets.contains(a.id.as_str())
    });
    html! {
        h2 { "External users not linked" }
        p.muted { "Loaded at " (at) " · " (loaded.source.len()) " source and " (loaded.target.len()) " target accounts; the first " (page::PAGE) " unlinked of each that match the search are shown." }
        form method="post" action={ (base) "/draft" } {
            (page::csrf(who))
            div.side {
                (account_table("Source accounts", "source", &sources, false))
                (account_table("Target accounts", "target", &targets, true))
            }
            fieldset.toolbar {
                legend { "Link the chosen pair" }
                (option_inputs(target, "link"))
                button.primary type="submit" name="op" value="link" { "Link user" }
            }
        }
    }
}

/// The first page of `accounts` that are not `linked` and match `q`.
fn unlinked<'a>(
    accounts: &'a [Account],
    q: &str,
    linked: impl Fn(&Account) -> bool,
) -> Vec<&'a Account> {
    accounts
        .iter()
        .filter(|a| !linked(a))
        .filter(|a| {
            hit(
                q,
                &[&a.email, &a.id, a.display_name.as_deref().unwrap_or("")],
            )
        })
        .take(page::PAGE)
        .collect()
}

/// Accounts to choose one of: a source by its address, a target by its id.
fn account_table(title: &str, field: &str, accounts: &[&Account], by_id: bool) -> Markup {
    html! {
        table {
            caption { (title) " (" (accounts.len()) ")" }
            thead { tr { th scope="col" { span.skip { "Choose" } } th scope="col" { "Address" } th scope="col" { "Name" } @if by_id { th scope="col" { "Id" } } } }
            tbody { @for a in accounts { tr {
                @let value = if by_id { a.id.clone() } else { a.email.clone() };
                td { input type="radio" name=(field) value=(value) aria-label={ "Choose " (a.email) }; }
                td { (a.email) } td { (a.display_name.as_deref().unwrap_or("")) }
                @if by_id { td.mono { (a.id) } }
            } } }
        }
    }
}

/// "Load external users": both systems read through their connectors.
pub async fn load(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    fields: Fields,
) -> Response {
    let (who, served) =
        or_answer!(writing(&shared, &headers, &fields, Role::Operator, &name).await);
    let cache = shared.cache_dir.clone();
    match super::off_thread(move || crate::serve::reads::accounts(&served, cache)).await {
        Ok((source, target)) => {
            shared
                .console
                .keep_accounts(&name, super::cache::Loaded { source, target });
            Redirect::to(&format!("/console/pipelines/{}/links", enc(&name))).into_response()
        }
        Err(e) => page::failed(&who, "Load external users", &e),
    }
}

/// "Auto link users": the pairs the plan would link by address, to stage.
pub async fn auto(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let (who, served) = or_answer!(reading(&shared, &headers, &name).await);
    let plan = match super::plan::current_plan(&shared, &name, served).await {
        Ok(p) => p,
        Err(e) => return page::failed(&who, "Auto link users", &e),
    };
    let pairs: Vec<_> = plan
        .value
        .links
        .iter()
        .filter(|l| matches!(l.how, LinkHow::Primary | LinkHow::Alias))
        .filter_map(|l| Some((l, l.target_id.as_deref()?)))
        .collect();
    let base = format!("/console/pipelines/{}/links", enc(&name));
    let body = html! {
        (page::tabs(&name, "links"))
        p { "Pairs with the same primary address (or one's alias) in both systems, from the plan made at " (plan.at) ". Stage the ones to keep, then Save on the Links page." }
        @if pairs.is_empty() { (notice("ok", "No pair to link: every account with a match is linked already.")) }
        @else {
            form method="post" action={ (base) "/draft" } {
                (page::csrf(&who))
                table {
                    thead { tr {
                        th scope="col" { input type="checkbox" data-select-all="pair" checked aria-label="Select all"; }
                        th scope="col" { "Source account" } th scope="col" { "Target id" } th scope="col" { "Matched by" }
                    } }
                    tbody { @for (l, t) in pairs.iter().take(2000) { tr {
                        td { input type="checkbox" name="pair" value={ (l.source_email) "\t" (t) } checked aria-label={ "Link " (l.source_email) }; }
                        td { (l.source_email) } td.mono { (t) } td { (l.how.as_str()) }
                    } } }
                }
                @if who.may(Role::Operator) {
                    button.primary type="submit" name="op" value="auto" { "Stage selected pairs" }
                }
            }
        }
    };
    page::page(&format!("Auto link users: {name}"), &who, body)
}

/// A change to the session's drafts (nothing reaches the state until Save).
pub async fn draft(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    fields: Fields,
) -> Response {
    let (mut who, _) = or_answer!(writing(&shared, &headers, &fields, Role::Operator, &name).await);
    if let Err(e) = drafted(&shared, &name, &mut who, &fields).await {
        let body = html! { (page::tabs(&name, "links")) (notice("error", &e)) p { a href={ "/console/pipelines/" (enc(&name)) "/links" } { "Back to the links" } } };
        return (StatusCode::BAD_REQUEST, page::page("Links", &who, body)).into_response();
    }
    if let Err(e) = who.keep_drafts(&shared).await {
        return page::unavailable(&e);
    }
    Redirect::to(&format!("/console/pipelines/{}/links", enc(&name))).into_response()
}

async fn drafted(
    shared: &Shared,
    name: &str,
    who: &mut Signed,
    fields: &Fields,
) -> Result<(), String> {
    let shown = |e: crate::error::Failure| {
        crate::runtime::Redactor::global()
            .redact(&e.to_string())
            .into_owned()
    };
    let target = target(shared, name).await.map_err(shown)?;
    let options = fields.prefixed("opt.");
    for (k, v) in &options {
        target
            .check_link_option(k, v)
            .map_err(|e| format!("options: {e}"))?;
    }
    let op = fields.get("op").unwrap_or_default();
    match op {
        "discard" => {
            who.drafts.take(name);
        }
        "link" => {
            let (Some(source), Some(target)) = (fields.text("source"), fields.text("target"))
            else {
                return Err("choose a source account and a target account to link".into());
            };
            let source = crate::operation::links::normalize(source).map_err(shown)?;
            who.drafts
                .put(name, edit(source, Some(target.to_string()), options, false));
        }
        "auto" => {
            for pair in fields.all("pair") {
                let Some((source, target)) = pair.split_once('\t') else {
                    continue;
                };
                let source = crate::operation::links::normalize(source).map_err(shown)?;
                who.drafts.put(
                    name,
                    edit(source, Some(target.to_string()), BTreeMap::new(), false),
                );
            }
        }
        "options" | "remove" => {
            let selected = fields.all("select");
            if selected.is_empty() {
                return Err("select one or more links first".into());
            }
            if op == "options" && options.is_empty() {
                return Err("choose an option to set for the selected links".into());
            }
            let held = held(shared, name).await.map_err(shown)?;
            for source in selected {
                let Some(link) = held.links.iter().find(|l| l.source_email == source) else {
                    return Err(format!("{source} is not linked"));
                };
                let source = crate::operation::links::normalize(source).map_err(shown)?;
                let draft = match op {
                    "remove" => edit(source, None, BTreeMap::new(), false),
                    _ => {
                        let mut o = link.overrides.clone();
                        o.extend(options.clone());
                        edit(source, Some(link.target_id.clone()), o, true)
                    }
                };
                who.drafts.put(name, draft);
            }
        }
        "balance" => {
            let ranks: u32 = fields
                .text("ranks")
                .and_then(|r| r.parse().ok())
                .ok_or("ranks: a whole number from 1")?;
            target
                .check_link_option(crate::operation::links::RANK, "1")
                .map_err(|e| format!("balance: {e}"))?;
            let held = held(shared, name).await.map_err(shown)?;
            for e in crate::operation::links::balance(&held.links, ranks).map_err(shown)? {
                who.drafts.put(name, e);
            }
        }
        other => return Err(format!("unknown action `{other}`")),
    }
    Ok(())
}

/// "Save": every draft staged for the next apply, or none.
pub async fn save(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    fields: Fields,
) -> Response {
    let (mut who, served) =
        or_answer!(writing(&shared, &headers, &fields, Role::Operator, &name).await);
    let target = match target(&shared, &name).await {
        Ok(t) => t,
        Err(e) => return page::failed(&who, "Save", &e),
    };
    let now = crate::state::now_ms();
    let edits: Vec<LinkEdit> = who
        .drafts
        .take(&name)
        .into_iter()
        .map(|e| LinkEdit {
            staged_at_ms: now,
            ..e
        })
        .collect();
    let n = edits.len();
    let detail: Vec<String> = edits
        .iter()
        .map(|e| format!("{}: {}", e.source, what(e)))
        .collect();
    let staged = super::off_thread(move || {
        let mut state = served.pipeline.open_state()?;
        crate::operation::links::stage_all(&mut *state, &edits, &target)
    })
    .await;
    if let Err(e) = staged {
        return page::failed(&who, "Save", &e);
    }
    if let Err(e) = shared
        .db
        .audit(&who.actor(), "links.stage", &name, Some(&detail.join("; ")))
        .await
    {
        return page::unavailable(&e);
    }
    if let Err(e) = who.keep_drafts(&shared).await {
        return page::unavailable(&e);
    }
    shared
        .console
        .forget_plan(&super::cache::current_key(&name));
    Redirect::to(&format!(
        "/console/pipelines/{}/links?saved={n}",
        enc(&name)
    ))
    .into_response()
}
