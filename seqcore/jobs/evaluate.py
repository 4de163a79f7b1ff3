"""A language-model checkpoint measured on any backend, whichever backend wrote it: the validation
perplexity on the held-out text it was trained beside, and text continued from prefixes.

The text comes from the checkpoint's data spec (seqcore.data.spec.CorpusSpec; derived from the
`progress` fields of a format-2 file), loaded as a run loads it. Nothing is measured unless
everything matches: the corpus's bytes (the SHA-256 the checkpoint recorded), the vocabulary
(rebuilt from the corpus, in the same order) and the width of the weights; the flags and the
prefixes are checked before a framework loads. Nothing is written.
"""
from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from seqcore import checks
from seqcore.backend import Device, load_backend
from seqcore.checks import parse_enum
from seqcore.data.corpus import is_url
from seqcore.data.fingerprint import fingerprint_changes
from seqcore.data.sampling import Sampler
from seqcore.data.spec import TIME_MACHINE, Corpus, CorpusSpec
from seqcore.data.vocab import Vocab
from seqcore.errors import ConfigError, SeqcoreError
from seqcore.jobs.generate import predict
from seqcore.jobs.lm import validation_perplexity, validation_sizes
from seqcore.model.spec import InputKind, Readout
from seqcore.run.checkpoint import Checkpoint, checkpoint_path, load_checkpoint

DEFAULT_PREFIXES = ("time traveller",)
_SHA256 = re.compile("[0-9a-f]{64}")


def evaluate_checkpoint(*, checkpoint: str, backend: str, device: str = "auto", batch_size: Optional[int] = None,
        num_steps: Optional[int] = None, prefixes: Sequence[str] = DEFAULT_PREFIXES, num_preds: int = 50,
        best: bool = False) -> dict[str, Any]:
    """The validation perplexity and samples of a checkpoint (a file, or a run folder's last or
    best one); every mismatch between checkpoint, corpus and flags is refused in one sentence.

    batch_size / num_steps: None takes the checkpoint's training values (an imported one's: the
    sizes of the data it was imported for), read as the run read its validation text (the batch
    shrunk to what the text fills: the run's own figure; d2l 1.0's windows each from a zero
    state); sizes given must fit the text. The result reports the sizes it read with.
    """
    check_flags(batch_size, num_steps, prefixes, num_preds)
    path = checkpoint_path(checkpoint, best)
    saved = load_checkpoint(path)
    vocab = checked_vocab(path, saved)
    spec = corpus_spec(path, saved)
    check_prefixes(vocab, prefixes, spec.token)
    corpus = validation_corpus(path, saved, spec, vocab)
    recorded = recorded_sizes(saved)
    sampler = Sampler(recorded[2]) if recorded else Sampler.SEQUENTIAL
    if spec.windows is not None:  # d2l 1.0's validation: its windows, each from a zero state
        sampler, num_steps = Sampler.WINDOWS, windows_steps(path, spec.windows[2], num_steps)
        batch_size = batch_size or (recorded[0] if recorded else 1024)
    else:
        batch_size, num_steps = measured_sizes(path, saved, len(corpus.val_ids), batch_size, num_steps)
    written_by, epoch = (saved.provenance.get(key) for key in ("backend", "epoch"))
    for key, value, kind, wanted in (("epoch", epoch, int, "a whole number"), ("backend", written_by, str,
                                                                                "a backend name")):
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            raise SeqcoreError(f"{path} has damaged provenance metadata: {key} is {value!r} "
                               f"({type(value).__name__}), not {wanted}.")

    framework = load_backend(backend)  # only now: every check above runs without a framework
    where = framework.resolve_device(parse_enum(Device, device, "device"))
    model = framework.build_model(saved.model_spec, saved.params, where)
    val_ppl = validation_perplexity(framework, model, corpus.val_ids, batch_size, num_steps, sampler)
    if not math.isfinite(val_ppl):
        raise SeqcoreError(f"The validation perplexity of {path} came out as {val_ppl}; the weights "
                           f"overflow on this text.")
    return {
        "checkpoint": str(path), "written_by": written_by, "backend": backend, "device": str(where),
        "epoch": epoch, "corpus": spec.source, "data": spec.to_dict(), "batch_size": batch_size,
        "num_steps": num_steps, "num_val_tokens": len(corpus.val_ids), "val_ppl": val_ppl,
        "samples": {p: predict(framework, model, vocab, p, num_preds, spec.token) for p in prefixes},
    }


