"""The package's shape: its import graph, imports inside functions included, has no cycles."""

import ast
import os

from tests.conftest import REPO

PACKAGE = os.path.join(REPO, "keras_gen")


def module_name(path):
    relative = os.path.relpath(path, REPO)[: -len(".py")].replace(os.sep, ".")
    return relative[: -len(".__init__")] if relative.endswith(".__init__") else relative


def imported_modules(path, modules):
    """The keras_gen modules that the file at `path` imports, anywhere in it."""
    name = module_name(path)
    package = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1]
                    + ([base] if base else [])
                )
            # `from keras_gen import zoo` imports the module keras_gen.zoo, not just the package.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph():
    paths = [
        os.path.join(root, file)
        for root, _, files in os.walk(PACKAGE)
        for file in files
        if file.endswith(".py")
    ]
    modules = {module_name(path): path for path in paths}
    return {name: imported_modules(path, modules) for name, path in modules.items()}


def cycles(graph):
    """Every strongly connected component of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_import_graph_has_no_cycles():
    graph = import_graph()
    # A package's __init__ gathers its modules for users; a module inside it must not import it back.
    for package in [
        name
        for name in graph
        if os.path.exists(os.path.join(REPO, *name.split("."), "__init__.py"))
    ]:
        for member in [name for name in graph if name.startswith(package + ".")]:
            graph[member] = {target for target in graph[member] if target != package}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def _third_party_imports(folders):
    """{top-level module: a file importing it} of every import in the .py files below `folders`
    that is neither the standard library nor this repository's own."""
    import sys

    local = (
        {"keras_gen", "tests"}
        | {  # and the scripts of benchmarks/ and tests/, by name
            file[:-3]
            for folder in ("benchmarks", "tests", "examples")
            for file in os.listdir(os.path.join(REPO, folder))
            if file.endswith(".py")
        }
    )
    found = {}
    for folder in folders:
        for here, _, files in os.walk(os.path.join(REPO, folder)):
            for file in files:
                if not file.endswith(".py"):
                    continue
                path = os.path.join(here, file)
                for node in ast.walk(ast.parse(open(path).read())):
                    if isinstance(node, ast.Import):
                        names = [alias.name for alias in node.names]
                    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                        names = [node.module]
                    else:
                        continue
                    for name in names:
                        top = name.split(".")[0]
                        if top not in sys.stdlib_module_names and top not in local:
                            found.setdefault(top, os.path.relpath(path, REPO))
    return found


def _declared(extra=None):
    """The distributions pyproject.toml declares (and, with `extra`, that extra's), normalised."""
    import re

    import pytest

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+, as CI runs
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as file:
        project = tomllib.load(file)["project"]
    requirements = project["dependencies"] + (
        project["optional-dependencies"][extra] if extra else []
    )
    return {re.split(r"[<>=!~\[; ]", r)[0].lower().replace("_", "-") for r in requirements}


def _distribution_of(module):
    from importlib.metadata import packages_distributions

    return {
        dist.lower().replace("_", "-") for dist in packages_distributions().get(module, [module])
    }


def test_the_package_imports_only_declared_dependencies():
    declared = _declared()
    undeclared = {
        module: where
        for module, where in _third_party_imports(["keras_gen"]).items()
        if not _distribution_of(module) & declared
        # Installed with what is declared: absl with TensorFlow, flatbuffers with ai-edge-litert.
        and module not in {"absl", "flatbuffers"}
    }
    assert not undeclared, undeclared


def test_the_tests_import_only_what_the_test_extra_declares():
    declared = _declared("test")
    undeclared = {
        module: where
        for module, where in _third_party_imports(["tests"]).items()
        if not _distribution_of(module) & declared and module not in {"absl", "flatbuffers"}
    }
    assert not undeclared, undeclared
