"""Plain data models exported by the SDK for compatibility with v1 (`shared/models.py`)."""

import dataclasses
import enum
from typing import Any, Optional


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


@dataclasses.dataclass
class OAuthCredentials:
    connection_name: str
    access_token: str
    token_type: str = "Bearer"
    expires_at: Optional[Any] = None
    refresh_token: Optional[str] = None
    scopes: str = ""

    def get_auth_header(self) -> str:
        return f"{self.token_type} {self.access_token}"

    def is_expired(self) -> bool:
        import datetime

        if self.expires_at is None:
            return False
        expires = self.expires_at
        if isinstance(expires, str):
            expires = datetime.datetime.fromisoformat(expires.replace("Z", "+00:00"))
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=datetime.timezone.utc)
        return expires <= datetime.datetime.now(datetime.timezone.utc)


class Record(dict):
    """A dict returned by SDK calls that also allows attribute access.

    v1 returned pydantic models (`org.name`); v1 JSON is camelCase, so both
    `org.is_active` and `org["isActive"]` work here.
    """

    def __getattr__(self, item):
        if item in self:
            return self[item]
        parts = item.split("_")
        camel = parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])
        if camel in self:
            return self[camel]
        raise AttributeError(item)


class Role(Record):
    """A role record (attribute or key access)."""


class Form(Record):
    """A form record (attribute or key access)."""