def check_flags(batch_size: Optional[int], num_steps: Optional[int], prefixes: Sequence[str],
                num_preds: int) -> None:
    """The Python API's arguments, in the sentences of tasks.evaluate's options."""
    for name, value in (("--batch-size", batch_size), ("--num-steps", num_steps), ("--num-preds", num_preds)):
        if value is not None and checks.whole_number(value, name) <= 0:
            raise ConfigError(f"{name} must be a positive number, got {value!r}.")
    for prefix in checks.listed(prefixes, "--prefix"):
        checks.text(prefix, "each --prefix")


def recorded_sizes(saved: Checkpoint) -> Optional[tuple[int, int, str]]:
    """(batch size, steps, sampler) the model was trained with: the training spec's, or for an
    imported model those of the data it was imported for (tasks.convert records them in the
    provenance); None when neither says."""
    train = saved.train_spec
    if train is not None:
        return train.batch_size, train.num_steps, Sampler(train.sampler).value
    found = saved.provenance
    sizes = (found.get("batch_size"), found.get("num_steps"))
    if all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes):
        sampler = found.get("sampler") if found.get("sampler") in [k.value for k in Sampler] else "sequential"
        return sizes[0], sizes[1], sampler
    return None


def windows_steps(path: Path, recorded: int, num_steps: Optional[int]) -> int:
    """The window length of d2l 1.0's validation windows: the data's, which --num-steps cannot change."""
    if num_steps is not None and num_steps != recorded:
        raise SeqcoreError(f"{path} was trained on windows of {recorded} + 1 tokens (d2l 1.0's num_steps), so its "
                           f"validation windows are those: --num-steps {num_steps} cannot change them.")
    return recorded


def measured_sizes(path: Path, saved: Checkpoint, num_tokens: int, batch_size: Optional[int],
                   num_steps: Optional[int]) -> tuple[int, int]:
    """(rows, steps) the validation text of `num_tokens` is read with. Left out, the run's own
    sizes (recorded_sizes), shrunk as the run shrank them; given, they must fit the text (never
    silently less)."""
    recorded = recorded_sizes(saved)
    if (batch_size is None or num_steps is None) and recorded is None:
        raise SeqcoreError(f"{path} records no training spec (an imported checkpoint), so there are no run's "
                           f"sizes to measure with: give --batch-size and --num-steps.")
    rows, steps = validation_sizes(num_tokens, batch_size or recorded[0], num_steps or recorded[1])
    if num_steps is not None and steps < num_steps:
        raise SeqcoreError(f"--num-steps {num_steps:,} is more than the {num_tokens - 1:,} steps of the held-out "
                           f"text of {path}; give at most {num_tokens - 1:,}.")
    if batch_size is not None and rows < batch_size:
        raise SeqcoreError(f"--batch-size {batch_size:,} at {steps} steps needs {batch_size * steps + 1:,} held-out "
                           f"tokens, and the validation text of {path} has {num_tokens:,}; give at most "
                           f"--batch-size {rows:,}.")
    return rows, steps


def checked_vocab(path: Path, saved: Checkpoint) -> Vocab:
    """The checkpoint's vocabulary, refused unless it is a language model's and fits the weights."""
    spec = saved.model_spec
    if saved.vocab is None or spec.input_kind is InputKind.DENSE or spec.readout is not Readout.SEQUENCE:
        imported = saved.provenance.get("imported_from")
        hint = (f"; it was imported from {imported} without --vocab: import it again with --vocab FILE"
                if imported and spec.readout is Readout.SEQUENCE and spec.input_kind is not InputKind.DENSE else "")
        raise SeqcoreError(f"{path} is not a language-model checkpoint (it has no vocabulary){hint}.")
    try:
        vocab = Vocab.from_dict(saved.vocab)
    except SeqcoreError as error:
        raise SeqcoreError(f"{path} holds a damaged vocabulary ({str(error).rstrip('.')}).") from None
    if len(vocab) != spec.input_size or len(vocab) != spec.output_size:
        raise SeqcoreError(f"{path} holds a vocabulary of {len(vocab)} tokens, but its weights read "
                           f"{spec.input_size} and predict {spec.output_size}; the vocabulary does not "
                           f"belong to these weights.")
    return vocab


