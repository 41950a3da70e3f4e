"""The app settings the template sets vs. the settings the binary declares.

Source of truth for the binary: the `settings_table!` in src/settings.rs (`KONST = "NAME",
secret: ..`). Source of truth for Azure: the ONE list `var appSettings` in
infra/modules/functionApp.bicep. Every declared setting is either set there or listed below in
DELIBERATELY_ABSENT with the reason; everything set there is either declared by the binary or a
platform/host setting in PLATFORM_SETTINGS with the reason.

When src/settings.rs gains a setting (e.g. BIFROST_ALLOWED_ORIGINS), a test here fails and says
which name is missing where.
"""

from __future__ import annotations

import re

import pytest

from bicep_text import (
    FUNCTION_APP,
    INFRA,
    ROOT,
    code,
    declared_settings,
    setting_entries,
    setting_names,
    variable,
)

LIST_FILE = FUNCTION_APP.relative_to(ROOT)
LIST = f"{LIST_FILE} `var appSettings`"
THIS = "tests/deploy/test_settings_vs_template.py"

# Declared by the binary, deliberately not set by the template in Azure.
DELIBERATELY_ABSENT = {
    "FUNCTIONS_CUSTOMHANDLER_PORT": "set by the Functions host for the handler process (a loopback port it picks)",
    "WEBSITE_AUTH_ENABLED": "set by App Service when Easy Auth (authsettingsV2) is enabled; setting it by hand "
    "would make Bifrost trust X-MS-CLIENT-PRINCIPAL headers that no Easy Auth vouches for",
    "AzureWebJobsStorage": "connection string with an account key; storage is identity-based "
    "(AzureWebJobsStorage__accountName/__clientId/__credential)",
    "BIFROST_PORT": "standalone only: under the host the port comes from FUNCTIONS_CUSTOMHANDLER_PORT",
    "BIFROST_BIND": "standalone only: under the host the binary binds 127.0.0.1",
    "BIFROST_MASTER_KEY": "key of the local secret store, unused with BIFROST_SECRETS=keyvault; a secret that must "
    "not sit in app settings",
    "BIFROST_DEV_IDENTITY": "developer machines only; the binary refuses `admin` under the Functions host",
    "BIFROST_TIMER_EXECUTION_CLEANUP": "standalone only: functions/execution_cleanup/function.json holds the schedule",
    "BIFROST_TIMER_SCHEDULE_PROCESSOR": "standalone only: functions/schedule_processor/function.json holds the schedule",
    "BIFROST_TIMER_RETENTION": "standalone only: functions/retention/function.json holds the schedule",
    "BIFROST_WORKER_SLOTS": "the in-process queue worker is off under the host with Azure Storage; the queue "
    "trigger (host.json extensions.queues.batchSize) decides concurrency",
    "BIFROST_LOG_FORMAT": "`auto` (the default) already writes JSON lines under the Functions host",
    "BIFROST_TRUSTED_PROXIES": "under the host the binary trusts the loopback host, which forwards App Service's "
    "X-Forwarded-For; Front Door's backend addresses are a large, changing service tag, not a fixed list",
}

# Set by the template, read by the Functions host / App Service rather than by the binary.
PLATFORM_SETTINGS = {
    "AzureWebJobsStorage__credential": "host: identity-based AzureWebJobsStorage (the binary infers managed "
    "identity from __accountName)",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "host: where telemetry goes",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "host: send telemetry with the managed identity (local auth is off)",
    "MICROSOFT_PROVIDER_AUTHENTICATION_SECRET": "Easy Auth: the client secret setting named by "
    "authsettingsV2 clientSecretSettingName (a Key Vault reference)",
    "FUNCTIONS_WORKER_RUNTIME": "host: `custom` handler (Elastic Premium; Flex sets it in functionAppConfig)",
    "FUNCTIONS_EXTENSION_VERSION": "host: runtime ~4 (Elastic Premium; Flex rejects it)",
    "WEBSITE_RUN_FROM_PACKAGE": "platform: Elastic Premium package location",
    "WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID": "platform: identity that fetches the package URL",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING": "platform: Elastic Premium Azure Files content share (Key Vault reference)",
    "WEBSITE_CONTENTSHARE": "platform: name of that content share",
    "WEBSITE_SKIP_CONTENTSHARE_VALIDATION": "platform: a content share behind a Key Vault reference cannot be "
    "pre-validated",
    "WEBSITES_ENABLE_APP_SERVICE_STORAGE": "platform: container variant, no /home mount needed",
    "WEBSITES_PORT": "platform: container variant listens on 8080 (non-root)",
}

# Values the Azure deployment depends on.
EXPECTED_VALUES = {
    "BIFROST_STORAGE": "'azure'",
    "BIFROST_SECRETS": "'keyvault'",
    "AzureWebJobsStorage__credential": "'managedidentity'",
    "FUNCTIONS_WORKER_RUNTIME": "'custom'",
}


@pytest.fixture(scope="module")
def declared():
    found = declared_settings()
    # Guard against a parser that silently finds nothing.
    names = {s.name for s in found}
    assert len(found) >= 20 and "FUNCTIONS_CUSTOMHANDLER_PORT" in names, (
        f"parsed only {sorted(names)} from src/settings.rs settings_table!; has its entry format "
        '(`KONST = "NAME", secret: bool, ...;`) changed?'
    )
    return found


