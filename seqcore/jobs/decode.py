"""Greedy decoding and beam search, written once over a small step model (d2l 9.7-9.8, 1.0 10.7-10.8).

A step model encodes once and then runs one decoder step for a batch of hypotheses:

    start(source (T, N) ids, source_valid (N,)) -> state of N rows (opaque to this module)
    step(tokens (B,) ids, state of B rows)      -> (logits (B, V) NumPy, new state,
                                                    attention weights (B, T) NumPy or None)
    select(state, rows (B',) ints)              -> the state of rows `rows`, in that order (repeats allowed)

seqcore.model.seq2seq_reference.ReferenceTranslator and each backend's seq2seq.Translator are one.
Scores are log-probabilities in float64, summed over the generated tokens (<eos> included once
emitted); a hypothesis' tokens never include <eos>. With attention each hypothesis carries the
weights of every step it was scored on, (length, T): row i the weights over the source positions
(padding included, weight 0 there) with which token i (or the final <eos>) was predicted, as the
book's predict_seq2seq collects them for its heat map.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import numpy as np

from seqcore.checks import positive_int
from seqcore.errors import SeqcoreError
from seqcore.model.reference import log_softmax

BOOK_ALPHA = 0.75  # d2l's length-normalisation exponent


class StepModel(Protocol):
    def start(self, source: np.ndarray, source_valid: np.ndarray) -> Any: ...

    def step(self, tokens: np.ndarray, state: Any) -> tuple[np.ndarray, Any, np.ndarray | None]: ...

    def select(self, state: Any, rows: np.ndarray) -> Any: ...


@dataclasses.dataclass(frozen=True)
class Hypothesis:
    tokens: tuple[int, ...]  # generated ids, without <eos>
    log_prob: float  # log P(tokens [, <eos>] | source)
    finished: bool  # it ended with <eos>; False: cut at the length limit
    # (length, T_src) float64: the attention weights of each scored step; None without attention.
    # Not compared: two hypotheses are equal when their tokens and scores are.
    attention: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def length(self) -> int:
        """L of the book's length normalisation: the tokens scored, <eos> included once emitted."""
        return len(self.tokens) + int(self.finished)

    def score(self, alpha: float) -> float:
        """log P / L^alpha (d2l 9.8's final ranking; alpha 0: plain log-probability)."""
        return self.log_prob / self.length ** alpha


def greedy(model: StepModel, source: np.ndarray, source_valid: np.ndarray, bos: int, eos: int,
           max_len: int) -> list[Hypothesis]:
    """The book's predict_seq2seq for N sentences at once: feed <bos>, take the argmax, stop at
    <eos> or after max_len tokens. One hypothesis per sentence (source column)."""
    positive_int(max_len, "max length")
    num = np.shape(source)[1]
    state = model.start(source, source_valid)
    tokens = np.full(num, bos, dtype=np.int64)
    generated: list[list[int]] = [[] for _ in range(num)]
    weights: list[list[np.ndarray]] = [[] for _ in range(num)]
    log_prob = np.zeros(num)
    finished = np.zeros(num, dtype=bool)
    attends = False
    for _ in range(max_len):
        logits, state, step_weights = model.step(tokens, state)
        scores = log_softmax(_checked(logits, num))
        step_weights = _checked_weights(step_weights, num, source)
        attends = step_weights is not None
        tokens = scores.argmax(axis=-1)
        for row in np.flatnonzero(~finished):
            log_prob[row] += scores[row, tokens[row]]
            if attends:
                weights[row].append(step_weights[row])
            if tokens[row] == eos:
                finished[row] = True
            else:
                generated[row].append(int(tokens[row]))
        if finished.all():
            break
    return [Hypothesis(tuple(generated[row]), float(log_prob[row]), bool(finished[row]),
                       np.stack(weights[row]) if attends else None) for row in range(num)]


