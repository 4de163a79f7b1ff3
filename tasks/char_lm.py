"""Character (or word) language model on The Time Machine, d2l chapter 8, on either framework.

Usage: python -m tasks.char_lm --backend mxnet --cell lstm --impl concise [--epochs 500] [--out DIR]
       python -m tasks.char_lm --out DIR --resume [--epochs 800]     # continue a stopped run
       python -m tasks.char_lm --preset d2l-0.17 --backend mxnet     # the book's run, either edition

Defaults are the d2l configuration: first 10,000 characters, batch 32, 35 steps, hidden 256,
lr 1, clip 1, 500 epochs, sequential partitioning. Validation perplexity is measured on the last
10% of the book every --eval-every epochs. --preset d2l-0.17 or d2l-1.0 sets every field the
book's own code fixes for that edition, backend, cell and impl (seqcore.jobs.presets, docs/d2l.md;
flags given beside it win). Writes config.json, metrics.jsonl, metrics.csv,
perplexity.png, model.safetensors (last) and best.safetensors (best validation) to --out
(default: the next runs/char_lm/BACKEND-CELL-IMPL/version_N).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

from seqcore.backend import load_backend
from seqcore.data.corpus import Preprocess
from seqcore.data.sampling import Sampler, carries_state
from seqcore.data.spec import TIME_MACHINE, CorpusSpec
from seqcore.data.vocab import Order
from seqcore.errors import ConfigError, SeqcoreError
from seqcore.jobs.lm import LanguageModelJob, model_spec
from seqcore.jobs.presets import PRESETS, describe, preset_values
from seqcore.model.spec import Bias, Impl
from seqcore.run.session import Run
from seqcore.train.spec import TrainSpec

from .cli import (TaskConfig, batch_size_option, choices, default_backend, num_preds_option, num_steps_option, option,
                  parse_config, prefixes_option, run_main)

TASK = "char_lm"
PREFIXES = ("time traveller", "traveller")
DEFAULT_EMBED_SIZE = 64


@dataclasses.dataclass(frozen=True)
class CharLMConfig(TaskConfig):
    preset: Optional[str] = option(None, "the book's configuration: " + "; ".join(
        f"{name}: {describe(name)}" for name in PRESETS) + " (flags given beside it win)", group="model",
        choices=PRESETS)
    bias: str = option("both", "the gates' biases: both (b_ih and b_hh, as the frameworks' layers) or input "
                       "(one per gate, the d2l book's scratch cells; --impl scratch)", group="model",
                       choices=choices(Bias))
    batch_size: int = batch_size_option(32)
    num_steps: int = num_steps_option(35)
    sampler: str = option("sequential", "sequential: rows continue across batches (state carried); "
                          "random: independent windows; d2l-sequential, d2l-random: d2l 0.17's (the offset "
                          "drawn up to --num-steps inclusive, the short tail / partial batch dropped); "
                          "windows: d2l 1.0's overlapping windows, shuffled, a zero state every batch",
                          group="data", choices=choices(Sampler))
    preprocess: str = option("lines", "lines: per line, non-letters to one space, stripped, lower-cased (d2l "
                             "0.17); text: the whole text at once, nothing stripped (d2l 1.0)", group="data",
                             choices=choices(Preprocess))
    vocab_order: str = option("frequency", "frequency: most frequent first, ties in order of first occurrence "
                              "(d2l 0.17); frequency-alphabetical: ties alphabetical (seqcore before); "
                              "alphabetical: every token, '<unk>' among them (d2l 1.0)", group="data",
                              choices=choices(Order), legacy=Order.FREQUENCY_ALPHABETICAL.value)
    train_windows: Optional[int] = option(None, "with --val-windows: train on the windows of --num-steps + 1 "
                                          "tokens that start at tokens 0 .. N-1 (d2l 1.0's num_train), in place "
                                          "of --max-tokens", group="data", check="positive")
    val_windows: Optional[int] = option(None, "with --train-windows: validate on the N windows that start right "
                                        "after them (d2l 1.0's num_val), in place of --val-fraction",
                                        group="data", check="positive")
    corpus: Optional[str] = option(None, "a UTF-8 text file or an http(s) URL (default: the bundled "
                                   "Time Machine)", group="data", metavar="PATH", resumable=True)
    corpus_hash: Optional[str] = option(None, "checksum of a --corpus URL, e.g. sha256:HEX", group="data")
    token: str = option("char", "", group="data", choices=("char", "word"))
    input: str = option("onehot", "how tokens enter the model: one-hot vectors (d2l) or a learned embedding",
                        group="model", choices=("onehot", "embedding"))
    embed_size: int = option(0, "embedding width with --input embedding (default: 64 there)", group="model",
                             check="non_negative")
    max_tokens: Optional[int] = option(10_000, "train on the first N tokens; 0 for all", group="data",
                                       check="non_negative")
    # Above 0: the run picks best.safetensors, the plateau schedule and --patience by validation perplexity.
    val_fraction: float = option(0.1, "the corpus tail held out for validation", group="data",
                                 check="proper_fraction")
    prefixes: tuple[str, ...] = prefixes_option(PREFIXES, "text to continue at each evaluation and at the end",
                                                resumable=True)
    num_preds: int = num_preds_option(resumable=True)
    temperature: float = option(0.0, "0 picks the likeliest token (greedy); above 0 samples, seeded",
                                group="output", check="non_negative", resumable=True)
    eval_every: Optional[int] = option(10, "epochs between validation passes", group="output",
                                       check="positive", resumable=True)
    checkpoint_every: int = option(10, "epochs between checkpoints (also the last and every new best)",
                                   group="output", check="positive", resumable=True)

    def __post_init__(self) -> None:
        if type(self.val_fraction) in (int, float) and self.val_fraction == 0:
            raise ConfigError("--val-fraction 0 leaves no text to validate on, and a run picks its best "
                              "checkpoint (and --patience and --schedule plateau act) by validation perplexity: "
                              "give a fraction in (0, 1), e.g. 0.1.")
        super().__post_init__()
        if self.bidirectional:
            raise ConfigError("--bidirectional does not fit a language model: it predicts each token from the "
                              "ones before it, and a reverse direction would read the answer.")
        if self.input == "onehot" and self.embed_size:
            raise ConfigError("--embed-size is only used with --input embedding.")
        if self.input == "embedding" and not self.embed_size:
            object.__setattr__(self, "embed_size", DEFAULT_EMBED_SIZE)
        if self.bias == Bias.INPUT.value and self.impl != Impl.SCRATCH.value:
            raise ConfigError("--bias input needs --impl scratch: the frameworks' fused layers hold two biases "
                              "per gate (b_ih and b_hh).")
        if (self.train_windows is None) != (self.val_windows is None):
            raise ConfigError("--train-windows and --val-windows come together (d2l 1.0's num_train and num_val).")

    @classmethod
    def layer_preset(cls, values: dict[str, Any]) -> dict[str, Any]:
        """--preset's values under the others (the flags, a --config file, a resumed run's config),
        for the backend, cell and impl those give (else their defaults)."""
        name = values.get("preset")
        if name is None:
            return values
        if name not in PRESETS:
            raise ConfigError(f"--preset must be one of {', '.join(PRESETS)}, got {name!r}.")
        fields = {f.name: f.default for f in dataclasses.fields(cls)}
        backend = values.get("backend") or default_backend()
        preset = preset_values(name, backend, values.get("cell", fields["cell"]), values.get("impl", fields["impl"]))
        return {**preset, **values}

    def windows(self) -> Optional[tuple[int, int]]:
        """(train, validation) window counts of d2l 1.0's split, or None for the tail split."""
        return None if self.train_windows is None else (self.train_windows, self.val_windows)

    def data_spec(self) -> CorpusSpec:
        windows = None if self.train_windows is None else (self.train_windows, self.val_windows, self.num_steps)
        return CorpusSpec(source=self.corpus or TIME_MACHINE, source_hash=self.corpus_hash, token=self.token,
                          max_tokens=self.max_tokens or None, val_fraction=self.val_fraction,
                          preprocess=self.preprocess, vocab_order=self.vocab_order, windows=windows)

    def train_spec(self) -> TrainSpec:
        return TrainSpec(batch_size=self.batch_size, num_steps=self.num_steps, num_epochs=self.epochs,
                         lr=self.lr, clip=self.clip, optimizer=self.optimizer, sampler=self.sampler,
                         carry_state=carries_state(self.sampler), init=self.init,
                         seed=self.seed, schedule=self.schedule, lr_decay=self.lr_decay,
                         lr_decay_every=self.lr_decay_every)


