"""Spans (Backend.train_span): a backend runs several steps with one read-back of their losses and
gradient norms, and the numbers are exactly those of single steps, on the CPU, on both backends.

1. Through the protocol (tests/scripts/span_worker.py, one process per backend): a step-by-step
   oracle (one call at a time, every figure read back, clipping decided on the host: the path every
   step took before spans), spans of one step and one span of all steps give == losses, norms,
   weights and states; SGD and Adam, a new rate every step, clipping on some steps, dropout,
   carried and fresh states. The span loop is the seam's one `Backend.train_span`.
2. On the command line: char_lm with --span 1 and with a span of the whole epoch (concise and
   scratch SGD with clipping and the carried state; Adam with the cosine schedule; GRU with
   dropout) write == step lines, epoch records and checkpoints.
3. A SIGINT inside a span stops the run at the span's end; the resumed run equals an
   uninterrupted run with spans of one step.
4. A divergence inside a whole-epoch span is reported at the step span 1 reports, and the
   checkpoint kept is the last good one, the same file as with span 1 (the run layer's side on
   the NumPy fake backend: tests/test_run_layer.py).
5. Tuple batches (an encoder-decoder's): each array reaches the device in its dtype, the epoch
   counts rows, tokens and targets by the first arrays, and a data-parallel worker cuts its rows
   of every array.
"""
from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest

from seqcore.backend import Backend
from seqcore.model.spec import Loss, ModelSpec
from seqcore.parallel.data_parallel import _batch_rows
from seqcore.run.checkpoint import load_checkpoint
from seqcore.train.loop import train_epoch
from tests.conftest import ROOT, python
from tests.test_run_faults import (
    LAST,
    Tail,
    assert_same_run,
    finish,
    of_kind,
    records,
    start,
    stderr_of,
    wait_until,
)

WORKER = ROOT / "tests" / "scripts" / "span_worker.py"
WHOLE_EPOCH = "100000"  # a --span longer than any epoch here


@pytest.mark.slow
def test_spans_equal_single_steps_through_the_protocol(backend_name: str, tmp_path: Path) -> None:
    out = tmp_path / "spans.npz"
    python(str(WORKER), backend_name, str(out), check=True)
    results = np.load(out)
    steps = [key for key in results.files if "/steps/" in key]
    assert len(steps) > 100
    for key in steps:
        for way in ("span1", "span"):
            other = key.replace("/steps/", f"/{way}/")
            np.testing.assert_array_equal(results[other], results[key], err_msg=other)
    norms = np.concatenate([results[key] for key in steps if key.endswith("/norms")])
    assert (norms > 0.3).any() and (norms < 0.3).any()  # span_worker.CLIP: some steps clipped, some not


BASE = ["--epochs", "2", "--max-tokens", "1500", "--batch-size", "4", "--num-steps", "6", "--hidden-size", "12",
        "--num-preds", "5", "--log-every", "1", "--no-progress", "--device", "cpu", "--seed", "2"]
CLI_CASES = {
    "concise-sgd-sequential": ["--impl", "concise", "--cell", "lstm", "--sampler", "sequential", "--lr", "2",
                               "--clip", "0.5"],
    "scratch-sgd-sequential": ["--impl", "scratch", "--cell", "gru", "--sampler", "sequential", "--lr", "2",
                               "--clip", "0.5"],
    "concise-adam-cosine": ["--impl", "concise", "--cell", "gru", "--sampler", "random", "--optimizer", "adam",
                            "--lr", "0.02", "--schedule", "cosine", "--clip", "0.5"],
    "scratch-dropout": ["--impl", "scratch", "--cell", "gru", "--num-layers", "2", "--dropout", "0.3",
                        "--sampler", "sequential"],
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CLI_CASES))
def test_a_span_of_one_step_equals_a_span_of_the_whole_epoch(backend_name: str, case: str, tmp_path: Path) -> None:
    args = ["--backend", backend_name, *BASE, *CLI_CASES[case]]
    one, whole = tmp_path / "one", tmp_path / "whole"
    single = start("char_lm", [*args, "--span", "1", "--out", str(one)], tmp_path / "logs")
    finish(start("char_lm", [*args, "--span", WHOLE_EPOCH, "--out", str(whole)], tmp_path / "logs"))
    finish(single)
    assert_same_run(whole, one)
    epochs = of_kind(records(one), "epoch")
    if "--clip" in CLI_CASES[case]:
        assert max(r["max_grad_norm"] for r in epochs) > 0.5  # clipping did scale some steps
    steps = of_kind(records(one), "step")
    if "cosine" in case:
        assert len({r["lr"] for r in steps}) == len(steps)  # a new rate every step
    print(f"\n{case} {backend_name}: {len(steps)} step losses equal with --span 1 and whole-epoch spans")


