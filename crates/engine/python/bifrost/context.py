"""ExecutionContext, Organization and Caller (v1 `shared/context.py`), plus the Gen A/B shims.

The engine builds one ExecutionContext per execution. The legacy logging and
config helpers (`context.info(...)`, `context.get_config(...)`) route into the
engine through `_hooks`, which the engine fills in at start-up, so this module
never imports engine internals.
"""

import dataclasses
import logging
import time
from typing import Any, Optional

# Filled by the engine at start-up: "log" -> fn(level, message, data).
_hooks = {}

_SENSITIVE = ("secret", "password", "token", "key", "credential")


def _sanitize(value, depth=0):
    """Redact sensitive keys and truncate big values, as v1's legacy helpers did."""
    if depth > 8:
        return "[Too Deep]"
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(k, str) and any(s in k.lower() for s in _SENSITIVE):
                out[k] = "[REDACTED]"
            else:
                out[k] = _sanitize(v, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_sanitize(v, depth + 1) for v in list(value)[:100]]
    if isinstance(value, str) and len(value) > 1000:
        return value[:1000] + "..."
    return value


@dataclasses.dataclass
class Organization:
    id: str
    name: str
    is_active: bool = True

    @property
    def org_id(self) -> str:
        return self.id


@dataclasses.dataclass
class Caller:
    user_id: str
    email: str
    name: str


@dataclasses.dataclass
class ExecutionContext:
    user_id: str
    email: str
    name: str
    scope: str
    organization: Optional[Organization]
    is_platform_admin: bool
    is_function_key: bool
    execution_id: str
    _config: dict = dataclasses.field(default_factory=dict, repr=False)
    _integration_calls: list = dataclasses.field(default_factory=list, repr=False)
    _variables: dict = dataclasses.field(default_factory=dict, repr=False)
    _extra_inputs: dict = dataclasses.field(default_factory=dict, repr=False)

    # ---- v1 Gen C properties -------------------------------------------------
    @property
    def org_id(self) -> Optional[str]:
        return self.organization.id if self.organization is not None else None

    @property
    def org_name(self) -> Optional[str]:
        return self.organization.name if self.organization is not None else None

    @property
    def is_global_scope(self) -> bool:
        return self.scope == "GLOBAL"

    @property
    def executed_by(self) -> str:
        return self.user_id

    @property
    def executed_by_email(self) -> str:
        return self.email

    @property
    def executed_by_name(self) -> str:
        return self.name

    @property
    def extra_inputs(self) -> dict:
        """Input keys that matched no parameter (v1 injected them as module globals)."""
        return dict(self._extra_inputs)

    def _track_integration_call(self, integration, method, endpoint, status_code, duration_ms, error=None):
        self._integration_calls.append(
            {
                "timestamp": time.time(),
                "integration": integration,
                "method": method,
                "endpoint": endpoint,
                "status_code": status_code,
                "duration_ms": duration_ms,
                "error": error,
                "success": error is None and (status_code is None or status_code < 400),
            }
        )

    async def finalize_execution(self) -> dict:
        return {"integration_calls": list(self._integration_calls)}

    # ---- Gen A/B shims --------------------------------------------------------
    @property
    def caller(self) -> Caller:
        return Caller(user_id=self.user_id, email=self.email, name=self.name)

    @property
    def org(self) -> Optional[Organization]:
        return self.organization

    @property
    def tenant_id(self) -> Optional[str]:
        return None

    def get_config(self, key: str, default: Any = None) -> Any:
        return self._config.get(key, default)

    def has_config(self, key: str) -> bool:
        return key in self._config

    def get_secret(self, key: str):
        raise NotImplementedError("context.get_secret is not supported; use `await bifrost.secrets.get(key)`")

    def get_integration(self, name: str):
        raise NotImplementedError("context.get_integration is not supported by this Bifrost")

    async def get_oauth_connection(self, name: str):
        raise NotImplementedError(
            f"OAuth connections are not supported yet (context.get_oauth_connection({name!r}))"
        )

    def log(self, level, message, data=None):
        if isinstance(level, int):
            level = logging.getLevelName(level)
        level = str(level).upper()
        if level == "WARN":
            level = "WARNING"
        hook = _hooks.get("log")
        payload = _sanitize(data) if data is not None else None
        if hook is not None:
            hook(level, str(message), payload)

    def debug(self, message, data=None):
        self.log("DEBUG", message, data)

    def info(self, message, data=None):
        self.log("INFO", message, data)

    def warning(self, message, data=None):
        self.log("WARNING", message, data)

    def error(self, message, data=None):
        self.log("ERROR", message, data)

    def critical(self, message, data=None):
        self.log("CRITICAL", message, data)

    def save_checkpoint(self, name: str, data: Any = None) -> None:
        self.log("INFO", f"Checkpoint: {name}", data)

    def set_variable(self, key: str, value: Any) -> None:
        self._variables[key] = value

    def get_variable(self, key: str, default: Any = None) -> Any:
        return self._variables.get(key, default)


# Gen A/B name for the same class.
OrganizationContext = ExecutionContext
