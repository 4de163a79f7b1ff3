"""What every task's command line shares: the model flags, and the promise that bad input
ends in one sentence on stderr and exit status 2, never a traceback."""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Mapping, Optional, Sequence

from seqcore.backend import BACKENDS
from seqcore.errors import SeqcoreError
from seqcore.specs import Cell, Device, Impl, Init, Optimizer


def choices(kind) -> list[str]:
    return [member.value for member in kind]


def add_model_arguments(parser: argparse.ArgumentParser, *, cell: str, impl: str, hidden_size: int | None,
                        num_layers: int | None = 1, extra_cells: Sequence[str] = (),
                        notes: Mapping[str, str] | None = None) -> None:
    """The model flags. extra_cells: more --cell values a task accepts (sine's 'all');
    notes: help text by flag destination, for defaults that depend on another flag."""
    notes = notes or {}
    default = lambda dest: notes.get(dest, "(default: %(default)s)")
    group = parser.add_argument_group("model")
    group.add_argument("--backend", choices=BACKENDS, default="mxnet", help="framework (default: %(default)s)")
    group.add_argument("--cell", choices=[*choices(Cell), *extra_cells], default=cell,
                       help="recurrent cell (default: %(default)s)")
    group.add_argument("--impl", choices=choices(Impl), default=impl,
                       help="scratch: cell equations written out; concise: the framework's layer (default: %(default)s)")
    group.add_argument("--device", choices=choices(Device), default=Device.AUTO.value,
                       help="auto picks a usable GPU, else the CPU (default: %(default)s)")
    group.add_argument("--hidden-size", type=int, default=hidden_size, help=default("hidden_size"))
    group.add_argument("--num-layers", type=int, default=num_layers, help=default("num_layers"))
    group.add_argument("--init", choices=choices(Init), default=Init.UNIFORM.value,
                       help="initial weights, drawn once in NumPy (default: %(default)s)")
    group.add_argument("--seed", type=int, default=0, help="weights and batches (default: %(default)s)")


def add_training_arguments(parser: argparse.ArgumentParser, *, epochs: int, batch_size: int | None,
                           lr: float | None, optimizer: str, clip: float, with_batch_size: bool = True,
                           notes: Mapping[str, str] | None = None) -> argparse._ArgumentGroup:
    """The training flags; `notes` as in add_model_arguments. Returns the group for a task's own."""
    notes = notes or {}
    default = lambda dest: notes.get(dest, "(default: %(default)s)")
    group = parser.add_argument_group("training")
    group.add_argument("--epochs", type=int, default=epochs, help=default("epochs"))
    if with_batch_size:
        group.add_argument("--batch-size", type=int, default=batch_size, help=default("batch_size"))
    group.add_argument("--lr", type=float, default=lr, help="learning rate " + default("lr"))
    group.add_argument("--optimizer", choices=choices(Optimizer), default=optimizer, help="(default: %(default)s)")
    group.add_argument("--clip", type=float, default=clip,
                       help="clip gradients to this global norm; 0 turns it off (default: %(default)s)")
    group.add_argument("--no-progress", action="store_true", help="no progress bar")
    return group


def run_main(main: Callable[[Optional[Sequence[str]]], int], argv: Optional[Sequence[str]] = None) -> None:
    """Run a task's `main` and exit: 0 on success, 2 with one sentence on bad input."""
    try:
        code = main(argv)
    except SeqcoreError as error:
        print(f"error: {error}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("error: interrupted; the last checkpoint written is kept.", file=sys.stderr)
        code = 130
    sys.exit(code)
