//! When a pipeline runs: an interval or a cron expression in a time zone.
//!
//! Every node computes the same ticks from the clock alone (an interval's
//! ticks are multiples of it since the Unix epoch; a cron expression's are
//! its matches), so the tick, not the node, names a run: nodes that all
//! see a tick enqueue it under one idempotency key and the queue keeps one.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use std::fmt;
use std::time::Duration;

#[derive(Clone, Debug)]
pub enum Schedule {
    Every(Duration),
    Cron { cron: Box<Cron>, tz: Tz },
}

/// The longest interval: a year.
const LONGEST: Duration = Duration::from_secs(366 * 24 * 3600);

impl Schedule {
    /// `15m`, `1h 30m`, `24h`, `10s`.
    pub fn every(text: &str) -> Result<Schedule, String> {
        let d = humantime::parse_duration(text.trim())
            .map_err(|e| format!("`{text}`: {e} (as 15m, 1h, 24h)"))?;
        if d < Duration::from_secs(1) || d > LONGEST || d.subsec_nanos() != 0 {
            return Err(format!("`{text}`: whole seconds from 1s to 366 days"));
        }
        Ok(Schedule::Every(d))
    }

    /// Five fields (minute first) or six (second first).
    pub fn cron(text: &str, tz: Tz) -> Result<Schedule, String> {
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(text)
            .map_err(|e| format!("`{text}`: {e}"))?;
        Ok(Schedule::Cron {
            cron: Box::new(cron),
            tz,
        })
    }

    /// The last tick at or before `now` (Unix seconds).
    pub fn latest(&self, now: DateTime<Utc>) -> Option<i64> {
        match self {
            Schedule::Every(d) => {
                let secs = d.as_secs() as i64;
                Some(now.timestamp().div_euclid(secs) * secs)
            }
            Schedule::Cron { cron, tz } => cron
                .find_previous_occurrence(&now.with_timezone(tz), true)
                .ok()
                .map(|t| t.timestamp()),
        }
    }

    /// The first tick after `now` (Unix seconds).
    pub fn next(&self, now: DateTime<Utc>) -> Option<i64> {
        match self {
            Schedule::Every(d) => {
                let secs = d.as_secs() as i64;
                Some((now.timestamp().div_euclid(secs) + 1) * secs)
            }
            Schedule::Cron { cron, tz } => cron
                .find_next_occurrence(&now.with_timezone(tz), false)
                .ok()
                .map(|t| t.timestamp()),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(d) => write!(f, "every {}", humantime::format_duration(*d)),
            Schedule::Cron { cron, tz } => write!(f, "cron {} ({tz})", cron.pattern),
        }
    }
}

/// A tick as RFC 3339 (UTC), as the API and logs show it.
pub fn shown(tick: i64) -> String {
    Utc.timestamp_opt(tick, 0)
        .single()
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| tick.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn interval_ticks_are_multiples_of_the_interval() {
        let s = Schedule::every("15m").unwrap();
        let now = at("2026-12-04T10:07:30Z");
        assert_eq!(shown(s.latest(now).unwrap()), "2026-12-04T10:00:00+00:00");
        assert_eq!(shown(s.next(now).unwrap()), "2026-12-04T10:15:00+00:00");
        // On the tick itself, the tick is the latest.
        assert_eq!(s.latest(at("2026-12-04T10:15:00Z")), s.next(now));
    }

    #[test]
    fn cron_ticks_follow_the_time_zone() {
        let tz: Tz = "Europe/Amsterdam".parse().unwrap();
        let s = Schedule::cron("0 2 * * *", tz).unwrap();
        // 02:00 in Amsterdam in December is 01:00 UTC.
        let now = at("2026-12-04T10:00:00Z");
        assert_eq!(shown(s.latest(now).unwrap()), "2026-12-04T01:00:00+00:00");
        assert_eq!(shown(s.next(now).unwrap()), "2026-12-05T01:00:00+00:00");
        let six = Schedule::cron("*/10 * * * * *", Tz::UTC).unwrap();
        assert_eq!(six.next(now).unwrap() - now.timestamp(), 10);
    }

    #[test]
    fn bad_schedules_are_refused_with_the_reason() {
        for bad in ["", "soon", "0s", "500ms", "400days", "1.5s"] {
            assert!(Schedule::every(bad).is_err(), "{bad}");
        }
        for bad in ["", "* * *", "61 * * * *", "0 0 31 2 * * * *"] {
            assert!(Schedule::cron(bad, Tz::UTC).is_err(), "{bad}");
        }
        assert_eq!(
            Schedule::every("1h 30m").unwrap().to_string(),
            "every 1h 30m"
        );
    }
}
