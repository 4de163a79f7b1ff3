"""Recurrent cells written out from their equations (seqcore/model/reference.py) with mx.np / npx.

Each cell is a gluon HybridBlock holding the canonical parameters of one direction of one layer
(G gates: RNN 1, GRU 3, LSTM 4; canonical gate order LSTM i, f, g, o; GRU r, z, n):

    weight_ih (G*H, I)   weight_hh (G*H, H)   bias_ih (G*H,)   bias_hh (G*H,)

Calling a cell runs one time step, `cell(x, state) -> state`, x (N, I), state (h,) or (h, c)
of (N, H) each; it also works hybridized. A step is split into `_project` (the input half, which
does not depend on h) and `_recur` (the rest): ScratchRecurrent projects all T steps of a layer
in one matmul and then loops over `_recur`, leaving one (N, H) x (H, G*H) matmul per step.
The loop calls `cell.step`, `_recur` hybridized: one cached graph per step (LSTM: 0.45 -> 0.65 of
the fused layer's training speed on a 2-core CPU, docs/BENCHMARKS.md).
A reverse direction loops over the projected steps from t = T-1 down to 0 and stores its
outputs back in input time order.
Where the gates are xw + W_hh h (RNN and LSTM, `adds_recurrence`), d xw_t equals d gates_t, so
W_hh's gradient sum_t d gates_t^T h_{t-1} is formed once, from the projection's gradient, as one
(G*H, T*N) x (T*N, H) matmul (_RecurrentWeightGrad): the time loop multiplies by a detached W_hh,
and autograd no longer forms T thin (G*H, N) x (N, H) products and T accumulations.
`F` is the operator namespace gluon hands to hybrid_forward (mx.nd or mx.sym; ops via F.np/F.npx).
"""
from __future__ import annotations

import mxnet as mx
from mxnet import gluon

from seqcore.errors import SeqcoreError
from seqcore.model.params import DIRECTION_SUFFIXES
from seqcore.model.spec import GATES, Activation, Bias, Cell, GRUReset

_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class _ScratchCell(gluon.HybridBlock):
    num_gates = 1
    adds_recurrence = True  # gates = xw + W_hh h (+ b_hh), so d xw_t = d gates_t
    recur_weights = ("weight_hh",)  # what _recur reads besides xw and the state (b_hh is in xw)

    def __init__(self, input_size: int, hidden_size: int, bias: Bias | str = Bias.BOTH, **kwargs):
        super().__init__(**kwargs)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.has_hidden_bias = Bias(bias) is Bias.BOTH
        gh = self.gate_width
        with self.name_scope():  # values are loaded from canonical parameters; Zero is a placeholder
            self.weight_ih = self.params.get("weight_ih", shape=(gh, input_size), init=mx.init.Zero())
            self.weight_hh = self.params.get("weight_hh", shape=(gh, hidden_size), init=mx.init.Zero())
            self.bias_ih = self.params.get("bias_ih", shape=(gh,), init=mx.init.Zero())
            # bias INPUT (d2l's scratch cells): b_hh stays zero, without a gradient or an update
            self.bias_hh = self.params.get("bias_hh", shape=(gh,), init=mx.init.Zero(),
                                           grad_req="write" if self.has_hidden_bias else "null")
            self.step = _Step(self._recur)  # _recur hybridized, for ScratchRecurrent's time loop

    def forward(self, x, state):
        """One time step from inputs (N, I): the new state, whose first entry is the output h."""
        return tuple(super().forward(x, tuple(state)))  # hybridized Gluon hands back a list

    def hybrid_forward(self, F, x, state, weight_ih, weight_hh, bias_ih, bias_hh):
        xw = self._project(F, x, weight_ih, bias_ih, bias_hh)  # (N, G*H)
        return self._recur(F, xw, state, weight_hh, bias_hh)

    def _project(self, F, x, weight_ih, bias_ih, bias_hh):
        """Input half of the gates, (..., I) -> (..., G*H); RNN and LSTM fold both biases in here."""
        return _linear(F, x, weight_ih, self.gate_width, bias_ih + bias_hh)

    @property
    def gate_width(self) -> int:
        return self.num_gates * self.hidden_size

    def _gate(self, F, a, k):
        """Gate block k of (N, G*H) -> (N, H); npx.slice is ~2x cheaper than np.split here."""
        return F.npx.slice(a, begin=(None, k * self.hidden_size), end=(None, (k + 1) * self.hidden_size))


