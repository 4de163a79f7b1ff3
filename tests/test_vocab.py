"""Vocabulary order, lookups and the JSON round trip saved in checkpoints."""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from seqcore.data.vocab import Order, Vocab
from seqcore.errors import SeqcoreError

TOKENS = list("banana bandana")  # a:6 n:4 b:2 d:1 ' ':1


def test_order_is_unk_then_frequency_then_token() -> None:
    vocab = Vocab(TOKENS)
    assert vocab.idx_to_token == ["<unk>", "a", "n", "b", " ", "d"]
    assert len(vocab) == 6
    assert [vocab[t] for t in "and"] == [1, 2, 5]


def test_ties_in_order_of_first_occurrence_as_d2l() -> None:
    """d2l sorts a Counter (insertion order) with a stable sort: equal counts keep first-seen order."""
    assert Vocab(["z", "y", "x", "y", "z", "x", "w"]).idx_to_token == ["<unk>", "z", "y", "x", "w"]
    assert Vocab(["w", "x", "z", "x", "y", "z", "y"]).idx_to_token == ["<unk>", "x", "z", "y", "w"]
    assert Vocab(TOKENS).order is Order.FREQUENCY


def test_ties_broken_by_token_under_the_older_rule() -> None:
    forward = Vocab(["z", "y", "x", "y", "z", "x", "w"], order="frequency-alphabetical")
    backward = Vocab(["w", "x", "z", "x", "y", "z", "y"], order=Order.FREQUENCY_ALPHABETICAL)
    assert forward.idx_to_token == ["<unk>", "x", "y", "z", "w"]
    assert backward == forward
    assert forward != Vocab(["x", "y", "z", "x", "y", "z", "w"])  # same table, another rule
    with pytest.raises(SeqcoreError, match="Unknown vocabulary order 'random'"):
        Vocab(TOKENS, order="random")


def test_alphabetical_order_is_d2l_1_0s() -> None:
    """d2l 1.0: sorted(set(['<unk>'] + reserved + tokens)); '<unk>' sorts after the space."""
    vocab = Vocab(TOKENS, order=Order.ALPHABETICAL)
    assert vocab.idx_to_token == [" ", "<unk>", "a", "b", "d", "n"]
    assert vocab.unk == 1 and vocab["q"] == 1 and vocab["a"] == 2
    np.testing.assert_array_equal(vocab.encode("ab?"), [2, 3, 1])
    reserved = Vocab(TOKENS, min_freq=3, reserved_tokens=["<pad>", "b"], order=Order.ALPHABETICAL)
    assert reserved.idx_to_token == ["<pad>", "<unk>", "a", "b", "n"] and reserved.reserved_tokens == ["<pad>", "b"]
    assert Vocab.from_dict(reserved.to_dict()) == reserved
    with pytest.raises(SeqcoreError, match="must list its tokens sorted, but index 0 holds 'b'"):
        Vocab.from_tokens(["b", "<unk>", "a"], Order.ALPHABETICAL)
    with pytest.raises(SeqcoreError, match="must hold '<unk>'"):
        Vocab.from_tokens(["a", "b"], Order.ALPHABETICAL)


def test_list_of_lines_counts_like_flat_list() -> None:
    assert Vocab([["the", "cat"], ["the", "end"]]) == Vocab(["the", "cat", "the", "end"])
    assert Vocab([["the", "cat"], ["the"]]).idx_to_token == ["<unk>", "the", "cat"]


def test_min_freq_drops_rare_tokens() -> None:
    assert Vocab(TOKENS, min_freq=2).idx_to_token == ["<unk>", "a", "n", "b"]
    assert Vocab(TOKENS, min_freq=5).idx_to_token == ["<unk>", "a"]
    assert Vocab(TOKENS, min_freq=0) == Vocab(TOKENS, min_freq=1)
    with pytest.raises(SeqcoreError, match="min_freq must be a non-negative integer, got -1"):
        Vocab(TOKENS, min_freq=-1)


def test_reserved_tokens_kept_in_order_even_when_absent() -> None:
    vocab = Vocab(TOKENS, min_freq=3, reserved_tokens=["<pad>", "<bos>", "<eos>", "b"])
    assert vocab.idx_to_token == ["<unk>", "<pad>", "<bos>", "<eos>", "b", "a", "n"]
    assert vocab.reserved_tokens == ["<pad>", "<bos>", "<eos>", "b"]
    assert vocab["<eos>"] == 3 and vocab["b"] == 4  # b kept although rarer than min_freq
    # A reserved token that also occurs keeps its reserved place and is not listed twice.
    assert Vocab(TOKENS, reserved_tokens=["n"]).idx_to_token == ["<unk>", "n", "a", "b", " ", "d"]


@pytest.mark.parametrize(
    "reserved, message",
    [(["<unk>"], "leave it out of the reserved tokens"), (["<pad>", "<pad>"], "more than once")],
)
def test_bad_reserved_tokens(reserved: list[str], message: str) -> None:
    with pytest.raises(SeqcoreError, match=message):
        Vocab(TOKENS, reserved_tokens=reserved)


