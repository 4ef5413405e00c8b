"""The house rules, checked: layers import only layers below them, no import cycle
(imports inside functions count), modules of one job under 400 lines, and
runner_hooks on casstore's public API only. See docs/ARCHITECTURE.md."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400

#: Each layer may import itself and the layers with a lower rank, never a higher one.
LAYERS = {
    "casstore._version": 0,
    "casstore.errors": 0,
    "casstore.config": 1,
    "casstore.fileio": 1,
    "casstore.writebehind": 1,
    "casstore.ahead": 1,
    "casstore.format": 2,
    "casstore.backends": 3,
    "casstore.trees": 4,
    "casstore.store": 5,
    "casstore.graph": 6,
    "casstore.maintenance": 7,
    "casstore.runs": 8,
    "casstore.cli": 9,
    "casstore.testing": 9,
    "casstore.__main__": 10,
    "casstore": 10,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(package: str) -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Modules ``name`` imports when it runs: at module level and inside functions,
    but not in ``if TYPE_CHECKING:`` blocks (never executed)."""
    module = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def add(module: str) -> None:
        # Importing a.b.c runs a/__init__ and a/b/__init__ first.
        parts = module.split(".")
        for i in range(1, len(parts) + 1):
            candidate = ".".join(parts[:i])
            if candidate in known:
                found.add(candidate)

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for statement in node.orelse:
                visit(statement)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            add(base)
            for alias in node.names:
                add(f"{base}.{alias.name}")  # a submodule imported by name
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(module)
    # A module's own packages run before it, whatever it imports: not a dependency.
    return {m for m in found if m != name and not name.startswith(m + ".")}


def _graph() -> dict[str, set[str]]:
    modules = {**_modules("casstore"), **_modules("runner_hooks")}
    known = set(modules)
    return {name: _imports(path, name, known) for name, path in modules.items()}


def _layer(module: str) -> tuple[str, int]:
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return prefix, LAYERS[prefix]
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and ARCHITECTURE.md")


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (found := visit(target)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_no_import_cycle() -> None:
    assert _cycle(_graph()) is None


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_layers_import_only_layers_below() -> None:
    wrong = []
    for module, targets in _graph().items():
        if module.startswith("runner_hooks"):
            continue
        layer, rank = _layer(module)
        for target in targets:
            other, other_rank = _layer(target)
            if other_rank > rank or (other_rank == rank and other != layer):
                wrong.append(f"{module} ({layer}) imports {target} ({other})")
    assert wrong == []


def test_runner_hooks_use_the_public_api_only() -> None:
    wrong = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if module.startswith("runner_hooks")
        for target in targets
        if target.startswith("casstore.")
    ]
    assert wrong == []


@pytest.mark.parametrize("package", ["casstore", "runner_hooks"])
def test_modules_stay_small(package: str) -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in _modules(package).items()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
