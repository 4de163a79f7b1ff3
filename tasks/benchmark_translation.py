"""tasks.benchmark --task translate, in the worker process of one backend: training tokens/s of the
encoder-decoder (each cell x impl x attention) beside the framework's bare loop of the same model
(backends/<name>/bare.py Seq2SeqLoop: fused layers, the book's attention modules written out,
Adam, the masked loss, clipping), interleaved repetition by repetition.

The batches are the d2l 1.0 pairs (the bundled head of fra.txt) cut to `num_steps` tokens, the
same on both backends; a step is the full protocol (forward, backward, clip, update, the loss
read). Tokens are source positions, T x N per step (the source and target are both padded to
num_steps). No dropout on either side: the bare loop has none to match.
"""
from __future__ import annotations

import itertools
import resource
import statistics
import time
from typing import Any, Sequence

import numpy as np

from seqcore.backend import Device, Optimizer, load_backend, load_part
from seqcore.data.pairs import PairsSpec
from seqcore.jobs import scoring
from seqcore.model.seq2seq import Seq2SeqSpec, init_params
from seqcore.model.spec import Loss
from seqcore.run.machine import machine_info
from seqcore.train.loop import train_epoch

LR = 0.005


def spread(samples: Sequence[float]) -> dict[str, Any]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "samples": list(samples)}


class SeqcoreLoop:
    """A seqcore encoder-decoder trained through the protocol (Adam, clipping, the masked loss)."""

    def __init__(self, backend, spec: Seq2SeqSpec, device: str):
        self.backend = backend
        self.model = backend.build_model(spec, init_params(spec, "xavier", 0), device)
        self.trainer = backend.make_trainer(self.model, Optimizer.ADAM, LR)

    def run(self, batches) -> float:
        started = time.perf_counter()
        train_epoch(self.backend, self.model, self.trainer, batches, loss=Loss.MASKED, clip=1.0, carry_state=False)
        return time.perf_counter() - started


def measure_translation(backend_name: str, cells: Sequence[str], impls: Sequence[str], attentions: Sequence[str],
                        device: str, batch_sizes: Sequence[int], num_steps: int, hidden_size: int, embed_size: int,
                        num_layers: int, steps: int, warmup: int, repeats: int) -> dict[str, Any]:
    backend = load_backend(backend_name)
    bare = load_part(backend_name, "bare")
    where = backend.resolve_device(Device(device))
    pairs = PairsSpec(num_steps=num_steps).load().data
    sizes = (len(pairs.source_vocab), len(pairs.target_vocab))
    results = []
    for batch_size in batch_sizes:
        rng = np.random.default_rng(0)
        batches = [pairs.batch(rows) for rows in pairs.epoch_batches(batch_size, rng) if len(rows) == batch_size]
        tokens = steps * num_steps * batch_size
        for cell, attention in itertools.product(cells, attentions):
            loops: dict[str, Any] = {}
            for impl in impls:
                spec = Seq2SeqSpec(cell=cell, impl=impl, source_vocab_size=sizes[0], target_vocab_size=sizes[1],
                                   embed_size=embed_size, hidden_size=hidden_size, num_layers=num_layers,
                                   attention=attention)
                loops[impl] = SeqcoreLoop(backend, spec, where)
            loops["bare"] = bare.Seq2SeqLoop(cell, *sizes, embed_size, hidden_size, num_layers, attention, where, LR)
            cursor = itertools.count()
            take = lambda n: [batches[next(cursor) % len(batches)] for _ in range(n)]
            for loop in loops.values():
                loop.run(take(warmup))
            seconds: dict[str, list[float]] = {name: [] for name in loops}
            for _ in range(repeats):
                for name, loop in loops.items():  # interleaved: drifts in machine load hit each alike
                    seconds[name].append(loop.run(take(steps)))
            bare_speed = spread([tokens / s for s in seconds["bare"]])
            decode = {impl: _decode_rate(backend, loops[impl].model, pairs, batch_size, num_steps) for impl in impls}
            for impl in impls:
                speed = spread([tokens / s for s in seconds[impl]])
                label = impl if attention == "none" else f"{impl}+{attention}"
                results.append({"cell": cell, "impl": label, "attention": attention, "batch_size": batch_size,
                                "vocab_size": sizes[1], "tokens_per_s": speed["median"], "spread": speed,
                                "ms_per_step": 1000 * statistics.median(seconds[impl]) / steps,
                                "bare_tokens_per_s": bare_speed["median"], "bare_spread": bare_speed,
                                "vs_bare": speed["median"] / bare_speed["median"],
                                "generate_tokens_per_s": decode[impl], "bare_generate_tokens_per_s": float("nan"),
                                "peak_device_mb": None})
    return {"backend": backend_name, "device": where, "task": "translate", "token": "word",
            "embed_size": embed_size, "num_steps": num_steps, "hidden_size": hidden_size, "num_layers": num_layers,
            "steps": steps, "repeats": repeats, "warmup": warmup, "results": results,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "machine": machine_info(backend.versions())}


def _decode_rate(backend, model, pairs, batch_size: int, num_steps: int) -> float:
    """Greedy translation of one batch of held-out pairs: positions decoded per second."""
    rows = pairs.held_out_rows[:batch_size]
    started = time.perf_counter()
    found = scoring.translate_rows(scoring.step_model(backend, model), pairs, rows, num_steps)
    elapsed = time.perf_counter() - started
    return sum(len(h.tokens) + int(h.finished) for h in found.hypotheses) / elapsed
