"""wideinf's imports, read with ast: one direction of dependencies, and each library in its place.

- No import cycle between wideinf's modules. Every import statement is an edge, also the ones
  inside functions: a lazy import only postpones the cycle to the first call, and hides it
  from a reader. Imports under ``if TYPE_CHECKING:`` are left out (they never run).
- No cycle between the subpackages either (kernels/, experiments/, plotting/, each taken as
  one unit beside the top-level modules): ``a -> kernels/x`` together with
  ``kernels/y -> a`` is a cycle of layers even though no single module imports itself back.
- click only in the command line (cli.py), matplotlib only in plotting/, yaml only in
  config.py (the YAML reader) and io.py (which writes each run's YAML record); docs/theory.md
  and the README describe this layout.
- The library never imports the command line or the figures: only cli.py, runner.py and
  batch.py (which run an experiment end to end) import wideinf.plotting, wideinf.cli or
  wideinf.runner.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "wideinf"

# Third-party libraries and the only wideinf modules allowed to import them.
PLACES = {
    "click": ("wideinf.cli",),
    "matplotlib": ("wideinf.plotting",),  # the package and its modules
    "yaml": ("wideinf.config", "wideinf.io"),
    "numba": ("wideinf.kernels.smooth_compiled",),  # the compiled series, imported on first use
}
SHELL = ("wideinf.plotting", "wideinf.cli", "wideinf.runner")
SHELL_USERS = ("wideinf.cli", "wideinf.runner", "wideinf.batch", "wideinf.plotting")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _type_checking_lines(tree) -> set[int]:
    """Line numbers inside ``if TYPE_CHECKING:`` blocks."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(name: str) -> list[tuple[str, int]]:
    """Every (imported module, line) of a wideinf module: absolute names, third-party too.

    ``from pkg import x`` is an import of ``pkg.x`` when that is a wideinf module, else of
    ``pkg``; relative imports are resolved against the module's package.
    """
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    skip = _type_checking_lines(tree)
    package = name if _is_package(name) else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.append((full if full in MODULES else base, node.lineno))
    return found


def _graph() -> dict[str, dict[str, int]]:
    """wideinf module -> {wideinf module it imports: first line}."""
    graph = {}
    for name in MODULES:
        edges = {}
        for target, line in imports_of(name):
            if target in MODULES and target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def strongly_connected(graph) -> list[list[str]]:
    """Tarjan's algorithm: the components with more than one module (each one a cycle)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _describe(component, graph) -> str:
    """``a -> b (a.py:12) -> a (b.py:3)``: one cycle through the component, with lines."""
    members = set(component)
    path, seen = [component[0]], {component[0]}
    while True:
        here = path[-1]
        nxt = sorted(w for w in graph[here] if w in members)
        step = next((w for w in nxt if w not in seen), None) or next(w for w in nxt if w in path)
        path.append(step)
        if step in seen:
            break
        seen.add(step)
    start = path.index(path[-1])
    cycle = path[start:]
    hops = [
        f"{b} ({MODULES[a].relative_to(PACKAGE.parent)}:{graph[a][b]})"
        for a, b in zip(cycle[:-1], cycle[1:])
    ]
    return " -> ".join([cycle[0], *hops])


def test_the_graph_sees_lazy_and_relative_imports():
    """The reader itself: a relative, a package-level and a function-level import."""
    convergence = dict(imports_of("wideinf.experiments.convergence"))
    assert "wideinf.stats" in convergence and "wideinf.experiments" in convergence
    assert "wideinf.networks" in convergence  # from .. import networks as nw
    assert "yaml" in dict(imports_of("wideinf.config"))  # inside load_yaml
    assert strongly_connected({"a": {"b": 1}, "b": {"a": 2}, "c": {"a": 3}}) == [["a", "b"]]


def test_no_import_cycles():
    graph = _graph()
    cycles = [_describe(c, graph) for c in strongly_connected(graph)]
    assert not cycles, "import cycles (every import counts, also inside functions):\n  " + (
        "\n  ".join(cycles)
    )


def _unit(name: str) -> str:
    """A top-level module, or the subpackage holding a module: wideinf.kernels.core -> kernels."""
    parts = name.split(".")
    return ".".join(parts[:2])


def test_no_import_cycles_between_subpackages():
    graph = {}
    for name, edges in _graph().items():
        for target, line in edges.items():
            a, b = _unit(name), _unit(target)
            if a != b:
                graph.setdefault(a, {}).setdefault(b, (name, line))
    graph = {u: graph.get(u, {}) for u in {_unit(n) for n in MODULES}}
    cycles = []
    for component in strongly_connected(graph):
        if all(unit in MODULES and not _is_package(unit) for unit in component):
            continue  # modules only: test_no_import_cycles reports it
        hops = [
            f"{a} -> {b} ({MODULES[graph[a][b][0]].relative_to(PACKAGE.parent)}:{graph[a][b][1]})"
            for a in component
            for b in component
            if b in graph[a]
        ]
        cycles.append("; ".join(hops))
    assert not cycles, "import cycles between subpackages:\n  " + "\n  ".join(cycles)


@pytest.mark.parametrize("library", sorted(PLACES))
def test_each_library_only_in_its_place(library):
    allowed = PLACES[library]
    bad = [
        f"{MODULES[name].relative_to(PACKAGE.parent)}:{line} imports {target}"
        for name in MODULES
        if not name.startswith(allowed)
        for target, line in imports_of(name)
        if target == library or target.startswith(library + ".")
    ]
    assert not bad, f"{library} belongs only in {', '.join(allowed)}:\n  " + "\n  ".join(bad)


def test_the_library_does_not_import_the_command_line_or_the_figures():
    bad = [
        f"{MODULES[name].relative_to(PACKAGE.parent)}:{line} imports {target}"
        for name in MODULES
        if not name.startswith(SHELL_USERS)
        for target, line in imports_of(name)
        if target.startswith(SHELL)
    ]
    assert not bad, "\n  ".join(bad)
