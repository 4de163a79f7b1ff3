"""Minibatch samplers for language models: token ids -> (X, Y) windows, decided once in NumPy.

Every batch is a pair of int64 arrays of shape (batch, steps), batch-major, with Y the token
after each X token. All randomness comes from the `np.random.Generator` passed in, so a seed
gives the same batches on every backend. Two d2l pitfalls are fixed here: the random offset is
drawn from [0, num_steps) (d2l's sequential sampler could draw num_steps itself), and neither
sampler drops the corpus tail for good (d2l's random sampler never reached it).
"""
from __future__ import annotations

from enum import Enum
from typing import Iterator, Sequence

import numpy as np

from seqcore.errors import SeqcoreError


class Sampler(str, Enum):
    SEQUENTIAL = "sequential"  # rows continue across batches: state carried and detached
    RANDOM = "random"  # independent windows: state reset every batch


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
    if _sampler(kind) is Sampler.RANDOM:
        return random_batches(ids, batch_size, num_steps, rng)
    return sequential_batches(ids, batch_size, num_steps, rng)


def num_batches(kind: Sampler | str, num_tokens: int, batch_size: int, num_steps: int) -> int:
    """The most batches one epoch can yield (at offset 0); a progress-bar total."""
    sampler = _sampler(kind)
    check_fits(num_tokens, batch_size, num_steps)
    if sampler is Sampler.RANDOM:
        num_windows = (num_tokens - 1) // num_steps
        return -(-num_windows // batch_size)  # ceil: the partial batch counts
    row_length = (num_tokens - 1) // batch_size
    return -(-row_length // num_steps)  # ceil: the short last window counts
