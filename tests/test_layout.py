"""The design card's layering: core/ imports no framework, engine or database library."""
import ast
import sys
from pathlib import Path

from tests.conftest import ROOT

ALLOWED_THIRD_PARTY = {"numpy"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_imports_only_the_standard_library_numpy_and_itself():
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    offenders = {}
    for path in (ROOT / "core").rglob("*.py"):
        bad = imported_roots(path) - stdlib - ALLOWED_THIRD_PARTY - {"core"}
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_storage_and_adapters_do_not_import_front_ends():
    for folder in ("storage", "adapters", "core"):
        for path in (ROOT / folder).rglob("*.py"):
            assert "bot" not in imported_roots(path), path


def test_workers_import_nothing_from_the_front_ends():
    # the voice and avatar workers get their settings with each job or request, so they run without bot/
    offenders = [str(path.relative_to(ROOT)) for folder in ("RVC", "geneface") for path in (ROOT / folder).rglob("*.py")
                 if "bot" in imported_roots(path)]
    assert offenders == []
