"""What every task's command line shares.

Each task has one frozen config dataclass; its flags, defaults, help and checks are derived
from the fields once, here (`--hidden-size` from `hidden_size`, `--no-progress` from
`progress=True`). `parse_config` layers, from lowest to highest: the field defaults, a
`--config FILE` (a run's config.json), the saved config of the folder being resumed, and the
flags given. Bad input ends in one sentence on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from seqcore.backend import BACKENDS, Device, Optimizer, no_compile
from seqcore.errors import SeqcoreError
from seqcore.model.spec import Cell, GRUReset, Impl, Init
from seqcore.run.config_file import read_run_config
from seqcore.run.folder import Mode, next_version
from seqcore.run.progress import protect_output
from seqcore.run.session import RunInterrupted, RunSettings
from seqcore.train.spec import Schedule


def choices(kind) -> list[str]:
    return [member.value for member in kind]


def option(default: Any, help: str, *, group: str = "training", choices: Sequence[str] | None = None,
           check: str | None = None, kind: type | None = None, saved: bool = True,
           resumable: bool = False, legacy: Any = None) -> Any:
    """A config field and its flag. check: 'positive', 'non_negative', 'fraction' (in (0, 1]) or
    'probability' (in [0, 1));
    kind: the value type when the default is None; saved=False: not part of the run's config
    (--resume, --overwrite); resumable: may differ when a run is resumed (--epochs); legacy: the
    value a saved config without the field ran at, when it is not today's default."""
    return dataclasses.field(default=default, metadata={
        "help": help, "group": group, "choices": choices, "check": check, "kind": kind,
        "saved": saved, "resumable": resumable, "legacy": legacy})


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """The fields every training task has: model, training and output."""

    backend: Optional[str] = option(None, "framework", group="model", choices=BACKENDS, kind=str)
    cell: str = option("rnn", "recurrent cell", group="model", choices=choices(Cell))
    impl: str = option("concise", "scratch: cell equations written out; concise: the framework's layer",
                       group="model", choices=choices(Impl))
    device: str = option("auto", "auto picks a usable GPU, else the CPU", group="model",
                         choices=choices(Device), resumable=True)
    hidden_size: Optional[int] = option(256, "hidden units per layer", group="model", check="positive", kind=int)
    num_layers: Optional[int] = option(1, "stacked recurrent layers", group="model", check="positive", kind=int)
    init: str = option("uniform", "initial weights, drawn once in NumPy", group="model", choices=choices(Init))
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
                                   check="positive", kind=int, resumable=True)
    lr: Optional[float] = option(1.0, "learning rate", check="positive", kind=float)
    optimizer: Optional[str] = option("sgd", "", choices=choices(Optimizer), kind=str)
    clip: Optional[float] = option(1.0, "clip gradients to this global norm; 0 turns it off",
                                   check="non_negative", kind=float)
    schedule: Optional[str] = option("constant", "learning rate over the run: constant, cosine (to 1%), step "
                                     "(x --lr-decay every --lr-decay-every epochs), plateau (x --lr-decay "
                                     "after an evaluation without a new best)", choices=choices(Schedule), kind=str)
    lr_decay: float = option(0.25, "factor of the step and plateau schedules", check="fraction")
    lr_decay_every: int = option(10, "epochs between the step schedule's decays", check="positive")
    patience: int = option(0, "stop after this many evaluations without a new best; 0: never",
                           check="non_negative", resumable=True)
    divergence: float = option(10.0, "stop when a loss exceeds this multiple of the first epoch's mean "
                               "loss; 0: only NaN/inf", check="non_negative", resumable=True)
    eval_every: Optional[int] = option(1, "epochs between evaluations", group="output", check="positive",
                                       kind=int, resumable=True)
    checkpoint_every: int = option(1, "epochs between checkpoints (also the last and every new best)",
                                   group="output", check="positive", resumable=True)
    log_every: int = option(0, "steps per training-loss line in metrics.jsonl; 0: none",
                            group="output", check="non_negative", resumable=True)
    span: int = option(0, "training steps the backend runs between two reads of their losses (one device "
                       "synchronisation per span; the numbers do not change); a signal stops at a span's end; "
                       "0: --log-every, else the whole epoch", group="output", check="non_negative",
                       resumable=True)
    out: Optional[str] = option(None, "output folder (default: the next runs/TASK/.../version_N)",
                                group="output", kind=str, resumable=True)
    resume: bool = option(False, "continue the run in --out", group="output", saved=False)
    overwrite: bool = option(False, "replace the run in --out (its files are removed first)",
                             group="output", saved=False)
    progress: bool = option(True, "no progress bar", group="output", resumable=True)
    tensorboard: bool = option(False, "also write TensorBoard event files (pip install tensorboardX)",
                               group="output", resumable=True)

    def __post_init__(self) -> None:
        if self.backend is None:
            object.__setattr__(self, "backend", default_backend())
        check_fields(self)
        self.check_gru_reset()
        self.check_compile()
        if self.resume and self.overwrite:
            raise SeqcoreError("--resume and --overwrite exclude each other: continue the run or replace it.")
        if self.resume and not self.out:
            raise SeqcoreError("--resume needs --out, the folder of the run to continue.")
        if self.tensorboard:
            try:
                import tensorboardX  # noqa: F401  (the optional extra)
            except ImportError:
                raise SeqcoreError("--tensorboard needs tensorboardX: pip install -e '.[tensorboard]'.") from None

    def check_compile(self) -> None:
        """--compile is torch.compile of the scratch time loop: PyTorch, scratch models only."""
        if self.compile and self.backend != "torch":
            raise SeqcoreError(no_compile(self.backend))
        if self.compile and self.impl != Impl.SCRATCH.value:
            raise SeqcoreError(f"--compile compiles the scratch recurrence, and --impl {self.impl} is the "
                               f"framework's fused layer already: drop --compile or use --impl scratch.")

    def check_gru_reset(self) -> None:
        """--gru-reset before exists for the scratch GRU only (the fused layers apply the gate after)."""
        if self.gru_reset == GRUReset.BEFORE.value and (self.cell != Cell.GRU.value or
                                                        self.impl != Impl.SCRATCH.value):
            raise SeqcoreError(f"--gru-reset before needs --cell gru --impl scratch (the frameworks' fused "
                               f"layers apply the reset gate after the hidden matmul), got --cell {self.cell} "
                               f"--impl {self.impl}.")

    def model_options(self, cell: Optional[str] = None) -> dict[str, Any]:
        """The ModelSpec fields of --bidirectional, --dropout and --gru-reset for `cell` (default
        --cell); --gru-reset reaches GRU models only (sine --cell all trains three cells)."""
        cell = cell or self.cell
        return {"bidirectional": self.bidirectional, "dropout": self.dropout,
                "gru_reset": self.gru_reset if cell == Cell.GRU.value else GRUReset.AFTER.value}

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
        settings = dict(out=out, mode=self.folder_mode(), eval_every=self.eval_every,
                        checkpoint_every=self.checkpoint_every, patience=self.patience,
                        divergence=self.divergence, log_every=self.log_every, span=self.span, progress=self.progress,
                        tensorboard=self.tensorboard, resume_command=command)
        return RunSettings(**{**settings, **task_settings})


