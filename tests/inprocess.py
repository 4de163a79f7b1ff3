"""A command's `main(argv)` run inside the test process, as `python -m tasks.X argv` would run it.

For refusals decided before a framework loads: they take milliseconds here against a second or
more for a fresh interpreter. `run_command` goes through tasks.cli.exit_code (run_main without
sys.exit and without its stream wrappers) and gives back what a subprocess would: the exit
status and the text on stdout and stderr. Whatever the command changes in the process is put
back afterwards: the environment, the working folder, signal handlers, sys.stdout / sys.stderr.

MXNet and PyTorch must never load here (the pytest process may run either framework's tests'
subprocesses, and a later case could load the other framework beside it): while a command runs,
importing `mxnet` or `torch` raises ImportError and is recorded, and `run_command` then fails the
test, saying that the case belongs with the ones that run in their own process.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import io
import os
import signal
import sys
from pathlib import Path
from typing import Iterator, Mapping, Optional, Sequence

import pytest

FRAMEWORKS = ("mxnet", "torch")
MISSING = "backend cannot be loaded"  # seqcore.backend's sentence for a framework that is not installed
# Every handler a command may install (the run layer's SIGINT / SIGTERM, process owners' others).
SIGNALS = [s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)]


def loaded_frameworks() -> list[str]:
    return sorted(name for name in sys.modules if name.split(".")[0] in FRAMEWORKS)


class _Refused(importlib.abc.Loader):
    def __init__(self, blocker: "FrameworkBlocker", name: str):
        self.blocker, self.name = blocker, name

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        self.blocker.attempts.append(self.name)
        raise ImportError(f"{self.name} may not be imported into the test process (tests/inprocess.py)")


class FrameworkBlocker(importlib.abc.MetaPathFinder):
    """First on sys.meta_path: an installed framework is found (importlib.util.find_spec still
    sees it, as tasks.cli.default_backend asks) but importing it fails and is recorded."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def find_spec(self, name: str, path=None, target=None):
        if name.split(".")[0] not in FRAMEWORKS:
            return None
        found = importlib.machinery.PathFinder.find_spec(name, path)
        if found is None:
            return None  # not installed: the ordinary ModuleNotFoundError follows
        return importlib.util.spec_from_loader(name, _Refused(self, name), origin=found.origin)


@contextlib.contextmanager
def framework_blocked() -> Iterator[FrameworkBlocker]:
    before = loaded_frameworks()
    assert not before, f"a framework is already loaded in the test process: {before[:3]}"
    blocker = FrameworkBlocker()
    sys.meta_path.insert(0, blocker)
    try:
        yield blocker
    finally:
        sys.meta_path.remove(blocker)


@contextlib.contextmanager
def process_state_restored(env: Mapping[str, str], cwd: Path) -> Iterator[None]:
    """os.environ updated with `env` and the working folder `cwd` while the block runs; then the
    environment, the folder and every signal handler exactly as they were."""
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_handlers = {signum: signal.getsignal(signum) for signum in SIGNALS}
    saved_streams = (sys.stdout, sys.stderr)
    os.environ.update(env)
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        for signum, handler in saved_handlers.items():
            if signal.getsignal(signum) is not handler and handler is not None:
                signal.signal(signum, handler)
        sys.stdout, sys.stderr = saved_streams


@dataclasses.dataclass(frozen=True)
class Result:
    """What subprocess.run(..., capture_output=True, text=True) would have given."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def command_main(module: str):
    """The `main` of a runnable module named as after `python -m` (tasks.char_lm)."""
    return importlib.import_module(module).main


def run_command(argv: Sequence[str], env: Optional[Mapping[str, str]] = None, cwd: Optional[Path] = None) -> Result:
    """`python -m MODULE ARGS...` in-process: argv is ["-m", MODULE, *ARGS], as given to a subprocess.

    env: variables set for the call (on top of the test process's own); cwd: the working folder
    (a refusal that got through would write under runs/ there, so give a test's tmp folder)."""
    assert len(argv) >= 2 and argv[0] == "-m", f"not a `-m MODULE` command line: {argv[:2]}"
    import matplotlib  # noqa: F401  (before `env`: an import failed under a bad MPLBACKEND would leave
    # a half-made matplotlib behind for every later test; the commands import it anyway)
    from tasks.cli import exit_code

    out, err = io.StringIO(), io.StringIO()
    with framework_blocked() as blocker, process_state_restored(dict(env or {}), cwd or Path.cwd()):
        main = command_main(argv[1])  # a first import of the command is watched too
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = exit_code(main, list(argv[2:]))
    tried = blocker.attempts or loaded_frameworks()
    if not tried and MISSING in err.getvalue():  # where no framework is installed, the same call fails so
        tried = ["a backend"]
    if tried:
        pytest.fail(f"`{' '.join(argv[:2])}` loads {', '.join(tried)} before it refuses: a case that loads a "
                    f"framework runs in its own process (and is marked slow); its output was:\n"
                    f"{err.getvalue()[-2000:]}")
    return Result(list(argv), code, out.getvalue(), err.getvalue())


def files_under(folder: Path) -> dict[str, tuple[int, int]]:
    """Every entry under `folder` -> (size, mtime_ns): what a refusal must leave as it found it."""
    return {str(path): (path.lstat().st_size, path.lstat().st_mtime_ns) for path in sorted(folder.rglob("*"))}


def refuses(argv: Sequence[str], folder: Path, *fragments: str, env: Optional[Mapping[str, str]] = None,
            out: Optional[Path] = None) -> Result:
    """`run_command(argv)` in `folder`: exit status 2, one `error:` sentence holding every fragment,
    no traceback, and nothing under `folder` changed or removed, nothing made but the (empty) folder
    `out` that the command was given as --out (a refused run may leave its own new folder behind)."""
    from tests.conftest import assert_one_sentence

    before = files_under(folder)
    result = run_command(argv, env=env, cwd=folder)
    assert_one_sentence(result, *fragments)  # type: ignore[arg-type]
    after = files_under(folder)
    changed = [path for path, record in before.items() if after.get(path) != record and not Path(path).is_dir()]
    may_make = {str(out), *map(str, out.parents)} if out is not None else set()
    made = [path for path in set(after) - set(before) if path not in may_make or not Path(path).is_dir()]
    assert not changed and not made, f"a refused command changed {changed} and made {made}"
    return result