class ScratchRNNCell(_ScratchCell):
    """h' = act(W_ih x + b_ih + W_hh h + b_hh), act tanh or relu (given explicitly)."""
    num_gates = GATES[Cell.RNN]

    def __init__(self, input_size: int, hidden_size: int, activation: Activation | str = Activation.TANH,
                 bias: Bias | str = Bias.BOTH, **kwargs):
        super().__init__(input_size, hidden_size, bias, **kwargs)
        self.activation = Activation(activation)

    def _recur(self, F, xw, state, weight_hh, bias_hh=None):
        z = xw + _linear(F, state[0], weight_hh, self.gate_width)  # (N, H); both biases are in xw
        return (_act(F, z, self.activation.value),)


class ScratchGRUCell(_ScratchCell):
    """r, z = sigma(...); h' = (1 - z) n + z h, with the reset gate (seqcore.model.spec.GRUReset)
    AFTER:  n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    BEFORE: n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)."""
    num_gates = GATES[Cell.GRU]
    adds_recurrence = False  # b_hn and W_hn h sit inside r * (...)
    recur_weights = ("weight_hh", "bias_hh")

    def __init__(self, input_size: int, hidden_size: int, reset: GRUReset | str = GRUReset.AFTER,
                 bias: Bias | str = Bias.BOTH, **kwargs):
        super().__init__(input_size, hidden_size, bias, **kwargs)
        self.reset = GRUReset(reset)

    def _project(self, F, x, weight_ih, bias_ih, bias_hh):
        # b_hn must stay inside r * (W_hn h + b_hn): only b_ih is folded into the input half.
        return _linear(F, x, weight_ih, self.gate_width, bias_ih)

    def _recur(self, F, xw, state, weight_hh, bias_hh):
        h = state[0]
        if self.reset is GRUReset.BEFORE:
            cut, size = 2 * self.hidden_size, self.hidden_size  # rows of W_hr, W_hz above W_hn
            hw = _linear(F, h, _rows(F, weight_hh, 0, cut), cut, _rows(F, bias_hh, 0, cut))  # (N, 2H)
            r = _act(F, self._gate(F, xw, 0) + self._gate(F, hw, 0), "sigmoid")
            hn = _linear(F, r * h, _rows(F, weight_hh, cut, cut + size), size,
                         _rows(F, bias_hh, cut, cut + size))  # (N, H)
            n = _act(F, self._gate(F, xw, 2) + hn, "tanh")
        else:
            hw = _linear(F, h, weight_hh, self.gate_width, bias_hh)  # (N, 3H)
            r = _act(F, self._gate(F, xw, 0) + self._gate(F, hw, 0), "sigmoid")
            n = _act(F, self._gate(F, xw, 2) + r * self._gate(F, hw, 2), "tanh")
        z = _act(F, self._gate(F, xw, 1) + self._gate(F, hw, 1), "sigmoid")
        return (n + z * (h - n),)  # = (1 - z) * n + z * h


class ScratchLSTMCell(_ScratchCell):
    """c' = f c + i g, h' = o tanh(c'), with i, f, o = sigma(...), g = tanh(...)."""
    num_gates = GATES[Cell.LSTM]

    def __init__(self, input_size: int, hidden_size: int, bias: Bias | str = Bias.BOTH, **kwargs):
        super().__init__(input_size, hidden_size, bias, **kwargs)

    def _recur(self, F, xw, state, weight_hh, bias_hh=None):
        h, c = state
        gates = xw + _linear(F, h, weight_hh, self.gate_width)  # (N, 4H); both biases are in xw
        i, f, g, o = (self._gate(F, gates, k) for k in range(4))
        c = _act(F, f, "sigmoid") * c + _act(F, i, "sigmoid") * _act(F, g, "tanh")
        return _act(F, o, "sigmoid") * _act(F, c, "tanh"), c


