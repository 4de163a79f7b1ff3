"""Both backends' encoder-decoders (scratch and concise, with and without attention) against the
NumPy reference, on shared weights.

Forward logits and decoder states must match the float32 reference; with attention so must the
weights of every step, without and with the case's dropout masks (1e-5); both masked losses and
their gradients (with the masks) must match the reference's loss and its central finite
differences in float64; greedy and beam translations through each backend's Translator must equal
the reference's, their attention weights included. A context taken from the wrong layer, a
decoder that does not start from the encoder's state, a mask on the wrong stack or a pad counted
in the loss moves these far beyond the tolerances; so do the attention mistakes of
tests/test_translation_attention.py's mutants (the valid lengths ignored, the query taken after
the step, from the wrong layer or from the LSTM's cell state).
"""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import pytest

from seqcore.jobs.decode import beam_search, greedy
from seqcore.model import seq2seq_reference as reference
from seqcore.model.seq2seq import LOSSES
from seqcore.model.spec import Impl
from tests.conftest import python
from tests.translation_cases import (BEAM, BOS, EOS, HANDMADE_SOURCE, MAX_LEN, A, B, case_data, case_masks,
                                     cases, handmade, hypothesis_arrays)

FORWARD_ATOL = 2e-5  # float32 against the float32 reference, values of order 1
WEIGHTS_ATOL = 1e-5  # attention weights, in [0, 1]
GRAD_ATOL = 2e-5  # float32 backprop against float64 finite differences
FD_EPS = 1e-6

CASES = dict(cases())


