"""IDE stubs for the `bifrost` workflow SDK provided by the Bifrost engine.

Copy this file into your workspace (next to your workflows) for completion and
type checking. A test in the engine crate compares it with the runtime module,
so it matches what the engine actually provides.
"""

import datetime
import enum
from typing import Any, Awaitable, Callable, Literal, Optional, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])

__version__: str

# ---- decorators ------------------------------------------------------------------

def workflow(
    name: Optional[str] = None,
    description: Optional[str] = None,
    category: str = "General",
    tags: Optional[list[str]] = None,
    execution_mode: Optional[Literal["sync", "async"]] = None,
    timeout_seconds: int = 1800,
    retry_policy: Optional[dict[str, int]] = None,
    schedule: Optional[str] = None,
    endpoint_enabled: bool = False,
    allowed_methods: Optional[list[str]] = None,
    disable_global_key: bool = False,
    public_endpoint: bool = False,
    *,
    max_duration_seconds: Optional[int] = None,
    requires_org: Optional[bool] = None,
    expose_in_forms: Optional[bool] = None,
    requires_approval: Optional[bool] = None,
    required_permission: Optional[str] = None,
) -> Callable[[_F], _F]:
    """Mark a function (async or plain) as a workflow. Name: ^[a-z0-9_]+$; timeout 1..7200 s.

    execution_mode defaults to "sync" when endpoint_enabled, else "async".
    The keyword-only arguments are accepted for Gen A workspaces and ignored.
    """

def param(
    name: str,
    type: Any,
    label: Optional[str] = None,
    required: bool = False,
    validation: Optional[dict[str, Any]] = None,
    data_provider: Optional[str] = None,
    default_value: Any = None,
    help_text: Optional[str] = None,
    *,
    default: Any = ...,
    description: Optional[str] = None,
) -> Callable[[_F], _F]:
    """Declare a parameter. type: "string" | "int" | "bool" | "float" | "json" | "list" | "email"."""

def data_provider(
    name: Optional[str] = None,
    description: Optional[str] = None,
    category: str = "General",
    cache_ttl_seconds: int = 300,
    caller_independent: bool = False,
) -> Callable[[_F], _F]:
    """Mark a function as a data provider returning [{"label", "value", "metadata"?}].

    Answers are cached per organization and caller; `caller_independent=True` shares one
    cached answer among everyone in the organization."""

# ---- context ---------------------------------------------------------------------

class Organization:
    id: str
    name: str
    is_active: bool
    def __init__(self, id: str, name: str, is_active: bool = True) -> None: ...
    @property
    def org_id(self) -> str: ...

class Caller:
    user_id: str
    email: str
    name: str
    def __init__(self, user_id: str, email: str, name: str) -> None: ...

class ExecutionContext:
    user_id: str
    email: str
    name: str
    scope: str
    organization: Optional[Organization]
    is_platform_admin: bool
    is_function_key: bool
    execution_id: str
    @property
    def org_id(self) -> Optional[str]: ...
    @property
    def org_name(self) -> Optional[str]: ...
    @property
    def is_global_scope(self) -> bool: ...
    @property
    def executed_by(self) -> str: ...
    @property
    def executed_by_email(self) -> str: ...
    @property
    def executed_by_name(self) -> str: ...
    @property
    def extra_inputs(self) -> dict[str, Any]:
        """Input keys that matched no parameter of the workflow."""
    async def finalize_execution(self) -> dict[str, Any]: ...
    # Gen A/B compatibility
    @property
    def caller(self) -> Caller: ...
    @property
    def org(self) -> Optional[Organization]: ...
    @property
    def tenant_id(self) -> Optional[str]: ...
    def get_config(self, key: str, default: Any = None) -> Any: ...
    def has_config(self, key: str) -> bool: ...
    def get_secret(self, key: str) -> Any: ...
    def get_integration(self, name: str) -> Any: ...
    async def get_oauth_connection(self, name: str) -> Any: ...
    def log(self, level: Any, message: Any, data: Any = None) -> None: ...
    def debug(self, message: Any, data: Any = None) -> None: ...
    def info(self, message: Any, data: Any = None) -> None: ...
    def warning(self, message: Any, data: Any = None) -> None: ...
    def error(self, message: Any, data: Any = None) -> None: ...
    def critical(self, message: Any, data: Any = None) -> None: ...
    def save_checkpoint(self, name: str, data: Any = None) -> None: ...
    def set_variable(self, key: str, value: Any) -> None: ...
    def get_variable(self, key: str, default: Any = None) -> Any: ...

OrganizationContext = ExecutionContext

# ---- errors ------------------------------------------------------------------------

class UserError(Exception):
    """Its message is shown to non-admin users."""

class WorkflowError(Exception): ...
class ValidationError(WorkflowError): ...
class IntegrationError(WorkflowError): ...
class ConfigurationError(WorkflowError): ...

# ---- models ------------------------------------------------------------------------

