//! Connectors: each connector's component, contract version, declared and
//! granted hosts (a declared host the pipeline does not grant, or a grant
//! the plugin never declared, is flagged), memory and time grants, and the
//! pipeline's last connection test.

use super::page::{self, enc, notice};
use super::session::reading;
use crate::serve::db::Role;
use crate::serve::node::Shared;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;
use serde_json::Value;

pub async fn show(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let (who, served) = or_answer!(reading(&shared, &headers, &name).await);
    let cache = shared.cache_dir.clone();
    let read =
        super::off_thread(move || crate::serve::reads::connectors_declaring(&served, cache)).await;
    let (check, declared) = match read {
        Ok(x) => x,
        Err(e) => return page::failed(&who, &format!("Connectors of {name}"), &e),
    };
    let check: Value = serde_json::from_str(&check).unwrap_or_default();
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        v => v.to_string(),
    };
    let test = shared.console.test(&name);
    let body = html! {
        (page::tabs(&name, "connectors"))
        @for c in check["connectors"].as_array().into_iter().flatten() {
            @let cname = s(&c["name"]);
            @let granted: Vec<String> = c["allowed_hosts"].as_array().into_iter().flatten().map(|h| normal(&s(h))).collect();
            @let wants: Vec<String> = declared.get(&cname).into_iter().flatten().map(|h| normal(h)).collect();
            section aria-labelledby={ "c-" (cname) } {
                h2 id={ "c-" (cname) } { (cname) " · " (s(&c["role"])) }
                table {
                    tbody {
                        tr { th scope="row" { "Plugin" } td { (s(&c["plugin"])) " " (s(&c["version"])) } }
                        tr { th scope="row" { "Component" } td.mono { (s(&c["component"])) } }
                        tr { th scope="row" { "Contract" } td { (s(&c["contract"])) } }
                        tr { th scope="row" { "Declared hosts" } td { (wants.join(", ")) } }
                        tr { th scope="row" { "Granted hosts" } td { (granted.join(", ")) } }
                        tr { th scope="row" { "Memory" } td { (s(&c["memory_mb"])) " MB" } }
                        tr { th scope="row" { "Time" } td { "call " (s(&c["call_timeout_secs"])) " s, HTTP " (s(&c["http_timeout_secs"])) " s" } }
                        tr { th scope="row" { "Concurrency" } td { (s(&c["concurrency"])) } }
                        tr { th scope="row" { "Rate limit" } td { (s(&c["rate_limit"])) } }
                        tr { th scope="row" { "Directory" } td { (s(&c["directory"])) @if c["directory_read_only"] == Value::Bool(true) { " (read only)" } } }
                    }
                }
                @for h in wants.iter().filter(|h| !granted.contains(h)) {
                    (notice("warning", &format!("declared but not granted: {h} (the connector cannot reach it)")))
                }
                @for h in granted.iter().filter(|h| !wants.contains(h)) {
                    (notice("warning", &format!("granted but not declared by the plugin: {h}")))
                }
            }
        }
        h2 { "Last connection test" }
        @match &test {
            Some(t) => { p.muted { "Tested at " (t.at) @if let Some(a) = &t.value.address { " with account " (a) } } (super::account::results(&t.value)) },
            None => p.muted { "Not tested since this node started." },
        }
        @if who.may(Role::Operator) {
            form method="post" action={ "/console/pipelines/" (enc(&name)) "/account/test" } {
                (page::csrf(&who))
                button type="submit" { "Test connection" }
            }
        }
    };
    page::page(&format!("Connectors of {name}"), &who, body)
}

/// A host as the sandbox reads it (`https://host` for a bare host), so a
/// declared `graph.microsoft.com` and a granted `https://graph.microsoft.com`
/// are seen to be the same.
fn normal(host: &str) -> String {
    host.parse::<crate::runtime::http::HostPattern>()
        .map(|p| p.to_string())
        .unwrap_or_else(|_| host.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn declared_and_granted_hosts_compare_as_the_sandbox_reads_them() {
        assert_eq!(
            super::normal("graph.microsoft.com"),
            super::normal("https://graph.microsoft.com/")
        );
        assert_ne!(
            super::normal("graph.microsoft.com"),
            super::normal("http://graph.microsoft.com")
        );
        assert_eq!(
            super::normal("http://127.0.0.1:18401"),
            "http://127.0.0.1:18401"
        );
    }
}
