//! Outbound HTTP for connectors. [`OutboundHttp::send`] is the one choke
//! point every request passes: the host must be granted to the connector
//! (deny by default), then the connector's rate limit and concurrency cap
//! apply, then timeouts and retries honouring `Retry-After`. A 429 is always
//! retried (the service refused the request unprocessed); a 5xx, a timeout or
//! a broken connection only for a request that may safely be sent twice
//! ([`retry_safe`]): a POST that may have taken effect goes back to the
//! connector, which re-reads and decides. Redirects are not followed, so a
//! granted host cannot bounce a request to one that is not.

use super::redact::Redactor;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

const MAX_BODY: usize = 256 * 1024 * 1024;

/// Request headers a connector may not set: the destination's virtual host
/// is the URL's (a guest-set `Host` would reach another site behind a
/// shared front, as in Spin's CVE-2024-32980), and framing is the client's.
const HOST_SET_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "proxy-authorization",
    "proxy-connection",
];

/// The request header by which a connector marks a request that is safe to
/// send twice although its method is not idempotent (an OAuth token request,
/// say). The host takes it off before the request leaves.
pub const IDEMPOTENT_HEADER: &str = "x-roster-idempotent";

/// The longest wait a `Retry-After` or `RateLimit-Reset` is taken at its word
/// for; a larger (or absurd) value counts as this, so it never overflows a clock.
pub const MAX_TOLD_WAIT: Duration = Duration::from_secs(24 * 3600);

/// A host a connector may reach: `[scheme://]host[:port]`, where host may be
/// `*.suffix` and port may be `*`. Without a scheme only https is allowed;
/// without a port, the scheme's default port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern {
    scheme: String,
    host: String,
    port: Option<u16>,
    any_port: bool,
}

impl FromStr for HostPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (scheme, rest) = match s.split_once("://") {
            Some((scheme @ ("http" | "https"), rest)) => (scheme.to_string(), rest),
            Some((other, _)) => {
                return Err(format!("`{s}`: scheme `{other}` is not http or https"));
            }
            None => ("https".to_string(), s),
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(format!(
                "`{s}` is not a host pattern (expected [scheme://]host[:port])"
            ));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h, Some(p)),
            _ => (rest, None),
        };
        let (port, any_port) = match port {
            None => (None, false),
            Some("*") => (None, true),
            Some(p) => (
                Some(
                    p.parse::<u16>()
                        .map_err(|_| format!("`{s}`: `{p}` is not a port"))?,
                ),
                false,
            ),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if host.is_empty() || (host.contains('*') && wildcard_misplaced(&host)) {
            return Err(format!("`{s}`: a wildcard may only be a leading `*.`"));
        }
        Ok(HostPattern {
            scheme,
            host,
            port,
            any_port,
        })
    }
}

/// A wildcard is allowed only as one leading `*.` label.
fn wildcard_misplaced(host: &str) -> bool {
    match host.strip_prefix("*.") {
        Some(rest) => rest.contains('*'),
        None => true,
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match (self.any_port, self.port) {
            (true, _) => write!(f, ":*"),
            (false, Some(p)) => write!(f, ":{p}"),
            _ => Ok(()),
        }
    }
}

impl HostPattern {
    pub fn matches(&self, url: &reqwest::Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let host_ok = match self.host.strip_prefix("*.") {
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => host == self.host,
        };
        let port = url.port_or_known_default();
        let port_ok = self.any_port
            || port
                == Some(
                    self.port
                        .unwrap_or(if self.scheme == "https" { 443 } else { 80 }),
                );
        host_ok && port_ok && url.scheme() == self.scheme
    }
}

/// What the pipeline grants a connector on the network.
#[derive(Clone, Debug)]
pub struct HttpGrant {
    pub allowed: Vec<HostPattern>,
    pub timeout: Duration,
    pub retries: u32,
    /// A `Retry-After` longer than this is not waited out: the answer goes
    /// back to the connector.
    pub max_retry_wait: Duration,
    /// At most `requests` per `per`.
    pub rate: Option<(u32, Duration)>,
    pub concurrency: usize,
    /// The `rate` shared with other processes (the nodes of `roster
    /// serve`), on top of this process's own limiter.
    pub shared_rate: Option<SharedRate>,
}

