//! OAuth2 client-credentials tokens, one per scope, cached until shortly
//! before they expire.

use crate::http::Request;
use crate::{Error, ErrorKind, Result, host};
use serde::Deserialize;
use std::collections::HashMap;

/// Renew this long before the token's stated expiry.
const EARLY_RENEWAL_MS: u64 = 60_000;

#[derive(Clone)]
pub struct ClientCredentials {
    token_url: String,
    client_id: String,
    client_secret: String,
    cache: HashMap<String, (String, u64)>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default = "default_expiry")]
    expires_in: u64,
}

fn default_expiry() -> u64 {
    3600
}

#[derive(Deserialize)]
struct TokenError {
    error: Option<String>,
    error_description: Option<String>,
}

impl ClientCredentials {
    pub fn new(token_url: &str, client_id: &str, client_secret: &str) -> Self {
        ClientCredentials {
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            cache: HashMap::new(),
        }
    }

    /// A valid access token for `scope`, from the cache when it is still good.
    pub fn token(&mut self, scope: &str) -> Result<String> {
        let now = host::now_ms();
        if let Some((token, expires_at)) = self.cache.get(scope)
            && now + EARLY_RENEWAL_MS < *expires_at
        {
            return Ok(token.clone());
        }
        // Asking twice for a token does no harm.
        let answer = Request::post(&self.token_url)
            .idempotent()
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &self.client_id),
                ("client_secret", &self.client_secret),
                ("scope", scope),
            ])
            .send()?;
        if !answer.is_success() {
            return Err(token_error(answer.status(), &answer.text(), scope));
        }
        let token: TokenAnswer = answer.json()?;
        self.cache.insert(
            scope.into(),
            (token.access_token.clone(), now + token.expires_in * 1000),
        );
        Ok(token.access_token)
    }

    /// Forgets a token the service refused, so the next call fetches a new one.
    pub fn forget(&mut self, scope: &str) {
        self.cache.remove(scope);
    }
}

fn token_error(status: u16, body: &str, scope: &str) -> Error {
    let detail = serde_json::from_str::<TokenError>(body)
        .ok()
        .and_then(|e| e.error_description.or(e.error))
        .unwrap_or_else(|| format!("HTTP {status}"));
    let kind = match status {
        400 | 401 | 403 => ErrorKind::Unauthorized,
        _ => ErrorKind::from_status(status),
    };
    Error::new(
        kind,
        format!("token request for scope {scope} refused: {detail}"),
    )
}
