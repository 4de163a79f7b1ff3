"""Checkpoint and resume through the Backend protocol, on one backend, in its own process.

Usage: python tests/scripts/trainer_state_worker.py BACKEND OUT.npz [EXPORTED.npz]

Without EXPORTED, for every case and optimizer ("<case>/<adam|sgd>/..."): the losses of an
uninterrupted run of 5 steps with the recurrent state carried, its checkpoints after steps 3, 4
and 5 ("at3/", "at4/", "at5/": params/<name>, trainer/<name>, state<i>), and the run resumed
from "at3" on a fresh model and trainer, exported again at once ("reloaded/") and after its 2
steps ("resumed_losses", "resumed/"); the trainer state of a fresh Adam trainer
("<case>/fresh/"); outputs, losses and gradients of the second half of a sequence with its
recurrent state as returned and as round-tripped through NumPy ("<case>/original/",
"<case>/restored/"); the sentence each mismatched trainer state raises ("errors/<kind>", empty
when nothing was raised).
With EXPORTED (another backend's OUT), each case's Adam run resumed from that backend's "at3":
its trainer state exported at once ("<case>/reloaded/<name>"), and the loss and parameters of
step 4 ("<case>/loss4", "<case>/params4/<name>").
"""
from __future__ import annotations

import sys

import numpy as np

from seqcore.backend import Device, Optimizer, load_backend
from seqcore.errors import SeqcoreError
from seqcore.model.spec import Activation, Cell, Impl, Loss, Readout
from tests.cases import BATCH, case_data, spec_for

LR, STEPS, STOP, HALF = 0.01, 5, 3, 2  # learning rate, steps in all, steps before the stop, time split
# LSTM and GRU, scratch and concise, on tests.cases.SHAPES 0 (one-hot LM, 2 layers) and 1
# (embedding classifier, last-step readout).
CASES = {f"{cell.value}-{impl.value}-{shape}": spec_for(cell, Activation.TANH, impl, shape)
         for cell in (Cell.LSTM, Cell.GRU) for impl in Impl for shape in (0, 1)}
LOSS = Loss.CROSS_ENTROPY


def batches(spec) -> list[tuple[np.ndarray, np.ndarray]]:
    """STEPS different (inputs, targets) batches, the same in every process."""
    return [case_data(spec, LOSS, seed)[1:] for seed in range(10, 10 + STEPS)]


def session(backend, spec, params, optimizer, saved: dict | None = None):
    """A fresh model, trainer and recurrent state; resumed from a snapshot() when given."""
    model = backend.build_model(spec, params, backend.resolve_device(Device.CPU))
    trainer = backend.make_trainer(model, optimizer, LR)
    if saved is None:
        return model, trainer, backend.begin_state(model, BATCH)
    backend.load_trainer_state(model, trainer, _part(saved, "trainer/"))
    state = [saved[f"state{i}"] for i in range(spec.num_states)]
    return model, trainer, backend.state_from_numpy(model, state)


def step(backend, model, trainer, state, batch):
    value, state = backend.forward_backward(model, *batch, state, LOSS)
    backend.step(trainer)
    return value, backend.detach_state(state)


def snapshot(backend, model, trainer, state) -> dict[str, np.ndarray]:
    """Everything a checkpoint holds: params/<name>, trainer/<name>, state<i>."""
    arrays = {f"params/{k}": v for k, v in backend.export_params(model).items()}
    arrays.update({f"trainer/{k}": v for k, v in backend.export_trainer_state(model, trainer).items()})
    arrays.update({f"state{i}": part for i, part in enumerate(backend.state_to_numpy(state))})
    return arrays


def checkpointed(backend, spec, optimizer, prefix: str, results: dict) -> None:
    """STEPS steps in one go, and the same stopped after STOP and resumed on fresh objects."""
    data = batches(spec)
    params = case_data(spec, LOSS)[0]
    model, trainer, state = session(backend, spec, params, optimizer)
    losses, saved = [], {}
    for number, batch in enumerate(data, 1):
        value, state = step(backend, model, trainer, state, batch)
        losses.append(value)
        saved[number] = snapshot(backend, model, trainer, state)
    results[f"{prefix}/losses"] = np.array(losses)
    for number in (STOP, STOP + 1, STEPS):
        results.update(_prefixed(f"{prefix}/at{number}/", saved[number]))

    model, trainer, state = session(backend, spec, _part(saved[STOP], "params/"), optimizer, saved[STOP])
    results.update(_prefixed(f"{prefix}/reloaded/", snapshot(backend, model, trainer, state)))
    resumed = []
    for batch in data[STOP:]:
        value, state = step(backend, model, trainer, state, batch)
        resumed.append(value)
    results[f"{prefix}/resumed_losses"] = np.array(resumed)
    results.update(_prefixed(f"{prefix}/resumed/", snapshot(backend, model, trainer, state)))


