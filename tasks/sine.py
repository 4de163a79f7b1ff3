"""Sine-wave regression on either framework: sin(t) -> cos(t), or next-step prediction and generation.

Usage: python -m tasks.sine --mode next --backend torch --cell all [--out DIR]
       python -m tasks.sine --mode sin2cos --backend mxnet --cell rnn

sin2cos (the seed tutorial): window k holds --seq-len 10 points of [k*pi, (k+1)*pi); input sin(t),
target cos(t); one window per iteration, the state carried and detached from one window to the
next; 100 iterations, hidden 32, Adam lr 0.02. Afterwards the next 10 windows are predicted from a
zero state (prediction.png; eval_mse leaves out the first, warm-up window). Row j of a batch is
shifted by 2*pi*j/N.
next: every iteration reads --seq-len 100 values sin(phase + 0.1*k) and predicts the next value at
each step (state reset per batch); 300 iterations, hidden 16, Adam lr 0.01. --phase fixed (default)
trains on the segment that starts at phase 0; --phase random draws each row's phase from
[-pi/2, pi/2), where the first value alone fixes the curve. Then the model generates --gen-steps
values from the single value sin(0), each prediction fed back in with the state carried
(generation.png, generation_mae against the true curve).
MSE without the 1/2 factor on both backends. Writes metrics.jsonl, loss.png, the wave figure and
model.safetensors to --out; --cell all trains RNN, GRU and LSTM into --out/<cell>/ and draws them
together in --out.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from seqcore.backend import Backend, Model, load_backend
from seqcore.checkpoint import Checkpoint, save_checkpoint
from seqcore.errors import SeqcoreError
from seqcore.params import init_params
from seqcore.progress import Progress
from seqcore.reports import MetricsWriter, machine_info, plot_curves, read_metrics, series
from seqcore.specs import Cell, Device, InputKind, Loss, ModelSpec, Readout, Sampler, TrainSpec, parse_enum
from seqcore.training import NonFiniteLoss, train_epoch

from .cli import add_model_arguments, add_training_arguments, run_main

MODES = {  # per-mode defaults: the seed's sizes
    "sin2cos": {"seq_len": 10, "hidden_size": 32, "iterations": 100, "batch_size": 1, "lr": 0.02},
    "next": {"seq_len": 100, "hidden_size": 16, "iterations": 300, "batch_size": 1, "lr": 0.01},
}
STEP = 0.1  # rad between samples in next mode: 100 steps span 10 rad, about 1.6 periods
EVAL_WINDOWS = 10  # sin2cos windows predicted after training
DATA_STREAM = 1  # the batch Generator is seeded with (seed, 1), the weights with seed alone
Batch = tuple[np.ndarray, np.ndarray]


def sin2cos_batches(first: int, count: int, seq_len: int, batch_size: int) -> Iterator[Batch]:
    shift = 2 * np.pi * np.arange(batch_size) / batch_size  # (N,)
    for k in range(first, first + count):
        t = np.linspace(k * np.pi, (k + 1) * np.pi, seq_len, endpoint=False)[:, None] + shift  # (T, N)
        yield np.sin(t)[..., None].astype(np.float32), np.cos(t)[..., None].astype(np.float32)


def next_batches(rng: np.random.Generator, count: int, seq_len: int, batch_size: int,
                 phase: str) -> Iterator[Batch]:
    for _ in range(count):
        start = rng.uniform(-np.pi / 2, np.pi / 2, batch_size) if phase == "random" else np.zeros(batch_size)
        wave = np.sin(start + STEP * np.arange(seq_len + 1)[:, None])[..., None].astype(np.float32)  # (T+1, N, 1)
        yield wave[:-1], wave[1:]


def generate(backend: Backend, model: Model, first: float, num_steps: int) -> np.ndarray:
    """Feed `first`, then each prediction, back in one step at a time: (num_steps,) values."""
    state, value, points = backend.begin_state(model, 1), np.full((1, 1, 1), first, np.float32), []
    for _ in range(num_steps):
        value, state = backend.forward(model, value.astype(np.float32), state)  # (1, 1, 1)
        points.append(float(value[0, 0, 0]))
    return np.asarray(points)


def plot_waves(path: Path, t: np.ndarray, truth: np.ndarray, truth_label: str,
               predictions: dict[str, np.ndarray], title: str) -> None:
    """The true curve as a line, each model's values as points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    axes.plot(t, truth, color="black", linewidth=1.2, label=truth_label)
    for label, values in predictions.items():
        axes.plot(t, values, ".", markersize=4, label=label)
    axes.set(title=title, xlabel="t (rad)", ylabel="value")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def train_cell(framework: Backend, spec: ModelSpec, train: TrainSpec, mode: str, iterations: int,
               phase: str, gen_steps: int, out: Path, progress: bool, info: dict[str, Any]) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    model = framework.build_model(spec, init_params(spec, train.init, train.seed), info["device"])
    trainer = framework.make_trainer(model, train.optimizer, train.lr)
    rng = np.random.default_rng([train.seed, DATA_STREAM])
    metrics = MetricsWriter(out / "metrics.jsonl")
    metrics.write({"kind": "run", "mode": mode, "model": spec.to_dict(), "train": train.to_dict(), **info})
    bar = Progress(iterations * train.num_epochs, f"{info['backend']} {spec.cell.value} {spec.impl.value} {mode}",
                   enabled=progress)
    started, losses = time.perf_counter(), []
    try:
        for epoch in range(1, train.num_epochs + 1):
            def on_step(step: int, value: float, stats) -> None:
                losses.append(value)
                metrics.write({"kind": "step", "epoch": epoch, "step": step, "loss": value})
                bar.update(1, {"loss": value})

            batches = (sin2cos_batches((epoch - 1) * iterations, iterations, train.num_steps, train.batch_size)
                       if mode == "sin2cos" else
                       next_batches(rng, iterations, train.num_steps, train.batch_size, phase))
            stats = train_epoch(framework, model, trainer, batches, loss=Loss.MSE, clip=train.clip,
                                carry_state=train.sampler is Sampler.SEQUENTIAL, epoch=epoch, on_step=on_step)
            metrics.write({"kind": "epoch", "epoch": epoch, "train_loss": stats.mean_loss,
                           "max_grad_norm": stats.max_grad_norm, "elapsed_s": time.perf_counter() - started})
    except NonFiniteLoss as error:
        raise error.explain() from None
    finally:
        bar.close()
    wall = time.perf_counter() - started

    if mode == "sin2cos":  # the windows after the training stretch, from a zero state
        state, targets, outputs = framework.begin_state(model, 1), [], []
        for inputs, target in sin2cos_batches(iterations * train.num_epochs, EVAL_WINDOWS, train.num_steps, 1):
            output, state = framework.forward(model, inputs, state)  # (T, 1, 1), state carried
            targets.append(target[:, 0, 0])
            outputs.append(output[:, 0, 0])
        truth, values = np.concatenate(targets), np.concatenate(outputs)
        t0 = iterations * train.num_epochs * np.pi
        t = np.linspace(t0, t0 + EVAL_WINDOWS * np.pi, truth.size, endpoint=False)
        warm = train.num_steps  # the first window starts from a zero state, where sin 0 = 0 is ambiguous
        figures = {"eval_mse": float(np.mean((values[warm:] - truth[warm:]) ** 2))}
    else:
        values = generate(framework, model, 0.0, gen_steps)
        t = STEP * np.arange(1, gen_steps + 1)
        truth = np.sin(t)
        figures = {"generation_mae": float(np.mean(np.abs(values - truth)))}
    summary = {"kind": "summary", "mode": mode, "cell": spec.cell.value, "first_loss": losses[0],
               "final_loss": float(np.mean(losses[-10:])), **figures, "wall_s": wall,
               "checkpoint": str(out / "model.safetensors"), **info}
    save_checkpoint(out / "model.safetensors", Checkpoint(
        spec, framework.export_params(model), train, None,
        {"epoch": train.num_epochs, "mode": mode, "phase": phase, **{k: v for k, v in summary.items()
                                                                      if k not in ("kind", "machine")}}))
    metrics.write(summary)
    label = f"{info['backend']} {spec.impl.value} {spec.cell.value}"
    plot_curves(out / "loss.png", {spec.cell.value: series(read_metrics(out / "metrics.jsonl"), "step", "loss")},
                title=f"{label}: {mode} training loss", xlabel="iteration", ylabel="MSE", logy=True)
    wave = "prediction.png" if mode == "sin2cos" else "generation.png"
    plot_waves(out / wave, t, truth, "cos(t)" if mode == "sin2cos" else "sin(t)",
               {spec.cell.value: values}, f"{label}: {mode}")
    summary["curve"] = (t.tolist(), truth.tolist(), values.tolist())  # for the --cell all figure
    return summary


