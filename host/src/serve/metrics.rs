//! The node's Prometheus metrics (`GET /metrics`), through the `metrics`
//! facade: runs by outcome, changes applied and failed, run duration, the
//! last success per pipeline; queue depth and waiting approvals are read
//! from the database when scraped.

use super::db::RunEnd;
use crate::error::Failure;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::time::Duration;

pub fn install() -> Result<PrometheusHandle, Failure> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("roster_run_duration_seconds".into()),
            &[0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0],
        )
        .and_then(|b| b.install_recorder())
        .map_err(|e| Failure::Input(format!("cannot start the metrics recorder: {e}")))?;
    metrics::describe_counter!("roster_runs_total", "Runs by pipeline and outcome");
    metrics::describe_counter!(
        "roster_changes_total",
        "Changes sent, by pipeline and result"
    );
    metrics::describe_histogram!("roster_run_duration_seconds", "How long runs took");
    metrics::describe_gauge!(
        "roster_last_success_timestamp_seconds",
        "When a run of the pipeline last ended without failures (Unix time)"
    );
    metrics::describe_gauge!("roster_queue_depth", "Runs waiting in the queue");
    metrics::describe_counter!(
        "roster_target_requests_total",
        "Requests connectors sent, by connector name"
    );
    metrics::describe_counter!(
        "roster_target_throttled_total",
        "Answers 429 (and 503 to a request safe to repeat) connectors got, by connector name"
    );
    metrics::describe_histogram!(
        "roster_connector_memory_peak_bytes",
        "A connector instance's peak linear memory, by connector name"
    );
    metrics::describe_gauge!(
        "roster_accounts",
        "Accounts at the last plan, by pipeline and side (source, target, in_scope)"
    );
    metrics::describe_gauge!("roster_pending_approvals", "Plans waiting for approval");
    Ok(handle)
}

pub fn record_run(pipeline: &str, end: &RunEnd, took: Duration) {
    let pipeline = pipeline.to_string();
    counter!("roster_runs_total", "pipeline" => pipeline.clone(), "outcome" => end.status)
        .increment(1);
    histogram!("roster_run_duration_seconds", "pipeline" => pipeline.clone())
        .record(took.as_secs_f64());
    if matches!(end.status, "applied" | "no-changes") {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        gauge!("roster_last_success_timestamp_seconds", "pipeline" => pipeline).set(now);
    }
}

/// The plan's account counts, as gauges.
pub fn record_accounts(pipeline: &str, summary: &crate::plan::Summary) {
    for (side, n) in [
        ("source", summary.source_accounts),
        ("target", summary.target_accounts),
        ("in_scope", summary.in_scope),
    ] {
        gauge!("roster_accounts", "pipeline" => pipeline.to_string(), "side" => side).set(n as f64);
    }
}

/// Changes sent, by kind and outcome.
pub fn record_changes(
    pipeline: &str,
    changes: &std::collections::BTreeMap<(&'static str, &'static str), u64>,
) {
    for ((kind, result), n) in changes {
        counter!("roster_changes_total", "pipeline" => pipeline.to_string(), "kind" => *kind, "result" => *result)
            .increment(*n);
    }
}

pub fn set_queue(depth: i64, approvals: usize) {
    gauge!("roster_queue_depth").set(depth as f64);
    gauge!("roster_pending_approvals").set(approvals as f64);
}
