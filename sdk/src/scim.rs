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
/// SCIM's own type first, plain JSON as well: some services and gateways
/// answer 406 to either alone (Zivver wants `application/scim+json` for a
/// PATCH; others know only `application/json`).
pub const ACCEPT: &str = "application/scim+json, application/json;q=0.9";
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
                .with_header("Accept", ACCEPT),
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
        self.list_each(resource, filter, count, |r| {
            all.push(r);
            Ok(())
        })?;
        Ok(all)
    }

    /// Every resource of `resource`, handed to `each` page by page as it
    /// arrives: a connector that keeps less than the whole resource never
    /// holds all of them parsed at once.
    ///
    /// A service may ignore `startIndex` (and answer everything at once, or
    /// the first page again): a resource seen before is not handed on twice,
    /// and a page of nothing new ends the read, which is an error when fewer
    /// resources came than `totalResults` said. A list answer that is no
    /// list (no object, `Resources` no array, or missing while
    /// `totalResults` is not zero) is an error, never an empty read.
    pub fn list_each(
        &self,
        resource: &str,
        filter: Option<&str>,
        count: u32,
        mut each: impl FnMut(Value) -> Result<()>,
    ) -> Result<()> {
        let mut start = 1usize;
        let mut seen = std::collections::HashSet::new();
        loop {
            let mut path = format!("{resource}?startIndex={start}&count={count}");
            if let Some(f) = filter {
                path.push_str(&format!("&filter={}", encode(f)));
            }
            let page: Value = self.send(self.http.request("GET", &path))?.json()?;
            let (total, items) = list_page(resource, page)?;
            let got = items.len();
            let mut fresh = 0;
            for item in items {
                let id = item["id"].as_str().map(str::to_string);
                if id.is_some_and(|id| !seen.insert(id)) {
                    continue;
                }
                fresh += 1;
                each(item)?;
            }
            start += got;
            if fresh == 0 && got > 0 && seen.len() < total {
                return Err(Error::invalid(format!(
                    "{resource}: the service answered startIndex={} with resources it had sent already, after {} of {total}; paging cannot go on (set a page size above {total})",
                    start - got,
                    seen.len()
                )));
            }
            if got == 0 || fresh == 0 || start > total {
                return Ok(());
            }
        }
    }

    /// How many resources of `resource` the service holds (one small page asked).
    pub fn total(&self, resource: &str) -> Result<u64> {
        let page: Value = self
            .send(
                self.http
                    .request("GET", &format!("{resource}?startIndex=1&count=1")),
            )?
            .json()?;
        Ok(page["totalResults"].as_u64().unwrap_or(0))
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

    /// What the service supports (RFC 7643 §5): PATCH, ETags, bulk, filters.
    /// A service without the endpoint is taken to support neither PATCH nor ETags.
    pub fn capabilities(&self) -> Result<Capabilities> {
        let r = self.http.request("GET", "ServiceProviderConfig").send()?;
        if r.status() == 404 {
            return Ok(Capabilities::default());
        }
        if !r.is_success() {
            return Err(error(&r));
        }
        let c: Value = r.json()?;
        Ok(Capabilities {
            patch: c["patch"]["supported"].as_bool().unwrap_or(false),
            etag: c["etag"]["supported"].as_bool().unwrap_or(false),
        })
    }

    pub fn create(&self, resource: &str, body: &Value) -> Result<Value> {
        body_or_null(self.with_body("POST", resource, body)?)
    }

    /// A create that may be told "maybe": when the answer leaves open
    /// whether it took effect (a 503, a timeout, a broken connection: the
    /// host does not send a POST twice), the resource is looked for by
    /// `attribute eq value` first; found, it is the answer; else the POST is
    /// sent once more.
    pub fn create_once(
        &self,
        resource: &str,
        body: &Value,
        attribute: &str,
        value: &str,
    ) -> Result<Value> {
        match self.create(resource, body) {
            Err(e) if e.kind == ErrorKind::Connection => {
                match self.find(resource, attribute, value)? {
                    Some(found) => {
                        crate::host::info(&format!(
                            "{resource}: the create of {value} was answered without an outcome ({}); it had taken effect",
                            e.message
                        ));
                        Ok(found)
                    }
                    None => self.create(resource, body),
                }
            }
            other => other,
        }
    }

    /// PUT: the resource becomes `body`; what `body` leaves out is erased.
    pub fn replace(&self, resource: &str, id: &str, body: &Value) -> Result<Value> {
        body_or_null(self.with_body("PUT", &format!("{resource}/{}", encode(id)), body)?)
    }

    pub fn patch(&self, resource: &str, id: &str, operations: Vec<Value>) -> Result<Value> {
        let body = patch_body(operations);
        body_or_null(self.with_body("PATCH", &format!("{resource}/{}", encode(id)), &body)?)
    }

    /// A PUT or PATCH (`method`) sent only if the resource is still at
    /// `version` (its ETag); a stale version answers a `Conflict` error.
    pub fn write_if_match(
        &self,
        method: &str,
        resource: &str,
        id: &str,
        body: &Value,
        version: Option<&str>,
    ) -> Result<Value> {
        let bytes = serde_json::to_vec(body)?;
        let mut request = self
            .http
            .request(method, &format!("{resource}/{}", encode(id)))
            .body(bytes, CONTENT_TYPE);
        if let Some(v) = version {
            request = request.header("If-Match", v);
        }
        let response = request.send()?;
        match response.status() {
            412 => Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "{resource}/{id} changed since it was read (ETag {})",
                    version.unwrap_or("-")
                ),
            )),
            _ if response.is_success() => body_or_null(response),
            _ => Err(error(&response)),
        }
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

