"""Translation quality: the book's sentence BLEU, and corpus BLEU and chrF through sacrebleu.

The book's BLEU (d2l 1.0 10.7.6), exactly its formula:

    exp(min(0, 1 - len_label / len_pred)) * prod_{n=1}^{min(k, len_pred)} p_n ^ (1 / 2^n)

with p_n the clipped n-gram precision and tokens the pieces of `str.split(' ')` (so an empty
prediction is one empty token, and scores 0). d2l 0.17's `bleu` ran n up to k regardless (a
one-token prediction divided by zero) and keyed n-grams by ''.join (so 'a bc' matched 'ab c');
both agree with this one on the book's printed examples. It judges one sentence against one reference with
k = 2, too coarse to compare systems on; for that, corpus BLEU (4-grams, sacrebleu's default
13a tokenisation and exponential smoothing) and chrF on the held-out pairs, each with sacrebleu's
signature so a figure says how it was computed (Post 2018, "A Call for Clarity in Reporting BLEU
Scores"). sacrebleu is imported only when a corpus score is asked for.
"""
from __future__ import annotations

import collections
import dataclasses
import math
from typing import Sequence

from seqcore.checks import positive_int
from seqcore.errors import SeqcoreError

BOOK_K = 2  # the book's longest n-gram


def book_bleu(prediction: str, label: str, k: int = BOOK_K) -> float:
    """d2l's `bleu(pred_seq, label_seq, k)`: sentences as space-joined tokens."""
    positive_int(k, "k")
    pred_tokens, label_tokens = prediction.split(" "), label.split(" ")
    len_pred, len_label = len(pred_tokens), len(label_tokens)
    score = math.exp(min(0.0, 1.0 - len_label / len_pred))
    for n in range(1, min(k, len_pred) + 1):
        label_counts = collections.Counter(tuple(label_tokens[i:i + n]) for i in range(len_label - n + 1))
        matches = 0
        for i in range(len_pred - n + 1):
            gram = tuple(pred_tokens[i:i + n])
            if label_counts[gram] > 0:  # each reference n-gram matches once (clipping)
                matches += 1
                label_counts[gram] -= 1
        score *= math.pow(matches / (len_pred - n + 1), math.pow(0.5, n))
    return score


@dataclasses.dataclass(frozen=True)
class CorpusScore:
    name: str  # 'BLEU' or 'chrF2'
    score: float  # 0..100
    signature: str  # sacrebleu's, e.g. 'nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0'

    def __str__(self) -> str:
        return f"{self.name} {self.score:.2f} ({self.signature})"


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> CorpusScore:
    """sacrebleu's corpus BLEU of `hypotheses` against one reference each."""
    # force: both sides are the book's tokenized text (a space before . , ! ?); sacrebleu's check
    # for such text only warns (13a splits the punctuation off either way), so it is quieted.
    metric = _sacrebleu().metrics.BLEU(force=True)
    result = metric.corpus_score(list(hypotheses), [_references(hypotheses, references)])
    return CorpusScore("BLEU", float(result.score), str(metric.get_signature()))


def corpus_chrf(hypotheses: Sequence[str], references: Sequence[str]) -> CorpusScore:
    """sacrebleu's corpus chrF (character 6-grams, beta 2) against one reference each."""
    metric = _sacrebleu().metrics.CHRF()
    result = metric.corpus_score(list(hypotheses), [_references(hypotheses, references)])
    return CorpusScore("chrF2", float(result.score), str(metric.get_signature()))


def _references(hypotheses: Sequence[str], references: Sequence[str]) -> list[str]:
    if len(hypotheses) != len(references):
        raise SeqcoreError(f"{len(hypotheses)} translations cannot be scored against "
                           f"{len(references)} references: give one reference each.")
    if not hypotheses:
        raise SeqcoreError("There are no translations to score.")
    return list(references)


def _sacrebleu():
    try:
        import sacrebleu
    except ImportError as error:
        raise SeqcoreError(f"Corpus BLEU and chrF need sacrebleu ({error}); install seqcore's "
                           f"dependencies, e.g. pip install 'sacrebleu==2.6.0'.") from None
    return sacrebleu
