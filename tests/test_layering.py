"""Imports only go down: runtime <- augment, corruptions, models, loaders <- training, evaluation, generation <- CLIs.

Every ``import`` in every module is read with ``ast``, including imports inside functions (lazy imports are still
dependencies) and ``importlib.import_module("...")`` calls with a literal name. A package that does not exist in
this checkout simply contributes no modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = frozenset({"runtime"})
LEAVES = frozenset({"augment", "corruptions", "models", "loaders"})
MIDDLE = frozenset({"training", "evaluation", "generation"})
CLIS = frozenset({"train", "evaluate", "generate"})
PACKAGES = RUNTIME | LEAVES | MIDDLE
# What each layer may import besides itself.
ALLOWED = {**{p: frozenset() for p in RUNTIME}, **{p: RUNTIME for p in LEAVES},
           **{p: RUNTIME | LEAVES for p in MIDDLE}, **{c: PACKAGES for c in CLIS}}


def _sources() -> Iterator[tuple[str, Path]]:
    """(top-level name, file) for every module of our packages and every CLI script."""
    for package in sorted(PACKAGES):
        for path in sorted((ROOT / package).rglob("*.py")):
            yield package, path
    for cli in sorted(CLIS):
        if (ROOT / f"{cli}.py").is_file():
            yield cli, ROOT / f"{cli}.py"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Every module ``path`` imports, absolute (relative imports resolved), at any depth of the syntax tree."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module_name(path, root).split(".")
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if is_package else here[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names if alias.name != "*")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            found.add(node.args[0].value)
    return found


def ours(module: str) -> str | None:
    top = module.split(".")[0]
    return top if top in PACKAGES | CLIS else None


def file_edges() -> list[tuple[str, str, str, str]]:
    """(importing package, importing file, imported package, imported module) for every import across packages."""
    edges = set()
    for importer, path in _sources():
        for module in imported_modules(path):
            target = ours(module)
            if target is not None and target != importer:
                edges.add((importer, path.relative_to(ROOT).as_posix(), target, module))
    return sorted(edges)


def _violations() -> list[str]:
    bad = []
    for importer, file, target, module in file_edges():
        if target in CLIS:
            bad.append(f"{file} imports the CLI {target} ({module})")
        elif target not in ALLOWED[importer]:
            bad.append(f"{file}: {importer} may not import {target} ({module})")
    return bad


def test_the_scan_sees_lazy_relative_and_importlib_imports(tmp_path):
    package = tmp_path / "augment"
    package.mkdir()
    (package / "__init__.py").write_text("from .jsd import x\n")
    (package / "mod.py").write_text("import os\n\n\ndef f():\n    from training import loop\n    from . import ops\n"
                                    "    importlib.import_module('models.wrn')\n")
    assert {"augment.jsd", "augment.jsd.x"} <= imported_modules(package / "__init__.py", tmp_path)
    assert {"os", "training", "training.loop", "augment", "augment.ops", "models.wrn"} <= imported_modules(
        package / "mod.py", tmp_path)


def test_the_scan_finds_our_packages():
    scanned = {name for name, _ in _sources()}
    assert PACKAGES | CLIS <= scanned


def test_imports_only_go_down_the_layers():
    assert _violations() == []


def test_no_import_cycles_between_packages():
    graph: dict[str, set[str]] = {}
    for importer, _, target, _ in file_edges():
        graph.setdefault(importer, set()).add(target)
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == [], f"import cycles between packages: {cycles}"
