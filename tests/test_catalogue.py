"""A catalogue of bad input and faults: every case runs a task's command line in a subprocess.

Each case is a `Case` in `CASES` (id, setup, argv builder, expected fragment); the test asserts,
for each one: exit status 2, exactly one `error:` sentence on stderr holding the fragment
(compared without regard to case), no traceback, and that nothing that existed before was
touched: every file under the case's tmp folder and under the module's run folders keeps its
SHA-256, size and mtime, and no new entry appears in a folder that existed before, except the
--out folder the command names (and the download cache). A refused run may leave its own new
--out folder behind, never a file in someone's folder.

Groups: output folders (a file, read-only, no permission, a full disk), the never-clobber policy
(rerun, --overwrite, --resume, a second live run), resume and --config mismatches, damaged
checkpoints and run configs, corpus faults, absurd flag values of char_lm and mnist_rows, MNIST
data faults, and tasks.compare / tasks.evaluate on the wrong input.

Root: CI runs the tests as root, where chmod does not stop anything. The permission cases then run
their command without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH (dropped from the bounding set before
exec, so root obeys file modes like anyone else), the read-only and full-disk cases mount a small
tmpfs (`-o ro`, `-o size=64k`) and unmount it afterwards; each is skipped, with its reason, where
that is not possible. Most cases are refused before a framework loads, so they take a fraction of
a second; the two runs they need as material (char_lm and mnist_rows, tiny, PyTorch) are trained
once per module.

`python -m tests.test_catalogue` prints the catalogue as a Markdown table (for the README).
"""
from __future__ import annotations

import ctypes
import dataclasses
import errno
import fcntl
import functools
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest

from tests.conftest import ROOT, require_backend
from tests.idx_files import banded, idx_bytes, write_set
from tests.inprocess import run_command

SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
TIMEOUT = 600  # a hang guard: a refusal takes seconds, a material run under a minute on a busy machine

CHAR_TINY = ["--backend", "torch", "--device", "cpu", "--epochs", "1", "--max-tokens", "600", "--batch-size", "4",
             "--num-steps", "5", "--hidden-size", "8", "--no-progress", "--num-preds", "5"]
MNIST_TINY = ["--backend", "torch", "--device", "cpu", "--epochs", "1", "--limit-train", "64", "--limit-test", "32",
              "--batch-size", "32", "--hidden-size", "8", "--no-progress"]


# -- the material: two tiny runs, trained once per module, never changed by a case --------------

class Material:
    """The module's run folders, trained on first use (a case that needs none costs nothing)."""

    def __init__(self, root: Path):
        self.root = root
        self.built: list[Path] = []
        self.allowed = False  # set while a case that needs_material() runs

    @functools.cached_property
    def char_run(self) -> Path:
        return self._train("char_run", ["-m", "tasks.char_lm", *CHAR_TINY])

    @functools.cached_property
    def mnist_run(self) -> Path:
        if not SHARED_MNIST.is_dir():
            pytest.skip(f"no MNIST files at {SHARED_MNIST}")
        return self._train("mnist_run", ["-m", "tasks.mnist_rows", *MNIST_TINY, "--data-dir", str(SHARED_MNIST)])

    def _train(self, name: str, argv: list[str]) -> Path:
        assert self.allowed, "this case reads the trained runs, but needs_material() did not see it: mark its setup"
        out = self.root / name
        result = run_python([*argv, "--out", str(out)], env_extra={"SEQCORE_CACHE": str(self.root / "cache")})
        if result.returncode != 0:
            raise AssertionError(f"the {name} setup run failed ({result.returncode}):\n{result.stderr[-3000:]}")
        self.built.append(out)
        return out


@dataclasses.dataclass
class Ctx:
    """What a case's setup and argv builder see: its own tmp folder and the module's runs."""

    tmp: Path
    material: Material
    cleanups: list[Callable[[], None]] = dataclasses.field(default_factory=list)
    lock_path: Optional[Path] = None  # held with flock while the command runs
    env: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def char_run(self) -> Path:
        return self.material.char_run

    @property
    def mnist_run(self) -> Path:
        return self.material.mnist_run

    @property
    def out(self) -> Path:
        return self.tmp / "out"


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    group: str
    argv: Callable[[Ctx], list[str]]  # after `python`
    fragment: str  # must appear in the one error line (case-insensitive)
    setup: Optional[Callable[[Ctx], None]] = None
    unprivileged: bool = False  # as root: run without the capabilities that bypass file modes
    xfail: Optional[str] = None  # a known product bug outside this catalogue's remit (strict)
    process: Optional[str] = None  # why the command runs in a process of its own (it loads a framework)


# -- argv builders --------------------------------------------------------------------------------

def char_lm(*extra: str, out: Optional[Callable[[Ctx], Path]] = None) -> Callable[[Ctx], list[str]]:
    return lambda c: ["-m", "tasks.char_lm", *CHAR_TINY, "--out", str(out(c) if out else c.out), *extra]


def char_lm_with(build: Callable[[Ctx], list[str]]) -> Callable[[Ctx], list[str]]:
    """char_lm's tiny flags and --out, then flags that need the context (paths)."""
    return lambda c: ["-m", "tasks.char_lm", *CHAR_TINY, "--out", str(c.out), *build(c)]


def mnist_rows(*extra: str, data: Optional[Callable[[Ctx], Path]] = None,
               out: Optional[Callable[[Ctx], Path]] = None) -> Callable[[Ctx], list[str]]:
    def argv(c: Ctx) -> list[str]:
        folder = data(c) if data else SHARED_MNIST
        if data is None and not SHARED_MNIST.is_dir():
            pytest.skip(f"no MNIST files at {SHARED_MNIST}")
        return ["-m", "tasks.mnist_rows", *MNIST_TINY, "--data-dir", str(folder), "--out",
                str(out(c) if out else c.out), *extra]
    return argv


def resume(task: str, folder: Callable[[Ctx], Path], *extra: str, epochs: str = "2") -> Callable[[Ctx], list[str]]:
    return lambda c: ["-m", f"tasks.{task}", "--resume", "--out", str(folder(c)), "--epochs", epochs,
                      "--no-progress", "--device", "cpu", *extra]


def copy_of_char_run(c: Ctx) -> Path:
    return c.tmp / "run"


# -- setups ---------------------------------------------------------------------------------------

def write(relative: str, data: bytes | str, mode: Optional[int] = None) -> Callable[[Ctx], None]:
    def setup(c: Ctx) -> None:
        path = c.tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        if mode is not None:
            path.chmod(mode)
    return setup


def folder(relative: str, mode: Optional[int] = None, files: dict[str, str] | None = None) -> Callable[[Ctx], None]:
    def setup(c: Ctx) -> None:
        path = c.tmp / relative
        path.mkdir(parents=True, exist_ok=True)
        for name, text in (files or {}).items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_text(text)
        if mode is not None:
            path.chmod(mode)
            c.cleanups.append(lambda: path.chmod(0o755))  # so pytest can delete it
    return setup


def uses_material(setup: Callable[[Ctx], object]) -> Callable[[Ctx], object]:
    """Marks a setup that reads the module's trained runs (so its case is slow; see needs_material)."""
    setup.uses_material = True  # type: ignore[attr-defined]
    return setup


