"""The RNN encoder-decoder of d2l 9.6-9.7 (1.0: 10.6-10.7), with or without the attention of
d2l 10.3-10.4 (1.0: 11.3-11.4): spec, canonical parameters, dropout masks.

    encoder   embedding (V_src, E) -> L stacked RNN / GRU / LSTM layers of H units over the source
    decoder   embedding (V_tgt, E), beside it on every step a context c (N, H) -> L stacked layers
              starting from the encoder's final state -> dense head (V_tgt, H) on the top layer's outputs

The context (`attention`):
    none      c = the encoder's final top-layer hidden state, fixed while decoding (d2l 1.0; 0.17's
              decoder re-read c from its own state at every prediction step)
    additive  Bahdanau: at step t the query q = the decoder's top-layer hidden state before the step
              (h, also for the LSTM; at t = 0 the encoder's final one), keys = values = the
              encoder's top-layer outputs k_j (T_src, N, H); score_j = w_v . tanh(W_q q + W_k k_j)
    dot       score_j = q . k_j / sqrt(H), no parameters
    and then  a = softmax over j of the scores, those at j >= the source's valid length set to
              -1e6 first (the book's masked_softmax), c = sum_j a_j k_j
The encoder reads all T source positions, padding included; only attention reads the valid lengths.

Canonical parameters (G gates: RNN 1, GRU 3, LSTM 4; the layout of seqcore.model.params per stack):

    encoder.embedding.weight      (V_src, E)
    encoder.rnn.l{k}.weight_ih    (G*H, E for k = 0, else H)   .weight_hh (G*H, H)  .bias_ih  .bias_hh (G*H,)
    decoder.embedding.weight      (V_tgt, E)
    decoder.rnn.l{k}.weight_ih    (G*H, E + H for k = 0, else H): the embedding's columns, then c's
    decoder.rnn.l{k}.weight_hh ...
    decoder.attention.query.weight (H, H)   W_q   } additive only, no biases (d2l's AdditiveAttention
    decoder.attention.key.weight   (H, H)   W_k   } attention.W_q / W_k / w_v with the book's sizes,
    decoder.attention.score.weight (1, H)   w_v   } num_hiddens = H)
    decoder.head.weight           (V_tgt, H)     decoder.head.bias (V_tgt,)

(The book concatenates (c, embedding), the other way round: its decoder's first W_ih has c's
columns first.)

Dropout (inverted, rate p, decided in NumPy as in seqcore.model.dropout) acts where the book's
`nn.GRU(dropout=p)` and `AdditiveAttention` / `DotProductAttention(dropout=p)` act: between stacked
layers, L-1 encoder masks (T_src, N, H) on the inputs of encoder layers 1..L-1, then L-1 decoder
masks (T_tgt, N, H) likewise; with attention one more, (T_tgt, N, T_src), on the weights a before
they weigh the values (so a dropped step's weights no longer sum to 1; the weights a model reports
are those before it). None on the embeddings or the head.
"""
from __future__ import annotations

import dataclasses
import math
from enum import Enum
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from seqcore.checks import build, parse_enum, plain, positive_int
from seqcore.errors import SeqcoreError
from seqcore.model.spec import GATES, Activation, Cell, GRUReset, Impl, Init, Loss, ModelSpec

FAMILY = "seq2seq"  # the `family` a saved spec carries; a ModelSpec's dict has none
STACKS = ("encoder", "decoder")
Params = dict[str, np.ndarray]


class Attention(str, Enum):
    NONE = "none"  # the fixed context of d2l 9.7
    ADDITIVE = "additive"  # Bahdanau's, d2l's AdditiveAttention in its Seq2SeqAttentionDecoder
    DOT = "dot"  # scaled dot product, d2l's DotProductAttention in the same decoder


ATTENTION_WEIGHTS = ("query", "key", "score")  # decoder.attention.<name>.weight, additive only
MASK_FILL = -1e6  # what the book's masked_softmax writes over scores past the valid length


