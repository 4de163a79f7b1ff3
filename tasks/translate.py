"""English-French machine translation with an RNN encoder-decoder (d2l 9.5-9.8, 10.4), on either framework.

Usage: python -m tasks.translate --backend torch [--preset d2l-1.0] [--attention additive] [--out DIR]
       python -m tasks.translate --preset large --corpus ../shared/data/fra-eng/fra.txt --beam 4
       python -m tasks.translate --out DIR --resume [--epochs 60]       # continue a stopped run
       python -m tasks.translate --checkpoint RUN --sentence "go ." [--sentence ...] [--beam 4]
       cat sentences.txt | python -m tasks.translate --checkpoint RUN --sentence -

Presets (any flag overrides them):
  d2l-1.0   the book's 1.0 edition: the first 641 lines of fra.txt (the bundled head), the last 129
            held out, 9 tokens a sentence, embedding and hidden 256, 2 GRU layers, dropout 0.2,
            batch 128, Adam lr 0.005, 30 epochs, clip 1, the loss averaged over real tokens
  d2l-0.17  the 0.17 edition: 601 lines, nothing held out, 10 tokens, embedding and hidden 32,
            2 layers, dropout 0.1, batch 64, Adam lr 0.005, 300 epochs, clip 1, the book's loss
            (--loss d2l: the mean over every position, padding included)
  large     the first 20,000 pairs of the whole fra.txt (--corpus download, or a copy of it),
            2,000 held out at random, 10 tokens, embedding 128, hidden 256, 2 GRU layers, dropout
            0.2, batch 256, Adam lr 0.005, 10 epochs, clip 1: under half an hour a run on 2 CPU
            cores (MXNet with attention, the slowest), minutes for PyTorch
  long      large's sizes on 20,000 pairs spread evenly over the whole fra.txt (--pick spread: every
            sentence length, median 7 source words, 1% over 16), 16 tokens: BLEU by length with
            sentences long enough to ask what attention is for

The summary gives train_loss, val_loss, book_bleu (the mean of the book's BLEU of its four
sentences, 0 to 1), bleu and chrf (sacrebleu's corpus scores of the held-out pairs, 0 to 100,
greedy; with --beam K also beam search), BLEU by source length, and how many sentences were cut
to --num-steps. Writes config.json, metrics.jsonl, metrics.csv, loss.png, bleu.png, with attention
attention_N.png (heat maps of the book's sentences and some held-out ones), model.safetensors
(last) and best.safetensors (best validation loss) to --out (default: the next
runs/translate/BACKEND-CELL-IMPL-ATTENTION/version_N).

With --checkpoint (a run folder or a .safetensors), the model translates each --sentence (or each
line of standard input with --sentence -) and names the words it did not know.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any, Optional, Sequence

from seqcore.backend import Optimizer, load_backend
from seqcore.data.pairs import PairsSpec
from seqcore.data.sampling import Sampler
from seqcore.data.translation import Pick, Split, VocabFrom
from seqcore.errors import ConfigError, SeqcoreError
from seqcore.jobs.translate import TranslationJob
from seqcore.jobs.translation_checkpoint import translate_sentences
from seqcore.model.seq2seq import LOSSES, Attention, Seq2SeqSpec
from seqcore.model.spec import Cell, Init
from seqcore.run.session import Run
from seqcore.train.spec import TrainSpec

from .cli import (Options, TaskConfig, backend_option, batch_size_option, choices, device_option, num_steps_option,
                  option, parse_config, parse_options, run_main, write_result)

TASK = "translate"
PRESETS: dict[str, dict[str, Any]] = {
    "d2l-1.0": dict(corpus="bundled", num_pairs=641, held_out=129, split="tail", num_steps=9, embed_size=256,
                    hidden_size=256, num_layers=2, dropout=0.2, batch_size=128, lr=0.005, epochs=30, clip=1.0,
                    loss="masked", bleu_every=1),
    "d2l-0.17": dict(corpus="bundled", num_pairs=601, held_out=0, split="seeded", num_steps=10, embed_size=32,
                     hidden_size=32, num_layers=2, dropout=0.1, batch_size=64, lr=0.005, epochs=300, clip=1.0,
                     loss="d2l", bleu_every=0),
    # sized from timings on the 2-core machine (docs/TRANSLATION.md): MXNet's attention decoder is the slowest run
    "large": dict(corpus="download", num_pairs=20_000, held_out=2_000, split="seeded", num_steps=10, embed_size=128,
                  hidden_size=256, num_layers=2, dropout=0.2, batch_size=256, lr=0.005, epochs=10, clip=1.0,
                  loss="masked", bleu_every=5),
    # large's sizes on pairs of every length: fra.txt is sorted short to long, so its first 20,000
    # pairs hold 1 to 6 words, where the long-sentence question (issue 20) cannot be asked
    "long": dict(corpus="download", pick="spread", num_pairs=20_000, held_out=2_000, split="seeded", num_steps=16,
                 embed_size=128, hidden_size=256, num_layers=2, dropout=0.2, batch_size=256, lr=0.005, epochs=10,
                 clip=1.0, loss="masked", bleu_every=5),
}
# every preset but where it says otherwise: the book's GRU, Xavier weights, Adam, the first pairs of the file
COMMON = dict(cell="gru", init="xavier", optimizer="adam", pick=Pick.FIRST.value)
FROM_PRESET = "the preset's"


@dataclasses.dataclass(frozen=True)
class TranslateConfig(TaskConfig):
    """Fields left at None take the preset's value."""

    preset: str = option("d2l-1.0", "defaults for the data, model and training flags", group="model",
                         choices=tuple(PRESETS))
    cell: Optional[str] = option(None, "recurrent cell of both stacks", group="model", choices=choices(Cell))
    attention: str = option(Attention.NONE.value, "the decoder's context: the encoder's final state (none), "
                            "Bahdanau's additive attention or scaled dot-product attention", group="model",
                            choices=choices(Attention))
    embed_size: Optional[int] = option(None, "word embedding width of both sides", group="model", check="positive")
    hidden_size: Optional[int] = option(None, "hidden units per layer", group="model", check="positive")
    num_layers: Optional[int] = option(None, "stacked recurrent layers of each stack", group="model",
                                       check="positive")
    init: Optional[str] = option(None, "initial weights, drawn once in NumPy", group="model", choices=choices(Init))
    dropout: Optional[float] = option(None, "while training, zero this fraction of the inputs of each layer after "
                                      "the first (both stacks) and of the attention weights (masks from --seed, the "
                                      "same on every backend)", group="model", check="probability")
    epochs: Optional[int] = option(None, "train to this epoch (with --resume: continue to it)", check="positive",
                                   resumable=True)
    batch_size: Optional[int] = batch_size_option(None, "sentence pairs per batch")
    lr: Optional[float] = option(None, "learning rate", check="positive")
    optimizer: Optional[str] = option(None, "", choices=choices(Optimizer))
    clip: Optional[float] = option(None, "clip gradients to this global norm; 0 turns it off", check="non_negative")
    loss: Optional[str] = option(None, "masked: cross-entropy averaged over the real target tokens; d2l: the "
                                 "book's mean over every position, padding included", choices=[l.value for l in LOSSES])
    corpus: Optional[str] = option(None, "bundled (the first 641 lines of fra.txt), download (the book's "
                                   "fra-eng.zip, or <cache>/fra-eng/fra.txt) or a file of English<TAB>French "
                                   "lines", group="data", metavar="PATH", resumable=True)
    num_pairs: Optional[int] = option(None, "read N pairs (--pick)", group="data", check="positive")
    pick: Optional[str] = option(None, "which N pairs: the first (the book's; fra.txt's shortest sentences come "
                                 "first) or spread evenly over the file (every length)", group="data",
                                 choices=choices(Pick))
    held_out: Optional[int] = option(None, "pairs held out for validation and BLEU; 0: none", group="data",
                                     check="non_negative")
    split: Optional[str] = option(None, "which pairs are held out: drawn by --split-seed, or the last ones "
                                  "(d2l 1.0)", group="data", choices=choices(Split))
    split_seed: int = option(0, "the held-out draw of --split seeded", group="data", check="non_negative")
    min_freq: int = option(2, "words seen fewer times are <unk>", group="data", check="positive")
    vocab_from: str = option(VocabFrom.ALL.value, "the vocabularies count every pair read (the book) or the "
                             "training pairs only", group="data", choices=choices(VocabFrom))
    num_steps: Optional[int] = num_steps_option(None, "tokens per sentence, <eos> included; a longer sentence "
                                                "is cut as the book cuts it (counted in the summary)")
    beam: int = option(1, "beam width of the final held-out translations; 1: greedy only", group="output",
                       check="positive", resumable=True)
    bleu_every: Optional[int] = option(None, "epochs between held-out corpus BLEU scores (greedy; also at the "
                                       "last epoch); 0: the last epoch only", group="output", check="non_negative",
                                       resumable=True)

    def __post_init__(self) -> None:
        if not isinstance(self.preset, str) or self.preset not in PRESETS:
            raise ConfigError(f"--preset must be one of {', '.join(PRESETS)}, got {self.preset!r}.")
        for name, value in {**COMMON, **PRESETS[self.preset]}.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        super().__post_init__()
        if self.bidirectional:
            raise ConfigError("--bidirectional does not fit the encoder-decoder: its decoder starts from the "
                              "encoder's final state, one direction's, as the book's does.")
        self.data_spec()  # the pairs' own checks (a held-out split as large as the data ...), now

    def data_spec(self) -> PairsSpec:
        return PairsSpec(corpus=self.corpus, num_pairs=self.num_pairs, num_steps=self.num_steps,
                         min_freq=self.min_freq, num_held_out=self.held_out, split=self.split,
                         split_seed=self.split_seed, vocab_from=self.vocab_from, pick=self.pick)

    def train_spec(self) -> TrainSpec:
        return TrainSpec(batch_size=self.batch_size, num_steps=self.num_steps, num_epochs=self.epochs, lr=self.lr,
                         clip=self.clip, optimizer=self.optimizer, sampler=Sampler.RANDOM, carry_state=False,
                         init=self.init, seed=self.seed, schedule=self.schedule, lr_decay=self.lr_decay,
                         lr_decay_every=self.lr_decay_every)

    def model_spec(self, source_vocab_size: int, target_vocab_size: int) -> Seq2SeqSpec:
        options = self.model_options()
        return Seq2SeqSpec(cell=self.cell, impl=self.impl, source_vocab_size=source_vocab_size,
                           target_vocab_size=target_vocab_size, embed_size=self.embed_size,
                           hidden_size=self.hidden_size, num_layers=self.num_layers, dropout=options["dropout"],
                           activation=options["activation"], gru_reset=options["gru_reset"],
                           attention=self.attention)


