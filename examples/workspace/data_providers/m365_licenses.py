"""Data providers feeding form dropdowns (v1 `platform/examples/data_providers/*` style)."""

from bifrost import data_provider, param

SKUS = {
    "ENTERPRISEPACK": "Microsoft 365 E3",
    "SPB": "Microsoft 365 Business Premium",
    "EXCHANGESTANDARD": "Exchange Online (Plan 1)",
}


@data_provider(name="get_m365_licenses", description="Available Microsoft 365 SKUs", category="m365", cache_ttl_seconds=600)
async def get_m365_licenses(context):
    return [{"label": label, "value": sku, "metadata": {"vendor": "Microsoft"}} for sku, label in SKUS.items()]


@data_provider(name="get_ticket_priorities", description="PSA ticket priorities", cache_ttl_seconds=3600)
def get_ticket_priorities():
    return [{"label": p.title(), "value": p} for p in ("low", "normal", "high", "critical")]


@data_provider(name="get_departments_for_site", description="Departments filtered by site")
@param("site", "string", required=True)
@param("include_empty", "bool", default_value=False)
async def get_departments_for_site(context, site: str, include_empty: bool = False):
    departments = {"hq": ["Finance", "IT", "Sales"], "branch": ["Sales"]}
    names = departments.get(site.lower(), [])
    if include_empty:
        names = names + ["(none)"]
    return [{"label": n, "value": n.lower()} for n in names]