@dataclasses.dataclass(frozen=True)
class Seq2SeqSpec:
    """Architecture of the encoder-decoder; plain data that round-trips through JSON."""

    cell: Cell
    impl: Impl
    source_vocab_size: int
    target_vocab_size: int
    embed_size: int
    hidden_size: int
    num_layers: int = 1
    dropout: float = 0.0  # between stacked layers of both stacks, on attention weights (module docstring)
    activation: Activation = Activation.TANH  # only for Cell.RNN
    gru_reset: GRUReset = GRUReset.AFTER  # only for Cell.GRU; BEFORE only with Impl.SCRATCH
    attention: Attention = Attention.NONE
    family: str = FAMILY  # tells a checkpoint's spec from a ModelSpec

    def __post_init__(self) -> None:
        if self.family != FAMILY:
            raise SeqcoreError(f"A Seq2SeqSpec's family is {FAMILY!r}, got {self.family!r}.")
        object.__setattr__(self, "attention", parse_enum(Attention, self.attention, "attention"))
        for field in ("source_vocab_size", "target_vocab_size", "embed_size"):
            positive_int(getattr(self, field), field.replace("_", " "))
        # The recurrent fields are ModelSpec's, judged by ModelSpec's own rules.
        stack = self.stack_spec()
        for field in ("cell", "impl", "activation", "gru_reset", "dropout"):
            object.__setattr__(self, field, getattr(stack, field))

    def stack_spec(self, input_size: int = 1) -> ModelSpec:
        """A ModelSpec of one recurrent stack of this model (its head and input kind unused)."""
        return ModelSpec(cell=self.cell, impl=self.impl, input_size=input_size, hidden_size=self.hidden_size,
                         output_size=1, num_layers=self.num_layers, activation=self.activation,
                         gru_reset=self.gru_reset, dropout=self.dropout)

    @property
    def num_gates(self) -> int:
        return GATES[self.cell]

    @property
    def attends(self) -> bool:
        """Whether the context is recomputed at every decoder step (additive or dot attention)."""
        return self.attention is not Attention.NONE

    @property
    def num_states(self) -> int:
        """LSTM carries (h, c); RNN and GRU carry h alone."""
        return 2 if self.cell is Cell.LSTM else 1

    def input_width(self, stack: str, layer: int) -> int:
        """Width of what layer `layer` of `stack` reads: E (+ H for the decoder's context), else H."""
        if layer > 0:
            return self.hidden_size
        return self.embed_size + (self.hidden_size if stack == "decoder" else 0)

    def to_dict(self) -> dict[str, Any]:
        return plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Seq2SeqSpec":
        return build(cls, data)


def spec_from_dict(data: Mapping[str, Any]) -> ModelSpec | Seq2SeqSpec:
    """The spec a checkpoint saved: a Seq2SeqSpec when it carries family 'seq2seq', else a ModelSpec."""
    if "family" not in data:
        return ModelSpec.from_dict(data)
    if data["family"] != FAMILY:
        raise SeqcoreError(f"Unknown model family {data['family']!r}: this seqcore knows {FAMILY!r} "
                           f"(and ModelSpecs, which carry none).")
    return Seq2SeqSpec.from_dict(data)


LOSSES = (Loss.MASKED, Loss.MASKED_D2L)


def seq2seq_loss(kind: Loss | str) -> Loss:
    """`kind` as a Loss, refused in one sentence unless it is one of the masked losses."""
    kind = parse_enum(Loss, kind, "loss")
    if kind not in LOSSES:
        raise SeqcoreError(f"The loss {kind.value!r} is not a sequence-to-sequence loss: choose "
                           f"{' or '.join(loss.value for loss in LOSSES)}.")
    return kind


def param_shapes(spec: Seq2SeqSpec) -> dict[str, tuple[int, ...]]:
    """Every parameter's shape in canonical order (the order weights are drawn in)."""
    gh, hidden = spec.num_gates * spec.hidden_size, spec.hidden_size
    shapes: dict[str, tuple[int, ...]] = {}
    for stack, vocab in zip(STACKS, (spec.source_vocab_size, spec.target_vocab_size)):
        shapes[f"{stack}.embedding.weight"] = (vocab, spec.embed_size)
        for layer in range(spec.num_layers):
            prefix = f"{stack}.rnn.l{layer}"
            shapes[f"{prefix}.weight_ih"] = (gh, spec.input_width(stack, layer))
            shapes[f"{prefix}.weight_hh"] = (gh, hidden)
            shapes[f"{prefix}.bias_ih"] = (gh,)
            shapes[f"{prefix}.bias_hh"] = (gh,)
    if spec.attention is Attention.ADDITIVE:
        for name in ATTENTION_WEIGHTS:
            shapes[f"decoder.attention.{name}.weight"] = (1 if name == "score" else hidden, hidden)
    shapes["decoder.head.weight"] = (spec.target_vocab_size, hidden)
    shapes["decoder.head.bias"] = (spec.target_vocab_size,)
    return shapes


def init_params(spec: Seq2SeqSpec, scheme: Init | str = Init.UNIFORM, seed: int = 0) -> Params:
    """Draw every parameter from one seeded generator, with seqcore.model.params's schemes:
    UNIFORM PyTorch's defaults (N(0, 1) embeddings, U(-1/sqrt(H), 1/sqrt(H)) for the rest: every
    nn.Linear here reads H features), NORMAL N(0, 0.01) weights and zero biases, XAVIER Glorot
    per gate block (whole matrices for the head and attention) and zero biases."""
    scheme = parse_enum(Init, scheme, "init")
    rng = np.random.default_rng(seed)
    return {name: _draw(rng, scheme, name, shape, spec).astype(np.float32)
            for name, shape in param_shapes(spec).items()}