@pytest.fixture(scope="module")
def app_settings_expr():
    return variable(FUNCTION_APP, "appSettings")


@pytest.fixture(scope="module")
def template_names(app_settings_expr):
    names = setting_names(app_settings_expr)
    assert names, f"{LIST} lists no `name: '...'` entries"
    return names


def test_every_declared_setting_is_set_or_deliberately_absent(declared, template_names):
    problems = []
    for s in declared:
        if s.name not in template_names and s.name not in DELIBERATELY_ABSENT:
            problems.append(
                f"src/settings.rs declares {s.name} ({s.const}) but {LIST} does not set it and {THIS} "
                f"DELIBERATELY_ABSENT does not list it: add `{{ name: '{s.name}', value: ... }}` to the list, "
                f"or add '{s.name}': '<why Azure does not need it>' to DELIBERATELY_ABSENT"
            )
    assert not problems, "\n".join(problems)


def test_every_template_setting_is_declared_or_a_platform_setting(declared, template_names):
    declared_names = {s.name for s in declared}
    problems = [
        f"{LIST} sets {name}, which src/settings.rs settings_table! does not declare and {THIS} "
        f"PLATFORM_SETTINGS does not allow: declare it in the binary, or add '{name}': '<who reads it>' to "
        f"PLATFORM_SETTINGS"
        for name in dict.fromkeys(template_names)
        if name not in declared_names and name not in PLATFORM_SETTINGS
    ]
    assert not problems, "\n".join(problems)


def test_lists_in_this_file_stay_true(declared, template_names):
    declared_names = {s.name for s in declared}
    problems = []
    for name in DELIBERATELY_ABSENT:
        if name not in declared_names:
            problems.append(f"{THIS} DELIBERATELY_ABSENT lists {name}, which src/settings.rs no longer declares: drop it")
        if name in template_names:
            problems.append(f"{name} is in {THIS} DELIBERATELY_ABSENT but {LIST} sets it: keep one")
    for name in PLATFORM_SETTINGS:
        if name in declared_names:
            problems.append(
                f"{name} is in {THIS} PLATFORM_SETTINGS but src/settings.rs declares it: it is a Bifrost setting now; "
                "remove it from PLATFORM_SETTINGS"
            )
    assert not problems, "\n".join(problems)


def test_settings_the_binary_marks_secret_are_never_set(declared, template_names):
    secret = [s.name for s in declared if s.secret and s.name in template_names]
    assert not secret, (
        f"{LIST} sets {secret}, which src/settings.rs marks `secret: true`; secrets belong in Key Vault "
        "(a Key Vault reference in a platform setting) or nowhere"
    )


def test_azure_mode_values(app_settings_expr):
    values = dict(setting_entries(app_settings_expr))
    for name, expected in EXPECTED_VALUES.items():
        assert values.get(name) == expected, f"{LIST}: {name} must be {expected}, found {values.get(name)!r}"
    assert values["AzureWebJobsStorage__clientId"] == values["AZURE_KEY_VAULT_CLIENT_ID"] == "identityClientId", (
        "storage and Key Vault must use the user-assigned identity's client id (identityClientId)"
    )


def test_no_account_key_or_plain_secret_in_app_settings(app_settings_expr):
    for needle in ("AccountKey", "listKeys(", "SharedAccessSignature", "DefaultEndpointsProtocol"):
        assert needle not in app_settings_expr, f"{LIST} contains {needle!r}: no keys or connection strings in app settings"
    for name, value in setting_entries(app_settings_expr):
        if name in ("MICROSOFT_PROVIDER_AUTHENTICATION_SECRET", "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING"):
            assert value.startswith("'@Microsoft.KeyVault(SecretUri="), f"{name} must be a Key Vault reference, found {value}"


def test_the_list_is_the_only_place_that_sets_app_settings(declared):
    site_uses = re.findall(r"^\s*appSettings\s*:\s*(\w+)", code(FUNCTION_APP), re.M)
    assert site_uses == ["appSettings"], f"{LIST_FILE}: siteConfig.appSettings must be the `appSettings` list, found {site_uses}"
    names = {s.name for s in declared} | set(PLATFORM_SETTINGS)
    problems = []
    for path in sorted(INFRA.rglob("*.bicep")):
        text = code(path)
        if re.search(r"name\s*:\s*'appsettings'", text, re.I):
            problems.append(f"{path.relative_to(ROOT)} declares a `config/appsettings` resource: use {LIST}")
        if path == FUNCTION_APP:
            continue
        if re.search(r"^\s*appSettings\s*:", text, re.M):
            problems.append(f"{path.relative_to(ROOT)} sets siteConfig.appSettings: use {LIST}")
        for m in re.finditer(r"\bname\s*:\s*'([^']+)'", text):
            if m.group(1) in names:
                problems.append(f"{path.relative_to(ROOT)} names setting {m.group(1)}: set it only in {LIST}")
    assert not problems, "\n".join(problems)


def test_no_platform_auth_flag_in_the_template():
    for path in sorted(INFRA.rglob("*.bicep")) + sorted(INFRA.rglob("*.bicepparam")):
        assert "WEBSITE_AUTH_ENABLED" not in code(path), (
            f"{path.relative_to(ROOT)} mentions WEBSITE_AUTH_ENABLED outside comments: App Service sets it itself"
        )
