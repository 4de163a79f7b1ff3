"""Language modelling on a text corpus: validation perplexity, and the Job that the run layer
(seqcore.run) trains: batches, evaluation, text samples, plot, summary.

Everything that must agree across backends is decided in NumPy: the vocabulary and the
train / validation split (seqcore.data.spec.CorpusSpec.load), every batch (one seeded
Generator), the evaluation batches.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np

from seqcore.backend import Backend, Model
from seqcore.data import sampling
from seqcore.data.corpus import Preprocess
from seqcore.data.sampling import Sampler
from seqcore.data.spec import TIME_MACHINE, Corpus, CorpusSpec
from seqcore.data.vocab import Order
from seqcore.jobs.figures import plot_curves, series
from seqcore.jobs.generate import predict
from seqcore.model import reference
from seqcore.model.spec import Activation, Bias, Cell, GRUReset, Impl, InputKind, Loss, ModelSpec, Readout
from seqcore.train.loop import evaluate
from seqcore.train.spec import TrainSpec

TEXT_STREAM = 2  # text samples drawn with a temperature use (seed, 2)


def prepare_data(corpus: Optional[str], token: str, max_tokens: Optional[int], val_fraction: float,
                 batch_size: int, num_steps: int, corpus_hash: Optional[str] = None,
                 preprocessing: Preprocess | str = Preprocess.LINES, vocab_order: Order | str = Order.FREQUENCY,
                 sampler: Sampler | str = Sampler.SEQUENTIAL, windows: Optional[tuple[int, int]] = None) -> Corpus:
    """The corpus of a CorpusSpec (None: the bundled text), checked to hold one batch of the sampler;
    windows: d2l 1.0's (train, validation) window counts, of num_steps + 1 tokens."""
    data = CorpusSpec(source=corpus or TIME_MACHINE, source_hash=corpus_hash, token=token,
                      max_tokens=max_tokens, val_fraction=val_fraction, preprocess=Preprocess(preprocessing).value,
                      vocab_order=Order(vocab_order).value,
                      windows=None if windows is None else (*windows, num_steps)).load()
    sampling.check_sampler_fits(sampler, len(data.train_ids), batch_size, num_steps)
    return data


def model_spec(cell: Cell | str, impl: Impl | str, vocab_size: int, hidden_size: int,
               num_layers: int, input_kind: InputKind | str = InputKind.ONEHOT, embed_size: int = 0,
               dropout: float = 0.0, gru_reset: GRUReset | str = GRUReset.AFTER,
               activation: Activation | str = Activation.TANH, bias: Bias | str = Bias.BOTH) -> ModelSpec:
    """The d2l language model: one-hot tokens (or an embedding of `embed_size`, which a large word
    vocabulary needs) in, a logit per vocabulary entry out. Always left to right (never bidirectional:
    it predicts each token from the ones before it)."""
    return ModelSpec(cell=cell, impl=impl, input_size=vocab_size, hidden_size=hidden_size,
                     output_size=vocab_size, num_layers=num_layers, input_kind=input_kind,
                     embed_size=embed_size, readout=Readout.SEQUENCE, dropout=dropout, gru_reset=gru_reset,
                     activation=activation, bias=bias)


