"""`@workflow`, `@param` and `@data_provider` (v1 `shared/decorators.py`), plus parameter inference.

Decorators only attach metadata to the function (`_workflow_metadata`,
`_data_provider_metadata`); discovery finds them by scanning module globals.
Invalid arguments raise ValueError at import time so the import error names
the file and line.
"""

import dataclasses
import datetime
import enum
import inspect
import re
import types
import typing
from typing import Any, Optional

VALID_PARAM_TYPES = {"string", "int", "bool", "float", "json", "list", "email"}
VALID_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_NAME_RE = re.compile(r"^[a-z0-9_]+$")
_PY_TYPES = {str: "string", int: "int", float: "float", bool: "bool", list: "list", dict: "json"}
_LEGACY_MODES = {"scheduled": "async"}
_MISSING = object()


@dataclasses.dataclass
class WorkflowParameter:
    name: str
    type: str
    label: Optional[str] = None
    required: bool = False
    validation: Optional[dict] = None
    data_provider: Optional[str] = None
    default_value: Any = None
    help_text: Optional[str] = None
    options: Optional[list] = None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "type": self.type,
            "label": self.label,
            "required": self.required,
            "validation": self.validation,
            "dataProvider": self.data_provider,
            "defaultValue": self.default_value,
            "helpText": self.help_text,
            "options": self.options,
        }


@dataclasses.dataclass
class WorkflowMetadata:
    name: str
    description: str
    category: str = "General"
    tags: list = dataclasses.field(default_factory=list)
    execution_mode: str = "async"
    timeout_seconds: int = 1800
    retry_policy: Optional[dict] = None
    schedule: Optional[str] = None
    endpoint_enabled: bool = False
    allowed_methods: list = dataclasses.field(default_factory=lambda: ["POST"])
    disable_global_key: bool = False
    public_endpoint: bool = False
    source: Optional[str] = None
    source_file_path: Optional[str] = None
    parameters: list = dataclasses.field(default_factory=list)
    parameters_inferred: bool = False
    function: Any = None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "category": self.category,
            "tags": list(self.tags),
            "executionMode": self.execution_mode,
            "timeoutSeconds": self.timeout_seconds,
            "retryPolicy": self.retry_policy,
            "schedule": self.schedule,
            "endpointEnabled": self.endpoint_enabled,
            "allowedMethods": list(self.allowed_methods),
            "disableGlobalKey": self.disable_global_key,
            "publicEndpoint": self.public_endpoint,
            "source": self.source,
            "sourceFilePath": self.source_file_path,
            "parameters": [p.to_dict() for p in self.parameters],
            "parametersInferred": self.parameters_inferred,
        }


@dataclasses.dataclass
class DataProviderMetadata:
    name: str
    description: str
    category: str = "General"
    cache_ttl_seconds: int = 300
    source: Optional[str] = None
    source_file_path: Optional[str] = None
    parameters: list = dataclasses.field(default_factory=list)
    parameters_inferred: bool = False
    function: Any = None
    caller_independent: bool = False

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "category": self.category,
            "cacheTtlSeconds": self.cache_ttl_seconds,
            "callerIndependent": self.caller_independent,
            "source": self.source,
            "sourceFilePath": self.source_file_path,
            "parameters": [p.to_dict() for p in self.parameters],
            "parametersInferred": self.parameters_inferred,
        }


def _default_label(name: str) -> str:
    return name.replace("_", " ").title()


def _source_of(func):
    path = getattr(getattr(func, "__code__", None), "co_filename", "") or ""
    norm = path.replace("\\", "/")
    if "/platform/" in norm:
        return "platform", path
    if "/home/" in norm:
        return "home", path
    if "/workspace/" in norm:
        return "workspace", path
    return "workspace", path