def corpus_spec(path: Path, saved: Checkpoint) -> CorpusSpec:
    """The corpus the checkpoint was trained on, as its data spec says."""
    if not isinstance(saved.data_spec, CorpusSpec):
        what = f"{saved.data_spec.kind} data" if saved.data_spec is not None else "no data spec"
        raise SeqcoreError(f"{path} records {what}, not a corpus ({saved.format}), so the validation text "
                           f"cannot be rebuilt.")
    return saved.data_spec


def check_prefixes(vocab: Vocab, prefixes: Sequence[str], token: str) -> None:
    for prefix in prefixes:
        unknown = vocab.unknown(list(prefix) if token == "char" else prefix.split())
        if unknown:
            raise SeqcoreError(f"The prefix {prefix!r} has tokens outside the checkpoint's vocabulary: "
                               f"{', '.join(repr(t) for t in unknown)}.")


def validation_corpus(path: Path, saved: Checkpoint, spec: CorpusSpec, vocab: Vocab) -> Corpus:
    """The corpus the run measured, after checking its bytes and vocabulary and that it holds out text."""
    if spec.source != TIME_MACHINE and not is_url(spec.source) and not Path(spec.source).exists():
        raise SeqcoreError(f"The corpus {spec.source} that {path} was trained on is missing; restore it to "
                           f"measure on the same validation text.")
    corpus = spec.load()
    expected = saved.fingerprint.get("corpus_sha256")
    if expected is None:
        print(f"warning: {path} records no SHA-256 of its corpus (an older checkpoint), so a changed "
              f"corpus cannot be detected; only its vocabulary is checked.", file=sys.stderr)
    elif not isinstance(expected, str) or not _SHA256.fullmatch(expected):
        raise SeqcoreError(f"{path} has a damaged fingerprint: corpus_sha256 is {expected!r}, "
                           f"not 64 hexadecimal digits.")
    elif fingerprint_changes(saved.fingerprint, corpus.fingerprint):
        where = "its download" if is_url(spec.source) else "the file"
        raise SeqcoreError(f"The corpus {spec.source} has changed since {path} was trained ({where}: "
                           f"{fingerprint_changes(saved.fingerprint, corpus.fingerprint)}), so its validation "
                           f"text is not the one the run measured.")
    check_same_vocab(path, vocab, corpus.vocab, spec.source)
    if len(corpus.val_ids) < 2:
        raise SeqcoreError(f"{path} was trained with a validation fraction of {spec.val_fraction}, "
                           f"which leaves {len(corpus.val_ids)} held-out tokens: there is no validation text "
                           f"to measure.")
    return corpus


def check_same_vocab(path: Path, saved: Vocab, rebuilt: Vocab, corpus: str) -> None:
    """The checkpoint's vocabulary must be the corpus's, token for token, in the same order."""
    if saved == rebuilt:
        return
    ours, theirs = saved.idx_to_token, rebuilt.idx_to_token
    head = f"The vocabulary in {path} is not the one rebuilt from the corpus {corpus}"
    if set(ours) == set(theirs) and ours != theirs:
        index = next(i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b)
        raise SeqcoreError(f"{head}: it holds the same {len(ours)} tokens in another order (index {index} "
                           f"is {ours[index]!r} in the checkpoint and {theirs[index]!r} in the corpus), so the "
                           f"weights would be read for the wrong tokens.")
    if set(ours) != set(theirs):
        only_saved = ", ".join(repr(t) for t in sorted(set(ours) - set(theirs))[:5]) or "none"
        only_corpus = ", ".join(repr(t) for t in sorted(set(theirs) - set(ours))[:5]) or "none"
        raise SeqcoreError(f"{head}: tokens only in the checkpoint: {only_saved}; only in the corpus: "
                           f"{only_corpus}.")
    if ours == theirs:
        raise SeqcoreError(f"{head}: the same tokens, recorded under the {saved.order.value} order rule where the "
                           f"corpus was rebuilt under {rebuilt.order.value}.")
    raise SeqcoreError(f"{head}: it reserves {saved.reserved_tokens} where the corpus's vocabulary reserves "
                       f"{rebuilt.reserved_tokens}.")