def run(*, mode: str = "next", backend: str = "mxnet", cell: str = "lstm", impl: str = "concise",
        device: str = "auto", hidden_size: Optional[int] = None, num_layers: int = 1, init: str = "uniform",
        seed: int = 0, epochs: int = 1, iterations: Optional[int] = None, seq_len: Optional[int] = None,
        batch_size: Optional[int] = None, lr: Optional[float] = None, clip: float = 0.0,
        optimizer: str = "adam", phase: str = "fixed", gen_steps: int = 100, out: str | Path = "runs/sine",
        progress: bool = True) -> dict[str, Any]:
    """Train one cell (or 'all' three) and return the summary; with 'all', {'cells': {cell: summary}}."""
    if mode not in MODES:
        raise SeqcoreError(f"Unknown mode {mode!r}: choose one of {', '.join(MODES)}.")
    if phase not in ("fixed", "random"):
        raise SeqcoreError(f"Unknown phase {phase!r}: choose fixed or random.")
    defaults = MODES[mode]
    iterations = defaults["iterations"] if iterations is None else iterations
    seq_len = defaults["seq_len"] if seq_len is None else seq_len
    for name, value in (("iterations", iterations), ("seq-len", seq_len), ("gen-steps", gen_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise SeqcoreError(f"--{name} must be a positive integer, got {value!r}.")
    train = TrainSpec(batch_size=defaults["batch_size"] if batch_size is None else batch_size,
                      num_steps=seq_len, num_epochs=epochs, lr=defaults["lr"] if lr is None else lr, clip=clip,
                      optimizer=optimizer, sampler=Sampler.SEQUENTIAL if mode == "sin2cos" else Sampler.RANDOM,
                      init=init, seed=seed)
    cells = [c.value for c in Cell] if cell == "all" else [cell]
    specs = {c: ModelSpec(cell=c, impl=impl, input_size=1, output_size=1, num_layers=num_layers,
                          hidden_size=defaults["hidden_size"] if hidden_size is None else hidden_size,
                          input_kind=InputKind.DENSE, readout=Readout.SEQUENCE) for c in cells}

    framework = load_backend(backend)
    where = framework.resolve_device(parse_enum(Device, device, "device"))
    info = {"backend": backend, "device": where, "iterations": iterations,
            "machine": machine_info(framework.versions())}
    out = Path(out)
    summaries = {c: train_cell(framework, specs[c], train, mode, iterations, phase, gen_steps,
                               out / c if cell == "all" else out, progress, info) for c in cells}
    if cell != "all":
        return summaries[cell]
    metrics = MetricsWriter(out / "metrics.jsonl")
    for summary in summaries.values():
        metrics.write({k: v for k, v in summary.items() if k != "curve"})
    plot_curves(out / "loss.png", {c: series(read_metrics(out / c / "metrics.jsonl"), "step", "loss")
                                   for c in cells},
                title=f"{backend} {impl}: {mode} training loss", xlabel="iteration", ylabel="MSE", logy=True)
    t, truth, _ = summaries[cells[0]]["curve"]
    plot_waves(out / ("prediction.png" if mode == "sin2cos" else "generation.png"), np.asarray(t),
               np.asarray(truth), "cos(t)" if mode == "sin2cos" else "sin(t)",
               {c: np.asarray(s["curve"][2]) for c, s in summaries.items()}, f"{backend} {impl}: {mode}, RNN vs GRU vs LSTM")
    return {"kind": "summary", "mode": mode, "backend": backend, "cells": summaries}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tasks.sine", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=tuple(MODES), default="next", help="(default: %(default)s)")
    notes = {dest: "(default: %s)" % ", ".join(f"{MODES[m][dest]} {m}" for m in MODES)
             for dest in ("hidden_size", "batch_size", "lr")}  # defaults that depend on --mode
    add_model_arguments(parser, cell="lstm", impl="concise", hidden_size=None, extra_cells=("all",), notes=notes)
    add_training_arguments(parser, epochs=1, batch_size=None, lr=None, optimizer="adam", clip=0.0, notes=notes)
    data = parser.add_argument_group("data")
    data.add_argument("--iterations", type=int, default=None, help="batches per epoch (default: 100 / 300)")
    data.add_argument("--seq-len", type=int, default=None, help="time steps per batch (default: 10 / 100)")
    data.add_argument("--phase", choices=("fixed", "random"), default="fixed", help="next mode (default: %(default)s)")
    data.add_argument("--gen-steps", type=int, default=100, help="values generated (default: %(default)s)")
    data.add_argument("--out", default=None, help="output directory (default: runs/sine/MODE-BACKEND-CELL-IMPL)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    out = args.out or f"runs/sine/{args.mode}-{args.backend}-{args.cell}-{args.impl}"
    result = run(mode=args.mode, backend=args.backend, cell=args.cell, impl=args.impl, device=args.device,
                 hidden_size=args.hidden_size, num_layers=args.num_layers, init=args.init, seed=args.seed,
                 epochs=args.epochs, iterations=args.iterations, seq_len=args.seq_len, batch_size=args.batch_size,
                 lr=args.lr, clip=args.clip, optimizer=args.optimizer, phase=args.phase,
                 gen_steps=args.gen_steps, out=out, progress=not args.no_progress)
    for summary in result.get("cells", {args.cell: result}).values():
        figure = ("eval MSE {eval_mse:.5f}" if args.mode == "sin2cos" else
                  "generation MAE {generation_mae:.4f} over %d steps" % args.gen_steps).format(**summary)
        print(f"{args.backend} {args.impl} {summary['cell']} on {summary['device']} ({args.mode}): training loss "
              f"{summary['first_loss']:.4f} -> {summary['final_loss']:.6f}, {figure}, {summary['wall_s']:.1f} s")
    print(f"metrics, plots and checkpoint(s) written to {out}")
    return 0


if __name__ == "__main__":
    run_main(main)
