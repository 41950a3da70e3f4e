"""The `bifrost` workflow SDK, provided by the Bifrost binary (compatible with the v1 final SDK)."""

from ._sdk import config, executions, files, forms, oauth, organizations, roles, secrets, storage, workflows
from .context import Caller, ExecutionContext, Organization, OrganizationContext
from .decorators import data_provider, param, workflow
from .errors import ConfigurationError, IntegrationError, UserError, ValidationError, WorkflowError
from .models import ConfigType, ExecutionStatus, Form, FormFieldType, IntegrationType, OAuthCredentials, Role

__version__ = "1.0.0"

__all__ = [
    "organizations",
    "workflows",
    "files",
    "storage",
    "forms",
    "executions",
    "roles",
    "config",
    "secrets",
    "oauth",
    "workflow",
    "param",
    "data_provider",
    "ExecutionContext",
    "Organization",
    "Caller",
    "OrganizationContext",
    "ExecutionStatus",
    "OAuthCredentials",
    "ConfigType",
    "FormFieldType",
    "IntegrationType",
    "Role",
    "Form",
    "UserError",
    "WorkflowError",
    "ValidationError",
    "IntegrationError",
    "ConfigurationError",
]
