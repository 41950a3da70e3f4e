//! The non-HTTP functions of the Functions app: what `functions/<name>/function.json` declares
//! besides the HTTP API, each registered with `host::invoke` under its function name.
//!
//! - `execution_cleanup`, `schedule_processor`, `retention`: `timerTrigger`s running the
//!   [`TimerJob`]s (the host fires one instance per schedule; a past-due timer fires once).
//! - `workflow_executions`: `queueTrigger` on the `workflow-executions` queue; the message runs
//!   through the same code as the standalone worker ([`worker::handle_delivered`]).
//! - `workflow_executions_poison`: `queueTrigger` on `workflow-executions-poison`: a message the
//!   host gave up on marks its execution `Failed` ([`worker::mark_poisoned`]), so nothing
//!   queued silently vanishes.
//!
//! A handler error answers non-2xx, which the host counts as a failed invocation (and for queue
//! triggers, redelivers the message).

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{Jobs, TimerJob};
use crate::executions::worker::{self, Handled, WorkerConfig};
use crate::host::envelope::{InvocationRequest, InvocationResponse};
use crate::host::invoke::{InvocationError, InvocationHandler, Invocations};

/// Function name of the queue trigger of async executions.
pub const QUEUE_FUNCTION: &str = "workflow_executions";
/// Function name of the poison-queue trigger.
pub const POISON_FUNCTION: &str = "workflow_executions_poison";
/// The binding name both queue triggers use for the message.
pub const QUEUE_BINDING: &str = "message";

/// Registers every timer and queue function.
pub fn register(invocations: &mut Invocations, jobs: Jobs, worker: WorkerConfig) {
    let jobs = Arc::new(jobs);
    for job in TimerJob::ALL {
        invocations.register(
            job.function_name(),
            Arc::new(TimerFunction {
                job,
                jobs: jobs.clone(),
            }),
        );
    }
    invocations.register(
        QUEUE_FUNCTION,
        Arc::new(QueueFunction {
            jobs: jobs.clone(),
            worker,
        }),
    );
    invocations.register(POISON_FUNCTION, Arc::new(PoisonFunction { jobs }));
}

struct TimerFunction {
    job: TimerJob,
    jobs: Arc<Jobs>,
}

impl InvocationHandler for TimerFunction {
    fn invoke(
        &self,
        request: InvocationRequest,
    ) -> BoxFuture<'_, Result<InvocationResponse, InvocationError>> {
        Box::pin(async move {
            // `IsPastDue` is informative only: the host fires a missed schedule once, which is
            // exactly one catch-up run.
            let past_due = request
                .data
                .values()
                .find_map(|timer| timer.get("IsPastDue").and_then(Value::as_bool))
                .unwrap_or(false);
            let report = self
                .jobs
                .run(self.job, OffsetDateTime::now_utc())
                .await
                .map_err(|e| InvocationError(e.to_string()))?;
            Ok(InvocationResponse {
                logs: vec![format!(
                    "{}{}: {report}",
                    self.job.function_name(),
                    if past_due { " (past due)" } else { "" }
                )],
                return_value: report,
                ..Default::default()
            })
        })
    }
}

/// The queue message text of a queue-trigger invocation. The host passes a JSON message as
/// parsed JSON or as a string depending on its version; both are accepted.
fn message_text(request: &InvocationRequest) -> Result<String, InvocationError> {
    match request.data.get(QUEUE_BINDING) {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(value @ Value::Object(_)) => Ok(value.to_string()),
        Some(_) | None => Err(InvocationError(format!(
            "Data.{QUEUE_BINDING} is missing or not a queue message"
        ))),
    }
}

struct QueueFunction {
    jobs: Arc<Jobs>,
    worker: WorkerConfig,
}

impl InvocationHandler for QueueFunction {
    fn invoke(
        &self,
        request: InvocationRequest,
    ) -> BoxFuture<'_, Result<InvocationResponse, InvocationError>> {
        Box::pin(async move {
            let body = message_text(&request)?;
            let handled = worker::handle_delivered(self.jobs.runner(), &body, &self.worker)
                .await
                .map_err(|e| InvocationError(format!("storage: {e}")))?;
            let summary = match &handled {
                Handled::Ran(status) => format!("ran: {status}"),
                Handled::Skipped(status) => format!("skipped: already {status}"),
                Handled::Missing => "no such execution".to_owned(),
                Handled::Poisoned => "poisoned".to_owned(),
                Handled::Deferred => "deferred: organization at its concurrency limit".to_owned(),
                Handled::Rejected(field) => {
                    format!("rejected: the message's {field} disagrees with the stored execution")
                }
                Handled::Stale { message, current } => format!(
                    "skipped: message for attempt {message}, the execution is at attempt {current}"
                ),
            };
            Ok(InvocationResponse {
                logs: vec![format!("{QUEUE_FUNCTION}: {summary}")],
                return_value: json!({ "outcome": summary }),
                ..Default::default()
            })
        })
    }
}

struct PoisonFunction {
    jobs: Arc<Jobs>,
}

impl InvocationHandler for PoisonFunction {
    fn invoke(
        &self,
        request: InvocationRequest,
    ) -> BoxFuture<'_, Result<InvocationResponse, InvocationError>> {
        Box::pin(async move {
            let body = message_text(&request)?;
            let tries = request
                .metadata
                .get("DequeueCount")
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
            let reason = match tries {
                Some(n) => format!("the execution could not be started after {n} attempts"),
                None => "the execution could not be started (moved to the poison queue)".to_owned(),
            };
            worker::mark_poisoned(self.jobs.runner(), &body, &reason)
                .await
                .map_err(|e| InvocationError(format!("storage: {e}")))?;
            Ok(InvocationResponse {
                logs: vec![format!("{POISON_FUNCTION}: {reason}")],
                ..Default::default()
            })
        })
    }
}
