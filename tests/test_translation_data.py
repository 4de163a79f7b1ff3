"""The English-French data: the book's preprocessing, vocabularies and printed batches, the split,
batches, sentences to translate, and every kind of bad input as one sentence."""
from __future__ import annotations

import collections
import json

import numpy as np
import pytest

from seqcore.data import fra_eng
from seqcore.data.translation import (BOS, EOS, PAD, Pick, Split, TranslationSpec, VocabFrom, encode_sentences,
                                      load_translation, preprocess, split_rows, to_text, tokenize)
from seqcore.errors import SeqcoreError
from tests.conftest import ROOT

SHARED_FRA = ROOT.parent / "shared" / "data" / "fra-eng" / "fra.txt"


@pytest.fixture(scope="module")
def book() -> object:
    """The default data: the first 641 pairs, num_steps 9, as d2l 1.0's MTFraEng reads them."""
    return load_translation(TranslationSpec())


def test_preprocessing_is_the_books() -> None:
    assert preprocess("Go.") == "go ." and preprocess("Wow!") == "wow !"
    assert preprocess("Ça alors\u202f!") == "ça alors !"  # U+202F before ! becomes a space
    assert preprocess("Attends\xa0!  Non,non.") == "attends !  non ,non ."  # space before , . ! ? only
    assert preprocess(".Hi") == ".hi"  # no space inserted at the start
    assert tokenize("attends !  non ,non .") == ["attends", "!", "non", ",non", "."]  # empty pieces skipped


def test_first_641_lines_give_the_books_vocabularies(book) -> None:
    assert (len(book.source_vocab), len(book.target_vocab)) == (194, 214)
    assert book.source_vocab.idx_to_token[:3] == ["<unk>", PAD, EOS]
    assert book.target_vocab.idx_to_token[:4] == ["<unk>", PAD, BOS, EOS]
    assert BOS not in book.source_vocab  # the source never holds <bos> (d2l 1.0's set)
    assert book.num_truncated == (0, 0)
    assert (len(book.train_rows), len(book.held_out_rows)) == (512, 129)


def test_d2l_1_0_printed_batch_reproduces(book) -> None:
    """MTFraEng(batch_size=3)'s printed batch (d2l-pytorch-colab, machine-translation-and-dataset):
    its vocabularies are our token sets in sorted order, so its ids map onto ours by token."""
    source_table, target_table = sorted(book.source_vocab.idx_to_token), sorted(book.target_vocab.idx_to_token)
    printed_source = [[117, 182, 0, 3, 4, 4, 4, 4, 4], [62, 72, 2, 3, 4, 4, 4, 4, 4], [57, 124, 0, 3, 4, 4, 4, 4, 4]]
    printed_decoder = [[3, 37, 100, 58, 160, 0, 4, 5, 5], [3, 6, 2, 4, 5, 5, 5, 5, 5], [3, 180, 0, 4, 5, 5, 5, 5, 5]]
    printed_label = [[37, 100, 58, 160, 0, 4, 5, 5, 5], [6, 2, 4, 5, 5, 5, 5, 5, 5], [180, 0, 4, 5, 5, 5, 5, 5, 5]]
    rows = []
    for src, dec, label in zip(printed_source, printed_decoder, printed_label):
        want = ([book.source_vocab[source_table[i]] for i in src], [book.target_vocab[target_table[i]] for i in dec],
                [book.target_vocab[target_table[i]] for i in label])
        rows.append([r for r in range(641) if (list(book.source[r]), list(book.decoder_input[r]),
                                               list(book.target[r])) == want])
    assert rows == [[59], [268, 269], [111]]  # 'no way !', 'grab him .' (twice in the file), 'get out !'
    assert list(book.source_valid[[59, 268, 111]]) == [4, 4, 4]  # "source len excluding pad"
    assert book.sources([59]) == ["no way !"] and book.references([59]) == ["c'est hors de question !"]


