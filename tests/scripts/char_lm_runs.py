"""Several tasks.char_lm runs in one process (one framework), each through the command line's own
entry point: the seqcore side of tests/test_d2l.py, which starts a framework once, not per run.

Usage: python tests/scripts/char_lm_runs.py RUNS.json    (a JSON list of argument lists)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from tasks import char_lm


def main() -> None:
    for argv in json.loads(Path(sys.argv[1]).read_text()):
        assert char_lm.main(argv) == 0, argv


if __name__ == "__main__":
    main()
