"""Backend availability and the two tiers.

Every test that touches a framework runs it in a subprocess (MXNet and PyTorch must never
share a process), so this pytest process itself only ever loads NumPy. A backend that cannot
be loaded is skipped with its real error, unless SEQCORE_TEST_BACKENDS names it: then the
test fails, so CI cannot pass by skipping.

Tiers (the `slow` marker, pyproject.toml): a test that needs a framework is slow, and
`require_backend` (also behind the `backend_name` fixture) fails a test that is not marked so,
which keeps `pytest -m "not slow"` free of frameworks as tests are added.
"""
from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seqcore.backend import BACKENDS

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = {name for name in os.environ.get("SEQCORE_TEST_BACKENDS", "").split(",") if name}
assert REQUIRED <= set(BACKENDS), f"SEQCORE_TEST_BACKENDS names unknown backends: {REQUIRED - set(BACKENDS)}"


def python(*args: str, timeout: float = 600, check: bool = False,
           path_first: str | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run `python *args` (from the repository root unless `cwd`), capturing text output.

    path_first: a directory searched before everything else (to stand in a broken framework).
    """
    path = os.pathsep.join(p for p in (path_first, str(ROOT)) if p)
    # One OpenMP / intra-op thread: on a busy 2-core machine PyTorch's default of 2 threads ran
    # the tests' tiny models up to 70x slower (LSTM, 300 steps: 28.7 s against 0.4 s).
    env = {"OMP_NUM_THREADS": "1", **os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"python {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


@functools.lru_cache(maxsize=None)
def backend_problem(name: str) -> str | None:
    """None when `backends.<name>` loads in a fresh process, else the sentence explaining why not."""
    result = python("-c", f"from seqcore.backend import load_backend; load_backend({name!r})", timeout=300)
    if result.returncode == 0:
        return None
    return (result.stderr.strip().splitlines() or ["no output"])[-1]


_RUNNING: list[pytest.Item] = []  # the test being set up and run (pytest_runtest_setup), for require_backend


@pytest.hookimpl(tryfirst=True)  # before the fixtures are set up (backend_name calls require_backend)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _RUNNING[:] = [item]


def pytest_runtest_teardown(item: pytest.Item) -> None:
    _RUNNING.clear()


def require_backend(name: str) -> None:
    if _RUNNING and _RUNNING[0].get_closest_marker("slow") is None:
        pytest.fail(f"{_RUNNING[0].nodeid} needs the {name} backend, so it belongs to the slow tier: mark it "
                    f"@pytest.mark.slow (or its file: pytestmark = pytest.mark.slow)")
    problem = backend_problem(name)
    if problem is None:
        return
    if name in REQUIRED:
        pytest.fail(f"backend {name} is required by SEQCORE_TEST_BACKENDS but cannot be loaded: {problem}")
    pytest.skip(f"backend {name} unavailable: {problem}")


@pytest.fixture(params=BACKENDS)
def backend_name(request) -> str:
    require_backend(request.param)
    return request.param


def assert_one_sentence(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Bad input: exit status 2, no traceback, one `error:` line holding every fragment."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if "error:" in line]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
