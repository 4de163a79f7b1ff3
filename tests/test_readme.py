"""The README stays a user's guide that tells the truth about the tree.

Its Layout block names every folder of the core and every module in it, every backend file and every
runnable task; these tests fail when a file is added, moved or removed without the block following,
and when the README grows past a guide's length.
"""
from __future__ import annotations

import re

from tests.conftest import ROOT

README = ROOT / "README.md"
MAX_LINES = 250


def layout_block() -> str:
    match = re.search(r"^## Layout\n\n```\n(.*?)```", README.read_text(encoding="utf-8"), re.S | re.M)
    assert match, "README.md has no ## Layout section with a code block"
    return match.group(1)


def named_files(block: str) -> dict[str, set[str]]:
    """{folder: the file names the block lists in it}. A line at the left margin opens one or more
    folders ('seqcore/', 'backends/mxnet/ backends/torch/:'); a line indented by two spaces lists a
    file of that folder or opens a subfolder ('model/  spec.py params.py: ...'); a line indented deeper
    continues the last one. Only the leading file names of a line count (up to a word that is not one):
    the rest is description."""
    found: dict[str, set[str]] = {}
    top: list[str] = []
    current: list[str] = []
    for line in block.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        words = [w.rstrip(":") for w in line.split()]
        if indent == 0:
            top = [w for w in words if w.endswith("/")]
            current, words = top, words[len(top):]
        elif indent == 2 and words[0].endswith("/"):
            current, words = [folder + words[0] for folder in top], words[1:]
        elif indent == 2:
            current = top
        names = []
        for word in words:
            if not _is_name(word):
                break
            names.append(word)
        for folder in current:
            found.setdefault(folder, set()).update(names)
    return found


def _is_name(word: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z_][\w.-]*\.(py|txt)", word))


def test_the_readme_is_a_guide_not_a_notebook() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"README.md has {lines} lines; design notes and measurements belong in docs/"


def test_the_layout_names_every_core_folder_and_module() -> None:
    named = named_files(layout_block())
    core = ROOT / "seqcore"
    top = {p.name for p in core.iterdir() if p.suffix == ".py" and p.stem != "__init__"}
    packages = {p.name for p in core.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert top <= named["seqcore/"], f"README layout lacks seqcore/{sorted(top - named['seqcore/'])}"
    for package in sorted(packages):
        folder = f"seqcore/{package}/"
        assert folder in named, f"README layout lacks {folder}"
        files = {p.name for p in (core / package).iterdir()
                 if p.suffix in (".py", ".txt") and p.stem != "__init__"}
        assert files == named[folder], (f"README layout of {folder}: missing {sorted(files - named[folder])}, "
                                        f"not in the tree {sorted(named[folder] - files)}")


def test_the_layout_names_every_backend_file() -> None:
    named = named_files(layout_block())
    for backend in ("mxnet", "torch"):
        folder = f"backends/{backend}/"
        files = {p.name for p in (ROOT / "backends" / backend).glob("*.py")
                 if p.stem != "__init__" and not p.stem.startswith("_")}
        assert files == named.get(folder, set()), (f"README layout of {folder}: missing "
                                                   f"{sorted(files - named.get(folder, set()))}, not in the tree "
                                                   f"{sorted(named.get(folder, set()) - files)}")


def test_the_layout_names_every_task_module() -> None:
    named = named_files(layout_block()).get("tasks/", set())
    files = {p.name for p in (ROOT / "tasks").glob("*.py") if p.stem != "__init__"}
    assert files == named, f"README layout of tasks/: missing {sorted(files - named)}, not in the tree {sorted(named - files)}"


def test_every_docs_link_resolves() -> None:
    for target in re.findall(r"\]\((docs/[^)#]+)\)", README.read_text(encoding="utf-8")):
        assert (ROOT / target).is_file(), f"README links to {target}, which does not exist"
