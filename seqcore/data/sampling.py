"""Minibatch samplers for language models: token ids -> (X, Y) windows, decided once in NumPy.

Every batch is a pair of int64 arrays of shape (batch, steps), batch-major, with Y the token
after each X token. All randomness comes from the `np.random.Generator` passed in, so a seed
gives the same batches on every backend. Two d2l pitfalls are fixed in seqcore's own samplers
(SEQUENTIAL, RANDOM): the random offset is drawn from [0, num_steps) (d2l's sequential sampler
could draw num_steps itself), and neither sampler drops the corpus tail for good (d2l's random
sampler never reached it). The book's samplers are here too, pitfalls included, so that a run
can be set beside the book (seqcore.jobs.presets): D2L_SEQUENTIAL and D2L_RANDOM are d2l 0.17's
`seq_data_iter_sequential` / `seq_data_iter_random`, WINDOWS is d2l 1.0's `TimeMachine` loader.
"""
from __future__ import annotations

from enum import Enum
from typing import Iterator, Sequence

import numpy as np

from seqcore.errors import SeqcoreError


class Sampler(str, Enum):
    SEQUENTIAL = "sequential"  # rows continue across batches: state carried and detached
    RANDOM = "random"  # independent windows: state reset every batch
    D2L_SEQUENTIAL = "d2l-sequential"  # d2l 0.17: offset in [0, num_steps], short tail dropped
    D2L_RANDOM = "d2l-random"  # d2l 0.17: offset in [0, num_steps), the partial batch dropped
    WINDOWS = "windows"  # d2l 1.0: every overlapping window, shuffled; state reset every batch


def carries_state(kind: Sampler | str) -> bool:
    """True for the samplers whose row i continues row i of the previous batch."""
    return _sampler(kind) in (Sampler.SEQUENTIAL, Sampler.D2L_SEQUENTIAL)


Batch = tuple[np.ndarray, np.ndarray]  # X (batch, steps) int64, Y (batch, steps) int64


def _as_ids(ids: Sequence[int] | np.ndarray) -> np.ndarray:
    array = np.asarray(ids)
    if array.ndim != 1 or not (array.size == 0 or np.issubdtype(array.dtype, np.integer)):
        raise SeqcoreError(
            f"Token ids must be a 1-D sequence of integers, got shape {array.shape}."
        )
    return array.astype(np.int64, copy=False)


