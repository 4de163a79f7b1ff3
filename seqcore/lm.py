"""Language modelling on a text corpus: data preparation and the epoch loop around
`training.train_epoch`, with validation, text samples, metrics, plots and checkpoints.

Everything that must agree across backends is decided here in NumPy: the vocabulary, the
train / validation split, every batch (one seeded Generator), the evaluation batches.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from . import sampling
from .backend import Backend, Model, Trainer
from .checkpoint import Checkpoint, save_checkpoint
from .corpus import load_corpus, split_train_val
from .generate import predict
from .progress import Progress
from .reports import MetricsWriter, plot_curves, read_metrics, series
from .specs import Cell, Impl, InputKind, Loss, ModelSpec, Readout, Sampler, TrainSpec
from .training import NonFiniteLoss, evaluate, train_epoch
from .vocab import Vocab

SAMPLER_STREAM = 1  # the batch Generator is seeded with (seed, 1), the weights with seed alone
TEXT_STREAM = 2  # text samples drawn with a temperature use (seed, 2)


@dataclasses.dataclass(frozen=True)
class LMData:
    vocab: Vocab
    train_ids: np.ndarray  # (num_train_tokens,) int64
    val_ids: np.ndarray  # (num_val_tokens,) int64, the corpus tail
    token: str  # 'char' or 'word'


def prepare_data(corpus: Optional[str], token: str, max_tokens: Optional[int], val_fraction: float,
                 batch_size: int, num_steps: int, corpus_hash: Optional[str] = None) -> LMData:
    """Read, tokenise and split the corpus; the vocabulary covers the whole text (as in d2l)."""
    tokens = load_corpus(corpus, token, corpus_hash)
    vocab = Vocab(tokens)
    train, val = split_train_val(tokens, val_fraction, max_tokens)
    sampling.check_fits(len(train), batch_size, num_steps)
    return LMData(vocab, vocab.encode(train), vocab.encode(val), token)


def model_spec(cell: Cell | str, impl: Impl | str, vocab_size: int, hidden_size: int,
               num_layers: int) -> ModelSpec:
    """The d2l language model: one-hot characters in, a logit per vocabulary entry out."""
    return ModelSpec(cell=cell, impl=impl, input_size=vocab_size, hidden_size=hidden_size,
                     output_size=vocab_size, num_layers=num_layers, input_kind=InputKind.ONEHOT,
                     readout=Readout.SEQUENCE)


def time_major(batch: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Samplers give (N, T) rows; the models read (T, N)."""
    inputs, targets = batch
    return np.ascontiguousarray(inputs.T), np.ascontiguousarray(targets.T)