def beam_search(model: StepModel, source: np.ndarray, source_valid: np.ndarray, bos: int, eos: int,
                max_len: int, beam_size: int, alpha: float = BOOK_ALPHA) -> Hypothesis:
    """The best of beam_candidates by log P / L^alpha (ties: the earlier candidate)."""
    candidates = beam_candidates(model, source, source_valid, bos, eos, max_len, beam_size)
    return max(candidates, key=lambda hypothesis: hypothesis.score(alpha))


def beam_candidates(model: StepModel, source: np.ndarray, source_valid: np.ndarray, bos: int, eos: int,
                    max_len: int, beam_size: int) -> list[Hypothesis]:
    """Beam search for one sentence (source (T, 1)): the final candidates, finished ones in the
    order they finished, then those cut at max_len by log-probability.

    Every step extends each live hypothesis by every token and keeps the beam_size - (number
    finished) best extensions by log-probability (ties: lower hypothesis, then lower token id);
    an extension by <eos> is finished and leaves the beam. So beam_size hypotheses are always
    held, and beam size 1 is greedy decoding exactly.
    """
    positive_int(max_len, "max length")
    positive_int(beam_size, "beam size")
    if np.shape(source)[1] != 1:
        raise SeqcoreError(f"Beam search translates one sentence at a time, got {np.shape(source)[1]}.")
    state = model.start(source, source_valid)
    live = [Hypothesis((), 0.0, False)]
    last = np.array([bos], dtype=np.int64)
    finished: list[Hypothesis] = []
    for _ in range(max_len):
        logits, state, step_weights = model.step(last, state)
        scores = log_softmax(_checked(logits, len(live)))  # (B, V)
        step_weights = _checked_weights(step_weights, len(live), source)
        totals = np.array([h.log_prob for h in live])[:, None] + scores
        order = _top(totals.ravel(), beam_size - len(finished))
        parents, extensions = np.divmod(order, scores.shape[1])
        kept_rows, kept = [], []
        for parent, token, total in zip(parents, extensions, totals.ravel()[order]):
            tokens = live[parent].tokens
            weights = _extended(live[parent].attention, step_weights, parent)
            if token == eos:
                finished.append(Hypothesis(tokens, float(total), True, weights))
            else:
                kept_rows.append(parent)
                kept.append(Hypothesis(tokens + (int(token),), float(total), False, weights))
        if not kept:
            break
        live = kept
        state = model.select(state, np.array(kept_rows, dtype=np.int64))
        last = np.array([h.tokens[-1] for h in live], dtype=np.int64)
    else:
        finished.extend(live)  # cut at max_len, kept unfinished
    return finished


def beam_search_batch(model: StepModel, source: np.ndarray, source_valid: np.ndarray, bos: int, eos: int,
                      max_len: int, beam_size: int, alpha: float = BOOK_ALPHA) -> list[Hypothesis]:
    """beam_search for every source column at once: each sentence's beam is the one beam_candidates
    keeps (the same selection, sentence by sentence), but one step-model call serves the live
    hypotheses of all sentences (what makes it fast on a framework, where a call costs far more
    than its rows)."""
    positive_int(max_len, "max length")
    positive_int(beam_size, "beam size")
    count = np.shape(source)[1]
    state = model.start(source, source_valid)
    live: list[list[Hypothesis]] = [[Hypothesis((), 0.0, False)] for _ in range(count)]
    finished: list[list[Hypothesis]] = [[] for _ in range(count)]
    active = list(range(count))  # sentences with live hypotheses, in the order of the state's rows
    last = np.full(count, bos, dtype=np.int64)
    for _ in range(max_len):
        logits, state, step_weights = model.step(last, state)
        rows = sum(len(live[n]) for n in active)
        scores = log_softmax(_checked(logits, rows))  # (rows, V): each active sentence's hypotheses in turn
        step_weights = _checked_weights(step_weights, rows, source)
        kept_rows, still, start = [], [], 0
        for n in active:
            mine = slice(start, start + len(live[n]))
            totals = np.array([h.log_prob for h in live[n]])[:, None] + scores[mine]
            order = _top(totals.ravel(), beam_size - len(finished[n]))
            parents, extensions = np.divmod(order, scores.shape[1])
            kept = []
            for parent, token, total in zip(parents, extensions, totals.ravel()[order]):
                weights = _extended(live[n][parent].attention, None if step_weights is None else step_weights[mine],
                                    parent)
                if token == eos:
                    finished[n].append(Hypothesis(live[n][parent].tokens, float(total), True, weights))
                else:
                    kept_rows.append(start + parent)
                    kept.append(Hypothesis(live[n][parent].tokens + (int(token),), float(total), False, weights))
            start += len(live[n])
            if kept:
                live[n] = kept
                still.append(n)
        active = still
        if not active:
            break
        state = model.select(state, np.array(kept_rows, dtype=np.int64))
        last = np.array([h.tokens[-1] for n in active for h in live[n]], dtype=np.int64)
    for n in active:  # cut at max_len, kept unfinished
        finished[n].extend(live[n])
    return [max(candidates, key=lambda hypothesis: hypothesis.score(alpha)) for candidates in finished]


