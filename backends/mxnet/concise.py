"""The recurrent stack on Gluon's fused layers (gluon.rnn.RNN / GRU / LSTM, one `RNN` op).

Same call as ScratchRecurrent: (T, N, I) inputs, state tuple of (L, N, H) -> (T, N, H), state.
Gluon's parameters already have the canonical layout; only the names differ:

    canonical rnn.l{k}.weight_ih / weight_hh / bias_ih / bias_hh
    Gluon     l{k}_i2h_weight   / l{k}_h2h_weight / l{k}_i2h_bias / l{k}_h2h_bias
"""
from __future__ import annotations

import mxnet as mx
from mxnet import gluon

from seqcore.specs import Activation, Cell

# canonical suffix -> Gluon suffix
_GLUON_NAMES = {"weight_ih": "i2h_weight", "weight_hh": "h2h_weight",
                "bias_ih": "i2h_bias", "bias_hh": "h2h_bias"}


class ConciseRecurrent(gluon.Block):
    """gluon.rnn.{RNN,GRU,LSTM} with layout 'TNC', input_size given (no deferred init) and, for RNN,
    the activation passed explicitly (Gluon's RNN defaults to relu, PyTorch's to tanh).

    A plain Block around the fused layer, which is the HybridBlock: `hybridize()` reaches it.
    """

    def __init__(self, cell: Cell | str, input_size: int, hidden_size: int, num_layers: int,
                 activation: Activation | str = Activation.TANH, **kwargs):
        super().__init__(**kwargs)
        self.cell = Cell(cell)
        self.num_layers = num_layers
        options = dict(num_layers=num_layers, layout="TNC", input_size=input_size,
                       i2h_weight_initializer=mx.init.Zero(), h2h_weight_initializer=mx.init.Zero())
        with self.name_scope():  # values are loaded from canonical parameters; Zero is a placeholder
            if self.cell is Cell.RNN:
                activation = Activation(activation).value  # explicit: Gluon's default is relu
                self.layer = gluon.rnn.RNN(hidden_size, activation=activation, **options)
            elif self.cell is Cell.GRU:
                self.layer = gluon.rnn.GRU(hidden_size, **options)
            else:
                self.layer = gluon.rnn.LSTM(hidden_size, **options)

    def parameter_map(self) -> dict[str, gluon.Parameter]:
        """Gluon parameters by canonical name without the `rnn.` prefix: l{k}.weight_ih ..."""
        return {f"l{k}.{name}": getattr(self.layer, f"l{k}_{gluon_name}")
                for k in range(self.num_layers) for name, gluon_name in _GLUON_NAMES.items()}

    def forward(self, inputs, state):
        """inputs (T, N, I), state of (L, N, H) -> outputs (T, N, H) of the top layer, new state."""
        outputs, new_state = self.layer(inputs, list(state))  # Gluon takes and gives a list
        return outputs, tuple(new_state)
