"""The HTML around a report: one stylesheet for run reports and the index, numbers formatted for
people, tables that scroll in their own box, figures with captions at twice the pixel density,
and a table of contents.

Every page works offline: no fonts, scripts or styles are fetched; figures are embedded.
"""

from __future__ import annotations

import base64
import html
import math
import re
import struct
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from layerscope.report.figures import save_figure

__all__ = ["SORT_SCRIPT", "STYLE", "anchor", "figure_html", "human", "page", "table_html"]

#: Figures are rendered at this density and shown at half their pixel size (sharp on 2x screens).
DPI = 220

STYLE = """
*, *::before, *::after { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222;
       line-height: 1.45; background: #fff; }
main { max-width: 1100px; margin: 0 auto; padding: 1em 1.2em 3em; }
h1 { font-size: 1.5em; overflow-wrap: anywhere; } h2 { font-size: 1.2em; margin-top: 1.8em; }
code { overflow-wrap: anywhere; }
.scroll { overflow-x: auto; max-width: 100%; margin: 0.6em 0; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; position: sticky; top: 0; }
td.name, th.name { text-align: left; font-family: ui-monospace, monospace; }
th.sortable { cursor: pointer; } th.sortable::after { content: " \\2195"; color: #999; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.85em; max-width: 60em; }
.note { color: #555; font-size: 0.9em; max-width: 60em; }
.box { border: 1px solid #d6d9e0; border-radius: 6px; padding: 0.8em 1em; margin: 1em 0;
       background: #fafbfc; }
.facts { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 16em), 1fr));
         gap: 0.15em 1.5em; margin: 0.5em 0; }
.facts div { overflow-wrap: anywhere; } .facts b { color: #555; font-weight: 600; }
.varies { background: #fff3c4; border-radius: 3px; padding: 0 0.2em; }
.status { display: inline-block; border-radius: 4px; padding: 0.1em 0.6em; font-weight: 600; }
.status-finished { background: #dff3e3; color: #1c5e2a; }
.status-diverged, .status-failed { background: #fde2e1; color: #8a1c17; }
.status-in-progress, .status-recorded, .status-unknown { background: #e6eefc; color: #1f3f7a; }
.advice { border-left: 4px solid #4a7bd0; background: #f3f7fe; }
.advice ul { margin: 0.3em 0; padding-left: 1.2em; }
nav.toc { font-size: 0.9em; } nav.toc ol { margin: 0.3em 0; padding-left: 1.4em; columns: 2 14em; }
td.bad { color: #8a1c17; font-weight: 600; }
"""

#: Click a column header to sort (numbers numerically); a tiny inline script, no CDN.
SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.classList.add("sortable");
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var up = th.dataset.order !== "asc"; th.dataset.order = up ? "asc" : "desc";
      function key(row) {
        var cell = row.cells[column]; var text = cell ? cell.dataset.sort || cell.textContent : "";
        var number = parseFloat(text.replace(/,/g, ""));
        return isNaN(number) ? text.toLowerCase() : number;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (typeof x !== typeof y) { return typeof x === "number" ? -1 : 1; }
        return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1);
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def human(value: object, digits: int = 4) -> str:
    """A number as people read it: ``digits`` significant digits, thousands separators for
    large whole numbers, scientific notation for very large or small ones; missing as empty.

    Example:
        >>> [human(v) for v in (1e30, 1.2160377741357729, 1234567.0, 7, 0.000012345, None)]
        ['1e+30', '1.216', '1,234,567', '7', '1.234e-05', '']
        >>> human(float("inf")), human(True), human("vgg11")
        ('inf', 'True', 'vgg11')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.{digits}g}"  # scientific below 1e-4 and from 10**digits on


def anchor(title: str) -> str:
    """The id a section title gets (lower case, dashes).

    Example:
        >>> anchor("Saturation & probes (latest epoch)")
        'saturation-probes-latest-epoch'
    """
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"


def table_html(
    frame: pd.DataFrame,
    index_name: str | None = None,
    *,
    sortable: bool = False,
    links: dict[str, str] | None = None,
    raw: Sequence[str] = (),
) -> str:
    """``frame`` as an HTML table in its own scrolling box; ``index_name`` shows the index as
    the first column; ``links`` maps a column to the template of its cells' link (``{value}``);
    ``raw`` columns hold trusted HTML.

    Example:
        >>> table_html(pd.DataFrame({"lr": [1e30]}), "epoch")[:40]
        "<div class='scroll'><table><thead><tr><t"
    """
    links = links or {}
    head = [f"<th class='name'>{html.escape(index_name)}</th>"] if index_name is not None else []
    head += [f"<th>{html.escape(str(c))}</th>" for c in frame.columns]
    rows = []
    for index, row in frame.iterrows():
        cells = (
            [f"<td class='name'>{html.escape(str(index))}</td>"] if index_name is not None else []
        )
        for column, value in row.items():
            text = human(value)
            sort = f" data-sort='{value}'" if isinstance(value, (int, float)) and text else ""
            if column in raw:
                cells.append(f"<td class='name'>{value}</td>")
            elif column in links and text:
                href = html.escape(links[column].format(value=value))
                cells.append(f"<td class='name'><a href='{href}'>{html.escape(text)}</a></td>")
            elif isinstance(value, str):
                cells.append(f"<td class='name'>{html.escape(text)}</td>")
            else:
                cells.append(f"<td{sort}>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    kind = " class='sortable'" if sortable else ""
    return (
        f"<div class='scroll'><table{kind}><thead><tr>{''.join(head)}</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div>"
    )


def _png_width(data: bytes) -> int | None:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">I", data[16:20])[0]


def figure_html(path: Path, figure, caption: str, alt: str | None = None) -> str:
    """Save ``figure`` as PNG at :data:`DPI` to ``path`` and return a ``<figure>`` embedding it
    at half its pixel width, with ``caption``."""
    data = save_figure(figure, path, dpi=DPI)
    width = _png_width(data)
    size = f" width='{width // 2}'" if width else ""
    encoded = base64.b64encode(data).decode()
    return (
        f"<figure id='figure-{html.escape(path.stem)}'><img alt='{html.escape(alt or caption)}'{size} "
        f"src='data:image/png;base64,{encoded}'>"
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def page(title: str, heading: str, sections: Sequence[tuple[str, str]], *, intro: str = "",
         footer: str = "", script: str = "") -> str:  # fmt: skip
    """A whole page: ``heading`` (trusted HTML), ``intro``, a table of contents over the
    ``(title, body html)`` sections, the sections with anchors, and ``footer``."""
    toc = "".join(
        f"<li><a href='#{anchor(name)}'>{html.escape(name)}</a></li>" for name, _ in sections
    )
    body = "".join(
        f"<section id='{anchor(name)}'><h2>{html.escape(name)}</h2>{content}</section>"
        for name, content in sections
    )
    scripts = f"<script>{script}</script>" if script else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{STYLE}</style></head><body><main>
<h1>{heading}</h1>
{intro}
<nav class="toc" aria-label="contents"><b>Contents</b><ol>{toc}</ol></nav>
{body}
<p class="note">{footer}</p>
</main>{scripts}</body></html>
"""