SPAN = 16
INTERRUPTED = ["--epochs", "3", "--max-tokens", "5500", "--batch-size", "4", "--num-steps", "5", "--hidden-size", "8",
               "--num-preds", "5", "--eval-every", "1", "--checkpoint-every", "1", "--no-progress", "--log-every", "1",
               "--sampler", "sequential", "--device", "cpu"]  # ~270 steps per epoch


@pytest.mark.slow
def test_a_signal_stops_at_a_span_end_and_the_resume_equals_single_steps(backend_name: str, tmp_path: Path) -> None:
    args = ["--backend", backend_name, *INTERRUPTED]
    reference, out = tmp_path / "reference", tmp_path / "run"
    uninterrupted = start("char_lm", [*args, "--span", "1", "--out", str(reference)], tmp_path / "logs")
    interrupted = start("char_lm", [*args, "--span", str(SPAN), "--out", str(out)], tmp_path / "logs")
    tail = Tail(out / "metrics.jsonl")
    wait_until(interrupted, lambda: bool(of_kind(tail.poll(), "epoch")), "the first epoch record")
    per_epoch = max(r["step"] for r in of_kind(tail.rows, "step") if r["epoch"] == 1)
    target = per_epoch + SPAN + 3  # inside epoch 2's second span
    wait_until(interrupted, lambda: any(r.get("global_step", 0) >= target for r in tail.poll()[-5:]),
               f"step {target}")
    interrupted.send_signal(signal.SIGINT)
    code = interrupted.wait(timeout=600)
    assert code == 128 + signal.SIGINT, f"exit {code}:\n{stderr_of(interrupted)[-3000:]}"
    stop = of_kind(records(out), "interrupted")
    assert len(stop) == 1 and stop[0]["epoch"] == 2 and stop[0]["step"] % SPAN == 0, (stop, per_epoch)
    assert 0 < stop[0]["step"] < per_epoch, (stop, per_epoch)
    assert load_checkpoint(out / LAST).position["steps_done"] == stop[0]["step"]
    finish(start("char_lm", ["--out", str(out), "--resume"], tmp_path / "logs"))
    finish(uninterrupted)
    assert_same_run(out, reference)
    print(f"\n{backend_name}: SIGINT in epoch 2 stopped at step {stop[0]['step']} (a span end); the resumed "
          f"run of spans of {SPAN} equals the uninterrupted run of single steps")


# lr 1 on a tiny corpus: a loss of epoch 2 climbs above 1.05 x the first epoch's mean (step 17 of
# 63 on both backends), after the checkpoint of epoch 1; the whole-epoch span runs on to step 63.
DIVERGING = ["--epochs", "3", "--max-tokens", "1500", "--batch-size", "4", "--num-steps", "6", "--hidden-size", "12",
             "--num-preds", "5", "--no-progress", "--device", "cpu", "--lr", "1", "--clip", "1",
             "--divergence", "1.05", "--sampler", "sequential", "--checkpoint-every", "1"]


@pytest.mark.slow
def test_a_divergence_inside_a_span_is_reported_at_its_step_with_the_last_good_checkpoint(
        backend_name: str, tmp_path: Path) -> None:
    args = ["--backend", backend_name, *DIVERGING]
    one, whole = tmp_path / "one", tmp_path / "whole"
    runs = [start("char_lm", [*args, "--span", span, "--out", str(out)], tmp_path / "logs")
            for span, out in (("1", one), (WHOLE_EPOCH, whole))]
    errors = []
    for process, out in zip(runs, (one, whole)):
        assert process.wait(timeout=900) == 2, stderr_of(process)[-3000:]  # a SeqcoreError
        errors.append([line.replace(str(out), "OUT") for line in stderr_of(process).splitlines()
                       if line.startswith("error:")])
    assert errors[0] == errors[1] and len(errors[0]) == 1, errors
    assert "above the divergence limit" in errors[0][0] and "The last good checkpoint (epoch" in errors[0][0]
    stopped = [of_kind(records(out), "stopped") for out in (one, whole)]
    assert stopped[0] == stopped[1] and stopped[0][0]["epoch"] >= 2, stopped
    assert ", step 63;" not in errors[0][0]  # inside the epoch, so inside the whole-epoch span
    kept = [load_checkpoint(out / LAST) for out in (one, whole)]
    assert kept[0].provenance["epoch"] == kept[1].provenance["epoch"] == stopped[0][0]["epoch"] - 1
    for key, value in kept[0].params.items():
        np.testing.assert_array_equal(kept[1].params[key], value, err_msg=key)
    print(f"\n{backend_name}: {errors[0][0]}")


