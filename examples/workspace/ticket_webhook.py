"""An endpoint-enabled webhook (v1 `example_parameter_handling.py` / `webhook_example.py` style)."""

import logging

from bifrost import ExecutionContext, param, workflow
from modules.psa import ticket_summary


@workflow(
    name="ticket_webhook",
    description="Receive a PSA ticket webhook",
    category="Integrations",
    endpoint_enabled=True,
    allowed_methods=["GET", "POST"],
    disable_global_key=False,
    public_endpoint=True,
)
@param("ticket", "json", required=True, help_text="The PSA ticket payload")
@param("source", "string", default_value="halopsa")
async def ticket_webhook(context: ExecutionContext, ticket: dict, source: str = "halopsa", **extra):
    summary = ticket_summary(ticket)
    logging.info(f"{source} webhook from {context.name}: {summary}")
    return {"accepted": True, "summary": summary, "extra_fields": sorted(extra)}
