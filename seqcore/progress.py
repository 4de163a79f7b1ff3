"""Progress for long runs: a tqdm bar with live figures on a terminal, plain lines elsewhere."""
from __future__ import annotations

import sys
from typing import Mapping

from tqdm.auto import tqdm


class Progress:
    """A bar over `total` steps; `update` moves it and shows the figures given (loss, tokens/s)."""

    def __init__(self, total: int, description: str, enabled: bool = True):
        # disable=None: the bar only draws on a terminal, so logs and CI stay readable.
        self.bar = tqdm(total=total, desc=description, unit="batch", dynamic_ncols=True,
                        disable=None if enabled else True, leave=True)

    def update(self, steps: int, figures: Mapping[str, float]) -> None:
        self.bar.set_postfix({k: _short(v) for k, v in figures.items()}, refresh=False)
        self.bar.update(steps)

    def log(self, line: str) -> None:
        """A line that stays above the bar (or is printed plainly when there is no bar)."""
        self.bar.write(line, file=sys.stdout)

    def close(self) -> None:
        self.bar.close()


def _short(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3f}"
