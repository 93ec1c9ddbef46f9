//! Replays vendors' documented sample answers, for contract tests: a request
//! that matches a route (method, path, and optionally a piece of the query)
//! gets that route's answer as it is written; any other request answers 404
//! and is recorded, so a test can assert that the connector asked only for
//! what the samples cover. Unlike the simulators, nothing here has state or
//! rules: the point is the vendor's exact bytes.

use crate::server::{Running, spawn};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex};

/// One canned answer.
#[derive(Clone, Debug)]
pub struct Route {
    pub method: String,
    /// The path as sent, percent-decoded.
    pub path: String,
    /// A piece the query must contain, if any.
    pub query: Option<String>,
    pub status: u16,
    pub body: String,
}

impl Route {
    pub fn get(path: &str, body: impl Into<String>) -> Route {
        Route {
            method: "GET".into(),
            path: path.into(),
            query: None,
            status: 200,
            body: body.into(),
        }
    }

    pub fn post(path: &str, body: impl Into<String>) -> Route {
        Route {
            method: "POST".into(),
            ..Route::get(path, body)
        }
    }

    /// Only when the query contains `piece`.
    pub fn with_query(mut self, piece: &str) -> Route {
        self.query = Some(piece.into());
        self
    }
}

#[derive(Default)]
pub struct Replay {
    routes: Vec<Route>,
    /// Every request, as `METHOD path?query`.
    pub seen: Mutex<Vec<String>>,
    /// The requests no route answered.
    pub unexpected: Mutex<Vec<String>>,
}

async fn answer(State(replay): State<Arc<Replay>>, request: Request) -> Response {
    let method = request.method().as_str().to_string();
    let path = percent_decode(request.uri().path());
    let query = percent_decode(request.uri().query().unwrap_or(""));
    let line = format!("{method} {path}?{query}");
    replay
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(line.clone());
    let route = replay.routes.iter().find(|r| {
        r.method == method
            && r.path == path
            && r.query.as_ref().is_none_or(|q| query.contains(q.as_str()))
    });
    match route {
        Some(r) => Response::builder()
            .status(r.status)
            .header("content-type", "application/json")
            .body(Body::from(r.body.clone()))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        None => {
            replay
                .unexpected
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(line);
            StatusCode::NOT_FOUND.into_response()
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Serves `routes` on a free loopback port.
pub fn start(routes: Vec<Route>) -> anyhow::Result<(Running, Arc<Replay>)> {
    let replay = Arc::new(Replay {
        routes,
        ..Default::default()
    });
    let router = Router::new().fallback(answer).with_state(replay.clone());
    Ok((spawn(router, 0)?, replay))
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn decodes_escapes_and_keeps_the_rest() {
        assert_eq!(percent_decode("a%20b%2Fc%"), "a b/c%");
        assert_eq!(percent_decode("$select=id"), "$select=id");
    }
}