def test_d2l_0_17_printed_batch_reproduces() -> None:
    """load_data_nmt(batch_size=2, num_steps=8) (601 pairs), whose vocabularies put <unk> <pad>
    <bos> <eos> first and the rest by frequency, ties in first-occurrence order."""
    data = load_translation(TranslationSpec(num_pairs=601, num_steps=8, num_held_out=0))

    def book_order(sentences) -> list[str]:
        counts = collections.Counter(token for tokens in sentences for token in tokens)
        ranked = sorted(counts.items(), key=lambda item: item[1], reverse=True)  # stable
        return ["<unk>", PAD, BOS, EOS] + [token for token, count in ranked if count >= 2]

    source_table, target_table = book_order(data.source_tokens), book_order(data.target_tokens)
    assert (len(source_table), len(target_table)) == (len(data.source_vocab) + 1, len(data.target_vocab))
    printed_x = [[6, 97, 4, 3, 1, 1, 1, 1], [169, 10, 4, 3, 1, 1, 1, 1]]
    printed_y = [[0, 4, 3, 1, 1, 1, 1, 1], [0, 8, 4, 3, 1, 1, 1, 1]]
    found = []
    for x, y in zip(printed_x, printed_y):
        want = ([data.source_vocab[source_table[i]] for i in x], [data.target_vocab[target_table[i]] for i in y])
        found.append([r for r in range(601) if (list(data.source[r]), list(data.target[r])) == want])
    assert found == [[159], [455, 456]]
    assert list(data.target_valid[[159, 455]]) == [3, 4]  # "valid lengths for Y"


def test_truncation_as_the_book_counts_it() -> None:
    data = load_translation(TranslationSpec(num_steps=3, num_held_out=0))
    lengths = np.array([len(t) for t in data.source_tokens])
    assert data.num_truncated[0] == int((lengths + 1 > 3).sum()) > 0
    cut = int(np.flatnonzero(lengths == 3)[0])  # three words: <eos> is cut, as in the book
    assert data.source_valid[cut] == 3 and data.source_vocab[EOS] not in data.source[cut]
    assert (data.source_valid == np.minimum(lengths + 1, 3)).all()


def test_splits_are_disjoint_seeded_and_cover_every_pair() -> None:
    seeded = TranslationSpec(num_pairs=50, num_held_out=10, split_seed=4)
    train, held = split_rows(seeded)
    assert len(held) == 10 and not set(train) & set(held) and sorted([*train, *held]) == list(range(50))
    assert (split_rows(seeded)[1] == held).all()
    assert not (split_rows(TranslationSpec(num_pairs=50, num_held_out=10, split_seed=5))[1] == held).all()
    tail = split_rows(TranslationSpec(num_pairs=50, num_held_out=10, split=Split.TAIL))
    assert list(tail[1]) == list(range(40, 50))


def test_batches_are_time_major_and_never_hold_out_pairs(book) -> None:
    batches = book.epoch_batches(128, np.random.default_rng(0))
    assert [len(b) for b in batches] == [128] * 4
    assert sorted(np.concatenate(batches)) == list(book.train_rows)
    (source, source_valid, decoder), (target, target_valid) = book.batch(batches[0])
    assert source.shape == decoder.shape == target.shape == (9, 128) and source_valid.shape == (128,)
    assert (decoder[0] == book.target_vocab[BOS]).all() and (decoder[1:] == target[:-1]).all()
    assert (target_valid == (target != book.target_vocab[PAD]).sum(axis=0)).all()
    short = load_translation(TranslationSpec(num_pairs=20, num_held_out=3)).epoch_batches(8, np.random.default_rng(1))
    assert [len(b) for b in short] == [8, 8, 1]  # the last batch is shorter, as d2l's loader gives it


def test_vocabulary_from_training_pairs_only() -> None:
    spec = TranslationSpec(num_pairs=200, num_held_out=50, vocab_from=VocabFrom.TRAIN)
    data = load_translation(spec)
    counts = collections.Counter(t for r in data.train_rows for t in data.target_tokens[r])
    assert set(data.target_vocab.idx_to_token[4:]) == {t for t, n in counts.items() if n >= 2}


