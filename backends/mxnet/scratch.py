"""Recurrent cells written out from their equations (seqcore/reference.py) with mx.np / npx.

Each cell is a gluon HybridBlock holding the canonical parameters of one layer
(G gates: RNN 1, GRU 3, LSTM 4; canonical gate order LSTM i, f, g, o; GRU r, z, n):

    weight_ih (G*H, I)   weight_hh (G*H, H)   bias_ih (G*H,)   bias_hh (G*H,)

Calling a cell runs one time step, `cell(x, state) -> state`, x (N, I), state (h,) or (h, c)
of (N, H) each; it also works hybridized. A step is split into `project` (the input half, which
does not depend on h) and `recur` (the rest): ScratchRecurrent projects all T steps of a layer
in one matmul and then loops over `recur`, the d2l scratch models' main cost cut by half.
`F` is the operator namespace gluon hands to hybrid_forward (mx.nd or mx.sym; ops via F.np/F.npx).
"""
from __future__ import annotations

import mxnet as mx
from mxnet import gluon

from seqcore.specs import GATES, Activation, Cell

_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class _ScratchCell(gluon.HybridBlock):
    num_gates = 1

    def __init__(self, input_size: int, hidden_size: int, **kwargs):
        super().__init__(**kwargs)
        self.input_size, self.hidden_size = input_size, hidden_size
        gh = self.num_gates * hidden_size
        with self.name_scope():  # values are loaded from canonical parameters; Zero is a placeholder
            self.weight_ih = self.params.get("weight_ih", shape=(gh, input_size), init=mx.init.Zero())
            self.weight_hh = self.params.get("weight_hh", shape=(gh, hidden_size), init=mx.init.Zero())
            self.bias_ih = self.params.get("bias_ih", shape=(gh,), init=mx.init.Zero())
            self.bias_hh = self.params.get("bias_hh", shape=(gh,), init=mx.init.Zero())

    def forward(self, x, state):
        return tuple(super().forward(x, tuple(state)))  # hybridized Gluon hands back a list

    def hybrid_forward(self, F, x, state, weight_ih, weight_hh, bias_ih, bias_hh):
        return self.recur(F, self.project(F, x, weight_ih, bias_ih, bias_hh), state, weight_hh, bias_hh)

    def project(self, F, x, weight_ih, bias_ih, bias_hh):
        """Input half of the gates, (..., I) -> (..., G*H); RNN and LSTM fold both biases in here."""
        return F.npx.fully_connected(x, weight_ih, bias_ih + bias_hh, num_hidden=self.num_gates * self.hidden_size,
                                     flatten=False)

    def _hidden(self, F, h, weight_hh, bias=None):
        """W_hh h (+ bias): (N, H) -> (N, G*H)."""
        gh = self.num_gates * self.hidden_size
        if bias is None:
            return F.npx.fully_connected(h, weight_hh, num_hidden=gh, no_bias=True, flatten=False)
        return F.npx.fully_connected(h, weight_hh, bias, num_hidden=gh, flatten=False)


class ScratchRNNCell(_ScratchCell):
    """h' = act(W_ih x + b_ih + W_hh h + b_hh), act tanh or relu (given explicitly)."""
    num_gates = GATES[Cell.RNN]

    def __init__(self, input_size: int, hidden_size: int, activation: Activation | str = Activation.TANH,
                 **kwargs):
        super().__init__(input_size, hidden_size, **kwargs)
        self.activation = Activation(activation)

    def recur(self, F, xw, state, weight_hh, bias_hh):
        z = xw + self._hidden(F, state[0], weight_hh)  # (N, H); both biases are in xw
        return (F.np.tanh(z) if self.activation is Activation.TANH else F.npx.relu(z),)


