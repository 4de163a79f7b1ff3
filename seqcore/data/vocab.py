"""Vocabulary: token <-> index, deterministic, saved as plain JSON inside every checkpoint.

Order: '<unk>' at 0; then the reserved tokens in the order given, kept even when they never
occur (d2l dropped them in some versions); then the remaining tokens with at least `min_freq`
occurrences, most frequent first, ties broken by the token string so the order never depends
on where a token first appears.
"""
from __future__ import annotations

import collections
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from seqcore.errors import SeqcoreError

UNK = "<unk>"
_FORMAT = "seqcore.vocab"
_VERSION = 1


def _flatten(tokens: Iterable[Any]) -> list[str]:
    """A flat token list from a flat list or a list of lists (lines of tokens)."""
    flat: list[str] = []
    for item in tokens:
        if isinstance(item, str):
            flat.append(item)
        elif isinstance(item, (list, tuple)):
            flat.extend(_flatten(item))
        else:
            raise SeqcoreError(f"Tokens must be strings, got {type(item).__name__} {item!r}.")
    return flat


def _check_table(idx_to_token: Any, num_reserved: int) -> list[str]:
    if not isinstance(idx_to_token, list) or not all(isinstance(t, str) for t in idx_to_token):
        raise SeqcoreError("A vocabulary's tokens must be a list of strings.")
    if not idx_to_token or idx_to_token[0] != UNK:
        raise SeqcoreError(f"A vocabulary must start with {UNK!r} at index 0.")
    if len(set(idx_to_token)) != len(idx_to_token):
        repeated = sorted(t for t, n in collections.Counter(idx_to_token).items() if n > 1)
        raise SeqcoreError(f"A vocabulary lists token(s) more than once: {repeated}.")
    if not 0 <= num_reserved < len(idx_to_token):
        raise SeqcoreError(
            f"A vocabulary of {len(idx_to_token)} tokens cannot reserve {num_reserved}."
        )
    return list(idx_to_token)


class Vocab:
    """Maps tokens to indices (unknown tokens to 0, '<unk>') and back."""

    def __init__(
        self,
        tokens: Iterable[Any] = (),
        min_freq: int = 0,
        reserved_tokens: Sequence[str] = (),
    ) -> None:
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 0:
            raise SeqcoreError(f"min_freq must be a non-negative integer, got {min_freq!r}.")
        reserved = _flatten(reserved_tokens)
        if UNK in reserved:
            raise SeqcoreError(f"{UNK!r} is always index 0; leave it out of the reserved tokens.")
        counts = collections.Counter(_flatten(tokens))
        # (-count, token): most frequent first, then alphabetical, independent of input order.
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        table = [UNK] + reserved
        kept = set(table)
        table += [tok for tok, count in ranked if count >= min_freq and tok not in kept]
        self._set(_check_table(table, len(reserved)), len(reserved))

    def _set(self, idx_to_token: list[str], num_reserved: int) -> None:
        self._idx_to_token = idx_to_token
        self._token_to_idx = {tok: idx for idx, tok in enumerate(idx_to_token)}
        self._num_reserved = num_reserved

    @property
    def idx_to_token(self) -> list[str]:
        return list(self._idx_to_token)

    @property
    def reserved_tokens(self) -> list[str]:
        return self._idx_to_token[1:1 + self._num_reserved]

    @property
    def unk(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self._idx_to_token)

    def __contains__(self, token: object) -> bool:
        return token in self._token_to_idx

    def __getitem__(self, tokens: Any) -> Any:
        """Index of one token, or (nested) list of indices for a list or tuple; unknown -> 0."""
        if isinstance(tokens, (list, tuple)):
            return [self[tok] for tok in tokens]
        return self._token_to_idx.get(tokens, 0)

    def to_tokens(self, ids: Any) -> Any:
        """Token of one index, or list of tokens for a sequence or 1-D array of indices."""
        if isinstance(ids, (int, np.integer)) and not isinstance(ids, bool):
            index = int(ids)
            if not 0 <= index < len(self):
                raise SeqcoreError(
                    f"Token index {index} is outside the vocabulary of {len(self)} tokens."
                )
            return self._idx_to_token[index]
        if isinstance(ids, np.ndarray) and ids.ndim == 0:
            return self.to_tokens(ids.item())
        if isinstance(ids, (list, tuple, np.ndarray)):
            return [self.to_tokens(i) for i in ids]
        raise SeqcoreError(f"Token indices must be integers, got {type(ids).__name__} {ids!r}.")

    def unknown(self, tokens: Iterable[Any]) -> list[str]:
        """Sorted distinct tokens that are not in the vocabulary (for error messages)."""
        return sorted({tok for tok in _flatten(tokens) if tok not in self._token_to_idx})

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        """(len(tokens),) int64 indices; a string encodes as its characters."""
        get = self._token_to_idx.get
        return np.fromiter((get(tok, 0) for tok in tokens), dtype=np.int64)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocab):
            return NotImplemented
        same_tokens = self._idx_to_token == other._idx_to_token
        return same_tokens and self._num_reserved == other._num_reserved

    def __repr__(self) -> str:
        head = ", ".join(repr(t) for t in self._idx_to_token[:8])
        more = ", ..." if len(self) > 8 else ""
        return f"Vocab({len(self)} tokens: {head}{more})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description; `Vocab.from_dict(v.to_dict()) == v`."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "idx_to_token": list(self._idx_to_token),
            "num_reserved": self._num_reserved,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Vocab":
        if not isinstance(data, Mapping):
            raise SeqcoreError(f"A saved vocabulary must be a mapping, got {type(data).__name__}.")
        expected = {"format", "version", "idx_to_token", "num_reserved"}
        if set(data) != expected:
            missing = ", ".join(sorted(expected - set(data))) or "none"
            extra = ", ".join(sorted(set(data) - expected)) or "none"
            raise SeqcoreError(
                f"A saved vocabulary has the wrong fields (missing: {missing}; unknown: {extra})."
            )
        if data["format"] != _FORMAT or data["version"] != _VERSION:
            raise SeqcoreError(
                f"A saved vocabulary is {data['format']!r} version {data['version']!r}; "
                f"this seqcore reads {_FORMAT!r} version {_VERSION}."
            )
        num_reserved = data["num_reserved"]
        if isinstance(num_reserved, bool) or not isinstance(num_reserved, int):
            raise SeqcoreError(
                f"A saved vocabulary's num_reserved must be an integer, got {num_reserved!r}."
            )
        vocab = cls.__new__(cls)
        vocab._set(_check_table(data["idx_to_token"], num_reserved), num_reserved)
        return vocab
