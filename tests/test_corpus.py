"""Corpus loading and tokenisation: the d2l numbers, and one clear error per bad input."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from seqcore.data import corpus
from seqcore.data.vocab import Vocab
from seqcore.errors import SeqcoreError
from tests.http_server import Server


def test_bundled_file_is_the_d2l_file() -> None:
    data = corpus.time_machine_path().read_bytes()
    assert len(data) == 178_979
    assert hashlib.sha1(data).hexdigest() == corpus.TIME_MACHINE_SHA1


def test_time_machine_characters_and_vocabulary_match_d2l() -> None:
    tokens = corpus.load_corpus()
    assert len(tokens) == 170_580
    assert "".join(tokens[:25]) == "the time machine by h g w"
    vocab = Vocab(tokens)
    assert len(vocab) == 28
    assert vocab.idx_to_token[0] == "<unk>"
    assert set(vocab.idx_to_token[1:]) == set("abcdefghijklmnopqrstuvwxyz ")
    # d2l 0.x prints these first ten entries of the character vocabulary.
    assert vocab.idx_to_token[:10] == ["<unk>", " ", "e", "t", "a", "i", "n", "o", "s", "h"]


def test_time_machine_words() -> None:
    words = corpus.load_corpus(token="word")
    assert words[:7] == ["the", "time", "machine", "by", "h", "g", "wells"]
    assert len(words) == 32_775
    assert all(word.isalpha() and word.islower() for word in words)


def test_preprocess_is_d2l_per_line() -> None:
    text = "The Time-Machine, 1895!\r\n\n  H. G. Wells  \rEnd\n"
    assert corpus.preprocess(text) == ["the time machine", "", "h g wells", "end"]


def test_chars_are_joined_without_separator_and_words_split() -> None:
    lines = ["ab c", "", "de"]
    assert corpus.tokenize(lines, "char") == ["a", "b", " ", "c", "d", "e"]
    assert corpus.tokenize(lines, corpus.Token.WORD) == ["ab", "c", "de"]
    with pytest.raises(SeqcoreError, match="Unknown token kind 'byte'"):
        corpus.tokenize(lines, "byte")


def test_load_corpus_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "tiny.txt"
    path.write_text("Hello, World!\nHELLO again\n", encoding="utf-8")
    assert "".join(corpus.load_corpus(path)) == "hello worldhello again"
    assert corpus.load_corpus(str(path), token="word") == ["hello", "world", "hello", "again"]


def test_damaged_copy_fails_the_sha1_check(tmp_path: Path) -> None:
    data = bytearray(corpus.time_machine_path().read_bytes())
    data[100] ^= 1  # one letter changed
    damaged = tmp_path / "timemachine.txt"
    damaged.write_bytes(bytes(data))
    actual = hashlib.sha1(bytes(data)).hexdigest()
    with pytest.raises(SeqcoreError) as error:
        corpus.read_checked(damaged, corpus.TIME_MACHINE_SHA1)
    assert str(error.value).startswith(
        f"The text at {damaged} has SHA-1 {actual}, not {corpus.TIME_MACHINE_SHA1};"
    )
    good = corpus.read_checked(corpus.time_machine_path(), corpus.TIME_MACHINE_SHA1.upper())
    assert good == corpus.read_time_machine() and len(good) == 178_979  # ASCII: 1 byte a char


def _one_sentence(error: pytest.ExceptionInfo[SeqcoreError]) -> str:
    message = str(error.value)
    assert message.endswith(".") and "\n" not in message
    return message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.txt"
    with pytest.raises(SeqcoreError) as error:
        corpus.load_corpus(path)
    assert _one_sentence(error) == f"The corpus file {path} does not exist."


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(SeqcoreError) as error:
        corpus.read_text(tmp_path)
    assert str(tmp_path) in _one_sentence(error) and "is a directory" in str(error.value)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(SeqcoreError) as error:
        corpus.load_corpus(path)
    assert _one_sentence(error) == f"The corpus file {path} is empty."


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\u00e9 au lait".encode("latin-1"))
    with pytest.raises(SeqcoreError) as error:
        corpus.load_corpus(path)
    assert str(path) in _one_sentence(error)
    assert "not UTF-8" in str(error.value) and "offset 3" in str(error.value)


def test_letter_free_file(tmp_path: Path) -> None:
    path = tmp_path / "digits.txt"
    path.write_text("1234 5678\n!!! ???\n", encoding="utf-8")
    with pytest.raises(SeqcoreError) as error:
        corpus.load_corpus(path)
    assert str(path) in _one_sentence(error) and "contains no letters" in str(error.value)


def test_split_sizes_and_d2l_training_cut() -> None:
    tokens = corpus.load_corpus()
    train, val = corpus.split_train_val(tokens, 0.1, max_train_tokens=10_000)
    assert (len(train), len(val)) == (10_000, 17_058)
    assert train == tokens[:10_000]
    assert val == tokens[-17_058:]  # held-out text is the end of the book


def test_split_is_tail_and_disjoint() -> None:
    tokens = list(range(100))
    train, val = corpus.split_train_val(tokens, 0.29)
    assert val == list(range(71, 100))  # 29 tokens, not 28 from 28.999... floored
    assert train == list(range(71))
    assert not set(train) & set(val)
    train, val = corpus.split_train_val(tokens, 0.0, max_train_tokens=500)
    assert (train, val) == (tokens, [])


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5, float("nan"), "0.1", True])
def test_split_rejects_bad_fraction(fraction: object) -> None:
    with pytest.raises(SeqcoreError, match=r"validation fraction must be in \[0, 1\)"):
        corpus.split_train_val(list(range(10)), fraction)  # type: ignore[arg-type]


def test_split_rejects_bad_limits() -> None:
    with pytest.raises(SeqcoreError, match="positive integer, got 0"):
        corpus.split_train_val(list(range(10)), 0.1, max_train_tokens=0)
    with pytest.raises(SeqcoreError, match="too short to hold out"):
        corpus.split_train_val(list(range(3)), 0.1)


def test_corpus_by_url_is_downloaded_verified_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    served = tmp_path / "served"
    served.mkdir()
    text = b"The Time Traveller smiled.\nAre you sure we can move freely in Space?\n"
    (served / "story.txt").write_bytes(text)
    server = Server(served)
    try:
        url = f"{server.url}/story.txt"
        with pytest.raises(SeqcoreError, match="give its checksum"):
            corpus.load_corpus(url)
        sha256 = "sha256:" + hashlib.sha256(text).hexdigest()
        tokens = corpus.load_corpus(url, "word", sha256)
        assert tokens[:3] == ["the", "time", "traveller"]
        assert corpus.load_corpus(url, "word", sha256) == tokens
        assert server.requests == ["/story.txt"]  # the second load came from the cache
    finally:
        server.close()


def test_whole_text_preprocessing_is_d2l_1_0s() -> None:
    """d2l 1.0: re.sub('[^A-Za-z]+', ' ', text).lower() over the whole text: 173,428 characters."""
    tokens = corpus.load_corpus(preprocessing="text")
    assert len(tokens) == 173_428
    assert "".join(tokens[:41]) == "the time machine by h g wells i the time "
    assert corpus.preprocess("Ab,\n\ncd \n", "text") == ["ab cd "]  # a line break is a space, nothing stripped
    assert corpus.load_corpus(token="word", preprocessing="text") == corpus.load_corpus(token="word")
    with pytest.raises(SeqcoreError, match="Unknown preprocessing 'words'"):
        corpus.preprocess("a", "words")


def test_window_split_is_d2l_1_0s() -> None:
    """num_train windows from tokens 0 .., num_val right after, each num_steps + 1 tokens."""
    tokens = list(range(100))
    train, val = corpus.split_windows(tokens, 5, 20, 10)
    assert train == list(range(25)) and val == list(range(20, 35))
    with pytest.raises(SeqcoreError, match="holds 95 windows of 5 \\+ 1 tokens, fewer than the 90 \\+ 10"):
        corpus.split_windows(tokens, 5, 90, 10)
    with pytest.raises(SeqcoreError, match="--val-windows must be a positive integer, got 0"):
        corpus.split_windows(tokens, 5, 20, 0)


def test_the_corpus_spec_holds_the_books_variants() -> None:
    """d2l 1.0's text, vocabulary and window split as fields of the data spec, kept through JSON."""
    from seqcore.data.spec import CorpusSpec, data_spec_from_dict
    from seqcore.errors import ConfigError

    spec = CorpusSpec(max_tokens=None, preprocess="text", vocab_order="alphabetical", windows=[10_000, 5_000, 32])
    assert spec.windows == (10_000, 5_000, 32) and data_spec_from_dict(spec.to_dict()) == spec
    data = spec.load()
    assert data.vocab.unk == 1 and len(data.train_ids) == 10_032 and len(data.val_ids) == 5_032
    assert CorpusSpec().load().vocab.idx_to_token[:4] == ["<unk>", " ", "e", "t"]
    with pytest.raises(ConfigError, match="--val-windows must be a positive whole number, got 0"):
        CorpusSpec(windows=(10, 0, 5))
    with pytest.raises(ConfigError, match="must be \\(train windows, validation windows, steps\\)"):
        CorpusSpec(windows=(10, 5))
    with pytest.raises(SeqcoreError, match="Unknown preprocessing 'words'"):
        CorpusSpec(preprocess="words")
