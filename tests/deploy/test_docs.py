"""docs/deploy.md against infra/main.bicep: every parameter the doc names exists, and every
parameter of the template (required ones above all) is documented."""

from __future__ import annotations

import re

import pytest

from bicep_text import INFRA, MAIN, ROOT, declared_settings, params

DOC = ROOT / "docs" / "deploy.md"

# camelCase words the doc puts in backticks that are not parameters of main.bicep.
NOT_PARAMETERS = {
    "authsettingsV2",
    "deploymentMethod",  # an output
    "appUrl",
    "functionAppName",
    "functionAppHostName",
    "identityClientId",
    "identityPrincipalId",
    "keyVaultUri",
    "storageAccountName",
    "rawKey",
    "orgId",
    "expiresInDays",
    "id_token",
    "readEnvironmentVariable",  # a Bicep function
}


@pytest.fixture(scope="module")
def doc() -> str:
    assert DOC.is_file(), "docs/deploy.md is missing"
    return DOC.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def template_params():
    found = params(MAIN)
    assert found, "no params parsed from infra/main.bicep"
    return found


def table_params(doc: str) -> list[str]:
    section = doc.split("\n## Parameters", 1)
    assert len(section) == 2, "docs/deploy.md needs a `## Parameters` section"
    body = section[1].split("\n## ", 1)[0]
    return re.findall(r"^\|\s*`(\w+)`\s*\|", body, re.M)


def mentioned(doc: str) -> set[str]:
    names = set(table_params(doc))
    # `--parameters name=value` / `-p name=value` and `name=value` in backticks
    names |= set(re.findall(r"(?:--parameters|-p)\s+['\"]?([A-Za-z]\w*)=", doc))
    names |= set(re.findall(r"`([a-z]\w*)=[^`]*`", doc))
    # `param name = ...` (bicepparam snippets)
    names |= set(re.findall(r"^\s*param\s+(\w+)\s*=", doc, re.M))
    # camelCase identifiers in backticks: parameters unless known otherwise
    names |= {w for w in re.findall(r"`([a-z]+[A-Z]\w*)`", doc) if w not in NOT_PARAMETERS}
    return names


def test_every_parameter_the_doc_names_exists(doc, template_params):
    unknown = sorted(mentioned(doc) - set(template_params))
    assert not unknown, (
        f"docs/deploy.md names parameters infra/main.bicep does not declare: {unknown} "
        "(a renamed parameter? if a word is not meant as a parameter, add it to NOT_PARAMETERS in tests/deploy/test_docs.py)"
    )


def test_every_required_parameter_is_documented(doc, template_params):
    required = [n for n, p in template_params.items() if not p.has_default]
    assert required, "infra/main.bicep has no required parameter; expected namePrefix and easyAuthClientId"
    listed = set(table_params(doc))
    missing = [n for n in required if n not in listed]
    assert not missing, f"docs/deploy.md does not document required parameters {missing}"
    intro = re.search(r"Required:([^\n]*)", doc)
    assert intro and all(f"`{n}`" in intro.group(1) for n in required), (
        f"docs/deploy.md `## Parameters` must start with 'Required: ' naming {required}"
    )


def test_every_parameter_is_in_the_table(doc, template_params):
    listed = table_params(doc)
    missing = [n for n in template_params if n not in listed]
    duplicated = sorted({n for n in listed if listed.count(n) > 1})
    assert not missing, f"docs/deploy.md parameter table lacks {missing}"
    assert not duplicated, f"docs/deploy.md parameter table lists {duplicated} twice"


def test_bifrost_settings_named_in_the_doc_exist(doc):
    declared = {s.name for s in declared_settings()}
    # Environment variables the parameter files read are not app settings.
    env_vars = set()
    for path in (INFRA / "parameters").glob("*.bicepparam"):
        env_vars |= set(re.findall(r"readEnvironmentVariable\('(\w+)'", path.read_text(encoding="utf-8")))
    named = set(re.findall(r"\b(BIFROST_[A-Z_]+)", doc))
    unknown = sorted(named - declared - env_vars)
    assert not unknown, f"docs/deploy.md names settings src/settings.rs does not declare: {unknown}"


def test_the_walkthrough_covers_the_brief(doc):
    for needle in (
        "## Prerequisites",
        "az deployment group create",
        "first sign-in",
        "/api/keys",
        "## Rotating keys",
        "## Upgrading",
        "## Rolling back",
        "## What it costs",
        "as of",
        "/api/health",
        "OpenID Connect",
    ):
        assert needle.lower() in doc.lower(), f"docs/deploy.md lacks {needle!r}"
