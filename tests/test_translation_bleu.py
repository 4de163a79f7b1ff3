"""The book's BLEU against the book's own printed scores, and corpus BLEU / chrF through sacrebleu."""
from __future__ import annotations

import math
import os
import sys

import pytest

from seqcore.errors import SeqcoreError
from seqcore.jobs.bleu import book_bleu, corpus_bleu, corpus_chrf

# (prediction, label, the score the book printed with k = 2), from d2l 1.0's PyTorch and JAX editions.
BOOK_PRINTED = [
    ("va !", "va !", 1.000),
    ("j'ai perdu .", "j'ai perdu .", 1.000),
    ("elle court .", "il est calme .", 0.000),
    ("je suis chez moi .", "je suis chez moi .", 1.000),
    ("<unk> .", "va !", 0.000),
    ("il est mouillé .", "il est calme .", 0.658),
]


@pytest.mark.parametrize("prediction, label, printed", BOOK_PRINTED)
def test_book_bleu_reproduces_the_printed_scores(prediction: str, label: str, printed: float) -> None:
    assert f"{book_bleu(prediction, label, k=2):.3f}" == f"{printed:.3f}"


def test_book_bleu_is_the_books_formula() -> None:
    """The book's worked example: label A B C D E F, prediction A B B C D has p1 = 4/5, p2 = 3/4,
    p3 = 1/3, p4 = 0; prediction A B has p1 = p2 = 1 and the brevity penalty exp(1 - 6/2)."""
    label = "A B C D E F"
    penalty = math.exp(1 - 6 / 5)
    assert book_bleu("A B B C D", label, k=3) == pytest.approx(
        penalty * (4 / 5) ** (1 / 2) * (3 / 4) ** (1 / 4) * (1 / 3) ** (1 / 8))
    assert book_bleu("A B B C D", label, k=4) == 0.0
    assert book_bleu("A B", label, k=2) == pytest.approx(math.exp(1 - 3))
    assert book_bleu("A B", label, k=4) == pytest.approx(math.exp(1 - 3))  # n stops at len_pred
    assert book_bleu("A A A", "A", k=1) == pytest.approx((1 / 3) ** (1 / 2))  # a label n-gram matches once
    assert book_bleu("", "va !", k=2) == 0.0  # one empty token, as ''.split(' ') gives
    with pytest.raises(SeqcoreError, match="k must be a positive integer"):
        book_bleu("a", "a", k=0)


@pytest.fixture
def sacrebleu_available() -> None:
    """sacrebleu is a dependency; a run outside CI without it skips these tests, CI must have it."""
    if not os.environ.get("CI"):
        pytest.importorskip("sacrebleu", reason="sacrebleu is not installed here")


@pytest.mark.usefixtures("sacrebleu_available")
def test_corpus_scores_with_signatures() -> None:
    hypotheses = ["je suis chez moi .", "il est mouillé .", "va !"]
    references = ["je suis chez moi .", "il est calme .", "va !"]
    bleu, chrf = corpus_bleu(hypotheses, references), corpus_chrf(hypotheses, references)
    assert 0 < bleu.score < 100 and 0 < chrf.score < 100
    assert "nrefs:1" in bleu.signature and "version:2.6.0" in bleu.signature and "tok:13a" in bleu.signature
    assert bleu.name == "BLEU" and chrf.name == "chrF2" and str(bleu).startswith("BLEU ")
    assert corpus_bleu(references, references).score == pytest.approx(100.0)
    assert corpus_chrf(references, references).score == pytest.approx(100.0)
    assert corpus_bleu(hypotheses, references[::-1]).score < bleu.score  # pairs are read in order


@pytest.mark.usefixtures("sacrebleu_available")
def test_corpus_scores_refuse_mismatched_input() -> None:
    with pytest.raises(SeqcoreError, match="2 translations cannot be scored against 1 references"):
        corpus_bleu(["a", "b"], ["a"])
    with pytest.raises(SeqcoreError, match="no translations to score"):
        corpus_chrf([], [])


def test_missing_sacrebleu_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sacrebleu", None)  # `import sacrebleu` now raises ImportError
    with pytest.raises(SeqcoreError, match="Corpus BLEU and chrF need sacrebleu"):
        corpus_bleu(["a"], ["a"])
