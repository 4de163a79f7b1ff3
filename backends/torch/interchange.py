"""A seqcore model as a plain PyTorch module, and its `state_dict` files.

PlainModel is the module a PyTorch user writes by hand (README, "Weights in each framework's own
format"): children `embedding` (nn.Embedding, for embedding input), `rnn` (nn.RNN / nn.GRU /
nn.LSTM, time-major) and `head` (nn.Linear). Its state_dict keys are seqcore.interchange's
"torch" names, so a file written here loads with `load_state_dict(strict=True)` without seqcore.
PlainSeq2Seq is the d2l book's encoder-decoder without attention written the same way: children
encoder.{embedding, rnn} and decoder.{embedding, rnn, head}.
"""
from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqcore.errors import SeqcoreError
from seqcore.model.seq2seq import Seq2SeqSpec
from seqcore.model.spec import Cell, InputKind, ModelSpec, Readout

State = tuple[torch.Tensor, ...]  # (h,) or (h, c), each (L*D, N, H)


class PlainModel(nn.Module):
    """embedding (optional) -> nn.RNN / nn.GRU / nn.LSTM -> nn.Linear, with nothing of seqcore."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        if spec.input_kind is InputKind.EMBEDDING:
            self.embedding = nn.Embedding(spec.input_size, spec.embed_size)
        options = dict(num_layers=spec.num_layers, bidirectional=spec.bidirectional)
        if spec.cell is Cell.RNN:
            self.rnn = nn.RNN(spec.rnn_input_size, spec.hidden_size, nonlinearity=spec.activation.value, **options)
        else:
            fused = nn.GRU if spec.cell is Cell.GRU else nn.LSTM
            self.rnn = fused(spec.rnn_input_size, spec.hidden_size, **options)
        self.head = nn.Linear(spec.output_width, spec.output_size)

    def forward(self, inputs: torch.Tensor, state: Optional[State] = None) -> tuple[torch.Tensor, State]:
        """inputs (T, N) int64 ids or (T, N, I) float32; state of (L*D, N, H), zeros when None ->
        logits (T, N, O) (Readout.LAST: (N, O)) and the final state as a tuple."""
        if self.spec.input_kind is InputKind.EMBEDDING:
            x = self.embedding(inputs)
        elif self.spec.input_kind is InputKind.ONEHOT:
            x = F.one_hot(inputs, self.spec.input_size).to(torch.float32)
        else:
            x = inputs
        if self.spec.cell is Cell.LSTM:
            y, (h, c) = self.rnn(x, None if state is None else (state[0], state[1]))
            final: State = (h, c)
        else:
            y, h = self.rnn(x, None if state is None else state[0])
            final = (h,)
        if self.spec.readout is Readout.LAST:  # forward half at T-1, reverse half at t = 0
            size = self.spec.hidden_size
            y = y[-1] if not self.spec.bidirectional else torch.cat([y[-1, :, :size], y[0, :, size:]], dim=-1)
        return self.head(y), final


def _fused(cell: Cell, input_size: int, hidden_size: int, num_layers: int, activation: str) -> nn.Module:
    if cell is Cell.RNN:
        return nn.RNN(input_size, hidden_size, num_layers=num_layers, nonlinearity=activation)
    return (nn.GRU if cell is Cell.GRU else nn.LSTM)(input_size, hidden_size, num_layers=num_layers)


class PlainSeq2Seq(nn.Module):
    """The encoder-decoder of d2l 9.6-9.7 (1.0: 10.6-10.7) without attention, with nothing of seqcore:
    the decoder reads its embedded token beside the encoder's last top-layer output (the context),
    starting from the encoder's final state."""

    def __init__(self, spec: Seq2SeqSpec) -> None:
        super().__init__()
        self.spec = spec
        layers = (spec.cell, spec.hidden_size, spec.num_layers, spec.activation.value)
        self.encoder = nn.Module()
        self.encoder.embedding = nn.Embedding(spec.source_vocab_size, spec.embed_size)
        self.encoder.rnn = _fused(layers[0], spec.embed_size, *layers[1:])
        self.decoder = nn.Module()
        self.decoder.embedding = nn.Embedding(spec.target_vocab_size, spec.embed_size)
        self.decoder.rnn = _fused(layers[0], spec.embed_size + spec.hidden_size, *layers[1:])
        self.decoder.head = nn.Linear(spec.hidden_size, spec.target_vocab_size)

    def forward(self, source: torch.Tensor, decoder_inputs: torch.Tensor) -> tuple[torch.Tensor, State]:
        """source (T_src, N), decoder inputs (T_tgt, N) int64 ids -> logits (T_tgt, N, V_tgt) and the
        decoder's final state as a tuple."""
        encoded, state = self.encoder.rnn(self.encoder.embedding(source))
        embedded = self.decoder.embedding(decoder_inputs)
        context = encoded[-1].unsqueeze(0).expand(embedded.shape[0], -1, -1)
        outputs, state = self.decoder.rnn(torch.cat((embedded, context), dim=-1), state)
        return self.decoder.head(outputs), tuple(state) if isinstance(state, tuple) else (state,)