BACKEND_ENV = "SEQCORE_BACKEND"
BACKEND_DEFAULT = f"${BACKEND_ENV}, else the one framework installed, else mxnet"


def default_backend(find: Callable[[str], Any] = importlib.util.find_spec) -> str:
    """The backend of every task that is not given --backend: $SEQCORE_BACKEND (as KERAS_BACKEND),
    else the framework that is installed when only one is, else mxnet. Looked up with find_spec,
    which imports nothing (`find` stands in for it in tests)."""
    chosen = os.environ.get(BACKEND_ENV, "").strip()
    if chosen:
        if chosen not in BACKENDS:
            raise SeqcoreError(f"{BACKEND_ENV} must be one of {', '.join(BACKENDS)}, got {chosen!r}.")
        return chosen
    installed = [name for name in BACKENDS if find(name)]
    return installed[0] if len(installed) == 1 else "mxnet"


def version_text() -> str:
    """`seqcore VERSION` and the installed framework versions, read from package metadata (no
    framework is imported, so it answers even where one is broken)."""
    from importlib import metadata

    def installed(*distributions: str) -> Optional[str]:
        for name in distributions:
            try:
                return metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
        return None

    own = installed("seqcore") or _pyproject_version()
    frameworks = {"mxnet": installed("mxnet", "mxnet-cu112", "mxnet-cu117"), "torch": installed("torch"),
                  "numpy": installed("numpy")}
    listed = ", ".join(f"{name} {found or 'not installed'}" for name, found in frameworks.items())
    return f"seqcore {own} ({listed})"


