"""tasks.convert imports and tasks.evaluate measurements in one process (one framework): the
seqcore side of tests/test_d2l.py's import tests.

Usage: python tests/scripts/import_models.py JOBS.json OUT.json
  JOBS.json: {"convert": [argument lists of tasks.convert], "evaluate": [checkpoint paths], "backend": NAME}
  OUT.json: {checkpoint: the evaluation's summary} for every checkpoint evaluated
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from seqcore.jobs.evaluate import evaluate_checkpoint
from tasks import convert


def main() -> None:
    jobs = json.loads(Path(sys.argv[1]).read_text())
    for argv in jobs.get("convert", []):
        assert convert.main(argv) == 0, argv
    found = {path: evaluate_checkpoint(checkpoint=path, backend=jobs["backend"], prefixes=("t",), num_preds=1)
             for path in jobs.get("evaluate", [])}
    Path(sys.argv[2]).write_text(json.dumps(found))


if __name__ == "__main__":
    main()
