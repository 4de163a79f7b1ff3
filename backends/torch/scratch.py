"""Recurrent cells written out from their equations with plain tensor ops (seqcore/model/reference.py).

Every cell holds the canonical parameters of one direction of one layer, weight_ih (G*H, I),
weight_hh (G*H, H), bias_ih (G*H,), bias_hh (G*H,), with the gate order of PyTorch and Gluon
(LSTM i, f, g, o; GRU r, z, n). A step takes the input projection W_ih x + b_ih (+ b_hh for
the RNN and LSTM, whose hidden bias can be added ahead; the GRU's b_hn sits inside r * (...)) already
computed: the stack projects all T steps of a layer in one matmul before its time loop, which
leaves one (N, H) x (H, G*H) matmul per step on the sequential path. A reverse direction runs
the same loop over the projected steps from t = T-1 down to 0 and stores its outputs back in
input time order.

Where the gates are xw + W_hh h (RNN and LSTM, `adds_recurrence`), d xw_t equals d gates_t, so
W_hh's gradient sum_t d gates_t^T h_{t-1} is formed once, from the projection's gradient, as one
(G*H, T*N) x (T*N, H) matmul (_RecurrentWeightGrad): the time loop multiplies by a detached W_hh,
and autograd no longer forms T thin (G*H, N) x (N, H) products and T accumulations.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqcore.errors import SeqcoreError
from seqcore.model.params import DIRECTION_SUFFIXES
from seqcore.model.spec import GATES, Activation, Bias, Cell, GRUReset

State = tuple[torch.Tensor, ...]  # (h,) or (h, c), each (N, H) for a cell, (L*D, N, H) for a stack


class _ScratchCell(nn.Module):
    num_gates = 1
    adds_recurrence = True  # gates = xw + W_hh h (+ b_hh), so d xw_t = d gates_t

    def __init__(self, input_size: int, hidden_size: int, bias: Bias | str = Bias.BOTH) -> None:
        super().__init__()
        width = self.num_gates * hidden_size
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(width, input_size))
        self.weight_hh = nn.Parameter(torch.empty(width, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(width))
        if Bias(bias) is Bias.BOTH:
            self.bias_hh = nn.Parameter(torch.empty(width))
        else:  # one bias per gate (d2l's scratch cells): b_hh a constant zero, not a parameter
            self.register_buffer("bias_hh", torch.zeros(width))
        # PyTorch's default, so a bare cell is usable; models load canonical values over it.
        bound = 1.0 / math.sqrt(hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        """(..., I) -> (..., G*H): W_ih x + b_ih, for any number of leading (time, batch) axes."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def forward(self, x: torch.Tensor, state: State) -> State:
        """One time step from inputs (N, I): the new state, whose first entry is the output h."""
        return self._recur(self._project(x), state, self.weight_hh)

    def _recur(self, xw: torch.Tensor, state: State, weight_hh: torch.Tensor) -> State:
        """The rest of one step, from xw = _project(x) (N, G*H), the state and W_hh (G*H, H)
        (the stack may hand in a detached W_hh, see _RecurrentWeightGrad)."""
        raise NotImplementedError


class ScratchRNNCell(_ScratchCell):
    """h' = act(W_ih x + b_ih + W_hh h + b_hh)."""

    num_gates = GATES[Cell.RNN]

    def __init__(self, input_size: int, hidden_size: int,
                 activation: Activation | str = Activation.TANH, bias: Bias | str = Bias.BOTH) -> None:
        super().__init__(input_size, hidden_size, bias)
        self.activation = Activation(activation)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        """W_ih x + (b_ih + b_hh): both biases added once for all steps, not once per step."""
        return F.linear(x, self.weight_ih, self.bias_ih + self.bias_hh)

    def _recur(self, xw: torch.Tensor, state: State, weight_hh: torch.Tensor) -> State:
        z = torch.addmm(xw, state[0], weight_hh.t())  # (N, H)
        return (torch.tanh(z) if self.activation is Activation.TANH else torch.relu(z),)


