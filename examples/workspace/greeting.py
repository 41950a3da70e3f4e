"""The smallest useful workflow (v1 `platform/examples/test_workflow.py` style)."""

import logging

from bifrost import ExecutionContext, param, workflow

logger = logging.getLogger(__name__)


@workflow(
    name="simple_greeting",
    description="Greet someone by name",
    category="Examples",
    tags=["example", "greeting"],
)
@param("name", "string", label="Name", required=True, help_text="Who to greet")
@param("greeting_type", "string", default_value="Hello", help_text="Greeting word")
@param("include_timestamp", "bool", default_value=False)
async def simple_greeting(context: ExecutionContext, name: str, greeting_type: str = "Hello", include_timestamp: bool = False):
    logger.info(f"Greeting {name} for org {context.org_id}")
    message = f"{greeting_type}, {name}!"
    if include_timestamp:
        import datetime

        message += f" ({datetime.datetime.now(datetime.timezone.utc).isoformat()})"
    print(f"composed: {message}")
    return {"greeting": message, "org_id": context.org_id, "executed_by": context.email}