def _pyproject_version() -> str:
    """The version in the checkout's pyproject.toml (seqcore run from a source tree, not installed)."""
    try:
        text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        text = ""
    found = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
    if found:
        return found.group(1)
    from seqcore import __version__

    return __version__


def add_version(parser: argparse.ArgumentParser) -> None:
    """--version on a task's parser: prints version_text() and exits 0."""
    parser.add_argument("--version", action="version", version=version_text(),
                        help="print the seqcore and framework versions and exit")


def check_fields(config: Any) -> None:
    """Every field against its option's check and choices, in sentences that name the flag."""
    for field in dataclasses.fields(config):
        value, meta = getattr(config, field.name), field.metadata
        if value is None:
            continue
        name = flag(field.name)
        if meta.get("choices") is not None and value not in meta["choices"]:
            raise SeqcoreError(f"{name} must be one of {', '.join(meta['choices'])}, got {value!r}.")
        check = meta.get("check")
        if check is None:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or (check == "positive" and value <= 0) or (
                check == "non_negative" and value < 0) or (check == "fraction" and not 0 < value <= 1) or (
                check == "probability" and not 0 <= value < 1):
            wanted = {"positive": "a positive number", "non_negative": "zero or more",
                      "fraction": "a number in (0, 1]", "probability": "a number in [0, 1)"}[check]
            raise SeqcoreError(f"{name} must be {wanted}, got {value!r}.")
        if field.metadata.get("kind", type(field.default)) is int and not isinstance(value, int):
            raise SeqcoreError(f"{name} must be a whole number, got {value!r}.")


