"""Runs every encoder-decoder case on one backend, in its own process, on the backend's model classes.

Usage: python tests/scripts/seq2seq_worker.py BACKEND OUT.npz

For each case of tests.translation_cases it stores, keyed "<case>/<what>": the logits and decoder
state of a forward pass without dropout, the exported parameters, for each masked loss the loss and
gradients of a training pass with the case's dropout masks, and the greedy and beam translations of
each source sentence through the backend's Translator and seqcore.jobs.decode (tokens padded with -1,
log-probabilities); with attention also the weights of the forward pass without and with the
masks ("weights", "trained_weights") and each translation's weights ("<how>_attention", padded
with -1); then the same translations of the hand-made table model ("handmade-<impl>/...").
"""
from __future__ import annotations

import importlib
import sys

import numpy as np

from seqcore.backend import Device, load_backend
from seqcore.jobs.decode import beam_search, greedy
from seqcore.model.seq2seq import LOSSES
from seqcore.model.spec import Impl
from tests.translation_cases import (BEAM, BOS, EOS, HANDMADE_SOURCE, MAX_LEN, case_data, case_masks, cases,
                                     handmade, hypothesis_arrays)


class Framework:
    """The few framework calls the worker needs, for 'mxnet' or 'torch' (one per process)."""

    def __init__(self, name: str) -> None:
        backend = load_backend(name)  # loads the framework (MXNet: its compat shims first)
        self.name, self.ctx = name, _context(name, backend.resolve_device(Device.CPU))
        self.module = importlib.import_module(f"backends.{name}.seq2seq")
        self.fw = importlib.import_module("mxnet" if name == "mxnet" else "torch")

    def array(self, values: np.ndarray, floating: bool = False):
        if self.name == "mxnet":
            return self.fw.np.array(values, dtype=np.float32 if floating else np.int32, ctx=self.ctx)
        return self.fw.as_tensor(np.asarray(values), dtype=self.fw.float32 if floating else self.fw.int64)

    def numpy(self, value) -> np.ndarray:
        return value.asnumpy() if self.name == "mxnet" else value.detach().numpy()

    def loss_and_gradients(self, model, inputs, targets, valid, masks, kind) -> tuple[float, dict]:
        if self.name == "mxnet":
            with self.fw.autograd.record():
                logits, _ = model(inputs, None, masks)
                value = self.module.masked_loss(logits, targets, valid, kind)
            value.backward()  # grad_req 'write': each backward replaces the gradients
        else:
            model.zero_grad(set_to_none=True)
            logits, _ = model(inputs, None, masks)
            value = self.module.masked_loss(logits, targets, valid, kind)
            value.backward()
        return float(self.numpy(value)), model.export_gradients()


def _context(name: str, device: str):
    module = importlib.import_module(f"backends.{name}.device")
    return module.context(device)


def run_case(fw: Framework, name: str, spec, results: dict) -> None:
    data = case_data(spec)
    model = fw.module.Seq2SeqModel(spec)
    model.load_params(data["params"], fw.ctx)
    inputs = (fw.array(data["source"]), fw.array(data["source_valid"]), fw.array(data["decoder_inputs"]))
    logits, state = model(inputs)
    results[f"{name}/logits"] = fw.numpy(logits)
    for index, part in enumerate(state):
        results[f"{name}/state{index}"] = fw.numpy(part)
    results[f"{name}/exported"] = _flat(model.export_params())
    masks = case_masks(spec)
    framework_masks = None if masks is None else [fw.array(mask, floating=True) for mask in masks]
    if spec.attends:
        for what, given in (("weights", None), ("trained_weights", framework_masks)):
            results[f"{name}/{what}"] = fw.numpy(model.forward_weights(inputs, None, given)[2])
    for kind in LOSSES:
        value, grads = fw.loss_and_gradients(model, inputs, fw.array(data["targets"]),
                                             fw.array(data["target_valid"]), framework_masks, kind)
        results[f"{name}/loss_{kind.value}"] = np.float64(value)
        results[f"{name}/grads_{kind.value}"] = _flat(grads)
    translate(fw.module.Translator(model), data["source"], data["source_valid"], name, results)


def translate(translator, source: np.ndarray, valid: np.ndarray, name: str, results: dict) -> None:
    """Greedy for the whole batch at once, beam search sentence by sentence."""
    found = {"greedy": greedy(translator, source, valid, BOS, EOS, MAX_LEN),
             "beam": [beam_search(translator, source[:, [n]], valid[[n]], BOS, EOS, MAX_LEN, BEAM)
                      for n in range(source.shape[1])]}
    for how, hypotheses in found.items():
        for what, value in hypothesis_arrays(hypotheses, source.shape[0]).items():
            results[f"{name}/{how}_{what}"] = value


def _flat(named: dict) -> np.ndarray:
    """Parameters in sorted-name order as one float64 vector."""
    return np.concatenate([np.asarray(named[k], dtype=np.float64).ravel() for k in sorted(named)])


def main() -> None:
    fw, out = Framework(sys.argv[1]), sys.argv[2]
    results: dict = {}
    for name, spec in cases():
        run_case(fw, name, spec, results)
    for impl in Impl:
        spec, params = handmade(impl)
        model = fw.module.Seq2SeqModel(spec)
        model.load_params(params, fw.ctx)
        translate(fw.module.Translator(model), HANDMADE_SOURCE, np.array([3]), f"handmade-{impl.value}", results)
    np.savez(out, **results)


if __name__ == "__main__":
    main()
