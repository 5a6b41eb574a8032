"""The house rule, checked on the source: edgeprune's packages sit in layers, and a module
imports only from its own package or from a layer below it; no module imports itself back
through a cycle, at any depth, whether the import is at the top of a file or inside a
function (a function-level import is still a dependency, only a deferred one).

LAYERS is the README's architecture table read as an import order. Data flows frontend →
graph → importance → lut → plan → rewrite → recover/quantize → backends → devices → report,
but imports do not follow the data: the LUT is measured on a device through a backend, so
lut sits above devices and backends, and plan above lut. A new top-level module or package
must be placed in a layer here before this test passes.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edgeprune"

# bottom to top; "edgeprune" is the package root (`edgeprune.compile`, `edgeprune.finetune`)
LAYERS: list[tuple[str, set[str]]] = [
    ("errors, version", {"errors", "version"}),
    ("foundation", {"atomic", "locations", "progress", "config", "outdir", "gates", "energy_estimate",
                    "provenance", "outputs"}),
    ("data", {"data"}),
    ("zoo", {"zoo"}),
    ("frontend", {"frontend"}),
    ("graph", {"graph"}),
    ("rewrite, recover", {"rewrite", "recover"}),
    ("importance, quantize, fidelity", {"importance", "quantize", "fidelity"}),
    # distillation trains the pruned ONNX graph through importance's TorchGraph, scored by fidelity
    ("distill", {"distill"}),
    ("backends", {"backends"}),
    ("devices", {"devices"}),
    ("lut", {"lut"}),
    ("plan and the closed loop", {"plan", "budget_fit", "shipped"}),
    ("report", {"report"}),
    ("verify", {"verify"}),
    ("pipeline", {"pipeline"}),
    # entry points may call one another (`demo` runs the CLI, `api` is the package's compile)
    ("entry points", {"api", "commands", "cli", "demo", "__main__", "edgeprune"}),
]
TOP = LAYERS[-1][0]

# Cycles inside one package that are known and owned elsewhere; each must still exist (so
# the entry goes when the cycle does).
KNOWN_CYCLES: set[frozenset[str]] = set()
# Imports that go up a layer, known and owned elsewhere; each must still exist.
KNOWN_UPWARD: set[tuple[str, str]] = set()


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The edgeprune modules `name` imports, anywhere in the file."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                stem = package[:len(package) - node.level + 1]
                base = ".".join(stem + ([node.module] if node.module else []))
            # `from .x import y` names module x.y when there is one, else x
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else module
    for rank, (_, members) in enumerate(LAYERS):
        if top in members:
            return rank
    raise AssertionError(f"{module}: not in any layer of tests/test_import_layers.py (place it in LAYERS)")


def package_of(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def cycles(edges: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def upward_imports() -> set[tuple[str, str]]:
    found = set()
    for module, targets in graph().items():
        for target in targets:
            same_package = package_of(module) == package_of(target)
            both_entry_points = layer_of(module) == layer_of(target) == len(LAYERS) - 1
            if not same_package and not both_entry_points and layer_of(target) >= layer_of(module):
                found.add((module, target))
    return found


def test_every_module_imports_only_its_own_package_or_a_layer_below():
    upward = sorted(upward_imports() - KNOWN_UPWARD)
    assert not upward, "imports that do not go down a layer:\n" + "\n".join(
        f"{m} imports {t} ({LAYERS[layer_of(m)][0]} -> {LAYERS[layer_of(t)][0]})" for m, t in upward)


def test_the_known_upward_imports_are_still_there():
    assert KNOWN_UPWARD <= upward_imports(), f"fixed, remove from KNOWN_UPWARD: {KNOWN_UPWARD - upward_imports()}"


def test_no_module_imports_itself_back_through_a_cycle():
    found = [c for c in cycles(graph()) if frozenset(c) not in KNOWN_CYCLES]
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(sorted(c)) for c in found)


def test_the_known_cycles_are_still_there():
    present = {frozenset(c) for c in cycles(graph())}
    assert KNOWN_CYCLES <= present, f"fixed, remove from KNOWN_CYCLES: {KNOWN_CYCLES - present}"


def test_every_package_has_a_layer():
    for module in graph():
        layer_of(module)
