"""A report as a list of blocks, written twice: a self-contained HTML page (figures embedded as
base64 PNG, no script, no network) and Markdown (figures linked beside it).

Blocks: ("h1"|"h2"|"h3", text), ("p", text), ("table", header, rows), ("figure", path, caption),
("pre", text), ("details", summary, [blocks])."""
from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Any, Sequence

STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 1.5em auto;
       max-width: 1200px; padding: 0 1em; color: #1b1b1b; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.86em; }
th, td { border: 1px solid #c8c8c8; padding: 3px 7px; text-align: right; vertical-align: top; }
th { background: #eef1f5; } td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
td.failed { color: #b00020; text-align: left; } pre { background: #f4f4f4; padding: 0.6em; overflow-x: auto;
       font-size: 0.8em; white-space: pre-wrap; }
figure { margin: 0.8em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #444; } details { margin: 0.5em 0; } summary { cursor: pointer; }
"""


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    css = ' class="failed"' if text.startswith("FAILED") else ""
    return f"<td{css}>{html.escape(text)}</td>"


def to_html(blocks: Sequence[tuple], title: str) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"]
    parts += _html_blocks(blocks)
    parts.append("</body></html>")
    return "\n".join(parts)


def _html_blocks(blocks: Sequence[tuple]) -> list[str]:
    out = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            anchor = html.escape(block[1].lower().replace(" ", "-"))
            out.append(f'<{kind} id="{anchor}">{html.escape(block[1])}</{kind}>')
        elif kind == "p":
            out.append(f"<p>{html.escape(block[1])}</p>")
        elif kind == "pre":
            out.append(f"<pre>{html.escape(block[1])}</pre>")
        elif kind == "table":
            header, rows = block[1], block[2]
            out.append("<table><thead><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) +
                       "</tr></thead><tbody>")
            out += ["<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows]
            out.append("</tbody></table>")
        elif kind == "figure":
            path, caption = Path(block[1]), block[2]
            data = base64.b64encode(path.read_bytes()).decode("ascii") if path.is_file() else ""
            image = (f'<img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">' if data
                     else f"<p>(figure missing: {html.escape(path.name)})</p>")
            out.append(f"<figure>{image}<figcaption>{html.escape(caption)}</figcaption></figure>")
        elif kind == "details":
            out.append(f"<details><summary>{html.escape(block[1])}</summary>")
            out += _html_blocks(block[2])
            out.append("</details>")
    return out


def to_markdown(blocks: Sequence[tuple], base: Path) -> str:
    out = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + block[1])
        elif kind == "p":
            out.append(block[1])
        elif kind == "pre":
            out.append("```\n" + block[1] + "\n```")
        elif kind == "table":
            header, rows = block[1], block[2]
            escape = lambda v: ("" if v is None else str(v)).replace("|", "\\|").replace("\n", " ")
            lines = ["| " + " | ".join(escape(h) for h in header) + " |", "|" + " --- |" * len(header)]
            lines += ["| " + " | ".join(escape(v) for v in row) + " |" for row in rows]
            out.append("\n".join(lines))
        elif kind == "figure":
            out.append(f"![{block[2]}]({os.path.relpath(block[1], base)})\n\n*{block[2]}*")
        elif kind == "details":
            out.append(f"**{block[1]}**")
            out.append(to_markdown(block[2], base))
    return "\n\n".join(out) + "\n"
