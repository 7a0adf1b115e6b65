"""qgen's modules import each other without cycles.

The graph is read from the source with `ast`, so it sees every import statement, including the ones deferred
into functions (a cycle hidden by a deferred import is still a cycle: it only works because of the order in
which the modules happen to be first imported). Imports under `if TYPE_CHECKING:` never run, so they are left
out.

What counts as an edge A → B: A names B in an import statement, so A needs B's module body to have run.

* `import qgen.a.b` and `from qgen.a import b` where `qgen/a/b.py` (or the package `qgen/a/b/`) exists →
  qgen.a.b. Python also runs the parent package's `__init__` first, but that implicit import is *not* an edge:
  A needs nothing defined there, and counting it would make every package `__init__` that re-exports its
  submodules' names part of a cycle with each of them.
* `from qgen.a import name` where `name` is not a submodule → qgen.a: A needs a name that `qgen/a/__init__.py`
  defines or re-exports, so A depends on that `__init__` and, through it, on whatever it imports. A submodule
  that takes a name from its own parent package's `__init__` while that `__init__` imports the submodule is
  therefore a real cycle.
* Relative imports are resolved against the importing module's package the same way.

networkx finds the strongly connected components (a test extra; torch requires it as well).
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

from tests.helpers import REPO

PACKAGE_ROOT = REPO / "qgen"


def _module_names(root: Path) -> dict[str, Path]:
    """Every module of the package: dotted name → file (a package is named by its `__init__.py`)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = (root.name, *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _is_type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """All Import / ImportFrom nodes anywhere in the tree, except inside `if TYPE_CHECKING:` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if _is_type_checking_block(node):
            stack.extend(node.orelse)        # the `else:` branch does run
            continue
        stack.extend(ast.iter_child_nodes(node))


def _imported_modules(module: str, is_package: bool, node: ast.AST, modules: set[str]) -> set[str]:
    """The package's modules one import statement depends on (see the module docstring)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in modules}
    if node.level:
        package = module if is_package else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    if base not in modules:  # another package (or a name that does not exist)
        return set()
    targets = set()
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        targets.add(submodule if submodule in modules else base)
    return targets & modules


def import_graph(root: Path = PACKAGE_ROOT) -> nx.DiGraph:
    files = _module_names(root)
    graph = nx.DiGraph()
    for module, path in files.items():
        graph.add_node(module, path=path.relative_to(root.parent))
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _import_nodes(tree):
            for target in _imported_modules(module, path.name == "__init__.py", node, set(files)):
                if target != module:
                    graph.add_edge(module, target, line=node.lineno)
    return graph


def _describe(graph: nx.DiGraph, component: set[str]) -> str:
    """One cycle through the component, with the line of each import, then the component's other members."""
    cycle = nx.find_cycle(graph.subgraph(component))
    steps = [f"{a} -> {b}  ({graph.nodes[a]['path']}, line {graph.edges[a, b]['line']})" for a, b in cycle]
    rest = sorted(component - {a for a, _ in cycle})
    return "\n    ".join(steps) + (f"\n    also in this component: {', '.join(rest)}" if rest else "")


def test_the_graph_sees_deferred_relative_and_package_imports():
    graph = import_graph()
    assert graph.number_of_nodes() > 100
    # qgen.cli defers some imports into the command functions (start-up time); they are edges all the same
    assert graph.has_edge("qgen.cli", "qgen.diffusion.samplers")
    # `from qgen.quantum import connector`-style imports resolve to the submodule, names to the package
    assert graph.has_edge("qgen.quantum.connector", "qgen.quantum.gradients")


def test_the_rules_on_a_small_package(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from pkg.sub.leaf import NAME\n",
        "sub/__init__.py": "from .leaf import NAME\nHELPER = 1\n",
        "sub/leaf.py": ("from typing import TYPE_CHECKING\nimport os\nNAME = 1\n"
                        "if TYPE_CHECKING:\n    from pkg.user import User\nelse:\n    import pkg.other\n"),
        "user.py": "def f():\n    from .sub import leaf, HELPER\n    from . import other\n",
        "other.py": "from pkg import sub\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    graph = import_graph(pkg)
    assert set(graph.edges) == {
        ("pkg", "pkg.sub.leaf"),             # a name from a module: the module
        ("pkg.sub", "pkg.sub.leaf"),         # relative, from a package's __init__
        ("pkg.sub.leaf", "pkg.other"),       # the `else:` of `if TYPE_CHECKING:` runs; its body does not
        ("pkg.user", "pkg.sub.leaf"),        # deferred, relative, a submodule ...
        ("pkg.user", "pkg.sub"),             # ... and a name the package's __init__ defines
        ("pkg.user", "pkg.other"),           # `from . import module`
        ("pkg.other", "pkg.sub"),            # `from package import subpackage`
    }


def test_there_is_no_import_cycle():
    graph = import_graph()
    cycles = [c for c in nx.strongly_connected_components(graph) if len(c) > 1]
    if cycles:
        message = "\n".join(f"  cycle:\n    {_describe(graph, c)}" for c in sorted(cycles, key=sorted))
        pytest.fail(f"{len(cycles)} import cycle(s) in qgen:\n{message}", pytrace=False)
