"""Machine translation (d2l 9.5-9.8, 10.4; 1.0: 10.5-10.8, 11.4): the Job that the run layer trains.

Training is teacher forcing: batches of shuffled training pairs (seqcore.data.translation's
time-major tuples), the masked loss of the run (Loss.MASKED, the mean over real target tokens, or
Loss.MASKED_D2L, the book's mean over every position), dropout masks per step from the run's seed
(seqcore.train.loop.batch_masks). Each evaluation: the validation loss over the held-out pairs
(the monitored figure; the training loss when nothing is held out), the book's four sentences
translated greedily (book_bleu, 0 to 1), and every --bleu-every epochs and at the last one corpus
BLEU and chrF (0 to 100, sacrebleu) of the greedy translations of the held-out pairs. The summary
adds beam search (beam > 1), BLEU by source length, and the examples with their attention weights,
which `plot` draws as heat maps (attention_<n>.png) beside the loss and BLEU curves.

Everything that must agree across backends is decided in NumPy: the pairs, the vocabularies, the
split, every batch (one seeded Generator), the masks; decoding is seqcore.jobs.decode over the
backend's step model.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import numpy as np

from seqcore.backend import Backend, Model
from seqcore.data.pairs import Pairs
from seqcore.jobs import scoring
from seqcore.jobs.bleu import corpus_bleu, corpus_chrf
from seqcore.jobs.figures import plot_attention, plot_curves, series
from seqcore.model.seq2seq import seq2seq_loss
from seqcore.model.spec import Loss
from seqcore.train.loop import evaluate
from seqcore.train.spec import TrainSpec

HELD_OUT_EXAMPLES = 4  # held-out pairs shown beside the book's sentences (and drawn, with attention)


class TranslationJob:
    """The run layer's Job for an encoder-decoder on sentence pairs."""

    maximize = False

    def __init__(self, data: Pairs, train: TrainSpec, loss: Loss | str = Loss.MASKED, *, beam: int = 1,
                 bleu_every: int = 0, attends: bool = False):
        self.data, self.pairs, self.train = data, data.data, train
        self.loss = seq2seq_loss(loss)
        self.beam, self.bleu_every, self.attends = beam, bleu_every, attends
        self.max_len = data.spec.num_steps  # the book's predict_seq2seq(..., num_steps)
        self.held_out = self.pairs.held_out_rows
        self.monitor = "val_loss" if len(self.held_out) else "train_loss"
        self.vocab = {"source": self.pairs.source_vocab.to_dict(), "target": self.pairs.target_vocab.to_dict()}
        shown = self.held_out[:HELD_OUT_EXAMPLES]
        self.shown = [*scoring.BOOK_SENTENCES,
                      *zip(self.pairs.sources(shown), self.pairs.references(shown))]
        self._greedy: Optional[tuple[int, scoring.Found]] = None  # (epoch, held-out translations)

    # -- training ----------------------------------------------------------------------------------

    def num_batches(self) -> int:
        return math.ceil(len(self.pairs.train_rows) / self.train.batch_size)

    def batches(self, epoch: int, rng: np.random.Generator) -> Iterable[tuple[tuple, tuple]]:
        return map(self.pairs.batch, self.pairs.epoch_batches(self.train.batch_size, rng))

    # -- evaluation ----------------------------------------------------------------------------------

    def evaluate(self, run, backend: Backend, model: Model, epoch: int) -> dict[str, Any]:
        figures: dict[str, Any] = {}
        if len(self.held_out):
            figures["val_loss"] = self.validation_loss(backend, model)
        translator = scoring.step_model(backend, model)
        book = scoring.examples(translator, self.pairs, scoring.BOOK_SENTENCES, self.max_len, attends=False)
        figures["book_bleu"] = scoring.book_score(book)
        figures["translation"] = book[0]["translation"]
        due = epoch == self.train.num_epochs or (self.bleu_every and epoch % self.bleu_every == 0)
        if due and len(self.held_out):
            found = scoring.translate_rows(translator, self.pairs, self.held_out, self.max_len)
            self._greedy = (epoch, found)
            references = self.pairs.references(self.held_out)
            figures["bleu"] = corpus_bleu(found.texts, references).score
            figures["chrf"] = corpus_chrf(found.texts, references).score
        return figures

    def validation_loss(self, backend: Backend, model: Model) -> float:
        """The run's loss over the held-out pairs, in order, batch_size at a time, without dropout."""
        rows = self.held_out
        batches = (self.pairs.batch(rows[start:start + self.train.batch_size])
                   for start in range(0, len(rows), self.train.batch_size))
        return evaluate(backend, model, batches, loss=self.loss, carry_state=False).mean_loss

    def describe(self, record: Mapping[str, Any]) -> str:
        parts = [f"epoch {record['epoch']}: train loss {record['train_loss']:.4f}"]
        if "val_loss" in record:
            parts.append(f"val loss {record['val_loss']:.4f}")
        parts.append(f"book BLEU {record['book_bleu']:.3f}")
        if "bleu" in record:
            parts.append(f"BLEU {record['bleu']:.2f}, chrF {record['chrf']:.2f}")
        parts.append(f"{record['tokens_per_s']:,.0f} tokens/s")
        return ", ".join(parts) + f"; {scoring.BOOK_SENTENCES[0][0]!r} -> {record['translation']!r}"

    # -- figures and summary ---------------------------------------------------------------------------

    def plot(self, run) -> None:
        records = run.log.of_kind("epoch")
        name = f"{run.backend_name} {run.spec.impl.value} {run.spec.cell.value} {run.spec.attention.value}"
        plot_curves(run.folder / "loss.png", {"train": series(records, "epoch", "train_loss"),
                                              "validation": series(records, "epoch", "val_loss")},
                    title=f"{name}: {self.loss.value} loss", xlabel="epoch", ylabel="loss", logy=True)
        plot_curves(run.folder / "bleu.png", {"book BLEU x 100": [(x, 100 * y) for x, y in
                                                                  series(records, "epoch", "book_bleu")],
                                              "held-out corpus BLEU": series(records, "epoch", "bleu")},
                    title=f"{name}: BLEU", xlabel="epoch", ylabel="BLEU (0-100)")
        summary = run.log.of_kind("summary")
        for index, example in enumerate(summary[-1].get("examples", []) if summary else []):
            if example.get("attention"):
                draw_attention(run.folder / f"attention_{index}.png", example, name)

    def summary(self, run, backend: Backend, model: Model) -> dict[str, Any]:
        last = run.log.of_kind("epoch")[-1]
        translator = scoring.step_model(backend, model)
        shown = scoring.examples(translator, self.pairs, self.shown, self.max_len, self.attends)
        book = shown[:len(scoring.BOOK_SENTENCES)]
        result: dict[str, Any] = {
            "epochs": last["epoch"], "train_loss": last["train_loss"], "val_loss": last.get("val_loss"),
            "best_" + self.monitor: run.position.best, "best_epoch": run.position.best_epoch,
            "tokens_per_s_last_epoch": last["tokens_per_s"], "loss": self.loss.value,
            "book_bleu": scoring.book_score(book), "translations": {e["source"]: e["translation"] for e in book},
            "examples": shown, "beam": self.beam}
        if not len(self.held_out):
            return {**result, "bleu": None, "chrf": None}
        references = self.pairs.references(self.held_out)
        lengths = scoring.source_lengths(self.pairs, self.held_out)
        if self._greedy is not None and self._greedy[0] == last["epoch"]:
            greedy = self._greedy[1]
        else:  # a resumed run finishing its summary, or an early stop: translated afresh
            greedy = scoring.translate_rows(translator, self.pairs, self.held_out, self.max_len)
        result.update(scoring.split_scores(greedy.texts, references, lengths))
        if self.beam > 1:
            beam = scoring.translate_rows(translator, self.pairs, self.held_out, self.max_len, self.beam)
            result.update({f"{key}_beam": value for key, value in
                           scoring.split_scores(beam.texts, references, lengths).items()})
        return result


def draw_attention(path: Path, example: Mapping[str, Any], name: str) -> Path:
    """One example's attention heat map: its greedy translation's rows over its source's columns."""
    weights = np.asarray(example["attention"], dtype=np.float64)
    return plot_attention(path, weights, example["source_tokens"], example["target_tokens"],
                          title=f"{name}: {example['source']!r} -> {example['translation']!r}")
