"""Cross-framework comparison of the character language model: the same configuration, seed and
weights trained on each backend in its own process, then one table and one figure.

Usage: python -m tasks.compare --out runs/compare -- --cell lstm --impl concise --epochs 500
       python -m tasks.compare --out runs/compare --from runs/char_lm/mxnet-lstm-concise runs/char_lm/torch-lstm-concise

Everything after `--` is passed to `python -m tasks.char_lm` for every backend.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from seqcore.backend import BACKENDS
from seqcore.errors import SeqcoreError
from seqcore.reports import plot_curves, read_metrics, series

from .cli import run_main


def train_each(backends: Sequence[str], char_lm_args: Sequence[str], out: Path) -> list[Path]:
    """Run tasks.char_lm once per backend, one after the other (timings are not shared), each in
    its own process: MXNet and PyTorch never share one."""
    runs = []
    for name in backends:
        run_dir = out / name
        command = [sys.executable, "-m", "tasks.char_lm", *char_lm_args, "--backend", name, "--out", str(run_dir)]
        print("$", " ".join(command[1:]), flush=True)
        if subprocess.run(command).returncode != 0:
            raise SeqcoreError(f"The {name} run failed (its error is printed above).")
        runs.append(run_dir)
    return runs


def summarise(run_dirs: Sequence[Path]) -> list[dict[str, Any]]:
    rows = []
    for run_dir in run_dirs:
        path = Path(run_dir) / "metrics.jsonl"
        if not path.is_file():
            raise SeqcoreError(f"{run_dir} holds no metrics.jsonl: is it a tasks.char_lm output directory?")
        records = read_metrics(path)
        run = next((r for r in records if r.get("kind") == "run"), None)
        if run is None:
            raise SeqcoreError(f"{path} has no run line: it was not written by a seqcore task.")
        if run.get("task", "char_lm") != "char_lm":
            raise SeqcoreError(f"{run_dir} holds a {run['task']} run; tasks.compare compares char_lm runs.")
        summary = next((r for r in records if r["kind"] == "summary"), None)
        if summary is None:
            raise SeqcoreError(f"The run in {run_dir} did not finish (no summary line).")
        rows.append({"dir": str(run_dir), "backend": run["backend"], "device": run["device"],
                     "cell": run["model"]["cell"], "impl": run["model"]["impl"],
                     "epochs": summary["epochs"], "train_ppl": summary["train_ppl"], "val_ppl": summary["val_ppl"],
                     "tokens_per_s": summary["tokens_per_s_last_epoch"], "wall_s": summary["wall_s"],
                     "curve": series([r for r in records if r["kind"] == "epoch"], "epoch", "train_ppl"),
                     "machine": run["machine"]})
    return rows


def report(rows: list[dict[str, Any]], out: Path) -> str:
    lines = ["| backend | model | device | epochs | train ppl | val ppl | tokens/s (last epoch) | wall s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['impl']} {r['cell']} | {r['device']} | {r['epochs']} | "
                     f"{r['train_ppl']:.4f} | {r['val_ppl']:.4f} | {r['tokens_per_s']:,.0f} | {r['wall_s']:.1f} |")
    if len(rows) == 2:
        a, b = rows
        lines.append("")
        lines.append(f"train perplexity differs by {abs(a['train_ppl'] - b['train_ppl']) / min(a['train_ppl'], b['train_ppl']):.2%}; "
                     f"validation by {abs(a['val_ppl'] - b['val_ppl']) / min(a['val_ppl'], b['val_ppl']):.2%}; "
                     f"{b['backend']} / {a['backend']} tokens/s = {b['tokens_per_s'] / a['tokens_per_s']:.2f}")
    machine = rows[0]["machine"]
    lines.append(f"machine: {machine.get('platform')}, {machine.get('cpu_count')} CPUs, Python {machine.get('python')}")
    for r in rows:
        versions = {k: v for k, v in r["machine"].items() if k in ("mxnet", "torch", "numpy", "cuda", "device")}
        lines.append(f"{r['backend']}: {versions}")
    text = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.md").write_text(text + "\n")
    (out / "comparison.json").write_text(json.dumps([{k: v for k, v in r.items() if k != "curve"} for r in rows], indent=1))
    plot_curves(out / "comparison.png", {f"{r['backend']} {r['impl']} {r['cell']}": r["curve"] for r in rows},
                title="training perplexity, same weights and batches", xlabel="epoch", ylabel="perplexity", logy=True)
    return text


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    passed = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m tasks.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated (default: %(default)s)")
    parser.add_argument("--from", dest="runs", nargs="+", default=None, help="report on finished runs instead")
    parser.add_argument("--out", default="runs/compare", help="(default: %(default)s)")
    args = parser.parse_args(own)
    out = Path(args.out)
    if args.runs:
        run_dirs = [Path(r) for r in args.runs]
    else:
        backends = [b for b in args.backends.split(",") if b]
        unknown = sorted(set(backends) - set(BACKENDS))
        if unknown or not backends:
            raise SeqcoreError(f"Unknown backend(s) {unknown or backends}: choose from {', '.join(BACKENDS)}.")
        run_dirs = train_each(backends, passed, out)
    print(report(summarise(run_dirs), out))
    print(f"comparison.md, comparison.json and comparison.png written to {out}")
    return 0


if __name__ == "__main__":
    run_main(main)
