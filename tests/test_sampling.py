"""Samplers on fixed sizes: offsets, seeds, short texts, aliasing, batch counts and refusals (the
property tests over drawn sizes are in tests/test_sampling_properties.py, which needs hypothesis).

Most properties use ids = BASE + position, so a value in X names the corpus position it came
from and every check is a comparison against exact numbers.
"""
from __future__ import annotations

import numpy as np
import pytest

from seqcore.data import sampling
from seqcore.data.sampling import Sampler
from seqcore.errors import SeqcoreError

BASE = 1000
KINDS = [Sampler.RANDOM, Sampler.SEQUENTIAL]


def _epoch(kind: Sampler, num_tokens: int, batch_size: int, num_steps: int, seed: int):
    ids = BASE + np.arange(num_tokens)
    return list(sampling.batches(kind, ids, batch_size, num_steps, np.random.default_rng(seed)))


# -- properties of one epoch, for any (num_tokens, batch_size, num_steps) that fits one batch ------
# Checked here on a fixed grid (the fast tier) and over drawn sizes in test_sampling_properties.py.

def check_shapes_and_targets(kind: Sampler, num_tokens: int, batch_size: int, num_steps: int, seed: int) -> None:
    epoch = _epoch(kind, num_tokens, batch_size, num_steps, seed)
    assert 1 <= len(epoch) <= sampling.num_batches(kind, num_tokens, batch_size, num_steps)
    assert epoch[0][0].shape == (batch_size, num_steps)  # check_fits guarantees one full batch at any offset
    for x, y in epoch:
        assert x.dtype == y.dtype == np.int64 and x.shape == y.shape and x.ndim == 2
        assert 1 <= x.shape[0] <= batch_size and 1 <= x.shape[1] <= num_steps
        if kind is Sampler.RANDOM:
            assert x.shape[1] == num_steps  # only the last batch may have fewer rows
        else:
            assert x.shape[0] == batch_size  # only the last window may be shorter
        # Each row is a slice of the corpus, and Y is the slice one token later.
        np.testing.assert_array_equal(x, x[:, :1] + np.arange(x.shape[1]))
        np.testing.assert_array_equal(y, x + 1)
        assert x.min() >= BASE and y.max() <= BASE + num_tokens - 1
    if kind is Sampler.RANDOM:
        assert all(x.shape[0] == batch_size for x, _ in epoch[:-1])
    else:
        assert all(x.shape[1] == num_steps for x, _ in epoch[:-1])


def check_sequential_rows(num_tokens: int, batch_size: int, num_steps: int, seed: int) -> None:
    epoch = _epoch(Sampler.SEQUENTIAL, num_tokens, batch_size, num_steps, seed)
    rows = np.concatenate([x for x, _ in epoch], axis=1)  # (B, L): row i across the epoch
    offset = rows[0, 0] - BASE
    row_length = (num_tokens - 1 - offset) // batch_size
    assert rows.shape == (batch_size, row_length) and row_length >= num_steps
    # Row i starts where row i - 1 ended and runs on without a gap.
    expected = BASE + offset + np.arange(batch_size * row_length).reshape(batch_size, row_length)
    np.testing.assert_array_equal(rows, expected)
    targets = np.concatenate([y for _, y in epoch], axis=1)
    np.testing.assert_array_equal(targets, expected + 1)


