//! Tells people about runs that need them: a failure, a plan waiting for
//! approval, a plan a safety rule refused. A webhook gets a JSON body
//! (docs/service.md), retried with backoff; a command gets the same JSON on
//! its standard input. A notification that cannot be delivered is logged,
//! never fails the run.

use super::config::{Event, NotifyTarget};
use serde::Serialize;
use std::time::Duration;

/// The body a webhook receives, and a command reads on stdin.
#[derive(Clone, Debug, Serialize)]
pub struct Notice {
    /// Bumped when a field changes meaning.
    pub format: u32,
    pub event: Event,
    pub pipeline: String,
    pub run: i64,
    pub status: String,
    pub node: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Tries per webhook, waiting 1, 2, 4, 8 s between them.
const TRIES: u32 = 5;

/// Sends `notice` to every target of the pipeline that wants its event.
pub async fn send(client: &reqwest::Client, targets: &[NotifyTarget], notice: Notice) {
    for target in targets.iter().filter(|t| t.on.contains(&notice.event)) {
        if let Some(url) = &target.webhook {
            webhook(client, &target.name, url, &notice).await;
        }
        if let Some(command) = &target.command {
            run_command(&target.name, command, &notice).await;
        }
    }
}

async fn webhook(client: &reqwest::Client, name: &str, url: &reqwest::Url, notice: &Notice) {
    let mut wait = Duration::from_secs(1);
    for n in 1..=TRIES {
        let sent = client
            .post(url.clone())
            .timeout(Duration::from_secs(15))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(notice).unwrap_or_default())
            .send()
            .await;
        match sent {
            Ok(answer) if answer.status().is_success() => return,
            // A 4xx other than 408/429 will not go better by asking again.
            Ok(answer)
                if answer.status().is_client_error()
                    && !matches!(answer.status().as_u16(), 408 | 429) =>
            {
                tracing::warn!(notify = name, status = %answer.status(), "webhook refused the notification");
                return;
            }
            Ok(answer) => {
                tracing::warn!(notify = name, status = %answer.status(), try_ = n, "webhook failed")
            }
            Err(e) => {
                tracing::warn!(notify = name, error = %e.without_url(), try_ = n, "webhook unreachable")
            }
        }
        if n < TRIES {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    tracing::error!(
        notify = name,
        "notification not delivered after {TRIES} tries"
    );
}

async fn run_command(name: &str, command: &[String], notice: &Notice) {
    use tokio::io::AsyncWriteExt;
    let body = serde_json::to_vec(notice).unwrap_or_default();
    let child = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(notify = name, "cannot run {}: {e}", command[0]);
            return;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&body).await;
    }
    match tokio::time::timeout(Duration::from_secs(60), child.wait()).await {
        Ok(Ok(status)) if status.success() => {}
        Ok(Ok(status)) => tracing::error!(notify = name, "{} ended with {status}", command[0]),
        Ok(Err(e)) => tracing::error!(notify = name, "{}: {e}", command[0]),
        Err(_) => tracing::error!(notify = name, "{} took over 60 s; stopped", command[0]),
    }
}
