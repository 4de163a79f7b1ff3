"""The RNN encoder-decoder (seqcore.model.seq2seq) on PyTorch: embeddings, two recurrent stacks
(ScratchRecurrent or ConciseRecurrent, by spec.impl), with attention (.attention.Attention) or
without, a linear head.

Time-major like SequenceModel: source and decoder inputs (T, N) int64, logits (T, N, V_tgt), each
state part (L, N, H), encoder outputs (T_src, N, H), attention weights (T_tgt, N, T_src). With
attention the decoder runs its stack one step at a time (each step's query is the state before
it), scratch and concise alike. Parameters cross as NumPy arrays under the canonical names; dropout
masks (seqcore.model.seq2seq.draw_masks) come with a training call. `Translator` is the step model
of seqcore.jobs.decode on this model.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqcore.errors import SeqcoreError
from seqcore.model.seq2seq import Seq2SeqSpec, check_params, param_shapes, seq2seq_loss, split_masks
from seqcore.model.spec import Impl, Loss

from .attention import Attention
from .concise import ConciseRecurrent
from .scratch import ScratchRecurrent

State = tuple[torch.Tensor, ...]  # (h,) or (h, c), each (L, N, H)


class Seq2SeqModel(nn.Module):
    """Encoder and decoder of one spec; model((source, source_valid, decoder_inputs)) -> (logits,
    decoder state); forward_weights also returns the attention weights. compiled=True (scratch):
    training runs each layer's time loop through torch.compile."""

    def __init__(self, spec: Seq2SeqSpec, compiled: bool = False) -> None:
        super().__init__()
        if compiled and spec.impl is not Impl.SCRATCH:
            raise SeqcoreError("compiled=True compiles the scratch recurrence; a concise model's "
                               "nn.RNN / nn.GRU / nn.LSTM already runs as one fused kernel.")
        self.spec = spec
        self.encoder_embedding = nn.Embedding(spec.source_vocab_size, spec.embed_size)
        self.encoder_rnn = self._stack(spec.input_width("encoder", 0), compiled)
        self.decoder_embedding = nn.Embedding(spec.target_vocab_size, spec.embed_size)
        self.decoder_rnn = self._stack(spec.input_width("decoder", 0), compiled)
        self.attention = Attention(spec.attention, spec.hidden_size) if spec.attends else None
        self.head = nn.Linear(spec.hidden_size, spec.target_vocab_size)

    def _stack(self, input_size: int, compiled: bool) -> nn.Module:
        spec = self.spec
        if spec.impl is Impl.SCRATCH:
            return ScratchRecurrent(spec.cell, input_size, spec.hidden_size, spec.num_layers, spec.activation,
                                    gru_reset=spec.gru_reset, compiled=compiled)
        return ConciseRecurrent(spec.cell, input_size, spec.hidden_size, spec.num_layers, spec.activation,
                                dropout=spec.dropout)

    def parameter_map(self) -> dict[str, nn.Parameter]:
        """Every parameter keyed by its canonical name, in seqcore.model.seq2seq order."""
        found = {"encoder.embedding.weight": self.encoder_embedding.weight,
                 "decoder.embedding.weight": self.decoder_embedding.weight,
                 "decoder.head.weight": self.head.weight, "decoder.head.bias": self.head.bias}
        for stack, rnn in (("encoder", self.encoder_rnn), ("decoder", self.decoder_rnn)):
            found.update({f"{stack}.rnn.{name}": value for name, value in rnn.parameter_map().items()})
        if self.attention is not None:
            found.update({f"decoder.attention.{name}": value for name, value in self.attention.parameter_map().items()})
        return {name: found[name] for name in param_shapes(self.spec)}

    def load_params(self, params: Mapping[str, np.ndarray], ctx: torch.device) -> None:
        """Place the model on device `ctx` holding exactly `params` (checked against the spec)."""
        checked = check_params(self.spec, params)
        with torch.no_grad():  # in place, before .to(): nn.RNN re-flattens its weights on the move
            for name, value in self.parameter_map().items():
                value.copy_(torch.from_numpy(np.ascontiguousarray(checked[name])))
        self.to(ctx)

    def context(self) -> torch.device:
        return self.head.weight.device

    def export_params(self) -> dict[str, np.ndarray]:
        return {name: _numpy(value) for name, value in self.parameter_map().items()}

    def export_gradients(self) -> dict[str, np.ndarray]:
        """Gradients by canonical name; zeros for a parameter that has none yet."""
        return {name: np.zeros(value.shape, np.float32) if value.grad is None else _numpy(value.grad)
                for name, value in self.parameter_map().items()}

    def begin_state(self, batch_size: int) -> State:
        """The encoder's initial state: zeros, (L, N, H) per part."""
        shape = (self.spec.num_layers, batch_size, self.spec.hidden_size)
        return tuple(torch.zeros(shape, device=self.context()) for _ in range(self.spec.num_states))

    def encode(self, source: torch.Tensor, state: State | None = None,
               masks: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, State]:
        """source (T, N) ids -> top-layer outputs (T, N, H), final state (L, N, H) per part."""
        state = self.begin_state(source.shape[1]) if state is None else state
        return self.encoder_rnn(self.encoder_embedding(source), state, masks)

    def decode(self, inputs: torch.Tensor, encoded: torch.Tensor, source_valid: torch.Tensor, state: State,
               masks: list[torch.Tensor] | None = None,
               weight_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, State, torch.Tensor | None]:
        """Decoder inputs (T, N) ids, encoder outputs (T_src, N, H), source valid lengths (N,), state
        -> logits (T, N, V_tgt), new state, attention weights (T, N, T_src) (None without attention).
        masks: the decoder's between-layer masks; weight_mask (T, N, T_src): the weights' dropout."""
        embedded = self.decoder_embedding(inputs)  # (T, N, E)
        if self.attention is None:
            repeated = encoded[-1].unsqueeze(0).expand(embedded.shape[0], -1, -1)  # (T, N, H)
            outputs, state = self.decoder_rnn(torch.cat((embedded, repeated), dim=-1), state, masks)
            return self.head(outputs), state, None
        keys = self.attention.keys(encoded)
        outputs, weights = [], []
        for t in range(embedded.shape[0]):
            # The query is the top layer's h before this step: at t = 0 the encoder's final one.
            context, step_weights = self.attention(state[0][-1], keys, encoded, source_valid,
                                                   None if weight_mask is None else weight_mask[t])
            step_input = torch.cat((embedded[t], context), dim=-1).unsqueeze(0)  # (1, N, E + H)
            output, state = self.decoder_rnn(step_input, state,
                                             None if masks is None else [mask[t:t + 1] for mask in masks])
            outputs.append(output[0])
            weights.append(step_weights)
        return self.head(torch.stack(outputs)), state, torch.stack(weights)

    def forward_weights(self, inputs: Sequence[torch.Tensor], state: State | None = None,
                        masks: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, State, torch.Tensor | None]:
        """inputs = (source (T_src, N), source valid lengths (N,), decoder inputs (T_tgt, N)) ->
        logits (T_tgt, N, V_tgt), the decoder's final state and the attention weights (T_tgt, N,
        T_src), None without attention. state: the encoder's initial one (None: zeros). masks:
        encoder's, decoder's, attention's (mask_shapes order), on the device, or None. The encoder
        reads the padding, as the book's; only attention reads the valid lengths."""
        source, source_valid, decoder_inputs = inputs
        split = split_masks(self.spec, masks, source.shape[0], decoder_inputs.shape[0], source.shape[1])
        encoded, state = self.encode(source, state, split.encoder)
        return self.decode(decoder_inputs, encoded, source_valid, state, split.decoder, split.attention)

    def forward(self, inputs: Sequence[torch.Tensor], state: State | None = None,
                masks: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, State]:
        """forward_weights without the weights: logits (T_tgt, N, V_tgt), the decoder's final state."""
        logits, state, _ = self.forward_weights(inputs, state, masks)
        return logits, state


