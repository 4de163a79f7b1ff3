"""A seqcore model as a plain Gluon block, and its `.params` files (`save_parameters`).

PlainModel is the block a Gluon user writes by hand (README, "Weights in each framework's own
format"; the d2l book's MXNet models): children `embedding` (nn.Embedding, for embedding
input), `rnn` (gluon.rnn.RNN / GRU / LSTM, layout TNC) and `head` (nn.Dense, flatten=False).
Its structural parameter names are seqcore.interchange's "gluon" names, so a file written here
loads with `load_parameters` without seqcore. PlainSeq2Seq is the d2l book's encoder-decoder
without attention written the same way: children encoder.{embedding, rnn} and decoder.{embedding,
rnn, head}.

Everything here runs in MXNet's legacy (non-NumPy) array mode, the mode of such user code:
`backends.mxnet` switches the process to NumPy mode when it is imported, so each function
switches back for its own duration (`_legacy_arrays`).
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Optional, Sequence

import mxnet as mx
import numpy as np
from mxnet import gluon
from mxnet.gluon import nn

from seqcore.errors import SeqcoreError
from seqcore.model.seq2seq import Seq2SeqSpec
from seqcore.model.spec import Cell, InputKind, ModelSpec, Readout


class PlainModel(gluon.Block):
    """embedding (optional) -> gluon.rnn.RNN / GRU / LSTM -> nn.Dense, with nothing of seqcore;
    the README's HybridBlock has the same children. Build and call it inside `_legacy_arrays()`."""

    def __init__(self, spec: ModelSpec, **kwargs) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        options = dict(num_layers=spec.num_layers, bidirectional=spec.bidirectional, layout="TNC",
                       input_size=spec.rnn_input_size)
        with self.name_scope():
            if spec.input_kind is InputKind.EMBEDDING:
                self.embedding = nn.Embedding(spec.input_size, spec.embed_size)
            if spec.cell is Cell.RNN:  # the activation passed explicitly: Gluon's default is relu
                self.rnn = gluon.rnn.RNN(spec.hidden_size, activation=spec.activation.value, **options)
            elif spec.cell is Cell.GRU:
                self.rnn = gluon.rnn.GRU(spec.hidden_size, **options)
            else:
                self.rnn = gluon.rnn.LSTM(spec.hidden_size, **options)
            self.head = nn.Dense(spec.output_size, flatten=False, in_units=spec.output_width)

    def forward(self, inputs, state=None):
        """inputs (T, N) ids or (T, N, I) floats; state of (L*D, N, H), zeros when None ->
        logits (T, N, O) (Readout.LAST: (N, O)) and the final state as a tuple."""
        if self.spec.input_kind is InputKind.EMBEDDING:
            x = self.embedding(inputs)
        elif self.spec.input_kind is InputKind.ONEHOT:
            x = mx.nd.one_hot(inputs, self.spec.input_size)
        else:
            x = inputs
        if state is None:
            state = self.rnn.begin_state(batch_size=inputs.shape[1], ctx=inputs.context)
        y, final = self.rnn(x, list(state))  # (T, N, D*H)
        if self.spec.readout is Readout.LAST:  # forward half at T-1, reverse half at t = 0
            size = self.spec.hidden_size
            y = y[-1] if not self.spec.bidirectional else mx.nd.concat(y[-1, :, :size], y[0, :, size:], dim=-1)
        return self.head(y), tuple(final)


def _fused(cell: Cell, hidden_size: int, num_layers: int, activation: str, input_size: int) -> gluon.Block:
    options = dict(num_layers=num_layers, layout="TNC", input_size=input_size)
    if cell is Cell.RNN:  # the activation passed explicitly: Gluon's default is relu
        return gluon.rnn.RNN(hidden_size, activation=activation, **options)
    return (gluon.rnn.GRU if cell is Cell.GRU else gluon.rnn.LSTM)(hidden_size, **options)


class _Stack(gluon.Block):
    """A named group of children (an encoder or a decoder), so that their names nest."""

    def forward(self, *args):  # never called: its children are
        raise NotImplementedError


class PlainSeq2Seq(gluon.Block):
    """The encoder-decoder of d2l 9.6-9.7 (1.0: 10.6-10.7) without attention, with nothing of seqcore:
    the decoder reads its embedded token beside the encoder's last top-layer output (the context),
    starting from the encoder's final state. Build and call it inside `_legacy_arrays()`."""

    def __init__(self, spec: Seq2SeqSpec, **kwargs) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        layers = (spec.cell, spec.hidden_size, spec.num_layers, spec.activation.value)
        with self.name_scope():
            self.encoder, self.decoder = _Stack(), _Stack()
            with self.encoder.name_scope():
                self.encoder.embedding = nn.Embedding(spec.source_vocab_size, spec.embed_size)
                self.encoder.rnn = _fused(*layers, spec.embed_size)
            with self.decoder.name_scope():
                self.decoder.embedding = nn.Embedding(spec.target_vocab_size, spec.embed_size)
                self.decoder.rnn = _fused(*layers, spec.embed_size + spec.hidden_size)
                self.decoder.head = nn.Dense(spec.target_vocab_size, flatten=False, in_units=spec.hidden_size)

    def forward(self, source, decoder_inputs):
        """source (T_src, N), decoder inputs (T_tgt, N) ids -> logits (T_tgt, N, V_tgt) and the
        decoder's final state as a tuple."""
        begin = self.encoder.rnn.begin_state(batch_size=source.shape[1], ctx=source.context)
        encoded, state = self.encoder.rnn(self.encoder.embedding(source), begin)
        embedded = self.decoder.embedding(decoder_inputs)
        context = mx.nd.broadcast_to(mx.nd.expand_dims(encoded[-1], 0), embedded.shape[:2] + encoded.shape[-1:])
        outputs, state = self.decoder.rnn(mx.nd.concat(embedded, context, dim=-1), state)
        return self.decoder.head(outputs), tuple(state)


