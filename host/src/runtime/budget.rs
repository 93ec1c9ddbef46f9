//! The service's own request budget, learned from its answers, so a
//! connector slows down before it is refused rather than after: the
//! `RateLimit-Remaining` / `RateLimit-Reset` header fields (the IETF
//! RateLimit draft Zivver's 429 answer points to) and `Retry-After` on a 429
//! or 503. When the budget is spent, every request of the connector waits for
//! the window to reset, instead of each one being refused and retried alone.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a request waiting for the first answer of a window looks again.
const PROBE_WAIT: Duration = Duration::from_millis(2);

#[derive(Default)]
struct State {
    /// Requests the service will still take in this window; none: unknown.
    remaining: Option<u32>,
    /// When the window resets (or a `Retry-After` ends).
    reset_at: Option<Instant>,
    /// Sent and not answered yet: the service has not counted them in what it said.
    in_flight: u32,
    /// The service tells its budget: while it is unknown (a new window),
    /// one request goes first and the rest wait for its answer.
    tells: bool,
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

    /// Waits while the budget is spent, then takes one request from it; the
    /// ticket is handed back with the answer (or dropped, if none comes).
    pub async fn acquire(&self) -> Ticket<'_> {
        loop {
            match self.try_take() {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return Ticket(Some(self)),
            }
        }
    }

    /// Takes a request from the budget, or says how long to wait first;
    /// decided under one lock, so two requests never take the same place.
    fn try_take(&self) -> Option<Duration> {
        let mut s = self.lock();
        let now = Instant::now();
        let wait = match (s.remaining, s.reset_at) {
            (Some(0), Some(at)) if at > now => Some(at - now),
            (Some(0), _) => {
                // The window is over: unknown again until an answer says.
                s.remaining = None;
                s.reset_at = None;
                (s.in_flight > 0).then_some(PROBE_WAIT)
            }
            (None, _) if s.tells && s.in_flight > 0 => Some(PROBE_WAIT),
            _ => None,
        };
        if wait.is_none() {
            s.in_flight += 1;
            if let Some(r) = s.remaining.as_mut() {
                *r -= 1;
            }
        }
        wait
    }

    fn landed(&self) {
        let mut s = self.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
    }

    /// Learns from the answer to a request sent with `ticket`.
    pub fn observe(&self, mut ticket: Ticket<'_>, status: u16, headers: &[(String, String)]) {
        ticket.0 = None;
        let mut s = self.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
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
        s.tells = true;
        // What the service said does not count the requests still under way;
        // and answers overtake each other, so within a window an answer may
        // only lower the estimate (the window ends by `reset_at` at the latest).
        let said = remaining.saturating_sub(s.in_flight);
        let window_open = s.reset_at.is_some_and(|at| at > now);
        match (s.remaining, window_open) {
            (Some(known), true) => s.remaining = Some(known.min(said)),
            _ => {
                s.remaining = Some(said);
                s.reset_at = secs("ratelimit-reset").map(|d| now + d);
            }
        }
    }
}

/// One request under way; dropping it without an answer gives its place back.
pub struct Ticket<'a>(Option<&'a ServerBudget>);

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if let Some(b) = self.0.take() {
            b.landed();
        }
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
        let t = b.acquire().await;
        b.observe(
            t,
            200,
            &h(&[("RateLimit-Remaining", "0"), ("RateLimit-Reset", "1")]),
        );
        let before = Instant::now();
        let t = b.acquire().await;
        assert!(before.elapsed() >= Duration::from_secs(1));
        // The window is over: requests flow again.
        b.observe(t, 200, &h(&[]));
        let before = Instant::now();
        let _t = b.acquire().await;
        assert!(before.elapsed() < Duration::from_millis(500));
    }

    #[tokio::test]
    async fn a_429_pauses_everyone_for_its_retry_after() {
        let b = ServerBudget::default();
        let t = b.acquire().await;
        b.observe(t, 429, &h(&[("Retry-After", "1")]));
        let before = Instant::now();
        let _t = b.acquire().await;
        assert!(before.elapsed() >= Duration::from_secs(1));
    }

    #[tokio::test]
    async fn requests_under_way_are_counted_against_what_the_service_said() {
        let b = ServerBudget::default();
        let (t1, t2, t3) = (b.acquire().await, b.acquire().await, b.acquire().await);
        // Answer to the first: 2 left, but two more are already under way.
        b.observe(
            t1,
            200,
            &h(&[("RateLimit-Remaining", "2"), ("RateLimit-Reset", "1")]),
        );
        drop((t2, t3));
        let before = Instant::now();
        let _t = b.acquire().await;
        assert!(
            before.elapsed() >= Duration::from_secs(1),
            "no budget left for a fourth"
        );
    }

    #[tokio::test]
    async fn an_answer_that_was_overtaken_does_not_raise_the_estimate() {
        let b = ServerBudget::default();
        let (t1, t2) = (b.acquire().await, b.acquire().await);
        // The second request's answer (none left) comes before the first's (1 left).
        b.observe(
            t2,
            200,
            &h(&[("RateLimit-Remaining", "0"), ("RateLimit-Reset", "1")]),
        );
        b.observe(
            t1,
            200,
            &h(&[("RateLimit-Remaining", "1"), ("RateLimit-Reset", "1")]),
        );
        let before = Instant::now();
        let _t3 = b.acquire().await;
        assert!(
            before.elapsed() >= Duration::from_millis(900),
            "none left, not one"
        );
    }

    #[tokio::test]
    async fn in_a_new_window_one_request_goes_first() {
        let b = ServerBudget::default();
        let t = b.acquire().await;
        b.observe(
            t,
            200,
            &h(&[("RateLimit-Remaining", "5"), ("RateLimit-Reset", "1")]),
        );
        let first = b.acquire().await;
        // Budget known: a second goes at once.
        let second = b.acquire().await;
        drop((first, second));
        {
            let mut s = b.lock();
            s.remaining = None;
            s.in_flight = 1;
        }
        let waiting = tokio::time::timeout(Duration::from_millis(50), b.acquire()).await;
        assert!(waiting.is_err(), "waits for the first answer of the window");
    }
}
