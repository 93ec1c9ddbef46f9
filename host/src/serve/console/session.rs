//! Who is using the console: a browser signs in with an API token (the
//! service's only credential; its role decides what the pages offer) and
//! gets a session cookie (`HttpOnly`, `SameSite=Strict`, `Secure` under
//! TLS). Every form carries the session's CSRF token and every POST is
//! checked here, in one place, before anything else: session, CSRF token,
//! role. The session id is 256 random bits; only its SHA-256 is kept.

use super::draft::Drafts;
use super::form::Fields;
use crate::serve::config::Served;
use crate::serve::db::Role;
use crate::serve::node::Shared;
use crate::serve::token;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use sqlx::Row;

/// The session cookie's name.
pub const COOKIE: &str = "roster_session";
/// The login form's own CSRF cookie (double submit: there is no session yet).
pub const LOGIN_COOKIE: &str = "roster_login";
/// How long a session lasts.
const HOURS: i32 = 12;

/// A signed-in browser.
#[derive(Clone, Debug)]
pub struct Signed {
    /// Who, as the audit log shows it: `token:NAME` or `user:NAME`.
    pub name: String,
    pub role: Role,
    pub csrf: String,
    pub drafts: Drafts,
    id_hash: String,
}

impl Signed {
    pub fn actor(&self) -> String {
        self.name.clone()
    }

    pub fn may(&self, least: Role) -> bool {
        self.role >= least
    }

    /// Keeps the session's drafts (unsaved link changes).
    pub async fn keep_drafts(&self, shared: &Shared) -> sqlx::Result<()> {
        let text = serde_json::to_string(&self.drafts).unwrap_or_else(|_| "{}".into());
        sqlx::query("UPDATE console_sessions SET drafts = $1 WHERE id_hash = $2")
            .bind(text)
            .bind(&self.id_hash)
            .execute(&shared.db.pool)
            .await
            .map(|_| ())
    }
}

/// 256 random bits from the OS, as hex.
pub fn random() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random numbers from the system: {e}"))?;
    Ok(hex::encode(bytes))
}

