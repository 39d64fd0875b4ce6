"""The specification sheet as markdown and as one self-contained HTML page, written atomically."""

from __future__ import annotations

import dataclasses
import html
import math
from pathlib import Path

from rpucircuit.config.tile import SpecInputs, spec_source
from rpucircuit.design.specs_sheet import WITHIN_FACTOR, SpecRow, SpecSheet
from rpucircuit.fileio import atomic_write_text

MARKDOWN_NAME = "specs.md"
"""File name of the markdown sheet in the output folder."""
HTML_NAME = "specs.html"
"""File name of the HTML sheet in the output folder."""

HEADER = (
    "quantity",
    "ours",
    "unit",
    "derivation",
    "basis",
    "paper A",
    "ours/paper",
    f"within {WITHIN_FACTOR:g}×",
    "difference explained",
)
"""Columns of the sheet's main table."""


def number(value: float, digits: int = 4) -> str:
    """``value`` to ``digits`` significant digits; thousands separated from 10,000 up to
    10⁹, powers of ten beyond (no hundred-digit strings for absurd inputs)."""
    if not math.isfinite(value):
        return "n/a" if math.isnan(value) else f"{value}"
    if value == 0.0:
        return "0"
    if abs(value) >= 1e9:
        return f"{value:.{digits}g}"
    if abs(value) >= 1e4:
        exp = math.floor(math.log10(abs(value)))
        step = 10.0 ** (exp - digits + 1)
        return f"{round(value / step) * step:,.0f}"
    return f"{value:.{digits}g}"


def cells(row: SpecRow) -> tuple[str, ...]:
    """The row's cells as plain text, in :data:`HEADER` order."""
    paper = row.paper
    ratio = row.ratio
    within = row.within
    return (
        row.quantity,
        number(row.value / row.scale),
        row.unit,
        row.derivation,
        row.basis,
        "—" if paper is None else number(paper.value / row.scale),
        "—" if ratio is None else f"{ratio:.3g}",
        "—" if within is None else ("yes" if within else "NO"),
        row.note,
    )


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _input_lines(inputs: SpecInputs) -> list[tuple[str, str, str]]:
    return [
        (f.name, str(getattr(inputs, f.name)), spec_source(f.name))
        for f in dataclasses.fields(inputs)
    ]


def _paper_lines(sheet: SpecSheet) -> list[tuple[str, str]]:
    out = []
    for row in sheet.rows:
        paper = row.paper
        if paper is not None:
            out.append((row.quantity, paper.source))
    return out


def _provenance(sheet: SpecSheet) -> list[str]:
    explore = (
        "none: acceptable σ is the input and the minimum on/off ratio the analytic budget"
        if sheet.explore is None
        else sheet.explore.source
    )
    return [f"circuit config: {sheet.config_source}", f"explore results: {explore}"]


def to_markdown(sheet: SpecSheet) -> str:
    """The sheet as a markdown document (a title, provenance, the table, inputs, sources)."""
    lines = ["# RPU tile specification sheet", ""]
    lines += [f"- {p}" for p in _provenance(sheet)]
    lines += ["", table_markdown(sheet), "", "## Inputs (`[specs]` table)", ""]
    lines += ["| field | value | source |", "|---|---|---|"]
    lines += [
        f"| {name} | {value} | {_md_escape(src)} |"
        for name, value, src in _input_lines(sheet.inputs)
    ]
    lines += ["", "## Paper A's values", ""]
    lines += [f"- {q}: {src}" for q, src in _paper_lines(sheet)]
    return "\n".join(lines) + "\n"


def table_markdown(sheet: SpecSheet) -> str:
    """The sheet's main table alone, as markdown (what the command prints)."""
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(_md_escape(c) for c in cells(row)) + " |" for row in sheet.rows]
    return "\n".join(out)


_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.5em; vertical-align: top; }
th { background: #eee; }
td.num { text-align: right; white-space: nowrap; }
td.yes { background: #e3f4e3; }
td.no { background: #f8dede; font-weight: bold; }
"""


def _td(text: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<td{attr}>{html.escape(text)}</td>"


def _html_row(row: SpecRow) -> str:
    c = cells(row)
    verdict_cls = {"yes": "yes", "NO": "no"}.get(c[7], "")
    tds = [
        _td(c[0]),
        _td(c[1], "num"),
        _td(c[2]),
        _td(c[3]),
        _td(c[4]),
        _td(c[5], "num"),
        _td(c[6], "num"),
        _td(c[7], verdict_cls),
        _td(c[8]),
    ]
    return "<tr>" + "".join(tds) + "</tr>"


def to_html(sheet: SpecSheet) -> str:
    """The sheet as one self-contained HTML page (inline style, no external assets)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
    rows = "\n".join(_html_row(r) for r in sheet.rows)
    inputs = "\n".join(
        f"<tr>{_td(n)}{_td(v, 'num')}{_td(s)}</tr>" for n, v, s in _input_lines(sheet.inputs)
    )
    sources = "\n".join(
        f"<li>{html.escape(q)}: {html.escape(s)}</li>" for q, s in _paper_lines(sheet)
    )
    prov = "\n".join(f"<li>{html.escape(p)}</li>" for p in _provenance(sheet))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>RPU tile specification sheet</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n<h1>RPU tile specification sheet</h1>\n<ul>\n{prov}\n</ul>\n"
        f"<table>\n<tr>{head}</tr>\n{rows}\n</table>\n"
        "<h2>Inputs (<code>[specs]</code> table)</h2>\n"
        f"<table>\n<tr><th>field</th><th>value</th><th>source</th></tr>\n{inputs}\n</table>\n"
        f"<h2>Paper A's values</h2>\n<ul>\n{sources}\n</ul>\n</body>\n</html>\n"
    )


def write_sheet(sheet: SpecSheet, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``specs.md`` and ``specs.html`` into ``out_dir`` (atomically); return both paths."""
    out = Path(out_dir)
    md = atomic_write_text(out / MARKDOWN_NAME, to_markdown(sheet))
    page = atomic_write_text(out / HTML_NAME, to_html(sheet))
    return md, page
