"""The RNN encoder-decoder (seqcore.model.seq2seq) on PyTorch: embeddings, two recurrent stacks
(ScratchRecurrent or ConciseRecurrent, by spec.impl), a linear head.

Time-major like SequenceModel: source and decoder inputs (T, N) int64, logits (T, N, V_tgt), each
state part (L, N, H). Parameters cross as NumPy arrays under the canonical names; dropout masks
(seqcore.model.seq2seq.draw_masks) come with a training call. `Translator` is the step model of
seqcore.jobs.decode on this model.
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

from .concise import ConciseRecurrent
from .scratch import ScratchRecurrent

State = tuple[torch.Tensor, ...]  # (h,) or (h, c), each (L, N, H)


class Seq2SeqModel(nn.Module):
    """Encoder and decoder of one spec; model((source, source_valid, decoder_inputs)) -> (logits,
    decoder state). compiled=True (scratch): training runs each layer's time loop through torch.compile."""

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

    def decode(self, inputs: torch.Tensor, context: torch.Tensor, state: State,
               masks: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, State]:
        """Decoder inputs (T, N) ids, context (N, H), state -> logits (T, N, V_tgt), new state."""
        embedded = self.decoder_embedding(inputs)  # (T, N, E)
        repeated = context.unsqueeze(0).expand(embedded.shape[0], -1, -1)  # (T, N, H)
        outputs, state = self.decoder_rnn(torch.cat((embedded, repeated), dim=-1), state, masks)
        return self.head(outputs), state

    def forward(self, inputs: Sequence[torch.Tensor], state: State | None = None,
                masks: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, State]:
        """inputs = (source (T_src, N), source valid lengths (N,), decoder inputs (T_tgt, N)) ->
        logits (T_tgt, N, V_tgt) and the decoder's final state. state: the encoder's initial one
        (None: zeros). masks: encoder's then decoder's, on the device, or None. The valid lengths
        are unused without attention (the encoder reads the padding, as the book's)."""
        source, _, decoder_inputs = inputs
        encoder_masks, decoder_masks = split_masks(self.spec, masks, source.shape[0], decoder_inputs.shape[0],
                                                   source.shape[1])
        outputs, state = self.encode(source, state, encoder_masks)
        return self.decode(decoder_inputs, outputs[-1], state, decoder_masks)


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
    """seqcore.jobs.decode's step model on a Seq2SeqModel: NumPy ids in, NumPy logits out; the
    state (context (B, H), decoder state parts (L, B, H)) stays on the model's device."""

    def __init__(self, model: Seq2SeqModel) -> None:
        self.model = model

    def start(self, source: np.ndarray, source_valid: np.ndarray) -> tuple:
        with torch.no_grad():
            ids = torch.as_tensor(np.asarray(source), dtype=torch.int64, device=self.model.context())
            outputs, state = self.model.encode(ids)
        return (outputs[-1],) + state

    def step(self, tokens: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
        with torch.no_grad():
            ids = torch.as_tensor(np.asarray(tokens), dtype=torch.int64, device=self.model.context())
            logits, decoder_state = self.model.decode(ids[None], state[0], state[1:])
        return _numpy(logits[0]), (state[0],) + decoder_state

    def select(self, state: tuple, rows: np.ndarray) -> tuple:
        index = torch.as_tensor(np.asarray(rows), dtype=torch.int64, device=self.model.context())
        return (state[0][index],) + tuple(part[:, index] for part in state[1:])


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float32).numpy().copy()
