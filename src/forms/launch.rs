//! Launch workflows: a form's `launchWorkflowId` runs when the form opens, and its result is
//! `context.workflow` in visibility expressions and data-provider inputs.
//!
//! Launch workflows run without an execution record (as v1), only with the inputs they declare
//! (`defaultLaunchParams` ← form values ← allowed query parameters). Their results are kept in
//! memory for [`LAUNCH_TTL`] per form, scope, caller and inputs, so validation, providers and
//! submission evaluate `context.workflow` on the server without running the launch workflow
//! again (opening the form always runs it afresh). The cache belongs to the application
//! (`Services`), not to the process.
//!
//! Depends on the runner; not on HTTP.

use std::sync::Arc;
use std::time::Duration;

use bifrost_engine::ExecutionStatus;
use serde_json::{Map, Value};

use super::access::OpenedForm;
use super::error::{FormError, workspace_failure};
use super::model::Form;
use super::providers::cache_key;
use crate::cache::Cache;
use crate::executions::input::Coercion;
use crate::executions::{RunRequest, Runner};

/// How long a launch workflow's result is reused by validation, providers and submission.
pub const LAUNCH_TTL: Duration = Duration::from_secs(300);
const LAUNCH_CACHE_MAX: usize = 10_000;

/// Recent launch results, by form, scope, caller and inputs. Cheap to clone (shared).
#[derive(Clone)]
pub struct LaunchResults {
    cache: Arc<Cache<String, Value>>,
}

impl Default for LaunchResults {
    fn default() -> Self {
        Self {
            cache: Arc::new(Cache::new(LAUNCH_TTL, LAUNCH_CACHE_MAX)),
        }
    }
}

impl std::fmt::Debug for LaunchResults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchResults").finish_non_exhaustive()
    }
}

/// Whether a visibility expression of the form reads `context.workflow`.
pub fn reads_launch_result(form: &Form) -> bool {
    form.launch_workflow_id.is_some()
        && form.form_schema.all_fields().any(|f| {
            f.visibility_expression
                .as_deref()
                .is_some_and(|e| e.contains("workflow"))
        })
}

impl LaunchResults {
    /// The launch workflow's result for this caller (`null` without one). `fresh` runs it even
    /// when a recent result is known.
    pub async fn result(
        &self,
        runner: &Runner,
        opened: &OpenedForm,
        values: &Map<String, Value>,
        query: &Map<String, Value>,
        fresh: bool,
    ) -> Result<Value, FormError> {
        let form = opened.form();
        let Some(name) = form
            .launch_workflow_id
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        else {
            return Ok(Value::Null);
        };
        let Some(workflow) = runner.workflow(name) else {
            return Err(FormError::WorkspaceFailed(format!(
                "the form's launch workflow '{name}' is not in the workspace"
            )));
        };
        let mut inputs = form.default_launch_params.clone().unwrap_or_default();
        inputs.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
        inputs.extend(query.iter().map(|(k, v)| (k.clone(), v.clone())));
        inputs.retain(|k, _| workflow.parameters.iter().any(|p| p.name == *k));
        let context = opened.run_context();
        let key = format!(
            "{}|{}|{}|{}",
            form.id,
            opened.run_scope,
            context.actor,
            cache_key(name, &inputs)
        );
        if !fresh && let Some(hit) = self.cache.get(&key) {
            return Ok(hit);
        }
        let (workflow, input) = runner
            .prepare(name, inputs, Coercion::FromStrings)
            .map_err(|e| FormError::run(e, "launchInputs."))?;
        let request = RunRequest::new(workflow, input, context).for_form(form.id.clone());
        let finished = runner
            .run(request, true)
            .await
            .map_err(|e| FormError::run(e, "launchInputs."))?;
        let outcome = &finished.outcome;
        match outcome.status {
            ExecutionStatus::Success | ExecutionStatus::CompletedWithErrors => {
                let result = outcome.result.clone().unwrap_or(Value::Null);
                self.cache.put(key, result.clone());
                Ok(result)
            }
            _ => Err(workspace_failure(
                &format!("the form's launch workflow '{name}'"),
                outcome,
                opened.is_admin(),
            )),
        }
    }
}