def translate(model: StepModel, source: np.ndarray, source_valid: np.ndarray, bos: int, eos: int,
              max_len: int, beam_size: int = 1, alpha: float = BOOK_ALPHA, batched: bool = False) -> list[Hypothesis]:
    """One hypothesis per source column: greedy for the whole batch when beam_size is 1 (the book's
    decoding), else beam search sentence by sentence, or of all at once with batched=True
    (beam_search_batch: the same beams, float32 scores rounded as the larger batch rounds them)."""
    positive_int(beam_size, "beam size")
    if beam_size == 1:
        return greedy(model, source, source_valid, bos, eos, max_len)
    source, source_valid = np.asarray(source), np.asarray(source_valid)
    if batched:
        return beam_search_batch(model, source, source_valid, bos, eos, max_len, beam_size, alpha)
    return [beam_search(model, source[:, [n]], source_valid[[n]], bos, eos, max_len, beam_size, alpha)
            for n in range(source.shape[1])]


def _top(values: np.ndarray, count: int) -> np.ndarray:
    """The indices of the `count` largest values, largest first, ties in index order: the first
    `count` of a stable argsort of -values, without sorting all B x V of them."""
    if count >= values.size:
        return np.argsort(-values, kind="stable")[:count]
    threshold = np.partition(values, values.size - count)[values.size - count]
    chosen = np.flatnonzero(values >= threshold)  # ascending, every tie of the threshold included
    return chosen[np.argsort(-values[chosen], kind="stable")][:count]


def _checked(logits: Any, rows: int) -> np.ndarray:
    """A step's logits as float64 (rows, V), or one sentence on a step model that broke the contract."""
    array = np.asarray(logits, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != rows:
        raise SeqcoreError(f"A decoder step returned logits of shape {array.shape}, not ({rows}, V).")
    return array


def _checked_weights(weights: Any, rows: int, source: np.ndarray) -> np.ndarray | None:
    """A step's attention weights as float64 (rows, T_src), None from a model without attention."""
    if weights is None:
        return None
    array = np.asarray(weights, dtype=np.float64)
    if array.shape != (rows, np.shape(source)[0]):
        raise SeqcoreError(f"A decoder step returned attention weights of shape {array.shape}, "
                           f"not ({rows}, {np.shape(source)[0]}) (hypotheses, source positions).")
    return array


def _extended(history: np.ndarray | None, step_weights: np.ndarray | None, row: int) -> np.ndarray | None:
    """A parent's weights (length, T_src) with this step's row of `step_weights` below them."""
    if step_weights is None:
        return None
    return step_weights[row][None] if history is None else np.concatenate([history, step_weights[row][None]])
