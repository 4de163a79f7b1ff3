"""'hello' -> 'ohlol': the seed tutorial's character seq2seq toy, on either framework.

Usage: python -m tasks.hello --backend torch --impl scratch [--input embedding] [--out DIR]
       python -m tasks.hello --out DIR --resume --epochs 40     # continue a run

Each character of --source is mapped to the character of --target at the same position. The
vocabulary is the sorted set of their characters ('ehlo', as in the seed). --impl scratch steps
the cell in a Python loop over the characters (the seed's RNNCell version); --impl concise hands
the whole sequence to the framework's layer (the seed's RNN version). --input onehot: one-hot
characters, hidden 4, lr 0.1; --input embedding: an embedding table of width 10, two layers of
hidden 8, lr 0.05 (the seed's Embedding version). Both inputs end in a linear output layer
(the seed's one-hot versions read the hidden state as logits; seqcore models always have one).
One epoch is one Adam step on the one sequence with a fresh zero state, mean cross-entropy over
the characters (the seed sums); 20 epochs (the seed ran 15, which LSTM needs all of). Every epoch
prints that step's loss and the string predicted after it. The cross-entropy after the step
(eval_loss: the weights the checkpoint holds) picks best.safetensors. Writes config.json,
metrics.jsonl, metrics.csv, loss.png, model.safetensors and best.safetensors to --out (default:
the next runs/hello/BACKEND-CELL-IMPL-INPUT/version_N).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

from seqcore.backend import Optimizer, load_backend
from seqcore.data.sampling import Sampler
from seqcore.data.spec import HelloSpec
from seqcore.errors import ConfigError
from seqcore.jobs.hello import HelloJob
from seqcore.model.spec import Impl, InputKind, ModelSpec, Readout
from seqcore.run.session import Run
from seqcore.train.spec import TrainSpec

from .cli import TaskConfig, choices, option, parse_config, run_main

TASK = "hello"
INPUTS = {  # the seed's sizes per version (--input)
    "onehot": {"hidden_size": 4, "num_layers": 1, "embed_size": 0, "lr": 0.1},
    "embedding": {"hidden_size": 8, "num_layers": 2, "embed_size": 10, "lr": 0.05},
}


@dataclasses.dataclass(frozen=True)
class HelloConfig(TaskConfig):
    """Fields left at None take the --input's value (INPUTS)."""

    RENAMED = {"variant": "input"}  # seqcore 0.1.0 wrote variant: --input names the input kind on every task

    input: str = option("onehot", "how characters enter the model: onehot: one-hot vectors; embedding: a learned "
                        "embedding table", group="model", choices=tuple(INPUTS), deprecated=("--variant",))
    impl: str = option("scratch", "scratch: the cell stepped over the characters in Python; concise: the "
                       "framework's layer", group="model", choices=choices(Impl))
    hidden_size: Optional[int] = option(None, "hidden units per layer", group="model", check="positive")
    num_layers: Optional[int] = option(None, "stacked recurrent layers", group="model", check="positive")
    embed_size: Optional[int] = option(None, "embedding width (--input embedding only)", group="model",
                                       check="non_negative")
    epochs: Optional[int] = option(20, "train to this epoch, one step each (with --resume: continue to it)",
                                   check="positive", resumable=True)
    lr: Optional[float] = option(None, "learning rate", check="positive")
    optimizer: Optional[str] = option("adam", "", choices=choices(Optimizer))
    clip: Optional[float] = option(0.0, "clip gradients to this global norm; 0 turns it off",
                                   check="non_negative")
    source: str = option("hello", "the input characters", group="data")
    target: str = option("ohlol", "the output characters, one per input character", group="data")

    def __post_init__(self) -> None:
        if not isinstance(self.input, str) or self.input not in INPUTS:
            raise ConfigError(f"--input must be one of {', '.join(INPUTS)}, got {self.input!r}.")
        for name, value in INPUTS[self.input].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        super().__post_init__()
        if self.bidirectional:
            raise ConfigError("--bidirectional does not fit hello: it is the seed's left-to-right character RNN, "
                              "which reads the characters once, in order.")

    def data_spec(self) -> HelloSpec:
        return HelloSpec(source=self.source, target=self.target)

    def train_spec(self) -> TrainSpec:
        return TrainSpec(batch_size=1, num_steps=len(self.source), num_epochs=self.epochs, lr=self.lr,
                         clip=self.clip, optimizer=self.optimizer, sampler=Sampler.RANDOM, carry_state=False,
                         init=self.init, seed=self.seed, schedule=self.schedule, lr_decay=self.lr_decay,
                         lr_decay_every=self.lr_decay_every)

    def model_spec(self, num_chars: int) -> ModelSpec:
        return ModelSpec(cell=self.cell, impl=self.impl, input_size=num_chars, output_size=num_chars,
                         hidden_size=self.hidden_size, num_layers=self.num_layers,
                         input_kind=InputKind.ONEHOT if self.input == "onehot" else InputKind.EMBEDDING,
                         embed_size=self.embed_size, readout=Readout.SEQUENCE, **self.model_options())


def run(config: HelloConfig) -> dict[str, Any]:
    """Train and return the summary (losses, predicted string, first epoch that got it right, paths).

    To resume a run from Python without repeating its settings: run(HelloConfig.resume_from(DIR,
    epochs=40)); a changed setting that would change the numbers is refused."""
    data = config.data_spec().load()
    train, spec = config.train_spec(), config.model_spec(len(data.chars))  # checked before any file is written
    settings = config.settings(TASK, f"{config.backend}-{config.cell}-{config.impl}-{config.input}")
    with Run(TASK, config.saved(), settings, train) as training:  # the folder is checked first
        title = (f"{config.backend} {config.impl} {config.cell} ({config.input}): "
                 f"{config.source!r} -> {config.target!r}")
        job = HelloJob(data, config.epochs, config.input, title)
        training.check_resumed(job, spec)  # before a framework loads
        summary = training.fit(job, load_backend(config.backend, config.compile), spec)
    return {**summary, "out": str(settings.out)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = parse_config(HelloConfig, TASK, argv, __doc__, defaults={
        name: ", ".join(f"{values[name]} {kind}" for kind, values in INPUTS.items())
        for name in ("hidden_size", "num_layers", "embed_size", "lr")})  # defaults that depend on --input
    summary = run(config)
    print(f"{config.backend} {config.impl} {config.cell} ({config.input}) on {summary['device']}: loss "
          f"{summary['first_loss']:.4f} -> {summary['final_loss']:.4f}, predicted {summary['predicted']!r} "
          f"(first right at epoch {summary['first_correct_epoch']}), {summary['wall_s']:.1f} s")
    print(f"written to {summary['out']}")
    return 0


if __name__ == "__main__":
    run_main(main)
