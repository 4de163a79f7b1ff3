"""Model cases shared by the numerics tests and their backend worker (NumPy only).

A case is a ModelSpec plus a seed: the worker and the test both rebuild the same canonical
parameters and batch from it, so nothing but results needs to cross the process boundary.
"""
from __future__ import annotations

import itertools

import numpy as np

from seqcore.params import init_params
from seqcore.specs import Activation, Cell, Impl, InputKind, Loss, ModelSpec, Readout

NUM_STEPS, BATCH, HIDDEN, VOCAB, FEATURES = 4, 3, 5, 7, 3

# (input kind, readout, loss, layers): one-hot LM, embedding classifier, dense regression.
SHAPES = [
    (InputKind.ONEHOT, Readout.SEQUENCE, Loss.CROSS_ENTROPY, 2),
    (InputKind.EMBEDDING, Readout.LAST, Loss.CROSS_ENTROPY, 1),
    (InputKind.DENSE, Readout.SEQUENCE, Loss.MSE, 2),
]
CELLS = [(Cell.RNN, Activation.TANH), (Cell.RNN, Activation.RELU), (Cell.GRU, Activation.TANH),
         (Cell.LSTM, Activation.TANH)]


def spec_for(cell: Cell, activation: Activation, impl: Impl, shape_index: int) -> ModelSpec:
    input_kind, readout, _, layers = SHAPES[shape_index]
    return ModelSpec(cell=cell, impl=impl, activation=activation, hidden_size=HIDDEN, num_layers=layers,
                     input_size=FEATURES if input_kind is InputKind.DENSE else VOCAB,
                     output_size=2 if input_kind is InputKind.DENSE else VOCAB,
                     input_kind=input_kind, embed_size=4 if input_kind is InputKind.EMBEDDING else 0,
                     readout=readout)


def all_cases() -> list[tuple[str, ModelSpec, Loss]]:
    cases = []
    for (cell, act), impl, index in itertools.product(CELLS, Impl, range(len(SHAPES))):
        name = f"{cell.value}-{act.value}-{impl.value}-{SHAPES[index][0].value}"
        cases.append((name, spec_for(cell, act, impl, index), SHAPES[index][2]))
    return cases


def case_data(spec: ModelSpec, loss: Loss, seed: int = 3):
    """(params, inputs (T, N[, I]), targets) for one case, float32 / int64."""
    rng = np.random.default_rng(seed)
    params = init_params(spec, "uniform", seed)
    if spec.input_kind is InputKind.DENSE:
        inputs = rng.standard_normal((NUM_STEPS, BATCH, spec.input_size)).astype(np.float32)
    else:
        inputs = rng.integers(0, spec.input_size, (NUM_STEPS, BATCH))
    out_shape = (NUM_STEPS, BATCH) if spec.readout is Readout.SEQUENCE else (BATCH,)
    if loss is Loss.MSE:
        targets = rng.standard_normal(out_shape + (spec.output_size,)).astype(np.float32)
    else:
        targets = rng.integers(0, spec.output_size, out_shape)
    return params, inputs, targets