def both(*setups: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
    def setup(c: Ctx) -> None:
        for one in setups:
            one(c)
    return uses_material(setup) if any(getattr(one, "uses_material", False) for one in setups) else setup


@uses_material
def copy_char_run(c: Ctx) -> Path:
    return Path(shutil.copytree(c.char_run, copy_of_char_run(c)))


def tamper(edit_meta: Optional[Callable[[dict], None]] = None,
           edit_tensors: Optional[Callable[[dict], None]] = None,
           replace: Optional[Callable[[Ctx, Path], None]] = None) -> Callable[[Ctx], None]:
    """A copy of the char_lm run whose model.safetensors is rewritten (metadata kept unless edited)."""
    @uses_material
    def setup(c: Ctx) -> None:
        from safetensors import safe_open
        from safetensors.numpy import load_file, save_file

        path = copy_char_run(c) / "model.safetensors"
        if replace is not None:
            replace(c, path)
            return
        with safe_open(str(path), framework="np") as handle:
            metadata = dict(handle.metadata())
        tensors = load_file(str(path))
        if edit_meta:
            edit_meta(metadata)
        if edit_tensors:
            edit_tensors(tensors)
        save_file(tensors, str(path), metadata=metadata)
    return setup


def meta(key: str, value: Optional[str]) -> Callable[[dict], None]:
    def edit(metadata: dict) -> None:
        if value is None:
            del metadata[key]
        else:
            metadata[key] = value
    return edit


def meta_field(key: str, field: str, value) -> Callable[[dict], None]:
    def edit(metadata: dict) -> None:
        data = json.loads(metadata[key])
        data[field] = value
        metadata[key] = json.dumps(data)
    return edit


def tensor(name: str, change: Callable) -> Callable[[dict], None]:
    def edit(tensors: dict) -> None:
        if change is None:
            del tensors[name]
        else:
            tensors[name] = change(tensors[name])
    return edit


def with_nan(array):
    array = array.copy()
    array.flat[0] = float("nan")
    return array


def with_inf(array):
    array = array.copy()
    array.flat[-1] = float("inf")
    return array


def as_int32(array):
    import numpy as np

    return (array * 100).astype(np.int32)


def file_bytes(data: bytes) -> Callable[[Ctx, Path], None]:
    return lambda c, path: path.write_bytes(data)


def truncated(c: Ctx, path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def mnist_checkpoint(c: Ctx, path: Path) -> None:
    shutil.copyfile(c.mnist_run / "model.safetensors", path)


def run_config(change: Callable[[dict], None] | str) -> Callable[[Ctx], None]:
    """A copy of the char_lm run whose config.json is edited (a dict change) or replaced (text)."""
    @uses_material
    def setup(c: Ctx) -> None:
        path = copy_char_run(c) / "config.json"
        if isinstance(change, str):
            path.write_text(change)
        else:
            saved = json.loads(path.read_text())
            change(saved)
            path.write_text(json.dumps(saved))
    return setup


def config_file(content) -> Callable[[Ctx], None]:
    return write("given.json", content if isinstance(content, str) else json.dumps(content))


def char_config(**fields) -> dict:
    return {"task": "char_lm", "config": fields}


def hold_lock(target: Callable[[Ctx], Path]) -> Callable[[Ctx], None]:
    def setup(c: Ctx) -> None:
        folder_path = target(c)
        folder_path.mkdir(parents=True, exist_ok=True)
        c.lock_path = folder_path / ".seqcore.lock"
        if not c.lock_path.exists():  # the run folder's own lock file stays as it is
            c.lock_path.touch()
    return setup


def fifo(c: Ctx) -> None:
    os.mkfifo(c.tmp / "corpus.fifo")


def mnist_copy(damage: Callable[[Path], None]) -> Callable[[Ctx], None]:
    """tmp/mnist: links to the four shared files, then `damage` replaces one of them."""
    def setup(c: Ctx) -> None:
        if not SHARED_MNIST.is_dir():
            pytest.skip(f"no MNIST files at {SHARED_MNIST}")
        data = c.tmp / "mnist"
        data.mkdir()
        for path in SHARED_MNIST.iterdir():
            (data / path.name).symlink_to(path)
        damage(data)
    return setup


def replace_file(name: str, content: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def damage(data: Path) -> None:
        original = (data / name).read_bytes()
        (data / name).unlink()
        (data / name).write_bytes(content(original))
    return damage


def mnist_data(c: Ctx) -> Path:
    return c.tmp / "mnist"


# Mounts (root only): a tmpfs, unmounted when the case ends.

def _mount(c: Ctx, where: Path, options: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs (as a user, the chmod cases cover the permission checks)")
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    c.cleanups.append(lambda: subprocess.run(["umount", "-l", str(where)], capture_output=True))


def read_only_mount(c: Ctx) -> None:
    _mount(c, c.tmp / "ro", "ro,size=64k")


def small_disk(c: Ctx) -> None:
    _mount(c, c.tmp / "disk", "size=64k")


def full_disk(c: Ctx) -> None:
    _mount(c, c.tmp / "disk", "size=64k")
    handle = os.open(c.tmp / "disk" / "filler", os.O_WRONLY | os.O_CREAT, 0o644)  # every block taken
    try:
        while True:
            os.write(handle, b"\0" * 4096)
    except OSError as error:
        assert error.errno == errno.ENOSPC, error
    finally:
        os.close(handle)


# -- the catalogue --------------------------------------------------------------------------------

# Case.process, why a command runs in a fresh interpreter. AFTER_LOAD: the run layer checks memory and
# disk for the model once the task has loaded its backend (so the case is slow). FRESH_IMPORT: what is
# refused breaks an import that the test process has long done (no framework: the case stays fast).
# AT_RESUME: the resume position is checked as the run resumes, once the backend has loaded.
AFTER_LOAD = "the run layer's memory and disk checks come after the backend loads"
AT_RESUME = "the checkpoint's position is read as the run resumes, after the backend loads"
FRESH_IMPORT = "a broken MPLBACKEND breaks `import matplotlib` itself, which only a fresh interpreter shows"

OUTPUT = [
    Case("out-is-a-file", "output", char_lm(out=lambda c: c.tmp / "notes.txt"), "is a file, not a folder",
         setup=write("notes.txt", "my notes\n")),
    Case("out-under-a-file", "output", char_lm(out=lambda c: c.tmp / "notes.txt" / "run"),
         "cannot create the folder", setup=write("notes.txt", "my notes\n")),
    Case("out-read-only-chmod-555", "output", char_lm(out=lambda c: c.tmp / "ro"), "is not writable",
         setup=folder("ro", 0o555), unprivileged=True),
    Case("out-inside-read-only-chmod-555", "output", char_lm(out=lambda c: c.tmp / "ro" / "run"),
         "(permission denied)", setup=folder("ro", 0o555), unprivileged=True),
    Case("out-read-only-mount", "output", char_lm(out=lambda c: c.tmp / "ro"), "is not writable",
         setup=read_only_mount),
    Case("out-inside-read-only-mount", "output", char_lm(out=lambda c: c.tmp / "ro" / "run"),
         "(read-only file system)", setup=read_only_mount),
    Case("out-inside-folder-without-permission", "output", char_lm(out=lambda c: c.tmp / "locked" / "run"),
         "(permission denied)", setup=folder("locked", 0o000), unprivileged=True),
    Case("out-folder-without-permission", "output", char_lm(out=lambda c: c.tmp / "locked"), "is not writable",
         setup=folder("locked", 0o000), unprivileged=True),
    Case("out-folder-not-readable", "output", char_lm(out=lambda c: c.tmp / "wx"), "is not readable",
         setup=folder("wx", 0o333), unprivileged=True),
    Case("out-disk-too-small", "output", char_lm(out=lambda c: c.tmp / "disk" / "run"),
         "MB free, but this run needs about", setup=small_disk, process=AFTER_LOAD),
    Case("out-disk-full", "output", char_lm(out=lambda c: c.tmp / "disk" / "run"), "no space left on device",
         setup=full_disk),
]

POLICY = [
    Case("rerun-into-existing-run", "policy", char_lm(out=lambda c: c.char_run),
         "is not empty; use --resume to continue it or --overwrite to replace it"),
    Case("new-run-into-foreign-folder", "policy", char_lm(out=lambda c: c.tmp / "data"),
         "is not empty; use another --out", setup=folder("data", files={"thesis.tex": "\\begin{document}"})),
    Case("overwrite-foreign-folder", "policy", char_lm("--overwrite", out=lambda c: c.tmp / "data"),
         "--overwrite only replaces runs", setup=folder("data", files={"thesis.tex": "\\begin{document}"})),
    Case("overwrite-folder-of-subfolders", "policy", char_lm("--overwrite", out=lambda c: c.tmp / "data"),
         "holds no seqcore run", setup=folder("data", files={"photos/cat.jpg": "meow"})),
    Case("resume-empty-folder", "policy", resume("char_lm", lambda c: c.tmp / "empty"), "holds no run",
         setup=folder("empty")),
    Case("resume-missing-folder", "policy", resume("char_lm", lambda c: c.tmp / "nowhere"), "holds no run"),
    Case("resume-foreign-folder", "policy", resume("char_lm", lambda c: c.tmp / "data"),
         "holds no run (config.json is missing)", setup=folder("data", files={"thesis.tex": "x"})),
    Case("resume-and-overwrite", "policy", resume("char_lm", lambda c: c.char_run, "--overwrite"),
         "--resume and --overwrite exclude each other"),
    Case("resume-without-out", "policy",
         lambda c: ["-m", "tasks.char_lm", "--resume", "--backend", "torch", "--no-progress"],
         "--resume needs --out"),
    Case("concurrent-resume", "policy", resume("char_lm", lambda c: c.char_run),
         "another run is writing to", setup=hold_lock(lambda c: c.char_run)),
    Case("concurrent-new-run", "policy", char_lm(out=lambda c: c.tmp / "busy"), "another run is writing to",
         setup=hold_lock(lambda c: c.tmp / "busy")),
    Case("concurrent-overwrite", "policy", char_lm("--overwrite", out=copy_of_char_run),
         "another run is writing to", setup=both(copy_char_run, hold_lock(copy_of_char_run))),
    Case("mnist-rerun-into-existing-run", "policy", mnist_rows(out=lambda c: c.mnist_run),
         "is not empty; use --resume"),
]

RESUME = [
    Case("resume-mnist-run-with-char_lm", "resume", resume("char_lm", lambda c: c.mnist_run),
         "holds a mnist_rows run, not a char_lm run"),
    Case("resume-char_lm-run-with-mnist_rows", "resume", resume("mnist_rows", lambda c: c.char_run),
         "holds a char_lm run, not a mnist_rows run"),
    Case("resume-different-hidden-size", "resume", resume("char_lm", lambda c: c.char_run, "--hidden-size", "16"),
         "--hidden-size 16 differs from the run"),
    Case("resume-different-cell", "resume", resume("char_lm", lambda c: c.char_run, "--cell", "lstm"),
         "--cell lstm differs from the run"),
    Case("resume-different-lr", "resume", resume("char_lm", lambda c: c.char_run, "--lr", "0.5"),
         "--lr 0.5 differs from the run"),
    Case("mnist-resume-different-preset", "resume", resume("mnist_rows", lambda c: c.mnist_run, "--preset", "best"),
         "--preset best differs from the run"),
    Case("resume-different-dropout", "resume", resume("char_lm", lambda c: c.char_run, "--dropout", "0.2"),
         "--dropout 0.2 differs from the run"),
    Case("resume-different-gru-reset", "resume", resume("char_lm", lambda c: c.char_run, "--gru-reset", "before"),
         "--gru-reset before needs --cell gru --impl scratch"),  # the request is refused in itself first
    Case("resume-different-init", "resume", resume("char_lm", lambda c: c.char_run, "--init", "normal"),
         "--init normal differs from the run"),
    Case("resume-with-config", "resume", resume("char_lm", lambda c: c.char_run, "--config", "config.json"),
         "--config and --resume exclude each other"),
    Case("run-config-edited-lr", "resume", resume("char_lm", copy_of_char_run),
         "config.json was edited: it says --lr 0.25", setup=run_config(lambda s: s["config"].update(lr=0.25))),
    Case("mnist-resume-bidirectional", "resume", resume("mnist_rows", lambda c: c.mnist_run, "--bidirectional"),
         "--bidirectional True differs from the run"),
    Case("resume-epochs-not-above-done", "resume", resume("char_lm", lambda c: c.char_run, epochs="1"),
         "has already trained 1 epochs; give --epochs above that", process=AT_RESUME),
    Case("mnist-resume-epochs-not-above-done", "resume", resume("mnist_rows", lambda c: c.mnist_run, epochs="1"),
         "has already trained 1 epochs", process=AT_RESUME),
    Case("config-missing-file", "resume", char_lm_with(lambda c: ["--config", str(c.tmp / "nope.json")]),
         "no such file"),
    Case("config-not-json", "resume", char_lm_with(lambda c: ["--config", str(c.tmp / "given.json")]),
         "cannot be read", setup=config_file("hidden_size = 8\n")),
    Case("config-not-a-run-config", "resume", char_lm_with(lambda c: ["--config", str(c.tmp / "given.json")]),
         "is not a seqcore run configuration", setup=config_file([1, 2, 3])),
    Case("config-of-another-task", "resume", char_lm_with(lambda c: ["--config", str(c.mnist_run / "config.json")]),
         "holds a mnist_rows configuration, not a char_lm one"),
    Case("config-folder-of-another-task", "resume", char_lm_with(lambda c: ["--config", str(c.mnist_run)]),
         "holds a mnist_rows configuration"),
    Case("config-folder-without-run", "resume", char_lm_with(lambda c: ["--config", str(c.tmp / "empty")]),
         "holds no run", setup=folder("empty")),
    Case("config-unknown-field", "resume", char_lm_with(lambda c: ["--config", str(c.tmp / "given.json")]),
         "fields this task does not know: turbo", setup=config_file(char_config(turbo=True))),
    Case("config-bad-value", "resume", char_lm_with(lambda c: ["--config", str(c.tmp / "given.json")]),
         "--clip must be zero or more, got -1", setup=config_file(char_config(clip=-1))),
    Case("config-wrong-type", "resume",
         lambda c: ["-m", "tasks.char_lm", "--config", str(c.tmp / "given.json"), "--out", str(c.out)],
         "--hidden-size must be a whole number, got 'big'", setup=config_file(char_config(hidden_size="big"))),
    Case("config-prefixes-one-string", "resume", char_lm_with(lambda c: ["--config", str(c.tmp / "given.json")]),
         "--prefix takes a list of values, got the single text 'time'",
         setup=config_file(char_config(prefixes="time"))),
    Case("config-num-preds-fraction", "resume",
         lambda c: ["-m", "tasks.char_lm", "--config", str(c.tmp / "given.json"), "--out", str(c.out)],
         "--num-preds must be a whole number, got 2.5", setup=config_file(char_config(num_preds=2.5))),
    Case("config-corpus-a-number", "resume", char_lm_with(lambda c: ["--config", str(c.tmp / "given.json")]),
         "--corpus must be text, got 5", setup=config_file(char_config(corpus=5))),
    Case("config-unknown-choice", "resume",
         lambda c: ["-m", "tasks.char_lm", "--config", str(c.tmp / "given.json"), "--out", str(c.out)],
         "--backend must be one of", setup=config_file(char_config(backend="jax"))),
]

CHECKPOINT = [
    Case("ckpt-missing-key", "checkpoint", resume("char_lm", copy_of_char_run),
         "the key 'model_spec' is missing", setup=tamper(meta("model_spec", None))),
    Case("ckpt-no-format", "checkpoint", resume("char_lm", copy_of_char_run),
         "is a safetensors file but not a seqcore checkpoint", setup=tamper(meta("format", None))),
    Case("ckpt-metadata-not-json", "checkpoint", resume("char_lm", copy_of_char_run),
         "damaged seqcore metadata: not JSON", setup=tamper(meta("train_spec", "{oops"))),
    Case("ckpt-provenance-wrong-type", "checkpoint", resume("char_lm", copy_of_char_run),
         "damaged seqcore metadata: provenance is", setup=tamper(meta("provenance", "[1, 2]"))),
    Case("ckpt-data-spec-damaged", "checkpoint", resume("char_lm", copy_of_char_run),
         "damaged seqcore metadata: token must be 'char' or 'word'",
         setup=tamper(meta_field("data_spec", "token", "byte"))),
    Case("ckpt-state-part-missing", "checkpoint", resume("char_lm", copy_of_char_run),
         "has a damaged recurrent state: it holds state/1, where a rnn model carries state/0",
         setup=tamper(edit_tensors=lambda t: t.__setitem__("state/1", np.zeros((1, 4, 8), np.float32)))),
    Case("ckpt-float64-overflow", "checkpoint", resume("char_lm", copy_of_char_run),
         "non-finite values in head.weight once cast from float64 to float32",
         setup=tamper(edit_tensors=tensor("head.weight", lambda a: np.full(a.shape, 1e39)))),
    Case("ckpt-model-spec-wrong-type", "checkpoint", resume("char_lm", copy_of_char_run),
         "hidden size must be a positive integer, got 'eight'",
         setup=tamper(meta_field("model_spec", "hidden_size", "eight"))),
    Case("ckpt-model-spec-unknown-field", "checkpoint", resume("char_lm", copy_of_char_run),
         "Unknown ModelSpec field(s): colour", setup=tamper(meta_field("model_spec", "colour", "red"))),
    Case("ckpt-spec-does-not-fit-weights", "checkpoint", resume("char_lm", copy_of_char_run),
         "has shape (8, 28), the model needs (16, 28)", setup=tamper(meta_field("model_spec", "hidden_size", 16))),
    Case("ckpt-position-not-object", "checkpoint", resume("char_lm", copy_of_char_run),
         "damaged seqcore metadata: position is", setup=tamper(meta("position", "[]"))),
    Case("ckpt-position-unknown-field", "checkpoint", resume("char_lm", copy_of_char_run),
         "damaged resume position (unknown fields turbo)", setup=tamper(meta_field("position", "turbo", 1))),
    Case("ckpt-position-epochs-done-text", "checkpoint", resume("char_lm", copy_of_char_run),
         "damaged resume position (epochs_done is 'one')", setup=tamper(meta_field("position", "epochs_done", "one"))),
    Case("ckpt-position-epochs-done-negative", "checkpoint", resume("char_lm", copy_of_char_run),
         "damaged resume position (epochs_done is -1)", setup=tamper(meta_field("position", "epochs_done", -1))),
    Case("ckpt-position-best-text", "checkpoint", resume("char_lm", copy_of_char_run),
         "damaged resume position (best is 'low')", setup=tamper(meta_field("position", "best", "low"))),
    Case("ckpt-position-rng-damaged", "checkpoint", resume("char_lm", copy_of_char_run),
         "damaged resume position (epoch_rng is", setup=tamper(meta_field("position", "epoch_rng", {"state": 7}))),
    Case("ckpt-position-generators-list", "checkpoint", resume("char_lm", copy_of_char_run),
         "damaged resume position (generators is [1])", setup=tamper(meta_field("position", "generators", [1]))),
    Case("ckpt-position-stats-damaged", "checkpoint", resume("char_lm", copy_of_char_run),
         "damaged resume position (stats is", setup=tamper(meta_field("position", "stats", {"speed": 1}))),
    Case("ckpt-position-steps-beyond-epoch", "checkpoint", resume("char_lm", copy_of_char_run),
         "damaged resume position (steps_done is 999", setup=tamper(meta_field("position", "steps_done", 999)),
         process=AT_RESUME),
    Case("ckpt-nan-weights", "checkpoint", resume("char_lm", copy_of_char_run),
         "holds non-finite values in head.weight", setup=tamper(edit_tensors=tensor("head.weight", with_nan))),
    Case("ckpt-inf-weights", "checkpoint", resume("char_lm", copy_of_char_run),
         "holds non-finite values in head.bias", setup=tamper(edit_tensors=tensor("head.bias", with_inf))),
    Case("ckpt-int32-weights", "checkpoint", resume("char_lm", copy_of_char_run),
         "as int32, not floating point", setup=tamper(edit_tensors=tensor("head.weight", as_int32))),
    Case("ckpt-missing-tensor", "checkpoint", resume("char_lm", copy_of_char_run),
         "Parameters do not fit the model: missing ['head.bias']", setup=tamper(edit_tensors=tensor("head.bias", None))),
    Case("ckpt-not-safetensors", "checkpoint", resume("char_lm", copy_of_char_run),
         "is not a readable safetensors checkpoint", setup=tamper(replace=file_bytes(b"PK\x03\x04 a zip file"))),
    Case("ckpt-empty-file", "checkpoint", resume("char_lm", copy_of_char_run),
         "is not a readable safetensors checkpoint", setup=tamper(replace=file_bytes(b""))),
    Case("ckpt-truncated", "checkpoint", resume("char_lm", copy_of_char_run),
         "is not a readable safetensors checkpoint", setup=tamper(replace=truncated)),
    Case("ckpt-of-another-task", "checkpoint", resume("char_lm", copy_of_char_run),
         "holds another model than this run's configuration describes", setup=tamper(replace=mnist_checkpoint)),
    Case("ckpt-data-fingerprint-changed", "checkpoint", resume("char_lm", copy_of_char_run),
         "changed since it was trained", setup=tamper(meta("fingerprint", json.dumps({"corpus_sha256": "0" * 64})))),
    Case("run-config-not-json", "checkpoint", resume("char_lm", copy_of_char_run), "cannot be read",
         setup=run_config("{\"task\": ")),
    Case("run-config-not-object", "checkpoint", resume("char_lm", copy_of_char_run),
         "is not a seqcore run configuration", setup=run_config("[]")),
    Case("run-config-unknown-field", "checkpoint", resume("char_lm", copy_of_char_run),
         "fields this task does not know: turbo", setup=run_config(lambda s: s["config"].update(turbo=1))),
    Case("run-config-span-fraction", "checkpoint", resume("char_lm", copy_of_char_run),
         "--span must be a whole number, got 1.5", setup=run_config(lambda s: s["config"].update(span=1.5))),
    Case("run-config-checkpoint-every-fraction", "checkpoint", resume("char_lm", copy_of_char_run),
         "--checkpoint-every must be a whole number, got 0.5",
         setup=run_config(lambda s: s["config"].update(checkpoint_every=0.5))),
    Case("run-config-bad-value", "checkpoint", resume("char_lm", copy_of_char_run),
         "--hidden-size must be a positive number, got -4",
         setup=run_config(lambda s: s["config"].update(hidden_size=-4))),
]

CORPUS = [
    Case("corpus-missing", "corpus", char_lm_with(lambda c: ["--corpus", str(c.tmp / "missing.txt")]),
         "does not exist"),
    Case("corpus-empty", "corpus", char_lm_with(lambda c: ["--corpus", str(c.tmp / "empty.txt")]), "is empty",
         setup=write("empty.txt", b"")),
    Case("corpus-directory", "corpus", char_lm_with(lambda c: ["--corpus", str(c.tmp)]),
         "is a directory, not a text file"),
    Case("corpus-fifo", "corpus", char_lm_with(lambda c: ["--corpus", str(c.tmp / "corpus.fifo")]),
         "is not a regular file", setup=fifo),
    Case("corpus-dev-zero", "corpus", char_lm("--corpus", "/dev/zero"), "is not a regular file"),
    Case("corpus-not-utf8", "corpus", char_lm_with(lambda c: ["--corpus", str(c.tmp / "latin1.txt")]),
         "is not UTF-8 text (bad byte at offset 7)", setup=write("latin1.txt", "The caf\xe9 was closed\n".encode("latin-1"))),
    Case("corpus-no-letters", "corpus", char_lm_with(lambda c: ["--corpus", str(c.tmp / "digits.txt")]),
         "contains no letters A-Z", setup=write("digits.txt", "3.14159 2.71828 !?\n" * 50)),
    Case("corpus-too-short-for-a-batch", "corpus", char_lm_with(lambda c: ["--corpus", str(c.tmp / "short.txt")]),
         "lower --batch-size or --num-steps", setup=write("short.txt", "the time machine\n")),
    Case("corpus-too-short-for-validation", "corpus", char_lm_with(lambda c: ["--corpus", str(c.tmp / "ab.txt")]),
         "too short to hold out a validation fraction", setup=write("ab.txt", "ab\n")),
    Case("corpus-url-without-hash", "corpus", char_lm("--corpus", "http://127.0.0.1:9/book.txt"),
         "is a URL: give its checksum too (--corpus-hash"),
    Case("corpus-url-malformed-hash", "corpus",
         char_lm("--corpus", "http://127.0.0.1:9/book.txt", "--corpus-hash", "sha256:xyz"),
         "must look like 'ALGORITHM:HEX'"),
    Case("corpus-unreadable-file", "corpus", char_lm_with(lambda c: ["--corpus", str(c.tmp / "secret.txt")]),
         "could not be read (permission denied)", setup=write("secret.txt", "the time machine\n", 0o000),
         unprivileged=True),
    Case("corpus-in-folder-without-permission", "corpus",
         char_lm_with(lambda c: ["--corpus", str(c.tmp / "locked" / "book.txt")]),
         "could not be read (permission denied)",
         setup=folder("locked", 0o000, files={"book.txt": "the time machine\n"}), unprivileged=True),
]

# (flag, value, fragment): refused when the command line is read, before any file is touched.
CHAR_FLAGS = [
    ("--hidden-size", "0", "--hidden-size must be a positive number, got 0"),
    ("--hidden-size", "-1", "--hidden-size must be a positive number, got -1"),
    ("--hidden-size", "abc", "argument --hidden-size: invalid int value: 'abc'"),
    ("--hidden-size", "nan", "argument --hidden-size: invalid int value: 'nan'"),
    ("--hidden-size", "1.5", "argument --hidden-size: invalid int value: '1.5'"),
    ("--num-layers", "0", "--num-layers must be a positive number, got 0"),
    ("--epochs", "0", "--epochs must be a positive number, got 0"),
    ("--epochs", "-3", "--epochs must be a positive number, got -3"),
    ("--epochs", "1e3", "argument --epochs: invalid int value: '1e3'"),
    ("--batch-size", "0", "--batch-size must be a positive number, got 0"),
    ("--num-steps", "-5", "--num-steps must be a positive number, got -5"),
    ("--lr", "0", "--lr must be a positive number, got 0"),
    ("--lr", "-1", "--lr must be a positive number, got -1"),
    ("--lr", "nan", "--lr must be a positive number, got nan"),
    ("--lr", "inf", "--lr must be a positive number, got inf"),
    ("--lr", "fast", "argument --lr: invalid float value: 'fast'"),
    ("--lr", "1e39", "learning rate must fit in float32"),
    ("--clip", "-1", "--clip must be zero or more, got -1"),
    ("--clip", "nan", "--clip must be zero or more, got nan"),
    ("--clip", "inf", "--clip must be zero or more, got inf"),
    ("--lr-decay", "0", "--lr-decay must be a number in (0, 1], got 0"),
    ("--lr-decay", "2", "--lr-decay must be a number in (0, 1], got 2"),
    ("--lr-decay", "nan", "--lr-decay must be a number in (0, 1], got nan"),
    ("--lr-decay-every", "0", "--lr-decay-every must be a positive number, got 0"),
    ("--patience", "-1", "--patience must be zero or more, got -1"),
    ("--divergence", "-1", "--divergence must be zero or more, got -1"),
    ("--divergence", "inf", "--divergence must be zero or more, got inf"),
    ("--eval-every", "0", "--eval-every must be a positive number, got 0"),
    ("--checkpoint-every", "0", "--checkpoint-every must be a positive number, got 0"),
    ("--log-every", "-1", "--log-every must be zero or more, got -1"),
    ("--seed", "-1", "--seed must be zero or more, got -1"),
    ("--max-tokens", "-1", "--max-tokens must be zero or more, got -1"),
    ("--val-fraction", "1", "--val-fraction must be a number in (0, 1), got 1.0"),
    ("--val-fraction", "-0.1", "--val-fraction must be a number in (0, 1), got -0.1"),
    ("--val-fraction", "nan", "--val-fraction must be a number in (0, 1), got nan"),
    ("--val-fraction", "0", "--val-fraction 0 leaves no text to validate on"),
    ("--num-preds", "0", "--num-preds must be a positive number, got 0"),
    ("--num-preds", "-5", "--num-preds must be a positive number, got -5"),
    ("--temperature", "nan", "--temperature must be zero or more, got nan"),
    ("--temperature", "inf", "--temperature must be zero or more, got inf"),
    ("--temperature", "-1", "--temperature must be zero or more, got -1"),
    ("--prefix", "", "--prefix must be non-empty text"),
    ("--prefix", "   ", "--prefix must be non-empty text"),
    ("--backend", "jax", "argument --backend: invalid choice: 'jax'"),
    ("--cell", "transformer", "argument --cell: invalid choice: 'transformer'"),
    ("--impl", "fancy", "argument --impl: invalid choice: 'fancy'"),
    ("--schedule", "linear", "argument --schedule: invalid choice: 'linear'"),
    ("--optimizer", "rmsprop", "argument --optimizer: invalid choice: 'rmsprop'"),
    ("--sampler", "shuffled", "argument --sampler: invalid choice: 'shuffled'"),
    ("--token", "byte", "argument --token: invalid choice: 'byte'"),
    ("--init", "zeros", "argument --init: invalid choice: 'zeros'"),
    ("--device", "tpu", "argument --device: invalid choice: 'tpu'"),
    ("--preset", "fastest", "argument --preset: invalid choice: 'fastest'"),
    ("--sampler", "d2l", "argument --sampler: invalid choice: 'd2l'"),
    ("--preprocess", "words", "argument --preprocess: invalid choice: 'words'"),
    ("--vocab-order", "random", "argument --vocab-order: invalid choice: 'random'"),
    ("--train-windows", "0", "--train-windows must be a positive number, got 0"),
    ("--val-windows", "5", "--train-windows and --val-windows come together"),
    ("--bias", "input", "--bias input needs --impl scratch"),
    ("--activation", "sigmoid", "argument --activation: invalid choice: 'sigmoid'"),
    ("--dropout", "1", "--dropout must be a number in [0, 1), got 1.0"),
    ("--dropout", "-0.1", "--dropout must be a number in [0, 1), got -0.1"),
    ("--dropout", "nan", "--dropout must be a number in [0, 1), got nan"),
    ("--dropout", "inf", "--dropout must be a number in [0, 1), got inf"),
    ("--gru-reset", "middle", "argument --gru-reset: invalid choice: 'middle'"),
]

MNIST_FLAGS = [
    ("--hidden-size", "0", "--hidden-size must be a positive number, got 0"),
    ("--hidden-size", "x", "argument --hidden-size: invalid int value: 'x'"),
    ("--num-layers", "-2", "--num-layers must be a positive number, got -2"),
    ("--batch-size", "0", "--batch-size must be a positive number, got 0"),
    ("--epochs", "-1", "--epochs must be a positive number, got -1"),
    ("--lr", "nan", "--lr must be a positive number, got nan"),
    ("--lr", "inf", "--lr must be a positive number, got inf"),
    ("--lr", "1e39", "learning rate must fit in float32"),
    ("--clip", "-0.5", "--clip must be zero or more, got -0.5"),
    ("--lr-decay", "0", "--lr-decay must be a number in (0, 1], got 0"),
    ("--lr-decay", "2", "--lr-decay must be a number in (0, 1], got 2"),
    ("--limit-train", "-1", "--limit-train must be zero or more, got -1"),
    ("--limit-test", "-1", "--limit-test must be zero or more, got -1"),
    ("--eval-every", "0", "--eval-every must be a positive number, got 0"),
    ("--preset", "fastest", "argument --preset: invalid choice: 'fastest'"),
    ("--cell", "transformer", "argument --cell: invalid choice: 'transformer'"),
    ("--schedule", "linear", "argument --schedule: invalid choice: 'linear'"),
    ("--backend", "jax", "argument --backend: invalid choice: 'jax'"),
    ("--optimizer", "lbfgs", "argument --optimizer: invalid choice: 'lbfgs'"),
    ("--dropout", "1", "--dropout must be a number in [0, 1), got 1.0"),
    ("--dropout", "-0.1", "--dropout must be a number in [0, 1), got -0.1"),
]


def _flag_id(task: str, flag: str, value: str) -> str:
    return f"{task}{flag}={value if value.strip() else repr(value)}"


def _mnist_flag_argv(flag: str, value: str) -> Callable[[Ctx], list[str]]:
    # Flags are refused before the data is looked at: a missing --data-dir shows it.
    return lambda c: ["-m", "tasks.mnist_rows", *MNIST_TINY, "--data-dir", str(c.tmp / "no-data"),
                      "--out", str(c.out), flag, value]


FLAGS = [Case(_flag_id("char_lm", flag, value), "flags", char_lm(flag, value), fragment)
         for flag, value, fragment in CHAR_FLAGS]
FLAGS += [Case(_flag_id("mnist_rows", flag, value), "flags", _mnist_flag_argv(flag, value), fragment)
          for flag, value, fragment in MNIST_FLAGS]
FLAGS += [
    # These need the data (the vocabulary, the corpus length) or the model's size.
    Case("char_lm--prefix-outside-vocabulary", "flags", char_lm("--prefix", "Zörg"),
         "The prefix 'Zörg' has tokens outside the vocabulary: 'Z', 'ö'"),
    Case("char_lm--batch-size-above-the-text", "flags", char_lm("--batch-size", "1000"),
         "lower --batch-size or --num-steps"),
    Case("char_lm--max-tokens-3", "flags", char_lm("--max-tokens", "3"), "one batch needs 25"),
    Case("char_lm--hidden-size-2000000", "flags", char_lm("--hidden-size", "2000000"),
         "of memory for its weights and gradients", process=AFTER_LOAD),
    Case("char_lm--hidden-size-1e10", "flags", char_lm("--hidden-size", "10000000000"), "--hidden-size",
         process=AFTER_LOAD),
    Case("mnist_rows--hidden-size-2000000", "flags", mnist_rows("--hidden-size", "2000000"),
         "choose a smaller --hidden-size", process=AFTER_LOAD),
]


def task_flags(task: str, *extra: str) -> Callable[[Ctx], list[str]]:
    """hello / sine with flags refused when the command line is read."""
    return lambda c: ["-m", f"tasks.{task}", "--backend", "torch", "--device", "cpu", "--no-progress",
                      "--out", str(c.out), *extra]


GRU_RESET = "--gru-reset before needs --cell gru --impl scratch"
FLAGS += [
    # --bidirectional where a model reads left to right; --gru-reset before off the scratch GRU.
    Case("char_lm--bidirectional", "flags", char_lm("--bidirectional"),
         "--bidirectional does not fit a language model"),
    Case("hello--bidirectional", "flags", task_flags("hello", "--bidirectional"), "--bidirectional does not fit hello"),
    Case("sine--bidirectional-next-mode", "flags", task_flags("sine", "--mode", "next", "--bidirectional"),
         "--bidirectional needs --mode sin2cos"),
    Case("char_lm--gru-reset-before-concise", "flags", char_lm("--cell", "gru", "--gru-reset", "before"),
         f"{GRU_RESET} (the frameworks' fused layers apply the reset gate after the hidden matmul), got --cell gru "
         f"--impl concise"),
    Case("char_lm--gru-reset-before-lstm", "flags", char_lm("--cell", "lstm", "--impl", "scratch", "--gru-reset",
                                                           "before"), "got --cell lstm --impl scratch"),
    Case("mnist_rows--gru-reset-before-preset-lstm", "flags", _mnist_flag_argv("--gru-reset", "before"),
         GRU_RESET),
    Case("hello--gru-reset-before-rnn", "flags", task_flags("hello", "--gru-reset", "before"), GRU_RESET),
    Case("sine--gru-reset-before-lstm", "flags", task_flags("sine", "--impl", "scratch", "--gru-reset", "before"),
         GRU_RESET),
    Case("sine--cell-all-gru-reset-before-concise", "flags", task_flags("sine", "--cell", "all", "--gru-reset",
                                                                         "before"),
         "--gru-reset before needs --impl scratch"),
    Case("hello--dropout=1", "flags", task_flags("hello", "--dropout", "1"), "--dropout must be a number in [0, 1)"),
    # --compile is torch.compile of the scratch time loop: PyTorch and scratch models only.
    Case("char_lm--compile-mxnet", "flags", char_lm("--impl", "scratch", "--compile", "--backend", "mxnet"),
         "--compile is PyTorch's torch.compile; the mxnet backend has no counterpart"),
    Case("char_lm--compile-concise", "flags", char_lm("--compile"),
         "--compile compiles the scratch recurrence, and --impl concise is the framework's fused layer already"),
    Case("sine--compile-concise", "flags", task_flags("sine", "--compile", "--impl", "concise"),
         "--compile compiles the scratch recurrence"),
    Case("sine--dropout=nan", "flags", task_flags("sine", "--dropout", "nan"), "--dropout must be a number in [0, 1)"),
    # --activation relu is the RNN cell's; a broken MPLBACKEND would stop the run at its first figure
    Case("char_lm--activation-relu-lstm", "flags", char_lm("--cell", "lstm", "--activation", "relu"),
         "--activation relu needs --cell rnn (the GRU and the LSTM have fixed nonlinearities), got --cell lstm"),
    Case("mnist_rows--activation-relu-preset-lstm", "flags", _mnist_flag_argv("--activation", "relu"),
         "--activation relu needs --cell rnn"),
    Case("char_lm-MPLBACKEND-broken", "flags", char_lm(), "MPLBACKEND='nonsense' is not a matplotlib backend",
         setup=lambda c: c.env.update({"MPLBACKEND": "nonsense"}), process=FRESH_IMPORT),
]

MNIST_DATA = [
    Case("mnist-data-dir-missing", "mnist-data", mnist_rows(data=lambda c: c.tmp / "nowhere"),
         "The MNIST data directory", setup=None),
    Case("mnist-data-dir-is-a-file", "mnist-data", mnist_rows(data=lambda c: c.tmp / "mnist.zip"),
         "does not exist", setup=write("mnist.zip", b"PK")),
    Case("mnist-empty-data-dir-offline", "mnist-data", mnist_rows(data=lambda c: c.tmp / "empty"),
         "could not be downloaded", setup=folder("empty")),
    Case("mnist-truncated-gzip", "mnist-data", mnist_rows(data=mnist_data),
         "t10k-labels-idx1-ubyte.gz is not a complete gzip file",
         setup=mnist_copy(replace_file("t10k-labels-idx1-ubyte.gz", lambda b: b[:1000]))),
    Case("mnist-wrong-magic", "mnist-data", mnist_rows(data=mnist_data), "starts with the magic number",
         setup=mnist_copy(replace_file("t10k-images-idx3-ubyte.gz", lambda b: b"\0\0\x08\x01" + b"\0" * 64))),
    Case("mnist-idx-truncated-raw", "mnist-data", mnist_rows(data=mnist_data), "it is truncated or damaged",
         setup=mnist_copy(replace_file("t10k-labels-idx1-ubyte.gz",
                                       lambda b: b"\0\0\x08\x01" + (10000).to_bytes(4, "big") + b"\1" * 100))),
    Case("mnist-wrong-file", "mnist-data", mnist_rows(data=mnist_data), "has MD5",
         setup=mnist_copy(lambda d: (d / "t10k-labels-idx1-ubyte.gz").unlink() or
                          (d / "t10k-labels-idx1-ubyte.gz").symlink_to(SHARED_MNIST / "train-labels-idx1-ubyte.gz"))),
    Case("mnist-limit-test-above-test-set", "mnist-data", mnist_rows("--limit-test", "20000"),
         "--limit-test 20,000 is more than the 10,000 images available"),
    Case("mnist-limit-train-above-train-set", "mnist-data", mnist_rows("--limit-train", "70000"),
         "--limit-train 70,000 is more than the 60,000 images available"),
    Case("mnist-data-dir-without-permission", "mnist-data", mnist_rows(data=lambda c: c.tmp / "locked" / "mnist"),
         "permission denied", setup=folder("locked", 0o000), unprivileged=True),
]

def idx_set(train=None, test=None, raw: Optional[dict[str, Callable[[], bytes]]] = None) -> Callable[[Ctx], None]:
    """tmp/idx: a small 12 x 10, 3-class IDX set (tests.idx_files), with the given splits or raw files."""
    def setup(c: Ctx) -> None:
        write_set(c.tmp / "idx", train or banded(20), test or banded(6, seed=1),
                  raw={name: make() for name, make in (raw or {}).items()})
    return setup


def idx_rows(*extra: str) -> Callable[[Ctx], list[str]]:
    return mnist_rows("--dataset", "idx", *extra, data=lambda c: c.tmp / "idx")


IDX_DATA = [
    Case("idx-wrong-magic", "mnist-data", idx_rows(), "starts with the magic number 2049, not 2051",
         setup=idx_set(raw={"train-images-idx3-ubyte": lambda: idx_bytes(banded(20)[0], 2049)})),
    Case("idx-truncated-file", "mnist-data", idx_rows(), "which needs 2,400 bytes of data, but holds 2,000",
         setup=idx_set(raw={"train-images-idx3-ubyte": lambda: idx_bytes(banded(20)[0], 2051)[:2016]})),
    Case("idx-count-mismatch", "mnist-data", idx_rows(), "hold 20 images but 19 labels; they do not belong together",
         setup=idx_set(raw={"train-labels-idx1-ubyte": lambda: idx_bytes(banded(20)[1][:19], 2049)})),
    Case("idx-size-mismatch", "mnist-data", idx_rows(),
         "The IDX training images are 12 x 10 pixels but the test images 10 x 12",
         setup=idx_set(test=banded(6, rows=10, columns=12, seed=1))),
    Case("idx-single-class", "mnist-data", idx_rows(), "The IDX training labels hold a single class (0)",
         setup=idx_set(train=(banded(20)[0], np.zeros(20, np.uint8)))),
    Case("idx-test-class-unseen", "mnist-data", idx_rows(), "but the training labels go up to 1 only",
         setup=idx_set(train=banded(20, num_classes=2), test=banded(12, num_classes=3, seed=1))),
    Case("idx-no-labels-file", "mnist-data", idx_rows(), "t10k-labels-idx1-ubyte (or t10k-labels-idx1-ubyte.gz) "
         "is not in", setup=lambda c: (idx_set()(c), (c.tmp / "idx" / "t10k-labels-idx1-ubyte").unlink())),
    Case("idx-without-data-dir", "mnist-data",
         lambda c: ["-m", "tasks.mnist_rows", *MNIST_TINY, "--dataset", "idx", "--out", str(c.out)],
         "--dataset idx needs --data-dir"),
    Case("mnist_rows--dataset-emnist", "flags", idx_rows("--dataset", "emnist"), "invalid choice: 'emnist'"),
    Case("SEQCORE_BACKEND-unknown", "flags", lambda c: ["-m", "tasks.char_lm", "--epochs", "1", "--out", str(c.out)],
         "SEQCORE_BACKEND must be one of mxnet, torch, got 'tensorflow'",
         setup=lambda c: c.env.update({"SEQCORE_BACKEND": "tensorflow"})),
]

OTHER_TASKS = [
    Case("compare-from-mnist-run", "compare/evaluate",
         lambda c: ["-m", "tasks.compare", "--out", str(c.tmp / "cmp"), "--from", str(c.mnist_run)], "holds a mnist_rows run"),
    Case("compare-from-torn-metrics", "compare/evaluate",
         lambda c: ["-m", "tasks.compare", "--out", str(c.tmp / "cmp"), "--from", str(copy_of_char_run(c))],
         "did not finish (no summary line)",
         setup=uses_material(lambda c: (lambda p: p.write_bytes(p.read_bytes()[:-40]))(copy_char_run(c) /
                                                                                      "metrics.jsonl"))),
    Case("compare-from-damaged-metrics", "compare/evaluate",
         lambda c: ["-m", "tasks.compare", "--out", str(c.tmp / "cmp"), "--from", str(copy_of_char_run(c))],
         "Line 2 of", setup=uses_material(lambda c: _tear_line(copy_char_run(c) / "metrics.jsonl", 1))),
    Case("compare-from-missing-folder", "compare/evaluate",
         lambda c: ["-m", "tasks.compare", "--out", str(c.tmp / "cmp"), "--from", str(c.tmp / "nowhere")],
         "holds no metrics.jsonl"),
    Case("evaluate-non-checkpoint-file", "compare/evaluate",
         lambda c: ["-m", "tasks.evaluate", "--backend", "torch", "--checkpoint", str(c.char_run / "config.json")],
         "is not a readable safetensors checkpoint"),
    Case("evaluate-mnist-checkpoint", "compare/evaluate",
         lambda c: ["-m", "tasks.evaluate", "--backend", "torch", "--checkpoint", str(c.mnist_run)],
         "is not a language-model checkpoint"),
    Case("evaluate-num-steps-beyond-the-text", "compare/evaluate",
         lambda c: ["-m", "tasks.evaluate", "--backend", "torch", "--checkpoint", str(c.char_run), "--num-steps",
                    "100000"], "--num-steps 100,000 is more than the"),
    Case("evaluate-batch-size-beyond-the-text", "compare/evaluate",
         lambda c: ["-m", "tasks.evaluate", "--backend", "torch", "--checkpoint", str(c.char_run), "--batch-size",
                    "100000"], "--batch-size 100,000 at 5 steps needs"),
    Case("evaluate-missing-checkpoint", "compare/evaluate",
         lambda c: ["-m", "tasks.evaluate", "--backend", "torch", "--checkpoint", str(c.tmp / "none.safetensors")],
         "No checkpoint file at"),
]


def translate(*extra: str) -> Callable[[Ctx], list[str]]:
    return lambda c: ["-m", "tasks.translate", "--backend", "torch", "--device", "cpu", "--no-progress",
                      "--out", str(c.out), *extra]


def attending_checkpoint(c: Ctx) -> None:
    from tests.test_translate_task import numpy_checkpoint

    numpy_checkpoint(c.tmp / "attends.safetensors", "additive")


TRANSLATE = [
    Case("translate-attention-unknown", "flags", translate("--attention", "bahdanau"), "invalid choice: 'bahdanau'"),
    Case("translate-held-out-every-pair", "flags", translate("--held-out", "641"), "leaves none to train on"),
    Case("translate-bidirectional", "flags", translate("--bidirectional"), "does not fit the encoder-decoder"),
    Case("translate-corpus-without-tab", "corpus",
         lambda c: translate("--corpus", str(c.tmp / "pairs.txt"), "--num-pairs", "3", "--held-out", "1")(c),
         "has no tab", setup=write("pairs.txt", "go .\tva !\nhi .\nrun !\tcours !\n")),
    Case("translate-corpus-not-utf8", "corpus",
         lambda c: translate("--corpus", str(c.tmp / "pairs.txt"), "--num-pairs", "2", "--held-out", "1")(c),
         "is not UTF-8 text", setup=write("pairs.txt", b"go .\tva !\nhi .\t\xff\n")),
    Case("translate-empty-sentence", "compare/evaluate",
         lambda c: ["-m", "tasks.translate", "--checkpoint", str(c.tmp / "attends.safetensors"), "--backend",
                    "torch", "--sentence", ""], "each --sentence must be non-empty text", setup=attending_checkpoint),
    Case("convert-attention-has-no-plain-form", "compare/evaluate",
         lambda c: ["-m", "tasks.convert", "--checkpoint", str(c.tmp / "attends.safetensors"), "--to", "torch",
                    "--out", str(c.tmp / "plain.pt")], "has no plain-module form", setup=attending_checkpoint),
]


def _tear_line(path: Path, index: int) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[index] = lines[index][:30] + "\n"
    path.write_text("".join(lines))


CASES: list[Case] = [*OUTPUT, *POLICY, *RESUME, *CHECKPOINT, *CORPUS, *FLAGS, *MNIST_DATA, *IDX_DATA, *OTHER_TASKS,
                     *TRANSLATE]
assert len({case.id for case in CASES}) == len(CASES), "case ids must be unique"


# -- running a case -------------------------------------------------------------------------------

PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2


@functools.lru_cache(maxsize=None)
def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _drop_dac_capabilities() -> None:
    """In the child before exec: root keeps uid 0 but loses the capabilities that ignore file modes."""
    libc = _libc()
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@functools.lru_cache(maxsize=None)
def unprivileged_problem(probe_dir: str) -> Optional[str]:
    """None when a child of this root process can be made to obey file modes, else why not."""
    locked = Path(probe_dir) / "caps-probe"
    locked.mkdir(mode=0o000, exist_ok=True)
    try:
        done = subprocess.run([sys.executable, "-c", f"import os, sys; sys.exit(os.access({str(locked)!r}, os.W_OK))"],
                              preexec_fn=_drop_dac_capabilities, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as error:
        return f"cannot drop CAP_DAC_OVERRIDE for the command ({error})"
    finally:
        locked.chmod(0o700)
    return None if done.returncode == 0 else "dropping CAP_DAC_OVERRIDE did not make root obey file modes"


# Every command of a case: MNIST downloads go to a closed port (nothing leaves the machine).
COMMAND_ENV = {"SEQCORE_MNIST_MIRRORS": "http://127.0.0.1:9/", "NO_PROXY": "127.0.0.1"}


def run_python(argv: list[str], env_extra: dict[str, str] | None = None, unprivileged: bool = False,
               ) -> subprocess.CompletedProcess:
    env = {"OMP_NUM_THREADS": "1", **os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
           **COMMAND_ENV, **(env_extra or {})}
    preexec = _drop_dac_capabilities if unprivileged and os.geteuid() == 0 else None
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT, preexec_fn=preexec)


def snapshot(roots: list[Path]) -> tuple[dict[str, tuple], dict[str, set[str]]]:
    """(every file and link under `roots` -> (kind, SHA-256 or target, size, mtime_ns), every folder -> its
    entries). Nothing is opened that could block (a FIFO) or follow a link out."""
    files: dict[str, tuple] = {}
    folders: dict[str, set[str]] = {}
    for root in roots:
        for here, dirs, names in os.walk(root):
            folders[here] = set(dirs) | set(names)
            for name in names:
                path = os.path.join(here, name)
                info = os.lstat(path)
                if stat.S_ISREG(info.st_mode):
                    with open(path, "rb") as handle:
                        digest = hashlib.sha256(handle.read()).hexdigest()
                    files[path] = ("file", digest, info.st_size, info.st_mtime_ns)
                elif stat.S_ISLNK(info.st_mode):
                    files[path] = ("link", os.readlink(path), 0, info.st_mtime_ns)
                else:
                    files[path] = ("other", stat.S_IFMT(info.st_mode), 0, info.st_mtime_ns)
    return files, folders


def _out_of(argv: list[str]) -> Optional[Path]:
    return Path(argv[len(argv) - 1 - argv[::-1].index("--out") + 1]) if "--out" in argv else None


def assert_untouched(before, after, allowed_new: set[str]) -> None:
    files_before, folders_before = before
    files_after, folders_after = after
    changed = [path for path, record in files_before.items() if files_after.get(path) != record]
    assert not changed, f"files changed or removed by a refused run: {changed}"
    created = [os.path.join(folder_path, name) for folder_path, names in folders_before.items()
               for name in folders_after.get(folder_path, set()) - names
               if os.path.join(folder_path, name) not in allowed_new]
    assert not created, f"a refused run created entries in folders that existed before: {created}"


def assert_refused(result: subprocess.CompletedProcess, fragment: str) -> None:
    """Exit status 2, no traceback, exactly one `error:` line, holding the fragment."""
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 2, f"exit status {result.returncode}:\n{result.stderr[-3000:]}"
    lines = [line for line in result.stderr.strip().splitlines() if "error:" in line]
    assert len(lines) == 1, result.stderr[-3000:]
    assert fragment.lower() in lines[0].lower(), lines[0]


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Material:
    return Material(tmp_path_factory.mktemp("catalogue-runs"))


# -- which cases are slow, which run in-process -----------------------------------------------------

class _MaterialProbe:
    """Stands in for the module's runs while the catalogue is collected: records whether an argv
    builder asks for one (nothing is trained, nothing is read)."""

    def __init__(self) -> None:
        self.asked = False

    @property
    def char_run(self) -> Path:
        self.asked = True
        return Path("/material-probe/char_run")

    mnist_run = char_run
    root = Path("/material-probe")


def needs_material(case: Case) -> bool:
    """Whether the case reads the trained char_lm / mnist_rows runs (a setup marked uses_material,
    or an argv that names them); building them trains PyTorch, so such a case is slow."""
    if getattr(case.setup, "uses_material", False):
        return True
    probe = _MaterialProbe()
    try:
        case.argv(Ctx(Path("/material-probe/tmp"), probe))  # type: ignore[arg-type]
    except pytest.skip.Exception:  # no MNIST files here: the case skips when it runs
        pass
    return probe.asked


def loads_framework(case: Case) -> bool:
    """The slow cases: their command loads PyTorch, or they read the runs it trained."""
    return case.process in (AFTER_LOAD, AT_RESUME) or needs_material(case)


def in_own_process(case: Case) -> bool:
    """A case runs its command in a fresh interpreter when it says why (Case.process), or when, as
    root, the command must run without the capabilities that ignore file modes (dropped before exec,
    which no in-process call can undo); every other case calls main(argv)."""
    return case.process is not None or (case.unprivileged and os.geteuid() == 0)


def _params() -> list:
    params = []
    for case in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
        if loads_framework(case):
            marks.append(pytest.mark.slow)
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


@pytest.mark.parametrize("case", _params())
def test_refused_in_one_sentence(case: Case, material: Material, tmp_path: Path) -> None:
    ctx = Ctx(tmp_path, material)
    material.allowed = needs_material(case)
    if loads_framework(case):
        require_backend("torch")  # the material's runs and these commands load PyTorch
    try:
        if case.unprivileged and os.geteuid() == 0:
            problem = unprivileged_problem(str(material.root))
            if problem:
                pytest.skip(f"running as root and {problem}")
        if case.setup:
            case.setup(ctx)
        argv = case.argv(ctx)
        out = _out_of(argv)
        allowed = {str(tmp_path / "cache")}
        if out is not None and not out.exists():
            allowed |= {str(out), *(str(parent) for parent in out.parents)}
        roots = [tmp_path, *material.built]
        before = snapshot(roots)
        lock = None
        if ctx.lock_path is not None:
            lock = os.open(ctx.lock_path, os.O_RDWR)
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # flock: a second open() conflicts, in-process too
        env = {**COMMAND_ENV, "SEQCORE_CACHE": str(tmp_path / "cache"), **ctx.env}
        try:
            if in_own_process(case):
                result = run_python(argv, env_extra=env, unprivileged=case.unprivileged)
            else:
                # The folder a subprocess would run in holds the checkout; tmp_path is watched instead.
                result = run_command(argv, env=env, cwd=tmp_path)
        finally:
            if lock is not None:
                os.close(lock)
        after = snapshot(roots)
        assert_refused(result, case.fragment)
        assert_untouched(before, after, allowed)
    finally:
        material.allowed = False
        for cleanup in reversed(ctx.cleanups):
            cleanup()


def test_catalogue_is_large_and_covers_every_group() -> None:
    assert len(CASES) >= 60
    assert {case.group for case in CASES} == {"output", "policy", "resume", "checkpoint", "corpus", "flags",
                                              "mnist-data", "compare/evaluate"}


def test_most_cases_run_in_process_and_fast() -> None:
    """The tiers' point: a refusal is checked in milliseconds unless it truly needs training or a process."""
    fast = [case for case in CASES if not loads_framework(case)]
    assert len(fast) >= len(CASES) // 2, f"only {len(fast)} of {len(CASES)} cases are in the fast tier"
    assert sum(case.process is not None for case in CASES) <= 10


@pytest.mark.parametrize("task", ["char_lm", "mnist_rows"])
def test_help_is_printed(task: str, tmp_path: Path) -> None:
    """Not bad input, but the flags the catalogue names must be the ones --help shows."""
    result = run_command(["-m", f"tasks.{task}", "--help"], cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "--hidden-size" in result.stdout
    if task == "char_lm":
        assert "--prefix TEXT" in result.stdout


def markdown_table() -> str:
    rows = ["| group | case | refused with |", "| --- | --- | --- |"]
    rows += [f"| {case.group} | `{case.id}` | {case.fragment}{' (xfail: known bug)' if case.xfail else ''} |"
             for case in CASES]
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