class ScratchGRUCell(_ScratchCell):
    """Gates r, z, n; h' = (1 - z) n + z h, with the reset gate (seqcore.model.spec.GRUReset)
    AFTER:  n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    BEFORE: n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)."""

    num_gates = GATES[Cell.GRU]
    adds_recurrence = False  # b_hn and W_hn h sit inside r * (...)

    def __init__(self, input_size: int, hidden_size: int, reset: GRUReset | str = GRUReset.AFTER,
                 bias: Bias | str = Bias.BOTH) -> None:
        super().__init__(input_size, hidden_size, bias)
        self.reset = GRUReset(reset)

    def _recur(self, xw: torch.Tensor, state: State, weight_hh: torch.Tensor) -> State:
        h = state[0]
        xr, xz, xn = xw.chunk(3, dim=-1)  # (N, H) each
        if self.reset is GRUReset.BEFORE:
            cut = 2 * self.hidden_size  # rows of W_hr, W_hz above W_hn
            hr, hz = F.linear(h, weight_hh[:cut], self.bias_hh[:cut]).chunk(2, dim=-1)
            r = torch.sigmoid(xr + hr)
            hn = F.linear(r * h, weight_hh[cut:], self.bias_hh[cut:])  # (N, H)
            n = torch.tanh(xn + hn)
            z = torch.sigmoid(xz + hz)
            return ((1.0 - z) * n + z * h,)
        return (_GRUGates.apply(xw, torch.addmm(self.bias_hh, h, weight_hh.t()), h),)


