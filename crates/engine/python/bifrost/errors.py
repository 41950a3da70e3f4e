"""Exception types workflows raise to signal expected failures (v1 `shared/errors.py`)."""


class UserError(Exception):
    """An error whose message is safe to show to non-admin users."""


class WorkflowError(Exception):
    """Base class for workflow-level failures."""


class ValidationError(WorkflowError):
    """Input or data failed validation."""


class IntegrationError(WorkflowError):
    """A call to an external system failed."""


class ConfigurationError(WorkflowError):
    """Required configuration is missing or invalid."""