def run(config: TranslateConfig) -> dict[str, Any]:
    """Train and return the summary (losses, BLEU, chrF, translations, tokens/s, paths).

    To resume from Python: run(TranslateConfig.resume_from(DIR, epochs=60))."""
    train = config.train_spec()  # every flag is checked before any file is read or written
    data_spec = config.data_spec()
    settings = config.settings(TASK, f"{config.backend}-{config.cell}-{config.impl}-{config.attention}")
    with Run(TASK, config.saved(), settings, train) as training:
        data = data_spec.load()
        spec = config.model_spec(len(data.data.source_vocab), len(data.data.target_vocab))
        job = TranslationJob(data, train, config.loss, beam=config.beam, bleu_every=config.bleu_every,
                             attends=spec.attends)
        training.check_resumed(job, spec)  # before a framework loads
        summary = training.fit(job, load_backend(config.backend, config.compile), spec)
    return {**summary, "out": str(settings.out)}


def report(config: TranslateConfig, summary: dict[str, Any]) -> None:
    def score(key: str) -> str:
        value = summary.get(key)
        return "-" if value is None else f"{value:.2f}"

    val = summary.get("val_loss")
    print(f"{summary['backend']} {config.impl} {config.cell} attention {config.attention} on {summary['device']}: "
          f"train loss {summary['train_loss']:.4f}" + (f", validation loss {val:.4f}" if val is not None else "") +
          f", book BLEU {summary['book_bleu']:.3f}, held-out BLEU {score('bleu')} (chrF {score('chrf')})" +
          (f", beam {config.beam}: BLEU {score('bleu_beam')}" if config.beam > 1 else "") +
          f", {summary['tokens_per_s_last_epoch']:,.0f} tokens/s (last epoch), {summary['wall_s']:.1f} s")
    cut = summary.get("num_truncated_source", 0), summary.get("num_truncated_target", 0)
    if any(cut):
        print(f"{cut[0]} source and {cut[1]} target sentences were longer than --num-steps {config.num_steps} "
              f"and lost their end (as in the book)")
    for source, text in summary["translations"].items():
        print(f"{source!r} -> {text!r}")
    print(f"written to {summary['out']}")


