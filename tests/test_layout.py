"""The package stays in small modules and short functions, and keeps its private names private.

These are the layout rules of the re-layer (issue 10): no module of the
library above 400 lines, no function above 60 lines, and no ``_private``
name of ours imported from, or reached through, another of our modules.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("keras_convviz", "tb_plugin")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules():
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _private(name):
    return name.startswith("_") and not name.startswith("__")


def _ours(node):
    """Whether an ``ImportFrom`` imports from this project (relative, or by package name)."""
    return node.level > 0 or (node.module or "").split(".")[0] in PACKAGES


def _module_aliases(tree):
    """Names bound to our own modules: ``from .. import render``, ``import keras_convviz.x as y``."""
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _ours(node):
            aliases.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Import):
            aliases.update(a.asname or a.name for a in node.names if a.name.split(".")[0] in PACKAGES)
    return aliases


def test_the_checker_sees_the_package():
    assert len(_modules()) > 30


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_size_and_function_length(path):
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES, f"{path.name} has {len(source.splitlines())} lines"
    long = [(n.name, n.end_lineno - n.lineno + 1) for n in ast.walk(ast.parse(source))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines in {path.name}: {long}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_crosses_a_module_boundary(path):
    tree = ast.parse(path.read_text())
    imported = [f"{node.module}.{a.name}" for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and _ours(node)
                for a in node.names if _private(a.name)]
    aliases = _module_aliases(tree)
    reached = [f"{node.value.id}.{node.attr}" for node in ast.walk(tree)
               if isinstance(node, ast.Attribute) and _private(node.attr)
               and isinstance(node.value, ast.Name) and node.value.id in aliases]
    assert not imported and not reached, (imported, reached)
