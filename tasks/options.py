"""The option machinery every command shares: a frozen dataclass whose fields are the flags.

`option()` declares a field and its flag; the field's annotation is its type. `check_fields`
checks every field strictly when the dataclass is made (`Options.__post_init__`): whole numbers
for int fields (no bools, NumPy integers stored as int), finite numbers for float fields, text
for str fields, true or false for flags, a tuple or list for tuple fields (never one bare
string), each choice and range, in one sentence naming the flag (ConfigError). `build_parser`
derives the command line from the same fields, and `parse_options` reads a tool's flags into
its dataclass. The tasks' configs (tasks/cli.py TaskConfig) and the tools' options share it.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import re
import sys
import typing
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from seqcore import checks
from seqcore.errors import ConfigError, SeqcoreError

CHECKS = {  # option(check=...): what a number must be, and the sentence's words for it
    "positive": (lambda v: v > 0, "a positive number"),
    "non_negative": (lambda v: v >= 0, "zero or more"),
    "fraction": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "proper_fraction": (lambda v: 0 < v < 1, "a number in (0, 1)"),
    "probability": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
}
MANY = ("repeat", "comma", "list")  # a tuple field on the command line: --prefix A --prefix B, --cells a,b, --from A B


def option(default: Any, help: str, *, group: str = "training", choices: Sequence[str] | None = None,
           check: str | None = None, kind: type | None = None, saved: bool = True, resumable: bool = False,
           shown: str | None = None, default_from: Callable[[], Any] | None = None, required: bool = False,
           flag: str | None = None, aliases: Sequence[str] = (), many: str = "repeat",
           metavar: str | None = None, command_line: bool = True, legacy: Any = None,
           deprecated: Sequence[str] = ()) -> Any:
    """A config field and its flag; the field's annotation is its type (int, float, str, bool, or
    tuple[X, ...] for a list), checked strictly when the config is made.

    default None: the value is decided elsewhere (a preset, the mode, the checkpoint, default_from);
    shown: the help's words for such a default; default_from: computes it when the field is left at
    None ($SEQCORE_BACKEND); required: the flag must be given. check: a key of CHECKS (a range; for a
    list, of each item); choices: the allowed values (of each item). kind: the value type as the
    annotation says it (optional, checked against it). saved=False: not part of the run's config
    (--resume, --overwrite); resumable: may differ when a run is resumed (--epochs). flag: the flag's
    name when it is not the field's (--from for `runs`); aliases: short forms (-n); many: how a list is
    given (MANY); command_line=False: set by the command itself, not a flag (the words after --);
    legacy: the value a saved config without the field ran at, where that is not today's default;
    deprecated: old spellings of the flag that still work and warn (--seq-len for --num-steps)."""
    if check is not None and check not in CHECKS:
        raise ValueError(f"unknown check {check!r}")
    if many not in MANY:
        raise ValueError(f"unknown list form {many!r}")
    return dataclasses.field(default=default, metadata={
        "help": help, "group": group, "choices": None if choices is None else tuple(choices), "check": check,
        "kind": kind, "saved": saved, "resumable": resumable, "shown": shown, "default_from": default_from,
        "required": required, "flag": flag, "aliases": tuple(aliases), "many": many, "metavar": metavar,
        "command_line": command_line, "legacy": legacy, "deprecated": tuple(deprecated)})


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def flag_of(field: dataclasses.Field) -> str:
    """The flag that sets `field`, as sentences name it (--prefix for `prefixes`)."""
    meta = field.metadata
    if meta.get("flag"):
        return meta["flag"]
    if isinstance(field.default, tuple) and meta.get("many", "repeat") == "repeat":
        return flag(_singular(field.name))
    if field.default is True:
        return f"{field.name} (--no-{field.name.replace('_', '-')})"
    return flag(field.name)


@functools.lru_cache(maxsize=None)
def field_types(config_class: type) -> dict[str, tuple[type, Optional[type]]]:
    """{field: (type, item type of a list or None)} from the annotations: Optional[int] -> int,
    tuple[str, ...] (or a bare tuple) -> (tuple, str)."""
    hints = typing.get_type_hints(config_class)
    found = {}
    for field in dataclasses.fields(config_class):
        hint = hints[field.name]
        if typing.get_origin(hint) is typing.Union:
            hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
        if hint is tuple or typing.get_origin(hint) is tuple:
            kind, item = tuple, (typing.get_args(hint) or (str,))[0]
        else:
            kind, item = hint, None
        if kind not in (int, float, str, bool, tuple) or item not in (None, int, float, str):
            raise TypeError(f"{config_class.__name__}.{field.name}: options are int, float, str, bool or "
                            f"tuple[int | float | str, ...], not {hints[field.name]}")
        declared = field.metadata.get("kind")
        if declared is not None and declared is not kind:
            raise TypeError(f"{config_class.__name__}.{field.name}: kind={declared.__name__} disagrees with "
                            f"the annotation {hints[field.name]}")
        found[field.name] = (kind, item)
    return found


VALUE_CHECKS = {int: checks.whole_number, float: checks.real_number, str: checks.text, bool: checks.true_or_false}


def check_fields(config: Any) -> None:
    """Every field against its declared type, choices and range, in sentences that name the flag;
    each value is stored as the plain Python value it was checked as (np.int64(16) -> 16, a list ->
    a tuple, Cell.RNN -> 'rnn'). None passes only where the default is None (decided elsewhere)."""
    types = field_types(type(config))
    for field in dataclasses.fields(config):
        value, meta, name = getattr(config, field.name), field.metadata, flag_of(field)
        if value is None and meta.get("default_from") is not None:
            value = meta["default_from"]()
        if value is None:
            if meta.get("required"):
                raise ConfigError(f"{name} is required.")
            if field.default is None:
                continue
        kind, item = types[field.name]
        if kind is tuple:
            each = "each" if meta.get("many", "repeat") == "repeat" else "each of"
            given = checks.listed(value, name, allow_empty=field.default == ())  # () by default: may stay empty
            value = tuple(_checked(part, item, meta, f"{each} {name}") for part in given)
        else:
            value = _checked(value, kind, meta, name)
        object.__setattr__(config, field.name, value)


def _checked(value: Any, kind: type, meta: Mapping[str, Any], name: str) -> Any:
    """One value: its choices (the sentence lists them, whatever the value's type), else its type
    and range."""
    allowed = meta.get("choices")
    if allowed is not None:
        plain = value.value if isinstance(value, Enum) else value
        if not isinstance(plain, str) or plain not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {plain!r}.")
        return str(plain)
    value = VALUE_CHECKS[kind](value, name)
    check = meta.get("check")
    if check is not None:
        valid, wanted = CHECKS[check]
        if not (math.isfinite(value) and valid(value)):
            raise ConfigError(f"{name} must be {wanted}, got {value!r}.")
    elif kind is float and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}.")
    return value


@dataclasses.dataclass(frozen=True)
class Options:
    """A command's options: a frozen dataclass whose fields are its flags (option()), checked at
    construction, so a command line, a config file, a resumed run's saved config and a Python
    call meet the same checks and the same sentences (ConfigError). Subclasses add the checks
    that span several fields to __post_init__, after this one's."""

    def __post_init__(self) -> None:
        check_fields(self)


# -- the options the commands share, each defined once --------------------------------------------

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


class Parser(argparse.ArgumentParser):
    """argparse whose errors are the usage line and one sentence, exit 2 (no help dump)."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        raise SeqcoreError(f"{self.prog}: {message}.")


def build_parser(config_class: type, prog: str, doc: str, defaults: Mapping[str, str] | None = None,
                 config_file: bool = True) -> argparse.ArgumentParser:
    """Flags for every field of `config_class` (Options); defaults: help text for defaults set
    elsewhere (as option(shown=...)); config_file: a task's --config FILE."""
    parser = Parser(prog=prog, description=doc.split("\n\n")[0], argument_default=argparse.SUPPRESS,
                    formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_epilog(doc))
    add_version(parser)
    if config_file:
        parser.add_argument("--config", metavar="FILE", help="rerun the configuration in a run's config.json "
                            "(the flags given override it)")
    types = field_types(config_class)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for field in dataclasses.fields(config_class):
        meta = field.metadata
        if not meta.get("command_line", True):
            continue
        group = groups.setdefault(meta["group"], parser.add_argument_group(meta["group"]))
        _add_flag(group, field, *types[field.name], (defaults or {}).get(field.name, meta.get("shown")))
    return parser


def _add_flag(group: argparse._ArgumentGroup, field: dataclasses.Field, kind: type, item: Optional[type],
              shown: Optional[str]) -> None:
    meta = field.metadata
    help_text = meta["help"].replace("%", "%%")  # argparse %-formats help: "cosine (to 1%)" would crash --help
    names = [meta.get("flag") or flag(field.name), *meta.get("aliases", ())]
    if meta.get("deprecated"):  # the old spellings: same value, one warning (a scalar option only)
        group.add_argument(*meta["deprecated"], dest=field.name, action=_Deprecated, new=names[0],
                           type=_parse(kind), choices=meta.get("choices"), help=argparse.SUPPRESS)
    if kind is bool:
        if field.default is True:
            group.add_argument(f"--no-{field.name.replace('_', '-')}", dest=field.name, action="store_false",
                               help=help_text)
        else:
            group.add_argument(*names, dest=field.name, action="store_true", help=help_text)
        return
    if shown is None and field.default is not None:
        shown = ", ".join(map(str, field.default)) if kind is tuple else str(field.default)
    described = f"{help_text} (default: {shown})".lstrip() if shown else help_text
    common = dict(dest=field.name, required=meta.get("required", False), help=described)
    if kind is tuple:
        many, metavar = meta.get("many", "repeat"), meta.get("metavar") or item.__name__.upper()
        if many == "repeat":  # the flag is the singular: --prefix for `prefixes`
            group.add_argument(meta.get("flag") or flag(_singular(field.name)), *meta.get("aliases", ()),
                               action="append", type=_parse(item), metavar=metavar,
                               **{**common, "help": described.replace(" (default:", "; repeatable (default:", 1)})
        elif many == "comma":
            group.add_argument(*names, type=_comma_list(item), metavar=metavar, **common)
        else:
            group.add_argument(*names, nargs="+", type=_parse(item), metavar=metavar, **common)
        return
    group.add_argument(*names, type=_parse(kind), choices=meta.get("choices"),
                       metavar=None if meta.get("choices") else meta.get("metavar") or kind.__name__.upper(), **common)


class _Deprecated(argparse.Action):
    """An old spelling of a flag: stores the value as the new flag would and says, once on stderr,
    what to write instead (the scripts that use it keep working)."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        print(f"warning: {option_string} is deprecated; use {self.new} (it means the same).", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _parse(kind: type) -> Callable[[str], Any]:
    """argparse's type for a value of `kind`: int('1.5') fails there as 'invalid int value'."""
    return kind if kind in (int, float) else str


def _comma_list(item: type) -> Callable[[str], tuple]:
    def parse(text: str) -> tuple:
        parts = [part.strip() for part in text.split(",") if part.strip()]
        try:
            return tuple(_parse(item)(part) for part in parts)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid comma-separated {item.__name__} list: {text!r}") from None
    return parse


def parse_options(options_class: type, prog: str, argv: Optional[Sequence[str]], doc: str,
                  defaults: Mapping[str, str] | None = None, **fixed: Any) -> Any:
    """A tool's options from its command line (no --config, no resume): flags over the field
    defaults; fixed: fields the command sets itself (command_line=False: the words after --)."""
    parser = build_parser(options_class, prog, doc, defaults, config_file=False)
    return options_class(**vars(parser.parse_args(argv)), **fixed)


def split_at_dashes(argv: Optional[Sequence[str]]) -> tuple[list[str], list[str]]:
    """(the command's own arguments, the words after the first `--`, passed on untouched)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        return argv, []
    index = argv.index("--")
    return argv[:index], argv[index + 1:]


def _singular(name: str) -> str:
    """The flag of a repeatable field: prefixes -> prefix, texts -> text."""
    if name.endswith(("xes", "ses", "ches", "shes")):
        return name[:-2]
    return name[:-1] if name.endswith("s") else name


def _epilog(doc: str) -> str:
    return "\n\n".join(doc.split("\n\n")[1:])
