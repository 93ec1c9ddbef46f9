//! JSON over the host's HTTP: request builders, status-to-error mapping and a
//! small client with a base URL and default headers.

use crate::host::{self, Header, HttpError, RawRequest, RawResponse};
use crate::{Error, ErrorKind, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The header [`Request::idempotent`] sets; the host takes it off.
pub const IDEMPOTENT_HEADER: &str = "x-roster-idempotent";

#[derive(Clone, Debug)]
pub struct Request {
    raw: RawRequest,
}

impl Request {
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        Request {
            raw: RawRequest {
                method: method.into(),
                url: url.into(),
                headers: vec![],
                body: None,
            },
        }
    }
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }
    pub fn put(url: impl Into<String>) -> Self {
        Self::new("PUT", url)
    }
    pub fn patch(url: impl Into<String>) -> Self {
        Self::new("PATCH", url)
    }
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new("DELETE", url)
    }
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.raw
            .headers
            .retain(|h| !h.name.eq_ignore_ascii_case(name));
        self.raw.headers.push(Header {
            name: name.into(),
            value: value.into(),
        });
        self
    }
    /// Marks a request that is safe to send twice although its method is
    /// not idempotent (a token request, a search by POST): the host may then
    /// retry it after a 503, a timeout or a broken connection, as it does a
    /// GET or a PUT. Unmarked, such a POST or PATCH comes back to the
    /// connector, which re-reads and decides. The mark never leaves the host.
    pub fn idempotent(self) -> Self {
        self.header(IDEMPOTENT_HEADER, "true")
    }
    pub fn bearer(self, token: &str) -> Self {
        self.header("Authorization", format!("Bearer {token}"))
    }
    /// Appends `key=value` to the query string, percent-encoded.
    pub fn query(mut self, key: &str, value: &str) -> Self {
        let sep = if self.raw.url.contains('?') { '&' } else { '?' };
        self.raw.url = format!("{}{sep}{}={}", self.raw.url, encode(key), encode(value));
        self
    }
    pub fn json<T: Serialize + ?Sized>(self, body: &T) -> Result<Self> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Error::invalid(format!("cannot encode JSON: {e}")))?;
        Ok(self.body(bytes, "application/json"))
    }
    /// An `application/x-www-form-urlencoded` body.
    pub fn form(self, fields: &[(&str, &str)]) -> Self {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        self.body(
            body.join("&").into_bytes(),
            "application/x-www-form-urlencoded",
        )
    }
    pub fn body(mut self, bytes: Vec<u8>, content_type: &str) -> Self {
        self.raw.body = Some(bytes);
        self.header("Content-Type", content_type)
    }
    pub fn url(&self) -> &str {
        &self.raw.url
    }
    pub fn method(&self) -> &str {
        &self.raw.method
    }

    /// Sends the request through the host.
    pub fn send(&self) -> Result<Response> {
        host::send(&self.raw)
            .map(|raw| Response::to(&self.raw, raw))
            .map_err(|e| http_error(&self.raw, e))
    }
}

/// Sends requests concurrently (the host bounds the concurrency); answers in order.
pub fn send_all(requests: &[Request]) -> Vec<Result<Response>> {
    let raw: Vec<RawRequest> = requests.iter().map(|r| r.raw.clone()).collect();
    host::send_batch(&raw)
        .into_iter()
        .zip(requests)
        .map(|(result, request)| {
            result
                .map(|raw| Response::to(&request.raw, raw))
                .map_err(|e| http_error(&request.raw, e))
        })
        .collect()
}

/// "GET https://host/path": the request as an error names it (no query,
/// which may carry a filter with an address or a token).
fn what(request: &RawRequest) -> String {
    format!("{} {}", request.method, strip_query(&request.url))
}

fn http_error(request: &RawRequest, e: HttpError) -> Error {
    let what = what(request);
    match e {
        HttpError::Denied(m) => Error::new(ErrorKind::Unauthorized, format!("{what}: {m}")),
        HttpError::Timeout(m) | HttpError::Connection(m) => {
            Error::connection(format!("{what}: {m}"))
        }
        HttpError::Invalid(m) => Error::invalid(format!("{what}: {m}")),
    }
}

fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

#[derive(Clone, Debug)]
pub struct Response {
    raw: RawResponse,
    /// The request this answers, as errors name it: "GET https://host/path".
    request: String,
}

impl Response {
    fn to(request: &RawRequest, raw: RawResponse) -> Self {
        Response {
            raw,
            request: what(request),
        }
    }

    /// The request this answers: method and URL without its query.
    pub fn request(&self) -> &str {
        &self.request
    }

    pub fn status(&self) -> u16 {
        self.raw.status
    }
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.raw.status)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.raw
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }
    pub fn bytes(&self) -> &[u8] {
        &self.raw.body
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw.body).into_owned()
    }
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.raw.body).map_err(|e| {
            Error::invalid(format!(
                "{}: malformed JSON in the answer: {e}",
                self.request
            ))
        })
    }
    /// Turns a non-2xx answer into an error of the matching kind, carrying
    /// the body (the vendor's message) as text.
    pub fn error_for_status(self) -> Result<Self> {
        if self.is_success() {
            return Ok(self);
        }
        let body = self.text();
        let body = body.trim();
        let message = if body.is_empty() {
            format!("{}: HTTP {}", self.request, self.status())
        } else {
            format!("{}: HTTP {}: {body}", self.request, self.status())
        };
        Err(Error::new(ErrorKind::from_status(self.status()), message))
    }
}

/// A client with a base URL and headers sent with every request.
#[derive(Clone, Debug)]
pub struct HttpClient {
    base: String,
    headers: Vec<(String, String)>,
}

impl HttpClient {
    pub fn new(base: &str) -> Self {
        HttpClient {
            base: base.trim_end_matches('/').to_string(),
            headers: vec![],
        }
    }
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.set_header(name, value);
        self
    }
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.into(), value.into()));
    }
    pub fn base(&self) -> &str {
        &self.base
    }
    /// A full URL for `path`; an absolute URL (a next link) is kept as it is.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}/{}", self.base, path.trim_start_matches('/'))
        }
    }
    pub fn request(&self, method: &str, path: &str) -> Request {
        self.headers
            .iter()
            .fold(Request::new(method, self.url(path)), |r, (n, v)| {
                r.header(n, v.clone())
            })
    }
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.request("GET", path)
            .header("Accept", "application/json")
            .send()?
            .error_for_status()?
            .json()
    }
}

/// Percent-encodes a query component (RFC 3986 unreserved characters kept).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_components_are_encoded() {
        let r = Request::get("http://x/Users").query("filter", "userName eq \"a@b.c\"");
        assert_eq!(
            r.url(),
            "http://x/Users?filter=userName%20eq%20%22a%40b.c%22"
        );
        let r = r.query("count", "10");
        assert!(r.url().ends_with("&count=10"));
    }

    #[test]
    fn absolute_next_links_are_kept() {
        let c = HttpClient::new("http://h/v1.0/");
        assert_eq!(c.url("users"), "http://h/v1.0/users");
        assert_eq!(c.url("https://g/next?x=1"), "https://g/next?x=1");
    }
}
