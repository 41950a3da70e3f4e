"""Static checks of infra/ that a Bicep compiler would partly do (none is installable here, see
docs/deploy.md), plus the security properties the deployment promises."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bicep_text import (
    INFRA,
    MAIN,
    ROOT,
    bicepparam_using,
    bicepparam_values,
    code,
    modules,
    outputs,
    params,
    variable,
)

MODULES = INFRA / "modules"
PARAM_FILES = sorted((INFRA / "parameters").glob("*.bicepparam"))


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def all_bicep() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


# ------------------------------------------------------------------ wiring


def test_layout():
    assert MAIN.is_file(), "infra/main.bicep is missing"
    assert [p.name for p in PARAM_FILES] == ["dev.bicepparam", "prod.bicepparam"], (
        f"expected infra/parameters/dev.bicepparam and prod.bicepparam, found {[p.name for p in PARAM_FILES]}"
    )


def test_modules_exist_and_get_exactly_their_params():
    problems = []
    for mod in modules(MAIN):
        if not mod.path.is_file():
            problems.append(f"infra/main.bicep:{mod.line} module {mod.symbol}: {rel(mod.path)} does not exist")
            continue
        declared = params(mod.path)
        for name in sorted(mod.params - set(declared)):
            problems.append(f"infra/main.bicep:{mod.line} passes {name} to {rel(mod.path)}, which has no such param")
        for name, p in sorted(declared.items()):
            if not p.has_default and name not in mod.params:
                problems.append(f"infra/main.bicep:{mod.line} does not pass required param {name} of {rel(mod.path)}")
    assert modules(MAIN), "infra/main.bicep declares no modules"
    assert not problems, "\n".join(problems)


def test_module_outputs_used_by_main_exist():
    text = code(MAIN)
    by_symbol = {m.symbol: m for m in modules(MAIN)}
    problems = []
    for symbol, output in set(re.findall(r"\b(\w+)\.outputs\.(\w+)", text)):
        mod = by_symbol.get(symbol)
        if mod is None:
            problems.append(f"infra/main.bicep reads {symbol}.outputs.{output} but declares no module {symbol}")
        elif output not in outputs(mod.path):
            problems.append(f"infra/main.bicep reads {symbol}.outputs.{output}; {rel(mod.path)} has no such output")
    assert not problems, "\n".join(problems)


def test_every_module_file_is_used():
    used = {m.path for m in modules(MAIN)}
    unused = [rel(p) for p in sorted(MODULES.glob("*.bicep")) if p.resolve() not in used]
    assert not unused, f"modules not referenced by infra/main.bicep: {unused}"


def test_params_are_used():
    problems = []
    for path in all_bicep():
        text = code(path)
        for name, p in params(path).items():
            uses = len(re.findall(rf"\b{re.escape(name)}\b", text))
            if uses < 2:
                problems.append(f"{rel(path)}:{p.line} param {name} is declared but never used")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("param_file", PARAM_FILES, ids=lambda p: p.name)
def test_parameter_files_match_main(param_file):
    assert bicepparam_using(param_file) == "../main.bicep", f"{rel(param_file)} must start with `using '../main.bicep'`"
    declared = params(MAIN)
    values = bicepparam_values(param_file)
    unknown = sorted(set(values) - set(declared))
    missing = sorted(n for n, p in declared.items() if not p.has_default and n not in values)
    assert not unknown, f"{rel(param_file)} sets params infra/main.bicep does not declare: {unknown}"
    assert not missing, f"{rel(param_file)} does not set required params of infra/main.bicep: {missing}"
    secret = values.get("easyAuthClientSecret", "")
    assert secret.startswith("readEnvironmentVariable("), (
        f"{rel(param_file)}: easyAuthClientSecret must come from the environment, never a literal"
    )


def test_required_outputs():
    missing = {"appUrl", "identityClientId", "identityPrincipalId", "keyVaultUri"} - outputs(MAIN)
    assert not missing, f"infra/main.bicep lacks outputs {sorted(missing)}"


# ------------------------------------------------------------------ storage names vs the Rust source


def rust_names(kind: str) -> dict[str, str]:
    """`pub const X: &str = "..."` in src/ whose constant name ends with TABLE/QUEUE/CONTAINER."""
    found = {}
    for path in sorted((ROOT / "src").rglob("*.rs")):
        for m in re.finditer(r'pub const (\w*' + kind + r')\s*:\s*&str\s*=\s*"([^"]+)"', path.read_text(encoding="utf-8")):
            found[m.group(2)] = f"{rel(path)} {m.group(1)}"
    return found


@pytest.mark.parametrize(
    ("kind", "var"),
    [("TABLE", "tableNames"), ("QUEUE", "queueNames"), ("CONTAINER", "containerNames")],
)
def test_storage_lists_cover_the_rust_source(kind, var):
    listed = set(re.findall(r"'([^']+)'", variable(MODULES / "storage.bicep", var)))
    rust = rust_names(kind)
    assert rust, f"found no `pub const *{kind}: &str` in src/; has the naming changed?"
    missing = [f"{name} ({where})" for name, where in sorted(rust.items()) if name not in listed]
    assert not missing, f"infra/modules/storage.bicep `var {var}` lacks: {missing}"


def test_poison_queue_and_function_json_queues_are_listed():
    listed = set(re.findall(r"'([^']+)'", variable(MODULES / "storage.bicep", "queueNames")))
    for fj in sorted((ROOT / "functions").glob("*/function.json")):
        for q in re.findall(r'"queueName"\s*:\s*"([^"]+)"', fj.read_text(encoding="utf-8")):
            assert q in listed, f"{rel(fj)} triggers on queue {q}, missing from storage.bicep queueNames"


# ------------------------------------------------------------------ identity and roles

BUILT_IN_ROLES = {
    "storageBlobDataOwnerRoleId": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "storageQueueDataContributorRoleId": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "storageTableDataContributorRoleId": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "storageBlobDataContributorRoleId": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "keyVaultSecretsOfficerRoleId": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "monitoringMetricsPublisherRoleId": "3913510d-42f4-4e42-8a64-420c390055eb",
}


def test_role_definition_ids_are_the_built_in_ones():
    found = {}
    for path in all_bicep():
        for m in re.finditer(r"^var\s+(\w+RoleId)\s*=\s*'([^']+)'", code(path), re.M):
            found[m.group(1)] = (m.group(2), rel(path))
    for name, (guid, where) in found.items():
        assert name in BUILT_IN_ROLES, f"{where}: unknown role id variable {name}; add it to BUILT_IN_ROLES after checking"
        assert guid == BUILT_IN_ROLES[name], f"{where}: {name} is {guid}, the built-in role is {BUILT_IN_ROLES[name]}"
    assert set(found) == set(BUILT_IN_ROLES), f"role ids not defined anywhere: {sorted(set(BUILT_IN_ROLES) - set(found))}"


def test_the_app_identity_gets_exactly_its_data_roles():
    storage = code(MODULES / "storage.bicep")
    app_roles = variable(MODULES / "storage.bicep", "appRoleIds")
    assert set(re.findall(r"\w+RoleId", app_roles)) == {
        "storageBlobDataOwnerRoleId",
        "storageQueueDataContributorRoleId",
        "storageTableDataContributorRoleId",
    }
    assert "principalId: appPrincipalId" in storage
    vault = code(MODULES / "keyVault.bicep")
    assert "keyVaultSecretsOfficerRoleId)" in vault and "principalId: appPrincipalId" in vault
    # No broad roles anywhere.
    for path in all_bicep():
        text = code(path)
        for broad in ("Owner'", "Contributor'", "b24988ac-6180-42a0-ab88-20f7382dd24c", "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"):
            assert broad not in text, f"{rel(path)} refers to a broad role ({broad})"


def test_one_user_assigned_identity_and_no_system_assigned():
    site = code(MODULES / "functionApp.bicep")
    assert "type: 'UserAssigned'" in site and "SystemAssigned" not in site
    assert "keyVaultReferenceIdentity: identityId" in site


# ------------------------------------------------------------------ security properties

REQUIRED = {
    "modules/functionApp.bicep": [
        "httpsOnly: true",
        "minTlsVersion: '1.2'",
        "scmMinTlsVersion: '1.2'",
        "ftpsState: 'Disabled'",
        "remoteDebuggingEnabled: false",
        "http20Enabled: true",
        "name: 'authsettingsV2'",
        "enabled: true",  # platform / provider / token store
        "clientSecretSettingName: 'MICROSOFT_PROVIDER_AUTHENTICATION_SECRET'",
        "name: 'custom'",  # Flex runtime
    ],
    "modules/storage.bicep": [
        "allowBlobPublicAccess: false",
        "minimumTlsVersion: 'TLS1_2'",
        "supportsHttpsTrafficOnly: true",
        "allowSharedKeyAccess: allowSharedKeyAccess",
        "defaultToOAuthAuthentication: true",
        "publicAccess: 'None'",
    ],
    "modules/keyVault.bicep": [
        "enableRbacAuthorization: true",
        "enableSoftDelete: true",
        "enablePurgeProtection: true",
        "publicNetworkAccess: publicNetworkAccess",
    ],
    "modules/monitoring.bicep": [
        "DisableLocalAuth: true",
        "WorkspaceResourceId: workspace.id",
    ],
}


@pytest.mark.parametrize("file", sorted(REQUIRED))
def test_security_properties(file):
    text = code(INFRA / file)
    missing = [p for p in REQUIRED[file] if p not in text]
    assert not missing, f"infra/{file} lacks {missing}"


def test_token_store_on_and_anonymous_deferred_to_the_app():
    auth = code(MODULES / "functionApp.bicep")
    token_store = auth[auth.index("tokenStore") :]
    assert re.match(r"tokenStore\s*:\s*\{\s*enabled\s*:\s*true", token_store), "Easy Auth token store must be on"
    assert "unauthenticatedClientAction: 'AllowAnonymous'" in auth


def test_shared_key_only_for_the_elastic_premium_content_share():
    main = code(MAIN)
    assert re.search(r"allowSharedKeyAccess\s*:\s*useContentShare\b", main)
    assert re.search(r"var useContentShare = !isFlex && empty\(containerImage\) && elasticPremiumContentShare", main)
    assert "param elasticPremiumContentShare bool = false" in main


def test_no_secret_has_a_default_or_is_output():
    for path in all_bicep():
        text = code(path)
        for m in re.finditer(r"@secure\(\)\s*param\s+(\w+)\s+\w+(?:\s*=\s*([^\n]*))?", text):
            assert m.group(2) in (None, "''"), f"{rel(path)}: secure param {m.group(1)} has a default value {m.group(2)}"
            assert not re.search(rf"^output\s+\w+\s+\w+\s*=.*\b{m.group(1)}\b", text, re.M), (
                f"{rel(path)} outputs secure param {m.group(1)}"
            )
        assert not re.search(r"^output[^\n]*listKeys", text, re.M), f"{rel(path)} outputs a storage key"
