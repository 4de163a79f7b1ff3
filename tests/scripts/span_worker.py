"""Spans against single steps through the Backend protocol, on one backend, in its own process.

Usage: python tests/scripts/span_worker.py BACKEND OUT.npz

For every case and optimizer ("<case>/<sgd|adam>/"): STEPS steps from the same weights and batches
run three ways, `steps` (the oracle below: one NumPy-level call at a time, each loss and norm read
back and the clipping decided on the host by seqcore.train.loop.clip_factor, the path every step
took before spans), `train_span` one step at a time, and `train_span` over all STEPS at once; for
each way the losses, gradient norms, final weights and final state ("<way>/losses",
"<way>/norms", "<way>/params/<name>", "<way>/state<i>"). A span loop that skipped or misapplied a
part of the step (the clipping, a rate, the carried state) differs from the oracle.
"""
from __future__ import annotations

import sys

import numpy as np

from seqcore.backend import Device, Optimizer, load_backend
from seqcore.model.spec import Activation, Cell, Impl, Loss, Readout
from seqcore.train.loop import clip_factor
from tests.cases import DROPOUT, case_data, case_masks, modern_spec, spec_for

STEPS = 6
CLIP = 0.3  # inside the range of these models' gradient norms (0.09 to 1.5): some steps are clipped, some not
LRS = [0.5, 0.3, 0.2, 0.1, 0.05, 0.02]  # a different rate every step, as the cosine schedule gives
LM, CLASSES, DENSE = 0, 1, 2  # tests.cases.SHAPES: one-hot LM, embedding classifier, dense regression
CASES = {  # (spec, loss, carry_state, clip)
    "lstm-scratch-onehot-carried": (spec_for(Cell.LSTM, Activation.TANH, Impl.SCRATCH, LM),
                                    Loss.CROSS_ENTROPY, True, CLIP),
    "gru-concise-onehot-carried": (spec_for(Cell.GRU, Activation.TANH, Impl.CONCISE, LM),
                                   Loss.CROSS_ENTROPY, True, CLIP),
    "rnn-concise-embedding-fresh": (spec_for(Cell.RNN, Activation.TANH, Impl.CONCISE, CLASSES),
                                    Loss.CROSS_ENTROPY, False, CLIP),
    "rnn-scratch-dense-noclip": (spec_for(Cell.RNN, Activation.RELU, Impl.SCRATCH, DENSE), Loss.MSE, True, 0.0),
    "gru-scratch-dropout": (modern_spec(Cell.GRU, Impl.SCRATCH, 2, Readout.SEQUENCE, dropout=DROPOUT),
                            Loss.CROSS_ENTROPY, True, CLIP),
    "lstm-concise-dropout-bi": (modern_spec(Cell.LSTM, Impl.CONCISE, 2, Readout.LAST, True, dropout=DROPOUT),
                                Loss.MSE, False, CLIP),
}


def batches(spec, loss) -> list[tuple]:
    """STEPS different (inputs, targets, masks) batches, the same in every process."""
    return [(*case_data(spec, loss, seed)[1:], case_masks(spec, seed)) for seed in range(10, 10 + STEPS)]


def train_steps(backend, model, trainer, data, *, loss, clip, lrs, carry_state):
    """The span loop's contract spelt out one step at a time, each figure read back as it comes."""
    losses, norms, state = np.zeros(len(data)), np.zeros(len(data)), None
    for k, (inputs, targets, masks) in enumerate(data):
        backend.set_lr(trainer, lrs[k])
        state = backend.detach_state(state) if carry_state and state is not None else None  # None: begun
        losses[k], state = backend.forward_backward(model, inputs, targets, state, loss, masks)
        norms[k] = backend.grad_norm(model)
        if clip_factor(norms[k], clip) != 1.0:
            backend.clip_gradients(model, backend.grad_norm_on_device(model), clip)
        backend.step(trainer)
    return losses, norms, state


def main(name: str, out: str) -> None:
    backend = load_backend(name)
    device = backend.resolve_device(Device.CPU)
    results: dict[str, np.ndarray] = {}
    for case, (spec, loss, carry_state, clip) in CASES.items():
        params, data = case_data(spec, loss)[0], batches(spec, loss)
        for optimizer in (Optimizer.SGD, Optimizer.ADAM):
            scale = 1.0 if optimizer is Optimizer.SGD else 0.1
            lrs = [lr * scale for lr in LRS]
            for way in ("steps", "span1", "span"):
                model = backend.build_model(spec, params, device)
                trainer = backend.make_trainer(model, optimizer, lrs[0])
                losses, norms, state = [], [], None
                if way == "steps":
                    losses, norms, state = train_steps(backend, model, trainer, data, loss=loss, clip=clip,
                                                       lrs=lrs, carry_state=carry_state)
                elif way == "span":
                    losses, norms, state = backend.train_span(model, trainer, data, None, loss=loss, clip=clip,
                                                              lrs=lrs, carry_state=carry_state)
                else:
                    for k in range(STEPS):
                        value, norm, state = backend.train_span(model, trainer, data[k:k + 1],
                                                                state if carry_state else None, loss=loss,
                                                                clip=clip, lrs=lrs[k:k + 1], carry_state=carry_state)
                        losses.append(value[0])
                        norms.append(norm[0])
                prefix = f"{case}/{optimizer.value}/{way}/"
                results[prefix + "losses"] = np.asarray(losses, np.float64)
                results[prefix + "norms"] = np.asarray(norms, np.float64)
                for key, value in backend.export_params(model).items():
                    results[prefix + "params/" + key] = value
                for i, part in enumerate(backend.state_to_numpy(state)):
                    results[prefix + f"state{i}"] = part
    np.savez(out, **results)


if __name__ == "__main__":
    main(*sys.argv[1:3])
