"""The package's import graph: no circles, the config imports no stage, no private names cross.

Every ``import`` counts, also those inside functions (a lazy import still ties two modules
together). An edge from a module into its own package's ``__init__`` is not counted: the
package face re-exports its children, so it necessarily imports them back.

A name starting with one underscore is private to its module: no other ``kallos`` module imports
it or reads it as an attribute of the module. The test infrastructure (``kallos.testing``) is for
the tests only: no other ``kallos`` module imports it.
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
import textwrap
from collections.abc import Collection
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


def test_no_module_outside_kallos_testing_imports_it() -> None:
    """The stub servers are test infrastructure: no pipeline stage, CLI or trading module uses them."""
    graph = import_graph()
    assert "kallos.testing.spot" in graph["kallos.testing.stub"]  # the package is in the graph
    users = {
        f"{name} imports {dep}"
        for name, deps in graph.items()
        if not _in_testing(name)
        for dep in deps
        if _in_testing(dep)
    }
    assert not users, sorted(users)


def _in_testing(module: str) -> bool:
    return module == "kallos.testing" or module.startswith("kallos.testing.")


def _is_private(name: str) -> bool:
    """One leading underscore, not a dunder (``__version__``, ``__all__`` are public)."""
    return name.startswith("_") and not name.startswith("__")


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


def _dotted(node: ast.expr) -> list[str] | None:
    """``a.b.c`` as ``["a", "b", "c"]``; None when the chain does not start at a name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def private_uses(source: str, module: str, modules: Collection[str], is_package: bool = False) -> list[str]:
    """The private names of *other* ``kallos`` modules that ``source`` (module ``module``) uses.

    Two ways in: ``from kallos.x import _name`` (relative imports resolved), and an attribute
    ``alias._name`` where ``alias`` names a ``kallos`` module, bound by ``import kallos.x as
    alias``, ``import kallos.x`` (then ``kallos.x._name``) or ``from kallos.pkg import module``.
    Every scope counts (a lazy import inside a function too).
    """
    tree = ast.parse(source)
    found: list[str] = []
    aliases: dict[str, str] = {}  # local name -> the kallos module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "kallos" or a.name.startswith("kallos."):
                    if a.asname:
                        aliases[a.asname] = a.name
                    else:
                        aliases["kallos"] = "kallos"
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            if not (target == "kallos" or target.startswith("kallos.")):
                continue
            for a in node.names:
                full = f"{target}.{a.name}"
                if _is_private(a.name) and target != module:
                    found.append(f"{module}:{node.lineno} imports {full}")
                elif full in modules:
                    aliases[a.asname or a.name] = full
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and _is_private(node.attr)):
            continue
        chain = _dotted(node.value)
        if chain is None or chain[0] not in aliases:
            continue
        owner = aliases[chain[0]]
        for part in chain[1:]:  # follow submodules: kallos.data.store._x
            if f"{owner}.{part}" not in modules:
                break
            owner = f"{owner}.{part}"
        else:
            if owner != module:
                found.append(f"{module}:{node.lineno} reads {owner}.{node.attr}")
    return found


def test_no_private_names_cross_modules() -> None:
    modules = module_paths()
    found = [
        use
        for name, path in sorted(modules.items())
        for use in private_uses(
            path.read_text(encoding="utf-8"), name, modules, is_package=path.name == "__init__.py"
        )
    ]
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_the_private_name_check_can_fail() -> None:
    """Every way in is caught on planted sources, and what is allowed is not flagged."""
    modules = set(module_paths())
    planted = textwrap.dedent(
        """
        from kallos.evaluation.metrics import _iso_date, __doc__
        from .metrics import _helper
        import kallos.evaluation.significance as sig
        import kallos.features.labels
        from kallos.evaluation import battery

        def f():
            from kallos.data import store as st
            return sig._jkm_arrays, kallos.features.labels._who, battery._z, st._private, sig.public
        """
    )
    found = private_uses(planted, "kallos.evaluation.planted", modules)
    assert [f.split(" ", 1)[1] for f in found] == [
        "imports kallos.evaluation.metrics._iso_date",
        "imports kallos.evaluation.metrics._helper",
        "reads kallos.evaluation.significance._jkm_arrays",
        "reads kallos.features.labels._who",
        "reads kallos.evaluation.battery._z",
        "reads kallos.data.store._private",
    ]
    allowed = textwrap.dedent(
        """
        from kallos.evaluation.metrics import __all__, is_constant
        from kallos.data.sources._files import parse_iso_dates
        import numpy as np

        class A:
            _cache = None

        def _own():
            return np._NoValue, A._cache, is_constant._x
        """
    )
    assert private_uses(allowed, "kallos.evaluation.planted", modules) == []
