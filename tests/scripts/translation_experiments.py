"""The experiments of issues 19 and 20's Done-when lists, run through tasks.translate, and their tables.

Usage (from the repository root, on a quiet machine):
    python tests/scripts/translation_experiments.py --out runs/translation_experiments
    python tests/scripts/translation_experiments.py --out /tmp/smoke --epochs 1      # every run, 1 epoch
    python tests/scripts/translation_experiments.py --out runs/translation_experiments --tables   # print only

1. --preset d2l-1.0, seeds 0, 1 and 2, both backends, without attention and with additive
   attention (12 runs, minutes each): book_bleu per seed and its mean (done when >= 0.6 on each
   backend), the final training loss of each backend and their relative gap (done when <= 1%, or the
   step where the two trajectories separate beyond 1e-4 shows chaos), held-out BLEU and chrF.
2. --preset large (20,000 pairs of fra.txt), none / additive / dot attention, both backends, greedy
   and --beam 4 (6 runs, about half an hour each on 2 CPU cores): corpus BLEU and chrF, BLEU by
   source length, above and below the median length (done when attention beats none above the
   median on both backends, or the table shows by how much it missed).
3. --preset long: the same on 20,000 pairs spread over the whole file (--pick spread), 16 tokens:
   large's first 20,000 pairs hold 1 to 6 words, too short for the long-sentence question.

Each configuration's two backends train at once (one process and one thread each: the 2 cores);
a finished run is kept, an interrupted one resumed (`--resume`), so the command can be run again
after a stop. Writes results.json and results.md to --out.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ("mxnet", "torch")
SEEDS = (0, 1, 2)
BOOK_ATTENTIONS = ("none", "additive")
LARGE_ATTENTIONS = ("none", "additive", "dot")
LENGTH_GROUPS = ("large", "long")  # the presets of the BLEU-by-length experiment
BEAM = 4
SHARED_CORPUS = ROOT.parent / "shared" / "data" / "fra-eng" / "fra.txt"
SEPARATION = 1e-4  # relative: where two backends' per-step losses are said to separate


def runs(corpus: str, epochs: int | None) -> list[dict[str, Any]]:
    """Every run: its name, group, backend and flags."""
    planned = []
    extra = ["--epochs", str(epochs)] if epochs else []
    for attention in BOOK_ATTENTIONS:
        for seed in SEEDS:
            for backend in BACKENDS:
                planned.append({"group": "d2l-1.0", "attention": attention, "seed": seed, "backend": backend,
                                "name": f"d2l-1.0/{attention}-seed{seed}-{backend}",
                                "args": ["--preset", "d2l-1.0", "--attention", attention, "--seed", str(seed),
                                         "--log-every", "1", *extra]})
    for group in LENGTH_GROUPS:
        for attention in LARGE_ATTENTIONS:
            for backend in BACKENDS:
                planned.append({"group": group, "attention": attention, "seed": 0, "backend": backend,
                                "name": f"{group}/{attention}-{backend}",
                                "args": ["--preset", group, "--corpus", corpus, "--attention", attention,
                                         "--beam", str(BEAM), "--log-every", "10", *extra]})
    return planned


def records(folder: Path) -> list[dict[str, Any]]:
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            break  # a torn last line of a killed run
    return found


def finished(folder: Path) -> bool:
    return any(r.get("kind") == "summary" for r in records(folder))


def train(out: Path, planned: list[dict[str, Any]]) -> None:
    """Both backends of a configuration at once; finished runs kept, interrupted ones resumed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    pairs = [planned[i:i + len(BACKENDS)] for i in range(0, len(planned), len(BACKENDS))]
    for group in pairs:
        started, processes = time.perf_counter(), []
        for run in group:
            folder = out / run["name"]
            if finished(folder):
                continue
            folder.parent.mkdir(parents=True, exist_ok=True)
            args = (["--out", str(folder), "--resume"] if (folder / "config.json").is_file() else
                    ["--backend", run["backend"], *run["args"], "--out", str(folder)])
            log = open(folder.parent / f"{folder.name}.log", "a", encoding="utf-8")
            processes.append((run, subprocess.Popen([sys.executable, "-m", "tasks.translate", *args, "--no-progress"],
                                                    cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log))
        try:
            codes = [process.wait() for _, process, _ in processes]
        except BaseException:  # Ctrl-C or SIGTERM: the runs stop with us (each checkpoints on SIGTERM)
            for _, process, _ in processes:
                process.terminate()
            for _, process, _ in processes:
                process.wait()
            raise
        for (run, process, log), code in zip(processes, codes):
            log.close()
            print(f"{run['name']}: exit {code}" + ("" if code == 0 else f" (see {out / run['name']}.log)"), flush=True)
        if processes:
            print(f"  {time.perf_counter() - started:.0f} s", flush=True)


def summary(out: Path, run: dict[str, Any]) -> dict[str, Any] | None:
    found = [r for r in records(out / run["name"]) if r.get("kind") == "summary"]
    return found[-1] if found else None


def steps(out: Path, run: dict[str, Any]) -> list[float]:
    return [r["loss"] for r in records(out / run["name"]) if r.get("kind") == "step"]


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b)) if max(abs(a), abs(b)) else 0.0


def fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def book_tables(out: Path, planned: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    lines, verdicts = [], {}
    for attention in BOOK_ATTENTIONS:
        chosen = [r for r in planned if r["group"] == "d2l-1.0" and r["attention"] == attention]
        if not chosen:  # --only large
            continue
        lines += [f"### d2l-1.0, attention {attention}", "",
                  "| seed | book_bleu mxnet | book_bleu torch | train loss mxnet | train loss torch | relative gap | "
                  "steps apart beyond 1e-4 from | BLEU mxnet / torch | chrF mxnet / torch |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        bleus = {b: [] for b in BACKENDS}
        gaps = []
        for seed in SEEDS:
            pair = {r["backend"]: r for r in chosen if r["seed"] == seed}
            found = {b: summary(out, pair[b]) for b in BACKENDS}
            if None in found.values():
                lines.append(f"| {seed} | not finished | | | | | | | |")
                continue
            for backend in BACKENDS:
                bleus[backend].append(found[backend]["book_bleu"])
            gap = relative(found["mxnet"]["train_loss"], found["torch"]["train_loss"])
            gaps.append(gap)
            losses = [steps(out, pair[b]) for b in BACKENDS]
            apart = next((k + 1 for k, (a, b) in enumerate(zip(*losses)) if relative(a, b) > SEPARATION), None)
            lines.append(f"| {seed} | {fmt(found['mxnet']['book_bleu'])} | {fmt(found['torch']['book_bleu'])} | "
                         f"{fmt(found['mxnet']['train_loss'], 4)} | {fmt(found['torch']['train_loss'], 4)} | "
                         f"{100 * gap:.3f}% | {apart or f'never (of {min(map(len, losses))})'} | "
                         f"{fmt(found['mxnet']['bleu'], 2)} / {fmt(found['torch']['bleu'], 2)} | "
                         f"{fmt(found['mxnet']['chrf'], 2)} / {fmt(found['torch']['chrf'], 2)} |")
        means = {b: statistics.fmean(v) if v else None for b, v in bleus.items()}
        lines += [f"| mean | {fmt(means['mxnet'])} | {fmt(means['torch'])} | | | "
                  f"{100 * max(gaps):.3f}% (largest) |" if gaps else "| mean | - | - | | | |", ""]
        verdicts[f"d2l-1.0 {attention}"] = {
            "mean_book_bleu": means, "book_bleu_at_least_0.6": {b: m is not None and m >= 0.6 for b, m in means.items()},
            "largest_train_loss_gap": max(gaps) if gaps else None, "gap_within_1%": bool(gaps) and max(gaps) <= 0.01}
    return lines, verdicts


def large_tables(out: Path, planned: list[dict[str, Any]], group: str) -> tuple[list[str], dict[str, Any]]:
    chosen = [r for r in planned if r["group"] == group]
    if not chosen:
        return [], {}
    lines = [f"### {group}: held-out corpus BLEU and chrF (sacrebleu), greedy and beam 4", "",
             "| attention | backend | BLEU greedy | BLEU beam | chrF greedy | chrF beam | BLEU <= median | "
             "BLEU > median | BLEU > median, beam | by length (greedy) | train loss | tokens/s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    above: dict[tuple[str, str], Any] = {}
    for run in chosen:
        found = summary(out, run)
        if found is None:
            lines.append(f"| {run['attention']} | {run['backend']} | not finished | | | | | | | | | |")
            continue
        above[run["attention"], run["backend"]] = found.get("bleu_above_median")
        buckets = ", ".join(f"{b['lengths']}: {b['bleu']:.1f} ({b['count']})" for b in found.get("bleu_by_length", []))
        lines.append(f"| {run['attention']} | {run['backend']} | {fmt(found.get('bleu'), 2)} | "
                     f"{fmt(found.get('bleu_beam'), 2)} | {fmt(found.get('chrf'), 2)} | {fmt(found.get('chrf_beam'), 2)} | "
                     f"{fmt(found.get('bleu_below_median'), 2)} | {fmt(found.get('bleu_above_median'), 2)} | "
                     f"{fmt(found.get('bleu_above_median_beam'), 2)} | {buckets} | {fmt(found['train_loss'], 4)} | "
                     f"{found['tokens_per_s_last_epoch']:,.0f} |")
    bars = {f"{run['attention']} {run['backend']}": {b["lengths"]: b["bleu"] for b in summary(out, run)["bleu_by_length"]}
            for run in chosen if summary(out, run) is not None and summary(out, run).get("bleu_by_length")}
    if bars:  # seqcore's report figure (tasks.compare draws the same), greedy decoding
        from seqcore.report.translation import length_figure

        path = length_figure(out / f"bleu_by_length_{group}.png", bars,
                             f"--preset {group}: held-out BLEU by source length (greedy)")
        lines += ["", f"Figure: {path}"]
    verdicts = {}
    for attention in ("additive", "dot"):
        for backend in BACKENDS:
            mine, plain = above.get((attention, backend)), above.get(("none", backend))
            if mine is not None and plain is not None:
                verdicts[f"{group} {attention} > none above the median, {backend}"] = {
                    "attention": mine, "none": plain, "difference": mine - plain, "higher": mine > plain}
    return lines + [""], verdicts


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)  # a kill stops the runs too (train's except)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/translation_experiments")
    parser.add_argument("--corpus", default=str(SHARED_CORPUS) if SHARED_CORPUS.is_file() else "download",
                        help="fra.txt for the large preset (default: the shared copy, else the download)")
    parser.add_argument("--epochs", type=int, default=None, help="every run to this many epochs (a smoke test)")
    parser.add_argument("--only", choices=("d2l-1.0", *LENGTH_GROUPS), default=None)
    parser.add_argument("--tables", action="store_true", help="print the tables of what has finished; train nothing")
    args = parser.parse_args()
    out = Path(args.out)
    planned = [r for r in runs(args.corpus, args.epochs) if args.only in (None, r["group"])]
    if not args.tables:
        train(out, planned)
    book, book_verdicts = book_tables(out, planned)
    large, large_verdicts = [], {}
    for group in LENGTH_GROUPS:
        lines, verdicts = large_tables(out, planned, group)
        large, large_verdicts = large + lines, {**large_verdicts, **verdicts}
    text = "\n".join(["## Translation experiments", "", *book, *large, "### Verdicts", "",
                      "```", json.dumps({**book_verdicts, **large_verdicts}, indent=1), "```"])
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(text + "\n", encoding="utf-8")
    (out / "results.json").write_text(json.dumps({"verdicts": {**book_verdicts, **large_verdicts},
                                                  "runs": {r["name"]: summary(out, r) for r in planned}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