def _draw(rng: np.random.Generator, scheme: Init, name: str, shape: tuple[int, ...],
          spec: Seq2SeqSpec) -> np.ndarray:
    is_bias = ".bias" in name
    if name.endswith("embedding.weight"):
        if scheme is Init.UNIFORM:  # nn.Embedding's default
            return rng.standard_normal(shape)
        if scheme is Init.NORMAL:
            return rng.normal(0.0, 0.01, shape)
        return _xavier(rng, shape, fan_in=shape[1], fan_out=shape[0])
    if scheme is Init.UNIFORM:  # nn.GRU / LSTM / RNN and nn.Linear(H, V): both bounds are 1/sqrt(H)
        bound = 1.0 / math.sqrt(spec.hidden_size)
        return rng.uniform(-bound, bound, shape)
    if is_bias:
        return np.zeros(shape)
    if scheme is Init.NORMAL:
        return rng.normal(0.0, 0.01, shape)
    if name == "decoder.head.weight" or name.startswith("decoder.attention."):
        return _xavier(rng, shape, fan_in=shape[1], fan_out=shape[0])
    blocks = [_xavier(rng, (spec.hidden_size, shape[1]), fan_in=shape[1], fan_out=spec.hidden_size)
              for _ in range(spec.num_gates)]
    return np.concatenate(blocks, axis=0)


def _xavier(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, shape)


def check_params(spec: Seq2SeqSpec, params: Mapping[str, np.ndarray]) -> Params:
    """`params` as float32 arrays after checking names and shapes against `spec`."""
    expected = param_shapes(spec)
    missing, extra = sorted(set(expected) - set(params)), sorted(set(params) - set(expected))
    if missing or extra:
        raise SeqcoreError(f"Parameters do not fit the encoder-decoder: missing {missing or 'none'}, "
                           f"unexpected {extra or 'none'}.")
    checked: Params = {}
    for name, shape in expected.items():
        value = np.asarray(params[name])
        if value.shape != shape:
            raise SeqcoreError(f"Parameter {name} has shape {value.shape}, the encoder-decoder needs {shape}.")
        checked[name] = value.astype(np.float32, copy=False)
    return checked


def stack_params(params: Mapping[str, np.ndarray], stack: str) -> dict[str, np.ndarray]:
    """One stack's recurrent parameters keyed 'l{k}.weight_ih' ... (no prefix), as the recurrent
    stacks of both backends name them in their parameter_map."""
    prefix = f"{stack}.rnn."
    return {name[len(prefix):]: value for name, value in params.items() if name.startswith(prefix)}


def mask_shapes(spec: Seq2SeqSpec, source_steps: int, target_steps: int,
                batch_size: int) -> list[tuple[int, ...]]:
    """The masks' shapes: encoder's, decoder's, then attention's; [] without dropout (and without
    attention, with one layer)."""
    if spec.dropout == 0:
        return []
    between = spec.num_layers - 1
    weights = [(target_steps, batch_size, source_steps)] if spec.attends else []
    return ([(source_steps, batch_size, spec.hidden_size)] * between
            + [(target_steps, batch_size, spec.hidden_size)] * between + weights)


def draw_masks(spec: Seq2SeqSpec, rng: np.random.Generator, source_steps: int, target_steps: int,
               batch_size: int) -> list[np.ndarray] | None:
    """float32 masks of 0 and 1/(1-p) drawn from `rng` in mask_shapes order; None when there are none."""
    shapes = mask_shapes(spec, source_steps, target_steps, batch_size)
    if not shapes:
        return None
    scale = np.float32(1.0 / (1.0 - spec.dropout))
    # U[0, 1) >= p keeps a unit with probability 1 - p.
    return [(rng.random(shape) >= spec.dropout).astype(np.float32) * scale for shape in shapes]


class SplitMasks(NamedTuple):
    """One training pass's masks by where they act; None where there are none."""

    encoder: list | None  # L-1 of (T_src, N, H)
    decoder: list | None  # L-1 of (T_tgt, N, H)
    attention: Any  # (T_tgt, N, T_src) or None


def split_masks(spec: Seq2SeqSpec, masks: Sequence[Any] | None, source_steps: int,
                target_steps: int, batch_size: int) -> SplitMasks:
    """`masks` by where they act, after checking them against mask_shapes; all None without masks.
    Works on any arrays with a shape (NumPy or either framework's)."""
    if masks is None or len(masks) == 0:
        return SplitMasks(None, None, None)
    shapes = mask_shapes(spec, source_steps, target_steps, batch_size)
    got = [tuple(mask.shape) for mask in masks]
    if got != shapes:
        raise SeqcoreError(f"Dropout masks of shapes {got} do not fit this encoder-decoder and batch, "
                           f"which take {shapes or 'none'}.")
    between = spec.num_layers - 1
    masks = list(masks)
    return SplitMasks(masks[:between] or None, masks[between:2 * between] or None,
                      masks[2 * between] if spec.attends else None)