/// Equal without telling how much of it was (a CSRF token is compared with
/// what a page sent).
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path /console.
pub fn set_cookie(shared: &Shared, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = match shared.config.tls.is_some() {
        true => "; Secure",
        false => "",
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie text is ASCII")
}

/// The signed-in browser, or where to sign in.
pub async fn signed_in(shared: &Shared, headers: &HeaderMap) -> Result<Signed, Response> {
    let to_login = || Redirect::to("/console/login").into_response();
    let Some(id) = cookie(headers, COOKIE) else {
        return Err(to_login());
    };
    let id_hash = token::hash(&id);
    let row = sqlx::query(
        "SELECT coalesce('token:' || t.name, 'user:' || u.name), coalesce(t.role, u.role), s.csrf, s.drafts
         FROM console_sessions s
         LEFT JOIN tokens t ON t.id = s.token_id
         LEFT JOIN console_users u ON u.id = s.user_id
         WHERE s.id_hash = $1 AND s.expires_at > now() AND (t.id IS NOT NULL OR u.id IS NOT NULL)",
    )
    .bind(&id_hash)
    .fetch_optional(&shared.db.pool)
    .await
    .map_err(|e| super::page::unavailable(&e))?;
    let Some(row) = row else {
        return Err(to_login());
    };
    let role: String = row.get(1);
    let drafts: String = row.get(3);
    Ok(Signed {
        name: row.get(0),
        role: Role::parse(&role).ok_or_else(to_login)?,
        csrf: row.get(2),
        drafts: serde_json::from_str(&drafts).unwrap_or_default(),
        id_hash,
    })
}

/// A signed-in reader of pipeline `name`, with the pipeline.
pub async fn reading(
    shared: &Shared,
    headers: &HeaderMap,
    name: &str,
) -> Result<(Signed, Served), Response> {
    let who = signed_in(shared, headers).await?;
    match shared.config.pipelines.get(name) {
        Some(served) => Ok((who, served.clone())),
        None => Err(super::page::not_found(
            &who,
            &format!("no pipeline `{name}`"),
        )),
    }
}

/// A POST on pipeline `name` that passed [`allowed`], with the pipeline.
pub async fn writing(
    shared: &Shared,
    headers: &HeaderMap,
    fields: &Fields,
    least: Role,
    name: &str,
) -> Result<(Signed, Served), Response> {
    let signed = allowed(shared, headers, fields, least).await?;
    match shared.config.pipelines.get(name) {
        Some(served) => Ok((signed, served.clone())),
        None => Err(super::page::not_found(
            &signed,
            &format!("no pipeline `{name}`"),
        )),
    }
}

/// The one check for a POST: a session, the form's CSRF token, the role.
pub async fn allowed(
    shared: &Shared,
    headers: &HeaderMap,
    fields: &Fields,
    least: Role,
) -> Result<Signed, Response> {
    let signed = signed_in(shared, headers).await?;
    let sent = fields.get("csrf").unwrap_or_default();
    if !same(sent, &signed.csrf) {
        return Err(refused(
            "this form carries no valid CSRF token: reload the page and try again",
        ));
    }
    if !signed.may(least) {
        return Err(refused(&format!(
            "`{}` is a {}; this needs {}",
            signed.name,
            signed.role.as_str(),
            least.as_str()
        )));
    }
    Ok(signed)
}

fn refused(why: &str) -> Response {
    (StatusCode::FORBIDDEN, super::page::bare("Refused", why)).into_response()
}

/// Who signs in.
pub enum Credential<'a> {
    Token(&'a str),
    User { name: &'a str, password: &'a str },
}

/// Signs in: a new session's id (`None`: no such token, or no such user
/// with this password), or why there is none.
pub async fn sign_in(
    shared: &Shared,
    credential: Credential<'_>,
) -> Result<Option<String>, String> {
    let db = |e: sqlx::Error| {
        tracing::error!("service database: {e}");
        "the service database is unavailable".to_string()
    };
    let (who, column, id) = match credential {
        Credential::Token(text) => {
            let hash = token::hash(text.trim());
            let Some((name, _)) = shared.db.token(&hash).await.map_err(db)? else {
                return Ok(None);
            };
            let id: Option<i64> = sqlx::query_scalar("SELECT id FROM tokens WHERE hash = $1")
                .bind(&hash)
                .fetch_optional(&shared.db.pool)
                .await
                .map_err(db)?;
            (format!("token:{name}"), "token_id", id)
        }
        Credential::User { name, password } => {
            let found = shared.db.user(name.trim()).await.map_err(db)?;
            // The same work whether or not the user exists: no timing tells.
            let phc = found
                .as_ref()
                .map(|(_, h)| h.clone())
                .unwrap_or_else(|| DUMMY.clone());
            let password = password.to_string();
            let ok = tokio::task::spawn_blocking(move || {
                crate::serve::password::verify(&phc, &password)
            })
            .await
            .unwrap_or(false);
            match (found, ok) {
                (Some((id, _)), true) => (format!("user:{}", name.trim()), "user_id", Some(id)),
                _ => return Ok(None),
            }
        }
    };
    let Some(owner) = id else { return Ok(None) };
    let (session, csrf) = (random()?, random()?);
    new_session(shared, column, owner, &session, &csrf)
        .await
        .map_err(db)?;
    if column == "user_id" {
        let _ = sqlx::query("UPDATE console_users SET last_login_at = now() WHERE id = $1")
            .bind(owner)
            .execute(&shared.db.pool)
            .await;
    }
    shared
        .db
        .audit(&who, "console.login", "console", None)
        .await
        .map_err(db)?;
    Ok(Some(session))
}

/// A hash no password matches, verified when the user is unknown.
static DUMMY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    crate::serve::password::hash("no user has this password").unwrap_or_default()
});

async fn new_session(
    shared: &Shared,
    column: &'static str,
    owner: i64,
    id: &str,
    csrf: &str,
) -> sqlx::Result<()> {
    let mut tx = shared.db.pool.begin().await?;
    sqlx::query("DELETE FROM console_sessions WHERE expires_at < now()")
        .execute(&mut *tx)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO console_sessions (id_hash, {column}, csrf, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(hours => $4))"
    )))
    .bind(token::hash(id))
    .bind(owner)
    .bind(csrf)
    .bind(HOURS)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

pub async fn sign_out(shared: &Shared, headers: &HeaderMap) -> sqlx::Result<()> {
    if let Some(id) = cookie(headers, COOKIE) {
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(token::hash(&id))
            .execute(&shared.db.pool)
            .await?;
    }
    Ok(())
}

/// Seconds a session cookie lives.
pub const MAX_AGE: i64 = HOURS as i64 * 3600;

#[cfg(test)]
mod tests {
    #[test]
    fn csrf_tokens_compare_whole() {
        assert!(super::same("abc", "abc"));
        assert!(!super::same("abc", "abd"));
        assert!(!super::same("abc", "ab"));
        assert!(!super::same("", "a"));
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            "a=1; roster_session=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(super::cookie(&h, "roster_session").as_deref(), Some("xyz"));
        assert_eq!(super::cookie(&h, "c"), None);
    }
}
