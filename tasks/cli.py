"""What every command line shares: the tasks' config and the options several commands have.

Each task has one frozen config dataclass (on TaskConfig) and each tool one frozen options
dataclass (on Options), built with the machinery of tasks/options.py: flags, defaults, help,
types and checks derived from the fields once, and checked when the dataclass is made, so a
command line, a `--config` file, a resumed run's saved config and a Python call meet the same
checks and sentences (ConfigError). The options several commands have (--backend, --device,
--batch-size, --num-steps, --prefix, --num-preds, --out, --overwrite, lists of names) are defined
once below. `parse_config` layers, from lowest to highest: the field defaults, a `--config FILE`
(a run's config.json) or the saved config of the folder being resumed (not both), and the flags
given; a resumed configuration is then checked against the run's checkpoint by the run layer
(seqcore.run.resume), as a Python call's is. Bad input ends in one sentence on stderr and exit
status 2, never a traceback (`run_main`).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Optional, Sequence

from seqcore.backend import BACKENDS, Device, Optimizer, no_compile
from seqcore.checks import parse_enum
from seqcore.errors import ConfigError, SeqcoreError
from seqcore.model.spec import Activation, Cell, GRUReset, Impl, Init
from seqcore.run.config_file import read_run_config
from seqcore.run.folder import Mode, next_version
from seqcore.run.processes import tie_to_launcher
from seqcore.run.progress import protect_output
from seqcore.run.session import RunInterrupted, RunSettings
from seqcore.train.spec import Schedule

# The commands import the machinery from here, beside the shared options (tasks.cli is their one door).
from .options import (Options, Parser, add_version, build_parser, check_fields, flag, option,  # noqa: F401
                      parse_options, split_at_dashes, version_text)


def choices(kind) -> list[str]:
    return [member.value for member in kind]


BACKEND_ENV = "SEQCORE_BACKEND"
BACKEND_DEFAULT = f"${BACKEND_ENV}, else the one framework installed, else mxnet"


def backend_option(help: str = "framework", **given: Any) -> Any:
    """--backend: a backend name, $SEQCORE_BACKEND (else the installed framework) when left out."""
    return option(None, help, **{"group": "model", "choices": BACKENDS, "shown": BACKEND_DEFAULT,
                                 "default_from": lambda: default_backend(), **given})


def device_option(default: str = "auto", help: str = "auto picks a usable GPU, else the CPU", **given: Any) -> Any:
    return option(default, help, **{"group": "model", "choices": choices(Device), **given})


def batch_size_option(default: Optional[int], help: str = "sequences per batch", **given: Any) -> Any:
    return option(default, help, **{"check": "positive", **given})


def num_steps_option(default: Optional[int], help: str = "time steps per batch", **given: Any) -> Any:
    return option(default, help, **{"group": "data", "check": "positive", **given})


def prefixes_option(default: tuple[str, ...], help: str = "text to continue", **given: Any) -> Any:
    """--prefix, repeatable: each a non-empty text (checked against the vocabulary later)."""
    return option(default, help, **{"group": "output", "metavar": "TEXT", **given})


def num_preds_option(default: int = 50, help: str = "tokens generated per prefix", **given: Any) -> Any:
    return option(default, help, **{"group": "output", "check": "positive", **given})


def out_option(default: Optional[str], help: str, **given: Any) -> Any:
    return option(default, help, **{"group": "output", "metavar": "PATH", **given})


def overwrite_option(help: str, **given: Any) -> Any:
    return option(False, help, **{"group": "output", **given})


def names_option(default: Sequence[str], allowed: Sequence[str], help: str, **given: Any) -> Any:
    """A comma-separated list of names (--backends mxnet,torch), each one of `allowed`."""
    return option(tuple(default), f"{help}, comma-separated", **{"choices": tuple(allowed), "many": "comma",
                                                                  "metavar": "A,B", **given})


@dataclasses.dataclass(frozen=True)
class TaskConfig(Options):
    """The fields every training task has: model, training and output."""

    backend: Optional[str] = backend_option()
    cell: str = option("rnn", "recurrent cell", group="model", choices=choices(Cell))
    impl: str = option("concise", "scratch: cell equations written out; concise: the framework's layer",
                       group="model", choices=choices(Impl))
    device: str = device_option(resumable=True)
    hidden_size: Optional[int] = option(256, "hidden units per layer", group="model", check="positive")
    num_layers: Optional[int] = option(1, "stacked recurrent layers", group="model", check="positive")
    init: str = option("uniform", "initial weights, drawn once in NumPy", group="model", choices=choices(Init))
    activation: str = option(Activation.TANH.value, "the RNN cell's nonlinearity, passed to both frameworks "
                             "(their defaults differ: PyTorch's nn.RNN runs tanh, Gluon's rnn.RNN and so the d2l "
                             "book's MXNet RNN relu); --cell rnn only", group="model", choices=choices(Activation))
    bidirectional: bool = option(False, "add a reverse direction that reads each sequence from its end; the "
                                 "output layer reads both directions (at the last step: the forward final and "
                                 "the reverse final state)", group="model")
    dropout: float = option(0.0, "while training, zero this fraction of the inputs of each layer after the "
                            "first and of the output layer (masks drawn in NumPy from --seed, the same on "
                            "every backend); never at evaluation", group="model", check="probability")
    gru_reset: str = option(GRUReset.AFTER.value, "where the GRU's reset gate acts: after the hidden matmul "
                            "(cuDNN, Gluon, PyTorch) or before it (the d2l book's scratch GRU; needs --cell gru "
                            "--impl scratch)", group="model", choices=choices(GRUReset))
    compile: bool = option(False, "PyTorch scratch models: train each layer's time loop through torch.compile "
                           "(a one-off compile of up to a minute per batch shape, then faster steps; needs a "
                           "C++ compiler, or Triton on a GPU; losses agree with eager to float round-off)",
                           group="model", resumable=True)
    seed: int = option(0, "weights, batches and dropout masks", group="model", check="non_negative")
    epochs: Optional[int] = option(500, "train to this epoch (with --resume: continue to it)",
                                   check="positive", resumable=True)
    lr: Optional[float] = option(1.0, "learning rate", check="positive")
    optimizer: Optional[str] = option("sgd", "", choices=choices(Optimizer))
    clip: Optional[float] = option(1.0, "clip gradients to this global norm; 0 turns it off", check="non_negative")
    schedule: Optional[str] = option("constant", "learning rate over the run: constant, cosine (to 1%), step "
                                     "(x --lr-decay every --lr-decay-every epochs), plateau (x --lr-decay "
                                     "after an evaluation without a new best)", choices=choices(Schedule))
    lr_decay: float = option(0.25, "factor of the step and plateau schedules", check="fraction")
    lr_decay_every: int = option(10, "epochs between the step schedule's decays", check="positive")
    patience: int = option(0, "stop after this many evaluations without a new best; 0: never",
                           check="non_negative", resumable=True)
    divergence: float = option(10.0, "stop when a loss exceeds this multiple of the first epoch's mean "
                               "loss; 0: only NaN/inf", check="non_negative", resumable=True)
    eval_every: Optional[int] = option(1, "epochs between evaluations", group="output", check="positive",
                                       resumable=True)
    checkpoint_every: int = option(1, "epochs between checkpoints (also the last and every new best)",
                                   group="output", check="positive", resumable=True)
    log_every: int = option(0, "steps per training-loss line in metrics.jsonl; 0: none",
                            group="output", check="non_negative", resumable=True)
    span: int = option(0, "training steps the backend runs between two reads of their losses (one device "
                       "synchronisation per span; the numbers do not change); a signal stops at a span's end; "
                       "0: --log-every, else the whole epoch", group="output", check="non_negative",
                       resumable=True)
    out: Optional[str] = out_option(None, "output folder (default: the next runs/TASK/.../version_N)",
                                    resumable=True)
    resume: bool = option(False, "continue the run in --out", group="output", saved=False)
    overwrite: bool = overwrite_option("replace the run in --out (its files are removed first)", saved=False)
    progress: bool = option(True, "no progress bar", group="output", resumable=True)
    tensorboard: bool = option(False, "also write TensorBoard event files (pip install tensorboardX)",
                               group="output", resumable=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_gru_reset()
        self.check_activation()
        self.check_compile()
        if self.resume and self.overwrite:
            raise ConfigError("--resume and --overwrite exclude each other: continue the run or replace it.")
        if self.resume and not self.out:
            raise ConfigError("--resume needs --out, the folder of the run to continue.")
        check_plot_backend()
        if self.tensorboard:
            try:
                import tensorboardX  # noqa: F401  (the optional extra)
            except ImportError:
                raise SeqcoreError("--tensorboard needs tensorboardX: pip install -e '.[tensorboard]'.") from None

    def check_compile(self) -> None:
        """--compile is torch.compile of the scratch time loop: PyTorch, scratch models only."""
        if self.compile and self.backend != "torch":
            raise ConfigError(no_compile(self.backend))
        if self.compile and self.impl != Impl.SCRATCH.value:
            raise ConfigError(f"--compile compiles the scratch recurrence, and --impl {self.impl} is the "
                              f"framework's fused layer already: drop --compile or use --impl scratch.")

    def check_gru_reset(self) -> None:
        """--gru-reset before exists for the scratch GRU only (the fused layers apply the gate after)."""
        if self.gru_reset == GRUReset.BEFORE.value and (self.cell != Cell.GRU.value or
                                                        self.impl != Impl.SCRATCH.value):
            raise ConfigError(f"--gru-reset before needs --cell gru --impl scratch (the frameworks' fused "
                              f"layers apply the reset gate after the hidden matmul), got --cell {self.cell} "
                              f"--impl {self.impl}.")

    def check_activation(self) -> None:
        """--activation relu is the RNN cell's (a GRU's and an LSTM's nonlinearities are fixed)."""
        if self.activation != Activation.TANH.value and self.cell != Cell.RNN.value:
            raise ConfigError(f"--activation {self.activation} needs --cell rnn (the GRU and the LSTM have "
                              f"fixed nonlinearities), got --cell {self.cell}.")

    def model_options(self, cell: Optional[str] = None) -> dict[str, Any]:
        """The ModelSpec fields of --activation, --bidirectional, --dropout and --gru-reset for
        `cell` (default --cell); --activation reaches RNN models only and --gru-reset GRU models
        only (sine --cell all trains three cells)."""
        cell = cell or self.cell
        return {"bidirectional": self.bidirectional, "dropout": self.dropout,
                "activation": self.activation if cell == Cell.RNN.value else Activation.TANH.value,
                "gru_reset": self.gru_reset if cell == Cell.GRU.value else GRUReset.AFTER.value}

    # Fields renamed since a release, {old name: new name}: a saved config.json (--config, --resume)
    # written under the old name reads as the new one (sine's seq_len -> num_steps).
    RENAMED: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def layer_preset(cls, values: dict[str, Any]) -> dict[str, Any]:
        """The field values with a task's preset (char_lm --preset) laid under them; none here."""
        return values

    def saved(self) -> dict[str, Any]:
        """The fields that describe the run, as stored in config.json."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("saved", True)}

    def folder_mode(self) -> Mode:
        return Mode.RESUME if self.resume else Mode.OVERWRITE if self.overwrite else Mode.NEW

    def settings(self, task: str, default_folder: str, **task_settings: Any) -> RunSettings:
        """Where and how the run layer runs this config; without --out, the next version folder.
        task_settings: RunSettings fields the task decides itself (a computed default)."""
        out = Path(self.out) if self.out else next_version(Path("runs") / task / default_folder)
        command = f"python -m tasks.{task} --out {shlex.quote(str(out))} --resume"
        resumable = frozenset(f.name for f in dataclasses.fields(self) if f.metadata.get("resumable"))
        settings = dict(out=out, mode=self.folder_mode(), backend=self.backend,
                        device=parse_enum(Device, self.device, "device"), resumable=resumable,
                        eval_every=self.eval_every, checkpoint_every=self.checkpoint_every, patience=self.patience,
                        divergence=self.divergence, log_every=self.log_every, span=self.span, progress=self.progress,
                        tensorboard=self.tensorboard, resume_command=command)
        return RunSettings(**{**settings, **task_settings})

    @classmethod
    def resume_from(cls, out: str | os.PathLike, **changes: Any) -> "TaskConfig":
        """The configuration of the run in `out`, set to continue it: what `--out OUT --resume`
        gives on the command line, for Python callers, e.g. run(CharLMConfig.resume_from(OUT,
        epochs=800)). `changes` may set the fields a resume can change (epochs, patience, the
        output flags, the device, a moved data folder); the run layer refuses any other change
        in one sentence, as it refuses a Python call that spells the whole configuration out
        with one field different."""
        saved = read_run_config(Path(out))
        return cls(**_with_changes(cls, saved, {**changes, "out": str(out), "resume": True}))


def default_backend(find: Callable[[str], Any] = importlib.util.find_spec) -> str:
    """The backend of every task that is not given --backend: $SEQCORE_BACKEND (as KERAS_BACKEND),
    else the framework that is installed when only one is, else mxnet. Looked up with find_spec,
    which imports nothing (`find` stands in for it in tests)."""
    chosen = os.environ.get(BACKEND_ENV, "").strip()
    if chosen:
        if chosen not in BACKENDS:
            raise ConfigError(f"{BACKEND_ENV} must be one of {', '.join(BACKENDS)}, got {chosen!r}.")
        return chosen
    installed = [name for name in BACKENDS if find(name)]
    return installed[0] if len(installed) == 1 else "mxnet"


def check_plot_backend() -> None:
    """Every figure is a PNG drawn with Agg, but `import matplotlib` itself fails on an MPLBACKEND it
    does not know, which would stop a run at its first plot, after an epoch of training: refused here."""
    value = os.environ.get("MPLBACKEND", "")
    if not value:
        return
    try:
        from matplotlib import rcsetup

        rcsetup.validate_backend(value)
    except ValueError:
        raise ConfigError(f"MPLBACKEND={value!r} is not a matplotlib backend, and matplotlib does not load "
                          f"with it; seqcore draws its figures as PNG files with Agg whatever it names: unset "
                          f"MPLBACKEND or set it to agg.") from None


PARSE_ONLY_ENV = "SEQCORE_PARSE_ONLY"  # 1: parse_config prints the config as one JSON line and exits 0


def parse_config(config_class: type, task: str, argv: Optional[Sequence[str]], doc: str,
                 defaults: Mapping[str, str] | None = None) -> Any:
    """The config a command line describes: defaults < --config FILE or the resumed run < flags.
    A resume starts from the run's config.json; the run layer then checks the result against the
    run's checkpoint (seqcore.run.resume), as it checks a Python caller's."""
    parser = build_parser(config_class, f"python -m tasks.{task}", doc, defaults)
    given = vars(parser.parse_args(argv))
    base: dict[str, Any] = {}
    if "config" in given and given.get("resume"):
        raise ConfigError("--config and --resume exclude each other: --config starts a new run from a saved "
                          "configuration, --resume continues the run in --out with its own.")
    if "config" in given:
        saved = read_run_config(Path(given.pop("config")), flag="--config")
        if saved["task"] != task:
            raise SeqcoreError(f"--config holds a {saved['task']} configuration, not a {task} one.")
        base = {k: v for k, v in saved["config"].items() if k != "out"}  # a rerun gets its own folder
    if given.get("resume") and given.get("out"):
        saved = read_run_config(Path(given["out"]))
        if saved["task"] != task:
            raise SeqcoreError(f"{given['out']} holds a {saved['task']} run, not a {task} run; resume it "
                               f"with python -m tasks.{saved['task']}.")
        base = saved["config"]
    config = config_class(**_with_changes(config_class, {"task": task, "config": base}, given))
    if os.environ.get(PARSE_ONLY_ENV) == "1":  # tasks.launch's dry parse of its workers' command line
        print(json.dumps({"task": task, "config": config.saved()}, default=str))
        raise SystemExit(0)
    return config


def _with_changes(config_class: type, saved: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A saved configuration (config.json's record) with `changes` applied, as config_class fields."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    renamed = config_class.RENAMED
    for old, new in renamed.items():
        if old in saved["config"] and new in saved["config"]:
            raise SeqcoreError(f"The saved configuration holds {old} and {new}, the old and the new name of one "
                               f"field; keep {new} only.")
    saved = {**saved, "config": {renamed.get(name, name): value for name, value in saved["config"].items()}}
    unknown = sorted(set(saved["config"]) - set(fields))
    if unknown:
        raise SeqcoreError(f"The saved configuration has fields this task does not know: {', '.join(unknown)}.")
    # A saved config without a field whose default changed since ran at the old value (option(legacy=)).
    legacy = {name: f.metadata["legacy"] for name, f in fields.items() if f.metadata.get("legacy") is not None}
    base = {**legacy, **saved["config"]} if saved["config"] else {}
    values = config_class.layer_preset({**base, **changes})
    for name, value in values.items():
        if name in fields and isinstance(fields[name].default, tuple) and isinstance(value, list):
            values[name] = tuple(value)
    return values


def exit_code(main: Callable[[Optional[Sequence[str]]], int], argv: Optional[Sequence[str]] = None) -> int:
    """`main(argv)`'s exit status, as run_main gives it, without exiting (tests call a command
    in-process with it): 0 on success, 2 with one sentence on bad input, 128 + the signal's number
    when a signal stopped training (after its checkpoint), 130 on an interrupt at once; --help and
    --version give argparse's 0."""
    try:
        tie_to_launcher()  # a torchrun worker dies with torchrun (seqcore.run.processes)
        return main(argv)
    except RunInterrupted as stop:
        print(f"stopped: {stop}", file=sys.stderr)
        return stop.exit_code
    except SeqcoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted at once; what was already written is kept.", file=sys.stderr)
        return 130
    except SystemExit as stop:  # argparse's --help and --version
        return stop.code if isinstance(stop.code, int) else 0


def run_main(main: Callable[[Optional[Sequence[str]]], int], argv: Optional[Sequence[str]] = None) -> None:
    """Run a command's `main` and exit with exit_code's status; stdout and stderr survive a reader
    that goes away."""
    protect_output()
    sys.exit(exit_code(main, argv))


def write_result(text: str) -> None:
    """Print a command's result where it is the whole output (--json) and refuse to end as if it
    had been delivered when it was lost: a full disk or a closed pipe (run_main's streams drop such
    writes instead of failing, so that a closed pipe never stops a training run)."""
    try:
        print(text, flush=True)
    except OSError as error:
        raise SeqcoreError(f"The result could not be written to standard output ({error.strerror or error}).") from None
    if getattr(sys.stdout, "closed_by_reader", False):
        raise SeqcoreError("The result could not be written to standard output (the disk is full or the "
                           "reader has gone), so it is lost; run the command again with its output going "
                           "somewhere that takes it.")
