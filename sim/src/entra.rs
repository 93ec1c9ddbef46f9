//! The Entra ID token endpoint's client-credentials checks, shared by the
//! simulators that sit behind Entra (Microsoft 365, Dynamics 365): the same
//! checks in the same order, with the error bodies and AADSTS codes the real
//! endpoint answers. Each simulator then issues its own token.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

#[derive(Deserialize)]
pub struct TokenForm {
    pub grant_type: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scope: Option<String>,
}

/// What the simulator knows of the directory a token is asked from.
pub struct Directory<'a> {
    /// The directory (tenant) id, when the tenant asked for is this one.
    pub id: Option<&'a str>,
    /// The secret of an application registered in it, by client id.
    pub secret_of: &'a dyn Fn(&str) -> Option<&'a str>,
    /// Whether a scope names a resource the simulator serves.
    pub serves: &'a dyn Fn(&str) -> bool,
}

fn aad_error(status: StatusCode, error: &str, description: String) -> Response {
    let code = description
        .split(':')
        .next()
        .unwrap_or("")
        .trim_start_matches("AADSTS")
        .parse::<u64>()
        .unwrap_or(0);
    (
        status,
        Json(json!({
            "error": error,
            "error_description": description,
            "error_codes": [code],
        })),
    )
        .into_response()
}

/// Checks a client-credentials request for `tenant`; the client id and the
/// scope asked for when it passes.
pub fn check(
    tenant: &str,
    directory: &Directory<'_>,
    form: TokenForm,
) -> Result<(String, String), Response> {
    let Some(directory_id) = directory.id else {
        return Err(aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!(
                "AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        ));
    };
    if form.grant_type.as_deref() != Some("client_credentials") {
        return Err(aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type.".into(),
        ));
    }
    let client_id = form.client_id.unwrap_or_default();
    let Some(secret) = (directory.secret_of)(&client_id) else {
        return Err(aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            format!(
                "AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{directory_id}'."
            ),
        ));
    };
    if form.client_secret.as_deref() != Some(secret) {
        return Err(aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            format!(
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        ));
    }
    let scope = form.scope.unwrap_or_default();
    if !(directory.serves)(&scope) {
        return Err(aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            format!(
                "AADSTS1002012: The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    }
    Ok((client_id, scope))
}

/// The token endpoint's answer for an issued token.
pub fn issued(token: &str, lifetime: Duration) -> Response {
    Json(json!({
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "ext_expires_in": lifetime.as_secs(),
        "access_token": token,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(secret: &str, scope: &str) -> TokenForm {
        TokenForm {
            grant_type: Some("client_credentials".into()),
            client_id: Some("app".into()),
            client_secret: Some(secret.into()),
            scope: Some(scope.into()),
        }
    }

    fn answer(tenant: &str, known: bool, form: TokenForm) -> (u16, String) {
        let secret_of = |id: &str| (id == "app").then_some("s3cret");
        let serves = |scope: &str| scope.ends_with("/.default");
        let directory = Directory {
            id: known.then_some("dir-1"),
            secret_of: &secret_of,
            serves: &serves,
        };
        match check(tenant, &directory, form) {
            Ok((client, scope)) => (200, format!("{client} {scope}")),
            Err(r) => (r.status().as_u16(), String::new()),
        }
    }

    #[test]
    fn each_refusal_has_its_status_and_a_grant_names_client_and_scope() {
        let ok = answer("contoso", true, form("s3cret", "https://x/.default"));
        assert_eq!(ok, (200, "app https://x/.default".into()));
        assert_eq!(
            answer("nope", false, form("s3cret", "https://x/.default")).0,
            400
        );
        assert_eq!(
            answer("contoso", true, form("wrong", "https://x/.default")).0,
            401
        );
        assert_eq!(answer("contoso", true, form("s3cret", "https://x/")).0, 400);
        let mut other = form("s3cret", "https://x/.default");
        other.client_id = Some("other".into());
        assert_eq!(answer("contoso", true, other).0, 400);
    }
}
