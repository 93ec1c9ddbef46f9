//! The service's own request budget, learned from its answers, so a
//! connector slows down before it is refused rather than after: the
//! `RateLimit-Limit` / `-Remaining` / `-Reset` header fields (the IETF
//! RateLimit draft Zivver's 429 answer points to) and `Retry-After` on a 429
//! or 503. When the budget is spent, every request of the connector waits for
//! the window to reset, instead of each one being refused and retried alone.
//!
//! Two ways to know what is left. When the service tells its limit, the host
//! counts its own requests against it (exact, whatever order the answers
//! come in) and learns from each answer how much of the window was used by
//! someone else. When it only tells what remains, each answer, less the
//! requests sent after it, is an estimate that may only go down within a
//! window (answers overtake each other). Either way a window is over only
//! at `reset_at`, the earliest answer's reset counted from its arrival: never
//! before the service's own window ends.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a request waiting for the first answer of a window looks again.
const PROBE_WAIT: Duration = Duration::from_millis(2);

#[derive(Default)]
struct State {
    /// The whole budget of a window (`RateLimit-Limit`), once the service said it.
    limit: Option<u32>,
    /// Without a told limit: what the service will still take in this
    /// window, as estimated from its answers; none: unknown.
    remaining: Option<u32>,
    /// When the window resets (or a `Retry-After` ends); none: not known yet.
    reset_at: Option<Instant>,
    /// The first request of the window; answers to earlier ones speak of a
    /// window that is over.
    window_from: u64,
    /// Requests from an earlier window still under way when this one began:
    /// they may land in it.
    carried: u32,
    /// Requests of this window the service counted that were not ours.
    others: u32,
    /// Requests sent and not answered yet, by the order they were sent.
    in_flight: BTreeSet<u64>,
    next: u64,
    /// The service tells its budget: while it is unknown (a new window whose
    /// limit was never said), one request goes first and the rest wait.
    tells: bool,
}

impl State {
    /// Requests this window has taken, as the service will count them.
    fn used(&self) -> u32 {
        (self.next - self.window_from) as u32 + self.carried + self.others
    }

    /// What may still be sent in this window; none: unknown.
    fn available(&self) -> Option<u32> {
        match self.limit {
            Some(limit) => Some(limit.saturating_sub(self.used())),
            None => self.remaining,
        }
    }

    /// Sent after request `seq` and not answered: the service may not have
    /// counted them in what it said to `seq`.
    fn sent_after(&self, seq: u64) -> u32 {
        self.in_flight.range(seq + 1..).count() as u32
    }

    /// A window is over: a service that told its limit opens the next one to
    /// everyone at once; otherwise what was left of the old one is at least
    /// left of the new one (unknown if nothing was).
    fn next_window(&mut self) {
        self.reset_at = None;
        self.window_from = self.next;
        self.carried = self.in_flight.len() as u32;
        self.others = 0;
        self.remaining = self.remaining.filter(|&r| r > 0);
    }

    /// Takes a request from the budget, or says how long to wait first.
    fn take(&mut self, now: Instant) -> Result<u64, Duration> {
        if self.reset_at.is_some_and(|at| at <= now) {
            self.next_window();
        }
        match self.available() {
            Some(0) => match self.reset_at {
                Some(at) => return Err(at - now),
                // Spent, and no answer said when it resets: start over.
                None if self.in_flight.is_empty() => {
                    self.next_window();
                    if self.available() == Some(0) {
                        return Err(PROBE_WAIT);
                    }
                }
                None => return Err(PROBE_WAIT),
            },
            None if self.tells && !self.in_flight.is_empty() => return Err(PROBE_WAIT),
            _ => {}
        }
        if let Some(r) = self.remaining.as_mut() {
            *r = r.saturating_sub(1);
        }
        let seq = self.next;
        self.next += 1;
        self.in_flight.insert(seq);
        Ok(seq)
    }

    /// The service refused for a while: nothing more until then.
    fn refused(&mut self, until: Instant) {
        self.remaining = Some(0);
        self.others = self.limit.unwrap_or(0);
        self.reset_at = Some(until);
    }

