"""Onboard a user for a client organization: config lookup, secret use, validation, partial failure."""

import logging

from bifrost import ExecutionContext, UserError, config, param, secrets, workflow
from modules.psa import normalize_upn

logger = logging.getLogger(__name__)


@workflow(
    name="user_onboarding",
    description="Create a Microsoft 365 user and assign a license",
    category="User Management",
    tags=["m365", "onboarding"],
    timeout_seconds=600,
    retry_policy={"maxAttempts": 2, "backoffSeconds": 5},
)
@param("first_name", "string", required=True)
@param("last_name", "string", required=True)
@param("license_sku", "string", label="License", data_provider="get_m365_licenses", default_value="ENTERPRISEPACK")
@param("manager_email", "email", help_text="Optional manager")
@param("send_welcome", "bool", default_value=True)
async def user_onboarding(
    context: ExecutionContext,
    first_name: str,
    last_name: str,
    license_sku: str = "ENTERPRISEPACK",
    manager_email: str = None,
    send_welcome: bool = True,
):
    if not first_name.strip() or not last_name.strip():
        raise UserError("First and last name are required")
    domain = await config.get("default_domain", default="example.onmicrosoft.com")
    api_key = await secrets.get("GLOBAL--graph-client-secret")
    logger.info(f"Creating {first_name} {last_name} in {context.org_name} with key {api_key}")
    upn = normalize_upn(first_name, last_name, domain)
    seats = await config.get("available_seats", default=0)
    if int(seats) <= 0:
        logger.warning(f"No {license_sku} seats left; user created without a license")
        return {"success": False, "upn": upn, "error": f"No seats available for {license_sku}"}
    return {
        "success": True,
        "upn": upn,
        "license": license_sku,
        "manager": manager_email,
        "welcome_sent": send_welcome,
    }
