//! The checks of a form definition beyond its own shape (`FormInput::check`): the workflows and
//! data providers it names exist in the workspace. Every problem is listed, each with the JSON
//! path of what is wrong.
//!
//! Also where a new form goes. Depends on the engine's registry types and the organization
//! service.

use bifrost_engine::Registry;
use bifrost_store::Scope;

use super::error::FormError;
use super::model::{FieldIssue, FormField, FormInput, FormSchema};
use crate::domain::OrgService;

/// Every problem of `input` against the workspace `registry`; empty when the form may be saved.
pub fn problems(input: &FormInput, registry: &Registry) -> Vec<FieldIssue> {
    let mut issues = input.check().err().unwrap_or_default();
    let linked = input.linked_workflow.trim();
    if !linked.is_empty() && registry.workflow(linked).is_none() {
        issues.push(FieldIssue::new(
            "linkedWorkflow",
            format!("workflow '{linked}' is not in the workspace"),
        ));
    }
    if let Some(launch) = input.launch_workflow_id.as_deref()
        && !launch.trim().is_empty()
        && registry.workflow(launch).is_none()
    {
        issues.push(FieldIssue::new(
            "launchWorkflowId",
            format!("workflow '{launch}' is not in the workspace"),
        ));
    }
    for (path, field) in located_fields(&input.form_schema) {
        if let Some(provider) = field.data_provider.as_deref()
            && registry.data_provider(provider).is_none()
        {
            issues.push(FieldIssue::new(
                format!("{path}.dataProvider"),
                format!("data provider '{provider}' is not in the workspace"),
            ));
        }
    }
    issues
}

/// Where a new form goes: `orgId` (`GLOBAL` or an existing organization), else `GLOBAL` when
/// `isGlobal` is true, else the request's scope.
pub async fn target_scope(
    orgs: &OrgService,
    request_scope: &Scope,
    input: &FormInput,
) -> Result<Scope, FormError> {
    let scope = match input.org_id.as_deref().map(str::trim) {
        None | Some("") if input.is_global == Some(true) => Scope::Global,
        None | Some("") => request_scope.clone(),
        Some(raw) => Scope::parse(raw).map_err(|e| FormError::invalid("orgId", e.to_string()))?,
    };
    if let Scope::Org(org) = &scope
        && orgs.find(org).await?.is_none()
    {
        return Err(FormError::invalid(
            "orgId",
            format!("organization '{org}' does not exist"),
        ));
    }
    if input.is_global == Some(true) && scope != Scope::Global {
        return Err(FormError::invalid(
            "isGlobal",
            "is true but orgId names an organization; use orgId GLOBAL",
        ));
    }
    Ok(scope)
}

/// Every field with its JSON path (`formSchema.fields[i]` or `formSchema.steps[s].fields[i]`).
fn located_fields(schema: &FormSchema) -> Vec<(String, &FormField)> {
    let mut located: Vec<_> = schema
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| (format!("formSchema.fields[{i}]"), f))
        .collect();
    for (s, step) in schema.steps.iter().flatten().enumerate() {
        located.extend(
            step.fields
                .iter()
                .enumerate()
                .map(|(i, f)| (format!("formSchema.steps[{s}].fields[{i}]"), f)),
        );
    }
    located
}
