"""Gen A style (early Oct 2025): `context.get_config`, `context.log(level, msg, data)` (v1 `get_halo_agents.py`)."""

from bifrost import OrganizationContext, param, workflow


@workflow(
    name="gen_a_halo_agents",
    description="List HaloPSA agents (legacy config access)",
    category="Legacy",
    execution_mode="sync",
    timeout_seconds=300,
    requires_org=True,
    expose_in_forms=True,
)
@param("include_inactive", "bool", default_value=False)
async def gen_a_halo_agents(context: OrganizationContext, include_inactive: bool = False):
    base_url = context.get_config("halopsa_base_url")
    if not base_url:
        context.log("error", "HaloPSA is not configured", {"key": "halopsa_base_url"})
        return {"success": False, "error": "halopsa_base_url is not configured"}
    context.log("info", f"Querying {base_url}/api/Report", {"include_inactive": include_inactive})
    return {"success": True, "url": f"{base_url}/api/Report", "agents": []}
