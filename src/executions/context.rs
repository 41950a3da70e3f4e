//! The run context: who runs a workflow, in which scope, with which rights. It is built once
//! where a run enters — an API request, a form, an endpoint, a schedule, the CLI, a queued
//! record — and travels unchanged through the runner to the engine and the SDK host, so the
//! rights pair is never copied field by field again.
//!
//! Depends on the principal type (`auth`) and the engine's caller type; knows nothing of HTTP.

use bifrost_engine::Caller;
use bifrost_store::{OrgId, Scope};

use crate::auth::Principal;

/// What the caller who started a run was allowed; kept on the record so a retry runs with the
/// same rights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunRights {
    pub is_platform_admin: bool,
    pub is_function_key: bool,
}

impl RunRights {
    /// A platform administrator's rights (the scheduler, the CLI).
    pub const PLATFORM: Self = Self {
        is_platform_admin: true,
        is_function_key: false,
    };

    /// v1's API-key rights: platform-wide, as a key.
    pub const API_KEY: Self = Self {
        is_platform_admin: true,
        is_function_key: true,
    };
}

/// Who runs, where, with which rights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunContext {
    /// The workflow's `context.user_id`/`email`/`name`; recorded as `executedBy`.
    pub caller: Caller,
    /// The audit log's actor (`user:…`, `key:…`, `system:scheduler`, `cli:local`).
    pub actor: String,
    /// The organization the run acts for, or GLOBAL.
    pub scope: Scope,
    pub rights: RunRights,
}

impl RunContext {
    pub fn new(caller: Caller, actor: impl Into<String>, scope: Scope, rights: RunRights) -> Self {
        Self {
            caller,
            actor: actor.into(),
            scope,
            rights,
        }
    }

    /// An authenticated principal acting in `scope` (the request's or the form's).
    pub fn of_principal(principal: &Principal, scope: Scope) -> Self {
        Self {
            caller: caller_of(principal),
            actor: principal.audit_actor(),
            scope,
            rights: RunRights {
                is_platform_admin: principal.is_platform_admin(),
                is_function_key: matches!(principal, Principal::FunctionKey { .. }),
            },
        }
    }

    /// v1's anonymous webhook caller in GLOBAL (a public endpoint); `actor` is who the audit
    /// log saw calling.
    pub fn public_webhook(actor: impl Into<String>) -> Self {
        Self::new(
            Caller::public_webhook(),
            actor,
            Scope::Global,
            RunRights::default(),
        )
    }

    /// A workflow API key's run: GLOBAL with v1's API-key rights, recorded as the key.
    pub fn workflow_key(caller_id: &str, key_id: &str) -> Self {
        Self::new(
            Caller::api_key(caller_id),
            format!("workflow_key:{key_id}"),
            Scope::Global,
            RunRights::API_KEY,
        )
    }

    /// The scheduler: GLOBAL, platform rights.
    pub fn scheduler() -> Self {
        Self::new(
            Caller::scheduler(),
            "system:scheduler",
            Scope::Global,
            RunRights::PLATFORM,
        )
    }

    pub fn org_id(&self) -> Option<&OrgId> {
        self.scope.org_id()
    }
}

/// The workflow's `context.user_id`/email/name for this principal. Function keys run as
/// `api_key:{keyId}`, which the history routes use to show a key its own runs.
pub fn caller_of(principal: &Principal) -> Caller {
    match principal {
        Principal::PlatformAdmin {
            user_id,
            email,
            name,
        }
        | Principal::OrgUser {
            user_id,
            email,
            name,
            ..
        } => Caller::new(user_id, email, name),
        Principal::FunctionKey { key_id, .. } => Caller::api_key(&key_id.to_string()),
        Principal::LocalDeveloper => {
            Caller::new("local-developer", "developer@localhost", "Local Developer")
        }
        Principal::Anonymous => Caller::public_webhook(),
    }
}