/// What a SCIM service says it supports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub patch: bool,
    pub etag: bool,
}

/// A list answer's `totalResults` and resources, or why it is no list answer.
fn list_page(resource: &str, mut page: Value) -> Result<(usize, Vec<Value>)> {
    if !page.is_object() {
        return Err(Error::invalid(format!(
            "{resource}: the list answer is no JSON object"
        )));
    }
    let total = page["totalResults"].as_u64().unwrap_or(0) as usize;
    match page["Resources"].take() {
        Value::Array(items) => Ok((total.max(items.len()), items)),
        Value::Null if total == 0 => Ok((0, vec![])),
        Value::Null => Err(Error::invalid(format!(
            "{resource}: the list answer has no Resources although totalResults is {total}"
        ))),
        _ => Err(Error::invalid(format!(
            "{resource}: the list answer's Resources is no array"
        ))),
    }
}

/// A PATCH body's operations, for [`ScimClient::patch`] and
/// [`ScimClient::write_if_match`].
pub fn patch_body(operations: Vec<Value>) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": operations})
}

/// The object at `key` in `body`, created when missing.
pub fn object<'a>(
    body: &'a mut serde_json::Map<String, Value>,
    key: &str,
) -> &'a mut serde_json::Map<String, Value> {
    let slot = body.entry(key).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut().expect("an object")
}

/// Adds `schema` to the body's `schemas` once.
pub fn with_schema(body: &mut serde_json::Map<String, Value>, schema: &str) {
    let schemas = body.entry("schemas").or_insert_with(|| json!([]));
    if let Some(list) = schemas.as_array_mut()
        && !list.iter().any(|s| s == schema)
    {
        list.push(schema.into());
    }
}

/// A resource as read, made the base of a full PUT: server-owned `id` and
/// `meta` left out, so the PUT carries only what the client may set.
pub fn put_base(base: Option<&Value>) -> serde_json::Map<String, Value> {
    let mut body = base.and_then(Value::as_object).cloned().unwrap_or_default();
    body.remove("id");
    body.remove("meta");
    body
}

/// The addresses in `list` other than `primary`.
pub fn without(primary: &str, list: Vec<String>) -> Vec<String> {
    list.into_iter()
        .filter(|a| !a.eq_ignore_ascii_case(primary))
        .collect()
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
        // A vendor's detail is a sentence; a megabyte of it is not kept.
        .map(|d| match d.chars().nth(1000) {
            Some(_) => format!("{}…", d.chars().take(1000).collect::<String>()),
            None => d.to_string(),
        })
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
    // The vendor's words first, then which request drew them.
    let detail = match status {
        401 => format!("the service refused the credentials: {detail}"),
        _ => detail,
    };
    let request = response.request();
    Error::new(kind, format!("{detail} ({request}: HTTP {status})"))
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
