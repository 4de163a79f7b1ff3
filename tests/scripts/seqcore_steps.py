"""seqcore's training loop on given weights and batches, for tests/test_d2l.py: the same steps that
tasks.char_lm took (its losses must come out equal: the batches and weights are the run's), and the
same steps with each batch's rows in another order, how far float32 round-off alone moves seqcore.

Usage: python tests/scripts/seqcore_steps.py BACKEND FOLDER CASE [CASE ...]
  FOLDER holds CASE/metrics.jsonl (the run), weights.npz and batches.npz (tests/test_d2l.py's);
  writes FOLDER/seqcore_steps.npz: CASE (the losses) and CASE/twin.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from seqcore.backend import Device, load_backend
from seqcore.model.spec import Loss, ModelSpec
from seqcore.train.loop import train_epoch
from seqcore.train.spec import TrainSpec


def losses(backend, spec: ModelSpec, train: TrainSpec, params: dict, epochs: list, permute: bool) -> np.ndarray:
    model = backend.build_model(spec, params, backend.resolve_device(Device.CPU))
    trainer = backend.make_trainer(model, train.optimizer, train.lr)
    found: list[float] = []
    for epoch, batches in enumerate(epochs, start=1):
        work = []
        for x, y in batches:  # (N, T) rows; one permutation per batch size, so carried rows still continue
            order = np.random.default_rng(len(x)).permutation(len(x)) if permute else np.arange(len(x))
            work.append((np.ascontiguousarray(x[order].T), np.ascontiguousarray(y[order].T)))
        train_epoch(backend, model, trainer, work, loss=Loss.CROSS_ENTROPY, clip=train.clip,
                    carry_state=train.carry_state, epoch=epoch, span=1, spec=spec, seed=train.seed,
                    on_step=lambda step, value, stats: found.append(value))
    return np.array(found)


def main() -> None:
    backend, folder = load_backend(sys.argv[1]), Path(sys.argv[2])
    weights, batches = np.load(folder / "weights.npz"), np.load(folder / "batches.npz")
    found = {}
    for case in sys.argv[3:]:
        records = [json.loads(line) for line in (folder / case / "metrics.jsonl").read_text().splitlines()]
        run = next(r for r in records if r["kind"] == "run")
        spec, train = ModelSpec.from_dict(run["model"]), TrainSpec.from_dict(run["train"])
        params = {k.split("/", 1)[1]: weights[k] for k in weights.files if k.startswith(case + "/")}
        epochs: dict = {}
        for key in batches.files:
            if key.startswith(case + "/"):
                _, epoch, step, part = key.split("/")
                epochs.setdefault(int(epoch[1:]), {}).setdefault(int(step), {})[part] = batches[key]
        ordered = [[(steps[k]["x"], steps[k]["y"]) for k in sorted(steps)] for _, steps in sorted(epochs.items())]
        found[case] = losses(backend, spec, train, params, ordered, permute=False)
        found[f"{case}/twin"] = losses(backend, spec, train, params, ordered, permute=True)
    np.savez(folder / "seqcore_steps.npz", **found)


if __name__ == "__main__":
    main()
