"""Imports run one way (STYLE.md): no cycle among the project's modules, no private name across packages.

Both checks read the source (every `import` in the AST, inside functions too), so an import
hidden in a function to dodge a cycle counts as much as one at the top of the file.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP_PACKAGES = ("harness", "reports", "runners")


def _modules() -> dict[str, Path]:
    """Dotted module name → file, for every module of the project's top packages."""
    mods = {}
    for top in TOP_PACKAGES:
        for f in sorted((ROOT / top).rglob("*.py")):
            name = ".".join(f.relative_to(ROOT).with_suffix("").parts)
            mods[name.removesuffix(".__init__")] = f
    return mods


def _package(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imports(module: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(absolute module named, names taken from it, line) for every import statement in the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = _package(module, path).split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            out.append((base, [a.name for a in node.names], node.lineno))
    return out


def _owner(name: str, mods: dict[str, Path]) -> str:
    """The project module `name` is (or lives in); '' when it is not the project's."""
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name


def _edges(mods: dict[str, Path]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        for base, names, _ in _imports(m, f):
            # `from pkg import sub` imports the submodule pkg.sub; `from mod import name` imports mod.
            for target in [base] + [f"{base}.{n}" for n in names]:
                t = _owner(target, mods)
                # A module's own packages run before it anyway: importing them adds no edge.
                if t and t != m and not m.startswith(t + "."):
                    edges[m].add(t)
    return edges


def import_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    cycles.append(sorted(comp))
    return cycles


def test_the_cycle_finder_finds_a_cycle_through_three_modules_and_a_self_contained_one_is_not():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_the_projects_modules():
    cycles = import_cycles(_edges(_modules()))
    assert not cycles, "import cycles: " + "; ".join(" ↔ ".join(c) for c in cycles)


def test_no_private_name_is_imported_from_another_package():
    mods = _modules()
    found = []
    for m, f in mods.items():
        here = _package(m, f)
        for base, names, line in _imports(m, f):
            owner = _owner(base, mods)
            if not owner:
                continue
            there = _package(owner, mods[owner])
            for n in names:
                sub = f"{base}.{n}"
                if n.startswith("_") and not n.startswith("__") and there != here and sub not in mods:
                    found.append(f"{f.relative_to(ROOT)}:{line}: {n} from {base}")
    assert not found, "private names imported across packages:\n" + "\n".join(found)
