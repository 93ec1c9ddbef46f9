//! SCIM 2.0 (RFC 7644) over the host's HTTP, for connectors to SCIM
//! services (Zivver, the generic `scim` connector): list with
//! startIndex/count paging and `eq` filters, get, create, full replace,
//! PATCH (as `application/scim+json`, which some services insist on) and
//! delete. A refused request becomes an [`Error`] whose message is the
//! service's own `detail`, so vendor texts reach the admin unchanged.

use crate::http::{HttpClient, Request, Response, encode};
use crate::{Error, ErrorKind, Result};
use serde_json::{Value, json};

pub const CONTENT_TYPE: &str = "application/scim+json";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[derive(Clone, Debug)]
pub struct ScimClient {
    http: HttpClient,
}

impl ScimClient {
    /// A client for the service at `base` (e.g. `https://host/scim/v2/`).
    pub fn new(base: &str, bearer: &str) -> Self {
        ScimClient {
            http: HttpClient::new(base)
                .with_header("Authorization", format!("Bearer {bearer}"))
                .with_header("Accept", CONTENT_TYPE),
        }
    }

    pub fn base(&self) -> &str {
        self.http.base()
    }

    fn send(&self, request: Request) -> Result<Response> {
        let response = request.send()?;
        if response.is_success() {
            Ok(response)
        } else {
            Err(error(&response))
        }
    }

    fn with_body(&self, method: &str, path: &str, body: &Value) -> Result<Response> {
        let bytes = serde_json::to_vec(body)?;
        self.send(self.http.request(method, path).body(bytes, CONTENT_TYPE))
    }

    /// Every resource of `resource` (`Users`, `Groups`, …), `count` per page,
    /// optionally filtered (`userName eq "x"`).
    pub fn list_all(&self, resource: &str, filter: Option<&str>, count: u32) -> Result<Vec<Value>> {
        let mut all = Vec::new();
        let mut start = 1usize;
        loop {
            let mut path = format!("{resource}?startIndex={start}&count={count}");
            if let Some(f) = filter {
                path.push_str(&format!("&filter={}", encode(f)));
            }
            let page: Value = self.send(self.http.request("GET", &path))?.json()?;
            let items = page["Resources"].as_array().cloned().unwrap_or_default();
            let total = page["totalResults"].as_u64().unwrap_or(0) as usize;
            let got = items.len();
            all.extend(items);
            start += got;
            if got == 0 || all.len() >= total {
                return Ok(all);
            }
        }
    }

    /// The first resource matching `attribute eq "value"`.
    pub fn find(&self, resource: &str, attribute: &str, value: &str) -> Result<Option<Value>> {
        let filter = format!("{attribute} eq \"{}\"", value.replace('"', "\\\""));
        Ok(self
            .list_all(resource, Some(&filter), 2)?
            .into_iter()
            .next())
    }

    pub fn get(&self, resource: &str, id: &str) -> Result<Value> {
        self.send(
            self.http
                .request("GET", &format!("{resource}/{}", encode(id))),
        )?
        .json()
    }

    pub fn create(&self, resource: &str, body: &Value) -> Result<Value> {
        body_or_null(self.with_body("POST", resource, body)?)
    }

    /// PUT: the resource becomes `body`; what `body` leaves out is erased.
    pub fn replace(&self, resource: &str, id: &str, body: &Value) -> Result<Value> {
        body_or_null(self.with_body("PUT", &format!("{resource}/{}", encode(id)), body)?)
    }

    pub fn patch(&self, resource: &str, id: &str, operations: Vec<Value>) -> Result<Value> {
        let body = json!({"schemas": [PATCH_OP], "Operations": operations});
        body_or_null(self.with_body("PATCH", &format!("{resource}/{}", encode(id)), &body)?)
    }

    pub fn delete(&self, resource: &str, id: &str) -> Result<()> {
        self.send(
            self.http
                .request("DELETE", &format!("{resource}/{}", encode(id))),
        )
        .map(|_| ())
    }

    /// Several writes at once (the host bounds the concurrency): each
    /// `(method, path, body)`, answered in order.
    pub fn send_all(&self, writes: &[(&str, String, Value)]) -> Vec<Result<Value>> {
        let requests: Vec<Request> = writes
            .iter()
            .map(|(method, path, body)| {
                let bytes = serde_json::to_vec(body).unwrap_or_default();
                self.http.request(method, path).body(bytes, CONTENT_TYPE)
            })
            .collect();
        crate::http::send_all(&requests)
            .into_iter()
            .map(|answer| {
                let r = answer?;
                match r.is_success() {
                    true => body_or_null(r),
                    false => Err(error(&r)),
                }
            })
            .collect()
    }

    /// A POST to a vendor route under the same base (e.g. an action on a resource).
    pub fn post(&self, path: &str, body: &Value) -> Result<Value> {
        body_or_null(self.with_body("POST", path, body)?)
    }
}

/// The answer's JSON, or null for an empty answer (204).
fn body_or_null(r: Response) -> Result<Value> {
    if r.bytes().iter().all(u8::is_ascii_whitespace) {
        Ok(Value::Null)
    } else {
        r.json()
    }
}

/// A SCIM error answer as an error: the service's `detail` as the message.
pub fn error(response: &Response) -> Error {
    let status = response.status();
    let body: Value = serde_json::from_slice(response.bytes()).unwrap_or(Value::Null);
    let detail = body["detail"]
        .as_str()
        .or_else(|| body["message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| {
            let text = response.text();
            match text.trim() {
                "" => format!("HTTP {status}"),
                t => format!("HTTP {status}: {}", t.chars().take(300).collect::<String>()),
            }
        });
    let kind = match status {
        400 => ErrorKind::Invalid,
        s => ErrorKind::from_status(s),
    };
    Error::new(kind, detail)
}

/// The strings of a JSON array (missing or other types: empty).
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}
