//! The Entra token endpoint (client credentials, checked by `crate::entra`)
//! and the bearer check every API route makes: audience by scope, application permissions by role,
//! with the error bodies and AADSTS codes the real services answer.

use super::Shared;
use crate::entra::{self, Directory, TokenForm};
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
pub const EXCHANGE_SCOPE: &str = "https://outlook.office365.com/.default";

/// How long issued tokens live; short enough for tests to see a renewal.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3599);

pub(crate) struct Grant {
    pub scope: String,
    pub roles: Vec<String>,
    pub expires: Instant,
}

#[derive(Default)]
pub struct Tokens {
    issued: Mutex<HashMap<String, Grant>>,
}

pub async fn token(
    State(sim): State<Shared>,
    Path(tenant): Path<String>,
    Form(form): Form<TokenForm>,
) -> Response {
    let t = sim.tenant.read().unwrap_or_else(|p| p.into_inner());
    let secret_of = |client_id: &str| {
        t.apps
            .iter()
            .find(|a| a.client_id == client_id)
            .map(|a| a.client_secret.as_str())
    };
    let serves = |scope: &str| scope == GRAPH_SCOPE || scope == EXCHANGE_SCOPE;
    let directory = Directory {
        id: t.knows(&tenant).then_some(t.id.as_str()),
        secret_of: &secret_of,
        serves: &serves,
    };
    let (client_id, scope) = match entra::check(&tenant, &directory, form) {
        Ok(granted) => granted,
        Err(refused) => return refused,
    };
    let roles = t
        .apps
        .iter()
        .find(|a| a.client_id == client_id)
        .map(|a| a.roles.clone())
        .unwrap_or_default();
    let token = jwt(&t.id, &client_id, &scope, &roles);
    sim.tokens
        .issued
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            token.clone(),
            Grant {
                scope,
                roles,
                expires: Instant::now() + TOKEN_LIFETIME,
            },
        );
    entra::issued(&token, TOKEN_LIFETIME)
}

/// A token shaped as Entra's: a JWT whose claims name the tenant (`tid`),
/// the app, the audience and the roles, which clients read (CloudSync takes
/// `tid` from it for the admin API path). Unsigned here: the simulator
/// recognises its own tokens by the whole string.
fn jwt(tenant_id: &str, client_id: &str, scope: &str, roles: &[String]) -> String {
    use base64::Engine;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let audience = scope.trim_end_matches(".default").trim_end_matches('/');
    let header = b64(json!({"typ": "JWT", "alg": "none"}));
    let claims = b64(json!({
        "aud": audience,
        "iss": format!("https://sts.windows.net/{tenant_id}/"),
        "tid": tenant_id,
        "appid": client_id,
        "roles": roles,
        "nonce": format!("{:032x}", fastrand::u128(..)),
    }));
    format!("{header}.{claims}.")
}

fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// Checks the bearer token for `scope` and one of `roles`.
pub fn authorize(
    sim: &Shared,
    headers: &HeaderMap,
    scope: &str,
    roles: &[&str],
) -> Result<(), Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if token.is_empty() {
        return Err(graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        ));
    }
    let issued = sim.tokens.issued.lock().unwrap_or_else(|p| p.into_inner());
    let Some(grant) = issued.get(token) else {
        return Err(graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "IDX14100: JWT is not well formed.",
        ));
    };
    if grant.expires < Instant::now() {
        return Err(graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Lifetime validation failed, the token is expired.",
        ));
    }
    if grant.scope != scope {
        return Err(graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token validation failure. Invalid audience.",
        ));
    }
    if !roles.iter().any(|r| grant.roles.iter().any(|g| g == r)) {
        return Err(if scope == EXCHANGE_SCOPE {
            graph_error(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "The role assigned to application isn't supported in this scenario.",
            )
        } else {
            graph_error(
                StatusCode::FORBIDDEN,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
        });
    }
    Ok(())
}