def test_sentences_to_translate(book) -> None:
    ids, valid, unknown, truncated = encode_sentences(["Go.", "I'm home.", "Zorglub tom <eos>."],
                                                      book.source_vocab, 9)
    assert ids.shape == (9, 3) and list(valid) == [3, 4, 5] and (unknown, truncated) == (2, 0)
    assert book.source_vocab.to_tokens(list(ids[:3, 0])) == ["go", ".", EOS]
    assert ids[0, 2] == ids[2, 2] == book.source_vocab["<unk>"]  # an unknown word and a typed <eos>
    assert encode_sentences(["a b c d e f g h i j"], book.source_vocab, 9)[3] == 1
    with pytest.raises(SeqcoreError, match="Sentence 2 to translate is empty"):
        encode_sentences(["Go.", " \xa0 "], book.source_vocab, 9)
    with pytest.raises(SeqcoreError, match="No sentence to translate"):
        encode_sentences([], book.source_vocab, 9)
    vocab = book.target_vocab
    assert to_text([vocab["je"], vocab["suis"], vocab[EOS], vocab["tom"]], vocab) == "je suis"


def test_spec_round_trips_and_refuses_bad_values() -> None:
    spec = TranslationSpec(corpus="download", num_pairs=30000, num_held_out=1000, split="tail", vocab_from="train")
    assert TranslationSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    for change, fragment in [({"num_steps": 0}, "num steps must be a positive integer"),
                             ({"num_held_out": 641}, "leaves none to train on"),
                             ({"split_seed": -1}, "split seed must be a non-negative integer"),
                             ({"split": "random"}, "Unknown split 'random'"),
                             ({"corpus": ""}, "corpus must be")]:
        with pytest.raises(SeqcoreError, match=fragment):
            TranslationSpec(**change)


def test_bundled_head_is_the_start_of_the_books_file() -> None:
    head = fra_eng.head_path().read_bytes()
    assert head.count(b"\n") == fra_eng.HEAD_PAIRS == 641
    if not SHARED_FRA.is_file():
        pytest.skip(f"the book's fra.txt is not at {SHARED_FRA}")
    assert SHARED_FRA.read_bytes().startswith(head)
    assert (fra_eng.corpus_path(str(SHARED_FRA)), fra_eng.corpus_path("bundled")) == (SHARED_FRA, fra_eng.head_path())


def test_more_pairs_than_the_bundled_head_holds_is_one_sentence() -> None:
    with pytest.raises(SeqcoreError, match="holds 641 sentence pairs, fewer than the 700 asked for "
                                           r"\(use --corpus download or --corpus PATH for more\)"):
        load_translation(TranslationSpec(num_pairs=700))


@pytest.mark.parametrize("content, fragment", [
    (b"Go.\tVa !\nHi. Salut !\n", "Line 2 of {path} has no tab between the English and the French"),
    (b"Go.\tVa !\n\nHi.\tSalut !\n", "Line 2 of {path} has no tab"),
    (b"Go.\tVa !\nHi.\t  \n", "Line 2 of {path} has an empty French sentence"),
    (b"\tVa !\n", "Line 1 of {path} has an empty English sentence"),
    (b"Go.\tVa !\nHi.\tSalut \xff!\n", "Line 2 of {path} is not UTF-8 text (bad byte at offset 10 of the line)"),
    (b"Go.\tVa !\ta\tb\n", "Line 1 of {path} has 4 tab-separated columns"),
    (b"Go.\tVa !\n", "The corpus file {path} holds 1 sentence pairs, fewer than the 2 asked for."),
    (b"", "The corpus file {path} is empty."),
    ("Go.\t\xa0\u202f\u2009\nHi.\tSalut !\n".encode(), "Line 1 of {path} has an empty French sentence"),
])
def test_bad_corpus_lines_are_one_sentence(tmp_path, content: bytes, fragment: str) -> None:
    path = tmp_path / "pairs.txt"
    path.write_bytes(content)
    with pytest.raises(SeqcoreError) as error:
        load_translation(TranslationSpec(corpus=str(path), num_pairs=2, num_held_out=1))
    assert fragment.format(path=path) in str(error.value)