def write_weights(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """`torch.save` of a state_dict holding `arrays` (already in the foreign names)."""
    torch.save({name: torch.from_numpy(np.array(value, dtype=np.float32)) for name, value in arrays.items()},
               str(path))


def read_weights(path: str | Path) -> dict[str, np.ndarray] | list[np.ndarray]:
    """A state_dict file's tensors as NumPy (floating point as float32), or one sentence why not; a
    file of a list of tensors (`torch.save(net.params, path)`, the d2l book's scratch models) as a list."""
    path = Path(path)
    if not path.is_file():
        raise SeqcoreError(f"No PyTorch weight file at {path}.")
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt zip, a pickle of a whole module, not a torch file at all
        if "Weights only load failed" in str(error) and zipfile.is_zipfile(path):
            raise SeqcoreError(f"{path} holds more than tensors (a pickled module or optimizer?), which "
                               f"torch.load does not unpickle safely; save torch.save(model.state_dict(), "
                               f"path) instead.") from None
        reason = "not a file torch.save wrote" if "Weights only load failed" in str(error) else (
            str(error).strip().splitlines() or [type(error).__name__])[0].split(". ")[0][:200]
        raise SeqcoreError(f"{path} is not a PyTorch state_dict file that torch.load can read ({reason}); "
                           f"save one with torch.save(model.state_dict(), path).") from None
    if isinstance(loaded, (list, tuple)) and loaded and all(isinstance(v, torch.Tensor) for v in loaded):
        return [_dense(path, f"tensor {index}", value) for index, value in enumerate(loaded)]
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise SeqcoreError(f"{path} holds a {type(loaded).__name__}, not a state_dict of tensors; save it with "
                           f"torch.save(model.state_dict(), path).")
    return {str(name): _dense(path, str(name), value) for name, value in loaded.items()}


def _dense(path: Path, name: str, value: torch.Tensor) -> np.ndarray:
    """One stored tensor as NumPy; a sparse, meta or quantized one is refused in one sentence."""
    if value.is_meta:
        raise SeqcoreError(f"{path}'s {name} is a meta tensor (a shape without values, e.g. saved from a model "
                           f"built on the meta device); save the model after its weights are materialised.")
    if value.layout is not torch.strided:
        raise SeqcoreError(f"{path}'s {name} is a sparse tensor ({str(value.layout).replace('torch.', '')}); model "
                           f"weights are dense: save them with .to_dense().")
    if value.is_quantized:
        raise SeqcoreError(f"{path}'s {name} is a quantized tensor; save the float model's state_dict.")
    return (value.detach().float() if value.is_floating_point() else value.detach()).cpu().numpy()


def plain_forward(path: str | Path, spec: ModelSpec | Seq2SeqSpec, inputs: np.ndarray | tuple,
                  state: Optional[Sequence[np.ndarray]] = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Load the file at `path` into PlainModel(spec) (an encoder-decoder's into PlainSeq2Seq, its
    inputs (source, source lengths, decoder inputs), state None) with strict=True and run it on
    `inputs`: logits and final state as NumPy. The check a written file passes before it is kept."""
    model = PlainSeq2Seq(spec) if isinstance(spec, Seq2SeqSpec) else PlainModel(spec)
    try:
        model.load_state_dict(torch.load(str(path), map_location="cpu", weights_only=True), strict=True)
    except RuntimeError as error:
        raise SeqcoreError(f"The written file does not load into the plain PyTorch module "
                           f"({str(error).splitlines()[0]}).") from None
    tensors = None if state is None else tuple(torch.from_numpy(np.asarray(s, np.float32)) for s in state)
    with torch.no_grad():
        if isinstance(spec, Seq2SeqSpec):  # the source lengths matter to attention only
            logits, final = model(torch.from_numpy(inputs[0]), torch.from_numpy(inputs[2]))
        else:
            logits, final = model(torch.from_numpy(inputs), tensors)
    return logits.numpy(), [part.numpy() for part in final]
