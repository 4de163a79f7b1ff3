"""The RNN encoder-decoder (seqcore.model.seq2seq) on MXNet Gluon: embeddings, two recurrent stacks
(ScratchRecurrent or ConciseRecurrent, by spec.impl), with attention (.attention.Attention) or
without, a Dense head.

Time-major like SequenceModel: source and decoder inputs (T, N) ids (mx.np), logits (T, N, V_tgt),
each state part (L, N, H), encoder outputs (T_src, N, H), attention weights (T_tgt, N, T_src). With
attention the decoder runs its stack one step at a time (each step's query is the state before
it), scratch and concise alike. Parameters cross as NumPy arrays under the canonical names; dropout
masks (seqcore.model.seq2seq.draw_masks) come with a training call. `Translator` is the step model
of seqcore.jobs.decode on this model.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon, npx

from seqcore.errors import SeqcoreError
from seqcore.model.seq2seq import Seq2SeqSpec, check_params, param_shapes, seq2seq_loss, split_masks
from seqcore.model.spec import Impl, Loss

from .attention import Attention
from .concise import ConciseRecurrent
from .scratch import ScratchRecurrent


class Seq2SeqModel(gluon.Block):
    """Encoder and decoder of one spec; model((source, source_valid, decoder_inputs)) -> (logits,
    decoder state); forward_weights also returns the attention weights. A plain Block (the scratch
    stacks and the attention decoder loop over time); concise stacks are hybridized."""

    def __init__(self, spec: Seq2SeqSpec, compiled: bool = False, **kwargs):
        super().__init__(**kwargs)
        if compiled:  # the signature mirrors PyTorch's Seq2SeqModel
            raise SeqcoreError("compiled=True is PyTorch's torch.compile of the scratch time loop; "
                               "MXNet has no counterpart.")
        self.spec = spec
        with self.name_scope():
            self.encoder_embedding = gluon.nn.Embedding(spec.source_vocab_size, spec.embed_size)
            self.encoder_rnn = self._stack(spec.input_width("encoder", 0))
            self.decoder_embedding = gluon.nn.Embedding(spec.target_vocab_size, spec.embed_size)
            self.decoder_rnn = self._stack(spec.input_width("decoder", 0))
            self.attention = Attention(spec.attention, spec.hidden_size) if spec.attends else None
            self.head = gluon.nn.Dense(spec.target_vocab_size, flatten=False, in_units=spec.hidden_size)
        if spec.impl is Impl.CONCISE:  # as SequenceModel: one cached graph per fused stack
            self.encoder_rnn.hybridize(static_alloc=True, static_shape=True)
            self.decoder_rnn.hybridize(static_alloc=True, static_shape=True)

    def _stack(self, input_size: int) -> gluon.Block:
        spec = self.spec
        if spec.impl is Impl.SCRATCH:
            return ScratchRecurrent(spec.cell, input_size, spec.hidden_size, spec.num_layers, spec.activation,
                                    gru_reset=spec.gru_reset)
        return ConciseRecurrent(spec.cell, input_size, spec.hidden_size, spec.num_layers, spec.activation,
                                dropout=spec.dropout)

    def parameter_map(self) -> dict[str, gluon.Parameter]:
        """Every Gluon parameter by canonical name, in seqcore.model.seq2seq order."""
        found = {"encoder.embedding.weight": self.encoder_embedding.weight,
                 "decoder.embedding.weight": self.decoder_embedding.weight,
                 "decoder.head.weight": self.head.weight, "decoder.head.bias": self.head.bias}
        for stack, rnn in (("encoder", self.encoder_rnn), ("decoder", self.decoder_rnn)):
            found.update({f"{stack}.rnn.{name}": param for name, param in rnn.parameter_map().items()})
        if self.attention is not None:
            found.update({f"decoder.attention.{name}": param for name, param in self.attention.parameter_map().items()})
        return {name: found[name] for name in param_shapes(self.spec)}

    def load_params(self, params: Mapping[str, np.ndarray], ctx: mx.Context) -> None:
        """Place the model on `ctx` holding exactly `params` (checked against the spec)."""
        checked = check_params(self.spec, params)
        self.initialize(mx.init.Zero(), ctx=ctx, force_reinit=True)  # allocates; values set next
        for name, param in self.parameter_map().items():
            param.set_data(mx.np.array(checked[name], dtype=np.float32, ctx=ctx))

    def context(self) -> mx.Context:
        return self.head.weight.list_ctx()[0]

    def export_params(self) -> dict[str, np.ndarray]:
        return {name: param.data().asnumpy() for name, param in self.parameter_map().items()}

    def export_gradients(self) -> dict[str, np.ndarray]:
        return {name: param.grad().asnumpy() for name, param in self.parameter_map().items()}

    def begin_state(self, batch_size: int) -> tuple:
        """The encoder's initial state: zeros, (L, N, H) per part."""
        shape = (self.spec.num_layers, batch_size, self.spec.hidden_size)
        return tuple(mx.np.zeros(shape, dtype=np.float32, ctx=self.context()) for _ in range(self.spec.num_states))

    def encode(self, source, state=None, masks=None):
        """source (T, N) ids -> top-layer outputs (T, N, H), final state (L, N, H) per part."""
        state = self.begin_state(source.shape[1]) if state is None else state
        outputs, state = self.encoder_rnn(self.encoder_embedding(source), tuple(state), masks)
        return outputs, tuple(state)

    def decode(self, inputs, encoded, source_valid, state, masks=None, weight_mask=None):
        """Decoder inputs (T, N) ids, encoder outputs (T_src, N, H), source valid lengths (N,), state
        -> logits (T, N, V_tgt), new state, attention weights (T, N, T_src) (None without attention).
        masks: the decoder's between-layer masks; weight_mask (T, N, T_src): the weights' dropout."""
        embedded = self.decoder_embedding(inputs)  # (T, N, E)
        if self.attention is None:
            repeated = mx.np.broadcast_to(mx.np.expand_dims(encoded[-1], 0),
                                          embedded.shape[:2] + encoded.shape[-1:])  # (T, N, H)
            outputs, state = self.decoder_rnn(mx.np.concatenate([embedded, repeated], axis=-1), tuple(state),
                                              masks)
            return self.head(outputs), tuple(state), None
        keys = self.attention.keys(encoded)
        state, outputs, weights = tuple(state), [], []
        for t in range(embedded.shape[0]):
            # The query is the top layer's h before this step: at t = 0 the encoder's final one.
            context, step_weights = self.attention(state[0][-1], keys, encoded, source_valid,
                                                   None if weight_mask is None else weight_mask[t])
            step_input = mx.np.expand_dims(mx.np.concatenate([embedded[t], context], axis=-1), 0)  # (1, N, E + H)
            output, state = self.decoder_rnn(step_input, state,
                                             None if masks is None else [mask[t:t + 1] for mask in masks])
            state = tuple(state)
            outputs.append(output[0])
            weights.append(step_weights)
        return self.head(mx.np.stack(outputs)), state, mx.np.stack(weights)

    def forward_weights(self, inputs: Sequence, state=None, masks=None):
        """inputs = (source (T_src, N), source valid lengths (N,), decoder inputs (T_tgt, N)) ->
        logits (T_tgt, N, V_tgt), the decoder's final state and the attention weights (T_tgt, N,
        T_src), None without attention. state: the encoder's initial one (None: zeros). masks:
        encoder's, decoder's, attention's (mask_shapes order), on the context, or None. The encoder
        reads the padding, as the book's; only attention reads the valid lengths."""
        source, source_valid, decoder_inputs = inputs
        split = split_masks(self.spec, masks, source.shape[0], decoder_inputs.shape[0], source.shape[1])
        encoded, state = self.encode(source, state, split.encoder)
        return self.decode(decoder_inputs, encoded, source_valid, state, split.decoder, split.attention)

    def forward(self, inputs: Sequence, state=None, masks=None):
        """forward_weights without the weights: logits (T_tgt, N, V_tgt), the decoder's final state."""
        logits, state, _ = self.forward_weights(inputs, state, masks)
        return logits, state


