//! The Exchange Online admin API (`/adminapi/beta/{tenant}/…`), as the
//! vendor's own clients call it (the ExchangeOnlineManagement module and
//! Zivver's CloudSync, `get_exo_mailbox.py`, `get_exo_mailbox_permission.py`):
//! the tenant named by its id (the token's `tid`), the mailbox list with
//! `$select`, one mailbox by identity and its `MailboxPermission` entries,
//! the identity base64-encoded with `?isEncoded=true`. The answers are in the
//! real shapes (`Tenant::mailbox_view`, `Tenant::permissions_view`).
//!
//! Identities resolve as Get-Mailbox's `-Identity` documents them: an SMTP
//! address, the Guid or the UserPrincipalName; an Entra object id does not.
//! *Assumptions* (no public spec of this API): a plain identity with
//! characters beyond letters, digits and `@._-` is refused (400); an unknown
//! identity answers 404 with Exchange's ManagementObjectNotFoundException text.

use super::Shared;
use super::auth::{EXCHANGE_SCOPE, authorize};
use super::graph::{base_url, error, hex, unhex};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
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
    // CloudSync puts the token's `tid` here; a domain is not taken (*assumption*).
    if !t.id.eq_ignore_ascii_case(&tenant) {
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
        let select = q.get("$select").map(String::as_str);
        let mut body = json!({
            "@odata.context": format!("{base}/$metadata#Mailbox"),
            "value": page
                .iter()
                .take(top)
                .map(|(_, m)| selected(t.mailbox_view(m), select))
                .collect::<Vec<_>>(),
        });
        if page.len() > top {
            let mut link = format!(
                "{base}/Mailbox?$top={top}&$skiptoken={}",
                hex(page[top - 1].0)
            );
            if let Some(s) = select {
                link.push_str(&format!("&$select={s}"));
            }
            body["@odata.nextLink"] = link.into();
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
    let identity = match decoded(identity, q.get("isEncoded").map(String::as_str)) {
        Ok(identity) => identity,
        Err(r) => return r,
    };
    let Some(mailbox) = t.mailbox(&identity) else {
        return error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!(
                "Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed because object '{identity}' couldn't be found on '{}'.",
                t.id
            ),
        );
    };
    match tail {
        "" => {
            let mut m = selected(
                t.mailbox_view(mailbox),
                q.get("$select").map(String::as_str),
            );
            m["@odata.context"] = format!("{base}/$metadata#Mailbox/$entity").into();
            Json(m).into_response()
        }
        "/MailboxPermission" => {
            let key = mailbox["PrimarySmtpAddress"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase();
            let entries = t.permissions_view(&key);
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

/// The identity in `Mailbox('…')`: base64 with `isEncoded=true`, as the
/// ExchangeOnlineManagement module and CloudSync send it; else as written,
/// when it has nothing a URL path could mangle (*assumption*).
fn decoded(identity: &str, is_encoded: Option<&str>) -> Result<String, Response> {
    let bad = |why: String| error(StatusCode::BAD_REQUEST, "BadRequest", &why);
    if is_encoded.is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(identity)
            .map_err(|e| bad(format!("The identity is not valid base64: {e}")))?;
        return String::from_utf8(bytes).map_err(|_| bad("The identity is not UTF-8".into()));
    }
    match identity
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "@._-".contains(c))
    {
        true => Ok(identity.to_string()),
        false => Err(bad(format!(
            "The identity '{identity}' must be sent base64-encoded with isEncoded=true"
        ))),
    }
}

/// Only the `$select`ed properties (and the OData annotations), as OData answers.
fn selected(mut m: Value, select: Option<&str>) -> Value {
    let Some(select) = select else {
        return m;
    };
    let keep: Vec<&str> = select.split(',').map(str::trim).collect();
    if let Some(o) = m.as_object_mut() {
        o.retain(|k, _| k.starts_with('@') || keep.iter().any(|s| s.eq_ignore_ascii_case(k)));
    }
    m
}
