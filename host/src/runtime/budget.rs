//! The service's own request budget, learned from its answers, so a
//! connector slows down before it is refused rather than after: the
//! `RateLimit-Remaining` / `RateLimit-Reset` header fields (the IETF
//! RateLimit draft Zivver's 429 answer points to) and `Retry-After` on a 429
//! or 503. When the budget is spent, every request of the connector waits for
//! the window to reset, instead of each one being refused and retried alone.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    /// Requests the service will still take in this window; none: unknown.
    remaining: Option<u32>,
    /// When the window resets (or a `Retry-After` ends).
    reset_at: Option<Instant>,
    /// Sent and not answered yet: the service has not counted them in what it said.
    in_flight: u32,
}

#[derive(Default)]
pub struct ServerBudget {
    state: Mutex<State>,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

impl ServerBudget {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits while the budget is spent, then takes one request from it.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut s = self.lock();
                let now = Instant::now();
                match (s.remaining, s.reset_at) {
                    (_, Some(at)) if at > now && s.remaining == Some(0) => Some(at - now),
                    (Some(0), _) => {
                        // The window is over: unknown again until an answer says.
                        s.remaining = None;
                        s.reset_at = None;
                        None
                    }
                    _ => None,
                }
            };
            match wait {
                Some(d) => tokio::time::sleep(d).await,
                None => {
                    let mut s = self.lock();
                    s.in_flight += 1;
                    if let Some(r) = s.remaining.as_mut() {
                        *r = r.saturating_sub(1);
                    }
                    return;
                }
            }
        }
    }

    /// Learns from an answer (or from a request that got none).
    pub fn observe(&self, answer: Option<(u16, &[(String, String)])>) {
        let mut s = self.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        let Some((status, headers)) = answer else {
            return;
        };
        let now = Instant::now();
        let secs = |name| {
            header(headers, name)
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_secs)
        };
        if status == 429 || status == 503 {
            if let Some(wait) = secs("retry-after").or_else(|| secs("ratelimit-reset")) {
                s.remaining = Some(0);
                s.reset_at = Some(now + wait);
            }
            return;
        }
        let Some(remaining) =
            header(headers, "ratelimit-remaining").and_then(|v| v.parse::<u32>().ok())
        else {
            return;
        };
        // What the service said does not count the requests still under way.
        s.remaining = Some(remaining.saturating_sub(s.in_flight));
        s.reset_at = secs("ratelimit-reset").map(|d| now + d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn a_spent_budget_holds_every_request_until_the_window_resets() {
        let b = ServerBudget::default();
        b.acquire().await;
        b.observe(Some((
            200,
            &h(&[("RateLimit-Remaining", "0"), ("RateLimit-Reset", "1")]),
        )));
        let before = Instant::now();
        b.acquire().await;
        assert!(before.elapsed() >= Duration::from_secs(1));
        // The window is over: requests flow again.
        let before = Instant::now();
        b.observe(Some((200, &h(&[]))));
        b.acquire().await;
        assert!(before.elapsed() < Duration::from_millis(500));
    }

    #[tokio::test]
    async fn a_429_pauses_everyone_for_its_retry_after() {
        let b = ServerBudget::default();
        b.acquire().await;
        b.observe(Some((429, &h(&[("Retry-After", "1")]))));
        let before = Instant::now();
        b.acquire().await;
        assert!(before.elapsed() >= Duration::from_secs(1));
    }

    #[tokio::test]
    async fn requests_under_way_are_counted_against_what_the_service_said() {
        let b = ServerBudget::default();
        for _ in 0..3 {
            b.acquire().await;
        }
        // Answer to the first: 2 left, but two more are already under way.
        b.observe(Some((
            200,
            &h(&[("RateLimit-Remaining", "2"), ("RateLimit-Reset", "1")]),
        )));
        let before = Instant::now();
        b.acquire().await;
        assert!(
            before.elapsed() >= Duration::from_secs(1),
            "no budget left for a fourth"
        );
    }
}
