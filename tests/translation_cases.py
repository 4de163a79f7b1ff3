"""Encoder-decoder cases shared by the translation numerics tests and their worker (NumPy only).

A case is a Seq2SeqSpec plus seeds: the worker and the test rebuild the same canonical parameters,
batch (with padding: some valid lengths are short) and dropout masks from it, so only results
cross the process boundary. Sizes are tiny so that float64 finite differences stay cheap.

`handmade()` is an encoder-decoder whose decoder is a first-order table P(next | previous token),
built from exact weights (one-hot embeddings, tanh(30) = 1, a head holding the table's log
probabilities), on which greedy decoding is wrong and beam search finds the better translation.
"""
from __future__ import annotations

import itertools

import numpy as np

from seqcore.model.seq2seq import Attention, Seq2SeqSpec, draw_masks, init_params, param_shapes
from seqcore.model.spec import Activation, Cell, GRUReset, Impl

SOURCE_STEPS, TARGET_STEPS, BATCH = 4, 5, 3
SOURCE_VOCAB, TARGET_VOCAB, EMBED, HIDDEN = 7, 8, 3, 3
SOURCE_VALID, TARGET_VALID = (4, 2, 3), (5, 1, 3)  # positions at or past a valid length are padding
PAD, BOS, EOS = 1, 2, 3  # the target vocabulary's reserved ids (seqcore.data.translation's order)
DROPOUT = 0.4
# Attention cases draw their weights x3: at PyTorch's default scale these tiny models attend almost
# uniformly (weights 0.25 +- 0.003) and the context barely moves the logits, so a decoder that took
# its query from the wrong state would still meet the logits' tolerance.
ATTENTION_SCALE = 3.0
MAX_LEN, BEAM = 6, 3


def spec_for(cell: Cell, impl: Impl, num_layers: int, dropout: float = 0.0,
             activation: Activation = Activation.TANH, gru_reset: GRUReset = GRUReset.AFTER,
             attention: Attention = Attention.NONE) -> Seq2SeqSpec:
    return Seq2SeqSpec(cell=cell, impl=impl, source_vocab_size=SOURCE_VOCAB, target_vocab_size=TARGET_VOCAB,
                       embed_size=EMBED, hidden_size=HIDDEN, num_layers=num_layers, dropout=dropout,
                       activation=activation, gru_reset=gru_reset, attention=attention)


def cases() -> list[tuple[str, Seq2SeqSpec]]:
    """Every cell x impl with 1 layer, 2 layers, 2 layers with dropout; ReLU RNN; GRU reset-before;
    then attention_cases()."""
    found = []
    for cell, impl, (layers, dropout) in itertools.product(Cell, Impl, ((1, 0.0), (2, 0.0), (2, DROPOUT))):
        found.append((f"{cell.value}-{impl.value}-l{layers}{'-dropout' if dropout else ''}",
                      spec_for(cell, impl, layers, dropout)))
    for impl in Impl:
        found.append((f"rnn-relu-{impl.value}-l2", spec_for(Cell.RNN, impl, 2, activation=Activation.RELU)))
    found.append(("gru-before-scratch-l2-dropout",
                  spec_for(Cell.GRU, Impl.SCRATCH, 2, DROPOUT, gru_reset=GRUReset.BEFORE)))
    return found + attention_cases()


def attention_cases() -> list[tuple[str, Seq2SeqSpec]]:
    """Additive and dot attention x every cell x impl with 1 layer, 2 layers, 2 layers with dropout
    (between layers and on the weights); and 1 layer with dropout, where only the weights' acts."""
    found = []
    for attention, cell, impl, (layers, dropout) in itertools.product(
            (Attention.ADDITIVE, Attention.DOT), Cell, Impl, ((1, 0.0), (2, 0.0), (2, DROPOUT))):
        found.append((f"{cell.value}-{attention.value}-{impl.value}-l{layers}{'-dropout' if dropout else ''}",
                      spec_for(cell, impl, layers, dropout, attention=attention)))
    for attention, impl in itertools.product((Attention.ADDITIVE, Attention.DOT), Impl):
        found.append((f"gru-{attention.value}-{impl.value}-l1-dropout",
                      spec_for(Cell.GRU, impl, 1, DROPOUT, attention=attention)))
    return found


