"""The comparison report from run records: summary first, then per task curves, text, confusion
matrices and waves, the equivalence section, speed, machine and commands. Writes report.html,
report.md, results.json, results.csv and figures/ into the report folder."""
from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from seqcore.report import records as cmp
from seqcore.report.equivalence import equivalence
from seqcore.report.figures import confusion_figure, overlay_figure
from seqcore.report.html import to_html, to_markdown
from seqcore.report.translation import section as translation_section

TASK_TITLES = {"char_lm": "Character language model (Time Machine)", "mnist_rows": "MNIST as 28 rows",
               "sine": "Sine waves", "hello": "'hello' -> 'ohlol'",
               "translate": "English-French translation (encoder-decoder)"}
CSV_COLUMNS = ("task", "backend", "cell", "impl", "seed", "device", "metric", "value", "status", "error", "wall_s",
               "throughput", "throughput_unit", "folder", "command")
LABELS = {"train_ppl": "training perplexity", "val_ppl": "validation perplexity", "test_accuracy": "test accuracy",
          "generation_mae": "generation MAE", "eval_mse": "evaluation MSE", "val_loss": "validation loss",
          "book_bleu": "book BLEU", "bleu": "held-out corpus BLEU"}


def fmt(value: Any, percent: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{100 * value:.2f}%" if percent else f"{value:#.4g}".rstrip(".")
    return str(value)


def _rate(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _versions(machine: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in machine.items())


def build(out: Path, records: Sequence[dict], backends: Sequence[str], *, command: str,
          crosscheck: Optional[Mapping[str, list]] = None, benchmark: Optional[list] = None,
          benchmark_png: Optional[Path] = None, notes: Sequence[str] = ()) -> dict[str, Path]:
    out = Path(out)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    done = [r for r in records if r["status"] == "done"]
    tasks = [t for t in cmp.HEADLINES if any(r["task"] == t for r in records)]
    blocks: list[tuple] = [("h1", "seqcore: MXNet vs PyTorch, the same runs side by side"),
                           ("p", f"Command: {command}"), *[("p", n) for n in notes]]
    section, statement = equivalence(done, backends, crosscheck or {})
    blocks += _summary(records, tasks, backends)
    blocks.append(("p", f"Equivalence measured in this report: {statement}"))
    for task in tasks:
        blocks += _task_section(task, [r for r in records if r["task"] == task], backends, figures)
    blocks += section
    blocks += _speed(benchmark, benchmark_png, figures)
    blocks += _provenance(records, command)
    paths = {"html": out / "report.html", "md": out / "report.md", "json": out / "results.json",
             "csv": out / "results.csv"}
    _write(paths["html"], to_html(blocks, "seqcore cross-framework report"))
    _write(paths["md"], to_markdown(blocks, out))
    _write(paths["json"], json.dumps([_public(r) for r in records], indent=1, default=str))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    _write(paths["csv"], buffer.getvalue())
    return paths


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _public(record: Mapping[str, Any]) -> dict:
    return {k: v for k, v in record.items() if k != "curves"}


# -- summary -------------------------------------------------------------------------------------

def _summary(records: Sequence[dict], tasks: Sequence[str], backends: Sequence[str]) -> list[tuple]:
    blocks: list[tuple] = [("h2", "Summary")]
    failed = [r for r in records if r["status"] != "done"]
    if failed:
        blocks.append(("p", f"{len(failed)} of {len(records)} runs failed; each is shown with its error, "
                            f"the others are reported as usual."))
    for task in tasks:
        rows_of_task = [r for r in records if r["task"] == task]
        head = cmp.headline(task, next((r["summary"] for r in rows_of_task if r["status"] == "done"), {}))
        better = "higher" if head.higher_is_better else "lower"
        header = ["model", *[f"{head.label} {b}" for b in backends], "backend diff",
                  *[f"wall s {b}" for b in backends], *[f"{head.throughput_unit} {b}" for b in backends]]
        if task == "char_lm":
            header += ["train ppl (ours)", f"published ({cmp.BOOK_HARDWARE})"]
        header.append("notes")
        rows = []
        for key, runs in sorted(cmp.group(rows_of_task, ("cell", "impl")).items(), key=lambda kv: cmp.model_order(kv[0])):
            rows.append(_summary_row(task, key, runs, backends, head))
        blocks += [("h3", f"{TASK_TITLES[task]}: {head.label} ({better} is better)"), ("table", header, rows)]
        if task == "mnist_rows":
            blocks.append(("p", f"Published, for orientation: {cmp.PUBLISHED_MNIST}."))
    return blocks


def _cell_value(runs: Sequence[dict], head: cmp.Headline) -> tuple[str, Optional[cmp.Spread]]:
    failed = [r for r in runs if r["status"] != "done"]
    stats = cmp.spread([r["value"] for r in runs if r["status"] == "done"])
    if stats is None:
        return (f"FAILED: {failed[0]['error']}" if failed else "-"), None
    text = fmt(stats.mean, head.percent)
    if stats.n > 1:
        text += f" ± {fmt(stats.std, head.percent)} ({stats.n} seeds)"
    if failed:
        text += f" ({len(failed)} failed)"
    return text, stats


def _summary_row(task: str, key: tuple, runs: Sequence[dict], backends: Sequence[str], head) -> list:
    by_backend = {b: [r for r in runs if r["backend"] == b] for b in backends}
    values, stats = [], {}
    for backend in backends:
        text, stat = _cell_value(by_backend[backend], head)
        values.append(text)
        stats[backend] = stat
    notes = []
    firsts = [next((r for r in by_backend[b] if r["status"] == "done"), None) for b in backends]
    present = [r for r in firsts if r is not None]
    differences = cmp.config_differences(present)
    if differences:
        notes.append("configurations differ: " + "; ".join(differences))
    diff = "-"
    known = [stats[b] for b in backends if stats[b] is not None]
    if len(known) >= 2:
        a, b = known[0], known[1]
        diff = f"{100 * cmp.relative(a.mean, b.mean):.3g}%"
        inside = cmp.gap_inside_spread(a, b)
        if inside is not None:
            notes.append("backend gap " + ("inside" if inside else "outside") + " the seed spread")
    walls = [f'{cmp.spread([r["wall_s"] for r in by_backend[b] if r["wall_s"] is not None]).mean:.1f}'
             if any(r["wall_s"] is not None for r in by_backend[b]) else "-" for b in backends]
    rates = [_rate(cmp.spread([r["throughput"] for r in by_backend[b] if r["throughput"]]).mean)
             if any(r["throughput"] for r in by_backend[b]) else "-" for b in backends]
    row = [f"{key[0]} {key[1]}", *values, diff, *walls, *rates]
    if task == "char_lm":
        row.append(" / ".join(f"{fmt(r['summary'].get('train_ppl'))} {r['backend']}" for r in present) or "-")
        book = cmp.BOOK.get(key, {})
        row.append("; ".join(f"{b} ppl {p}, {t:,} tok/s" for b, (p, t) in book.items()) or "-")
    row.append("; ".join(notes))
    return row


# -- per task ------------------------------------------------------------------------------------

def _first_seed(runs: Sequence[dict]) -> dict[str, dict]:
    """The lowest seed's finished run of each backend (what the figures overlay)."""
    chosen: dict[str, dict] = {}
    for r in sorted((r for r in runs if r["status"] == "done"), key=lambda r: r["seed"]):
        chosen.setdefault(r["backend"], r)
    return chosen


def _task_section(task: str, runs: Sequence[dict], backends: Sequence[str], figures: Path) -> list[tuple]:
    blocks: list[tuple] = [("h2", TASK_TITLES[task])]
    models = sorted(cmp.group(runs, ("cell", "impl")).items(), key=lambda kv: cmp.model_order(kv[0]))
    pairs = {f"{c} {i}": _first_seed(rs) for (c, i), rs in models}
    pairs = {k: v for k, v in pairs.items() if v}
    if not pairs:
        return blocks + [("p", "No run of this task finished.")]
    steps = {k: {b: r["curves"]["step"] for b, r in v.items() if r["curves"].get("step")} for k, v in pairs.items()}
    if any(steps.values()):
        xlabel = "epoch (one step each)" if task == "hello" else "training step"
        path = overlay_figure(figures / f"{task}_steps.png", f"{TASK_TITLES[task]}: training loss per step",
                              steps, xlabel=xlabel, ylabel="loss", logy=True)
        blocks.append(("figure", path, f"{task}: the training loss of every step, both backends overlaid "
                                       f"(solid / dashed), and their relative difference below (dotted: "
                                       f"{cmp.TOLERANCE:g}; red: the first step beyond it)."))
    keys = ("train_ppl", "val_ppl") if task == "char_lm" else ("val_loss", "book_bleu", "bleu") \
        if task == "translate" else ("test_accuracy", "generation_mae", "eval_mse")
    for key in keys:
        curves = {k: {b: r["curves"]["epoch"].get(key, []) for b, r in v.items()} for k, v in pairs.items()}
        if max((len(c) for v in curves.values() for c in v.values()), default=0) < 2:
            continue
        percent = key == "test_accuracy"
        logy = not percent and key not in ("book_bleu", "bleu")  # BLEU starts at 0
        path = overlay_figure(figures / f"{task}_{key}.png", f"{TASK_TITLES[task]}: {LABELS[key]} per epoch", curves,
                              xlabel="epoch", ylabel=LABELS[key], logy=logy, percent=percent)
        blocks.append(("figure", path, f"{task}: {LABELS[key]} per epoch, both backends overlaid, and their "
                                       f"relative difference below."))
    if task == "char_lm":
        rows = []
        for name, chosen in pairs.items():
            texts = {b: (r.get("samples") or {}) for b, r in chosen.items()}
            for prefix in next((list(t) for t in texts.values() if t), []):
                outs = [texts.get(b, {}).get(prefix, "-") for b in backends]
                rows.append([name, repr(prefix), *[repr(o) for o in outs],
                             "yes" if len(set(outs)) == 1 else "no"])
        blocks += [("h3", "Generated text from the same prefix (greedy)"),
                   ("table", ["model", "prefix", *backends, "identical"], rows)]
    if task == "mnist_rows":
        matrices = {k: {b: r["confusion"] for b, r in v.items() if r.get("confusion")} for k, v in pairs.items()}
        path = confusion_figure(figures / "mnist_confusion.png", "MNIST test confusion matrices", matrices)
        blocks.append(("figure", path, "Both backends' confusion matrices (rows: true digit, columns: predicted)."))
    if task == "sine":
        blocks.append(("h3", "Generated waves"))
        for name, chosen in pairs.items():
            for backend, record in chosen.items():
                source = next((Path(record["folder"]) / f for f in ("generation.png", "prediction.png")
                               if (Path(record["folder"]) / f).is_file()), None)
                if source is not None:
                    target = figures / f"sine_{name.replace(' ', '_')}_{backend}.png"
                    shutil.copyfile(source, target)
                    blocks.append(("figure", target, f"sine, {name}, {backend}: the run's own wave figure"))
    if task == "translate":
        blocks += translation_section(pairs, backends, figures)
    if task == "hello":
        rows = [[name, *[repr(chosen[b]["summary"].get("predicted")) if b in chosen else "-" for b in backends],
                 *[fmt(chosen[b]["summary"].get("first_correct_epoch")) if b in chosen else "-" for b in backends]]
                for name, chosen in pairs.items()]
        blocks += [("h3", "Predicted strings"), ("table", ["model", *[f"predicted {b}" for b in backends],
                                                          *[f"first right epoch {b}" for b in backends]], rows)]
    return blocks


# -- speed, provenance ---------------------------------------------------------------------------

def _speed(benchmark: Optional[list], png: Optional[Path], figures: Path) -> list[tuple]:
    blocks: list[tuple] = [("h2", "Speed (tasks.benchmark)")]
    if not benchmark:
        return blocks + [("p", "Skipped (--no-benchmark) or not available.")]
    base = {(r["cell"], r["impl"]): r["tokens_per_s"] for r in benchmark[0]["results"]}
    rows = [[report["backend"], report["device"], f"{r['impl']} {r['cell']}", _rate(r["tokens_per_s"]),
             f"{r['ms_per_step']:.2f}", f"{r['tokens_per_s'] / base[(r['cell'], r['impl'])]:.2f}x"]
            for report in benchmark for r in report["results"]]
    blocks.append(("table", ["backend", "device", "model", "tokens/s", "ms/step", f"vs {benchmark[0]['backend']}"],
                   rows))
    if png is not None and png.is_file():
        target = figures / "benchmark.png"
        shutil.copyfile(png, target)
        blocks.append(("figure", target, "Training-step throughput, same batches and weights."))
    blocks.append(("p", "Published, for orientation (FACTS.md): the d2l book's V100 figures are in the summary; "
                        "on a 2-core CPU earlier: MXNet concise RNN 64k, GRU 21k, LSTM 17k tokens/s; PyTorch "
                        "concise RNN 49k, GRU 21k, LSTM 30k."))
    return blocks


def _provenance(records: Sequence[dict], command: str) -> list[tuple]:
    blocks: list[tuple] = [("h2", "Machine, versions and commands")]
    machines = {}
    for r in records:
        if r["machine"]:
            machines.setdefault(r["backend"], r["machine"])
    blocks.append(("table", ["backend", "machine and versions"],
                   [[b, _versions(m)] for b, m in machines.items()]))
    blocks.append(("p", "The report (pasteable, from the repository root):"))
    blocks.append(("pre", command))
    for task in cmp.HEADLINES:
        runs = [r for r in records if r["task"] == task]
        if runs:
            text = "\n".join(f"{r['command']}" for r in runs)
            blocks.append(("details", f"{task}: the {len(runs)} runs' commands", [("pre", text)]))
    return blocks
