"""A language model's vocabulary file, from seqcore or from the d2l book (either edition), read
and fitted to the corpus it was built on, so that an imported model reads its tokens in the order
it was trained with."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from seqcore.data.vocab import Order, Vocab
from seqcore.errors import SeqcoreError
from seqcore.model.spec import InputKind, ModelSpec, Readout


def read_vocab_file(path: str | Path) -> list[str] | Vocab:
    """A vocabulary file: a JSON list of tokens in index order (d2l's `vocab.idx_to_token`), a
    JSON object of token -> index (its `vocab.token_to_idx`), or a seqcore vocabulary object."""
    path = Path(path)
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SeqcoreError(f"The vocabulary file {path} cannot be read ({error.strerror or error}).") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SeqcoreError(f"The vocabulary file {path} is not JSON ({error}).") from None
    if isinstance(data, dict) and data.get("format") == "seqcore.vocab":
        try:
            return Vocab.from_dict(data)
        except SeqcoreError as error:
            raise SeqcoreError(f"The vocabulary file {path} is unusable: {str(error).rstrip('.')}.") from None
    if isinstance(data, dict):  # token_to_idx: the indices must be 0 .. n-1, each once
        if not all(isinstance(k, str) for k in data) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in data.values()):
            raise SeqcoreError(f"The vocabulary file {path} holds an object that is neither a seqcore vocabulary "
                               f"nor d2l's token_to_idx (token -> integer index).")
        if sorted(data.values()) != list(range(len(data))):
            raise SeqcoreError(f"The vocabulary file {path} maps {len(data)} tokens to indices that are not "
                               f"0 .. {len(data) - 1}, each once.")
        data = sorted(data, key=data.__getitem__)
    if not isinstance(data, list) or not all(isinstance(t, str) for t in data):
        raise SeqcoreError(f"The vocabulary file {path} is not a list of tokens, a token_to_idx object or a "
                           f"seqcore vocabulary.")
    return data


def fit_vocab(found: list[str] | Vocab, path: str | Path, corpus_tokens: Sequence[str], corpus: str,
              orders: Sequence[Order]) -> Vocab:
    """The vocabulary of the file at `path` as the corpus gives it: a list must equal the corpus's
    vocabulary under one of `orders` (tried in turn), a seqcore vocabulary under its own order."""
    candidates = [found.order] if isinstance(found, Vocab) else list(orders)
    table = found.idx_to_token if isinstance(found, Vocab) else found
    rebuilt = {order: Vocab(corpus_tokens, order=order) for order in candidates}
    for order, vocab in rebuilt.items():
        if vocab.idx_to_token == table:
            return vocab
    first = rebuilt[candidates[0]].idx_to_token
    if set(first) != set(table):
        only_file = ", ".join(repr(t) for t in sorted(set(table) - set(first))[:5]) or "none"
        only_corpus = ", ".join(repr(t) for t in sorted(set(first) - set(table))[:5]) or "none"
        raise SeqcoreError(f"The vocabulary file {path} is not the vocabulary of {corpus}: tokens only in the file: "
                           f"{only_file}; only in the corpus: {only_corpus} (give the corpus it was built on, "
                           f"--corpus, and its --token).")
    index = next(i for i, (a, b) in enumerate(zip(table, first)) if a != b)
    tried = ", ".join(order.value for order in candidates)
    raise SeqcoreError(f"The vocabulary file {path} holds the tokens of {corpus} in an order none of the rules "
                       f"({tried}) gives: index {index} is {table[index]!r} in the file and {first[index]!r} "
                       f"by the {candidates[0].value} rule, so the weights would be read for the wrong tokens.")


def check_vocab_fits(size: int, path: str | Path, spec: ModelSpec) -> None:
    """A vocabulary of `size` tokens must be what the weights read and predict."""
    if spec.input_kind is InputKind.DENSE or spec.readout is not Readout.SEQUENCE:
        raise SeqcoreError("--vocab is for language models (token input, a prediction at every step), "
                           "but these weights read dense features or predict once per sequence.")
    if size != spec.input_size or size != spec.output_size:
        raise SeqcoreError(f"The vocabulary file {path} lists {size} tokens, but the weights read "
                           f"{spec.input_size} and predict {spec.output_size}.")