def _check_sizes(batch_size: int, num_steps: int) -> None:
    for value, flag in ((batch_size, "--batch-size"), (num_steps, "--num-steps")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise SeqcoreError(f"{flag} must be a positive integer, got {value!r}.")


def check_fits(num_tokens: int, batch_size: int, num_steps: int) -> None:
    """Raise unless `num_tokens` yields one full batch at every offset in [0, num_steps).

    The worst offset, num_steps - 1, plus the one-token shift of Y, needs
    batch_size * num_steps + num_steps tokens in all.
    """
    _check_sizes(batch_size, num_steps)
    needed = batch_size * num_steps + num_steps
    if num_tokens < needed:
        raise SeqcoreError(
            f"The text has {num_tokens} tokens but one batch needs {needed} "
            f"(batch size {batch_size} x {num_steps} steps + {num_steps}); lower --batch-size "
            f"or --num-steps, or use a longer corpus."
        )


def random_batches(
    ids: Sequence[int] | np.ndarray, batch_size: int, num_steps: int, rng: np.random.Generator
) -> Iterator[Batch]:
    """Shuffled, independent windows; the hidden state must be reset for every batch.

    Windows start at o + k * num_steps for a fresh offset o in [0, num_steps) and every k whose
    window and next-token target fit. The last partial batch is yielded too, so offset
    (len(ids) - 1) % num_steps ends exactly on the final token: over epochs, every token is read.
    """
    ids = _as_ids(ids)
    check_fits(len(ids), batch_size, num_steps)
    offset = int(rng.integers(0, num_steps))  # exclusive bound: o < num_steps
    num_windows = (len(ids) - 1 - offset) // num_steps  # each needs num_steps + 1 tokens
    starts = rng.permutation(offset + num_steps * np.arange(num_windows))  # (num_windows,)
    steps = np.arange(num_steps)  # (S,)
    for first in range(0, num_windows, batch_size):
        index = starts[first:first + batch_size, None] + steps  # (B, S), B <= batch_size
        yield ids[index], ids[index + 1]  # fancy indexing copies: the corpus stays untouched


def sequential_batches(
    ids: Sequence[int] | np.ndarray,
    batch_size: int,
    num_steps: int,
    rng: np.random.Generator | None = None,
    *,
    offset: int | None = None,
) -> Iterator[Batch]:
    """Rows that continue from one batch to the next; carry and detach the hidden state.

    After a fresh offset o in [0, num_steps), the text is cut into batch_size equal rows; row i
    of batch b + 1 continues row i of batch b. A final window shorter than num_steps is yielded
    too, so each row's tail is trained on. For evaluation, pass a fixed `offset` (e.g. 0) and no
    `rng`: then the text only has to give every row one token, not one full batch.
    """
    ids = _as_ids(ids)
    if offset is None:
        if rng is None:
            raise SeqcoreError("The sequential sampler needs a random generator or a fixed offset.")
        check_fits(len(ids), batch_size, num_steps)
        offset = int(rng.integers(0, num_steps))  # d2l drew from [0, num_steps]: a known bug
    else:
        _check_sizes(batch_size, num_steps)
        is_int = isinstance(offset, (int, np.integer)) and not isinstance(offset, bool)
        if not is_int or not 0 <= offset < num_steps:
            raise SeqcoreError(
                f"The offset must be an integer in [0, {num_steps}), got {offset!r}."
            )
        if len(ids) - 1 - offset < batch_size:
            raise SeqcoreError(
                f"The text has {len(ids)} tokens, too few for {batch_size} rows after offset "
                f"{offset}; lower --batch-size or use a longer text."
            )
    usable = ((len(ids) - 1 - offset) // batch_size) * batch_size  # -1: room for Y's shift
    xs = ids[offset:offset + usable].reshape(batch_size, -1)  # (B, L)
    ys = ids[offset + 1:offset + 1 + usable].reshape(batch_size, -1)  # (B, L)
    row_length = xs.shape[1]
    for start in range(0, row_length, num_steps):
        stop = start + num_steps  # the last window may be shorter than num_steps
        yield xs[:, start:stop].copy(), ys[:, start:stop].copy()  # (B, S') each


def d2l_sequential_batches(ids: Sequence[int] | np.ndarray, batch_size: int, num_steps: int,
                           rng: np.random.Generator | None = None, *, offset: int | None = None
                           ) -> Iterator[Batch]:
    """d2l 0.17's `seq_data_iter_sequential`: an offset o drawn from [0, num_steps] (the book's
    `random.randint(0, num_steps)`, inclusive), batch_size equal rows of the text after it, and
    only the full windows of num_steps: the short tail of each row is never trained on."""
    ids = _as_ids(ids)
    _check_sizes(batch_size, num_steps)
    needed = batch_size * num_steps + num_steps + 1  # one full window at the worst offset, num_steps
    if len(ids) < needed:
        raise SeqcoreError(f"The text has {len(ids)} tokens but d2l's sequential sampler needs {needed} "
                           f"(batch size {batch_size} x {num_steps} steps + {num_steps} + 1); lower "
                           f"--batch-size or --num-steps, or use a longer corpus.")
    if offset is None:
        if rng is None:
            raise SeqcoreError("The sequential sampler needs a random generator or a fixed offset.")
        offset = int(rng.integers(0, num_steps + 1))  # inclusive, as the book draws it
    usable = ((len(ids) - offset - 1) // batch_size) * batch_size
    xs = ids[offset:offset + usable].reshape(batch_size, -1)  # (B, L)
    ys = ids[offset + 1:offset + 1 + usable].reshape(batch_size, -1)  # (B, L)
    for start in range(0, (xs.shape[1] // num_steps) * num_steps, num_steps):
        yield xs[:, start:start + num_steps].copy(), ys[:, start:start + num_steps].copy()  # (B, S)


def d2l_random_batches(ids: Sequence[int] | np.ndarray, batch_size: int, num_steps: int,
                       rng: np.random.Generator, *, offset: int | None = None) -> Iterator[Batch]:
    """d2l 0.17's `seq_data_iter_random`: an offset drawn from [0, num_steps) (or the one given),
    the windows at o + k * num_steps shuffled, and only full batches (the rest are dropped)."""
    ids = _as_ids(ids)
    check_fits(len(ids), batch_size, num_steps)
    offset = int(rng.integers(0, num_steps)) if offset is None else offset
    num_windows = (len(ids) - offset - 1) // num_steps
    starts = rng.permutation(offset + num_steps * np.arange(num_windows))  # (num_windows,)
    steps = np.arange(num_steps)  # (S,)
    for first in range(0, (num_windows // batch_size) * batch_size, batch_size):
        index = starts[first:first + batch_size, None] + steps  # (B, S)
        yield ids[index], ids[index + 1]


def window_batches(ids: Sequence[int] | np.ndarray, batch_size: int, num_steps: int,
                   rng: np.random.Generator | None = None) -> Iterator[Batch]:
    """d2l 1.0's `TimeMachine` loader: every window ids[i : i + num_steps + 1] (i = 0 .. len - num_steps
    - 1), shuffled when `rng` is given (a DataLoader with shuffle=True) and in order without it
    (validation), in batches of batch_size with the partial last batch kept. Windows overlap, so no
    state is carried from one batch to the next."""
    ids = _as_ids(ids)
    _check_sizes(batch_size, num_steps)
    num_windows = len(ids) - num_steps
    if num_windows < 1:
        raise SeqcoreError(f"The text has {len(ids)} tokens, too few for one window of {num_steps} steps "
                           f"and its next-token target; lower --num-steps or use a longer text.")
    starts = np.arange(num_windows) if rng is None else rng.permutation(num_windows)  # (num_windows,)
    steps = np.arange(num_steps)  # (S,)
    for first in range(0, num_windows, batch_size):
        index = starts[first:first + batch_size, None] + steps  # (B, S), B <= batch_size
        yield ids[index], ids[index + 1]


def _sampler(kind: Sampler | str) -> Sampler:
    try:
        return Sampler(kind)
    except ValueError:
        choices = ", ".join(member.value for member in Sampler)
        raise SeqcoreError(f"Unknown sampler {kind!r}: choose one of {choices}.") from None


def batches(
    kind: Sampler | str,
    ids: Sequence[int] | np.ndarray,
    batch_size: int,
    num_steps: int,
    rng: np.random.Generator,
) -> Iterator[Batch]:
    """One epoch of batches from the sampler named by `kind`."""
    sampler = _sampler(kind)
    if sampler is Sampler.WINDOWS:
        return window_batches(ids, batch_size, num_steps, rng)
    make = {Sampler.SEQUENTIAL: sequential_batches, Sampler.RANDOM: random_batches,
            Sampler.D2L_SEQUENTIAL: d2l_sequential_batches, Sampler.D2L_RANDOM: d2l_random_batches}[sampler]
    return make(ids, batch_size, num_steps, rng)


def check_sampler_fits(kind: Sampler | str, num_tokens: int, batch_size: int, num_steps: int) -> None:
    """Raise unless the sampler `kind` gets a batch out of `num_tokens` tokens at every offset."""
    sampler = _sampler(kind)
    if sampler is Sampler.WINDOWS:
        _check_sizes(batch_size, num_steps)
        if num_tokens - num_steps < 1:
            raise SeqcoreError(f"The text has {num_tokens} tokens, too few for one window of {num_steps} "
                               f"steps and its next-token target; lower --num-steps or use a longer text.")
    elif sampler is Sampler.D2L_SEQUENTIAL:
        next(d2l_sequential_batches(np.zeros(num_tokens, np.int64), batch_size, num_steps, offset=num_steps))
    else:
        check_fits(num_tokens, batch_size, num_steps)


def num_batches(kind: Sampler | str, num_tokens: int, batch_size: int, num_steps: int) -> int:
    """The most batches one epoch can yield (at offset 0); a progress-bar total."""
    sampler = _sampler(kind)
    check_sampler_fits(sampler, num_tokens, batch_size, num_steps)
    if sampler is Sampler.WINDOWS:
        return -(-(num_tokens - num_steps) // batch_size)  # ceil: the partial batch counts
    if sampler in (Sampler.RANDOM, Sampler.D2L_RANDOM):
        num_windows = (num_tokens - 1) // num_steps
        return num_windows // batch_size if sampler is Sampler.D2L_RANDOM else -(-num_windows // batch_size)
    row_length = (num_tokens - 1) // batch_size
    if sampler is Sampler.D2L_SEQUENTIAL:
        return row_length // num_steps  # only full windows
    return -(-row_length // num_steps)  # ceil: the short last window counts
