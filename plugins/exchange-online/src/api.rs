//! Requests to Microsoft Graph and the Exchange admin API: a token per
//! scope (renewed once when refused), answers decoded with a retry when a
//! body arrives malformed, and errors an admin can act on (which secret,
//! which permission, which role).
//!
//! The admin API is called as the vendor's own clients call it
//! (ExchangeOnlineManagement, Zivver's CloudSync): the tenant in the path is
//! the `tid` of the Exchange token, identities go base64-encoded with
//! `?isEncoded=true`, OData 4.0 headers. See docs/connectors/exchange-online.md.

use crate::model::ErrorBody;
use base64::Engine;
use roster_sdk::http::{Request, Response, encode, send_all};
use roster_sdk::oauth::ClientCredentials;
use roster_sdk::{Error, ErrorKind, Result, host};
use serde::de::DeserializeOwned;

pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
pub const EXCHANGE_SCOPE: &str = "https://outlook.office365.com/.default";

/// Requests sent to the host in one batch (the host bounds the concurrency).
const BATCH: usize = 500;
/// How often a malformed body is asked for again before giving up.
const MALFORMED_RETRIES: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Graph,
    Exchange,
}

impl Service {
    fn scope(self) -> &'static str {
        match self {
            Service::Graph => GRAPH_SCOPE,
            Service::Exchange => EXCHANGE_SCOPE,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Service::Graph => "Microsoft Graph",
            Service::Exchange => "the Exchange admin API",
        }
    }
}

pub struct Api {
    pub tenant: String,
    client_id: String,
    graph: String,
    /// `{admin}/adminapi/beta`; the tenant id follows once a token told it.
    admin: String,
    /// The tenant's id (`tid`) from the Exchange token.
    tenant_id: Option<String>,
    auth: ClientCredentials,
}

impl Api {
    pub fn new(
        tenant: &str,
        client_id: &str,
        secret: &str,
        login: &str,
        graph: &str,
        admin: &str,
    ) -> Api {
        let token_url = format!(
            "{}/{}/oauth2/v2.0/token",
            login.trim_end_matches('/'),
            encode(tenant)
        );
        Api {
            tenant: tenant.into(),
            client_id: client_id.into(),
            graph: format!("{}/v1.0", graph.trim_end_matches('/')),
            admin: format!("{}/adminapi/beta", admin.trim_end_matches('/')),
            tenant_id: None,
            auth: ClientCredentials::new(&token_url, client_id, secret),
        }
    }

    /// `path` under Graph's `/v1.0`.
    pub fn graph_url(&self, path: &str) -> String {
        format!("{}/{}", self.graph, path.trim_start_matches('/'))
    }

    /// `path` under the tenant's admin API root: `adminapi/beta/{tid}`, the
    /// tenant id read from the Exchange token (CloudSync
    /// `get_access_token.py`), whatever `tenant_id` names (a domain, say).
    pub fn admin_url(&mut self, path: &str) -> Result<String> {
        let tenant = match &self.tenant_id {
            Some(t) => t.clone(),
            None => {
                let token = self.token(Service::Exchange)?;
                let tid = claim(&token, "tid").unwrap_or_else(|| {
                    host::warn(
                        "the Exchange token names no tenant (tid); using tenant_id as configured",
                    );
                    self.tenant.clone()
                });
                self.tenant_id = Some(tid.clone());
                tid
            }
        };
        Ok(format!(
            "{}/{}/{}",
            self.admin,
            encode(&tenant),
            path.trim_start_matches('/')
        ))
    }