def masked_loss(logits, targets, valid, loss: Loss):
    """Loss.MASKED (cross-entropy over the real tokens / their number) or Loss.MASKED_D2L (mean over
    all T*N positions of cross-entropy x mask): logits (T, N, V), targets (T, N) ids, valid (N,)."""
    kind = seq2seq_loss(loss)
    if tuple(targets.shape) != tuple(logits.shape[:-1]):
        raise SeqcoreError(f"Targets have shape {tuple(targets.shape)}, expected {tuple(logits.shape[:-1])}.")
    losses = -npx.pick(npx.log_softmax(logits, axis=-1), targets, axis=-1)  # (T, N)
    steps = mx.np.arange(targets.shape[0], ctx=logits.ctx)
    mask = (mx.np.expand_dims(steps, 1) < mx.np.expand_dims(valid.astype(np.float32), 0)).astype(np.float32)
    if kind is Loss.MASKED:
        return (losses * mask).sum() / mask.sum()
    return (losses * mask).mean()


class Translator:
    """seqcore.jobs.decode's step model on a Seq2SeqModel: NumPy ids in, NumPy logits (and attention
    weights) out; the state (encoder outputs (T_src, B, H), source valid lengths (B,), decoder state
    parts (L, B, H)) stays on the model's context."""

    def __init__(self, model: Seq2SeqModel) -> None:
        self.model = model

    def start(self, source: np.ndarray, source_valid: np.ndarray) -> tuple:
        ctx = self.model.context()
        with autograd.predict_mode():
            ids = mx.np.array(np.asarray(source), dtype=np.int32, ctx=ctx)
            encoded, state = self.model.encode(ids)
        return (encoded, mx.np.array(np.asarray(source_valid), dtype=np.int32, ctx=ctx)) + state

    def step(self, tokens: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple, np.ndarray | None]:
        encoded, valid = state[:2]
        with autograd.predict_mode():
            ids = mx.np.array(np.asarray(tokens)[None], dtype=np.int32, ctx=self.model.context())
            logits, decoder_state, weights = self.model.decode(ids, encoded, valid, state[2:])
        return logits[0].asnumpy(), (encoded, valid) + decoder_state, None if weights is None else weights[0].asnumpy()

    def select(self, state: tuple, rows: np.ndarray) -> tuple:
        index = mx.np.array(np.asarray(rows), dtype=np.int64, ctx=self.model.context())
        return ((mx.np.take(state[0], index, axis=1), mx.np.take(state[1], index, axis=0))
                + tuple(mx.np.take(part, index, axis=1) for part in state[2:]))