# -- translating with a trained model ---------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TranslateOptions(Options):
    checkpoint: Optional[str] = option(None, "a run folder (its model.safetensors) or a .safetensors file",
                                       group="checkpoint", required=True, metavar="PATH")
    best: bool = option(False, "with a run folder: its best.safetensors instead", group="checkpoint")
    sentences: tuple[str, ...] = option((), "an English sentence to translate; '-' reads one per line from "
                                        "standard input", group="translate", metavar="TEXT")
    beam: int = option(1, "beam width; 1: greedy decoding (the book's)", group="translate", check="positive")
    max_len: Optional[int] = option(None, "most tokens a translation may have", group="translate",
                                    check="positive", shown="the model's num_steps")
    backend: Optional[str] = backend_option()
    device: str = device_option()
    json: bool = option(False, "print the result as one JSON object", group="output")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.sentences:
            raise ConfigError("--checkpoint translates sentences: give --sentence TEXT (repeatable), or "
                              "--sentence - to read one per line from standard input.")


def read_stdin() -> list[str]:
    """The lines of standard input as sentences (a final newline ends the last one)."""
    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise SeqcoreError(f"Line {line} of standard input is not UTF-8 text.") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def translate_main(argv: Sequence[str]) -> int:
    options = parse_options(TranslateOptions, "python -m tasks.translate --checkpoint", argv, __doc__)
    sentences = [line for given in options.sentences for line in (read_stdin() if given == "-" else [given])]
    if not sentences:
        raise SeqcoreError("Standard input held no sentence to translate.")
    result = translate_sentences(options.checkpoint, sentences, backend=options.backend, device=options.device,
                                 beam=options.beam, max_len=options.max_len, best=options.best)
    if options.json:
        write_result(json.dumps(result))
        return 0
    for item in result["translations"]:
        unknown = f"  (unknown: {', '.join(item['unknown'])})" if item["unknown"] else ""
        print(f"{item['source']!r} -> {item['translation']!r}{unknown}")
    print(f"{len(sentences)} sentence(s), {result['num_unknown']} unknown word(s) read as <unk>, "
          f"{result['truncated']} cut to {result['num_steps']} tokens; {options.backend}, "
          f"{'greedy' if options.beam == 1 else f'beam {options.beam}'}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(arg == "--checkpoint" or arg.startswith("--checkpoint=") for arg in argv):
        return translate_main(argv)
    config = parse_config(TranslateConfig, TASK, argv, __doc__,
                          defaults={name: FROM_PRESET for name in (*PRESETS["d2l-1.0"], *COMMON)})
    report(config, run(config))
    return 0


if __name__ == "__main__":
    run_main(main)