def validation_perplexity(backend: Backend, model: Model, ids: np.ndarray, batch_size: int,
                          num_steps: int) -> float:
    """Perplexity over `ids` read in order (offset 0, state carried); batch shrinks for short text."""
    if len(ids) < 2:
        return float("nan")
    batch_size = max(1, min(batch_size, (len(ids) - 1) // num_steps))
    batches = map(time_major, sampling.sequential_batches(ids, batch_size, num_steps, offset=0))
    return evaluate(backend, model, batches, loss=Loss.CROSS_ENTROPY, carry_state=True).perplexity


@dataclasses.dataclass(frozen=True)
class RunOptions:
    eval_every: int = 10  # epochs between validation passes (and the last epoch)
    checkpoint_every: int = 10  # epochs between checkpoints (and the last epoch)
    sample_every: int = 0  # epochs between printed text samples; 0 for none
    prefixes: Sequence[str] = ("time traveller", "traveller")
    num_preds: int = 50
    progress: bool = True
    log_steps: bool = False  # one metrics line per batch: the loss the lockstep comparison reads
    temperature: float = 0.0  # 0: greedy text samples; above 0: drawn from a Generator seeded (seed, 2)


def train_language_model(backend: Backend, model: Model, trainer: Trainer, spec: ModelSpec,
                         train: TrainSpec, data: LMData, out: Path, options: RunOptions,
                         info: dict[str, Any]) -> dict[str, Any]:
    """Train for `train.num_epochs`; write metrics.jsonl, perplexity.png, model.safetensors to `out`.

    Returns the summary (also written as the last line of metrics.jsonl).
    """
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([train.seed, SAMPLER_STREAM])
    text_rng = np.random.default_rng([train.seed, TEXT_STREAM])

    def sample(prefix: str) -> str:
        return predict(backend, model, data.vocab, prefix, options.num_preds, data.token,
                       options.temperature, text_rng)
    metrics = MetricsWriter(out / "metrics.jsonl")
    metrics.write({"kind": "run", "model": spec.to_dict(), "train": train.to_dict(), **info})
    checkpoint_path = out / "model.safetensors"
    last_saved: Optional[int] = None
    per_epoch = sampling.num_batches(train.sampler, len(data.train_ids), train.batch_size, train.num_steps)
    bar = Progress(per_epoch * train.num_epochs, f"{info.get('backend', '')} {spec.cell.value} "
                   f"{spec.impl.value}", enabled=options.progress)
    started = time.perf_counter()
    record: dict[str, Any] = {}
    try:
        for epoch in range(1, train.num_epochs + 1):
            def on_step(step: int, value: float, stats) -> None:
                if options.log_steps:
                    metrics.write({"kind": "step", "epoch": epoch, "step": step, "loss": value})
                bar.update(1, {"ppl": math.exp(min(value, 700.0)), "tok/s": stats.tokens_per_second})

            batches = map(time_major, sampling.batches(
                train.sampler, data.train_ids, train.batch_size, train.num_steps, rng))
            stats = train_epoch(backend, model, trainer, batches, loss=Loss.CROSS_ENTROPY,
                                clip=train.clip, carry_state=train.sampler is Sampler.SEQUENTIAL,
                                epoch=epoch, warmup_steps=1 if epoch == 1 else 0, on_step=on_step)
            last = epoch == train.num_epochs
            record = {"kind": "epoch", "epoch": epoch, "train_ppl": stats.perplexity,
                      "train_loss": stats.mean_loss, "tokens_per_s": stats.tokens_per_second,
                      "max_grad_norm": stats.max_grad_norm,
                      "elapsed_s": time.perf_counter() - started}
            if last or epoch % options.eval_every == 0:
                record["val_ppl"] = validation_perplexity(
                    backend, model, data.val_ids, train.batch_size, train.num_steps)
                bar.log(f"epoch {epoch}: train ppl {stats.perplexity:.3f}, "
                        f"val ppl {record['val_ppl']:.3f}, {stats.tokens_per_second:,.0f} tokens/s")
            if options.sample_every and epoch % options.sample_every == 0 and not last:
                bar.log(f"  {sample(options.prefixes[0])!r}")
            metrics.write(record)
            if last or (options.checkpoint_every and epoch % options.checkpoint_every == 0):
                save_checkpoint(checkpoint_path, Checkpoint(
                    spec, backend.export_params(model), train, data.vocab.to_dict(),
                    {"epoch": epoch, "token": data.token, **info, **_numbers(record)}))
                last_saved = epoch
    except NonFiniteLoss as error:
        raise error.explain(checkpoint_path, last_saved) from None
    finally:
        bar.close()

    samples = {p: sample(p) for p in options.prefixes}
    summary = {"kind": "summary", "epochs": train.num_epochs, "train_ppl": record["train_ppl"],
               "val_ppl": record["val_ppl"], "tokens_per_s_last_epoch": record["tokens_per_s"],
               "wall_s": time.perf_counter() - started, "samples": samples,
               "checkpoint": str(checkpoint_path), **info}
    metrics.write(summary)
    _plot(out / "perplexity.png", out / "metrics.jsonl", spec, info)
    return summary


def _numbers(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "kind"}


def _plot(path: Path, metrics_path: Path, spec: ModelSpec, info: dict[str, Any]) -> None:
    records = [r for r in read_metrics(metrics_path) if r.get("kind") == "epoch"]
    plot_curves(path, {"train": series(records, "epoch", "train_ppl"),
                       "validation": series(records, "epoch", "val_ppl")},
                title=f"{info.get('backend', '')} {spec.impl.value} {spec.cell.value}: perplexity",
                xlabel="epoch", ylabel="perplexity", logy=True)