class _Step(gluon.HybridBlock):
    """One time step of a cell's recurrence, `cell._recur(F, xw, state, *weights)`, hybridized
    (a cached graph, static_alloc and static_shape): one call into MXNet per step where the
    imperative step made ~15 operator calls from Python (LSTM), each with its own dispatch cost.
    It holds no parameters: W_hh (detached when its gradient is hoisted) and, for the GRU, b_hh
    come in as inputs (cell.recur_weights), so it holds the bound method, not the cell."""

    def __init__(self, recur, **kwargs):
        super().__init__(**kwargs)
        self._recur = recur
        self.hybridize(static_alloc=True, static_shape=True)

    def forward(self, xw, state, weights):
        return tuple(super().forward(xw, tuple(state), tuple(weights)))  # hybridized Gluon hands back a list

    def hybrid_forward(self, F, xw, state, weights):
        return self._recur(F, xw, state, *weights)


def _linear(F, x, weight, num_hidden: int, bias=None):
    """x W^T (+ b) over the last axis, without materialising W^T (np.dot(x, W.T) copies W).
    num_hidden = weight's rows, given because a hybridized graph's symbols have no shape."""
    if bias is None:
        return F.npx.fully_connected(x, weight, num_hidden=num_hidden, no_bias=True, flatten=False)
    return F.npx.fully_connected(x, weight, bias, num_hidden=num_hidden, flatten=False)


def _rows(F, x, start: int, stop: int):
    """Rows start:stop of a weight (G*H, I) or bias (G*H,); works on hybridized symbols too."""
    return F.npx.slice(x, begin=(start,), end=(stop,))


def _act(F, x, kind: str):
    """sigmoid / tanh / relu via npx.activation: several times faster on CPU than npx.sigmoid or
    np.tanh in MXNet 1.9.1 (oneDNN kernels), same values."""
    return F.npx.activation(x, act_type=kind)


def _unstack(x) -> list:
    """(T, ...) -> T arrays (...). The legacy SliceChannel op: its backward is one concatenation,
    where T slices x[t] cost O(T^2) (each writes a zero-padded gradient) and mx.np.split is
    ~2x slower in MXNet 1.9.1. Gradients flow through as_nd_ndarray / as_np_ndarray."""
    if x.shape[0] == 1:
        return [x[0]]
    pieces = mx.nd.split(x.as_nd_ndarray(), num_outputs=x.shape[0], axis=0, squeeze_axis=True)
    return [piece.as_np_ndarray() for piece in pieces]


class _RecurrentWeightGrad(mx.autograd.Function):
    """Identity on a layer's projected inputs xw (T, N, G*H) whose backward also returns W_hh's
    gradient, sum_t dxw_t^T h_{t-1}, as one matmul: exact for cells with `adds_recurrence`,
    whose d gates_t is d xw_t. `previous` is set once the time loop has run: h_{t-1} of every
    step in input time order, (T, N, H), detached. One instance per call (it holds `previous`)."""

    def __init__(self):
        super().__init__()
        self.previous = None

    def forward(self, xw, weight_hh):
        return xw.copy()  # a Function's output must be a new array

    def backward(self, dxw):  # legacy NDArrays in and out, as mx.autograd.Function hands them
        previous = self.previous.as_nd_ndarray()
        flat = dxw.reshape((-1, dxw.shape[-1]))  # (T*N, G*H)
        return dxw, mx.nd.dot(flat, previous.reshape((-1, previous.shape[-1])), transpose_a=True)


def make_cell(cell: Cell | str, input_size: int, hidden_size: int,
              activation: Activation | str = Activation.TANH,
              gru_reset: GRUReset | str = GRUReset.AFTER, bias: Bias | str = Bias.BOTH) -> _ScratchCell:
    """The scratch cell for `cell`; `activation` only matters for the plain RNN, `gru_reset`
    only for the GRU; bias INPUT leaves b_hh out (a zero parameter without gradient)."""
    cell = Cell(cell)
    if cell is Cell.RNN:
        return ScratchRNNCell(input_size, hidden_size, activation, bias)
    if cell is Cell.GRU:
        return ScratchGRUCell(input_size, hidden_size, gru_reset, bias)
    return ScratchLSTMCell(input_size, hidden_size, bias)


