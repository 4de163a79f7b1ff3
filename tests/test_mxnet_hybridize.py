"""The MXNet scratch cells are HybridBlocks: hybridized, they must compute exactly what they
compute imperatively (and what the NumPy reference computes). Runs in its own process."""
from __future__ import annotations

import json

import pytest

from tests.conftest import python, require_backend

pytestmark = pytest.mark.slow  # every test here runs a framework in a subprocess


def test_scratch_cells_hybridize_to_the_same_numbers() -> None:
    require_backend("mxnet")
    worst = json.loads(python("tests/scripts/mxnet_hybridize.py", check=True).stdout)
    assert set(worst) == {"rnn", "gru", "gru_before", "lstm"}
    for cell, (hybrid_vs_imperative, vs_reference) in worst.items():
        assert hybrid_vs_imperative < 1e-6, cell
        assert vs_reference < 2e-5, cell