def case_data(spec: Seq2SeqSpec, seed: int = 3) -> dict[str, np.ndarray]:
    """Parameters (float32, canonical names; x ATTENTION_SCALE with attention) and one batch,
    time-major, padded past the valid lengths."""
    rng = np.random.default_rng(seed)
    source = rng.integers(4, SOURCE_VOCAB, (SOURCE_STEPS, BATCH))
    targets = rng.integers(4, TARGET_VOCAB, (TARGET_STEPS, BATCH))
    source_valid, target_valid = np.array(SOURCE_VALID), np.array(TARGET_VALID)
    source[np.arange(SOURCE_STEPS)[:, None] >= source_valid] = PAD
    targets[np.arange(TARGET_STEPS)[:, None] >= target_valid] = PAD
    decoder_inputs = np.concatenate([np.full((1, BATCH), BOS), targets[:-1]])
    scale = np.float32(ATTENTION_SCALE if spec.attends else 1.0)
    params = {name: value * scale for name, value in init_params(spec, "uniform", seed).items()}
    return {"params": params, "source": source, "source_valid": source_valid,
            "decoder_inputs": decoder_inputs, "targets": targets, "target_valid": target_valid}


def case_masks(spec: Seq2SeqSpec, seed: int = 5) -> list[np.ndarray] | None:
    return draw_masks(spec, np.random.default_rng(seed), SOURCE_STEPS, TARGET_STEPS, BATCH)


def hypothesis_arrays(hypotheses, source_steps: int) -> dict[str, np.ndarray]:
    """tokens (B, MAX_LEN) padded with -1, log_prob (B,), and with attention the weights
    (B, MAX_LEN, T_src) padded with -1 past each hypothesis' length."""
    tokens = np.full((len(hypotheses), MAX_LEN), -1)
    weights = np.full((len(hypotheses), MAX_LEN, source_steps), -1.0)
    for row, hypothesis in enumerate(hypotheses):
        tokens[row, :len(hypothesis.tokens)] = hypothesis.tokens
        if hypothesis.attention is not None:
            weights[row, :hypothesis.length] = hypothesis.attention
    found = {"tokens": tokens, "log_prob": np.array([h.log_prob for h in hypotheses])}
    if hypotheses[0].attention is not None:
        found["attention"] = weights
    return found


# The hand-made table: target ids 0 <unk>, 1 <pad>, 2 <bos>, 3 <eos>, 4 'a', 5 'b'.
A, B = 4, 5
TABLE = {BOS: {A: 0.5, B: 0.4, EOS: 0.1}, A: {EOS: 0.35, A: 0.33, B: 0.32}, B: {EOS: 0.9, A: 0.05, B: 0.05}}
HANDMADE_SOURCE = np.array([[1], [2], [3]])  # (T, 1): any ids, the table ignores the source


def handmade(impl: Impl = Impl.SCRATCH) -> tuple[Seq2SeqSpec, dict[str, np.ndarray]]:
    """Greedy: <bos> -> a (0.5) -> <eos> (0.35), P = 0.175; beam 2 finds b (0.4) -> <eos> (0.9), P = 0.36."""
    vocab = 6
    spec = Seq2SeqSpec(cell=Cell.RNN, impl=impl, source_vocab_size=4, target_vocab_size=vocab,
                       embed_size=vocab, hidden_size=vocab)
    params = {name: np.zeros(shape, np.float32) for name, shape in param_shapes(spec).items()}
    params["encoder.embedding.weight"] = np.random.default_rng(0).standard_normal((4, vocab)).astype(np.float32)
    params["decoder.embedding.weight"] = np.eye(vocab, dtype=np.float32)
    # h = tanh(30 e_previous) = e_previous exactly: W_hh and the context's columns are zero.
    params["decoder.rnn.l0.weight_ih"][:, :vocab] = 30 * np.eye(vocab, dtype=np.float32)
    probabilities = np.full((vocab, vocab), 1e-6)  # [next, previous]; unlisted moves nearly impossible
    for previous, row in TABLE.items():
        for following, p in row.items():
            probabilities[following, previous] = p
    probabilities /= probabilities.sum(axis=0, keepdims=True)
    params["decoder.head.weight"] = np.log(probabilities).astype(np.float32)  # logits = column `previous`
    return spec, params
