"""Sine-wave regression on either framework: sin(t) -> cos(t), or next-step prediction and generation.

Usage: python -m tasks.sine --mode next --backend torch --cell all [--out DIR]
       python -m tasks.sine --mode sin2cos --backend mxnet --cell rnn
       python -m tasks.sine --out DIR --resume [--epochs 3]     # continue a stopped run

sin2cos (the seed tutorial): window k holds --num-steps 10 points of [k*pi, (k+1)*pi); input sin(t),
target cos(t); one window per iteration, the state carried and detached from one window to the
next; 100 iterations, hidden 32, Adam lr 0.02. Each evaluation predicts the next 10 windows from a
zero state (prediction.png; eval_mse leaves out the first, warm-up window). Row j of a batch is
shifted by 2*pi*j/N.
next: every iteration reads --num-steps 100 values sin(phase + 0.1*k) and predicts the next value at
each step (state reset per batch); 300 iterations, hidden 16, Adam lr 0.01. --phase fixed (default)
trains on the segment that starts at phase 0; --phase random draws each row's phase from
[-pi/2, pi/2), where the first value alone fixes the curve. Each evaluation generates --gen-steps
values from the single value sin(0), each prediction fed back in with the state carried
(generation.png, generation_mae against the true curve).
An epoch is --iterations batches (1 epoch by default); the next epoch of sin2cos continues with
the windows after them. The mode's figure (eval_mse or generation_mae) is measured every
--eval-every epochs and picks best.safetensors. MSE without the 1/2 factor on both backends.
Writes config.json, metrics.jsonl (a loss line per step), metrics.csv, loss.png, the wave figure,
model.safetensors and best.safetensors to --out (default: the next
runs/sine/MODE-BACKEND-CELL-IMPL/version_N).
--bidirectional (sin2cos only) adds a reverse direction over each window; --dropout P drops inputs
while training only; --gru-reset before (scratch GRU) applies the reset gate before the hidden
matmul, and with --cell all it reaches the GRU only.
--cell all trains RNN, GRU and LSTM, each a run of its own in --out/<cell>/, then draws the three
together in --out; with --resume, the cells short of --epochs continue, the ones not begun start,
and the ones done are kept; --overwrite replaces all three.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional, Sequence

from seqcore.backend import Backend, Optimizer, load_backend
from seqcore.data.sampling import Sampler
from seqcore.data.spec import SineSpec
from seqcore.data.waves import NEXT, PHASES, SIN2COS
from seqcore.errors import ConfigError, SeqcoreError
from seqcore.jobs.sine import WAVE_FIGURES, SineJob, loss_points, plot_losses, plot_waves
from seqcore.model.spec import Cell, GRUReset, Impl, InputKind, ModelSpec, Readout
from seqcore.parallel.distributed import environment_size
from seqcore.run.checkpoint import BEST, LAST, load_checkpoint
from seqcore.run.config_file import now, read_run_config, write_run_config
from seqcore.run.folder import CONFIG, Mode, OutputFolder
from seqcore.run.log import MetricsLog, read_metrics
from seqcore.run.resume import check_specs, differences, refusal
from seqcore.run.session import Run, RunSettings
from seqcore.train.spec import TrainSpec

from .cli import TaskConfig, batch_size_option, choices, option, parse_config, run_main

TASK = "sine"
ALL = "all"
MODES = {  # per-mode defaults: the seed's sizes
    SIN2COS: {"num_steps": 10, "hidden_size": 32, "iterations": 100, "lr": 0.02},
    NEXT: {"num_steps": 100, "hidden_size": 16, "iterations": 300, "lr": 0.01},
}


@dataclasses.dataclass(frozen=True)
class SineConfig(TaskConfig):
    """Fields left at None take the --mode's value (MODES)."""

    RENAMED = {"seq_len": "num_steps"}  # seqcore 0.1.0 wrote seq_len: time steps are num_steps on every task

    mode: str = option(NEXT, "sin2cos: sin(t) -> cos(t), the state carried across windows; next: next-step "
                       "prediction, then generation", group="data", choices=tuple(MODES))
    cell: str = option("lstm", "recurrent cell; all: RNN, GRU and LSTM, each a run in --out/<cell>/",
                       group="model", choices=(*choices(Cell), ALL))
    hidden_size: Optional[int] = option(None, "hidden units per layer", group="model", check="positive")
    epochs: Optional[int] = option(1, "train to this epoch of --iterations batches (with --resume: continue "
                                   "to it)", check="positive", resumable=True)
    batch_size: int = batch_size_option(1)
    lr: Optional[float] = option(None, "learning rate", check="positive")
    optimizer: Optional[str] = option("adam", "", choices=choices(Optimizer))
    clip: Optional[float] = option(0.0, "clip gradients to this global norm; 0 turns it off",
                                   check="non_negative")
    iterations: Optional[int] = option(None, "batches per epoch", group="data", check="positive")
    num_steps: Optional[int] = option(None, "time steps per batch", group="data", check="positive",
                                      deprecated=("--seq-len",))
    gru_reset: str = option(GRUReset.AFTER.value, "where the GRU's reset gate acts: after the hidden matmul "
                            "(cuDNN, Gluon, PyTorch) or before it (the d2l book's scratch GRU; needs --impl scratch "
                            "and --cell gru, or --cell all, where it reaches the GRU only)", group="model",
                            choices=choices(GRUReset))
    phase: str = option("fixed", "next mode: fixed trains on the segment from phase 0, random draws each "
                        "row's phase from [-pi/2, pi/2)", group="data", choices=PHASES)
    # In sin2cos the LSTM's early loss peaks at up to 9.8 times its first step's (seeds 0-5, measured)
    # before falling 500-fold, so the usual 10 would stop healthy runs.
    divergence: float = option(100.0, "stop when a loss exceeds this multiple of the first epoch's mean loss "
                               "(of the first step's, during the first epoch); 0: only NaN/inf",
                               check="non_negative", resumable=True)
    gen_steps: int = option(100, "next mode: values generated at each evaluation", group="output",
                            check="positive", resumable=True)
    log_every: int = option(1, "steps per training-loss line in metrics.jsonl; 0: none", group="output",
                            check="non_negative", resumable=True)

    def __post_init__(self) -> None:
        if not isinstance(self.mode, str) or self.mode not in MODES:
            raise ConfigError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}.")
        for name, value in MODES[self.mode].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        super().__post_init__()

        if self.bidirectional and self.mode != SIN2COS:
            raise ConfigError("--bidirectional needs --mode sin2cos: next-value prediction reads the wave from "
                              "the left, and a reverse direction would read the value it predicts.")

    def check_gru_reset(self) -> None:
        """With --cell all, --gru-reset before reaches the GRU only (and needs --impl scratch)."""
        if self.cell == ALL and self.gru_reset == GRUReset.BEFORE.value and self.impl != Impl.SCRATCH.value:
            raise ConfigError(f"--gru-reset before needs --impl scratch (the frameworks' fused layers apply the "
                              f"reset gate after the hidden matmul), got --impl {self.impl}.")
        if self.cell != ALL:
            super().check_gru_reset()

    def check_activation(self) -> None:
        """With --cell all, --activation reaches the RNN only."""
        if self.cell != ALL:
            super().check_activation()

    def cells(self) -> list[str]:
        return choices(Cell) if self.cell == ALL else [self.cell]

    def train_spec(self) -> TrainSpec:
        sin2cos = self.mode == SIN2COS
        return TrainSpec(batch_size=self.batch_size, num_steps=self.num_steps, num_epochs=self.epochs, lr=self.lr,
                         clip=self.clip, optimizer=self.optimizer,
                         sampler=Sampler.SEQUENTIAL if sin2cos else Sampler.RANDOM, carry_state=sin2cos,
                         init=self.init, seed=self.seed, schedule=self.schedule, lr_decay=self.lr_decay,
                         lr_decay_every=self.lr_decay_every)

    def model_spec(self, cell: str) -> ModelSpec:
        return ModelSpec(cell=cell, impl=self.impl, input_size=1, hidden_size=self.hidden_size, output_size=1,
                         num_layers=self.num_layers, input_kind=InputKind.DENSE, readout=Readout.SEQUENCE,
                         **self.model_options(cell))

    def data_spec(self) -> SineSpec:
        return SineSpec(mode=self.mode, phase=self.phase, iterations=self.iterations, num_steps=self.num_steps,
                        batch_size=self.batch_size)

    def job(self, cell: str) -> SineJob:
        return SineJob(self.data_spec().load(), gen_steps=self.gen_steps, cell=cell,
                       label=f"{self.backend} {self.impl} {cell}")


