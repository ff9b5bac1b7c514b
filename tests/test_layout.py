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


def test_front_ends_reach_the_engines_only_through_bot_common():
    # intake checks, training and the lifecycle live behind bot/common; a front-end never imports an engine's internals
    front_ends = [ROOT / "bot" / "cli.py", *(ROOT / "bot" / "telegram").rglob("*.py"),
                  *(ROOT / "bot" / "discord").rglob("*.py"), *(ROOT / "bot" / "web").rglob("*.py")]
    offenders = {str(p.relative_to(ROOT)): sorted(imported_roots(p) & {"RVC", "geneface"}) for p in front_ends}
    assert {k: v for k, v in offenders.items() if v} == {}


# ---- the whole import graph: one direction, no circles ----

# lowest first: a module imports from its own layer and the layers below, never above. Channels (the bots, the
# web app, the command line and the worker processes) → bot/common → the wiring → deploy/ (the Ray family of
# engines) → adapters and workers → storage → core.
LAYERS = [
    ["core"],
    ["storage", "migrations"],
    ["adapters", "RVC", "geneface"],
    ["deploy"],
    ["bot.personas", "bot.startup", "bot.wiring"],
    ["bot.common"],
    ["bot", "bot.cli", "bot.telegram", "bot.discord", "bot.web", "bot.worker", "bot.ray_worker"],
]
PACKAGES = ["core", "storage", "migrations", "adapters", "RVC", "geneface", "deploy", "bot"]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported(path: Path, name: str, modules: set[str]) -> set[str]:
    """Our modules that `path` imports anywhere (in functions too), except under `if TYPE_CHECKING:`."""
    named: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            named.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            named.add(base)
            named.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    found = set()
    for target in named:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    return {name: _imported(path, name, set(paths)) for name, path in paths.items()}


def _layer(module: str) -> int:
    matches = [(len(prefix), i) for i, prefixes in enumerate(LAYERS) for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    assert matches, f"{module} is in no layer of tests/test_layout.py: say where it belongs"
    return max(matches)[1]


def test_dependencies_run_one_way():
    upward = sorted(f"{m} -> {d}" for m, deps in import_graph().items() for d in deps if _layer(d) > _layer(m))
    assert upward == []


def test_no_module_imports_itself_round_a_circle():
    graph = import_graph()
    # Tarjan's strongly connected components: any with more than one module is a circle
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    assert circles == []
