"""The seam: the core loads no framework, and the two backends mirror each other file for file.

The backends are read as source (ast), never imported, so this runs without either framework
and never loads both into one process.
"""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from seqcore import backend as protocol
from tests.conftest import ROOT, python

BACKEND_DIRS = {name: ROOT / "backends" / name for name in protocol.BACKENDS}


def public_surface(path: Path) -> dict[str, object]:
    """{name: argument names} for top-level functions, {Class.method: argument names} for methods
    (positional, then keyword-only)."""
    surface: dict[str, object] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            surface[node.name] = [a.arg for a in node.args.args + node.args.kwonlyargs]
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            surface[node.name] = "class"
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and (not item.name.startswith("_") or item.name == "__init__"):
                    surface[f"{node.name}.{item.name}"] = [a.arg for a in item.args.args + item.args.kwonlyargs]
    return surface


def test_importing_the_core_loads_no_framework() -> None:
    modules = sorted(p.stem for p in (ROOT / "seqcore").glob("*.py") if p.stem != "__init__")
    code = ("import sys, importlib\n"
            f"for m in {modules!r}: importlib.import_module('seqcore.' + m)\n"
            "import backends\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('mxnet', 'torch', 'torchvision'))\n"
            "print(','.join(loaded))")
    result = python("-c", code, check=True)
    assert result.stdout.strip() == "", f"seqcore loaded a framework: {result.stdout}"


def public_files(directory: Path) -> list[str]:
    """Module files other than private helpers (`_compat.py`): those may differ per framework."""
    return sorted(p.name for p in directory.glob("*.py") if p.name == "__init__.py" or not p.name.startswith("_"))


def test_backends_have_the_same_files() -> None:
    files = {name: public_files(d) for name, d in BACKEND_DIRS.items()}
    first, *others = files.values()
    for name, names in files.items():
        assert names == first, f"backends/{name} has {names}, expected {first}"


@pytest.mark.parametrize("filename", public_files(ROOT / "backends" / "torch"))
def test_backends_have_the_same_public_surface(filename: str) -> None:
    surfaces = {name: public_surface(d / filename) for name, d in BACKEND_DIRS.items()}
    assert surfaces["mxnet"] == surfaces["torch"]


def test_backend_classes_implement_the_protocol() -> None:
    wanted = {name: list(inspect.signature(member).parameters)
              for name, member in vars(protocol.Backend).items()
              if callable(member) and not name.startswith("_")}
    for name, directory in BACKEND_DIRS.items():
        surface = public_surface(directory / "backend.py")
        for method, args in wanted.items():
            assert surface.get(f"Backend.{method}") == args, f"{name}: Backend.{method} differs from the protocol"
        assert "create_backend" in surface