    /// Learns from an answer to `seq` saying `remaining` (and when the window
    /// resets, counted from now).
    fn told(&mut self, seq: u64, remaining: u32, reset: Option<Duration>, now: Instant) {
        if seq < self.window_from {
            return;
        }
        if let Some(limit) = self.limit {
            // Counted by the service at most: everything this window sent so far.
            let ours = (self.next - self.window_from) as u32 + self.carried;
            let theirs = limit.saturating_sub(remaining).saturating_sub(ours);
            self.others = self.others.max(theirs);
        }
        let said = remaining.saturating_sub(self.sent_after(seq));
        match (self.remaining, self.reset_at.is_some()) {
            (Some(known), true) => self.remaining = Some(known.min(said)),
            _ => {
                self.remaining = Some(said);
                self.reset_at = reset.map(|d| now + d);
            }
        }
    }
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

/// The leading number of a field (`RateLimit-Limit: 500, 500;w=1` is 500).
fn leading_number(value: &str) -> Option<u32> {
    let end = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    value[..end].parse().ok()
}

impl ServerBudget {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits while the budget is spent, then takes one request from it; the
    /// ticket is handed back with the answer (or dropped, if none comes).
    /// A wait longer than `patience` (a window the service says resets in
    /// hours) is not waited out: the error says how long it would be.
    pub async fn acquire_within(&self, patience: Duration) -> Result<Ticket<'_>, Duration> {
        loop {
            // Decided under one lock, so two requests never take the same place.
            let taken = self.lock().take(Instant::now());
            match taken {
                Ok(seq) => {
                    return Ok(Ticket {
                        budget: Some(self),
                        seq,
                    });
                }
                Err(wait) if wait > patience && wait > PROBE_WAIT => return Err(wait),
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    /// Waits as long as the budget says.
    #[cfg(test)]
    pub async fn acquire(&self) -> Ticket<'_> {
        match self.acquire_within(Duration::MAX).await {
            Ok(ticket) => ticket,
            Err(_) => unreachable!("no wait is longer than Duration::MAX"),
        }
    }

    fn landed(&self, seq: u64) {
        self.lock().in_flight.remove(&seq);
    }

    /// Learns from the answer to a request sent with `ticket`.
    pub fn observe(&self, mut ticket: Ticket<'_>, status: u16, headers: &[(String, String)]) {
        ticket.budget = None;
        let mut s = self.lock();
        s.in_flight.remove(&ticket.seq);
        let now = Instant::now();
        // An absurd value is taken as the longest wait, never past the clock.
        let secs = |name| {
            header(headers, name)
                .and_then(|v| v.parse::<u64>().ok())
                .map(|s| Duration::from_secs(s).min(super::http::MAX_TOLD_WAIT))
        };
        if status == 429 || status == 503 {
            if let Some(wait) = secs("retry-after").or_else(|| secs("ratelimit-reset")) {
                s.refused(now + wait);
            }
            return;
        }
        let Some(remaining) = header(headers, "ratelimit-remaining").and_then(leading_number)
        else {
            return;
        };
        s.tells = true;
        if let Some(limit) = header(headers, "ratelimit-limit").and_then(leading_number) {
            s.limit = Some(limit);
        }
        s.told(ticket.seq, remaining, secs("ratelimit-reset"), now);
    }
}

/// One request under way; dropping it without an answer gives its place back.
pub struct Ticket<'a> {
    budget: Option<&'a ServerBudget>,
    seq: u64,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if let Some(b) = self.budget.take() {
            b.landed(self.seq);
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
    async fn a_wait_longer_than_the_connector_may_wait_is_refused_at_once() {
        let b = ServerBudget::default();
        let t = b.acquire().await;
        b.observe(
            t,
            429,
            &h(&[
                ("RateLimit-Reset", "18446744073709551615"),
                ("RateLimit-Remaining", "0"),
            ]),
        );
        let before = Instant::now();
        let Err(wait) = b.acquire_within(Duration::from_secs(120)).await else {
            panic!("waited");
        };
        assert!(wait > Duration::from_secs(3600), "{wait:?}");
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
    async fn in_a_new_window_of_unknown_size_one_request_goes_first() {
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
        let probe = {
            let mut s = b.lock();
            s.remaining = None;
            let seq = s.next;
            s.next += 1;
            s.in_flight.insert(seq);
            seq
        };
        let waiting = tokio::time::timeout(Duration::from_millis(50), b.acquire()).await;
        assert!(waiting.is_err(), "waits for the first answer of the window");
        b.landed(probe);
        let going = tokio::time::timeout(Duration::from_millis(50), b.acquire()).await;
        assert!(going.is_ok(), "goes once the probe is answered");
    }

    #[tokio::test]
    async fn a_told_limit_opens_the_next_window_to_all_at_once() {
        let b = ServerBudget::default();
        let t = b.acquire().await;
        b.observe(
            t,
            200,
            &h(&[
                ("RateLimit-Limit", "3, 3;w=1"),
                ("RateLimit-Remaining", "0"),
                ("RateLimit-Reset", "1"),
            ]),
        );
        let before = Instant::now();
        let (t1, t2, t3) = (b.acquire().await, b.acquire().await, b.acquire().await);
        let waited = before.elapsed();
        assert!(waited >= Duration::from_secs(1), "{waited:?}");
        assert!(
            waited < Duration::from_millis(1500),
            "no probe first: {waited:?}"
        );
        let fourth = tokio::time::timeout(Duration::from_millis(100), b.acquire()).await;
        assert!(fourth.is_err(), "three is the whole window");
        drop((t1, t2, t3));
    }

    #[tokio::test]
    async fn requests_sent_before_the_answered_one_were_counted_by_the_service() {
        let b = ServerBudget::default();
        let (t1, t2) = (b.acquire().await, b.acquire().await);
        // The answer to the second (sent after the first) says 1 left: the
        // first reached the service before it and is in that count.
        b.observe(
            t2,
            200,
            &h(&[("RateLimit-Remaining", "1"), ("RateLimit-Reset", "1")]),
        );
        let third = tokio::time::timeout(Duration::from_millis(100), b.acquire()).await;
        assert!(third.is_ok(), "one left");
        let fourth = tokio::time::timeout(Duration::from_millis(100), b.acquire()).await;
        assert!(fourth.is_err(), "none left");
        drop((t1, third, fourth));
    }

    #[tokio::test]
    async fn an_answer_from_a_window_that_is_over_does_not_hold_the_new_one() {
        let b = ServerBudget::default();
        let t = b.acquire().await;
        b.observe(
            t,
            200,
            &h(&[
                ("RateLimit-Limit", "10"),
                ("RateLimit-Remaining", "9"),
                ("RateLimit-Reset", "1"),
            ]),
        );
        let late = b.acquire().await;
        tokio::time::sleep(Duration::from_millis(1050)).await;
        let fresh = b.acquire().await;
        // The late request was judged in the old window, at its end.
        b.observe(
            late,
            200,
            &h(&[("RateLimit-Remaining", "0"), ("RateLimit-Reset", "1")]),
        );
        let next = tokio::time::timeout(Duration::from_millis(100), b.acquire()).await;
        assert!(next.is_ok(), "the new window is not spent");
        drop((fresh, next));
    }

    #[tokio::test]
    async fn with_a_told_limit_requests_of_someone_else_are_left_to_them() {
        let b = ServerBudget::default();
        let t = b.acquire().await;
        // Ours was the only one of the window we sent; 10 per window, 5 left:
        // someone else took 4.
        b.observe(
            t,
            200,
            &h(&[
                ("RateLimit-Limit", "10"),
                ("RateLimit-Remaining", "5"),
                ("RateLimit-Reset", "1"),
            ]),
        );
        let mut ours = Vec::new();
        for _ in 0..5 {
            let t = tokio::time::timeout(Duration::from_millis(100), b.acquire()).await;
            ours.push(t.expect("five are left"));
        }
        let sixth = tokio::time::timeout(Duration::from_millis(100), b.acquire()).await;
        assert!(sixth.is_err(), "the other four are not ours to spend");
    }
}