# -- tuple batches (an encoder-decoder's): the seam carries them unchanged --------------------------

@pytest.mark.slow
def test_a_tuple_batch_reaches_the_device_array_by_array(backend_name: str, tmp_path: Path) -> None:
    out = tmp_path / "tuple.json"
    python(str(ROOT / "tests" / "scripts" / "tuple_worker.py"), backend_name, str(out), check=True)
    got = json.loads(out.read_text())
    ids = "int64" if backend_name == "torch" else "int32"
    assert got["inputs_kind"] == got["targets_kind"] == "tuple"
    assert [(a["dtype"], a["shape"]) for a in got["inputs"]] == [(ids, [4, 3]), (ids, [3]), ("float32", [4, 3, 2])]
    assert [(a["dtype"], a["shape"]) for a in got["targets"]] == [(ids, [5, 3]), (ids, [3])]
    assert [a["shape"] for a in got["masks"]] == [[4, 3, 3]] * 2 and got["masks_kind"] == "list"
    assert all(a["equal"] for key in ("inputs", "targets", "masks") for a in got[key]), got


class TupleFake:
    """Just the primitives the span loop calls; records the rows and masks it was given."""

    train_span = Backend.train_span

    def __init__(self):
        self.begun, self.masks = [], []

    def begin_state(self, model, batch_size):
        self.begun.append(batch_size)
        return ("state", batch_size)

    def detach_state(self, state):
        return state

    def to_device(self, model, inputs, targets, masks, loss):
        self.masks.append([mask.shape for mask in masks])
        return inputs, targets

    def backward(self, model, batch, state, loss):
        return 1.0, state

    def grad_norm_on_device(self, model):
        return 0.0

    def clip_gradients(self, model, norm, max_norm):
        pass

    def step(self, trainer):
        pass

    def read(self, figures):
        return np.array(figures, np.float64)


def test_an_epoch_of_tuple_batches_counts_rows_tokens_and_targets_by_their_first_arrays() -> None:
    def batch(rows: int) -> tuple:  # (source (5, N), lengths (N,), decoder inputs (4, N)), (targets (4, N), lengths)
        return ((np.zeros((5, rows), np.int64), np.full(rows, 5), np.zeros((4, rows), np.int64)),
                (np.zeros((4, rows), np.int64), np.full(rows, 4)))

    spec = ModelSpec(cell="gru", impl="scratch", input_size=3, hidden_size=2, output_size=3, num_layers=2,
                     dropout=0.5)
    fake = TupleFake()
    stats = train_epoch(fake, None, None, [batch(2), batch(2), batch(2), batch(1)], loss=Loss.CROSS_ENTROPY,
                        clip=1.0, carry_state=True, span=0, spec=spec, seed=1)
    assert fake.begun == [2, 1]  # one span per row count, each state begun for its rows
    assert fake.masks == [[(5, 2, 2)] * 2] * 3 + [[(5, 1, 2)] * 2]  # (T, N, H) of the first input array
    assert stats.num_targets == 3 * 4 * 2 + 4 * 1 and stats.timed_tokens == 3 * 5 * 2 + 5 * 1


def test_a_worker_takes_its_rows_of_every_array_of_a_tuple_batch() -> None:
    source, lengths = np.arange(5 * 4).reshape(5, 4), np.arange(4)
    mine = _batch_rows((source, lengths), slice(2, 4), True)
    assert np.array_equal(mine[0], source[:, 2:4]) and np.array_equal(mine[1], lengths[2:4])
    assert np.array_equal(_batch_rows(source, slice(1, 2), True), source[:, 1:2])
    assert np.array_equal(_batch_rows(source, slice(1, 2), False), source[1:2])  # (N, ...): a LAST readout
