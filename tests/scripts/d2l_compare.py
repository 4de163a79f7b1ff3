"""The book's configuration trained two ways, to the end: the d2l package's own code (its
initialisation, sampler and seeds) and seqcore's preset (`tasks.char_lm --preset`), each final
perplexity printed side by side. For a quiet machine: the full book runs take hours.

Usage: SEQCORE_D2L_ENV=DIR python tests/scripts/d2l_compare.py --edition 0.17 --framework mxnet \\
           [--cells rnn gru lstm] [--impls scratch concise] [--seeds 0 1 2] [--epochs N] [--out DIR]
  --epochs: fewer epochs than the book's (0.17: 500; 1.0: 100 for the RNN, 50 otherwise), for a try
  Writes DIR/results.json and prints one line per cell, impl and seed: the book's and seqcore's last-
  epoch training perplexity and (seqcore always, the book in 1.0) validation perplexity.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.d2l_env import EDITIONS, run_book  # noqa: E402  (the repository root on the path first)


def seqcore_run(edition: str, framework: str, case: str, seed: int, epochs: int | None, out: Path) -> dict:
    cell, impl = case.split("-")
    argv = [sys.executable, "-m", "tasks.char_lm", "--preset", f"d2l-{edition}", "--backend", framework,
            "--cell", cell, "--impl", impl, "--seed", str(seed), "--out", str(out), "--no-progress"]
    if epochs:
        argv += ["--epochs", str(epochs)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(argv, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    summary = next(r for r in records if r["kind"] == "summary")
    return {"train_ppl": summary["train_ppl"], "val_ppl": summary["val_ppl"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edition", choices=sorted(EDITIONS), required=True)
    parser.add_argument("--framework", choices=("mxnet", "torch"), required=True)
    parser.add_argument("--cells", nargs="+", default=["rnn", "gru", "lstm"])
    parser.add_argument("--impls", nargs="+", default=["scratch", "concise"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="fewer epochs than the book's, for a try")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="d2l-compare-"))
    out.mkdir(parents=True, exist_ok=True)
    cases = [f"{cell}-{impl}" for cell in args.cells for impl in args.impls]
    book_out = run_book(args.edition, args.framework, {"task": "book", "cases": cases, "seeds": args.seeds,
                                                       "epochs": args.epochs}, out, timeout=None)
    book = {(r["case"], r["seed"]): r for r in json.loads((book_out / "book.json").read_text())}
    results = []
    for case in cases:
        for seed in args.seeds:
            ours = seqcore_run(args.edition, args.framework, case, seed, args.epochs, out / f"seqcore-{case}-{seed}")
            results.append({"case": case, "seed": seed, "book": book[(case, seed)], "seqcore": ours})
            theirs = book[(case, seed)]
            val = "" if theirs["val_ppl"] is None else f"{theirs['val_ppl']:.4f}"
            print(f"d2l {args.edition} {args.framework} {case:14s} seed {seed}: train ppl book {theirs['train_ppl']:.4f} "
                  f"seqcore {ours['train_ppl']:.4f}; val ppl book {val or '-'} seqcore {ours['val_ppl']:.4f}",
                  flush=True)
    (out / "results.json").write_text(json.dumps({"edition": args.edition, "framework": args.framework,
                                                  "epochs": args.epochs, "results": results}, indent=1))
    print(f"written to {out / 'results.json'}")


if __name__ == "__main__":
    main()
