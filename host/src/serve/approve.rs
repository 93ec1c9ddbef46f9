//! Approving or rejecting a plan that waits: the same for the API and for
//! `roster approve` / `roster reject`. An approval is recorded (with the
//! audit entry) and a run is enqueued that applies the plan only if the
//! pipeline still plans exactly it (the plan id is a digest of the plan):
//! a target that changed meanwhile makes the approval stale, not a surprise.

use super::db::{DecideError, ServiceDb};
use super::job::{RunJob, Trigger};
use serde::{Deserialize, Serialize};

/// A decision on a waiting plan (also `roster approve --json`).
#[derive(Serialize, Deserialize, Debug, PartialEq, utoipa::ToSchema)]
pub struct Decided {
    pub run: i64,
    pub pipeline: String,
    pub plan_id: String,
    /// approved (a run to apply it is queued) or rejected.
    pub status: String,
}

pub async fn decide(
    db: &ServiceDb,
    queue: &str,
    run: i64,
    approve: bool,
    actor: &str,
    comment: Option<&str>,
) -> Result<Decided, DecideError> {
    let (pipeline, plan_id) = db.decide(run, approve, actor, comment).await?;
    if approve {
        let job = RunJob {
            pipeline: pipeline.clone(),
            trigger: Trigger::Approval { run },
            rank: None,
        };
        super::node::enqueue_on(db, queue, &job)
            .await
            .map_err(|e| DecideError::Db(sqlx::Error::Protocol(format!("cannot enqueue: {e}"))))?;
    }
    Ok(Decided {
        run,
        pipeline,
        plan_id,
        status: if approve { "approved" } else { "rejected" }.into(),
    })
}