class ExecutionStatus(str, enum.Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCESS = "Success"
    FAILED = "Failed"
    TIMEOUT = "Timeout"
    COMPLETED_WITH_ERRORS = "CompletedWithErrors"
    CANCELLING = "Cancelling"
    CANCELLED = "Cancelled"

class ConfigType(str, enum.Enum):
    STRING = "string"
    INT = "int"
    BOOL = "bool"
    JSON = "json"
    SECRET_REF = "secret_ref"

class FormFieldType(str, enum.Enum):
    TEXT = "text"
    EMAIL = "email"
    NUMBER = "number"
    SELECT = "select"
    CHECKBOX = "checkbox"
    TEXTAREA = "textarea"
    RADIO = "radio"
    DATETIME = "datetime"
    MARKDOWN = "markdown"
    HTML = "html"
    FILE = "file"

class IntegrationType(str, enum.Enum):
    MSGRAPH = "msgraph"
    HALOPSA = "halopsa"

class OAuthCredentials:
    connection_name: str
    access_token: str
    token_type: str
    expires_at: Optional[Any]
    refresh_token: Optional[str]
    scopes: str
    def __init__(
        self,
        connection_name: str,
        access_token: str,
        token_type: str = "Bearer",
        expires_at: Optional[Any] = None,
        refresh_token: Optional[str] = None,
        scopes: str = "",
    ) -> None: ...
    def get_auth_header(self) -> str: ...
    def is_expired(self) -> bool: ...

class Role(dict[str, Any]):
    """A role record; keys are camelCase, attributes also work in snake_case."""
    def __getattr__(self, item: str) -> Any: ...

class Form(dict[str, Any]):
    """A form record; keys are camelCase, attributes also work in snake_case."""
    def __getattr__(self, item: str) -> Any: ...

# ---- SDK namespaces (scoped to the current execution's organization) ------------------

class config:
    @staticmethod
    async def get(key: str, org_id: Optional[str] = None, default: Any = None) -> Any: ...
    @staticmethod
    async def set(key: str, value: Any, org_id: Optional[str] = None) -> None: ...
    @staticmethod
    async def list(org_id: Optional[str] = None) -> dict[str, Any]: ...
    @staticmethod
    async def delete(key: str, org_id: Optional[str] = None) -> bool: ...

class secrets:
    @staticmethod
    async def get(key: str) -> Optional[str]:
        """The value is masked as *** in this execution's logs, result and error."""
    @staticmethod
    async def set(key: str, value: str) -> None: ...
    @staticmethod
    async def list(org_id: Optional[str] = None) -> list[str]: ...
    @staticmethod
    async def delete(key: str) -> bool: ...

class organizations:
    @staticmethod
    async def create(name: str, domain: Optional[str] = None, is_active: bool = True) -> Any: ...
    @staticmethod
    async def get(org_id: str) -> Any: ...
    @staticmethod
    async def list() -> Any: ...
    @staticmethod
    async def update(org_id: str, **updates: Any) -> Any: ...
    @staticmethod
    async def delete(org_id: str) -> bool: ...

class executions:
    @staticmethod
    async def list(
        workflow_name: Optional[str] = None,
        status: Optional[str] = None,
        start_date: Optional[str] = None,
        end_date: Optional[str] = None,
        limit: int = 50,
    ) -> Any: ...
    @staticmethod
    async def get(execution_id: str) -> Any: ...

class roles:
    @staticmethod
    async def create(name: str, description: str = "", permissions: Any = None) -> Role: ...
    @staticmethod
    async def get(role_id: str) -> Optional[Role]: ...
    @staticmethod
    async def list() -> list[Role]: ...
    @staticmethod
    async def update(role_id: str, **updates: Any) -> Role: ...
    @staticmethod
    async def delete(role_id: str) -> bool: ...
    @staticmethod
    async def list_users(role_id: str) -> list[str]: ...
    @staticmethod
    async def list_forms(role_id: str) -> list[str]: ...
    @staticmethod
    async def assign_users(role_id: str, user_ids: list[str]) -> None: ...
    @staticmethod
    async def assign_forms(role_id: str, form_ids: list[str]) -> None: ...

class forms:
    @staticmethod
    async def list() -> list[Form]: ...
    @staticmethod
    async def get(form_id: str) -> Optional[Form]: ...

class files:
    """Synchronous (as in v1). location: "workspace" or "temp"."""
    @staticmethod
    def read(path: str, location: str = "workspace") -> str: ...
    @staticmethod
    def read_bytes(path: str, location: str = "workspace") -> bytes: ...
    @staticmethod
    def write(path: str, content: str, location: str = "workspace") -> None: ...
    @staticmethod
    def write_bytes(path: str, content: bytes, location: str = "workspace") -> None: ...
    @staticmethod
    def list(directory: str = "", location: str = "workspace") -> list[str]: ...
    @staticmethod
    def delete(path: str, location: str = "workspace") -> bool: ...
    @staticmethod
    def exists(path: str, location: str = "workspace") -> bool: ...

class oauth:
    """Not supported yet: every call raises NotImplementedError."""
    @staticmethod
    def get(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def set_token(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def list_providers(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def delete_token(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def refresh_token(*args: Any, **kwargs: Any) -> Any: ...

class workflows:
    """Not supported yet: every call raises NotImplementedError."""
    @staticmethod
    def execute(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def list(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def get(*args: Any, **kwargs: Any) -> Any: ...

class storage:
    """Not supported yet: every call raises NotImplementedError."""
    @staticmethod
    def download(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def upload(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def generate_url(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def get_metadata(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def delete(*args: Any, **kwargs: Any) -> Any: ...
