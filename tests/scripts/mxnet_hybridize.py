"""MXNet only: each scratch cell gives the same step hybridized (a cached symbolic graph) as
imperatively, and both match the NumPy reference. Prints the worst differences as JSON."""
import functools
import json

import mxnet as mx
import numpy as np

from backends.mxnet import ScratchGRUCell, ScratchLSTMCell, ScratchRNNCell  # first: it readies NumPy for MXNet
from seqcore.model import reference
from seqcore.model.spec import GRUReset

rng = np.random.default_rng(0)
worst = {}
before = functools.partial(reference.gru_step, reset=GRUReset.BEFORE)
for name, make, step in (("rnn", ScratchRNNCell, reference.rnn_step), ("gru", ScratchGRUCell, reference.gru_step),
                         ("gru_before", lambda i, h: ScratchGRUCell(i, h, GRUReset.BEFORE), before),
                         ("lstm", ScratchLSTMCell, reference.lstm_step)):
    cell = make(3, 4)
    cell.initialize()
    weights = {k: rng.uniform(-0.5, 0.5, getattr(cell, k).shape).astype(np.float32)
               for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    for k, v in weights.items():
        getattr(cell, k).set_data(mx.np.array(v))
    x = rng.standard_normal((2, 3)).astype(np.float32)
    state = tuple(rng.standard_normal((2, 4)).astype(np.float32) for _ in range(2 if name == "lstm" else 1))
    imperative = [s.asnumpy() for s in cell(mx.np.array(x), tuple(mx.np.array(s) for s in state))]
    cell.hybridize()
    hybrid = [s.asnumpy() for s in cell(mx.np.array(x), tuple(mx.np.array(s) for s in state))]
    args = [weights[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    want = step(x, *state, *args)
    want = want if isinstance(want, tuple) else (want,)
    worst[name] = [float(max(np.abs(a - b).max() for a, b in zip(imperative, hybrid))),
                   float(max(np.abs(a - b).max() for a, b in zip(hybrid, want)))]
print(json.dumps(worst))
