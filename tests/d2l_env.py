"""The d2l book's own code beside seqcore, for tests/test_d2l.py (NumPy only in this process).

SEQCORE_D2L_ENV names a folder made by tests/scripts/setup_d2l_env.sh: each edition unpacked
into d2l-0.17.6/ and d2l-1.0.3/, what they import in deps/. Without it the d2l tests are
skipped; with it, a missing edition fails them (CI cannot pass by skipping). The book's code
runs in its own process (tests/scripts/d2l_book.py) with one edition and one framework, never
seqcore's backends: its PYTHONPATH holds the edition, deps and an empty `torchvision` (d2l's
PyTorch module imports torchvision, which does not install beside the CPU torch here; the book's
chapter 8-10 code never calls it, so what that leaves untested is only d2l's image helpers).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seqcore.data.corpus import time_machine_path
from tests.conftest import ROOT, require_backend

ENV = os.environ.get("SEQCORE_D2L_ENV", "")
EDITIONS = {"0.17": "d2l-0.17.6", "1.0": "d2l-1.0.3"}
SCRIPT = ROOT / "tests" / "scripts" / "d2l_book.py"


def require_d2l(edition: str, framework: str) -> Path:
    """The edition's folder, or a skip (SEQCORE_D2L_ENV unset) / failure (set but incomplete)."""
    if not ENV:
        pytest.skip("the d2l book's code is not installed: tests/scripts/setup_d2l_env.sh DIR, then "
                    "SEQCORE_D2L_ENV=DIR")
    folder = Path(ENV) / EDITIONS[edition]
    for needed in (folder / "d2l" / f"{framework}.py", Path(ENV) / "deps"):
        if not needed.exists():
            pytest.fail(f"SEQCORE_D2L_ENV={ENV} lacks {needed}; run tests/scripts/setup_d2l_env.sh {ENV}")
    require_backend(framework)
    return folder


def book_workspace(tmp: Path) -> Path:
    """A working folder whose ../data holds the Time Machine (d2l finds it by SHA-1 and downloads
    nothing) and whose ../stub holds the empty torchvision."""
    (tmp / "data").mkdir(parents=True, exist_ok=True)
    shutil.copy(time_machine_path(), tmp / "data" / "timemachine.txt")
    stub = tmp / "stub" / "torchvision"
    stub.mkdir(parents=True, exist_ok=True)
    (stub / "__init__.py").write_text("")
    (stub / "transforms.py").write_text("")
    (tmp / "work").mkdir(exist_ok=True)
    return tmp / "work"


def run_book(edition: str, framework: str, job: dict, tmp: Path, timeout: float = 1200) -> Path:
    """Run the book's code on `job` (tests/scripts/d2l_book.py); its output folder."""
    folder = require_d2l(edition, framework)
    work = book_workspace(tmp)
    out = tmp / f"book-{edition}-{framework}-{job['task']}"
    job = {**job, "edition": edition, "framework": framework, "out": str(out)}
    job_file = tmp / f"{out.name}.json"
    job_file.write_text(json.dumps(job))
    path = os.pathsep.join([str(folder), str(Path(ENV) / "deps"), str(tmp / "stub")])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path, "MPLBACKEND": "Agg",
           "PYTHONUNBUFFERED": "1"}
    result = subprocess.run([sys.executable, str(SCRIPT), str(job_file)], cwd=work, env=env,
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"the book's code failed ({edition}, {framework}, {job['task']}):\n"
                             f"{result.stderr[-4000:]}")
    return out
