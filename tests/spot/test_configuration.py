"""docs/configuration.md lists exactly the environment variables the settings read.

The settings modules (and the entry points that pick one: ``manage.py``, ``spot/*.py``) are parsed,
not imported: a call to an ``env_*`` reader, ``os.environ.get``, ``os.environ.setdefault``,
``os.getenv`` or a subscript ``os.environ["..."]`` with a string literal as its first argument is a
variable read. Each must have a row in the table of the section "Variables the settings read", and
that row must name every file that reads it; a row for a variable nothing reads is an error too.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"
SECTION = "## Variables the settings read"
READERS = {"env_str", "env_int", "env_float", "env_bool", "env_list", "env_int_map", "env_rate", "getenv"}
ENVIRON_METHODS = {"get", "setdefault"}


def _sources() -> list[Path]:
    return sorted([*ROOT.glob("settings/*.py"), *ROOT.glob("spot/*.py"), ROOT / "manage.py"])


def _is_environ(node: ast.expr) -> bool:
    """``os.environ`` or a bare ``environ``."""
    if isinstance(node, ast.Attribute):
        return node.attr == "environ"
    return isinstance(node, ast.Name) and node.id == "environ"


def _literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def variables_read(path: Path) -> set[str]:
    """Names of the environment variables ``path`` reads with a literal name."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        name = None
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Name) and func.id in READERS:
                name = _literal(node.args[0])
            elif isinstance(func, ast.Attribute) and (
                func.attr in READERS or (func.attr in ENVIRON_METHODS and _is_environ(func.value))
            ):
                name = _literal(node.args[0])
        elif isinstance(node, ast.Subscript) and _is_environ(node.value):
            name = _literal(node.slice)
        if name is not None:
            found.add(name)
    return found


def readers_by_variable() -> dict[str, set[str]]:
    """Variable -> the repository paths of the files that read it."""
    readers: dict[str, set[str]] = defaultdict(set)
    for path in _sources():
        for name in variables_read(path):
            readers[name].add(path.relative_to(ROOT).as_posix())
    return readers


def documented() -> dict[str, str]:
    """Variable -> its row's "read by" cell, from the table of the section ``SECTION``."""
    text = DOC.read_text(encoding="utf-8")
    assert SECTION in text, f"{DOC.name} has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([A-Z][A-Z0-9_]*)`", cells[0]) if line.startswith("|") else None
        if match:
            assert match[1] not in rows, f"{match[1]} has two rows in {DOC.name}"
            assert len(cells) == 4, f"the row of {match[1]} needs 4 cells: variable, default, read by, meaning"
            rows[match[1]] = cells[2]
    return rows


def test_the_parser_finds_every_kind_of_read(tmp_path):
    source = tmp_path / "sample.py"
    source.write_text(
        "import os\nfrom os import environ\n"
        'A = env_str("A_STR", "x")\nB = env_int("B_INT", 1)\nC = env_float("C_FLOAT", 1.0)\n'
        'D = env_bool("D_BOOL", False)\nE = env_list("E_LIST", [])\nF = os.environ.get("F_GET")\n'
        'G = os.environ["G_ITEM"]\nos.environ.setdefault("H_DEFAULT", "x")\nI = os.getenv("I_GETENV")\n'
        'J = environ["J_BARE"]\nK = env.env_str("K_MODULE")\nL = os.environ.get(name)\nM = {"N": 1}.get("N")\n'
    )

    assert variables_read(source) == {
        "A_STR",
        "B_INT",
        "C_FLOAT",
        "D_BOOL",
        "E_LIST",
        "F_GET",
        "G_ITEM",
        "H_DEFAULT",
        "I_GETENV",
        "J_BARE",
        "K_MODULE",
    }


def test_every_variable_the_settings_read_is_documented_with_the_files_that_read_it():
    readers, rows = readers_by_variable(), documented()

    missing = sorted(set(readers) - set(rows))
    assert not missing, f"read but not in the table of docs/configuration.md: {', '.join(missing)}"
    unnamed = sorted(
        f"{name} (read by {path})" for name, paths in readers.items() for path in paths if path not in rows[name]
    )
    assert not unnamed, f"rows of docs/configuration.md that do not name a file reading them: {', '.join(unnamed)}"


def test_every_documented_variable_is_read_somewhere():
    stale = sorted(set(documented()) - set(readers_by_variable()))

    assert not stale, f"in the table of docs/configuration.md but read by nothing: {', '.join(stale)}"