    /// `Mailbox('…'){tail}` for an identity (an address, a UPN, a Guid),
    /// base64-encoded with `isEncoded=true` as the ExchangeOnlineManagement
    /// module and CloudSync send it: `+`, `/`, `'` or `#` in an address
    /// cannot break the path.
    pub fn mailbox_url(&mut self, identity: &str, tail: &str) -> Result<String> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(identity);
        self.admin_url(&format!("Mailbox('{encoded}'){tail}?isEncoded=true"))
    }

    pub fn token(&mut self, service: Service) -> Result<String> {
        self.auth
            .token(service.scope())
            .map_err(|e| token_error(e, &self.tenant, &self.client_id))
    }

    fn request(&mut self, service: Service, url: &str) -> Result<Request> {
        let token = self.token(service)?;
        Ok(with_headers(Request::get(url).bearer(&token), service))
    }

    /// GET `url`; a refused token is renewed once. Any status is returned.
    pub fn get_raw(&mut self, service: Service, url: &str) -> Result<Response> {
        let response = self.request(service, url)?.send()?;
        if response.status() == 401 {
            self.auth.forget(service.scope());
            return self.request(service, url)?.send();
        }
        Ok(response)
    }

    /// GET `url` as JSON; non-2xx answers become errors that say what to do.
    pub fn get_json<T: DeserializeOwned>(&mut self, service: Service, url: &str) -> Result<T> {
        let mut attempt = 0;
        loop {
            let response = self.get_raw(service, url)?;
            if !response.is_success() {
                return Err(api_error(service, url, &response));
            }
            match serde_json::from_slice(response.bytes()) {
                Ok(v) => return Ok(v),
                Err(e) if attempt < MALFORMED_RETRIES => {
                    attempt += 1;
                    host::warn(&format!(
                        "malformed answer from {} ({e}); asking again",
                        strip_query(url)
                    ));
                }
                Err(e) => {
                    return Err(Error::new(
                        ErrorKind::Connection,
                        format!(
                            "{} sent a malformed answer to GET {}: {e}",
                            service.name(),
                            strip_query(url)
                        ),
                    ));
                }
            }
        }
    }

    /// GETs many URLs concurrently; answers in order, errors per URL.
    pub fn get_many<T: DeserializeOwned>(
        &mut self,
        service: Service,
        urls: &[String],
    ) -> Result<Vec<Result<Option<T>>>> {
        let mut out = Vec::with_capacity(urls.len());
        for chunk in urls.chunks(BATCH) {
            let token = self.token(service)?;
            let requests: Vec<Request> = chunk
                .iter()
                .map(|u| with_headers(Request::get(u.as_str()).bearer(&token), service))
                .collect();
            for (url, answer) in chunk.iter().zip(send_all(&requests)) {
                out.push(self.decode_one(service, url, answer));
            }
        }
        Ok(out)
    }

    /// One answer of a batch: `None` for "not found"; a refused token or a
    /// malformed body is retried on its own.
    fn decode_one<T: DeserializeOwned>(
        &mut self,
        service: Service,
        url: &str,
        answer: Result<Response>,
    ) -> Result<Option<T>> {
        let answer = answer?;
        if not_found(&answer) {
            return Ok(None);
        }
        if answer.is_success()
            && let Ok(v) = serde_json::from_slice(answer.bytes())
        {
            return Ok(Some(v));
        }
        // A 401 (token renewed) or a malformed body: once more, on its own.
        let again = self.get_raw(service, url)?;
        match again.status() {
            _ if not_found(&again) => Ok(None),
            s if (200..300).contains(&s) => self.get_json(service, url).map(Some),
            _ => Err(api_error(service, url, &again)),
        }
    }
}

/// The headers each service is asked with: Graph as its docs show; the
/// admin API as CloudSync asks it (`application/json;odata.metadata=minimal`,
/// OData 4.0, a page size).
fn with_headers(r: Request, service: Service) -> Request {
    match service {
        Service::Graph => r
            .header("Accept", "application/json")
            .header("Prefer", "odata.maxpagesize=999"),
        Service::Exchange => r
            .header("Accept", "application/json;odata.metadata=minimal")
            .header("OData-Version", "4.0")
            .header("OData-MaxVersion", "4.0")
            .header("Prefer", "odata.maxpagesize=1000"),
    }
}

/// "No such object": a 404, or Exchange's own not-found error whatever its
/// status (`ManagementObjectNotFoundException`, "couldn't be found"). Any
/// other failure stays an error.
fn not_found(r: &Response) -> bool {
    if r.status() == 404 {
        return true;
    }
    if r.is_success() {
        return false;
    }
    let text = r.text();
    text.contains("ManagementObjectNotFoundException") || text.contains("couldn't be found")
}

/// A claim of a JWT (an Entra access token), read without checking the
/// signature: the token comes straight from the token endpoint.
pub fn claim(token: &str, name: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims[name].as_str().map(str::to_string)
}

pub fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// What permission or role a refused request needs.
fn remedy(service: Service, url: &str) -> &'static str {
    match service {
        Service::Exchange => {
            "the app needs the Office 365 Exchange Online application permission Exchange.ManageAsApp (with admin consent) and an Exchange admin role (e.g. Exchange Administrator) assigned to its service principal"
        }
        Service::Graph if url.contains("/groups") => {
            "the app needs the Microsoft Graph application permission GroupMember.Read.All (with admin consent)"
        }
        Service::Graph => {
            "the app needs the Microsoft Graph application permission User.Read.All (with admin consent)"
        }
    }
}

pub fn api_error(service: Service, url: &str, response: &Response) -> Error {
    let status = response.status();
    let (code, message) = match serde_json::from_slice::<ErrorBody>(response.bytes()) {
        Ok(b) => (b.error.code, b.error.message),
        Err(_) => (String::new(), response.text().chars().take(300).collect()),
    };
    let what = format!(
        "{} answered {status} {code} to GET {}: {message}",
        service.name(),
        strip_query(url)
    );
    let kind = ErrorKind::from_status(status);
    match status {
        401 | 403 => Error::new(
            ErrorKind::Unauthorized,
            format!("{what} ({})", remedy(service, url)),
        ),
        _ => Error::new(kind, what),
    }
}

/// Turns the token endpoint's AADSTS codes into the field to fix.
fn token_error(e: Error, tenant: &str, client_id: &str) -> Error {
    let hint = if e.message.contains("AADSTS90002") || e.message.contains("AADSTS900023") {
        format!(
            "tenant_id `{tenant}` is not a known tenant: use the directory (tenant) id or a verified domain"
        )
    } else if e.message.contains("AADSTS700016") {
        format!("client_id `{client_id}` is no app registration in tenant `{tenant}`")
    } else if e.message.contains("AADSTS7000215") {
        "client_secret is wrong: use the secret's Value (not its Secret ID), or create a new secret"
            .into()
    } else if e.message.contains("AADSTS7000222") {
        "client_secret has expired: create a new secret".into()
    } else {
        return e;
    };
    Error::new(e.kind, format!("{hint} ({})", e.message))
}