def time_major(batch: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Samplers give (N, T) rows; the models read (T, N)."""
    inputs, targets = batch
    return np.ascontiguousarray(inputs.T), np.ascontiguousarray(targets.T)


def validation_sizes(num_ids: int, batch_size: int, num_steps: int) -> tuple[int, int]:
    """(rows, steps) that `validation_perplexity` reads `num_ids` tokens with: the batch shrinks to
    the rows of at least `num_steps` tokens the text fills (one row at the least), and a window is
    never longer than a row (a text shorter than `num_steps` is read as one window)."""
    rows = max(1, min(batch_size, (num_ids - 1) // num_steps))
    return rows, min(num_steps, (num_ids - 1) // rows)


def validation_perplexity(backend: Backend, model: Model, ids: np.ndarray, batch_size: int,
                          num_steps: int, sampler: Sampler | str = Sampler.SEQUENTIAL) -> float:
    """Perplexity over `ids`: read in order (offset 0, state carried) at validation_sizes, or for the
    WINDOWS sampler over every window in order, each from a zero state (d2l 1.0's validation
    loader); the mean over every target token either way; NaN when there is nothing to predict."""
    if Sampler(sampler) is Sampler.WINDOWS:
        if len(ids) <= num_steps:
            return float("nan")
        windows = map(time_major, sampling.window_batches(ids, batch_size, num_steps))
        return evaluate(backend, model, windows, loss=Loss.CROSS_ENTROPY, carry_state=False).perplexity
    if len(ids) < 2:
        return float("nan")
    rows, _ = validation_sizes(len(ids), batch_size, num_steps)
    batches = map(time_major, sampling.sequential_batches(ids, rows, num_steps, offset=0))
    return evaluate(backend, model, batches, loss=Loss.CROSS_ENTROPY, carry_state=True).perplexity


class LanguageModelJob:
    """The run layer's Job for a language model: sampler batches, validation perplexity on the
    held-out tail (the monitored figure), text continued from the prefixes, the perplexity plot."""

    loss = Loss.CROSS_ENTROPY
    monitor, maximize = "val_ppl", False

    def __init__(self, data: Corpus, train: TrainSpec, prefixes: Sequence[str], num_preds: int,
                 temperature: float):
        sampling.check_sampler_fits(train.sampler, len(data.train_ids), train.batch_size, train.num_steps)
        self.data, self.train = data, train
        self.prefixes, self.num_preds, self.temperature = tuple(prefixes), num_preds, temperature
        self.vocab = data.vocab.to_dict()

    def num_batches(self) -> int:
        train = self.train
        return sampling.num_batches(train.sampler, len(self.data.train_ids), train.batch_size, train.num_steps)

    def batches(self, epoch: int, rng: np.random.Generator) -> Iterable[tuple[np.ndarray, np.ndarray]]:
        train = self.train
        return map(time_major, sampling.batches(train.sampler, self.data.train_ids, train.batch_size,
                                                train.num_steps, rng))

    def evaluate(self, run, backend: Backend, model: Model, epoch: int) -> dict[str, Any]:
        sample = self.sample(run, backend, model, self.prefixes[0])
        return {"val_ppl": validation_perplexity(backend, model, self.data.val_ids, self.train.batch_size,
                                                 self.train.num_steps, self.train.sampler), "sample": sample}

    def sample(self, run, backend: Backend, model: Model, prefix: str) -> str:
        return predict(backend, model, self.data.vocab, prefix, self.num_preds, self.data.token,
                       self.temperature, run.generator(TEXT_STREAM))

    def describe(self, record: Mapping[str, Any]) -> str:
        return (f"epoch {record['epoch']}: train ppl {record['train_ppl']:.3f}, val ppl {record['val_ppl']:.3f}, "
                f"{record['tokens_per_s']:,.0f} tokens/s; {self.prefixes[0]!r} -> {record['sample']!r}")

    def plot(self, run) -> None:
        records = run.log.of_kind("epoch")
        plot_curves(run.folder / "perplexity.png", {"train": series(records, "epoch", "train_ppl"),
                                                    "validation": series(records, "epoch", "val_ppl")},
                    title=f"{run.backend_name} {run.spec.impl.value} {run.spec.cell.value}: perplexity",
                    xlabel="epoch", ylabel="perplexity", logy=True)

    def summary(self, run, backend: Backend, model: Model) -> dict[str, Any]:
        epochs = run.log.of_kind("epoch")
        last = epochs[-1]
        return {"epochs": last["epoch"], "train_ppl": last["train_ppl"], "val_ppl": last["val_ppl"],
                "best_val_ppl": run.position.best, "best_epoch": run.position.best_epoch,
                "tokens_per_s_last_epoch": last["tokens_per_s"],
                "samples": {p: self.sample(run, backend, model, p) for p in self.prefixes}}


def reference_perplexity(spec: ModelSpec, params: Mapping[str, np.ndarray], ids: np.ndarray, batch_size: int,
                         num_steps: int, sampler: Sampler | str = Sampler.SEQUENTIAL) -> float:
    """validation_perplexity by the NumPy reference (seqcore.model.reference), in float32: the
    same batches and state handling, with no framework (an import checks its guesses with it)."""
    windows = Sampler(sampler) is Sampler.WINDOWS
    if windows:
        batches = sampling.window_batches(ids, batch_size, num_steps)
    else:
        batches = sampling.sequential_batches(ids, validation_sizes(len(ids), batch_size, num_steps)[0],
                                              num_steps, offset=0)
    total, count, state = 0.0, 0, None
    for inputs, targets in map(time_major, batches):
        logits, state = reference.forward(spec, params, inputs, None if windows else state)
        total += float(reference.cross_entropies(logits, targets).sum())
        count += targets.size
    return math.exp(min(total / max(count, 1), 700.0))
