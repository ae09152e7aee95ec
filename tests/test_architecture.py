"""The import graph of engine/ and lth_tui/, read with `ast`: no cycles, no private names, read paths torch-free.

Every import counts, the ones inside functions too (a function-level import only hides a cycle
from Python; it is still a cycle for the reader). Imports under `if TYPE_CHECKING:` are left
out: they are never executed. The graph is built from source, so the tests are instant and do
not import torch.
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "lth_tui")

# Modules on the read-only paths (`runs`, `export` md/json/csv, `presets`, `--help`; see
# tests/test_readonly_commands.py) and the app's launch path: nothing they import at module
# level may import torch (or the UI stack). Their function-level imports are the lazy ones.
TORCH_FREE = ("engine.catalog", "engine.config", "engine.experiments", "engine.layout", "engine.launch",
              "engine.overlap", "engine.process", "engine.recipes", "engine.records", "engine.run_index",
              "engine.schema", "engine.steps", "engine.store", "engine.summary", "lth_tui.cli", "lth_tui.export",
              "lth_tui.export_runs", "lth_tui.presets")
HEAVY = ("torch", "textual", "plotext")

# Left in files other parts of issue 11 are rewriting now (the one training loop; screens that
# own their workers). Each entry must still occur, so the test says when one can go, and none
# may be added.
KNOWN_PRIVATE_IMPORTS: set[tuple[str, str]] = set()
KNOWN_CYCLES: set[frozenset[str]] = set()


@dataclass(frozen=True)
class Import:
    """One import statement's target as seen from `source`."""

    source: str
    target: str  # a module of engine/ or lth_tui/, or an outside module's top name
    names: tuple[str, ...]  # the names taken from it (`from target import a, b`), or () for `import target`
    line: int
    module_level: bool  # executed when `source` is imported (not inside a function)


def _module_files() -> dict[str, Path]:
    files = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            files[name] = path
    return files


MODULES = _module_files()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, in_function: bool = False):
    """(node, inside a function) for every node, skipping `if TYPE_CHECKING:` bodies."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other, in_function
                yield from _walk(other, in_function)
            continue
        yield child, in_function
        yield from _walk(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))


def _resolve(source: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = source.split(".") if MODULES[source].name == "__init__.py" else source.split(".")[:-1]
    base = package[:len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(source: str) -> list[Import]:
    tree = ast.parse(MODULES[source].read_text(encoding="utf-8"), filename=str(MODULES[source]))
    found = []
    for node, in_function in _walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(source, alias.name, (), node.lineno, not in_function))
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(source, node)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:  # `from engine import runner`: the submodule is what is imported
                    found.append(Import(source, sub, (), node.lineno, not in_function))
                else:
                    found.append(Import(source, target, (alias.name,), node.lineno, not in_function))
    return found


IMPORTS = {name: _imports(name) for name in MODULES}


def _internal(target: str) -> str | None:
    """The module of ours an import names (`engine.x.y` may be attribute access on engine.x)."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in MODULES:
            return name
    return None


def _trial_entries() -> dict[str, str]:
    """"experiment.hook" -> the "module:function" it names (engine/experiments.py; the runner imports them)."""
    from engine.experiments import EXPERIMENTS

    entries = {f"{name}.trial": kind.trial for name, kind in EXPERIMENTS.items()}
    entries.update({f"{name}.trials_together": kind.trials_together for name, kind in EXPERIMENTS.items()
                    if kind.trials_together})
    return entries


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for entry in _trial_entries().values():  # engine.runner.entry_point imports these by name
        graph["engine.runner"].add(entry.partition(":")[0])
    graph["engine.runner"].discard("engine.runner")
    for source, imports in IMPORTS.items():
        for imp in imports:
            target = _internal(imp.target)
            if target and target != source and not source.startswith(target + "."):
                graph[source].add(target)  # a package's own __init__ is its parent, not a dependency
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan), each as one cycle path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_path(graph, set(c)) for c in components]


