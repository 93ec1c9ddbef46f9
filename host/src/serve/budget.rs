//! A connector's `rate_limit` shared by every node through the service's
//! database: when the ranks of a pipeline run on several nodes, they take
//! their requests from one budget (GCRA in `take_rate`, migration 0002), so
//! the target sees the pipeline's rate, not the rate times the nodes.
//! Each node's own limiter still paces its requests; the shared one only
//! says when the budget between them is spent.

use crate::pipeline::Pipeline;
use crate::runtime::http::{RateGate, SharedRate};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Gives every connector of `pipeline` that has a rate limit a budget
/// shared through `database` (keyed by pipeline and connector).
pub fn share(pipeline: &mut Pipeline, database: &str) {
    let Some(options) = connect_options(database) else {
        return;
    };
    for (name, spec) in pipeline.connectors.iter_mut() {
        let Some((requests, per)) = spec.grants.http.rate else {
            continue;
        };
        // A pool made here, lazily, on the run's own runtime.
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options.clone());
        let interval = per.as_secs_f64() / f64::from(requests.max(1));
        let gate = PgRate {
            pool,
            key: format!("{}/{name}", pipeline.name),
            interval,
            // No burst: evenly spaced, so that no window of `per` seconds
            // (however the vendor aligns its windows) holds more than
            // `requests`; a burst on top of the rate could (measured: 9 of
            // 327 answered 429 with bursts of 50 against Zivver's 50 per 10 s).
            tolerance: 0.0,
        };
        spec.grants.http.shared_rate = Some(SharedRate(Arc::new(gate)));
    }
}

fn connect_options(database: &str) -> Option<PgConnectOptions> {
    let at = crate::state::PgLocation::parse(database, "serve").ok()?;
    let path = format!("{},public", at.schema);
    Some(
        PgConnectOptions::from_str(&at.url)
            .ok()?
            .options([("search_path", path.as_str())]),
    )
}

struct PgRate {
    pool: PgPool,
    key: String,
    interval: f64,
    tolerance: f64,
}

impl PgRate {
    async fn wait(&self) {
        loop {
            let ahead: Result<f64, sqlx::Error> =
                sqlx::query_scalar("SELECT take_rate($1, $2, $3)")
                    .bind(&self.key)
                    .bind(self.interval)
                    .bind(self.tolerance)
                    .fetch_one(&self.pool)
                    .await;
            match ahead {
                Ok(s) if s <= 0.0 => return,
                Ok(s) => tokio::time::sleep(Duration::from_secs_f64(s.min(60.0))).await,
                Err(e) => {
                    // The local limiter still holds; the share is lost while
                    // the database is away, so say so.
                    tracing::warn!(budget = self.key, "shared request budget unavailable: {e}");
                    return;
                }
            }
        }
    }
}

impl RateGate for PgRate {
    fn ready(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.wait())
    }
}