def masked_loss(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, loss: Loss) -> torch.Tensor:
    """Loss.MASKED (cross-entropy over the real tokens / their number) or Loss.MASKED_D2L (mean over
    all T*N positions of cross-entropy x mask): logits (T, N, V), targets (T, N), valid (N,)."""
    kind = seq2seq_loss(loss)
    if targets.shape != logits.shape[:-1]:
        raise SeqcoreError(f"Targets have shape {tuple(targets.shape)}, expected {tuple(logits.shape[:-1])}.")
    losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                             reduction="none").reshape(targets.shape)  # (T, N)
    steps = torch.arange(targets.shape[0], device=logits.device)
    mask = (steps[:, None] < valid[None, :]).to(losses.dtype)  # (T, N): 1 on real tokens
    if kind is Loss.MASKED:
        return (losses * mask).sum() / mask.sum()
    return (losses * mask).mean()


class Translator:
    """seqcore.jobs.decode's step model on a Seq2SeqModel: NumPy ids in, NumPy logits (and attention
    weights) out; the state (encoder outputs (T_src, B, H), source valid lengths (B,), decoder state
    parts (L, B, H)) stays on the model's device."""

    def __init__(self, model: Seq2SeqModel) -> None:
        self.model = model

    def start(self, source: np.ndarray, source_valid: np.ndarray) -> tuple:
        device = self.model.context()
        with torch.no_grad():
            ids = torch.as_tensor(np.asarray(source), dtype=torch.int64, device=device)
            encoded, state = self.model.encode(ids)
        return (encoded, torch.as_tensor(np.asarray(source_valid), dtype=torch.int64, device=device)) + state

    def step(self, tokens: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple, np.ndarray | None]:
        encoded, valid = state[:2]
        with torch.no_grad():
            ids = torch.as_tensor(np.asarray(tokens), dtype=torch.int64, device=self.model.context())
            logits, decoder_state, weights = self.model.decode(ids[None], encoded, valid, state[2:])
        return _numpy(logits[0]), (encoded, valid) + decoder_state, None if weights is None else _numpy(weights[0])

    def select(self, state: tuple, rows: np.ndarray) -> tuple:
        index = torch.as_tensor(np.asarray(rows), dtype=torch.int64, device=self.model.context())
        return (state[0][:, index], state[1][index]) + tuple(part[:, index] for part in state[2:])


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float32).numpy().copy()