def param(
    name: str,
    type: Any,
    label: Optional[str] = None,
    required: bool = False,
    validation: Optional[dict] = None,
    data_provider: Optional[str] = None,
    default_value: Any = None,
    help_text: Optional[str] = None,
    *,
    default: Any = _MISSING,
    description: Optional[str] = None,
):
    """Declare a workflow or data-provider parameter (stack under `@workflow`)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"@param name must be a non-empty string, got {name!r}")
    if isinstance(type, builtins_type) and type in _PY_TYPES:
        # Gen A early form: @param("name", str, "Label", default="World").
        type = _PY_TYPES[type]
    if type not in VALID_PARAM_TYPES:
        raise ValueError(
            f"Invalid type {type!r} for parameter '{name}'. "
            f"Must be one of: {', '.join(sorted(VALID_PARAM_TYPES))}"
        )
    if validation is not None and not isinstance(validation, dict):
        raise ValueError(f"@param '{name}': validation must be a dict, got {validation!r}")
    if default is not _MISSING:
        default_value = default
    if help_text is None and description is not None:
        help_text = description
    p = WorkflowParameter(
        name=name,
        type=type,
        label=label if label is not None else _default_label(name),
        required=bool(required),
        validation=validation,
        data_provider=data_provider,
        default_value=default_value,
        help_text=help_text,
    )

    def decorator(func):
        meta = getattr(func, "_workflow_metadata", None) or getattr(func, "_data_provider_metadata", None)
        if meta is not None:
            # @param written above @workflow: it comes earlier in source order.
            meta.parameters.insert(0, p)
            if meta.parameters_inferred:
                meta.parameters = [p]
                meta.parameters_inferred = False
            return func
        pending = getattr(func, "_pending_parameters", None)
        if pending is None:
            pending = []
            func._pending_parameters = pending
        pending.append(p)
        return func

    return decorator


builtins_type = type


def _take_parameters(func):
    pending = getattr(func, "_pending_parameters", None)
    if pending is not None:
        try:
            del func._pending_parameters
        except AttributeError:
            pass
        return list(reversed(pending)), False
    return infer_parameters(func), True


def _check_name(kind, name):
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"Invalid {kind} name {name!r}: use lowercase letters, digits and underscores (^[a-z0-9_]+$)"
        )


def workflow(
    name: Optional[str] = None,
    description: Optional[str] = None,
    category: str = "General",
    tags: Optional[list] = None,
    execution_mode: Optional[str] = None,
    timeout_seconds: int = 1800,
    retry_policy: Optional[dict] = None,
    schedule: Optional[str] = None,
    endpoint_enabled: bool = False,
    allowed_methods: Optional[list] = None,
    disable_global_key: bool = False,
    public_endpoint: bool = False,
    *,
    max_duration_seconds: Optional[int] = None,
    requires_org: Optional[bool] = None,
    expose_in_forms: Optional[bool] = None,
    requires_approval: Optional[bool] = None,
    required_permission: Optional[str] = None,
):
    """Mark an (async or plain) function as a workflow."""
    if callable(name) and description is None:
        # Bare `@workflow`.
        return workflow()(name)
    if name is not None:
        _check_name("workflow", name)
    if execution_mode is not None:
        execution_mode = _LEGACY_MODES.get(execution_mode, execution_mode)
        if execution_mode not in ("sync", "async"):
            raise ValueError(f"Invalid execution_mode {execution_mode!r}: must be 'sync' or 'async'")
    if isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, int) or not 1 <= timeout_seconds <= 7200:
        raise ValueError(f"Invalid timeout_seconds {timeout_seconds!r}: must be an integer from 1 to 7200")
    retry = _normalize_retry(retry_policy)
    if schedule is not None and (not isinstance(schedule, str) or not schedule.strip()):
        raise ValueError(f"Invalid schedule {schedule!r}: must be a non-empty cron string")
    if allowed_methods is None:
        methods = ["POST"]
    else:
        if isinstance(allowed_methods, str) or not isinstance(allowed_methods, (list, tuple)):
            raise ValueError(f"Invalid allowed_methods {allowed_methods!r}: must be a list such as ['GET', 'POST']")
        methods = []
        for m in allowed_methods:
            up = str(m).upper()
            if up not in VALID_METHODS:
                raise ValueError(f"Invalid HTTP method {m!r} in allowed_methods: must be one of {', '.join(VALID_METHODS)}")
            methods.append(up)
    if tags is not None and (isinstance(tags, str) or not isinstance(tags, (list, tuple))):
        raise ValueError(f"Invalid tags {tags!r}: must be a list of strings")
    mode = execution_mode if execution_mode is not None else ("sync" if endpoint_enabled else "async")

    def decorator(func):
        wf_name = name if name is not None else func.__name__
        _check_name("workflow", wf_name)
        desc = description if description is not None else _first_doc_line(func)
        params, inferred = _take_parameters(func)
        source, path = _source_of(func)
        func._workflow_metadata = WorkflowMetadata(
            name=wf_name,
            description=desc,
            category=category,
            tags=list(tags or []),
            execution_mode=mode,
            timeout_seconds=timeout_seconds,
            retry_policy=retry,
            schedule=schedule,
            endpoint_enabled=bool(endpoint_enabled),
            allowed_methods=methods,
            disable_global_key=bool(disable_global_key),
            public_endpoint=bool(public_endpoint),
            source=source,
            source_file_path=path,
            parameters=params,
            parameters_inferred=inferred,
            function=func,
        )
        return func

    return decorator


def data_provider(
    name: Optional[str] = None,
    description: Optional[str] = None,
    category: str = "General",
    cache_ttl_seconds: int = 300,
    caller_independent: bool = False,
):
    """Mark a function as a data provider returning `[{label, value, metadata?}]`.

    Answers are cached per organization *and caller* (user, admin rights), because a provider
    may look at its context. `caller_independent=True` declares that the options do not depend
    on who asks, so one cached answer serves everyone in the organization.
    """
    if callable(name) and description is None:
        return data_provider()(name)
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ValueError(f"Invalid data provider name {name!r}: must be a non-empty string")
    if isinstance(cache_ttl_seconds, bool) or not isinstance(cache_ttl_seconds, int) or cache_ttl_seconds < 0:
        raise ValueError(f"Invalid cache_ttl_seconds {cache_ttl_seconds!r}: must be a non-negative integer")
    if not isinstance(caller_independent, bool):
        raise ValueError(f"Invalid caller_independent {caller_independent!r}: must be True or False")

    def decorator(func):
        params, inferred = _take_parameters(func)
        source, path = _source_of(func)
        func._data_provider_metadata = DataProviderMetadata(
            name=name if name is not None else func.__name__,
            description=description if description is not None else _first_doc_line(func),
            category=category,
            cache_ttl_seconds=cache_ttl_seconds,
            caller_independent=caller_independent,
            source=source,
            source_file_path=path,
            parameters=params,
            parameters_inferred=inferred,
            function=func,
        )
        return func

    return decorator


def _normalize_retry(policy):
    if policy is None:
        return None
    if not isinstance(policy, dict):
        raise ValueError(f"Invalid retry_policy {policy!r}: must be a dict")
    aliases = {
        "maxAttempts": ("maxAttempts", "max_attempts"),
        "backoffSeconds": ("backoffSeconds", "backoff_seconds"),
        "maxBackoffSeconds": ("maxBackoffSeconds", "max_backoff_seconds"),
    }
    defaults = {"maxAttempts": 3, "backoffSeconds": 2, "maxBackoffSeconds": 60}
    known = {a for names in aliases.values() for a in names}
    for key in policy:
        if key not in known:
            raise ValueError(f"Unknown retry_policy key {key!r}: expected maxAttempts, backoffSeconds, maxBackoffSeconds")
    out = {}
    for canon, names in aliases.items():
        value = defaults[canon]
        for n in names:
            if n in policy:
                value = policy[n]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"Invalid retry_policy.{canon} {value!r}: must be a non-negative integer")
        out[canon] = value
    if not 1 <= out["maxAttempts"] <= 10:
        raise ValueError(f"Invalid retry_policy.maxAttempts {out['maxAttempts']!r}: must be from 1 to 10")
    return out


def _first_doc_line(func) -> str:
    doc = inspect.getdoc(func) or ""
    for line in doc.splitlines():
        if line.strip():
            return line.strip()
    return ""


# ---- parameter inference (no @param) -------------------------------------------


def is_context_parameter(p: inspect.Parameter) -> bool:
    """v1 rule: first parameter is the context iff named `context` or annotated ExecutionContext."""
    if p.kind not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
        return False
    if p.name == "context":
        return True
    ann = p.annotation
    if ann is inspect.Parameter.empty:
        return False
    if isinstance(ann, str):
        return "ExecutionContext" in ann or "OrganizationContext" in ann
    from .context import ExecutionContext

    try:
        return isinstance(ann, type) and issubclass(ann, ExecutionContext)
    except TypeError:
        return False


def _docstring_params(func) -> dict:
    doc = inspect.getdoc(func) or ""
    out = {}
    for m in re.finditer(r"^\s*:param\s+(?:[^:\s]+\s+)?(\w+)\s*:\s*(.*)$", doc, re.M):
        out[m.group(1)] = m.group(2).strip()
    lines = doc.splitlines()
    in_args = False
    current = None
    base_indent = None
    for line in lines:
        stripped = line.strip()
        if re.match(r"^(Args|Arguments|Parameters|Params)\s*:\s*$", stripped):
            in_args, current, base_indent = True, None, None
            continue
        if not in_args:
            continue
        if not stripped:
            current = None
            continue
        indent = len(line) - len(line.lstrip())
        if base_indent is None:
            base_indent = indent
        if indent < base_indent or (indent == 0 and stripped.endswith(":")):
            in_args = False
            continue
        m = re.match(r"^(\*{0,2}\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$", stripped)
        if indent == base_indent and m:
            current = m.group(1).lstrip("*")
            out.setdefault(current, m.group(3).strip())
        elif current is not None:
            out[current] = (out.get(current, "") + " " + stripped).strip()
    return out


def _unwrap_optional(hint):
    origin = typing.get_origin(hint)
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != len(typing.get_args(hint)):
            return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), True
    return hint, False


def _json_scalar(value):
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def describe_hint(hint, default=inspect.Parameter.empty):
    """Map a type hint to (param type, optional?, options, converter)."""
    hint, optional = _unwrap_optional(hint)
    if hint is inspect.Parameter.empty or hint is typing.Any:
        if default is not inspect.Parameter.empty and default is not None:
            for py, t in _PY_TYPES.items():
                if type(default) is py:
                    return t, optional, None, None
        return "string", optional, None, None
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        values = list(typing.get_args(hint))
        kind = "string"
        if values and all(isinstance(v, bool) for v in values):
            kind = "bool"
        elif values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            kind = "int"
        return kind, optional, [{"label": str(v), "value": _json_scalar(v)} for v in values], None
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        members = list(hint)
        kind = "string"
        if members and all(isinstance(m.value, int) and not isinstance(m.value, bool) for m in members):
            kind = "int"
        opts = [{"label": m.name, "value": _json_scalar(m.value)} for m in members]
        return kind, optional, opts, _enum_converter(hint)
    if hint is datetime.datetime:
        return "datetime", optional, None, _datetime_converter
    if hint is datetime.date:
        return "date", optional, None, _date_converter
    if hint in _PY_TYPES:
        return _PY_TYPES[hint], optional, None, None
    if origin in (list, tuple, set, frozenset) or hint in (tuple, set, frozenset):
        return "list", optional, None, None
    if origin is dict:
        return "json", optional, None, None
    return "json", optional, None, None


def _enum_converter(cls):
    def convert(value):
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            if isinstance(value, str) and value in cls.__members__:
                return cls[value]
            raise ValueError(f"{value!r} is not a valid {cls.__name__}") from None

    return convert


def _datetime_converter(value):
    if isinstance(value, str):
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


def _date_converter(value):
    if isinstance(value, str):
        return datetime.date.fromisoformat(value[:10])
    return value


def _hints(func) -> dict:
    try:
        return typing.get_type_hints(func)
    except Exception:
        return dict(getattr(func, "__annotations__", {}) or {})


def infer_parameters(func) -> list:
    """Build the parameter schema from the signature, type hints, defaults and docstring."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return []
    hints = _hints(func)
    docs = _docstring_params(func)
    params = list(sig.parameters.values())
    if params and is_context_parameter(params[0]):
        params = params[1:]
    out = []
    for p in params:
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        hint = hints.get(p.name, p.annotation)
        kind, optional, options, _ = describe_hint(hint, p.default)
        has_default = p.default is not inspect.Parameter.empty
        default = None
        if has_default:
            default = p.default
            if isinstance(default, enum.Enum):
                default = _json_scalar(default.value)
            elif isinstance(default, (datetime.date, datetime.datetime)):
                default = default.isoformat()
            elif not isinstance(default, (str, int, float, bool, list, dict)) and default is not None:
                default = str(default)
        out.append(
            WorkflowParameter(
                name=p.name,
                type=kind,
                label=_default_label(p.name),
                required=not has_default and not optional,
                default_value=default,
                help_text=docs.get(p.name),
                options=options,
            )
        )
    return out


def converters_for(func) -> dict:
    """Per-parameter input converters (datetime, date, Enum) from type hints."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return {}
    hints = _hints(func)
    out = {}
    for p in sig.parameters.values():
        hint = hints.get(p.name, p.annotation)
        try:
            _, _, _, conv = describe_hint(hint, p.default)
        except Exception:
            conv = None
        if conv is not None:
            out[p.name] = conv
    return out
