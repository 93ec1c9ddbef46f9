//! One run of a served pipeline, as a queue job: plan, then apply, wait
//! for approval, or refuse, by the pipeline's approval mode. The run is the
//! same library call the CLI makes (`operation::plan_to_apply`, `apply`),
//! on a thread of its own: a connector's calls keep the host's one-thread
//! runtime, and the node's runtime stays free for the queue and the API.

use super::config::{Approval, Event, Served};
use super::db::RunEnd;
use crate::error::Failure;
use crate::operation::{self, ApplyOptions, PlanOptions, Quiet};
use crate::plugins::Session;
use crate::runtime::Redactor;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// What the queue carries: which pipeline, and why it runs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunJob {
    pub pipeline: String,
    pub trigger: Trigger,
    /// The rank this run applies, for a pipeline split into ranks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
}

impl RunJob {
    /// The queue's idempotency key: one job per tick (and rank), per approval.
    pub fn key(&self) -> Option<String> {
        let rank = self.rank.map(|r| format!("#rank{r}")).unwrap_or_default();
        self.trigger
            .key(&self.pipeline)
            .map(|k| format!("{k}{rank}"))
    }

    /// One job per rank of `ranks` (just the one when it is 1).
    pub fn per_rank(pipeline: &str, trigger: Trigger, ranks: u32) -> Vec<RunJob> {
        match ranks {
            0 | 1 => vec![RunJob {
                pipeline: pipeline.to_string(),
                trigger,
                rank: None,
            }],
            n => (1..=n)
                .map(|r| RunJob {
                    pipeline: pipeline.to_string(),
                    trigger: trigger.clone(),
                    rank: Some(r),
                })
                .collect(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Trigger {
    /// The schedule's tick (Unix seconds).
    Schedule { tick: i64 },
    /// Asked for through the API or the CLI.
    Manual { by: String },
    /// The plan waiting under this run was approved: apply it, if the
    /// plan made now is still the same.
    Approval { run: i64 },
}

impl Trigger {
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Schedule { .. } => "schedule",
            Trigger::Manual { .. } => "manual",
            Trigger::Approval { .. } => "approval",
        }
    }

    pub fn tick(&self) -> Option<i64> {
        match self {
            Trigger::Schedule { tick } => Some(*tick),
            _ => None,
        }
    }

    fn key(&self, pipeline: &str) -> Option<String> {
        match self {
            Trigger::Schedule { tick } => Some(format!("{pipeline}@{tick}")),
            Trigger::Approval { run } => Some(format!("{pipeline}#approved-{run}")),
            Trigger::Manual { .. } => None,
        }
    }
}

/// What the run needs besides the pipeline.
pub struct Context {
    pub cache_dir: Option<PathBuf>,
    /// Set on SIGTERM: the apply finishes its batch and stops.
    pub stop: Arc<AtomicBool>,
    /// For an approval run: the id of the plan that was approved.
    pub approved: Option<String>,
    pub rank: Option<u32>,
    /// The service database, where budgets shared by all nodes are kept.
    pub database: String,
}

/// How the run ended, and what the node does next.
#[derive(Debug, Default)]
pub struct Outcome {
    pub end: RunEnd,
    /// A plan to keep for approval: its id and JSON.
    pub waiting: Option<(String, String)>,
    /// What to notify about.
    pub event: Option<Event>,
    /// Stopped before it finished (SIGTERM): the job goes back to the
    /// queue, and the next node resumes from the journal.
    pub interrupted: bool,
    /// The plan's counts, when a plan was made.
    pub summary: Option<crate::plan::Summary>,
    /// Changes sent, by kind (create, update, …) and outcome (applied,
    /// failed, skipped, …).
    pub changes: std::collections::BTreeMap<(&'static str, &'static str), u64>,
}

/// Carries out the run on the calling thread (blocking).
pub fn execute(served: &Served, cx: Context) -> Outcome {
    outcome_of(on_own_runtime(attempt(served, cx)))
}

/// Runs a pipeline call to the end on a one-thread runtime of its own (a
/// connector's calls interleave on it as in the CLI): for a blocking thread.
pub(crate) fn on_own_runtime<T>(
    call: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Input(format!("cannot start a runtime: {e}")))?
        .block_on(call)
}

/// How a run that stopped with `Failure` is recorded.
fn outcome_of(attempted: Result<Outcome, Failure>) -> Outcome {
    match attempted {
        Ok(outcome) => outcome,
        Err(Failure::Busy(message)) => Outcome {
            end: RunEnd {
                status: "skipped",
                message: Some(Redactor::global().redact(&message).into_owned()),
                ..Default::default()
            },
            ..Default::default()
        },
        Err(Failure::Refused(reason)) => Outcome {
            end: RunEnd {
                status: "refused",
                message: Some(reason),
                ..Default::default()
            },
            event: Some(Event::Refused),
            ..Default::default()
        },
        Err(e) => {
            let mut text = e.to_string();
            if let Some(hint) = e.hint() {
                text.push_str(&format!(" (hint: {hint})"));
            }
            failed(Redactor::global().redact(&text).into_owned())
        }
    }
}

fn failed(message: String) -> Outcome {
    Outcome {
        end: RunEnd {
            status: "failed",
            message: Some(message),
            ..Default::default()
        },
        event: Some(Event::Failure),
        ..Default::default()
    }
}

async fn attempt(served: &Served, cx: Context) -> Result<Outcome, Failure> {
    let mut session = Session::open(served.pipeline.clone(), cx.cache_dir.clone()).await?;
    super::budget::share(&mut session.pipeline, &cx.database);
    let mut state = session.pipeline.open_state()?;
    let options = PlanOptions {
        rank: cx.rank,
        ..PlanOptions::default()
    };
    let mut ready = operation::plan_to_apply(&session, &mut *state, &options, &Quiet).await?;
    let plan = &ready.plan;
    let summary = Some(plan.summary.clone());
    let mut end = RunEnd {
        plan_id: Some(plan.id.clone()),
        changes: Some(plan.changes.len() as i32),
        ..Default::default()
    };
    if let Some(approved) = &cx.approved {
        if *approved != plan.id {
            end.status = "stale";
            end.message = Some(format!(
                "the approved plan {approved} is no longer what the pipeline would do (now {}): the source or the target changed; approve the new plan",
                plan.id
            ));
            return Ok(Outcome {
                end,
                summary,
                ..Default::default()
            });
        }
    } else if !plan.is_empty() {
        let waits = match served.approval {
            Approval::Auto => false,
            Approval::AutoBelowThreshold => plan.refused.is_some(),
            Approval::Manual => true,
        };
        if waits {
            end.status = "awaiting-approval";
            end.message = plan.refused.clone();
            // Kept in the database and shown through the API: masked as
            // `roster plan --json` is.
            let json = serde_json::to_string(plan).map_err(|e| Failure::Input(e.to_string()))?;
            let json = Redactor::global().redact(&json).into_owned();
            return Ok(Outcome {
                end,
                waiting: Some((plan.id.clone(), json)),
                event: Some(Event::Approval),
                summary,
                ..Default::default()
            });
        }
    }
    if plan.is_empty() {
        end.status = "no-changes";
        return Ok(Outcome {
            end,
            summary,
            ..Default::default()
        });
    }
    let options = ApplyOptions {
        // A person approved this very plan, refusal and all.
        allow_removals: cx.approved.is_some(),
        stop: cx.stop.clone(),
    };
    let report = operation::apply(&session, &mut *state, &mut ready, &options, &Quiet).await?;
    let mut outcome = Outcome {
        summary,
        ..Default::default()
    };
    for o in &report.outcomes {
        *outcome
            .changes
            .entry((o.action.as_str(), o.status.as_str()))
            .or_default() += 1;
    }
    end.applied = Some(report.applied as i32);
    end.failed = Some(report.failed as i32);
    end.status = if report.interrupted {
        outcome.interrupted = true;
        "interrupted"
    } else if report.failed > 0 || report.skipped > 0 || report.stopped.is_some() {
        outcome.event = Some(Event::Failure);
        "partial"
    } else {
        "applied"
    };
    end.message = report.stopped.clone();
    outcome.end = end;
    Ok(outcome)
}