@functools.lru_cache(maxsize=None)
def worker_results(backend: str) -> dict[str, np.ndarray]:
    """One worker process per backend computes every case; the tests read its results."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.npz"
        python("tests/scripts/seq2seq_worker.py", backend, str(out), check=True)
        with np.load(out) as data:
            return dict(data)


def _flat(named: dict) -> np.ndarray:
    return np.concatenate([np.asarray(named[k], dtype=np.float64).ravel() for k in sorted(named)])


@functools.lru_cache(maxsize=None)
def finite_differences(spec_key: str) -> dict[str, np.ndarray]:
    """Each masked loss's gradient by central differences of the float64 reference (the cases of
    one spec but for impl share it)."""
    spec = CASES[spec_key]
    data, masks = case_data(spec), case_masks(spec)
    params = {k: v.astype(np.float64) for k, v in data["params"].items()}

    def losses() -> np.ndarray:
        logits, _ = reference.forward(spec, params, data["source"], data["source_valid"],
                                      data["decoder_inputs"], masks)
        return np.array([reference.masked_loss(kind, logits, data["targets"], data["target_valid"])
                         for kind in LOSSES])

    grads = {}
    for key in sorted(params):
        grad = np.zeros(params[key].shape + (len(LOSSES),))
        for index in np.ndindex(params[key].shape):
            saved = params[key][index]
            params[key][index] = saved + FD_EPS
            plus = losses()
            params[key][index] = saved - FD_EPS
            minus = losses()
            params[key][index] = saved
            grad[index] = (plus - minus) / (2 * FD_EPS)
        grads[key] = grad
    return {kind.value: _flat({k: g[..., i] for k, g in grads.items()}) for i, kind in enumerate(LOSSES)}


def reference_translations(spec, data) -> dict[str, dict[str, np.ndarray]]:
    translator = reference.ReferenceTranslator(spec, data["params"])
    source, valid = data["source"], data["source_valid"]
    found = {"greedy": greedy(translator, source, valid, BOS, EOS, MAX_LEN),
             "beam": [beam_search(translator, source[:, [n]], valid[[n]], BOS, EOS, MAX_LEN, BEAM)
                      for n in range(source.shape[1])]}
    return {how: hypothesis_arrays(hypotheses, source.shape[0]) for how, hypotheses in found.items()}


def fd_key(case: str) -> str:
    """The scratch twin of a case, whose finite differences serve both impls."""
    return case.replace("-concise-", "-scratch-")


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_numpy_reference(backend_name: str, case: str) -> None:
    got = {k.split("/", 1)[1]: v for k, v in worker_results(backend_name).items() if k.startswith(case + "/")}
    spec = CASES[case]
    data, masks = case_data(spec), case_masks(spec)
    batch = (spec, data["params"], data["source"], data["source_valid"], data["decoder_inputs"])
    logits, state, weights = reference.forward_weights(*batch)
    np.testing.assert_allclose(got["logits"], logits, atol=FORWARD_ATOL, rtol=0)
    if spec.attends:
        np.testing.assert_allclose(got["weights"], weights, atol=WEIGHTS_ATOL, rtol=0)
        np.testing.assert_allclose(got["trained_weights"], reference.forward_weights(*batch, masks)[2],
                                   atol=WEIGHTS_ATOL, rtol=0)
    else:
        assert weights is None and "weights" not in got
    assert len(state) == spec.num_states
    for index, part in enumerate(state):
        np.testing.assert_allclose(got[f"state{index}"], part, atol=FORWARD_ATOL, rtol=0)
    np.testing.assert_array_equal(got["exported"], _flat(data["params"]))  # load / export is exact

    trained, _ = reference.forward(*batch, masks)
    fd = finite_differences(fd_key(case))
    for kind in LOSSES:
        want = reference.masked_loss(kind, trained, data["targets"], data["target_valid"])
        assert got[f"loss_{kind.value}"] == pytest.approx(want, abs=FORWARD_ATOL)
        np.testing.assert_allclose(got[f"grads_{kind.value}"], fd[kind.value], atol=GRAD_ATOL, rtol=0)

    for how, want in reference_translations(spec, data).items():
        np.testing.assert_array_equal(got[f"{how}_tokens"], want["tokens"])
        np.testing.assert_allclose(got[f"{how}_log_prob"], want["log_prob"], atol=1e-4, rtol=0)
        assert ("attention" in want) == spec.attends == (f"{how}_attention" in got)
        if spec.attends:
            np.testing.assert_allclose(got[f"{how}_attention"], want["attention"], atol=WEIGHTS_ATOL, rtol=0)


def test_the_two_losses_differ_where_there_is_padding() -> None:
    """The cases have padding, so the book's form (mean over all positions) is not the token mean:
    a test of one loss cannot pass by computing the other."""
    spec = CASES["gru-scratch-l2"]
    data = case_data(spec)
    logits, _ = reference.forward(spec, data["params"], data["source"], data["source_valid"],
                                  data["decoder_inputs"])
    masked, book = (reference.masked_loss(kind, logits, data["targets"], data["target_valid"]) for kind in LOSSES)
    fraction = data["target_valid"].sum() / data["targets"].size  # real tokens / positions
    assert book == pytest.approx(masked * fraction, rel=1e-6) and fraction < 0.7


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(name for name in CASES if "-scratch-" in name
                                         and name.replace("-scratch-", "-concise-") in CASES))
def test_scratch_and_concise_agree(backend_name: str, case: str) -> None:
    results = worker_results(backend_name)
    twin = case.replace("-scratch-", "-concise-")
    for what in ("logits", "state0", "grads_masked", "grads_d2l") + (("weights",) if CASES[case].attends else ()):
        np.testing.assert_allclose(results[f"{case}/{what}"], results[f"{twin}/{what}"], rtol=1e-4, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("impl", [impl.value for impl in Impl])
def test_handmade_table_translates_alike(backend_name: str, impl: str) -> None:
    """The table model of tests.translation_cases: greedy says 'a', beam search 'b', on every backend."""
    results = worker_results(backend_name)
    spec, params = handmade(Impl(impl))
    translator = reference.ReferenceTranslator(spec, params)
    want_greedy = greedy(translator, HANDMADE_SOURCE, np.array([3]), BOS, EOS, MAX_LEN)[0]
    want_beam = beam_search(translator, HANDMADE_SOURCE, np.array([3]), BOS, EOS, MAX_LEN, BEAM)
    assert (want_greedy.tokens, want_beam.tokens) == ((A,), (B,))
    assert list(results[f"handmade-{impl}/greedy_tokens"][0]) == [A] + [-1] * (MAX_LEN - 1)
    assert list(results[f"handmade-{impl}/beam_tokens"][0]) == [B] + [-1] * (MAX_LEN - 1)
    assert results[f"handmade-{impl}/beam_log_prob"][0] == pytest.approx(want_beam.log_prob, abs=1e-5)
