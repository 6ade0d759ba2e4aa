"""The package's import graph: no circles, and the config imports no stage.

Every ``import`` counts, also those inside functions (a lazy import still ties two modules
together). An edge from a module into its own package's ``__init__`` is not counted: the
package face re-exports its children, so it necessarily imports them back.
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import pytest

import kallos

PACKAGE = Path(kallos.__file__).parent


def module_paths(root: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (packages by ``__init__``)."""
    out = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that ``name`` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else base)
    own_faces = {
        m for m in found if name.startswith(m + ".") and modules.get(m, Path()).name == "__init__.py"
    }
    return {m for m in found if m in modules and m != name} - own_faces


def import_graph() -> dict[str, set[str]]:
    modules = module_paths()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def test_the_graph_is_read_correctly() -> None:
    """The checks below would pass vacuously on an empty or misread graph."""
    graph = import_graph()
    assert len(graph) > 50
    assert "kallos.forecast.training" in graph["kallos.forecast.neural"]
    assert "kallos.exceptions" in graph["kallos.config"]
    # a function-level import is seen (the tuning CLI imports the pipeline lazily)
    assert "kallos.pipeline.validate" in graph["kallos.cli.forecast_cmds"]


def test_no_import_circles() -> None:
    try:
        order = list(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as err:
        pytest.fail(f"import circle: {' -> '.join(err.args[1])}")
    assert order.index("kallos.config") < order.index("kallos.forecast.registry")


def test_graphlib_reports_a_planted_circle() -> None:
    """The check above can fail: a circle planted in the real graph is found."""
    graph = import_graph()
    graph["kallos.config"] = graph["kallos.config"] | {"kallos.forecast.registry"}
    with pytest.raises(graphlib.CycleError):
        list(graphlib.TopologicalSorter(graph).static_order())


def test_config_imports_no_stage() -> None:
    """``kallos.config`` reaches only the exceptions: no forecast, portfolio or data module."""
    graph = import_graph()
    reached, todo = set(), ["kallos.config"]
    while todo:
        for m in graph[todo.pop()] - reached:
            reached.add(m)
            todo.append(m)
    assert not {m for m in reached if m.startswith("kallos.forecast")}
    assert reached <= {"kallos.exceptions", "kallos"}


def test_building_a_config_loads_neither_torch_nor_cvxpy() -> None:
    code = (
        "import sys; from kallos.config import StudyConfig; StudyConfig(); "
        "print(sorted(m for m in ('torch', 'cvxpy', 'talib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
