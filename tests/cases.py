"""Model cases shared by the numerics tests and their backend worker (NumPy only).

A case is a ModelSpec plus a seed: the worker and the test both rebuild the same canonical
parameters, batch and dropout masks from it, so nothing but results needs to cross the process
boundary. Besides the classic grid (every cell x impl x input kind) come the modern forms:
bidirectional stacks, the GRU with its reset gate before the hidden matmul, and dropout masks,
on smaller models (H = 3) so that their finite-difference gradients stay cheap.
"""
from __future__ import annotations

import itertools

import numpy as np

from seqcore.model.dropout import draw_masks
from seqcore.model.params import init_params
from seqcore.model.spec import Activation, Bias, Cell, GRUReset, Impl, InputKind, Loss, ModelSpec, Readout

NUM_STEPS, BATCH, HIDDEN, VOCAB, FEATURES = 4, 3, 5, 7, 3
SPLIT = 2  # time steps in the first of the two forward calls that carry the state between them

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


SMALL_HIDDEN, DROPOUT = 3, 0.4
MODERN_CELLS = (Cell.RNN, Cell.GRU, Cell.LSTM)


def modern_spec(cell: Cell, impl: Impl, num_layers: int, readout: Readout, bidirectional: bool = False,
                gru_reset: GRUReset = GRUReset.AFTER, dropout: float = 0.0, bias: Bias = Bias.BOTH) -> ModelSpec:
    """A small model: one-hot LM for Readout.SEQUENCE, dense regression for Readout.LAST."""
    dense = readout is Readout.LAST
    return ModelSpec(cell=cell, impl=impl, hidden_size=SMALL_HIDDEN, num_layers=num_layers,
                     input_size=FEATURES if dense else VOCAB, output_size=2 if dense else VOCAB,
                     input_kind=InputKind.DENSE if dense else InputKind.ONEHOT, readout=readout,
                     bidirectional=bidirectional, gru_reset=gru_reset, dropout=dropout, bias=bias)


def modern_cases() -> list[tuple[str, ModelSpec, Loss]]:
    """Bidirectional, GRU reset-before and dropout cases; names say cell, impl, form, layers, readout."""
    found = []

    def add(form: str, spec: ModelSpec) -> None:
        name = f"{spec.cell.value}-{spec.impl.value}-{form}{spec.num_layers}-{spec.readout.value}"
        found.append((name, spec, Loss.MSE if spec.readout is Readout.LAST else Loss.CROSS_ENTROPY))

    for cell, impl, layers, readout in itertools.product(MODERN_CELLS, Impl, (1, 2), Readout):
        add("bi", modern_spec(cell, impl, layers, readout, bidirectional=True))
    for layers, readout, bidirectional in ((2, Readout.SEQUENCE, False), (1, Readout.LAST, True)):
        add("before-bi" if bidirectional else "before",
            modern_spec(Cell.GRU, Impl.SCRATCH, layers, readout, bidirectional, GRUReset.BEFORE))
    for cell, impl in itertools.product(MODERN_CELLS, Impl):
        for layers, readout, bidirectional in ((1, Readout.LAST, True), (2, Readout.SEQUENCE, False),
                                               (2, Readout.LAST, True)):
            add("dropout-bi" if bidirectional else "dropout",
                modern_spec(cell, impl, layers, readout, bidirectional, dropout=DROPOUT))
    add("dropout-before-bi", modern_spec(Cell.GRU, Impl.SCRATCH, 2, Readout.SEQUENCE, True,
                                         GRUReset.BEFORE, DROPOUT))
    # One bias per gate (no b_hh), the d2l book's scratch cells; the GRU with its reset gate before.
    for cell, reset in ((Cell.RNN, GRUReset.AFTER), (Cell.GRU, GRUReset.BEFORE), (Cell.GRU, GRUReset.AFTER),
                        (Cell.LSTM, GRUReset.AFTER)):
        add(f"inputbias-{reset.value}" if cell is Cell.GRU else "inputbias",
            modern_spec(cell, Impl.SCRATCH, 2, Readout.SEQUENCE, gru_reset=reset, bias=Bias.INPUT))
    return found


def all_cases() -> list[tuple[str, ModelSpec, Loss]]:
    cases = []
    for (cell, act), impl, index in itertools.product(CELLS, Impl, range(len(SHAPES))):
        name = f"{cell.value}-{act.value}-{impl.value}-{SHAPES[index][0].value}"
        cases.append((name, spec_for(cell, act, impl, index), SHAPES[index][2]))
    return cases + modern_cases()


def case_masks(spec: ModelSpec, seed: int = 5) -> list[np.ndarray] | None:
    """The dropout masks of a case's training call (seqcore.model.dropout), None without dropout."""
    return draw_masks(spec, np.random.default_rng(seed), NUM_STEPS, BATCH)


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