/// A request budget kept outside this process, so that several nodes
/// applying one pipeline stay within one budget between them.
pub trait RateGate: Send + Sync {
    /// Resolves when one more request may go.
    fn ready(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
}

#[derive(Clone)]
pub struct SharedRate(pub Arc<dyn RateGate>);

impl std::fmt::Debug for SharedRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedRate")
    }
}

impl Default for HttpGrant {
    fn default() -> Self {
        HttpGrant {
            allowed: vec![],
            timeout: Duration::from_secs(30),
            retries: 5,
            max_retry_wait: Duration::from_secs(120),
            rate: None,
            concurrency: 8,
            shared_rate: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum HttpFailure {
    Denied(String),
    Timeout(String),
    Connection(String),
    Invalid(String),
}

/// Counters for tests, status and benchmarks.
#[derive(Default, Debug)]
pub struct HttpStats {
    pub requests: AtomicU64,
    pub throttled: AtomicU64,
    pub retries: AtomicU64,
    pub denied: AtomicU64,
}

pub struct OutboundHttp {
    connector: Arc<str>,
    grant: HttpGrant,
    client: reqwest::Client,
    limiter: Option<DefaultDirectRateLimiter>,
    slots: Semaphore,
    budget: super::budget::ServerBudget,
    redactor: Redactor,
    /// The most answer bytes one guest call may have buffered in the host:
    /// the connector's memory grant, since no more can be copied into it.
    answer_limit: usize,
    pub stats: HttpStats,
}

/// Answer bytes one guest call (a send, or a whole batch) still may buffer.
pub struct AnswerBudget(AtomicU64);

impl AnswerBudget {
    /// Takes `n` bytes, or says how many the call may hold in all.
    fn take(&self, n: usize) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(n as u64)
            })
            .is_ok()
    }

    /// Gives back the bytes of an answer that was dropped (retried).
    fn give(&self, n: usize) {
        self.0.fetch_add(n as u64, Ordering::Relaxed);
    }
}

impl OutboundHttp {
    pub fn new(
        connector: Arc<str>,
        grant: HttpGrant,
        client: reqwest::Client,
        redactor: Redactor,
    ) -> Self {
        let limiter = grant.rate.and_then(|(requests, per)| {
            let burst = NonZeroU32::new(requests)?;
            let quota = Quota::with_period(per / requests)?.allow_burst(burst);
            Some(RateLimiter::direct(quota))
        });
        let slots = Semaphore::new(grant.concurrency.clamp(1, Semaphore::MAX_PERMITS));
        OutboundHttp {
            connector,
            grant,
            client,
            limiter,
            slots,
            budget: Default::default(),
            redactor,
            answer_limit: MAX_BODY,
            stats: HttpStats::default(),
        }
    }

    /// Answers to one guest call may hold at most `bytes` (its memory grant).
    pub fn with_answer_limit(mut self, bytes: usize) -> Self {
        self.answer_limit = bytes.min(MAX_BODY);
        self
    }

    /// A fresh budget for the answers of one guest call.
    pub fn answer_budget(&self) -> AnswerBudget {
        AnswerBudget(AtomicU64::new(self.answer_limit as u64))
    }

    pub fn grant(&self) -> &HttpGrant {
        &self.grant
    }

    /// The choke point: is this URL's host granted to the connector?
    pub fn check(&self, url: &str) -> Result<reqwest::Url, HttpFailure> {
        let parsed =
            reqwest::Url::parse(url).map_err(|e| HttpFailure::Invalid(format!("bad URL: {e}")))?;
        if self.grant.allowed.iter().any(|p| p.matches(&parsed)) {
            return Ok(parsed);
        }
        self.stats.denied.fetch_add(1, Ordering::Relaxed);
        let origin = format!(
            "{}://{}{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or(""),
            parsed.port().map(|p| format!(":{p}")).unwrap_or_default()
        );
        let message = format!(
            "connector `{}` is not granted host {origin}",
            self.connector
        );
        tracing::warn!(connector = %self.connector, host = %origin, "outbound request denied");
        Err(HttpFailure::Denied(message))
    }

