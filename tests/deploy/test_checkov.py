"""checkov (static IaC analysis) on infra/, and the honesty of its inline suppressions.

Every failed check must be fixed or suppressed inside the resource with
`// checkov:skip=CKV_...:<reason>`; a suppression whose check no longer fires is stale and fails
too, so the list of accepted risks stays true. No Bicep compiler is needed: checkov parses Bicep
itself (pycep).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from bicep_text import INFRA, ROOT

CHECKOV = os.environ.get("BIFROST_CHECKOV", str(ROOT / ".venv" / "checkov" / "bin" / "checkov"))
SKIP_COMMENT = re.compile(r"checkov:skip=([A-Z0-9_]+)(?::(.*))?")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    if not Path(CHECKOV).is_file():
        pytest.fail(f"checkov not found at {CHECKOV}; run scripts/deploy-checks.sh (it installs it)")
    out = tmp_path_factory.mktemp("checkov")
    # --quiet would drop passed and skipped checks from the JSON report; the suppression audit
    # below needs the skipped ones, so the CLI report is compact but not quiet.
    cmd = [
        CHECKOV,
        "--directory", str(INFRA),
        "--framework", "bicep",
        "--skip-download",
        "--compact",
        "--output", "cli",
        "--output", "json",
        "--output-file-path", str(out),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    json_file = out / "results_json.json"
    assert json_file.is_file(), f"checkov wrote no JSON report (exit {result.returncode}):\n{result.stderr[-3000:]}"
    data = json.loads(json_file.read_text())
    if isinstance(data, list):
        (data,) = [d for d in data if d.get("check_type") == "bicep"]
    cli = (out / "results_cli.txt").read_text() if (out / "results_cli.txt").is_file() else result.stdout
    parse_errors = [
        line.strip() for line in (result.stdout + result.stderr).splitlines() if "rror parsing" in line or "Unexpected token" in line
    ]
    return data, cli, " ".join(cmd), parse_errors


def test_every_bicep_file_parses(report):
    data, _, cmd, parse_errors = report
    assert data["summary"]["parsing_errors"] == 0, (
        f"checkov could not parse {data['summary']['parsing_errors']} file(s), so it checked nothing in them; "
        "pycep accepts a subset of Bicep (e.g. no cidrSubnet(), lambdas, ?. or user-defined types):\n"
        + "\n".join(parse_errors)
        + f"\n(reproduce: {cmd})"
    )
    assert data["summary"]["resource_count"] >= 60, f"checkov saw only {data['summary']['resource_count']} resources"


def test_no_failed_checks(report):
    data, _, cmd, _ = report
    failed = data["results"].get("failed_checks", [])
    lines = [
        f"{c['check_id']} {c['check_name']}: {c['resource']} in infra{c['file_path']}:{c['file_line_range']}"
        for c in failed
    ]
    assert not failed, (
        "checkov failed checks; fix them or add `// checkov:skip=<ID>:<reason>` inside the resource:\n"
        + "\n".join(lines)
        + f"\n(reproduce: {cmd})"
    )


def test_suppressions_have_reasons_and_are_live(report):
    data, _, _, _ = report
    skipped = Counter(
        (c["file_path"].lstrip("/"), c["check_id"]) for c in data["results"].get("skipped_checks", [])
    )
    problems = []
    declared = Counter()
    for path in sorted(INFRA.rglob("*.bicep")):
        relative = str(path.relative_to(INFRA))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            m = SKIP_COMMENT.search(line)
            if not m:
                continue
            declared[(relative, m.group(1))] += 1
            reason = (m.group(2) or "").strip()
            if len(reason) < 20:
                problems.append(f"infra/{relative}:{number}: suppression of {m.group(1)} needs a reason")
    for key in declared:
        if key not in skipped:
            problems.append(
                f"infra/{key[0]}: suppression of {key[1]} is stale (checkov no longer reports it there): remove it"
            )
    assert not problems, "\n".join(problems)