@contextlib.contextmanager
def _legacy_arrays():
    """MXNet's classic NDArray semantics for the duration (the mode plain Gluon code runs in)."""
    with mx.util.np_array(False), mx.util.np_shape(False):
        yield


def write_weights(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """`mx.nd.save` of {structural name: NDArray}: what `save_parameters` writes for the plain block."""
    with _legacy_arrays():
        mx.nd.save(str(path), {name: mx.nd.array(value, dtype="float32") for name, value in arrays.items()})


def read_weights(path: str | Path) -> dict[str, np.ndarray] | list[np.ndarray]:
    """A `.params` file's arrays as NumPy (floating point as float32), or one sentence why not; a
    file of an unnamed list (`npx.save(path, net.params)`, the d2l book's scratch models) as a list."""
    path = Path(path)
    if not path.is_file():
        raise SeqcoreError(f"No Gluon weight file at {path}.")
    try:
        try:
            with _legacy_arrays():
                loaded = mx.nd.load(str(path))
        except mx.base.MXNetError as error:
            if "np shape" not in str(error):
                raise
            with mx.util.np_array(True), mx.util.np_shape(True):  # saved in NumPy mode (d2l's MXNet code)
                loaded = mx.npx.load(str(path))
        with _legacy_arrays():
            if isinstance(loaded, dict):
                arrays = {str(name): _dense(path, str(name), value) for name, value in loaded.items()}
            else:
                arrays = [_dense(path, f"array {index}", value) for index, value in enumerate(loaded)]
    except mx.base.MXNetError as error:
        reason = (str(error).strip().splitlines() or ["unreadable"])[-1].split("Check failed: ")[-1][:200]
        raise SeqcoreError(f"{path} is not a Gluon parameter file that mx.nd.load can read ({reason}).") from None
    if not arrays:
        raise SeqcoreError(f"{path} holds no arrays (a Block whose weights are plain arrays, such as d2l 1.0's "
                           f"scratch models, saves nothing with save_parameters: npx.save a dict of them).")
    if isinstance(arrays, list):
        return [_float32(value) for value in arrays]
    if any(name.startswith(("arg:", "aux:")) for name in arrays):
        raise SeqcoreError(f"{path} is a symbolic export (arg:/aux: names), not a Block's parameters; load the "
                           f"model as a Block and save it with block.save_parameters(path).")
    return {name: _float32(value) for name, value in arrays.items()}


def _dense(path: Path, name: str, value) -> np.ndarray:
    """One stored array as NumPy; a sparse one (row_sparse, csr) is refused in one sentence."""
    stype = getattr(value, "stype", "default")
    if stype != "default":
        raise SeqcoreError(f"{path}'s {name} is a sparse array ({stype}); model weights are dense: save them "
                           f"with .tostype('default').")
    return value.asnumpy()


def _float32(value: np.ndarray) -> np.ndarray:
    return value.astype(np.float32) if value.dtype.kind == "f" else value


def plain_forward(path: str | Path, spec: ModelSpec | Seq2SeqSpec, inputs: np.ndarray | tuple,
                  state: Optional[Sequence[np.ndarray]] = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Load the file at `path` into PlainModel(spec) (an encoder-decoder's into PlainSeq2Seq, its
    inputs (source, source lengths, decoder inputs), state None) with `load_parameters` (nothing
    missing, nothing extra) and run it on `inputs`: logits and final state as NumPy. The check a
    written file passes before it is kept."""
    with _legacy_arrays():
        model = PlainSeq2Seq(spec) if isinstance(spec, Seq2SeqSpec) else PlainModel(spec)
        try:
            model.load_parameters(str(path), ctx=mx.cpu(), allow_missing=False, ignore_extra=False)
        except (AssertionError, ValueError, mx.base.MXNetError) as error:
            raise SeqcoreError(f"The written file does not load into the plain Gluon block "
                               f"({(str(error).strip().splitlines() or ['no reason'])[0][:200]}).") from None
        if isinstance(spec, Seq2SeqSpec):  # the source lengths matter to attention only
            logits, final = model(mx.nd.array(inputs[0], dtype="float32"), mx.nd.array(inputs[2], dtype="float32"))
            return logits.asnumpy(), [part.asnumpy() for part in final]
        begin = None if state is None else [mx.nd.array(s, dtype="float32") for s in state]
        logits, final = model(mx.nd.array(inputs, dtype="float32"), begin)
        return logits.asnumpy(), [part.asnumpy() for part in final]
