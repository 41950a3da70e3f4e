//! A form field's options from its data provider: find the field that uses the provider,
//! resolve the provider's inputs from the field's configuration (`providers`), answer from the
//! options cache or run the provider through the runner, and cache what it returned.
//!
//! A provider sees its caller: one caller's answer is not another's, unless the provider
//! declared that it does not look (`caller_independent`; the organization is the cache's
//! partition already). The cache is an optimization: a storage hiccup costs a provider run, not
//! the answer.
//!
//! Depends on the runner and the provider cache; not on HTTP.

use bifrost_engine::{DataProviderOption, EngineError, ExecutionStatus};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::access::OpenedForm;
use super::error::{FormError, workspace_failure};
use super::launch::LaunchResults;
use super::providers::{
    CacheCaller, InputContext, ProviderCache, caller_cache_key, check_parameters,
    needs_launch_result, resolve_inputs,
};
use crate::executions::{RunError, Runner};

/// What the caller sent for one provider call.
pub struct OptionsRequest<'a> {
    pub provider: &'a str,
    /// Values for the provider's parameters that the field's configuration leaves open.
    pub inputs: &'a Map<String, Value>,
    /// The form's current values.
    pub values: &'a Map<String, Value>,
    /// The form's allowed query parameters.
    pub query: &'a Map<String, Value>,
    /// Skip the cache and refresh it.
    pub no_cache: bool,
    /// The field whose configuration applies when several fields use the provider.
    pub field: Option<&'a str>,
}

/// The options, and whether they came from the cache.
pub struct Options {
    pub options: Vec<DataProviderOption>,
    pub cached: bool,
    /// When the cached options expire; `None` when they are not cached.
    pub expires_at: Option<OffsetDateTime>,
}

/// The services a provider call uses.
pub struct OptionSources<'a> {
    pub runner: &'a Runner,
    pub cache: &'a ProviderCache,
    pub launches: &'a LaunchResults,
}

/// Options for a field of `opened` from provider `request.provider`.
pub async fn field_options(
    sources: OptionSources<'_>,
    opened: &OpenedForm,
    request: OptionsRequest<'_>,
) -> Result<Options, FormError> {
    let name = request.provider;
    let form = opened.form();
    let using: Vec<_> = form
        .form_schema
        .all_fields()
        .filter(|f| f.data_provider.as_deref() == Some(name))
        .collect();
    let field = match request.field {
        Some(wanted) => Some(
            using
                .iter()
                .find(|f| f.name == wanted)
                .copied()
                .ok_or_else(|| {
                    FormError::invalid(
                        "field",
                        format!(
                            "field '{wanted}' of this form does not use data provider '{name}'"
                        ),
                    )
                })?,
        ),
        None => using.first().copied(),
    };
    if field.is_none() && !opened.manager {
        return Err(FormError::NotFound(format!(
            "no field of form '{}' uses data provider '{name}'",
            form.id
        )));
    }
    let registry = sources.runner.registry();
    let provider = registry
        .data_provider(name)
        .ok_or_else(|| FormError::NotFound(format!("data provider '{name}' not found")))?;

    let config = field.and_then(|f| f.data_provider_inputs.as_ref());
    let launch = if needs_launch_result(config) {
        sources
            .launches
            .result(sources.runner, opened, request.values, request.query, false)
            .await?
    } else {
        Value::Null
    };
    let context = InputContext {
        values: request.values,
        launch: &launch,
        query: request.query,
    };
    let inputs =
        resolve_inputs(config, &context, request.inputs, opened.manager).map_err(field_errors)?;
    let inputs = check_parameters(provider, inputs).map_err(field_errors)?;

    let ttl = provider.cache_ttl_seconds;
    let run_context = opened.run_context();
    let cache_caller = CacheCaller {
        user_id: &run_context.caller.user_id,
        is_platform_admin: run_context.rights.is_platform_admin,
    };
    let key = caller_cache_key(
        name,
        &inputs,
        (!provider.caller_independent).then_some(&cache_caller),
    );
    let now = OffsetDateTime::now_utc();
    if ttl > 0 && !request.no_cache {
        match sources.cache.get(&opened.run_scope, &key, now).await {
            Ok(Some(hit)) => {
                return Ok(Options {
                    options: hit.options,
                    cached: true,
                    expires_at: Some(hit.expires_at),
                });
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, provider = name, "data provider cache read failed")
            }
        }
    }

    let outcome = sources
        .runner
        .run_data_provider(name, inputs, &run_context)
        .await
        .map_err(|e| match e {
            RunError::Engine(EngineError::DataProviderNotFound(_)) => {
                FormError::NotFound(format!("data provider '{name}' not found"))
            }
            other => FormError::run(other, ""),
        })?;
    let what = format!("data provider '{name}'");
    if outcome.status != ExecutionStatus::Success {
        return Err(workspace_failure(&what, &outcome, opened.is_admin()));
    }
    let options = outcome.options().ok_or_else(|| {
        FormError::WorkspaceFailed(format!(
            "{what} failed: it did not return a list of {{label, value}} options"
        ))
    })?;
    let mut expires_at = None;
    if ttl > 0 {
        // Whole seconds: what is stored is what is answered, on every backend.
        let at = OffsetDateTime::from_unix_timestamp(now.unix_timestamp() + i64::from(ttl))
            .unwrap_or(now);
        match sources
            .cache
            .put(&opened.run_scope, &key, name, &options, at)
            .await
        {
            Ok(true) => expires_at = Some(at),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, provider = name, "data provider cache write failed")
            }
        }
    }
    Ok(Options {
        options,
        cached: false,
        expires_at,
    })
}

/// Every failing input, as the 400 lists them.
pub fn field_errors(errors: Vec<super::validate::FieldError>) -> FormError {
    FormError::InvalidFields(errors.into_iter().map(|e| (e.field, e.message)).collect())
}
