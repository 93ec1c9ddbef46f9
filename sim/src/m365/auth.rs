//! The Entra token endpoint (client credentials) and the bearer check every
//! API route makes: audience by scope, application permissions by role,
//! with the error bodies and AADSTS codes the real services answer.

use super::Shared;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
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

#[derive(Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

fn aad_error(status: StatusCode, error: &str, description: String) -> Response {
    (
        status,
        axum::Json(json!({
            "error": error,
            "error_description": description,
            "error_codes": [description.split(':').next().unwrap_or("").trim_start_matches("AADSTS").parse::<u64>().unwrap_or(0)],
        })),
    )
        .into_response()
}

pub async fn token(
    State(sim): State<Shared>,
    Path(tenant): Path<String>,
    Form(form): Form<TokenForm>,
) -> Response {
    let t = sim.tenant.read().unwrap_or_else(|p| p.into_inner());
    if !t.knows(&tenant) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!(
                "AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    if form.grant_type.as_deref() != Some("client_credentials") {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type.".into(),
        );
    }
    let client_id = form.client_id.unwrap_or_default();
    let Some(app) = t.apps.iter().find(|a| a.client_id == client_id) else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            format!(
                "AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{}'.",
                t.id
            ),
        );
    };
    if form.client_secret.as_deref() != Some(app.client_secret.as_str()) {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            format!(
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        );
    }
    let scope = form.scope.unwrap_or_default();
    if scope != GRAPH_SCOPE && scope != EXCHANGE_SCOPE {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            format!(
                "AADSTS1002012: The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        );
    }
    let token = format!("sim.{:032x}", fastrand::u128(..));
    sim.tokens
        .issued
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            token.clone(),
            Grant {
                scope,
                roles: app.roles.clone(),
                expires: Instant::now() + TOKEN_LIFETIME,
            },
        );
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME.as_secs(),
        "ext_expires_in": TOKEN_LIFETIME.as_secs(),
        "access_token": token,
    }))
    .into_response()
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
