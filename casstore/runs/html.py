"""The pieces of a self-contained HTML page: no script, no font, no request of any kind.

Everything shown is escaped here; charts are inline SVG; the layout reflows to a
phone's width (tables scroll sideways inside their box, digests wrap).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

_CSS = """
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #59636e; --line: #d1d9e0;
  --bg: #ffffff; --box: #f6f8fa; --add: #dafbe1; --del: #ffebe9; --a: #0969da; --b: #bf8700; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #9198a1;
  --line: #3d444d; --bg: #0d1117; --box: #151b23; --add: #12361f; --del: #3c1618; } }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 72rem; padding: 1rem; background: var(--bg);
  color: var(--fg); font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
h1 { font-size: 1.35rem; margin: 0 0 .25rem; } h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
.muted { color: var(--muted); } code, .digest { font-family: ui-monospace, monospace;
  font-size: .85em; overflow-wrap: anywhere; }
.scroll { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .35rem .6rem;
  border-bottom: 1px solid var(--line); }
th { background: var(--box); font-weight: 600; } tr:last-child td { border-bottom: 0; }
td.old, span.old { background: var(--del); } td.new, span.new { background: var(--add); }
pre { margin: 0; padding: .5rem; background: var(--box); overflow-x: auto; font-size: .8rem; }
pre .add { background: var(--add); display: block; } pre .del { background: var(--del);
  display: block; }
.chart { width: 100%; height: auto; max-width: 48rem; } .chart text { fill: var(--fg);
  font-size: 12px; } .bar-a { fill: var(--a); } .bar-b { fill: var(--b); }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(14rem, 1fr));
  gap: .5rem 1rem; }
.card { background: var(--box); border-radius: 6px; padding: .5rem .75rem; }
.score { font-size: 1.6rem; font-weight: 600; }
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def page(title: str, body: Iterable[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, raw: bool = False) -> str:
    """A table; cells are escaped unless ``raw`` (cells already made with :func:`cell`)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(c if raw else f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    inner = f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
    return f'<div class="scroll"><table>{inner}</table></div>'


def cell(text: object, cls: str = "", *, mono: bool = False) -> str:
    inner = f"<code>{esc(text)}</code>" if mono else esc(text)
    return f'<td class="{cls}">{inner}</td>' if cls else f"<td>{inner}</td>"


def cards(items: Iterable[tuple[str, str]]) -> str:
    return (
        '<div class="grid">'
        + "".join(
            f'<div class="card"><div class="muted">{esc(k)}</div><div>{v}</div></div>'
            for k, v in items
        )
        + "</div>"
    )


def unified(text_a: str, text_b: str, name: str) -> str:
    """A unified diff of two small texts, lines added and removed marked."""
    import difflib

    lines = difflib.unified_diff(
        text_a.splitlines(), text_b.splitlines(), f"a/{name}", f"b/{name}", lineterm="", n=2
    )
    out = []
    for line in lines:
        cls = "add" if line.startswith("+") else "del" if line.startswith("-") else ""
        out.append(f'<span class="{cls}">{esc(line)}</span>' if cls else esc(line))
    return "<pre>" + "\n".join(out) + "</pre>"


def bars(rows: Sequence[tuple[str, float | None, float | None]], *, two: bool) -> str:
    """A horizontal bar chart of scores in [0, 1]: one bar per row, or two (a and b)."""
    label_w, bar_w, row_h = 130, 300, 34 if two else 22
    height = row_h * len(rows) + 24
    parts = [
        # Inline SVG in HTML needs no namespace declaration (and the page names no URL).
        f'<svg class="chart" viewBox="0 0 {label_w + bar_w + 70} {height}" role="img">'
    ]
    for i, (label, a, b) in enumerate(rows):
        y = 8 + i * row_h
        parts.append(f'<text x="0" y="{y + 13}">{esc(label[:18])}</text>')
        for j, (value, cls) in enumerate(((a, "bar-a"), (b, "bar-b")) if two else ((a, "bar-a"),)):
            top = y + j * 14
            width = 0 if value is None else max(0.0, min(1.0, value)) * bar_w
            parts.append(
                f'<rect class="{cls}" x="{label_w}" y="{top}" width="{width:.1f}" height="12"/>'
            )
            shown = "-" if value is None else f"{value:.3f}"
            parts.append(f'<text x="{label_w + width + 4:.1f}" y="{top + 11}">{shown}</text>')
    parts.append("</svg>")
    return "".join(parts)
