"""The package's imports point one way: no cycles, no upward edges, Insider behind its seam.

Every ``import`` in ``reverse_etl`` (including ones inside functions, which are
still dependencies) is read with :mod:`ast`; each module belongs to a layer, and
a module may import only from its own package or from lower layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import reverse_etl

PACKAGE_DIR = Path(reverse_etl.__file__).parent

LAYERS: dict[str, int] = {
    "errors": 0,
    "redact": 0,
    "project": 1,
    "warehouses": 2,
    "state": 2,
    "diff": 3,
    "run": 4,
    "insider": 5,
    "alerts": 5,
    "writeback": 5,
    "context": 6,
    "api": 7,
    "serve": 8,
    "integrations": 8,  # orchestrator steps over the API
    "mcp": 8,  # the MCP server over the API; cli registers its command
    "cli": 9,
    "__init__": 10,
    "__main__": 10,
}
"""Lowest first. Packages on one layer do not import each other."""

MAY_IMPORT_INSIDER = {"insider", "context", "api", "cli", "__init__", "__main__"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            # `from reverse_etl.diff import compare` imports the module reverse_etl.diff.compare
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "reverse_etl" or name.startswith("reverse_etl.")}


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE_DIR.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        graph[module] = {name for name in _imports(path, module) if name in files and name != module}
    return graph


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_top_level_name_has_a_layer() -> None:
    tops = {_top(m) for m in _graph()}
    assert tops <= set(LAYERS), f"add a layer for: {sorted(tops - set(LAYERS))}"


def test_no_upward_or_sideways_import() -> None:
    bad = []
    for module, targets in _graph().items():
        for target in targets:
            a, b = _top(module), _top(target)
            if a == b or (b == "__init__" and target == "reverse_etl"):
                continue
            if LAYERS[b] >= LAYERS[a]:
                bad.append(f"{module} -> {target}")
    assert not bad, "imports that point up or sideways:\n" + "\n".join(sorted(bad))


def test_only_the_composition_root_and_cli_import_insider() -> None:
    bad = [f"{m} -> {t}" for m, targets in _graph().items() for t in targets
           if _top(t) == "insider" and _top(m) not in MAY_IMPORT_INSIDER]
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycle() -> None:
    graph = _graph()
    # Package __init__ modules re-export their children; an edge child -> parent
    # package is the normal way Python loads a child, so it is not a cycle by itself.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt):], nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_named_tables_are_the_tables_a_run_leaves_in_its_workspace(tmp_path: Path) -> None:
    """Every table a run creates in its DuckDB workspace is named in ``diff.tables``."""
    from project_factory import make_project

    from reverse_etl import context
    from reverse_etl.diff import tables
    from reverse_etl.run import runner as runner_module
    from reverse_etl.run.results import SyncResult

    project_dir = make_project(tmp_path / "p", rows=5)
    project = context.load_project(project_dir.root, project_dir.env)
    sync = project.config.syncs[0]
    created: set[str] = set()
    real_engine = runner_module.SyncRunner._engine

    def spy(self: runner_module.SyncRunner, spill_dir: Path | None = None):  # type: ignore[no-untyped-def]
        con = real_engine(self, spill_dir)
        original_close = con.close

        class Watched:
            def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
                return getattr(con, name)

            def close(self) -> None:
                rows = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
                created.update(name for (name,) in rows)
                original_close()

        return Watched()

    destination = context.InsiderDestination(project.config.destination)
    run = runner_module.SyncRunner(
        project.state_dir, project.config.state, sync, destination.mode_for(sync),
        context.open_source(project.config.source, str(project.root)),
        context.resolve_sync_model(project, sync), resolve=lambda n: context.resolve_model_named(project, n, ""))
    runner_module.SyncRunner._engine = spy  # type: ignore[method-assign]
    try:
        run.plan(SyncResult(sync=sync.name, run_id="t", outcome="planned"))
    finally:
        runner_module.SyncRunner._engine = real_engine  # type: ignore[method-assign]
    unnamed = {t for t in created if not t.endswith("_arrow")} - set(tables.ALL_TABLES)
    assert created, "the spy saw no workspace"
    assert not unnamed, f"tables not named in reverse_etl.diff.tables: {sorted(unnamed)}"
