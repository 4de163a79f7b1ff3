"""The translation data kind: English-French sentence pairs as a typed data spec (seqcore.data.spec
registers it as kind 'translation'), wrapping seqcore.data.translation.TranslationSpec field for
field, so that checkpoints store it and a resume compares it.

The pairs are identified by the SHA-256 of the lines read (`pairs_sha256`), not by the file they
came from: the bundled head, the download and a copy elsewhere give the same first pairs, so the
corpus is the spec's location (seqcore.data.spec: a moved copy with the same bytes is the same data).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

from seqcore.data.fra_eng import BUNDLED, DOWNLOAD
from seqcore.data.translation import TranslationData, TranslationSpec, load_translation
from seqcore.errors import ConfigError, SeqcoreError


@dataclasses.dataclass(frozen=True)
class PairsSpec:
    """Which pairs, how they are cut into arrays, which are held out (TranslationSpec's fields)."""

    kind: ClassVar[str] = "translation"
    location: ClassVar[tuple[str, ...]] = ("corpus",)

    corpus: str = BUNDLED  # 'bundled', 'download' or a fra.txt-format file (made absolute)
    num_pairs: int = 641
    num_steps: int = 9
    min_freq: int = 2
    num_held_out: int = 129
    split: str = "seeded"  # seqcore.data.translation.Split
    split_seed: int = 0
    vocab_from: str = "all"  # seqcore.data.translation.VocabFrom
    pick: str = "first"  # seqcore.data.translation.Pick

    def __post_init__(self) -> None:
        if isinstance(self.corpus, str) and self.corpus and self.corpus not in (BUNDLED, DOWNLOAD):
            object.__setattr__(self, "corpus", str(Path(self.corpus).expanduser().absolute()))
        try:
            checked = self.translation()
        except ConfigError:
            raise
        except SeqcoreError as error:  # TranslationSpec's own sentences, as a config's refusal
            raise ConfigError(str(error)) from None
        object.__setattr__(self, "split", checked.split.value)
        object.__setattr__(self, "vocab_from", checked.vocab_from.value)
        object.__setattr__(self, "pick", checked.pick.value)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    def identity(self) -> dict[str, Any]:
        """The fields that pick the pairs, without the corpus's location."""
        return {k: v for k, v in self.to_dict().items() if k not in self.location}

    def translation(self) -> TranslationSpec:
        return TranslationSpec(**dataclasses.asdict(self))

    def load(self, progress: bool = True) -> "Pairs":
        data = load_translation(self.translation())
        return Pairs(self, data, {"pairs_sha256": data.fingerprint})


@dataclasses.dataclass(frozen=True, eq=False)  # arrays inside: compare specs, not data sets
class Pairs:
    spec: PairsSpec
    data: TranslationData  # tokens, vocabularies, (P, T) arrays, the split
    fingerprint: dict[str, str]  # {"pairs_sha256": SHA-256 of the lines read, tab-joined}

    def facts(self) -> dict[str, Any]:
        """Counts for the run line and the summary; the truncated sentences lost their end."""
        data = self.data
        source, target = data.num_truncated
        return {"num_train_pairs": int(len(data.train_rows)), "num_held_out_pairs": int(len(data.held_out_rows)),
                "source_vocab_size": len(data.source_vocab), "target_vocab_size": len(data.target_vocab),
                "num_truncated_source": int(source), "num_truncated_target": int(target)}
