//! A connector's stdout and stderr, forwarded line by line to tracing under
//! the connector's name. Writes never fail (a failing write would make a
//! guest `println!` panic and trap the call): past the byte budget, lines are
//! dropped and counted instead. The last lines of stderr are kept so a crash
//! can be reported with the guest's own panic message.

use super::redact::Redactor;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

const MAX_LINE: usize = 4096;
const KEPT_LINES: usize = 8;

#[derive(Clone, Copy, Debug)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Shared by a connector's stdout and stderr.
pub struct OutputBudget {
    remaining: usize,
    dropped: usize,
    last_stderr: VecDeque<String>,
}

#[derive(Clone)]
pub struct GuestOutput {
    connector: Arc<str>,
    stream: Stream,
    budget: Arc<Mutex<OutputBudget>>,
    redactor: Redactor,
}

impl GuestOutput {
    pub fn pair(
        connector: Arc<str>,
        max_bytes: usize,
        redactor: Redactor,
    ) -> (GuestOutput, GuestOutput) {
        let budget = Arc::new(Mutex::new(OutputBudget {
            remaining: max_bytes,
            dropped: 0,
            last_stderr: VecDeque::new(),
        }));
        let out = GuestOutput {
            connector,
            stream: Stream::Stdout,
            budget,
            redactor,
        };
        let err = GuestOutput {
            stream: Stream::Stderr,
            ..out.clone()
        };
        (out, err)
    }

    /// The last lines the guest wrote to stderr (redacted).
    pub fn last_stderr(&self) -> Vec<String> {
        self.budget
            .lock()
            .map(|b| b.last_stderr.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// How many lines were dropped for exceeding the budget.
    pub fn dropped(&self) -> usize {
        self.budget.lock().map(|b| b.dropped).unwrap_or(0)
    }

    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = self.redactor.redact(text.trim_end());
        let Ok(mut budget) = self.budget.lock() else {
            return;
        };
        if budget.remaining < text.len() {
            if budget.dropped == 0 {
                tracing::warn!(connector = %self.connector, "connector output exceeds its budget; further lines are dropped");
            }
            budget.dropped += 1;
            return;
        }
        budget.remaining -= text.len();
        match self.stream {
            Stream::Stdout => {
                tracing::info!(connector = %self.connector, stream = "stdout", "{text}")
            }
            Stream::Stderr => {
                tracing::warn!(connector = %self.connector, stream = "stderr", "{text}");
                if budget.last_stderr.len() == KEPT_LINES {
                    budget.last_stderr.pop_front();
                }
                budget.last_stderr.push_back(text.into_owned());
            }
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            output: self.clone(),
            line: Vec::new(),
        })
    }
}

struct LineWriter {
    output: GuestOutput,
    line: Vec<u8>,
}

impl LineWriter {
    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.output.emit(&self.line);
                self.line.clear();
            } else if self.line.len() < MAX_LINE {
                self.line.push(b);
            }
        }
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.output.emit(&self.line);
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