def check_random_grid(num_tokens: int, batch_size: int, num_steps: int, seed: int) -> None:
    epoch = _epoch(Sampler.RANDOM, num_tokens, batch_size, num_steps, seed)
    starts = np.sort(np.concatenate([x[:, 0] for x, _ in epoch])) - BASE
    offset = starts[0]
    assert 0 <= offset < num_steps
    # No window dropped at this offset: the partial last batch is kept.
    expected = offset + num_steps * np.arange((num_tokens - 1 - offset) // num_steps)
    np.testing.assert_array_equal(starts, expected)


def check_every_token_reached(kind: Sampler, num_tokens: int, batch_size: int, num_steps: int, seed: int) -> None:
    ids = BASE + np.arange(num_tokens)
    # Random: offset (n - 1) % num_steps ends on the last token, so all of it is reached.
    # Sequential: rows hold a multiple of batch_size tokens, so up to batch_size - 1 tokens
    # past offset 0's rows can stay unread; everything before them is reached.
    end = num_tokens if kind is Sampler.RANDOM else num_tokens - batch_size + 1
    rng = np.random.default_rng(seed)
    read = np.zeros(num_tokens, dtype=bool)  # position appeared in X
    predicted = np.zeros(num_tokens, dtype=bool)  # position appeared in Y
    for _ in range(60 * num_steps):  # P(an offset never drawn) <= 6 * (5/6)**360
        for x, y in sampling.batches(kind, ids, batch_size, num_steps, rng):
            read[x.ravel() - BASE] = True
            predicted[y.ravel() - BASE] = True
        if read[:end - 1].all() and predicted[1:end].all():
            break
    assert read[:end - 1].all() and predicted[1:end].all()
    assert not read[-1] and not predicted[0]  # nothing to predict after / before these
    if kind is Sampler.RANDOM:
        assert predicted[-1]  # the corpus tail, which d2l's random sampler never reached


# (num_tokens, batch_size, num_steps): exactly one batch's worth (B * T + T), one token more, a
# ragged tail for each sampler, one row, one step, and the largest sizes the properties draw.
GRID = [(12, 2, 4), (13, 2, 4), (45, 3, 5), (12, 1, 6), (11, 5, 1), (6, 5, 1), (76, 5, 6), (36, 5, 6), (40, 1, 1)]
SIZES = [pytest.param(*sizes, seed, id=f"n{sizes[0]}-b{sizes[1]}-t{sizes[2]}-s{seed}")
         for sizes in GRID for seed in (0, 12345)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("num_tokens, batch_size, num_steps, seed", SIZES)
def test_shapes_and_next_token_targets(kind: Sampler, num_tokens: int, batch_size: int, num_steps: int,
                                       seed: int) -> None:
    check_shapes_and_targets(kind, num_tokens, batch_size, num_steps, seed)


@pytest.mark.parametrize("num_tokens, batch_size, num_steps, seed", SIZES)
def test_sequential_rows_continue_across_batches(num_tokens: int, batch_size: int, num_steps: int,
                                                 seed: int) -> None:
    check_sequential_rows(num_tokens, batch_size, num_steps, seed)


@pytest.mark.parametrize("num_tokens, batch_size, num_steps, seed", SIZES)
def test_random_windows_are_the_whole_grid_at_one_offset(num_tokens: int, batch_size: int, num_steps: int,
                                                         seed: int) -> None:
    check_random_grid(num_tokens, batch_size, num_steps, seed)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("num_tokens, batch_size, num_steps, seed", SIZES)
def test_every_token_reached_over_epochs(kind: Sampler, num_tokens: int, batch_size: int, num_steps: int,
                                         seed: int) -> None:
    check_every_token_reached(kind, num_tokens, batch_size, num_steps, seed)


@pytest.mark.parametrize("kind", KINDS)
def test_offset_covers_zero_to_num_steps_minus_one_only(kind: Sampler) -> None:
    # 2 x 4 + 4 = 12 tokens needed; 13 given. The offset is the first token of row 0 for
    # sequential, and the smallest window start for random.
    num_tokens, batch_size, num_steps = 13, 2, 4
    rng = np.random.default_rng(7)
    ids = BASE + np.arange(num_tokens)
    offsets = set()
    for _ in range(200):
        epoch = list(sampling.batches(kind, ids, batch_size, num_steps, rng))
        starts = np.concatenate([x[:, 0] for x, _ in epoch]) - BASE
        if kind is Sampler.RANDOM:
            assert len(set(starts % num_steps)) == 1  # one grid of windows per epoch
        offsets.add(int(starts.min()) if kind is Sampler.RANDOM else int(epoch[0][0][0, 0] - BASE))
    assert offsets == {0, 1, 2, 3}  # never 4: d2l's inclusive bound is gone


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_batches_other_seed_differs(kind: Sampler) -> None:
    ids = np.random.default_rng(0).integers(0, 28, size=500)

    def run(seed: int) -> list[np.ndarray]:  # X, Y, X, Y, ... over three epochs
        rng = np.random.default_rng(seed)
        epochs = [list(sampling.batches(kind, ids, 4, 7, rng)) for _ in range(3)]
        return [array for epoch in epochs for batch in epoch for array in batch]

    first, again = run(11), run(11)
    assert len(first) == len(again)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    other = run(12)
    assert len(other) != len(first) or not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_fixed_offset_reads_short_text_in_order() -> None:
    # Evaluation: offset 0, no generator; 12 tokens, 2 rows of 5 (11 // 2), windows 4 + 1.
    ids = BASE + np.arange(12)
    epoch = list(sampling.sequential_batches(ids, 2, 4, offset=0))
    assert [x.shape for x, _ in epoch] == [(2, 4), (2, 1)]
    rows = np.concatenate([x for x, _ in epoch], axis=1)
    np.testing.assert_array_equal(rows, BASE + np.arange(10).reshape(2, 5))
    np.testing.assert_array_equal(np.concatenate([y for _, y in epoch], axis=1), rows + 1)
    # One row per token is enough here, though far below check_fits' 2 x 4 + 4 = 12.
    assert len(list(sampling.sequential_batches(BASE + np.arange(3), 2, 4, offset=0))) == 1
    with pytest.raises(SeqcoreError, match="has 3 tokens, too few for 2 rows after offset 1"):
        next(sampling.sequential_batches(BASE + np.arange(3), 2, 4, offset=1))
    with pytest.raises(SeqcoreError, match=r"offset must be an integer in \[0, 4\), got 4"):
        next(sampling.sequential_batches(ids, 2, 4, offset=4))
    with pytest.raises(SeqcoreError, match="needs a random generator or a fixed offset"):
        next(sampling.sequential_batches(ids, 2, 4))


def test_batches_do_not_alias_the_corpus() -> None:
    ids = np.arange(100, dtype=np.int64)
    for x, _ in sampling.sequential_batches(ids, 2, 5, np.random.default_rng(0)):
        x[:] = -1
    np.testing.assert_array_equal(ids, np.arange(100))


def test_num_batches_is_reached_at_offset_zero() -> None:
    # 100 tokens, batch 4, 7 steps: random 99 // 7 = 14 windows -> 4 batches; sequential rows of
    # 99 // 4 = 24 tokens -> windows of 7, 7, 7, 3 -> 4 batches.
    assert sampling.num_batches("random", 100, 4, 7) == 4
    assert sampling.num_batches("sequential", 100, 4, 7) == 4
    assert sampling.num_batches("sequential", 100, 3, 11) == 3  # rows of 33: 11, 11, 11


def test_check_fits_boundary_and_message() -> None:
    sampling.check_fits(32 * 35 + 35, 32, 35)
    with pytest.raises(SeqcoreError) as error:
        sampling.check_fits(32 * 35 + 34, 32, 35)
    message = str(error.value)
    assert "1154 tokens" in message and "needs 1155" in message
    assert "--batch-size" in message and "--num-steps" in message and "longer corpus" in message
    for kind in KINDS:
        with pytest.raises(SeqcoreError, match="has 11 tokens but one batch needs 12"):
            next(sampling.batches(kind, np.arange(11), 2, 4, np.random.default_rng(0)))
        next(sampling.batches(kind, np.arange(12), 2, 4, np.random.default_rng(0)))


@pytest.mark.parametrize(
    "batch_size, num_steps, message",
    [(0, 5, "--batch-size must be a positive integer, got 0"),
     (2, 2.5, "--num-steps must be a positive integer, got 2.5"),
     (True, 5, "--batch-size must be a positive integer, got True")],
)
def test_bad_sizes(batch_size: object, num_steps: object, message: str) -> None:
    with pytest.raises(SeqcoreError, match=message):
        sampling.check_fits(1000, batch_size, num_steps)  # type: ignore[arg-type]


def test_bad_kind_and_ids() -> None:
    rng = np.random.default_rng(0)
    message = "Unknown sampler 'shuffled': choose one of sequential, random"
    with pytest.raises(SeqcoreError, match=message):
        sampling.batches("shuffled", np.arange(100), 2, 3, rng)
    with pytest.raises(SeqcoreError, match=r"1-D sequence of integers, got shape \(10, 10\)"):
        next(sampling.random_batches(np.zeros((10, 10), dtype=np.int64), 2, 3, rng))


# -- the book's samplers (d2l 0.17's and 1.0's), set beside seqcore's by the presets ----------------

def _d2l_sequential_reference(corpus: list[int], batch_size: int, num_steps: int, offset: int):
    """d2l 0.17's seq_data_iter_sequential, its offset given (the book draws randint(0, num_steps))."""
    num_tokens = ((len(corpus) - offset - 1) // batch_size) * batch_size
    xs = np.array(corpus[offset: offset + num_tokens]).reshape(batch_size, -1)
    ys = np.array(corpus[offset + 1: offset + 1 + num_tokens]).reshape(batch_size, -1)
    return [(xs[:, i: i + num_steps], ys[:, i: i + num_steps])
            for i in range(0, num_steps * (xs.shape[1] // num_steps), num_steps)]


def check_d2l_sequential(num_tokens: int, batch_size: int, num_steps: int, offset: int) -> None:
    """seqcore's d2l-sequential sampler is the book's at this offset (the book needs a full window
    at offset num_steps, so num_tokens > batch_size * num_steps + num_steps)."""
    ids = BASE + np.arange(num_tokens)
    got = list(sampling.d2l_sequential_batches(ids, batch_size, num_steps, offset=offset))
    want = _d2l_sequential_reference(list(ids), batch_size, num_steps, offset)
    assert len(got) == len(want) >= 1
    for (x, y), (wx, wy) in zip(got, want):
        np.testing.assert_array_equal(x, wx)
        np.testing.assert_array_equal(y, wy)
        assert x.shape == (batch_size, num_steps)  # the short tail is dropped


@pytest.mark.parametrize("num_tokens, batch_size, num_steps", [(n + 1, b, t) for n, b, t in GRID])
def test_d2l_sequential_is_the_books_at_every_offset(num_tokens: int, batch_size: int, num_steps: int) -> None:
    for offset in range(num_steps + 1):  # inclusive, as the book draws it
        check_d2l_sequential(num_tokens, batch_size, num_steps, offset)


def test_d2l_sequential_draws_its_offset_inclusively_and_drops_the_tail() -> None:
    ids = np.arange(10_000)
    firsts = {next(sampling.d2l_sequential_batches(ids, 32, 35, np.random.default_rng(seed)))[0][0, 0]
              for seed in range(400)}
    assert firsts == set(range(36))  # 0 .. 35, num_steps itself included
    assert sampling.num_batches(Sampler.D2L_SEQUENTIAL, 10_000, 32, 35) == 8  # the book's 8 steps an epoch
    assert sampling.num_batches(Sampler.SEQUENTIAL, 10_000, 32, 35) == 9  # seqcore keeps the tail
    assert all(len(_epoch(Sampler.D2L_SEQUENTIAL, 10_000, 32, 35, seed)) == 8 for seed in range(5))
    assert sampling.num_batches(Sampler.D2L_SEQUENTIAL, 31, 2, 10) == 1
    with pytest.raises(SeqcoreError, match="d2l's sequential sampler needs 31"):
        sampling.num_batches(Sampler.D2L_SEQUENTIAL, 30, 2, 10)


def test_d2l_random_keeps_only_full_batches() -> None:
    ids = BASE + np.arange(1_000)
    batches = list(sampling.d2l_random_batches(ids, 4, 7, np.random.default_rng(0), offset=3))
    windows = (1_000 - 3 - 1) // 7  # 142 windows, 35 full batches of 4, 2 windows dropped
    assert len(batches) == windows // 4 == sampling.num_batches(Sampler.D2L_RANDOM, 1_000, 4, 7)
    starts = np.concatenate([x[:, 0] for x, _ in batches]) - BASE
    assert len(set(starts)) == len(starts) and all((start - 3) % 7 == 0 for start in starts)
    for x, y in batches:
        np.testing.assert_array_equal(y, x + 1)
        np.testing.assert_array_equal(np.diff(x, axis=1), 1)


def test_windows_are_d2l_1_0s_overlapping_subsequences() -> None:
    ids = BASE + np.arange(60)
    ordered = list(sampling.window_batches(ids, 16, 5))
    x = np.concatenate([b[0] for b in ordered])
    y = np.concatenate([b[1] for b in ordered])
    np.testing.assert_array_equal(x, BASE + np.arange(55)[:, None] + np.arange(5))  # every start, in order
    np.testing.assert_array_equal(y, x + 1)
    assert [len(b[0]) for b in ordered] == [16, 16, 16, 7]  # the partial batch kept
    shuffled = list(sampling.batches(Sampler.WINDOWS, ids, 16, 5, np.random.default_rng(1)))
    rows = np.concatenate([b[0] for b in shuffled])
    assert sorted(map(tuple, rows)) == sorted(map(tuple, x)) and not np.array_equal(rows, x)
    assert sampling.num_batches(Sampler.WINDOWS, 60, 16, 5) == 4
    assert not sampling.carries_state(Sampler.WINDOWS) and sampling.carries_state(Sampler.D2L_SEQUENTIAL)
    with pytest.raises(SeqcoreError, match="too few for one window of 5"):
        list(sampling.window_batches(ids[:5], 16, 5))