def run(config: SineConfig) -> dict[str, Any]:
    """Train and return the summary (first and final loss, the mode's figure, paths); with --cell
    all, {'cells': {cell: summary}, 'out': ...}.

    To resume a run from Python without repeating its settings: run(SineConfig.resume_from(DIR,
    epochs=3)); a changed setting that would change the numbers is refused."""
    train = config.train_spec()  # every flag is checked before any file is read or written
    specs = {cell: config.model_spec(cell) for cell in config.cells()}
    settings = config.settings(TASK, f"{config.mode}-{config.backend}-{config.cell}-{config.impl}")
    if config.cell == ALL:
        if environment_size() > 1:  # one folder per cell, trained one after another by one process
            raise SeqcoreError("--cell all cannot run on several workers; train one --cell at a time there.")
        return _run_all(config, train, specs, settings)
    job = config.job(config.cell)
    with Run(TASK, config.saved(), settings, train) as training:  # the folder is checked first
        training.check_resumed(job, specs[config.cell])  # before a framework loads
        summary = training.fit(job, load_backend(config.backend, config.compile), specs[config.cell])
    return {**summary, "out": str(settings.out)}


def _run_all(config: SineConfig, train: TrainSpec, specs: dict[str, ModelSpec],
             settings: RunSettings) -> dict[str, Any]:
    """Each cell a run of its own in OUT/<cell>/, then the three drawn together in OUT. OUT holds
    this command's config.json (what --resume and --config read) and is locked while it runs."""
    out = settings.out
    with OutputFolder(out, settings.mode):
        resume = settings.mode is Mode.RESUME
        done = {cell: _epochs_done(out / cell) if resume else 0 for cell in specs}
        if all(epochs >= train.num_epochs for epochs in done.values()):
            raise SeqcoreError(f"The runs in {out} have already trained {min(done.values())} epochs; "
                               f"give --epochs above that to continue them.")
        _write_folder_config(out, config, resume, settings.resumable)
        backend = load_backend(config.backend, config.compile)
        summaries, losses, waves = {}, {}, {}
        for cell, spec in specs.items():
            job = config.job(cell)
            mode = Mode.RESUME if resume and (out / cell / CONFIG).is_file() else Mode.NEW
            # --gru-reset as it reaches this cell: each cell's folder is a run that resumes on its own
            cell_config = {**config.saved(), "cell": cell, "out": str(out / cell),
                           "gru_reset": config.model_options(cell)["gru_reset"]}
            # The resume command printed on a stop still names OUT, so that it continues all three.
            cell_settings = dataclasses.replace(settings, out=out / cell, mode=mode)
            with Run(TASK, cell_config, cell_settings, train) as training:
                resumed = training.resumed
                if resumed is not None and resumed.position.get("epochs_done", 0) >= train.num_epochs:
                    summaries[cell], records = _kept(training, job, backend, spec)
                else:
                    summaries[cell] = training.fit(job, backend, spec)
                    records = training.log.records
            losses[cell], waves[cell] = loss_points(records, config.iterations), job.wave
        log = MetricsLog(out / "metrics.jsonl")
        for summary in summaries.values():
            log.write(summary)
        label = f"{config.backend} {config.impl}"
        plot_losses(out / "loss.png", losses, f"{label}: {config.mode} training loss")
        name, truth = WAVE_FIGURES[config.mode]
        plot_waves(out / name, waves, truth, f"{label}: {config.mode}, RNN vs GRU vs LSTM")
    return {"kind": "summary", "mode": config.mode, "backend": config.backend, "cells": summaries, "out": str(out)}


