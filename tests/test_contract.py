"""The seam: the core loads no framework, and the two backends mirror each other file for file.

The backends are read as source (ast), never imported, so this runs without either framework
and never loads both into one process.
"""
from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from seqcore import backend as protocol
from seqcore.errors import SeqcoreError
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
    modules = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts) for p in (ROOT / "seqcore").rglob("*.py"))
    code = ("import sys, importlib\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
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


PRIMITIVES = sorted(protocol.Backend.__abstractmethods__)  # what each backend supplies
WRITTEN_ONCE = sorted(name for name, member in vars(protocol.Backend).items()
                      if inspect.isfunction(member) and not name.startswith("_") and name not in PRIMITIVES)


def arguments(function) -> list[str]:
    """Positional, then keyword-only argument names, as public_surface lists them."""
    return [p.name for p in inspect.signature(function).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def seam_bases(path: Path) -> list[str]:
    """The names `path` gives seqcore.backend.Backend: `X` of `from seqcore.backend import Backend
    as X`, `m.Backend` of `from seqcore import backend as m` / `import seqcore.backend as m`."""
    names = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module == "seqcore.backend":
            names += [a.asname or a.name for a in node.names if a.name == "Backend"]
        elif isinstance(node, ast.ImportFrom) and node.module == "seqcore":
            names += [f"{a.asname or a.name}.Backend" for a in node.names if a.name == "backend"]
        elif isinstance(node, ast.Import):
            names += [f"{a.asname}.Backend" for a in node.names if a.name == "seqcore.backend" and a.asname]
    return names


def backend_class(path: Path) -> ast.ClassDef:
    return next(node for node in ast.parse(path.read_text()).body
                if isinstance(node, ast.ClassDef) and node.name == "Backend")


def test_the_seam_is_small_and_its_loop_is_written_once() -> None:
    assert inspect.isabstract(protocol.Backend)
    assert {"train_span", "forward_backward", "grad_norm"} <= set(WRITTEN_ONCE), WRITTEN_ONCE
    assert "gradients" not in vars(protocol.Backend)  # tests read gradients through the models
    assert len(PRIMITIVES) <= 20, PRIMITIVES


def test_backend_classes_implement_every_primitive_and_none_overrides_the_loop() -> None:
    for name, directory in BACKEND_DIRS.items():
        path = directory / "backend.py"
        surface = public_surface(path)
        for method in PRIMITIVES:
            wanted = arguments(getattr(protocol.Backend, method))
            assert surface.get(f"Backend.{method}") == wanted, f"{name}: Backend.{method} differs from the seam's"
        for method in WRITTEN_ONCE:
            assert f"Backend.{method}" not in surface, f"{name}: Backend.{method} overrides the seam's own"
        bases = [ast.unparse(base) for base in backend_class(path).bases]
        assert set(bases) & set(seam_bases(path)), f"{name}: Backend({', '.join(bases)}) is not the seam's subclass"
        assert "create_backend" in surface


@pytest.mark.slow
def test_each_backend_loads_as_a_complete_subclass_of_the_seam(backend_name: str) -> None:
    code = ("import inspect\n"
            "from seqcore import backend as seam\n"
            f"made = seam.load_backend({backend_name!r})\n"
            "cls = type(made)\n"
            "assert isinstance(made, seam.Backend) and not inspect.isabstract(cls), cls\n"
            "assert all(getattr(cls, m) is getattr(seam.Backend, m) for m in ('train_span', 'forward_backward',"
            " 'grad_norm'))\n")
    python("-c", code, check=True)


def test_the_data_parallel_backend_implements_every_primitive_and_keeps_the_loop() -> None:
    from seqcore.parallel.data_parallel import DistributedBackend

    assert issubclass(DistributedBackend, protocol.Backend) and not inspect.isabstract(DistributedBackend)
    for method in WRITTEN_ONCE:
        assert getattr(DistributedBackend, method) is getattr(protocol.Backend, method), method
    for method in PRIMITIVES:
        assert arguments(getattr(DistributedBackend, method)) == arguments(getattr(protocol.Backend, method)), method


# The core's layers, bottom first: a module imports only from its own layer and those below it,
# so that, say, the model never reaches up into the run layer. Top-level modules sit where their
# imports put them: errors and checks at the bottom, the seam (backend) and interchange above data.
LAYERS = ("errors", "checks", "model", "data", "backend", "interchange", "train", "parallel", "run", "jobs",
          "report")
FRAMEWORKS = ("mxnet", "torch", "torchvision")


def layer_of(module: str) -> int:
    """The layer index of 'seqcore.<part>...' (the package, or the top-level module's name)."""
    return LAYERS.index(module.split(".")[1])


def core_imports() -> list[tuple[str, int, str]]:
    """(importing module, line, imported module) for every import in seqcore/, read as source."""
    found = []
    for path in sorted((ROOT / "seqcore").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{module}:{node.lineno}: relative import (the core imports absolutely)"
                names = [node.module] if node.module != "seqcore" else [
                    f"seqcore.{a.name}" if a.name in LAYERS else "seqcore" for a in node.names]  # __version__
                found += [(module, node.lineno, name) for name in names]
            elif isinstance(node, ast.Import):
                found += [(module, node.lineno, alias.name) for alias in node.names]
    return found


def test_every_core_module_has_a_layer() -> None:
    for path in (ROOT / "seqcore").iterdir():
        if path.suffix == ".py" and path.stem != "__init__" or path.is_dir() and (path / "__init__.py").is_file():
            assert path.stem in LAYERS, f"seqcore/{path.name} has no place in LAYERS"


def test_the_core_imports_no_framework_and_nothing_above_it() -> None:
    for module, line, imported in core_imports():
        top = imported.split(".")[0]
        assert top not in FRAMEWORKS, f"{module}:{line} imports {imported}"
        assert top not in ("tasks", "backends", "tests"), f"{module}:{line} imports {imported} (above the core)"


def test_the_core_imports_only_downwards() -> None:
    for module, line, imported in core_imports():
        if imported.startswith("seqcore.") and module != "seqcore":  # `seqcore` itself: the version
            assert layer_of(imported) <= layer_of(module), (
                f"{module}:{line} imports {imported}, a layer above it ({LAYERS[layer_of(imported)]} > "
                f"{LAYERS[layer_of(module)]})")


def runnable_tasks() -> set[str]:
    return {p.stem for p in (ROOT / "tasks").glob("*.py") if "__main__" in p.read_text()}


def test_no_task_imports_another_runnable_task() -> None:
    runnable = runnable_tasks()
    for path in sorted((ROOT / "tasks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else [(node.module or "")]
                if node.level and not node.module:  # from . import x
                    names = [a.name for a in node.names]
                for name in names:
                    leaf = name.split(".")[-1] if name.startswith("tasks") or node.level else None
                    assert leaf not in runnable or leaf == path.stem, f"tasks/{path.name} imports the runnable tasks.{leaf}"


def test_one_place_imports_a_backend_or_its_parts() -> None:
    """seqcore.backend.load_backend / load_part alone import `backends.*` by name (one sentence each)."""
    for path in sorted([*(ROOT / "seqcore").rglob("*.py"), *(ROOT / "tasks").glob("*.py")]):
        if path == ROOT / "seqcore" / "backend.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)):
                called = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
                assert called not in ("import_module", "__import__"), (
                    f"{path.relative_to(ROOT)}:{node.lineno} imports by name; use seqcore.backend.load_part")


@pytest.mark.parametrize("name, part, fragment", [
    ("jax", None, "Unknown backend 'jax': choose one of mxnet, torch."),
    ("torch", "cuda", "Unknown part 'cuda' of a backend: choose one of distributed, interchange, bare, onnx, seq2seq."),
    ("mxnet", "onnx", "The mxnet backend has no onnx part; it comes with torch."),
])
def test_load_part_refuses_in_one_sentence_before_importing(name: str, part, fragment: str) -> None:
    with pytest.raises(SeqcoreError, match=re.escape(fragment)):
        protocol.load_part(name, part)


def test_a_part_of_a_missing_framework_names_its_extra(tmp_path: Path) -> None:
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'torch'\")\n")
    code = ("from seqcore.backend import load_part\n"
            "from seqcore.errors import SeqcoreError\n"
            "for part in ('interchange', 'distributed', 'bare', 'onnx'):\n"
            "    try:\n"
            "        load_part('torch', part)\n"
            "    except SeqcoreError as error:\n"
            "        print(error)\n")
    lines = python("-c", code, check=True, path_first=str(tmp_path)).stdout.splitlines()
    assert lines == ["The torch backend cannot be loaded (ImportError: No module named 'torch'); install it "
                     "with `pip install -e '.[torch]'`."] * 4, lines