def test_attribution_column_crlf_and_byte_order_mark_are_accepted(tmp_path) -> None:
    path = tmp_path / "fra.txt"
    path.write_bytes("\ufeffGo.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272\r\n"
                     "Hi.\tSalut !\tCC-BY 2.0 (France) Attribution: tatoeba.org #538123\r\n".encode("utf-8"))
    data = load_translation(TranslationSpec(corpus=str(path), num_pairs=2, num_held_out=1))
    assert data.source_tokens == (("go", "."), ("hi", ".")) and data.target_tokens == (("va", "!"), ("salut", "!"))


def test_missing_corpus_file_is_one_sentence(tmp_path) -> None:
    with pytest.raises(SeqcoreError, match="The corpus file .*nothing.txt does not exist."):
        load_translation(TranslationSpec(corpus=str(tmp_path / "nothing.txt")))
    with pytest.raises(SeqcoreError, match="is not a regular file"):
        load_translation(TranslationSpec(corpus=str(tmp_path)))


def test_reserved_tokens_written_in_the_corpus_are_unknown_words(tmp_path) -> None:
    path = tmp_path / "fra.txt"
    path.write_text("Go <pad> <eos>.\tVa !\nGo.\t<bos> Va !\n", encoding="utf-8")
    data = load_translation(TranslationSpec(corpus=str(path), num_pairs=2, num_held_out=1, min_freq=1))
    assert data.source_tokens[0] == ("go", "<unk>", "<unk>", ".") and list(data.source_valid) == [5, 3]
    assert data.target_tokens[1] == ("<unk>", "va", "!") and list(data.target_valid) == [3, 4]


def test_a_damaged_bundled_head_is_one_sentence(tmp_path, monkeypatch) -> None:
    damaged = tmp_path / "fra_eng_head.txt"
    damaged.write_bytes(fra_eng.head_path().read_bytes().replace(b"Va !", b"Va ?"))
    monkeypatch.setattr(fra_eng, "_head_location", lambda: damaged)
    with pytest.raises(SeqcoreError, match="The bundled English-French pairs at .* are damaged"):
        load_translation(TranslationSpec())


def test_spread_pairs_are_evenly_spaced_over_the_whole_file(tmp_path) -> None:
    """--pick spread (the long preset): line k * L / N of L lines, in file order, the first line
    included; --pick first: the first N lines. A spec saved before the field existed reads as first."""
    path = tmp_path / "fra.txt"
    words = [" ".join(["go"] * (k + 1)) for k in range(10)]  # line k holds k + 1 words: sorted short to long
    path.write_text("".join(f"{w} .\t{w} !\n" for w in words), encoding="utf-8")
    spread = load_translation(TranslationSpec(corpus=str(path), num_pairs=4, num_held_out=1, num_steps=12,
                                              min_freq=1, pick="spread"))
    assert [len(s) for s in spread.source_tokens] == [2, 4, 7, 9]  # lines 0, 2, 5, 7 (k * 10 // 4): k + 1 words, '.'
    first = load_translation(TranslationSpec(corpus=str(path), num_pairs=4, num_held_out=1, num_steps=12,
                                             min_freq=1))
    assert [len(s) for s in first.source_tokens] == [2, 3, 4, 5] and first.spec.pick is Pick.FIRST
    assert spread.fingerprint != first.fingerprint  # other pairs, another data identity
    every = load_translation(TranslationSpec(corpus=str(path), num_pairs=10, num_held_out=1, min_freq=1,
                                             pick="spread"))
    assert every.source_tokens == load_translation(TranslationSpec(corpus=str(path), num_pairs=10, num_held_out=1,
                                                            min_freq=1)).source_tokens  # N = L: the whole file either way
    with pytest.raises(SeqcoreError, match="fewer than the 11 asked for"):
        load_translation(TranslationSpec(corpus=str(path), num_pairs=11, num_held_out=1, pick="spread"))
    saved = {k: v for k, v in TranslationSpec(pick="spread").to_dict().items() if k != "pick"}
    assert TranslationSpec.from_dict(saved).pick is Pick.FIRST
    with pytest.raises(SeqcoreError, match="pick"):
        TranslationSpec(pick="middle")
