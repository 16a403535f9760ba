"""No import circle between nbflow's modules.

Every ``import`` and ``from ... import`` in ``nbflow/`` is read with ``ast``, those
inside functions and methods included (an import put inside a function to dodge a
circle is still a circle). Imports under ``if TYPE_CHECKING:`` are left out: they
never run. The implicit import of a package's ``__init__`` when one of its modules is
imported is left out too; an explicit ``from . import x`` or ``import nbflow`` counts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[1] / "nbflow"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for other in child.orelse:
                    walk(other)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append(child)
            walk(child)

    walk(tree)
    return found


def import_graph() -> nx.DiGraph:
    """``module -> module it imports`` for every module under ``nbflow/``."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(files)
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level == 0:
                    base = node.module or ""
                else:
                    base = package
                    for _ in range(node.level - 1):
                        base = base.rpartition(".")[0]
                    if node.module:
                        base = f"{base}.{node.module}"
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names]
            for target in targets:
                while target and target not in files:  # nbflow.x.y where y is a name in module nbflow.x
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph.add_edge(name, target)
    return graph


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert graph.has_edge("nbflow.cli", "nbflow.run")  # imported inside the command functions
    assert graph.has_edge("nbflow.executors.kernel", "nbflow.executors.outcome")


def test_no_import_circle_between_nbflow_modules():
    graph = import_graph()
    circles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    described = []
    for circle in circles:
        cycle = nx.find_cycle(graph.subgraph(circle))
        described.append(" -> ".join([a for a, _ in cycle] + [cycle[0][0]]))
    assert not circles, "import circles:\n" + "\n".join(described)
