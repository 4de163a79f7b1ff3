"""Samplers, property tests (hypothesis): shapes, next-token targets, contiguity and coverage of
the tail over drawn corpus sizes and seeds. hypothesis is a test extra: without it this file skips
and tests/test_sampling.py still checks the same samplers on fixed sizes.

The checks themselves are in tests/test_sampling.py, which runs them on a fixed grid of sizes.
"""
from __future__ import annotations

import pytest

pytest.importorskip("hypothesis", reason="the property tests need hypothesis (pip install -e '.[test]')")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from seqcore.data.sampling import Sampler  # noqa: E402
from tests.test_sampling import (KINDS, check_d2l_sequential, check_every_token_reached,  # noqa: E402
                                 check_random_grid, check_sequential_rows, check_shapes_and_targets)


@st.composite
def corpora(draw: st.DrawFn) -> tuple[int, int, int]:
    """(num_tokens, batch_size, num_steps) with num_tokens just large enough or a bit more."""
    batch_size = draw(st.integers(1, 5))
    num_steps = draw(st.integers(1, 6))
    needed = batch_size * num_steps + num_steps
    return needed + draw(st.integers(0, 40)), batch_size, num_steps


SEEDS = st.integers(0, 2**32 - 1)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=60, deadline=None)
@given(sizes=corpora(), seed=SEEDS)
def test_shapes_and_next_token_targets(kind: Sampler, sizes: tuple[int, int, int], seed: int) -> None:
    check_shapes_and_targets(kind, *sizes, seed)


@settings(max_examples=60, deadline=None)
@given(sizes=corpora(), seed=SEEDS)
def test_sequential_rows_continue_across_batches(sizes: tuple[int, int, int], seed: int) -> None:
    check_sequential_rows(*sizes, seed)


@settings(max_examples=60, deadline=None)
@given(sizes=corpora(), seed=SEEDS)
def test_random_windows_are_the_whole_grid_at_one_offset(sizes: tuple[int, int, int], seed: int) -> None:
    check_random_grid(*sizes, seed)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=30, deadline=None)
@given(sizes=corpora(), seed=SEEDS)
def test_every_token_reached_over_epochs(kind: Sampler, sizes: tuple[int, int, int], seed: int) -> None:
    check_every_token_reached(kind, *sizes, seed)


@settings(max_examples=60, deadline=None)
@given(sizes=corpora(), extra=st.integers(1, 30), data=st.data())
def test_d2l_sequential_is_the_books_at_every_offset(sizes: tuple[int, int, int], extra: int, data) -> None:
    num_tokens, batch_size, num_steps = sizes
    offset = data.draw(st.integers(0, num_steps))  # inclusive, as the book draws it
    check_d2l_sequential(num_tokens + extra + 1, batch_size, num_steps, offset)
