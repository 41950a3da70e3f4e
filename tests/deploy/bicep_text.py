"""Just enough Bicep reading for the deployment checks (no Bicep compiler is available here).

Bicep strings are single-quoted (`\\'` escapes a quote, `'''` opens a verbatim multi-line string),
comments are `//` and `/* */`. These helpers strip comments without touching strings, find
balanced expressions, and list params, outputs and modules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
FUNCTION_APP = INFRA / "modules" / "functionApp.bicep"
SETTINGS_RS = ROOT / "src" / "settings.rs"


def strip_comments(text: str) -> str:
    """Removes // and /* */ comments; keeps strings (and line numbers: newlines stay)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text.startswith("'''", i):
            end = text.find("'''", i + 3)
            end = n if end < 0 else end + 3
            out.append(text[i:end])
            i = end
        elif text[i] == "'":
            j = i + 1
            while j < n and text[j] != "'":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append("\n" * text.count("\n", i, end))
            i = end
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def balanced(text: str, start: int) -> str:
    """The expression starting at `start` up to the bracket that closes the first one opened,
    ignoring brackets inside strings. `text` must be comment-free."""
    depth = 0
    i, n = start, len(text)
    opened = False
    while i < n:
        c = text[i]
        if c == "'":
            j = i + 1
            while j < n and text[j] != "'":
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if c in "([{":
            depth += 1
            opened = True
        elif c in ")]}":
            depth -= 1
            if opened and depth == 0:
                return text[start : i + 1]
        i += 1
    raise ValueError(f"unbalanced expression at offset {start}")


def code(path: Path) -> str:
    return strip_comments(path.read_text(encoding="utf-8"))


def variable(path: Path, name: str) -> str:
    """The comment-free expression of `var <name> = ...`."""
    text = code(path)
    m = re.search(rf"^var\s+{re.escape(name)}\s*=\s*", text, re.M)
    if not m:
        raise AssertionError(f"{path.relative_to(ROOT)} has no `var {name} = ...`")
    return balanced(text, m.end())


@dataclass
class Param:
    name: str
    type: str
    has_default: bool
    line: int


def params(path: Path) -> dict[str, Param]:
    text = code(path)
    found = {}
    for m in re.finditer(r"^param\s+(\w+)\s+(\w+)(\s*=)?", text, re.M):
        found[m.group(1)] = Param(
            name=m.group(1),
            type=m.group(2),
            has_default=bool(m.group(3)),
            line=text.count("\n", 0, m.start()) + 1,
        )
    return found


def outputs(path: Path) -> set[str]:
    return set(re.findall(r"^output\s+(\w+)\s", code(path), re.M))


@dataclass
class Module:
    symbol: str
    path: Path
    params: set[str]
    line: int


def top_level_keys(obj: str) -> set[str]:
    """Keys of a Bicep object literal `{ ... }` at its first level."""
    keys = set()
    depth = 0
    i, n = 0, len(obj)
    line_start = True
    while i < n:
        c = obj[i]
        if c == "'":
            j = i + 1
            while j < n and obj[j] != "'":
                j += 2 if obj[j] == "\\" else 1
            i = j + 1
            line_start = False
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "\n":
            line_start = True
            i += 1
            continue
        if depth == 1 and line_start and not c.isspace():
            m = re.match(r"(\w+)\s*:", obj[i:])
            if m:
                keys.add(m.group(1))
        if not c.isspace():
            line_start = False
        i += 1
    return keys


def modules(path: Path) -> list[Module]:
    text = code(path)
    found = []
    for m in re.finditer(r"^module\s+(\w+)\s+'([^']+)'\s*=\s*(?:if\s*\([^\n]*\)\s*)?", text, re.M):
        body = balanced(text, m.end())
        pm = re.search(r"^\s*params\s*:\s*", body, re.M)
        passed = top_level_keys(balanced(body, pm.end())) if pm else set()
        found.append(
            Module(
                symbol=m.group(1),
                path=(path.parent / m.group(2)).resolve(),
                params=passed,
                line=text.count("\n", 0, m.start()) + 1,
            )
        )
    return found


def setting_names(list_expr: str) -> list[str]:
    """`name: '...'` entries of an app-settings list expression."""
    return re.findall(r"\bname\s*:\s*'([^']*)'", list_expr)


def setting_entries(list_expr: str) -> list[tuple[str, str]]:
    """(name, value expression) of each `{ name: '...' value: ... }` entry."""
    entries = []
    for m in re.finditer(r"\bname\s*:\s*'([^']*)'\s*\n\s*value\s*:\s*([^\n]*)", list_expr):
        entries.append((m.group(1), m.group(2).strip()))
    return entries


@dataclass
class DeclaredSetting:
    const: str
    name: str
    secret: bool


def declared_settings() -> list[DeclaredSetting]:
    """The `KONST = "NAME", secret: bool, ...;` entries of `settings_table!` in src/settings.rs."""
    text = SETTINGS_RS.read_text(encoding="utf-8")
    start = text.find("settings_table! {")
    if start < 0:
        raise AssertionError("src/settings.rs: no `settings_table! {` invocation found")
    body = text[start : text.find("\n}\n", start)]
    return [
        DeclaredSetting(const=m.group(1), name=m.group(2), secret=m.group(3) == "true")
        for m in re.finditer(r'^\s*(\w+)\s*=\s*"([^"]+)"\s*,\s*secret\s*:\s*(true|false)', body, re.M)
    ]


def bicepparam_values(path: Path) -> dict[str, str]:
    text = strip_comments(path.read_text(encoding="utf-8"))
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^param\s+(\w+)\s*=\s*([^\n]*)", text, re.M)}


def bicepparam_using(path: Path) -> str | None:
    m = re.search(r"^using\s+'([^']+)'", strip_comments(path.read_text(encoding="utf-8")), re.M)
    return m.group(1) if m else None