class Parser(argparse.ArgumentParser):
    """argparse whose errors are the usage line and one sentence, exit 2 (no help dump)."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        raise SeqcoreError(f"{self.prog}: {message}.")


def build_parser(config_class: type, prog: str, doc: str, defaults: Mapping[str, str] | None = None
                 ) -> argparse.ArgumentParser:
    """Flags for every field of `config_class`; defaults: help text for defaults set elsewhere."""
    parser = Parser(prog=prog, description=doc.split("\n\n")[0], argument_default=argparse.SUPPRESS,
                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_epilog(doc))
    add_version(parser)
    defaults = {"backend": BACKEND_DEFAULT, **(defaults or {})}
    parser.add_argument("--config", metavar="FILE", help="rerun the configuration in a run's config.json "
                        "(the flags given override it)")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for field in dataclasses.fields(config_class):
        meta = field.metadata
        group = groups.setdefault(meta["group"], parser.add_argument_group(meta["group"]))
        shown = (defaults or {}).get(field.name, field.default)
        # argparse %-formats help text: "cosine (to 1%)" would make --help crash
        meta = {**meta, "help": meta["help"].replace("%", "%%")}
        if isinstance(field.default, bool):
            if field.default:
                group.add_argument(f"--no-{field.name.replace('_', '-')}", dest=field.name,
                                   action="store_false", help=meta["help"])
            else:
                group.add_argument(flag(field.name), action="store_true", help=meta["help"])
            continue
        if isinstance(field.default, tuple):
            # the flag is the singular: --prefix for `prefixes`
            group.add_argument(flag(_singular(field.name)),
                               dest=field.name, action="append", metavar="TEXT",
                               help=f"{meta['help']}; repeatable (default: {', '.join(field.default)})")
            continue
        kind = meta.get("kind") or type(field.default)
        group.add_argument(flag(field.name), type=kind if kind in (int, float) else str,
                           choices=meta.get("choices"), metavar=None if meta.get("choices") else kind.__name__.upper(),
                           help=(f"{meta['help']} (default: {shown})" if shown is not None
                                 else meta["help"]).lstrip())
    return parser


def _singular(name: str) -> str:
    """The flag of a repeatable field: prefixes -> prefix, texts -> text."""
    if name.endswith(("xes", "ses", "ches", "shes")):
        return name[:-2]
    return name[:-1] if name.endswith("s") else name


def _epilog(doc: str) -> str:
    return "\n\n".join(doc.split("\n\n")[1:])


RESUME_HINT = "a resumed run keeps its configuration; start a new run (another --out) to change it"


def parse_config(config_class: type, task: str, argv: Optional[Sequence[str]], doc: str,
                 defaults: Mapping[str, str] | None = None) -> Any:
    """The config a command line describes: defaults < --config FILE < the resumed run < flags."""
    parser = build_parser(config_class, f"python -m tasks.{task}", doc, defaults)
    given = vars(parser.parse_args(argv))
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    base: dict[str, Any] = {}
    if "config" in given:
        saved = read_run_config(Path(given.pop("config")), flag="--config")
        if saved["task"] != task:
            raise SeqcoreError(f"--config holds a {saved['task']} configuration, not a {task} one.")
        base = {k: v for k, v in saved["config"].items() if k != "out"}  # a rerun gets its own folder
    legacy = {name: f.metadata["legacy"] for name, f in fields.items() if f.metadata.get("legacy") is not None}
    if base:  # a saved config without a field whose default changed since: it ran at the old value
        base = {**legacy, **base}
    if given.get("resume") and given.get("out"):
        saved = read_run_config(Path(given["out"]))
        if saved["task"] != task:
            raise SeqcoreError(f"{given['out']} holds a {saved['task']} run, not a {task} run; resume it "
                               f"with python -m tasks.{saved['task']}.")
        base = {**legacy, **saved["config"]}
        for name, value in given.items():
            meta = fields[name].metadata
            # A field the saved config lacks (a run from before the field existed) ran at its default.
            saved_value = base.get(name, fields[name].default)
            if meta["saved"] and not meta["resumable"] and _differs(value, saved_value):
                raise SeqcoreError(f"{flag(name)} {_show(value)} differs from the run in {given['out']} "
                                   f"({_show(saved_value)}); {RESUME_HINT}.")
    unknown = sorted(set(base) - set(fields))
    if unknown:
        raise SeqcoreError(f"The saved configuration has fields this task does not know: {', '.join(unknown)}.")
    values = config_class.layer_preset({**base, **given})
    for name, value in values.items():
        if isinstance(fields[name].default, tuple) and isinstance(value, list):
            values[name] = tuple(value)
    return config_class(**values)


def _differs(given: Any, saved: Any) -> bool:
    return (list(given) if isinstance(given, tuple) else given) != saved


def _show(value: Any) -> str:
    return ", ".join(value) if isinstance(value, (list, tuple)) else str(value)


def run_main(main: Callable[[Optional[Sequence[str]]], int], argv: Optional[Sequence[str]] = None) -> None:
    """Run a task's `main` and exit: 0 on success, 2 with one sentence on bad input, 128 + the
    signal's number when a signal stopped training (after its checkpoint)."""
    protect_output()
    try:
        code = main(argv)
    except RunInterrupted as stop:
        print(f"stopped: {stop}", file=sys.stderr)
        code = stop.exit_code
    except SeqcoreError as error:
        print(f"error: {error}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("error: interrupted at once; checkpoints already written are kept.", file=sys.stderr)
        code = 130
    sys.exit(code)
