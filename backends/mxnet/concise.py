"""The recurrent stack on Gluon's fused layers (gluon.rnn.RNN / GRU / LSTM, one `RNN` op).

Same call as ScratchRecurrent: (T, N, I) inputs, state tuple of (L*D, N, H) -> (T, N, D*H), state.
Gluon's parameters already have the canonical layout; only the names differ:

    canonical rnn.l{k}.weight_ih / weight_hh / bias_ih / bias_hh
    Gluon     l{k}_i2h_weight   / l{k}_h2h_weight / l{k}_i2h_bias / l{k}_h2h_bias
    reverse   rnn.l{k}.weight_ih_reverse ...  ->  r{k}_i2h_weight ...

With dropout > 0 and several layers the stack is one single-layer fused layer per layer, with
seqcore.model.dropout's masks multiplied in between: the fused layer's own `dropout=` draws its masks
inside the framework, which no other framework (or the NumPy reference) can reproduce.
"""
from __future__ import annotations

import mxnet as mx
from mxnet import gluon

from seqcore.model.params import DIRECTION_SUFFIXES
from seqcore.model.spec import Activation, Cell

# canonical suffix -> Gluon suffix
_GLUON_NAMES = {"weight_ih": "i2h_weight", "weight_hh": "h2h_weight",
                "bias_ih": "i2h_bias", "bias_hh": "h2h_bias"}
_GLUON_DIRECTIONS = "lr"  # by direction: Gluon's prefix of forward and reverse parameters


class ConciseRecurrent(gluon.Block):
    """gluon.rnn.{RNN,GRU,LSTM} with layout 'TNC', input_size given (no deferred init) and, for RNN,
    the activation passed explicitly (Gluon's RNN defaults to relu, PyTorch's to tanh).

    A plain Block around the fused layers, which are HybridBlocks: `hybridize()` reaches them.
    dropout only decides the structure (see above); the masks come with each forward call.
    """

    def __init__(self, cell: Cell | str, input_size: int, hidden_size: int, num_layers: int,
                 activation: Activation | str = Activation.TANH, bidirectional: bool = False,
                 dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.cell = Cell(cell)
        self.num_layers = num_layers
        self.num_directions = 2 if bidirectional else 1
        with self.name_scope():
            if dropout > 0 and num_layers > 1:
                width = self.num_directions * hidden_size
                self.layers = [self._fused(input_size if k == 0 else width, hidden_size, 1, activation,
                                           bidirectional) for k in range(num_layers)]
                self._where = [(k, 0) for k in range(num_layers)]  # per layer: (fused layer, index in it)
            else:
                self.layers = [self._fused(input_size, hidden_size, num_layers, activation, bidirectional)]
                self._where = [(0, k) for k in range(num_layers)]
        for index, layer in enumerate(self.layers):
            self.register_child(layer, f"fused{index}")

    def _fused(self, input_size: int, hidden_size: int, num_layers: int, activation: Activation | str,
               bidirectional: bool) -> gluon.HybridBlock:
        # values are loaded from canonical parameters; Zero is a placeholder
        options = dict(num_layers=num_layers, layout="TNC", input_size=input_size,
                       bidirectional=bidirectional,
                       i2h_weight_initializer=mx.init.Zero(), h2h_weight_initializer=mx.init.Zero())
        if self.cell is Cell.RNN:
            activation = Activation(activation).value  # explicit: Gluon's default is relu
            return gluon.rnn.RNN(hidden_size, activation=activation, **options)
        if self.cell is Cell.GRU:
            return gluon.rnn.GRU(hidden_size, **options)
        return gluon.rnn.LSTM(hidden_size, **options)

    def parameter_map(self) -> dict[str, gluon.Parameter]:
        """Gluon parameters by canonical name without the `rnn.` prefix: l{k}.weight_ih ...
        (l{k}.weight_ih_reverse ... for the reverse direction)."""
        found = {}
        for k, (module, inner) in enumerate(self._where):
            for direction, suffix in enumerate(DIRECTION_SUFFIXES[:self.num_directions]):
                prefix = _GLUON_DIRECTIONS[direction]
                for name, gluon_name in _GLUON_NAMES.items():
                    found[f"l{k}.{name}{suffix}"] = getattr(self.layers[module], f"{prefix}{inner}_{gluon_name}")
        return found

    def forward(self, inputs, state, masks=None):
        """inputs (T, N, I), state of (L*D, N, H) -> outputs (T, N, D*H) of the top layer, new state.

        masks: (T, N, D*H) dropout masks multiplying the inputs of layers 1 .. L-1 (only with
        the per-layer structure, i.e. built with dropout > 0), or None.
        """
        if len(self.layers) == 1:
            outputs, new_state = self.layers[0](inputs, list(state))  # Gluon takes and gives a list
            return outputs, tuple(new_state)
        outputs, finals = inputs, []
        for k, layer in enumerate(self.layers):
            if masks is not None and k > 0:
                outputs = outputs * masks[k - 1]
            rows = slice(k * self.num_directions, (k + 1) * self.num_directions)
            outputs, layer_state = layer(outputs, [part[rows] for part in state])  # (D, N, H) each
            finals.append(layer_state)
        return outputs, tuple(mx.np.concatenate(parts, axis=0) for parts in zip(*finals))
