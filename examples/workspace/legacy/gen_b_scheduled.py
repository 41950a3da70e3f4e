"""Gen B style (Oct 2025): `OrganizationContext`, `context.info(...)`, `context.caller` (v1 `test_scheduled_workflow.py`)."""

from bifrost import OrganizationContext, param, workflow


@workflow(
    name="gen_b_status_check",
    description="Legacy scheduled status check",
    category="Legacy",
    schedule="*/5 * * * *",
    execution_mode="async",
)
@param("target", "string", default_value="all")
async def gen_b_status_check(context: OrganizationContext, target: str = "all"):
    context.info("Status check started", {"target": target, "api_token": "tok-123456"})
    context.warning(f"Caller is {context.caller.email}")
    context.save_checkpoint("checked", {"count": 3})
    context.set_variable("checked", 3)
    return {"target": target, "checked": context.get_variable("checked"), "org": context.org.name if context.org else None}
