"""A trained encoder-decoder's translations and their scores, over any backend's step model.

    translator = step_model(backend, model)         # backends.<name>.seq2seq.Translator
    found = translate_rows(translator, data, rows, max_len, beam)   # held-out pairs -> texts
    split_scores(found, data.references(rows), source_lengths)      # corpus BLEU, chrF, by length

Corpus figures are sacrebleu's (seqcore.jobs.bleu) against the untruncated, preprocessed
references. By length: the pairs are bucketed by their source's length in words (before
truncation), at the quartiles of the split's lengths, and split at its median (above: strictly
longer than the median), so that a model that helps long sentences shows it. The book's four
sentences (BOOK_SENTENCES) give `book_bleu`, the mean of the book's BLEU (k = 2) of each.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

import numpy as np

from seqcore.backend import load_part
from seqcore.data.translation import BOS, EOS, PAD, TranslationData, encode, preprocess, to_text, tokenize
from seqcore.data.vocab import UNK, Vocab
from seqcore.jobs.bleu import book_bleu, corpus_bleu, corpus_chrf
from seqcore.jobs.decode import Hypothesis, translate
from seqcore.parallel.data_parallel import DistributedBackend

# (English, French) of the book's predict_seq2seq examples (d2l 1.0 10.7.6; 0.17 9.7.4)
BOOK_SENTENCES = (("go .", "va !"), ("i lost .", "j'ai perdu ."), ("he's calm .", "il est calme ."),
                  ("i'm home .", "je suis chez moi ."))
GREEDY_ROWS = 1024  # hypotheses decoded at once (the encoder outputs of that many stay on the device)


def step_model(backend, model):
    """The backend's decoding step model (seqcore.jobs.decode.StepModel) on `model`'s plain module
    (a data-parallel worker's model is wrapped for training)."""
    plain = backend.comm.unwrap(model) if isinstance(backend, DistributedBackend) else model
    return load_part(backend.name, "seq2seq").Translator(plain)


@dataclasses.dataclass(frozen=True)
class Found:
    """Translations of some sentences: the hypotheses and their texts (tokens joined by spaces)."""

    hypotheses: list[Hypothesis]
    texts: list[str]


def translate_ids(translator, source: np.ndarray, valid: np.ndarray, target_vocab: Vocab, max_len: int,
                  beam: int = 1) -> Found:
    """Greedy decoding or beam search of source ids (T, N), at most GREEDY_ROWS hypotheses at a time."""
    source, valid = np.asarray(source), np.asarray(valid)
    bos, eos = target_vocab[BOS], target_vocab[EOS]
    found: list[Hypothesis] = []
    step = max(1, GREEDY_ROWS // beam)
    for start in range(0, source.shape[1], step):
        found += translate(translator, source[:, start:start + step], valid[start:start + step], bos, eos,
                           max_len, beam, batched=True)
    return Found(found, [to_text(h.tokens, target_vocab) for h in found])


def translate_rows(translator, data: TranslationData, rows: np.ndarray, max_len: int, beam: int = 1) -> Found:
    """The pairs `rows` of the data, their (truncated) source arrays as training saw them."""
    rows = np.asarray(rows, dtype=np.int64)
    return translate_ids(translator, data.source[rows].T, data.source_valid[rows], data.target_vocab, max_len, beam)


def length_edges(lengths: Sequence[int]) -> list[int]:
    """The upper bounds of the length buckets: the distinct quartiles of `lengths`, then the longest."""
    lengths = np.asarray(lengths)
    quartiles = np.quantile(lengths, [0.25, 0.5, 0.75], method="lower").astype(int).tolist()
    return sorted(set(quartiles) | {int(lengths.max())})


def split_scores(texts: Sequence[str], references: Sequence[str], lengths: Sequence[int]) -> dict[str, Any]:
    """Corpus BLEU and chrF of `texts`, the same in source-length buckets and above / below the
    median length; `lengths` are the sources' word counts."""
    bleu, chrf = corpus_bleu(texts, references), corpus_chrf(texts, references)
    lengths = np.asarray(lengths)
    buckets, low = [], 0
    for high in length_edges(lengths):
        chosen = np.flatnonzero((lengths > low) & (lengths <= high))
        if len(chosen):
            buckets.append({"lengths": f"{low + 1}-{high}" if high > low + 1 else f"{high}", "low": low + 1,
                            "high": high, "count": int(len(chosen)), **_pick(texts, references, chosen)})
        low = high
    median = float(np.median(lengths))
    halves = {}
    for name, chosen in (("above", np.flatnonzero(lengths > median)), ("below", np.flatnonzero(lengths <= median))):
        picked = _pick(texts, references, chosen) if len(chosen) else {"bleu": None, "chrf": None}
        halves.update({f"bleu_{name}_median": picked["bleu"], f"chrf_{name}_median": picked["chrf"],
                       f"count_{name}_median": int(len(chosen))})
    return {"bleu": bleu.score, "chrf": chrf.score, "bleu_signature": bleu.signature,
            "chrf_signature": chrf.signature, "bleu_by_length": buckets, "median_source_length": median, **halves}


def _pick(texts: Sequence[str], references: Sequence[str], chosen: np.ndarray) -> dict[str, float]:
    hyps, refs = [texts[i] for i in chosen], [references[i] for i in chosen]
    return {"bleu": corpus_bleu(hyps, refs).score, "chrf": corpus_chrf(hyps, refs).score}


def source_lengths(data: TranslationData, rows: np.ndarray) -> list[int]:
    """Words of each pair's source sentence, before truncation."""
    return [len(data.source_tokens[row]) for row in np.asarray(rows, dtype=np.int64)]


def unknown_words(sentence: str, vocab: Vocab) -> list[str]:
    """The words of `sentence` (preprocessed as training's) that `vocab` reads as <unk>, in order."""
    return [token for token in tokenize(preprocess(sentence)) if token not in vocab or token == UNK]


def forced_attention(translator, source: np.ndarray, valid: np.ndarray,
                     decoder_inputs: np.ndarray) -> Optional[np.ndarray]:
    """The attention weights (T_tgt, N, T_src) of decoding `decoder_inputs` (T_tgt, N) under
    teacher forcing (what training computes); None for a model without attention."""
    state = translator.start(source, valid)
    weights = []
    for tokens in np.asarray(decoder_inputs):
        _, state, step_weights = translator.step(tokens, state)
        if step_weights is None:
            return None
        weights.append(np.asarray(step_weights, dtype=np.float64))
    return np.stack(weights)


def examples(translator, data: TranslationData, pairs: Sequence[tuple[str, str]], max_len: int,
             attends: bool) -> list[dict[str, Any]]:
    """Each (English, French reference) pair translated greedily, with the book's BLEU, the words the
    model did not know and, with attention, the weights of the translation (rows: its tokens and
    <eos>; columns: the source tokens and <eos>) and of its reference under teacher forcing."""
    steps = data.spec.num_steps
    sources = [tokenize(preprocess(english)) for english, _ in pairs]
    references = [tokenize(preprocess(french)) for _, french in pairs]
    source, source_valid = encode(sources, data.source_vocab, steps)
    target, target_valid = encode(references, data.target_vocab, steps)
    decoder_inputs = np.concatenate([np.full((len(pairs), 1), data.target_vocab[BOS]), target[:, :-1]], axis=1)
    found = translate_ids(translator, source.T, source_valid, data.target_vocab, max_len)
    forced = forced_attention(translator, source.T, source_valid, decoder_inputs.T) if attends else None
    result = []
    for n, ((english, french), hypothesis, text) in enumerate(zip(pairs, found.hypotheses, found.texts)):
        columns = [*data.source_vocab.to_tokens(source[n, :source_valid[n]].tolist())]
        example = {"source": english, "reference": " ".join(references[n]), "translation": text,
                   "bleu": book_bleu(text, " ".join(references[n])), "finished": hypothesis.finished,
                   "unknown": unknown_words(english, data.source_vocab), "source_tokens": columns}
        if attends and hypothesis.attention is not None:
            rows = data.target_vocab.to_tokens(list(hypothesis.tokens))
            example["target_tokens"] = rows + ([EOS] if hypothesis.finished else [])
            example["attention"] = hypothesis.attention[:, :source_valid[n]].tolist()
            example["reference_tokens"] = [token for token in data.target_vocab.to_tokens(
                target[n, :target_valid[n]].tolist()) if token != PAD]
            example["forced_attention"] = forced[:target_valid[n], n, :source_valid[n]].tolist()
        result.append(example)
    return result


def book_score(found_examples: Sequence[dict[str, Any]]) -> float:
    """book_bleu: the mean of the book's BLEU over the examples."""
    return float(np.mean([example["bleu"] for example in found_examples]))