def _cycle_path(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """One concrete cycle through the component's first module, for the failure message."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & component):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    return sorted(component)


def _where(source: str, target: str) -> str:
    lines = [imp.line for imp in IMPORTS[source] if _internal(imp.target) == target]
    if not lines:
        return "an experiment's trial function, engine/experiments.py"
    return f"{MODULES[source].relative_to(REPO)}:{min(lines)}"


def test_the_graph_sees_the_known_imports() -> None:
    """The parser finds module-level and function-level imports (guards the tests below)."""
    graph = _graph()
    assert "engine.config" in graph["engine.runner"]
    assert "engine.process" in graph["engine.runner"]
    assert "engine.catalog" in graph["engine.config"]  # imported inside functions only
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_every_experiment_names_a_trial_function_that_exists() -> None:
    for name, entry in _trial_entries().items():
        module, _, path = entry.partition(":")
        assert module in MODULES, f"experiment {name!r}: no module {module}"
        scope: list[ast.stmt] = ast.parse(MODULES[module].read_text(encoding="utf-8")).body
        for part in path.split("."):
            found = [n for n in scope if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part]
            assert found, f"experiment {name!r}: {module} has no {path}"
            scope = found[0].body


def test_no_import_cycles() -> None:
    graph = _graph()
    found = _cycles(graph)
    cycles = [c for c in found if frozenset(c) not in KNOWN_CYCLES]
    gone = KNOWN_CYCLES - {frozenset(c) for c in found}
    assert not gone, f"no longer a cycle (remove from KNOWN_CYCLES): {sorted(map(sorted, gone))}"
    described = [" -> ".join(f"{a} ({_where(a, b)})" for a, b in itertools.pairwise(c)) + f" -> {c[-1]}"
                 for c in cycles]
    assert not cycles, "import cycles:\n" + "\n".join(described)


def _private_uses() -> set[tuple[str, str]]:
    """(file, module._name) for every private name of one of our modules used by another module."""
    uses = set()
    for source in MODULES:
        path = str(MODULES[source].relative_to(REPO))
        bound: dict[str, str] = {}  # local name -> our module it is bound to
        for imp in IMPORTS[source]:
            target = _internal(imp.target)
            if target is None or target == source:
                continue
            for name in imp.names:
                if name.startswith("_") and not name.startswith("__"):
                    uses.add((path, f"{target}.{name}"))
        tree = ast.parse(MODULES[source].read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if _internal(alias.name):  # `import a.b` binds a; `import a.b as c` binds c to a.b
                        local = alias.asname or alias.name.split(".")[0]
                        bound[local] = alias.name if alias.asname else local
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(source, node)
                for alias in node.names:
                    if f"{target}.{alias.name}" in MODULES:
                        bound[alias.asname or alias.name] = f"{target}.{alias.name}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                dotted = _dotted(node.value)
                if dotted is None:
                    continue
                head, _, rest = dotted.partition(".")
                full = ".".join(filter(None, (bound.get(head), rest)))
                if head in bound and full in MODULES and full != source:
                    uses.add((path, f"{full}.{node.attr}"))
    return uses


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None


def test_no_module_imports_another_modules_private_names() -> None:
    uses = _private_uses()
    new = sorted(uses - KNOWN_PRIVATE_IMPORTS)
    assert not new, "private names used across modules:\n" + "\n".join(f"{path}: {name}" for path, name in new)
    gone = sorted(KNOWN_PRIVATE_IMPORTS - uses)
    assert not gone, "no longer used (remove from KNOWN_PRIVATE_IMPORTS):\n" + "\n".join(f"{p}: {n}" for p, n in gone)


def _module_level_closure(start: str) -> tuple[set[str], dict[str, str]]:
    """Our modules `start` imports when it is imported, and who first brought each outside top name."""
    seen, outside, queue = {start}, {}, [start]
    while queue:
        source = queue.pop()
        package = source.split(".")[0]
        chain = [package] if source != package else []
        for dependency in chain + [imp.target for imp in IMPORTS[source] if imp.module_level]:
            target = _internal(dependency)
            if target is None:
                outside.setdefault(dependency.split(".")[0], source)
            elif target not in seen:
                seen.add(target)
                queue.append(target)
    return seen, outside


@pytest.mark.parametrize("module", TORCH_FREE)
def test_read_path_modules_import_no_torch(module: str) -> None:
    _, outside = _module_level_closure(module)
    heavy = {name: by for name, by in outside.items() if name in HEAVY}
    assert not heavy, f"{module} imports {', '.join(f'{n} (through {by})' for n, by in sorted(heavy.items()))}"


MAX_LINES = 600


def test_no_module_is_over_600_lines() -> None:
    """Past that a module holds more than one idea; split it by what it owns (ARCHITECTURE.md)."""
    long = {name: n for name, path in _module_files().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
