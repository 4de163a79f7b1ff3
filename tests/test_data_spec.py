"""Typed data specs (seqcore.data.spec): each checks itself in one sentence, round-trips through
JSON with its kind, and load() gives the data with its fingerprint; a spec's identity leaves out
where the data lies, so a moved copy of the same bytes is the same data."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from seqcore.data import waves
from seqcore.data.corpus import time_machine_path
from seqcore.data.fingerprint import fingerprint_changes
from seqcore.data.spec import KINDS, CorpusSpec, HelloSpec, MnistSpec, SineSpec, data_spec_from_dict
from seqcore.errors import SeqcoreError
from tests.idx_files import banded, write_set

SPECS = [CorpusSpec(), CorpusSpec(source="book.txt", token="word", max_tokens=None, val_fraction=0.0),
         CorpusSpec(source="http://127.0.0.1:9/book.txt", source_hash="sha256:" + "ab" * 32),
         MnistSpec(), MnistSpec(dataset="idx", folder="/data/idx", limit_train=64, limit_test=0),
         SineSpec(mode="sin2cos", phase="fixed", iterations=100, num_steps=10, batch_size=2), HelloSpec()]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.kind}")
def test_every_spec_round_trips_through_json_with_its_kind(spec) -> None:
    data = spec.to_dict()
    assert data["kind"] == spec.kind and KINDS[spec.kind] is type(spec)
    assert data_spec_from_dict(data) == spec
    assert "kind" in spec.identity() and not set(spec.identity()) & set(type(spec).location)


@pytest.mark.parametrize("make, fragment", [
    (lambda: CorpusSpec(source=""), "The corpus source must be non-empty text"),
    (lambda: CorpusSpec(source="http://x/book.txt"), "is a URL: give its checksum too (--corpus-hash"),
    (lambda: CorpusSpec(source="http://x/book.txt", source_hash="sha256:xyz"), "must look like 'ALGORITHM:HEX'"),
    (lambda: CorpusSpec(token="byte"), "token must be 'char' or 'word', got 'byte'"),
    (lambda: CorpusSpec(max_tokens=0), "max tokens must be a positive whole number, got 0"),
    (lambda: CorpusSpec(max_tokens=True), "max tokens must be a positive whole number, got True"),
    (lambda: CorpusSpec(val_fraction=1.0), "validation fraction must be a number in [0, 1), got 1.0"),
    (lambda: MnistSpec(dataset="cifar"), "--dataset must be one of"),
    (lambda: MnistSpec(dataset="idx"), "--dataset idx needs --data-dir"),
    (lambda: MnistSpec(limit_train=-1), "--limit-train must be a whole number, zero or more, got -1"),
    (lambda: SineSpec(mode="cosine"), "--mode must be one of sin2cos, next"),
    (lambda: SineSpec(phase="late"), "--phase must be one of fixed, random"),
    (lambda: SineSpec(iterations=0), "iterations must be a positive integer, got 0"),
    (lambda: HelloSpec(target="oh"), "must be non-empty and of the same length (5 vs 2)"),
    (lambda: data_spec_from_dict({"kind": "video"}), "Unknown data kind 'video'"),
    (lambda: data_spec_from_dict({"kind": "hello", "colour": 1}), "Unknown HelloSpec field(s): colour"),
    (lambda: data_spec_from_dict([1]), "A data spec must be a JSON object, got list"),
])
def test_a_bad_spec_is_refused_in_one_sentence(make, fragment: str) -> None:
    with pytest.raises(SeqcoreError, match=r"^[^\n]*$") as error:
        make()
    assert fragment in str(error.value)


def test_a_corpus_loads_with_the_sha256_of_its_bytes(tmp_path: Path) -> None:
    bundled = CorpusSpec(max_tokens=600).load()
    assert len(bundled.train_ids) == 600 and len(bundled.vocab) == 28
    assert bundled.fingerprint == {"corpus_sha256": hashlib.sha256(time_machine_path().read_bytes()).hexdigest()}
    copy = tmp_path / "moved" / "book.txt"
    copy.parent.mkdir()
    shutil.copyfile(time_machine_path(), copy)
    moved = CorpusSpec(source=str(copy), max_tokens=600)
    assert moved.identity() == CorpusSpec(max_tokens=600).identity()  # where it lies is not which data it is
    loaded = moved.load()
    assert loaded.fingerprint == bundled.fingerprint and not fingerprint_changes(bundled.fingerprint,
                                                                                 loaded.fingerprint)
    np.testing.assert_array_equal(loaded.train_ids, bundled.train_ids)
    np.testing.assert_array_equal(loaded.val_ids, bundled.val_ids)
    copy.write_text(copy.read_text().replace("the ", "tha ", 1))
    assert "corpus_sha256 had SHA-256" in fingerprint_changes(bundled.fingerprint, moved.load().fingerprint)


def test_a_relative_corpus_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert CorpusSpec(source="book.txt").source == str(tmp_path / "book.txt")


def test_images_load_limited_with_the_sha256_of_each_file(tmp_path: Path) -> None:
    folder = write_set(tmp_path / "idx", banded(40, seed=0), banded(20, seed=1))
    images = MnistSpec(dataset="idx", folder=str(folder), limit_train=30).load(progress=False)
    assert (len(images.train), len(images.test)) == (30, 20) and images.shape.rows == 12
    assert images.fingerprint == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    assert images.facts() == {"dataset": "idx", "data_verified": False, "class_names": ["0", "1", "2"],
                              "num_train": 30, "num_test": 20}
    with pytest.raises(SeqcoreError, match="--limit-test 21 is more than the 20 images available"):
        MnistSpec(dataset="idx", folder=str(folder), limit_test=21).load(progress=False)


def test_waves_are_the_computed_batches() -> None:
    spec = SineSpec(mode="next", phase="random", iterations=3, num_steps=7, batch_size=2)
    got = list(spec.load().batches(1, np.random.default_rng(4)))
    want = list(waves.next_batches(np.random.default_rng(4), 3, 7, 2, "random"))
    assert len(got) == 3 and all(np.array_equal(a, b) for x, y in zip(got, want) for a, b in zip(x, y))
    second = list(SineSpec(mode="sin2cos", iterations=2, num_steps=5).load().batches(2, np.random.default_rng()))
    first_of_epoch_two = next(waves.sin2cos_batches(2, 1, 5, 1))  # epoch 2 starts after epoch 1's windows
    assert np.array_equal(second[0][0], first_of_epoch_two[0]) and spec.load().fingerprint == {}


def test_the_hello_pair() -> None:
    pair = HelloSpec().load()
    assert pair.chars == "ehlo" and pair.inputs[:, 0].tolist() == [1, 0, 2, 2, 3]
    assert pair.targets[:, 0].tolist() == [3, 1, 2, 3, 2] and pair.fingerprint == {}