def _epochs_done(folder: Path) -> int:
    path = folder / LAST
    return load_checkpoint(path).position.get("epochs_done", 0) if path.is_file() else 0


def _kept(training: Run, job: SineJob, backend: Backend, spec: ModelSpec) -> tuple[dict, list]:
    """A cell that had already reached --epochs: its summary from its records and checkpoint, its
    wave measured again on the checkpoint's weights (for the combined figure)."""
    checkpoint, folder = training.resumed, training.folder
    check_specs(folder, checkpoint, backend.name, spec, training.train, job.data)
    records = read_metrics(folder / "metrics.jsonl")
    position = checkpoint.position
    device = training.resolve_device(backend)
    job.measure(backend, backend.build_model(spec, checkpoint.params, device), position["epochs_done"])
    summary = {"kind": "summary", **job.summarize(records, position.get("first_loss"), position.get("best"),
                                                  position.get("best_epoch", 0)),
               "wall_s": position.get("wall_s"), "checkpoint": str(folder / LAST),
               "best_checkpoint": str(folder / BEST) if (folder / BEST).is_file() else None,
               "backend": backend.name, "device": device, "data": job.data.spec.to_dict(), "kept": True}
    return summary, records


def _write_folder_config(folder: Path, config: SineConfig, resume: bool, resumable: frozenset) -> None:
    """OUT/config.json of --cell all (each cell's folder has its own, and each cell's run checks a
    resume against its checkpoint; this file is not rewritten for a resume it would refuse)."""
    saved: dict[str, Any] = {}
    if resume:
        saved = read_run_config(folder)
        if saved["task"] != TASK or saved["config"].get("cell") != ALL:
            what = saved["task"] if saved["task"] != TASK else f"single {saved['config'].get('cell')} sine"
            raise SeqcoreError(f"{folder} holds a {what} run, not a --cell all one; resume it as it was started.")
        changed = differences(saved["config"], config.saved(), resumable)
        if changed:
            raise refusal(folder, changed)
    write_run_config(folder, TASK, config.saved(), created=saved.get("created", now()),
                     resumed=[*saved.get("resumed", []), now()] if resume else [])


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = parse_config(SineConfig, TASK, argv, __doc__, defaults={
        name: ", ".join(f"{values[name]} {mode}" for mode, values in MODES.items())
        for name in ("hidden_size", "iterations", "num_steps", "lr")})  # defaults that depend on --mode
    result = run(config)
    for summary in result["cells"].values() if config.cell == ALL else [result]:
        figure = (f"eval MSE {summary['eval_mse']:.5f}" if config.mode == SIN2COS else
                  f"generation MAE {summary['generation_mae']:.4f} over {config.gen_steps} steps")
        kept = " (kept: it had reached --epochs)" if summary.get("kept") else ""
        print(f"{config.backend} {config.impl} {summary['cell']} on {summary['device']} ({config.mode}): training "
              f"loss {summary['first_loss']:.4f} -> {summary['final_loss']:.6f}, {figure}, "
              f"{summary['wall_s']:.1f} s{kept}")
    print(f"written to {result['out']}")
    return 0


if __name__ == "__main__":
    run_main(main)