    /// One request on its own, with the whole answer budget.
    pub async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpFailure> {
        self.send_within(request, &self.answer_budget()).await
    }

    /// One request whose answer counts against `answers` (shared by the
    /// requests of one batch).
    pub async fn send_within(
        &self,
        mut request: HttpRequest,
        answers: &AnswerBudget,
    ) -> Result<HttpResponse, HttpFailure> {
        let url = self.check(&request.url)?;
        request
            .headers
            .retain(|(n, _)| !HOST_SET_HEADERS.iter().any(|h| n.eq_ignore_ascii_case(h)));
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| HttpFailure::Invalid(format!("bad method `{}`", request.method)))?;
        let safe = retry_safe(&method, &mut request.headers);
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| HttpFailure::Connection("shutting down".into()))?;
        let mut attempt = 0u32;
        loop {
            if let Some(limiter) = &self.limiter {
                limiter.until_ready().await;
            }
            if let Some(shared) = &self.grant.shared_rate {
                shared.0.ready().await;
            }
            let ticket = match self.budget.acquire_within(self.grant.max_retry_wait).await {
                Ok(ticket) => ticket,
                Err(wait) => return Ok(spent(wait)),
            };
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            // Exported by `roster serve` (a no-op without a metrics recorder).
            metrics::counter!("roster_target_requests_total", "connector" => self.connector.to_string())
                .increment(1);
            let outcome = self.send_once(&method, &url, &request, answers).await;
            if let Ok(r) = &outcome {
                self.budget.observe(ticket, r.status, &r.headers);
            }
            let wait = match &outcome {
                Ok(r) if r.status == 429 || r.status == 503 && safe => {
                    self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("roster_target_throttled_total", "connector" => self.connector.to_string(), "status" => r.status.to_string())
                        .increment(1);
                    retry_after(&r.headers).unwrap_or_else(|| backoff(attempt))
                }
                // A passing server error on a request safe to repeat (the
                // list GET a write batch starts with) is tried again rather
                // than failing every change that needed it.
                Ok(r) if matches!(r.status, 500 | 502 | 504) && safe => backoff(attempt),
                Err(HttpFailure::Connection(_) | HttpFailure::Timeout(_)) if safe => {
                    backoff(attempt)
                }
                _ => return outcome,
            };
            if attempt >= self.grant.retries || wait > self.grant.max_retry_wait {
                return outcome;
            }
            attempt += 1;
            if let Ok(r) = &outcome {
                answers.give(r.body.len());
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(connector = %self.connector, url = %self.redactor.redact(url.as_str()), attempt, wait_ms = wait.as_millis() as u64, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    async fn send_once(
        &self,
        method: &reqwest::Method,
        url: &reqwest::Url,
        request: &HttpRequest,
        answers: &AnswerBudget,
    ) -> Result<HttpResponse, HttpFailure> {
        let mut builder = self
            .client
            .request(method.clone(), url.clone())
            .timeout(self.grant.timeout);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let mut response = builder.send().await.map_err(|e| self.failure(e))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.failure(e))? {
            if !answers.take(chunk.len()) {
                return Err(HttpFailure::Invalid(format!(
                    "answer too large: the answers to this call would exceed {} MiB, the connector's memory grant (`limits.memory_mb`)",
                    self.answer_limit >> 20
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    fn failure(&self, e: reqwest::Error) -> HttpFailure {
        let text = self.redactor.redact_owned(error_chain(&e));
        if e.is_timeout() {
            HttpFailure::Timeout(format!("no answer within {:?}", self.grant.timeout))
        } else if e.is_builder() {
            HttpFailure::Invalid(text)
        } else {
            HttpFailure::Connection(text)
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// May this request be sent again when its answer (a 503, a timeout, a
/// broken connection) leaves open whether it took effect? Yes for the
/// idempotent methods (RFC 9110 §9.2.2) and for a request the connector
/// marked with [`IDEMPOTENT_HEADER`]; the mark is taken off here.
fn retry_safe(method: &reqwest::Method, headers: &mut Vec<(String, String)>) -> bool {
    let before = headers.len();
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(IDEMPOTENT_HEADER));
    let marked = headers.len() != before;
    marked
        || matches!(
            method.as_str(),
            "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS"
        )
}

/// `Retry-After` in seconds (the form Graph and Zivver send), at most
/// [`MAX_TOLD_WAIT`].
fn retry_after(headers: &[(String, String)]) -> Option<Duration> {
    let value = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("retry-after"))?
        .1
        .trim();
    value
        .parse::<f64>()
        .ok()
        .filter(|s| !s.is_nan() && *s >= 0.0)
        .map(|s| Duration::try_from_secs_f64(s).map_or(MAX_TOLD_WAIT, |d| d.min(MAX_TOLD_WAIT)))
}

/// The answer when the service said its budget is spent for longer than the
/// connector may wait (`max_retry_wait_secs`): a 429 as the service would
/// give, without sending (it would only be refused, and count against the
/// next window), so the connector reports it as rate limited.
fn spent(wait: Duration) -> HttpResponse {
    let secs = wait.as_secs().max(1);
    HttpResponse {
        status: 429,
        headers: vec![("retry-after".into(), secs.to_string())],
        body: format!(
            "not sent by roster: the service said its request budget is spent for another {secs} s, longer than this connector may wait (limits.max_retry_wait_secs)"
        )
        .into_bytes(),
    }
}

/// Exponential backoff with full jitter: 0.5 s, 1 s, 2 s, ... capped at 30 s.
fn backoff(attempt: u32) -> Duration {
    let ceiling = Duration::from_millis(500)
        .saturating_mul(1 << attempt.min(6))
        .min(Duration::from_secs(30));
    ceiling.mul_f64(0.5 + fastrand::f64() * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    #[test]
    fn patterns_match_scheme_host_and_port() {
        let p: HostPattern = "graph.microsoft.com".parse().unwrap();
        assert!(p.matches(&url("https://graph.microsoft.com/v1.0/users")));
        assert!(!p.matches(&url("http://graph.microsoft.com/v1.0/users")));
        assert!(!p.matches(&url("https://graph.microsoft.com:8443/")));
        assert!(!p.matches(&url("https://evil.graph.microsoft.com.example/")));
        let p: HostPattern = "*.zivver.com".parse().unwrap();
        assert!(p.matches(&url("https://app.zivver.com/api")));
        assert!(!p.matches(&url("https://zivver.com.evil.org/")));
        let p: HostPattern = "http://127.0.0.1:8080".parse().unwrap();
        assert!(p.matches(&url("http://127.0.0.1:8080/x")));
        assert!(!p.matches(&url("http://127.0.0.1:8081/x")));
        let p: HostPattern = "http://localhost:*".parse().unwrap();
        assert!(p.matches(&url("http://localhost:1234/")));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["ftp://x", "", "a/b", "*x.com", "a.*.com", "host:99999"] {
            assert!(bad.parse::<HostPattern>().is_err(), "{bad}");
        }
    }

    #[test]
    fn only_requests_safe_to_repeat_are_retried_after_an_open_outcome() {
        let mut plain = vec![("Accept".to_string(), "a/b".to_string())];
        assert!(retry_safe(&reqwest::Method::GET, &mut plain));
        assert!(retry_safe(&reqwest::Method::PUT, &mut plain));
        assert!(!retry_safe(&reqwest::Method::POST, &mut plain));
        assert!(!retry_safe(&reqwest::Method::PATCH, &mut plain));
        let mut marked = vec![
            ("X-Roster-Idempotent".to_string(), "true".to_string()),
            ("Accept".to_string(), "a/b".to_string()),
        ];
        assert!(retry_safe(&reqwest::Method::POST, &mut marked));
        assert_eq!(marked, plain, "the mark never leaves the host");
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(
            retry_after(&[("Retry-After".into(), "3".into())]),
            Some(Duration::from_secs(3))
        );
        assert_eq!(retry_after(&[("x".into(), "3".into())]), None);
        for absurd in ["1e300", "1e20", "18446744073709551615", "inf"] {
            assert_eq!(
                retry_after(&[("Retry-After".into(), absurd.into())]),
                Some(MAX_TOLD_WAIT),
                "{absurd}"
            );
        }
        assert!(backoff(0) <= Duration::from_millis(500));
        assert!(backoff(20) <= Duration::from_secs(30));
    }
}
