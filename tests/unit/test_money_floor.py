"""The money floor (`chalicelib/money`) is pure: loans and repay stand on it, it stands on
nothing but the standard library, its own modules and the core's domain errors. No AWS, no
HTTP, no slice, so its arithmetic is testable in milliseconds and cannot reach a table."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

FLOOR = Path(__file__).resolve().parents[2] / "chalicelib" / "money"
ALLOWED = {"chalicelib.core.errors"}


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = "chalicelib.money" if node.level else node.module
            names.add(module)  # and each imported name, which may be a module of a package
            names |= {f"{module}.{alias.name}" for alias in node.names}
    return names


def allowed(name: str) -> bool:
    return any(name == ok or name.startswith(ok + ".") for ok in ("chalicelib.money", *ALLOWED))


@pytest.mark.parametrize("module", sorted(p.name for p in FLOOR.glob("*.py")))
def test_the_money_floor_imports_only_the_standard_library(module):
    for name in imports_of(FLOOR / module):
        top = name.split(".")[0]
        assert top in sys.stdlib_module_names or top == "__future__" or allowed(name), \
            f"{module} imports {name}"


def test_the_check_catches_an_adapter_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from chalicelib.adapters import aws\nimport boto3\n")
    names = imports_of(bad)
    assert {"chalicelib.adapters", "chalicelib.adapters.aws", "boto3"} <= names
    assert not any(allowed(n) for n in names)