class _GRUGates(torch.autograd.Function):
    """The reset-after GRU's gate arithmetic as one autograd node (see _LSTMGates for why).

    xw = W_ih x + b_ih and hh = W_hh h + b_hh, (N, 3H) each, and h (N, H) -> h' (N, H).
    """

    @staticmethod
    def forward(ctx, xw: torch.Tensor, hh: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        xr, xz, xn = xw.chunk(3, dim=-1)
        hr, hz, hn = hh.chunk(3, dim=-1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(torch.addcmul(xn, r, hn))
        ctx.save_for_backward(r, z, n, hn, h)
        return torch.lerp(n, h, z)  # (1 - z) n + z h

    @staticmethod
    def backward(ctx, dh_new: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r, z, n, hn, h = ctx.saved_tensors
        dn = dh_new * (1 - z) * (1 - n * n)  # through tanh, on its pre-activation
        dr = dn * hn * r * (1 - r)
        dz = dh_new * (h - n) * z * (1 - z)
        return torch.cat([dr, dz, dn], dim=-1), torch.cat([dr, dz, dn * r], dim=-1), dh_new * z


class ScratchLSTMCell(_ScratchCell):
    """Gates i, f, g, o: c' = f*c + i*g, h' = o*tanh(c')."""

    num_gates = GATES[Cell.LSTM]

    def __init__(self, input_size: int, hidden_size: int, bias: Bias | str = Bias.BOTH) -> None:
        super().__init__(input_size, hidden_size, bias)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        """W_ih x + (b_ih + b_hh): both biases added once for all steps, not once per step."""
        return F.linear(x, self.weight_ih, self.bias_ih + self.bias_hh)

    def _recur(self, xw: torch.Tensor, state: State, weight_hh: torch.Tensor) -> State:
        h, c = state
        return _LSTMGates.apply(torch.addmm(xw, h, weight_hh.t()), c)  # gates (N, 4H)


class _LSTMGates(torch.autograd.Function):
    """The LSTM's gate arithmetic as one autograd node, its backward written out.

    Ten elementwise ops per step each cost an autograd node and a kernel launch; for the model
    sizes of the book that overhead, not the arithmetic, bounds a scratch LSTM (0.3x nn.LSTM on
    the CPU before, see docs/BENCHMARKS.md). Equations as in ScratchLSTMCell; shapes (N, 4H), (N, H).
    """

    @staticmethod
    def forward(ctx, gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i, f, g, o = gates.chunk(4, dim=-1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c_new = torch.addcmul(f * c, i, g)
        tanh_c = torch.tanh(c_new)
        ctx.save_for_backward(i, f, g, o, c, tanh_c)
        return o * tanh_c, c_new

    @staticmethod
    def backward(ctx, dh: torch.Tensor, dc_new: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i, f, g, o, c, tanh_c = ctx.saved_tensors
        dc = dc_new + dh * o * (1 - tanh_c * tanh_c)  # through h' = o tanh(c') and the carried c'
        # sigmoid' = s (1 - s), tanh' = 1 - t^2, on the pre-activations of i, f, g, o
        dgates = torch.cat([dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g * g),
                            dh * tanh_c * o * (1 - o)], dim=-1)
        return dgates, dc * f


class _RecurrentWeightGrad(torch.autograd.Function):
    """Identity on a layer's projected inputs xw (T, N, G*H) whose backward also returns W_hh's
    gradient, sum_t dxw_t^T h_{t-1}, as one matmul: exact for cells with `adds_recurrence`,
    whose d gates_t is d xw_t. `previous` is a list the time loop fills once it has run, with
    h_{t-1} of every step in input time order, (T, N, H), detached."""

    @staticmethod
    def forward(ctx, xw: torch.Tensor, weight_hh: torch.Tensor, previous: list) -> torch.Tensor:
        ctx.previous = previous
        return xw.view_as(xw)

    @staticmethod
    def backward(ctx, dxw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        (previous,) = ctx.previous
        return dxw, dxw.flatten(0, 1).t() @ previous.flatten(0, 1), None  # (G*H, T*N) x (T*N, H)


def _scan(cell: _ScratchCell, xw: torch.Tensor, state: State, reverse: bool,
          hoist_weight_grad: bool) -> tuple[torch.Tensor, State]:
    """One direction of one layer over time: xw = cell._project(inputs) (T, N, G*H) and the
    state (N, H) each -> outputs (T, N, H) in input time order, final state. `reverse` reads
    t = T-1 first. hoist_weight_grad: W_hh's gradient through _RecurrentWeightGrad, where it
    applies and gradients are recorded."""
    weight_hh, previous = cell.weight_hh, None
    if hoist_weight_grad and cell.adds_recurrence and torch.is_grad_enabled() and weight_hh.requires_grad:
        previous = []
        xw = _RecurrentWeightGrad.apply(xw, weight_hh, previous)
        weight_hh = weight_hh.detach()
    # unbind, not xw[t]: indexing would make each step's backward write a whole (T, N, G*H) gradient.
    steps = xw.unbind(0)
    outputs: list[torch.Tensor] = [None] * len(steps)  # type: ignore[list-item]
    inputs_h: list[torch.Tensor] = [None] * len(steps)  # type: ignore[list-item]
    for t in (range(len(steps) - 1, -1, -1) if reverse else range(len(steps))):
        if previous is not None:
            inputs_h[t] = state[0]
        state = cell._recur(steps[t], state, weight_hh)
        outputs[t] = state[0]
    if previous is not None:
        previous.append(torch.stack(inputs_h).detach())  # h_{t-1} of step t, (T, N, H)
    return torch.stack(outputs), state


def _compiled_scan(cell: _ScratchCell, xw: torch.Tensor, state: State,
                   reverse: bool) -> tuple[torch.Tensor, State]:
    """_scan through torch.compile (Inductor: the T steps' gate arithmetic fused into a few
    kernels, forward and backward; W_hh's gradient is the compiler's, not hoisted). One compile
    per cell kind, direction and (T, N) shape, shared by cells of the same sizes; a failure to
    compile (no C++ compiler, no Triton on a GPU) is one sentence."""
    global _COMPILED
    if _COMPILED is None:
        _COMPILED = torch.compile(_scan, dynamic=False)
    try:
        return _COMPILED(cell, xw, state, reverse, hoist_weight_grad=False)
    except torch._dynamo.exc.TorchDynamoException as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SeqcoreError(f"torch.compile could not compile the scratch recurrence on this machine "
                           f"({first[:200]}); run without --compile.") from None


_COMPILED = None  # torch.compile(_scan), made on first use


def make_cell(cell: Cell | str, input_size: int, hidden_size: int,
              activation: Activation | str = Activation.TANH,
              gru_reset: GRUReset | str = GRUReset.AFTER, bias: Bias | str = Bias.BOTH) -> _ScratchCell:
    """The scratch cell for `cell`; `activation` only matters for the plain RNN, `gru_reset`
    only for the GRU; bias INPUT leaves b_hh out (a zero buffer, not trained)."""
    cell = Cell(cell)
    if cell is Cell.RNN:
        return ScratchRNNCell(input_size, hidden_size, activation, bias)
    if cell is Cell.GRU:
        return ScratchGRUCell(input_size, hidden_size, gru_reset, bias)
    return ScratchLSTMCell(input_size, hidden_size, bias)


class ScratchRecurrent(nn.Module):
    """A stack of `num_layers` scratch cells run over time, time-major like nn.RNN.

    With bidirectional=True each layer has a forward and a reverse cell; cells (and state
    entries) are indexed layer*D + direction, D = 2, as PyTorch and Gluon index their states.
    compiled=True runs each layer's time loop, while training, through torch.compile (_compiled_scan).
    """

    def __init__(self, cell: Cell | str, input_size: int, hidden_size: int, num_layers: int,
                 activation: Activation | str = Activation.TANH, bidirectional: bool = False,
                 gru_reset: GRUReset | str = GRUReset.AFTER, compiled: bool = False,
                 bias: Bias | str = Bias.BOTH) -> None:
        super().__init__()
        self.compiled = compiled  # training runs each layer's time loop through torch.compile
        self.num_directions = 2 if bidirectional else 1
        width = self.num_directions * hidden_size  # inputs of layers k >= 1
        self.layers = nn.ModuleList(
            make_cell(cell, input_size if k == 0 else width, hidden_size, activation, gru_reset, bias)
            for k in range(num_layers) for _ in range(self.num_directions))

    def forward(self, inputs: torch.Tensor, state: State,
                masks: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, State]:
        """inputs (T, N, I), state of (L*D, N, H) -> outputs (T, N, D*H) of the top layer, new state.

        masks: (T, N, D*H) dropout masks multiplying the inputs of layers 1 .. L-1, or None.
        """
        # Compiled only while gradients are recorded (training): evaluation and generation, with
        # their other shapes (one token at a time), stay eager rather than wait for a compile.
        compiled = self.compiled and torch.is_grad_enabled()
        layer_input = inputs
        finals: list[State] = []  # per layer*D + direction: its last (h,) or (h, c), each (N, H)
        for k in range(len(self.layers) // self.num_directions):
            if masks is not None and k > 0:
                layer_input = layer_input * masks[k - 1]
            halves = []
            for direction in range(self.num_directions):
                index = k * self.num_directions + direction
                cell = self.layers[index]
                s = tuple(part[index] for part in state)
                xw = cell._project(layer_input)  # (T, N, G*H): every step in one matmul
                if compiled:
                    outputs, s = _compiled_scan(cell, xw, s, direction == 1)
                else:
                    outputs, s = _scan(cell, xw, s, direction == 1, hoist_weight_grad=True)
                halves.append(outputs)  # (T, N, H) in input time order
                finals.append(s)
            layer_input = halves[0] if len(halves) == 1 else torch.cat(halves, dim=-1)  # (T, N, D*H)
        return layer_input, tuple(torch.stack(parts) for parts in zip(*finals))

    def cells(self) -> list[_ScratchCell]:
        """The cells, bottom layer first, forward before reverse (index layer*D + direction)."""
        return list(self.layers)

    def parameter_map(self) -> dict[str, nn.Parameter]:
        """Parameters keyed 'l{k}.weight_ih' ('l{k}.weight_ih_reverse' ...) as in seqcore.model.params,
        without the 'rnn.' prefix."""
        found = {}
        for index, cell in enumerate(self.layers):
            k, direction = divmod(index, self.num_directions)
            for name, value in cell.named_parameters():
                found[f"l{k}.{name}{DIRECTION_SUFFIXES[direction]}"] = value
        return found
