//! The workflow-author commands: `bifrost workflows`, `bifrost validate <file>` and
//! `bifrost run <workflow>`, against the configured storage and workspace.
//!
//! They start the same engine as `bifrost serve` (same SDK host, same storage), so a workflow that
//! works here works on the server. Output: human-readable lines on stderr, the machine-readable
//! result (JSON) on stdout.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use bifrost_engine::{Caller, ExecutionStatus, ParameterInfo, Registry};
use serde_json::{Map, Value};

use crate::audit::{AuditEvent, AuditEventType};
use crate::auth::KeyId;
use crate::backends::Backends;
use crate::cli::KeysAction;
use crate::executions::input::Coercion;
use crate::executions::{RunContext, RunError, RunRequest, RunRights, Runner};
use crate::settings::Settings;
use crate::state::{Services, StartupError, start_engine};
use bifrost_store::Scope;

/// `bifrost workflows`: lists workflows, data providers and import errors. Exit 1 on any import
/// error, so it can gate a deployment.
pub async fn list_workflows(settings: &Settings) -> Result<ExitCode, StartupError> {
    let backends = Backends::open(settings)?;
    let services = Services::new(&backends, settings)?;
    services.prepare_storage(&backends).await;
    let engine = start_engine(settings, &services).await?;
    let registry = engine.registry();
    print_registry(&registry, None);
    println!(
        "{}",
        serde_json::to_string_pretty(&*registry).unwrap_or_default()
    );
    engine.stop();
    Ok(if registry.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `bifrost validate <file>`: imports the workspace the file belongs to and reports that file's
/// workflows, data providers and errors. Exit 1 when the file has errors or defines nothing.
pub async fn validate(settings: &Settings, file: &Path) -> Result<ExitCode, StartupError> {
    let file = std::fs::canonicalize(file).map_err(|source| StartupError::DataDir {
        path: file.to_owned(),
        source,
    })?;
    let workspace = std::fs::canonicalize(&settings.workspace).unwrap_or_default();
    let mut settings = settings.clone();
    if !file.starts_with(&workspace) {
        // A file outside the configured workspace is validated as its own folder's workspace.
        settings.workspace = file.parent().map(Path::to_path_buf).unwrap_or_default();
    }
    let backends = Backends::open(&settings)?;
    let services = Services::new(&backends, &settings)?;
    services.prepare_storage(&backends).await;
    let engine = start_engine(&settings, &services).await?;
    let registry = engine.registry();
    print_registry(&registry, Some(&file));
    let same = |p: &PathBuf| std::fs::canonicalize(p).map(|p| p == file).unwrap_or(false);
    let errors = registry.errors.iter().filter(|e| same(&e.file)).count();
    let defined = registry
        .workflows
        .iter()
        .filter(|w| same(&w.source_file_path))
        .count()
        + registry
            .data_providers
            .iter()
            .filter(|d| same(&d.source_file_path))
            .count();
    engine.stop();
    if errors > 0 {
        eprintln!("{}: {errors} error(s)", file.display());
        return Ok(ExitCode::from(1));
    }
    if defined == 0 {
        eprintln!("{}: no @workflow or @data_provider found", file.display());
        return Ok(ExitCode::from(1));
    }
    eprintln!("{}: ok ({defined} defined)", file.display());
    Ok(ExitCode::SUCCESS)
}

/// What `bifrost run` was asked to do.
pub struct RunArgs {
    pub workflow: String,
    pub params: Vec<String>,
    pub org: Option<String>,
    pub timeout_seconds: Option<u64>,
}

/// `bifrost run <workflow> [--param k=v ...] [--org ID]`: runs one workflow as the local
/// operator, prints its logs to stderr and `{status, result, error, durationMs}` to stdout.
/// Exit 0 on Success, 1 on any other outcome, 2 on bad arguments.
pub async fn run_workflow(settings: &Settings, args: RunArgs) -> Result<ExitCode, StartupError> {
    let backends = Backends::open(settings)?;
    let services = Services::new(&backends, settings)?;
    services.prepare_storage(&backends).await;
    let engine = start_engine(settings, &services).await?;
    let registry = engine.registry();
    let Some(workflow) = registry.workflows.iter().find(|w| w.name == args.workflow) else {
        eprintln!("bifrost run: no workflow named {:?}", args.workflow);
        for e in &registry.errors {
            eprintln!(
                "  import error in {}:{}: {}",
                e.file.display(),
                e.line.unwrap_or(0),
                e.message
            );
        }
        engine.stop();
        return Ok(ExitCode::from(2));
    };
    let scope = match &args.org {
        None => Scope::Global,
        Some(id) => match bifrost_store::OrgId::parse(id) {
            Ok(id) => Scope::Org(id),
            Err(e) => {
                eprintln!("bifrost run: --org: {e}");
                engine.stop();
                return Ok(ExitCode::from(2));
            }
        },
    };
    let runner = Runner::new(
        Arc::new(engine.clone()),
        services.executions.clone(),
        services.audit.clone(),
        services.orgs.clone(),
        backends.queues.clone(),
    );
    // `--param` values are typed by the parameters first, then checked like any other input.
    let input = match parse_params(&args.params, &workflow.parameters).and_then(|input| {
        runner
            .prepare(&workflow.name, input, Coercion::Strict)
            .map_err(|e| match e {
                RunError::Input(e) => format!("--param {}: {}", e.field, e.message),
                other => other.to_string(),
            })
    }) {
        Ok((_, input)) => input,
        Err(message) => {
            eprintln!("bifrost run: {message}");
            engine.stop();
            return Ok(ExitCode::from(2));
        }
    };
    let caller = Caller::new("cli:local", "cli@localhost", "Local CLI");
    let context = RunContext::new(caller, "cli:local", scope, RunRights::PLATFORM);
    let request = RunRequest::new(workflow.clone(), input, context)
        .with_timeout(args.timeout_seconds.map(std::time::Duration::from_secs));
    let outcome = match runner.run(request, false).await {
        Ok(finished) => finished.outcome,
        Err(RunError::Engine(e)) => {
            engine.stop();
            return Err(e.into());
        }
        Err(e) => {
            engine.stop();
            return Err(StartupError::Storage(e.to_string()));
        }
    };
    for log in &outcome.logs {
        eprintln!("[{}] {:<8} {}", log.timestamp, log.level, log.message);
    }
    let summary = serde_json::json!({
        "executionId": outcome.execution_id,
        "status": outcome.status,
        "result": outcome.result,
        "resultType": outcome.result_type,
        "error": outcome.error,
        "durationMs": outcome.duration.as_millis() as u64,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&summary).unwrap_or_default()
    );
    engine.stop();
    Ok(if outcome.status == ExecutionStatus::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `k=v` pairs typed by the workflow's parameters: string and email values are taken as written,
/// other types are parsed as JSON (`--param count=3`, `--param tags='["a"]'`).
pub fn parse_params(
    pairs: &[String],
    parameters: &[ParameterInfo],
) -> Result<Map<String, Value>, String> {
    let mut input = Map::new();
    for pair in pairs {
        let (key, raw) = pair
            .split_once('=')
            .ok_or_else(|| format!("--param {pair:?}: expected name=value"))?;
        let kind = parameters
            .iter()
            .find(|p| p.name == key)
            .map(|p| p.kind.as_str())
            .unwrap_or("string");
        let value = match kind {
            "string" | "email" | "date" | "datetime" => Value::String(raw.to_owned()),
            "bool" => match raw.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Value::Bool(true),
                "false" | "0" | "no" | "off" => Value::Bool(false),
                _ => return Err(format!("--param {key}: {raw:?} is not a bool")),
            },
            other => serde_json::from_str(raw)
                .map_err(|e| format!("--param {key}: {raw:?} is not a valid {other} ({e})"))?,
        };
        input.insert(key.to_owned(), value);
    }
    Ok(input)
}

fn print_registry(registry: &Registry, only: Option<&Path>) {
    let shown =
        |p: &Path| only.is_none_or(|f| std::fs::canonicalize(p).map(|p| p == f).unwrap_or(false));
    for w in registry
        .workflows
        .iter()
        .filter(|w| shown(&w.source_file_path))
    {
        let params: Vec<String> = w
            .parameters
            .iter()
            .map(|p| format!("{}:{}{}", p.name, p.kind, if p.required { "" } else { "?" }))
            .collect();
        eprintln!(
            "workflow       {:<28} {}:{}  ({})",
            w.name,
            w.source_file_path.display(),
            w.line,
            params.join(", ")
        );
    }
    for d in registry
        .data_providers
        .iter()
        .filter(|d| shown(&d.source_file_path))
    {
        eprintln!(
            "data provider  {:<28} {}:{}",
            d.name,
            d.source_file_path.display(),
            d.line
        );
    }
    for e in registry.errors.iter().filter(|e| shown(&e.file)) {
        eprintln!(
            "import error   {}:{}  {}: {}",
            e.file.display(),
            e.line.unwrap_or(0),
            e.error_type,
            e.message
        );
    }
}

/// `bifrost keys create|list|revoke`: the operator's way to the first key (before any user can
/// log in) and to rotate keys without the API.
pub async fn keys(settings: &Settings, action: KeysAction) -> Result<ExitCode, StartupError> {
    let backends = Backends::open(settings)?;
    let services = Services::new(&backends, settings)?;
    services.prepare_storage(&backends).await;
    let scope_of = |org: Option<&String>| -> Result<Scope, String> {
        match org {
            None => Ok(Scope::Global),
            Some(raw) => bifrost_store::OrgId::parse(raw)
                .map(Scope::Org)
                .map_err(|e| format!("--org: {e}")),
        }
    };
    let actor = "cli:local";
    let outcome = match action {
        KeysAction::Create {
            name,
            org,
            expires_in_days,
        } => {
            let scope = match scope_of(org.as_ref()) {
                Ok(scope) => scope,
                Err(message) => return usage(&message),
            };
            let expires_at = expires_in_days.map(|days| {
                time::OffsetDateTime::now_utc() + time::Duration::days(i64::from(days))
            });
            match services
                .keys
                .create(&name, scope.clone(), expires_at, actor)
                .await
            {
                Ok((record, raw)) => {
                    let event = AuditEvent::new(AuditEventType::KeyCreated, actor, scope)
                        .detail("key_id", record.id.to_string())
                        .detail("key_name", record.name.clone());
                    if let Err(e) = services.audit.append(event).await {
                        tracing::error!(error = %e, "could not audit the key creation");
                    }
                    eprintln!(
                        "created key {} ({}) for {}; store it now, it is not shown again",
                        record.id, record.name, record.scope
                    );
                    println!("{}", raw.expose());
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            }
        }
        KeysAction::List { org } => {
            let scope = match scope_of(org.as_ref()) {
                Ok(scope) => scope,
                Err(message) => return usage(&message),
            };
            match services.keys.list(&scope).await {
                Ok(records) => {
                    for r in records {
                        println!(
                            "{}\t{}\t{}\t{}",
                            r.id,
                            r.name,
                            r.scope,
                            if r.is_revoked() { "revoked" } else { "active" }
                        );
                    }
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            }
        }
        KeysAction::Revoke { key_id } => match KeyId::parse(&key_id) {
            Err(e) => return usage(&format!("key id: {e}")),
            Ok(id) => match services.keys.revoke(&id, actor).await {
                Ok(record) => {
                    let event =
                        AuditEvent::new(AuditEventType::KeyRevoked, actor, record.scope.clone())
                            .detail("key_id", record.id.to_string());
                    if let Err(e) = services.audit.append(event).await {
                        tracing::error!(error = %e, "could not audit the key revocation");
                    }
                    eprintln!("revoked key {}", record.id);
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            },
        },
    };
    match outcome {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(message) => {
            eprintln!("bifrost keys: {message}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn usage(message: &str) -> Result<ExitCode, StartupError> {
    eprintln!("bifrost keys: {message}");
    Ok(ExitCode::from(2))
}