def test_non_string_tokens_rejected() -> None:
    with pytest.raises(SeqcoreError, match="Tokens must be strings, got int 3"):
        Vocab(["a", 3])


def test_unknown_tokens_map_to_zero() -> None:
    vocab = Vocab(TOKENS)
    assert vocab["q"] == 0 and vocab.unk == 0
    assert vocab[["b", "q", "a"]] == [3, 0, 1]
    assert vocab[[["a"], ("n", "zz")]] == [[1], [2, 0]]
    assert "a" in vocab and "q" not in vocab
    assert vocab.unknown(["q", "a", "z", "q", "<unk>"]) == ["q", "z"]
    assert vocab.unknown("bad") == []


def test_encode_and_to_tokens() -> None:
    vocab = Vocab(TOKENS)
    ids = vocab.encode("band x")
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, [3, 1, 2, 5, 4, 0])
    assert vocab.to_tokens(ids) == ["b", "a", "n", "d", " ", "<unk>"]
    assert vocab.to_tokens(np.int64(2)) == "n" and vocab.to_tokens(0) == "<unk>"
    assert vocab.to_tokens([5, 1]) == ["d", "a"]
    assert vocab.encode([]).shape == (0,)
    with pytest.raises(SeqcoreError, match="Token index 6 is outside the vocabulary of 6 tokens"):
        vocab.to_tokens([1, 6])
    with pytest.raises(SeqcoreError, match="Token indices must be integers"):
        vocab.to_tokens("a")


def test_round_trip_through_json() -> None:
    vocab = Vocab(TOKENS, reserved_tokens=["<pad>", "<bos>"])
    text = json.dumps(vocab.to_dict())
    again = Vocab.from_dict(json.loads(text))
    assert again == vocab
    assert again.idx_to_token == vocab.idx_to_token
    assert again.reserved_tokens == ["<pad>", "<bos>"]
    np.testing.assert_array_equal(again.encode("bandana?"), vocab.encode("bandana?"))
    assert vocab != Vocab(TOKENS)


def _saved(**changes: Any) -> dict[str, Any]:
    data = Vocab(TOKENS, reserved_tokens=["<pad>"]).to_dict()
    data.update(changes)
    return data


def _saved_v1(**changes: Any) -> dict[str, Any]:
    """A vocabulary as seqcore saved it before the order rule was recorded (format version 1)."""
    data = {"format": "seqcore.vocab", "version": 1, "idx_to_token": ["<unk>", "<pad>", "a", "n", "b", " ", "d"],
            "num_reserved": 1}
    data.update(changes)
    return data


def test_version_1_vocabularies_load_with_alphabetical_ties() -> None:
    """Checkpoints written before the order was recorded hold ties broken alphabetically."""
    vocab = Vocab.from_dict(_saved_v1())
    assert vocab.order is Order.FREQUENCY_ALPHABETICAL
    assert vocab.reserved_tokens == ["<pad>"] and vocab.unk == 0
    assert vocab == Vocab(TOKENS, reserved_tokens=["<pad>"], order=Order.FREQUENCY_ALPHABETICAL)
    assert Vocab.from_dict(vocab.to_dict()) == vocab and vocab.to_dict()["version"] == 2


@pytest.mark.parametrize(
    "data, message",
    [
        ([1, 2], "must be a mapping, got list"),
        ({"format": "seqcore.vocab", "version": 2, "idx_to_token": ["<unk>"]},
         r"wrong fields \(missing: order, reserved_tokens"),
        (_saved(extra=1), r"wrong fields \(missing: none; unknown: extra\)"),
        (_saved(version=3), "this seqcore reads 'seqcore.vocab' versions 1 and 2"),
        (_saved(format="d2l"), "'d2l' version 2"),
        (_saved(idx_to_token=["a", "<unk>"]), "must start with '<unk>' at index 0"),
        (_saved(idx_to_token=["<unk>", "a", "a"]), r"more than once: \['a'\]"),
        (_saved(idx_to_token=["<unk>", 3]), "must be a list of strings"),
        (_saved(idx_to_token="<unk>ab"), "must be a list of strings"),
        (_saved(reserved_tokens=["b"]), r"cannot reserve \['b'\] right after '<unk>'"),
        (_saved(reserved_tokens="<pad>"), "reserved_tokens must be a list of strings"),
        (_saved(order="sorted"), "Unknown vocabulary order 'sorted'"),
        (_saved_v1(num_reserved=9), "of 7 tokens cannot reserve 9"),
        (_saved_v1(num_reserved="1"), "num_reserved must be a non-negative integer"),
        (_saved_v1(order="frequency"), r"wrong fields \(missing: none; unknown: order\)"),
    ],
)
def test_from_dict_rejects_bad_data(data: Any, message: str) -> None:
    with pytest.raises(SeqcoreError, match=message):
        Vocab.from_dict(data)