def continued(backend, spec, name: str, results: dict) -> None:
    """The second half of a sequence after the first, with the state as is and through NumPy."""
    inputs, targets = batches(spec)[0]
    second = targets[HALF:] if spec.readout is Readout.SEQUENCE else targets
    model, _, state = session(backend, spec, case_data(spec, LOSS)[0], Optimizer.SGD)
    _, state = backend.forward(model, inputs[:HALF], state)
    arrays = backend.state_to_numpy(state)
    results.update({f"{name}/numpy_state{i}": part for i, part in enumerate(arrays)})
    for label, carried in (("original", state), ("restored", backend.state_from_numpy(model, arrays))):
        outputs, _ = backend.forward(model, inputs[HALF:], carried)
        evaluated, _ = backend.evaluate(model, inputs[HALF:], second, carried, LOSS)
        detached = backend.detach_state(carried)
        trained, _ = backend.forward_backward(model, inputs[HALF:], second, detached, LOSS)
        results[f"{name}/{label}/outputs"] = outputs
        results[f"{name}/{label}/losses"] = np.array([evaluated, trained])
        results.update(_prefixed(f"{name}/{label}/grads/", model.export_gradients()))


def bad_states(backend, results: dict) -> None:
    """The sentence each mismatched trainer state raises (any other exception fails the run)."""
    lstm, gru = CASES["lstm-concise-0"], CASES["gru-concise-0"]
    model, adam, _ = session(backend, lstm, case_data(lstm, LOSS)[0], Optimizer.ADAM)
    _, sgd, _ = session(backend, lstm, case_data(lstm, LOSS)[0], Optimizer.SGD)
    gru_model, gru_adam, _ = session(backend, gru, case_data(gru, LOSS)[0], Optimizer.ADAM)
    good = backend.export_trainer_state(model, adam)
    attempts = {
        "missing": (model, adam, {}),
        "dropped": (model, adam, {k: v for k, v in good.items() if k != "adam.v/head.bias"}),
        "unexpected": (model, adam, {**good, "adam.m/extra.weight": np.zeros(3, np.float32)}),
        "shape": (model, adam, {**good, "adam.m/head.bias": np.zeros(3, np.float32)}),
        "step_shape": (model, adam, {**good, "adam.step": np.zeros((), np.int64)}),
        "adam_into_sgd": (model, sgd, good),
        "lstm_into_gru": (gru_model, gru_adam, good),
    }
    for kind, (target, trainer, arrays) in attempts.items():
        try:
            backend.load_trainer_state(target, trainer, arrays)
            results[f"errors/{kind}"] = np.array("")
        except SeqcoreError as error:
            results[f"errors/{kind}"] = np.array(str(error))


def cross(backend, exported: dict, results: dict) -> None:
    for name, spec in CASES.items():
        saved = _part(exported, f"{name}/adam/at{STOP}/")
        model, trainer, state = session(backend, spec, _part(saved, "params/"), Optimizer.ADAM, saved)
        results.update(_prefixed(f"{name}/reloaded/", backend.export_trainer_state(model, trainer)))
        value, _ = step(backend, model, trainer, state, batches(spec)[STOP])
        results[f"{name}/loss4"] = np.array(value)
        results.update(_prefixed(f"{name}/params4/", backend.export_params(model)))


def _part(arrays: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def _prefixed(prefix: str, arrays: dict) -> dict:
    return {prefix + k: v for k, v in arrays.items()}


def main() -> None:
    backend, out = load_backend(sys.argv[1]), sys.argv[2]
    results: dict = {}
    if len(sys.argv) > 3:
        with np.load(sys.argv[3]) as data:
            cross(backend, dict(data), results)
    else:
        for name, spec in CASES.items():
            for optimizer in Optimizer:
                checkpointed(backend, spec, optimizer, f"{name}/{optimizer.value}", results)
            model, trainer, _ = session(backend, spec, case_data(spec, LOSS)[0], Optimizer.ADAM)
            results.update(_prefixed(f"{name}/fresh/", backend.export_trainer_state(model, trainer)))
            continued(backend, spec, name, results)
        bad_states(backend, results)
    np.savez(out, **results)


if __name__ == "__main__":
    main()