class ScratchGRUCell(_ScratchCell):
    """r, z = sigma(...); n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); h' = (1 - z) n + z h."""
    num_gates = GATES[Cell.GRU]

    def project(self, F, x, weight_ih, bias_ih, bias_hh):
        # b_hn must stay inside r * (...), so only b_ih is folded into the input half.
        return F.npx.fully_connected(x, weight_ih, bias_ih, num_hidden=3 * self.hidden_size, flatten=False)

    def recur(self, F, xw, state, weight_hh, bias_hh):
        h = state[0]
        xr, xz, xn = F.np.split(xw, 3, axis=-1)  # (N, H) each
        hr, hz, hn = F.np.split(self._hidden(F, h, weight_hh, bias_hh), 3, axis=-1)
        r = F.npx.sigmoid(xr + hr)
        z = F.npx.sigmoid(xz + hz)
        n = F.np.tanh(xn + r * hn)
        return (n + z * (h - n),)  # = (1 - z) * n + z * h


class ScratchLSTMCell(_ScratchCell):
    """c' = f c + i g, h' = o tanh(c'), with i, f, o = sigma(...), g = tanh(...)."""
    num_gates = GATES[Cell.LSTM]

    def recur(self, F, xw, state, weight_hh, bias_hh):
        h, c = state
        i, f, g, o = F.np.split(xw + self._hidden(F, h, weight_hh), 4, axis=-1)  # (N, H) each
        c = F.npx.sigmoid(f) * c + F.npx.sigmoid(i) * F.np.tanh(g)
        return F.npx.sigmoid(o) * F.np.tanh(c), c


def make_cell(cell: Cell | str, input_size: int, hidden_size: int,
              activation: Activation | str = Activation.TANH) -> _ScratchCell:
    cell = Cell(cell)
    if cell is Cell.RNN:
        return ScratchRNNCell(input_size, hidden_size, activation)
    return (ScratchGRUCell if cell is Cell.GRU else ScratchLSTMCell)(input_size, hidden_size)


class ScratchRecurrent(gluon.Block):
    """A stack of scratch cells run over time: (T, N, I), state of (L, N, H) -> (T, N, H), state.

    A plain Block: the time loop needs T, which a hybridized (symbolic) graph does not know.
    """

    def __init__(self, cell: Cell | str, input_size: int, hidden_size: int, num_layers: int = 1,
                 activation: Activation | str = Activation.TANH, **kwargs):
        super().__init__(**kwargs)
        self.cell = Cell(cell)
        self.num_layers = num_layers
        with self.name_scope():
            for layer in range(num_layers):
                width = input_size if layer == 0 else hidden_size
                self.register_child(make_cell(self.cell, width, hidden_size, activation), f"l{layer}")

    def cells(self) -> list[_ScratchCell]:
        return [self._children[f"l{layer}"] for layer in range(self.num_layers)]

    def parameter_map(self) -> dict[str, gluon.Parameter]:
        """Gluon parameters by canonical name without the `rnn.` prefix: l{k}.weight_ih ..."""
        return {f"l{k}.{name}": getattr(cell, name) for k, cell in enumerate(self.cells()) for name in _WEIGHTS}

    def forward(self, inputs, state):
        # Time steps are cut apart with one split per layer, not T slices: the backward of a
        # slice writes a zero-padded (T, N, G*H) gradient per step, which costs O(T^2).
        # Every per-step array keeps a leading axis of 1, (1, N, .), so the pieces concatenate.
        ctx, num_steps = inputs.ctx, inputs.shape[0]
        layer_input = inputs  # (T, N, I_k)
        final = []  # per layer: (h,) or (h, c), each (1, N, H)
        for k, cell in enumerate(self.cells()):
            w_ih, w_hh, b_ih, b_hh = (getattr(cell, name).data(ctx) for name in _WEIGHTS)
            projected = cell.project(mx.nd, layer_input, w_ih, b_ih, b_hh)  # (T, N, G*H), one matmul
            layer_state = tuple(part[k:k + 1] for part in state)  # (1, N, H) each
            outputs = []
            for step_input in mx.np.split(projected, num_steps, axis=0):  # (1, N, G*H) each
                layer_state = cell.recur(mx.nd, step_input, layer_state, w_hh, b_hh)
                outputs.append(layer_state[0])
            layer_input = mx.np.concatenate(outputs)  # (T, N, H)
            final.append(layer_state)
        new_state = tuple(mx.np.concatenate([layer[i] for layer in final]) for i in range(len(state)))
        return layer_input, new_state  # (T, N, H), (L, N, H) each
