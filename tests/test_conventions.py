"""The layering rules of ARCHITECTURE.md, checked by walking every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gridmap"
# Which top-level packages each part of gridmap may import; everything else must not.
OWNERS = {
    "sqlalchemy": "store",
    "geoalchemy2": "store",
    "alembic": "store",
    "flask": "web",
    "werkzeug": "web",
    "click": "cli",
    "waitress": "cli",
    "gunicorn": "cli",
}
LEAVES = {"config", "errors", "crs", "clock"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def part_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_framework_imports_stay_in_their_owner(path):
    part = part_of(path)
    for name in imported_modules(path):
        owner = OWNERS.get(name.split(".")[0])
        assert owner is None or owner == part, f"{path.name} imports {name}, which only gridmap.{owner} may"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_nothing_imports_the_front_doors_and_store_imports_no_domain_module(path):
    part = part_of(path)
    for name in imported_modules(path):
        if not name.startswith("gridmap."):
            continue
        target = name.split(".")[1]
        # `gridmap serve` is the one place a front door calls the other.
        allowed = target == part or (part == "cli" and target == "web")
        assert target not in ("cli", "web") or allowed, f"{path.name} imports {name}"
        if part == "store":
            assert target in LEAVES | {"store"}, f"the store must not import the domain module {name}"
        if part in LEAVES:
            assert target in LEAVES, f"leaf module {path.name} imports {name}"


def test_the_conventions_check_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import flask\nfrom sqlalchemy import select\n")
    assert {"flask", "sqlalchemy"} <= imported_modules(bad)
