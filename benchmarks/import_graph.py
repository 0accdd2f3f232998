"""The package's import graph in figures: modules, imports between them (at module level, inside functions,
under TYPE_CHECKING) and import circles (strongly connected groups of modules), counting every import.

    python benchmarks/import_graph.py [REPO]     # REPO: a checkout of deepwater (default: this one)

It reads the sources as text (no import runs), with pyproject.toml's package-dir mapping, so it measures any
commit's tree: `git worktree add /tmp/old <commit>` then `python benchmarks/import_graph.py /tmp/old`.
"""
from __future__ import annotations

import ast
import sys
import tomllib
from collections import Counter
from pathlib import Path


def modules(repo: Path) -> dict[str, Path]:
    """Dotted module name -> source file, for every package that pyproject.toml maps."""
    mapping = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    found = {}
    for package, folder in mapping.items():
        for path in (repo / folder).rglob("*.py"):
            parts = list(path.relative_to(repo / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, str]]:
    """(imported module, where: 'module' | 'function' | 'type_checking') for each import of a known module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []

    def target(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = where
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = "function"
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                inner = "type_checking"
            if isinstance(child, ast.Import):
                found.extend((t, inner) for t in (target(a.name) for a in child.names) if t)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")[:len(package.split(".")) - (child.level - 1)]
                    base = ".".join(parts + ([base] if base else []))
                for alias in child.names:
                    t = target(f"{base}.{alias.name}") if f"{base}.{alias.name}" in known else target(base)
                    if t:
                        found.append((t, inner))
            visit(child, inner)

    visit(ast.parse(path.read_text()), "module")
    return [(t, where) for t, where in found if t != name]


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or around a circle (Tarjan's algorithm)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in graph:
        if node not in index:
            connect(node)
    return groups


def main(repo: Path) -> None:
    known = modules(repo)
    graph, kinds = {name: set() for name in known}, Counter()
    for name, path in known.items():
        for target, where in imports(name, path, known):
            graph[name].add(target)
            kinds[where] += 1
    core_top = list((repo / "deepwater").glob("*.py"))
    print(f"modules: {len(known)} ({len(core_top)} .py files at the top of deepwater/)")
    print(f"import statements between them: {sum(kinds.values())} (at module level {kinds['module']}, inside "
          f"functions {kinds['function']}, under TYPE_CHECKING {kinds['type_checking']})")
    found = circles(graph)
    print(f"import circles: {len(found)}")
    for group in found:
        print(f"  {len(group)} modules: {', '.join(group)}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]).resolve())