class ScratchRecurrent(gluon.Block):
    """A stack of scratch cells run over time: (T, N, I), state of (L*D, N, H) -> (T, N, D*H), state.

    With bidirectional=True each layer has a forward cell `l{k}` and a reverse cell `r{k}` (Gluon's
    fused naming); cells and state entries are indexed layer*D + direction, D = 2.
    A plain Block: the time loop needs T, which a hybridized (symbolic) graph does not know; each
    step inside it is a hybridized graph (the cells' `step`).
    """

    def __init__(self, cell: Cell | str, input_size: int, hidden_size: int, num_layers: int,
                 activation: Activation | str = Activation.TANH, bidirectional: bool = False,
                 gru_reset: GRUReset | str = GRUReset.AFTER, compiled: bool = False,
                 bias: Bias | str = Bias.BOTH, **kwargs):
        super().__init__(**kwargs)
        if compiled:  # the signature mirrors PyTorch's ScratchRecurrent
            raise SeqcoreError("compiled=True is PyTorch's torch.compile of the scratch time loop; "
                               "MXNet has no counterpart.")
        self.cell = Cell(cell)
        self.num_layers = num_layers
        self.num_directions = 2 if bidirectional else 1
        with self.name_scope():
            for layer in range(num_layers):
                width = input_size if layer == 0 else self.num_directions * hidden_size
                for prefix in "lr"[:self.num_directions]:
                    self.register_child(make_cell(self.cell, width, hidden_size, activation, gru_reset, bias),
                                        f"{prefix}{layer}")

    def cells(self) -> list[_ScratchCell]:
        """The cells, bottom layer first, forward before reverse (index layer*D + direction)."""
        return [self._children[f"{prefix}{layer}"] for layer in range(self.num_layers)
                for prefix in "lr"[:self.num_directions]]

    def parameter_map(self) -> dict[str, gluon.Parameter]:
        """Gluon parameters by canonical name without the `rnn.` prefix: l{k}.weight_ih ...
        (l{k}.weight_ih_reverse ... for the reverse cells)."""
        found = {}
        for index, cell in enumerate(self.cells()):
            k, direction = divmod(index, self.num_directions)
            for name in _WEIGHTS if cell.has_hidden_bias else _WEIGHTS[:3]:  # bias INPUT: no b_hh
                found[f"l{k}.{name}{DIRECTION_SUFFIXES[direction]}"] = getattr(cell, name)
        return found

    def forward(self, inputs, state, masks=None):
        """inputs (T, N, I), state of (L*D, N, H) -> outputs (T, N, D*H) of the top layer, new state.

        masks: (T, N, D*H) dropout masks multiplying the inputs of layers 1 .. L-1, or None.
        """
        ctx = inputs.ctx
        cells = self.cells()
        layer_input = inputs  # (T, N, I_k)
        final = []  # per layer*D + direction: (h,) or (h, c), each (N, H)
        for k in range(self.num_layers):
            if masks is not None and k > 0:
                layer_input = layer_input * masks[k - 1]
            halves = []
            for direction in range(self.num_directions):
                index = k * self.num_directions + direction
                cell = cells[index]
                w_ih, w_hh, b_ih, b_hh = (getattr(cell, name).data(ctx) for name in _WEIGHTS)
                projected = cell._project(mx.nd, layer_input, w_ih, b_ih, b_hh)  # (T, N, G*H): one matmul
                weight_grad = None
                if cell.adds_recurrence and mx.autograd.is_recording() and cell.weight_hh.grad_req != "null":
                    weight_grad = _RecurrentWeightGrad()
                    projected = weight_grad(projected, w_hh)
                    w_hh = w_hh.detach()
                recur_weights = tuple({"weight_hh": w_hh, "bias_hh": b_hh}[name] for name in cell.recur_weights)
                steps = _unstack(projected)  # (N, G*H) each
                if direction == 1:
                    steps.reverse()  # the reverse direction reads t = T-1 first
                layer_state = tuple(part[index] for part in state)
                outputs, inputs_h = [], []
                for step_input in steps:
                    if weight_grad is not None:
                        inputs_h.append(layer_state[0])
                    layer_state = cell.step(step_input, layer_state, recur_weights)
                    outputs.append(layer_state[0])
                if direction == 1:
                    outputs.reverse()  # back to input time order
                    inputs_h.reverse()
                if weight_grad is not None:
                    weight_grad.previous = mx.np.stack(inputs_h).detach()  # h_{t-1} of step t, (T, N, H)
                halves.append(mx.np.stack(outputs))  # (T, N, H)
                final.append(layer_state)
            layer_input = halves[0] if len(halves) == 1 else mx.np.concatenate(halves, axis=-1)
        new_state = tuple(mx.np.stack([entry[i] for entry in final]) for i in range(len(state)))
        return layer_input, new_state  # (T, N, D*H), (L*D, N, H) each
