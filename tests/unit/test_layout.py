"""Issue 20: the layout's promises, checked on the source so they cannot drift.

No import cycles (function-level imports count: one that dodges a cycle is still a cycle), no
private name imported from another gateway module, ``core/`` importing nothing of the gateway at
run time, every module saying what it owns, and no module over ~400 lines without its reason.
Names imported under ``if TYPE_CHECKING:`` are for type hints only and do not count.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "gateway"
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _runtime_imports(module: str) -> Iterator[tuple[str, str]]:
    """(imported module, imported name) for every import that runs, at any depth of the module."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def walk(node: ast.AST) -> Iterator[tuple[str, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test) == "TYPE_CHECKING":
                yield from (i for n in child.orelse for i in walk_one(n))
                continue
            yield from walk_one(child)

    def walk_one(node: ast.AST) -> Iterator[tuple[str, str]]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ""
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                yield base, alias.name
        else:
            yield from walk(node)

    yield from walk(ast.parse(path.read_text()))


def _edges(module: str) -> set[str]:
    found = set()
    for base, name in _runtime_imports(module):
        target = f"{base}.{name}" if f"{base}.{name}" in MODULES else base
        if target in MODULES and target != module:
            found.add(target)
    return found


def test_no_import_cycles() -> None:
    graph = {m: _edges(m) for m in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = [*path[path.index(n) :], n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in MODULES:
        if m not in state:
            visit(m)


def test_no_private_name_is_imported_from_another_gateway_module() -> None:
    private = [
        f"{m} imports {name} from {base}"
        for m in MODULES
        for base, name in _runtime_imports(m)
        if base.startswith("gateway") and name.startswith("_") and not name.startswith("__")
    ]
    assert private == []


def test_core_imports_nothing_of_the_gateway_at_run_time() -> None:
    reaching_out = [
        f"{m} imports {base}"
        for m in MODULES
        if m.startswith("gateway.core")
        for base, _ in _runtime_imports(m)
        if base.startswith("gateway") and not base.startswith("gateway.core")
    ]
    assert reaching_out == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_says_what_it_owns_and_stays_small(module: str) -> None:
    text = MODULES[module].read_text()
    doc = ast.get_docstring(ast.parse(text))
    assert doc, f"{module} has no docstring saying what it owns"
    lines = text.count("\n")
    assert lines <= MAX_LINES or f"over {MAX_LINES} lines because" in doc, (
        f"{module}: {lines} lines, and its docstring does not say 'over {MAX_LINES} lines because …'"
    )
