"""A translation checkpoint used after training, on any backend, whichever wrote it: sentences
translated (`translate_sentences`, tasks.translate --checkpoint) and the held-out pairs measured
(`evaluate_translation`, tasks.evaluate).

A translation checkpoint holds a Seq2SeqSpec, both vocabularies ({"source": ..., "target": ...})
and its data spec (seqcore.data.pairs.PairsSpec). Everything is checked before a framework loads:
the vocabularies against the weights' sizes, the sentences (an empty one is refused; unknown words
are read as <unk> and named; a sentence longer than the model's num_steps is cut, as in training,
and counted); for an evaluation the pairs themselves (the SHA-256 the checkpoint recorded) and the
vocabularies rebuilt from them.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional, Sequence

from seqcore.backend import Device, load_backend
from seqcore.checks import parse_enum, positive_int
from seqcore.data.fingerprint import fingerprint_changes
from seqcore.data.pairs import Pairs, PairsSpec
from seqcore.data.translation import encode_sentences
from seqcore.data.vocab import Vocab
from seqcore.errors import SeqcoreError
from seqcore.jobs import scoring
from seqcore.jobs.evaluate import check_same_vocab
from seqcore.model.seq2seq import Seq2SeqSpec, seq2seq_loss
from seqcore.model.spec import Loss
from seqcore.run.checkpoint import Checkpoint, checkpoint_path, load_checkpoint
from seqcore.train.loop import evaluate


@dataclasses.dataclass(frozen=True)
class Translation:
    """A checked translation checkpoint: its file, contents, vocabularies and data spec."""

    path: Path
    saved: Checkpoint
    source_vocab: Vocab
    target_vocab: Vocab
    data_spec: PairsSpec

    @property
    def spec(self) -> Seq2SeqSpec:
        return self.saved.model_spec

    @property
    def num_steps(self) -> int:
        return self.data_spec.num_steps


def is_translation(saved: Checkpoint) -> bool:
    return isinstance(saved.model_spec, Seq2SeqSpec)


def load_translation_checkpoint(checkpoint: str, best: bool = False) -> Translation:
    """The checkpoint (a file, or a run folder's last or best one), refused in one sentence unless
    it is an encoder-decoder with both vocabularies, of the sizes its weights read and write."""
    path = checkpoint_path(checkpoint, best)
    saved = load_checkpoint(path)
    if not is_translation(saved):
        raise SeqcoreError(f"{path} holds a {saved.model_spec.cell.value} sequence model, not an encoder-decoder: "
                           f"it translates nothing (tasks.evaluate measures it).")
    vocab = saved.vocab
    if not isinstance(vocab, dict) or set(vocab) != {"source", "target"}:
        raise SeqcoreError(f"{path} holds no source and target vocabularies, so its ids cannot be read as words.")
    try:
        source, target = Vocab.from_dict(vocab["source"]), Vocab.from_dict(vocab["target"])
    except SeqcoreError as error:
        raise SeqcoreError(f"{path} holds a damaged vocabulary ({str(error).rstrip('.')}).") from None
    spec = saved.model_spec
    for side, words, size in (("source", source, spec.source_vocab_size), ("target", target, spec.target_vocab_size)):
        if len(words) != size:
            raise SeqcoreError(f"{path} holds a {side} vocabulary of {len(words)} words, but its weights take "
                               f"{size}; the vocabulary does not belong to these weights.")
    if not isinstance(saved.data_spec, PairsSpec):
        raise SeqcoreError(f"{path} records no sentence pairs (its data spec), so its sentence length is unknown.")
    return Translation(path, saved, source, target, saved.data_spec)


def translate_sentences(checkpoint: str, sentences: Sequence[str], *, backend: str, device: str = "auto",
                        beam: int = 1, max_len: Optional[int] = None, best: bool = False) -> dict[str, Any]:
    """Each sentence translated (greedy, or beam search with beam > 1), with the words the model did
    not know; `truncated` counts the sentences cut to the model's num_steps."""
    positive_int(beam, "--beam")
    if max_len is not None:
        positive_int(max_len, "--max-len")
    found = load_translation_checkpoint(checkpoint, best)
    ids, valid, num_unknown, truncated = encode_sentences(list(sentences), found.source_vocab, found.num_steps)
    framework = load_backend(backend)  # only now: every check above runs without a framework
    where = framework.resolve_device(parse_enum(Device, device, "device"))
    model = framework.build_model(found.spec, found.saved.params, where)
    translated = scoring.translate_ids(scoring.step_model(framework, model), ids, valid, found.target_vocab,
                                       max_len or found.num_steps, beam)
    return {"checkpoint": str(found.path), "backend": backend, "device": where, "beam": beam,
            "num_steps": found.num_steps, "truncated": int(truncated), "num_unknown": int(num_unknown),
            "translations": [{"source": sentence, "translation": text,
                              "unknown": scoring.unknown_words(sentence, found.source_vocab)}
                             for sentence, text in zip(sentences, translated.texts)]}


def held_out_pairs(found: Translation) -> Pairs:
    """The pairs the checkpoint was trained beside, rebuilt and checked: the same lines (their
    SHA-256), the same vocabularies, some pairs held out."""
    pairs = found.data_spec.load()
    changed = fingerprint_changes(found.saved.fingerprint, pairs.fingerprint) if found.saved.fingerprint else ""
    if changed:
        raise SeqcoreError(f"The sentence pairs of {found.data_spec.corpus} are not those {found.path} was trained "
                           f"on ({changed}), so its held-out split is not the one the run measured.")
    for side, saved, rebuilt in (("source", found.source_vocab, pairs.data.source_vocab),
                                 ("target", found.target_vocab, pairs.data.target_vocab)):
        check_same_vocab(found.path, saved, rebuilt, f"{found.data_spec.corpus} ({side} side)")
    if not len(pairs.data.held_out_rows):
        raise SeqcoreError(f"{found.path} was trained on every pair it read (none held out): there is no held-out "
                           f"split to measure.")
    return pairs


def evaluate_translation(*, checkpoint: str, backend: str, device: str = "auto", batch_size: Optional[int] = None,
                         beam: int = 1, best: bool = False) -> dict[str, Any]:
    """The held-out split's loss (the run's loss), corpus BLEU and chrF (greedy, and beam search with
    beam > 1) and BLEU by source length, on `backend`."""
    positive_int(beam, "--beam")
    found = load_translation_checkpoint(checkpoint, best)
    train = found.saved.train_spec
    batch_size = batch_size or (train.batch_size if train is not None else 64)
    positive_int(batch_size, "--batch-size")
    loss = seq2seq_loss(found.saved.provenance.get("config", {}).get("loss") or Loss.MASKED)
    pairs = held_out_pairs(found)
    data, rows = pairs.data, pairs.data.held_out_rows
    framework = load_backend(backend)
    where = framework.resolve_device(parse_enum(Device, device, "device"))
    model = framework.build_model(found.spec, found.saved.params, where)
    batches = (data.batch(rows[start:start + batch_size]) for start in range(0, len(rows), batch_size))
    val_loss = evaluate(framework, model, batches, loss=loss, carry_state=False).mean_loss
    translator = scoring.step_model(framework, model)
    references, lengths = data.references(rows), scoring.source_lengths(data, rows)
    result = {"checkpoint": str(found.path), "written_by": found.saved.provenance.get("backend"),
              "backend": backend, "device": where, "epoch": found.saved.provenance.get("epoch"),
              "data": found.data_spec.to_dict(), "num_held_out_pairs": int(len(rows)), "batch_size": batch_size,
              "loss": loss.value, "val_loss": val_loss, "beam": beam,
              **scoring.split_scores(scoring.translate_rows(translator, data, rows, found.num_steps).texts,
                                     references, lengths)}
    if beam > 1:
        texts = scoring.translate_rows(translator, data, rows, found.num_steps, beam).texts
        result.update({f"{k}_beam": v for k, v in scoring.split_scores(texts, references, lengths).items()})
    return result
