//! The Exchange Online admin API (`/adminapi/beta/{tenant}/…`): the mailbox
//! list, one mailbox by identity, and its `MailboxPermission` entries, in
//! the shapes of the fixtures (which are not tidied: `EmailAddresses` may
//! come with or without `SMTP:` prefixes).

use super::Shared;
use super::auth::{EXCHANGE_SCOPE, authorize};
use super::graph::{base_url, error, hex, unhex};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;

const ROLES: &[&str] = &["Exchange.ManageAsApp"];
const PAGE: usize = 1000;

pub async fn dispatch(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Path((tenant, rest)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&sim, &headers, EXCHANGE_SCOPE, ROLES) {
        return r;
    }
    let t = sim.tenant.read().unwrap_or_else(|p| p.into_inner());
    if !t.knows(&tenant) {
        return error(
            StatusCode::NOT_FOUND,
            "TenantNotFound",
            &format!("Tenant '{tenant}' could not be found."),
        );
    }
    let base = format!("{}/adminapi/beta/{tenant}", base_url(&headers));
    if rest == "Mailbox" {
        let after = q.get("$skiptoken").map(|s| unhex(s));
        let top = q
            .get("$top")
            .and_then(|n| n.parse().ok())
            .unwrap_or(PAGE)
            .clamp(1, PAGE);
        let start = match &after {
            Some(a) => std::ops::Bound::Excluded(a),
            None => std::ops::Bound::Unbounded,
        };
        let page: Vec<(&String, &Value)> = t
            .mailboxes
            .range::<String, _>((start, std::ops::Bound::Unbounded))
            .take(top + 1)
            .collect();
        let mut body = json!({
            "@odata.context": format!("{base}/$metadata#Mailbox"),
            "value": page.iter().take(top).map(|(_, m)| (*m).clone()).collect::<Vec<_>>(),
        });
        if page.len() > top {
            body["@odata.nextLink"] = format!(
                "{base}/Mailbox?$top={top}&$skiptoken={}",
                hex(page[top - 1].0)
            )
            .into();
        }
        return Json(body).into_response();
    }
    let Some(inner) = rest
        .strip_prefix("Mailbox('")
        .and_then(|r| r.split_once("')"))
    else {
        return error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("No route for {rest}"),
        );
    };
    let (identity, tail) = inner;
    let Some(mailbox) = t.mailbox(identity) else {
        return error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!(
                "The operation couldn't be performed because object '{identity}' couldn't be found on '{}'.",
                t.id
            ),
        );
    };
    match tail {
        "" => {
            let mut m = mailbox.clone();
            m["@odata.context"] = format!("{base}/$metadata#Mailbox/$entity").into();
            Json(m).into_response()
        }
        "/MailboxPermission" => {
            let key = mailbox["PrimarySmtpAddress"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase();
            let entries = t.permissions.get(&key).cloned().unwrap_or_default();
            Json(json!({
                "@odata.context": format!("{base}/$metadata#MailboxPermission"),
                "value": entries,
            }))
            .into_response()
        }
        other => error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("No route for Mailbox(…){other}"),
        ),
    }
}
