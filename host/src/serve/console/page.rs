//! The console's page shell and the pieces every page uses: the header with
//! its navigation, a pipeline's tabs, a pager, a search box, an error page.
//! Style and script are the binary's own files (no asset from elsewhere);
//! the Content-Security-Policy allows nothing else.

use super::session::Signed;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

pub const CSS: &str = include_str!("console.css");
pub const JS: &str = include_str!("console.js");

/// What a page of the console sends besides its body.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Rows per page of a long list.
pub const PAGE: usize = 100;

/// The `<head>` of every page.
pub fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Roster" }
            link rel="stylesheet" href="/console/assets/console.css";
            script src="/console/assets/console.js" defer {}
        }
    }
}

/// A whole page: header, navigation, `body`.
pub fn page(title: &str, who: &Signed, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console" { "Roster" }
                    nav aria-label="Main" {
                        a href="/console" { "Overview" }
                        a href="/console/runs" { "Runs" }
                    }
                    form.signout method="post" action="/console/logout" {
                        (csrf(who))
                        span.who { (who.name) " · " (who.role.as_str()) }
                        button type="submit" { "Sign out" }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    Html(markup.into_string()).into_response()
}

/// A page with no session (sign-in, refusals).
pub fn bare(title: &str, message: &str) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body {
                    main #main .narrow {
                        h1 { (title) }
                        p.error role="alert" { (message) }
                        p { a href="/console" { "Back to the console" } }
                    }
                }
            }
        }
        .into_string(),
    )
}

/// The hidden field every form carries.
pub fn csrf(who: &Signed) -> Markup {
    html! { input type="hidden" name="csrf" value=(who.csrf); }
}

/// A pipeline's tabs.
pub fn tabs(pipeline: &str, active: &str) -> Markup {
    let tab = |path: &str, label: &str| {
        let href = format!("/console/pipelines/{}/{path}", enc(pipeline));
        html! {
            @if path == active {
                a href=(href) aria-current="page" { (label) }
            } @else {
                a href=(href) { (label) }
            }
        }
    };
    html! {
        nav.tabs aria-label="Pipeline" {
            (tab("plan", "Plan"))
            (tab("links", "Links"))
            (tab("account", "Account"))
            (tab("connectors", "Connectors"))
            a href={ "/console/runs?pipeline=" (enc(pipeline)) } { "Runs" }
        }
    }
}

/// Page `page` (from 0) of `total` rows, as links keeping `query`.
pub fn pager(base: &str, query: &[(&str, &str)], page: usize, total: usize) -> Markup {
    let pages = total.div_ceil(PAGE).max(1);
    let link = |p: usize| {
        let mut q: Vec<String> = query
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        q.push(format!("page={p}"));
        format!("{base}?{}", q.join("&"))
    };
    html! {
        nav.pager aria-label="Pages" {
            @if page > 0 { a href=(link(page - 1)) rel="prev" { "← Previous" } }
            span { "Page " (page.saturating_add(1)) " of " (pages) " · " (total) " rows" }
            @if page.saturating_add(1) < pages { a href=(link(page + 1)) rel="next" { "Next →" } }
        }
    }
}

/// `items[page*PAGE..]`, at most PAGE of them.
pub fn slice<T>(items: &[T], page: usize) -> &[T] {
    let start = page.saturating_mul(PAGE).min(items.len());
    &items[start..(start + PAGE).min(items.len())]
}

/// Percent-encodes a path segment or query value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A message box: `kind` is `error`, `warning` or `ok`.
pub fn notice(kind: &str, message: &str) -> Markup {
    let role = match kind {
        "error" => "alert",
        _ => "status",
    };
    html! { p class=(kind) role=(role) { (message) } }
}

/// An answer for a service database that does not answer.
pub fn unavailable(e: &sqlx::Error) -> Response {
    tracing::error!("service database: {e}");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        bare("Unavailable", "the service database is unavailable"),
    )
        .into_response()
}

/// An error page for a failed library call, masked.
pub fn failed(who: &Signed, title: &str, e: &crate::error::Failure) -> Response {
    let text = crate::runtime::Redactor::global()
        .redact(&e.to_string())
        .into_owned();
    let status = match e {
        crate::error::Failure::Input(_) => StatusCode::BAD_REQUEST,
        crate::error::Failure::Connector(_) => StatusCode::BAD_GATEWAY,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let body = html! {
        (notice("error", &text))
        @if let Some(hint) = e.hint() { p { (hint) } }
    };
    (status, page(title, who, body)).into_response()
}

pub fn not_found(who: &Signed, what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        page("Not found", who, notice("error", what)),
    )
        .into_response()
}

/// The binary's own style sheet and script.
pub fn asset(kind: &str) -> Response {
    let (ctype, text) = match kind {
        "console.css" => ("text/css; charset=utf-8", CSS),
        "console.js" => ("text/javascript; charset=utf-8", JS),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        text,
    )
        .into_response()
}

/// A time the service recorded (RFC 3339, UTC), as people read it.
pub fn when(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// A run's status as a badge.
pub fn status(s: &str) -> Markup {
    let class = match s {
        "applied" | "no-changes" => "ok",
        "failed" | "refused" | "interrupted" | "rejected" => "bad",
        "partial" | "awaiting-approval" | "stale" | "pending" => "warn",
        _ => "neutral",
    };
    html! { span class={ "badge " (class) } { (s) } }
}
