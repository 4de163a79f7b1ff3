"""The cross-framework comparison report (tasks.compare) on tiny sizes: every file, both backends
for every task, a failed run reported, a killed grid continued, mismatched --from folders
flagged, bad input refused, and the HTML rendered by headless Chromium."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqcore.backend import BACKENDS
from tests.conftest import ROOT, python, require_backend
from tests.inprocess import refuses

SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
FILES = ("report.html", "report.md", "results.json", "results.csv", "report.json")


def compare(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return python("-m", "tasks.compare", "--tiny", *args, **kwargs)


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Path:
    """Every task, both backends, RNN scratch and concise, tiny sizes, with the benchmark."""
    for name in BACKENDS:
        require_backend(name)
    if not SHARED_MNIST.is_dir():
        pytest.skip(f"no MNIST files at {SHARED_MNIST}")
    out = tmp_path_factory.mktemp("report") / "grid"
    compare("--cells", "rnn", "--impls", "scratch,concise", "--mnist-dir", str(SHARED_MNIST), "--out", str(out),
            check=True)
    return out


@pytest.mark.slow
def test_tiny_grid_writes_every_file_with_both_backends_per_task(grid: Path) -> None:
    for name in FILES:
        assert (grid / name).stat().st_size > 0, name
    results = json.loads((grid / "results.json").read_text())
    for task in ("char_lm", "mnist_rows", "sine", "hello"):
        runs = [r for r in results if r["task"] == task]
        assert {r["backend"] for r in runs} == set(BACKENDS), task
        assert all(r["status"] == "done" and r["value"] is not None and r["metric"] for r in runs), task
        assert {(r["cell"], r["impl"]) for r in runs} == {("rnn", "scratch"), ("rnn", "concise")}
    translate = [r for r in results if r["task"] == "translate"]  # the plain model and additive attention
    assert {(r["backend"], r["impl"]) for r in translate if r["status"] == "done"} == {
        (b, i) for b in BACKENDS for i in ("scratch", "concise", "scratch+additive", "concise+additive")}
    html = (grid / "report.html").read_text()
    assert "data:image/png;base64," in html and "http://" not in html and "https://" not in html
    assert html.index("Summary") < html.index("Equivalence") < html.index("Speed")
    markdown = (grid / "report.md").read_text()
    for section in ("Lockstep", "Scratch against concise", "Logits on identical weights",
                    "evaluated on the other", "Speed (tasks.benchmark)", "python -m tasks.char_lm"):
        assert section in markdown, section
    assert "never (within" in markdown  # the tiny runs stay in lockstep
    header = (grid / "results.csv").read_text().splitlines()[0]
    assert header.startswith("task,backend,cell,impl,seed,device,metric,value")


@pytest.mark.slow
def test_a_failing_run_is_reported_and_the_others_render(tmp_path: Path) -> None:
    for name in BACKENDS:
        require_backend(name)
    out = tmp_path / "failing"
    blocked = out / "runs" / "hello" / f"{BACKENDS[1]}-rnn-concise"
    blocked.parent.mkdir(parents=True)
    blocked.write_text("a file where the run folder goes")
    (out / "report.json").write_text(json.dumps({"identity": {}}))  # a report folder, so --resume applies
    result = compare("--tasks", "hello", "--cells", "rnn", "--impls", "concise", "--no-benchmark",
                     "--out", str(out), "--resume")
    assert result.returncode == 0, result.stderr
    records = {r["backend"]: r for r in json.loads((out / "results.json").read_text())}
    assert records[BACKENDS[0]]["status"] == "done"
    assert records[BACKENDS[1]]["status"] == "failed" and "is a file" in records[BACKENDS[1]]["error"]
    assert "FAILED: exit 2" in (out / "report.md").read_text()


@pytest.mark.slow
def test_a_killed_grid_continues_without_redoing_finished_runs(tmp_path: Path) -> None:
    for name in BACKENDS:
        require_backend(name)
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "tasks.compare", "--tiny", "--tasks", "hello,sine", "--cells", "rnn,gru",
            "--impls", "concise", "--no-benchmark", "--out", str(out)]
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 600  # a hang guard: two tiny runs take seconds
    done: list[Path] = []
    while time.monotonic() < deadline and len(done) < 2:
        time.sleep(0.2)
        done = [p for p in (out / "runs").glob("*/*/metrics.jsonl") if '"kind": "summary"' in p.read_text()]
    os.killpg(process.pid, signal.SIGKILL)  # the grid and its current run, at once
    process.wait()
    assert len(done) >= 2 and not (out / "report.html").exists()
    stamps = {p: p.stat().st_mtime_ns for p in done}
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("finished earlier, kept") >= len(done)
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in stamps.items())
    records = json.loads((out / "results.json").read_text())
    assert len(records) == 8 and all(r["status"] == "done" for r in records)


def test_another_commands_report_and_bad_names_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "r"
    out.mkdir()
    (out / "report.json").write_text(json.dumps({"identity": {"tasks": ["hello"]}}))
    (out / "keep.txt").write_text("kept")
    refuses(["-m", "tasks.compare", "--tiny", "--tasks", "sine", "--out", str(out)], tmp_path,
            "holds the report of another command")
    assert (out / "keep.txt").read_text() == "kept"
    for flag, value, bad in (("--tasks", "char_lm,poem", "poem"), ("--backends", "jax", "jax"),
                             ("--cells", "lstn", "lstn"), ("--impls", "fast", "fast")):
        result = refuses(["-m", "tasks.compare", "--tiny", flag, value, "--out", str(tmp_path / "new")], tmp_path,
                         f"each of {flag} must be one of", f"got {bad!r}.")
        assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "new").exists()


@pytest.mark.slow
def test_from_flags_runs_whose_configurations_differ(grid: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    python("-m", "tasks.char_lm", "--backend", BACKENDS[1], "--cell", "rnn", "--impl", "scratch", "--epochs", "2",
           "--max-tokens", "600", "--batch-size", "4", "--num-steps", "5", "--hidden-size", "6", "--num-preds", "5",
           "--no-progress", "--device", "cpu", "--out", str(other), check=True)
    mine = grid / "runs" / "char_lm" / f"{BACKENDS[0]}-rnn-scratch"
    out = tmp_path / "from"
    python("-m", "tasks.compare", "--out", str(out), "--from", str(mine), str(other), check=True)
    markdown = (out / "report.md").read_text()
    assert f"configurations differ: hidden_size: 8 ({BACKENDS[0]}) vs 6 ({BACKENDS[1]})" in markdown
    assert "Not measured in this report: no pair of runs" in markdown  # never in lockstep across configs
    single = python("-m", "tasks.compare", "--out", str(tmp_path / "one"), "--from", str(mine))
    assert single.returncode == 2 and "holds a char_lm run" in single.stderr
    assert not (tmp_path / "one").exists()


@pytest.mark.slow
def test_the_html_renders_the_summary_in_headless_chromium(grid: Path, tmp_path: Path) -> None:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("no chromium binary (Debian: apt-get install -y chromium)")
    page = (grid / "report.html").resolve().as_uri()
    common = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,900"]
    shot = tmp_path / "first_screen.png"
    subprocess.run([*common, f"--screenshot={shot}", page], capture_output=True, timeout=600, check=True)
    dom = subprocess.run([*common, "--dump-dom", page], capture_output=True, text=True, timeout=600, check=True).stdout
    assert "<table>" in dom and "Summary" in dom and dom.index("Summary") < dom.index("<table>")
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))[..., :3]  # (900, 1280, 3) in [0, 1]
    ink = (pixels.min(axis=-1) < 0.9).mean()
    assert ink > 0.02, f"the first screen is nearly blank ({ink:.1%} non-white)"
    # The summary table's header cells (#eef1f5) fill part of the first screen.
    header = ((abs(pixels - [0xee / 255, 0xf1 / 255, 0xf5 / 255]).max(axis=-1)) < 0.02).mean()
    assert header > 0.005, f"no table header on the first screen ({header:.2%})"


@pytest.mark.slow
def test_seeds_set_the_backend_gap_against_the_seed_spread(tmp_path: Path) -> None:
    for name in BACKENDS:
        require_backend(name)
    out = tmp_path / "seeds"
    compare("--tasks", "hello", "--cells", "rnn", "--impls", "concise", "--seeds", "2", "--no-benchmark",
            "--out", str(out), check=True)
    records = json.loads((out / "results.json").read_text())
    assert sorted((r["backend"], r["seed"]) for r in records) == sorted(
        (b, s) for b in BACKENDS for s in (0, 1))
    assert all(Path(r["folder"]).name.endswith(f"-seed{r['seed']}") for r in records)
    markdown = (out / "report.md").read_text()
    assert "(2 seeds)" in markdown and "backend gap inside the seed spread" in markdown


def _compare_main(*argv: str) -> int:
    from tasks.compare import main

    return main(list(argv))


def test_an_out_under_a_file_is_one_sentence(tmp_path: Path) -> None:
    from seqcore.errors import SeqcoreError

    (tmp_path / "file").write_text("")
    for out in (tmp_path / "file" / "report", tmp_path / "file"):
        with pytest.raises(SeqcoreError, match="Cannot write to --out|is a file, not a folder"):
            _compare_main("--tiny", "--tasks", "hello", "--out", str(out))


def _fake_run(folder: Path, summary: dict, backend: str = "torch") -> Path:
    folder.mkdir(parents=True)
    run = {"kind": "run", "task": "hello", "backend": backend, "model": {"cell": "rnn", "impl": "concise"},
           "train": {"seed": 0}}
    lines = [run, {"kind": "epoch", "epoch": 1, "train_loss": 1.0}, {"kind": "summary", **summary}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (folder / "config.json").write_text(json.dumps({"task": "hello", "config": {}}))
    return folder


@pytest.mark.parametrize("summary, fragment", [
    ({"final_loss": "low", "wall_s": 1.0}, "holds 'low' where a number belongs (final_loss)"),
    ({"final_loss": 0.5, "wall_s": "1 s"}, "holds '1 s' where a number belongs (wall_s)"),
    ({"final_loss": 0.5, "wall_s": 1.0, "samples": "text"}, "where its samples belong"),
])
def test_from_a_run_whose_summary_holds_a_string_where_a_number_belongs(tmp_path: Path, summary: dict,
                                                                        fragment: str) -> None:
    from seqcore.errors import SeqcoreError

    good = _fake_run(tmp_path / "good", {"final_loss": 0.5, "wall_s": 1.0}, backend="mxnet")
    bad = _fake_run(tmp_path / "bad", summary)
    with pytest.raises(SeqcoreError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        _compare_main("--out", str(tmp_path / "report"), "--from", str(good), str(bad))
    assert not (tmp_path / "report").exists()