def run(config: CharLMConfig) -> dict[str, Any]:
    """Train and return the summary (train / validation perplexity, tokens/s, samples, paths).

    To resume a run from Python without repeating its settings: run(CharLMConfig.resume_from(DIR,
    epochs=800)); a changed setting that would change the numbers is refused."""
    train = config.train_spec()  # every flag is checked before any file is read or written
    data_spec = config.data_spec()
    settings = config.settings(TASK, f"{config.backend}-{config.cell}-{config.impl}")
    with Run(TASK, config.saved(), settings, train) as training:  # the folder is checked first
        data = data_spec.load()
        job = LanguageModelJob(data, train, config.prefixes, config.num_preds, config.temperature)
        spec = model_spec(config.cell, config.impl, len(data.vocab), config.hidden_size, config.num_layers,
                          config.input, config.embed_size, config.dropout, config.gru_reset, config.activation,
                          config.bias)
        for prefix in config.prefixes:  # fail before training, not after it
            unknown = data.vocab.unknown(list(prefix) if config.token == "char" else prefix.split())
            if unknown:
                raise SeqcoreError(f"The prefix {prefix!r} has tokens outside the vocabulary: "
                                   f"{', '.join(repr(t) for t in unknown)}.")
        training.check_resumed(job, spec)  # before a framework loads
        summary = training.fit(job, load_backend(config.backend, config.compile), spec)
    return {**summary, "out": str(settings.out)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = parse_config(CharLMConfig, TASK, argv, __doc__,
                          defaults={"max_tokens": "10000"})
    summary = run(config)
    print(f"{summary['backend']} {config.impl} {config.cell} on {summary['device']}: "
          f"train perplexity {summary['train_ppl']:.3f}, validation perplexity {summary['val_ppl']:.3f} "
          f"(best {summary['best_val_ppl']:.3f} at epoch {summary['best_epoch']}), "
          f"{summary['tokens_per_s_last_epoch']:,.0f} tokens/s (last epoch), {summary['wall_s']:.1f} s")
    for prefix, text in summary["samples"].items():
        print(f"{prefix!r} -> {text!r}")
    print(f"written to {summary['out']}")
    return 0


if __name__ == "__main__":
    run_main(main)
