"""What every family's ``labctl report`` has in common: the self-contained HTML page and figures drawn to PNG.

What a report shows is its family's (``labctl.families.<name>.report``); the
page around it and the way a figure becomes PNG are not. They live here so
that a family's report need not import another family's, which would pull in
that family's bench, die model and torch, and tie one family to another.
Importing this module pulls in matplotlib (not pyplot).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from labctl.files import atomic_write_bytes, atomic_write_text

STYLE = """
body {{ font-family: sans-serif; max-width: {max_width_px}px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1em; }}
th, td {{ border: 1px solid #bbb; padding: 3px 9px; text-align: right; }}
th {{ background: #eee; }} td.l, th.l {{ text-align: left; }}
.missing {{ background: #fde8e8; border-left: 4px solid #c33; padding: 0.5em 1em; }}
.note {{ color: #555; }} img {{ max-width: 100%; }}
"""
"""The page's CSS, one rule set for every family (its classes: ``l`` left-aligned text cells, ``missing``
what the file lacks, ``note`` explanations); only the width, set by how wide a family's figures are, varies."""


@dataclass
class Section:
    """One heading of the page: its text and tables, then its figure if it has one."""

    title: str
    body: str
    """HTML of the text and tables (escaped already)."""
    png: bytes | None = None
    slug: str = ""
    """The figure's file name part when it is also written as a PNG of its own: ``<stem>-report-<slug>.png``."""


@dataclass
class Report:
    """What a report wrote: the page, each figure as its own PNG, and what the reported file lacked."""

    html_path: Path
    png_paths: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """What the file lacked (empty for a complete one)."""

    @property
    def paths(self) -> tuple[Path, ...]:
        """The files written (what ``labctl report`` names)."""
        return (self.html_path, *self.png_paths)


def write_report_files(sections: Sequence[Section], folder: Path, stem: str, title: str, max_width_px: int, *,
                       missing: Sequence[str] = (), subtitle: str = "") -> Report:
    """``<stem>-report.html`` and every section's figure as ``<stem>-report-<slug>.png`` in ``folder``, each
    written whole or not at all."""
    folder.mkdir(parents=True, exist_ok=True)
    report = Report(folder / f"{stem}-report.html", missing=list(missing))
    for section in sections:
        if section.png:
            report.png_paths.append(atomic_write_bytes(folder / f"{stem}-report-{section.slug}.png", section.png))
    atomic_write_text(report.html_path, page(title, sections, max_width_px, subtitle=subtitle), encoding="utf-8")
    return report


def figure_section(title: str, slug: str, fig: Figure, text: str, dpi: float) -> Section:
    """A section of one explanatory note and its figure."""
    return Section(title, f"<p class='note'>{html.escape(text)}</p>", to_png(fig, dpi), slug)


def absent(why: str) -> str:
    """The note that stands where a section's data is missing."""
    return f"<p class='note'>not available: {html.escape(why)}.</p>"


LEFT = " class='l'"


def table(header: Sequence[str] | None, rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """An HTML table; the first ``left`` columns are text (left-aligned), the others numbers."""
    def row(tag: str, values: Sequence[str]) -> str:
        cells = "".join(f"<{tag}{LEFT if i < left else ''}>{html.escape(v)}</{tag}>" for i, v in enumerate(values))
        return f"<tr>{cells}</tr>"

    head = row("th", header) if header else ""
    return f"<table>{head}{''.join(row('td', r) for r in rows)}</table>"


def with_se(value: float, se: float, scale: float = 1.0) -> str:
    """``value ± se`` (both times ``scale``) to two significant digits of the error; the value alone without one
    (the page and a family's GUI panel write a number the same way)."""
    value, se = float(value) * scale, float(se) * scale
    if not math.isfinite(value):
        return "-"
    if not math.isfinite(se) or se <= 0:
        return f"{value:.4g}"
    digits = max(0, 1 - math.floor(math.log10(se)))
    return f"{value:.{digits}f} ± {se:.{digits}f}"


def page(title: str, sections: Sequence[Section], max_width_px: int, subtitle: str = "") -> str:
    """The whole HTML page, every figure embedded as base64 PNG so the one file can be mailed or archived alone.

    ``subtitle`` (plain text, escaped here) is a note under the title, such as the file reported on; empty
    for none.
    """
    body = []
    for s in sections:
        body.append(f"<h2>{html.escape(s.title)}</h2>{s.body}")
        if s.png:
            b64 = base64.b64encode(s.png).decode("ascii")
            body.append(f"<img alt='{html.escape(s.title)}' src='data:image/png;base64,{b64}'>")
    under = f"<p class='note'>{html.escape(subtitle)}</p>" if subtitle else ""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE.format(max_width_px=max_width_px)}</style></head><body><h1>{html.escape(title)}</h1>"
            f"{under}{''.join(body)}</body></html>\n")


def figure(width_in: float, height_in: float, title: str) -> Figure:
    """A figure with a bold title and constrained layout, built without pyplot.

    No global backend is chosen, so a report can be written from inside the Qt
    GUI or a test without disturbing either, and on a machine without a display.
    """
    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    fig.suptitle(title, fontsize=13, fontweight="bold")
    return fig


def empty_note(ax, text: str) -> None:
    """An empty panel that says why it is empty (a figure keeps its layout when one panel has no data)."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.35", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def to_png(fig: Figure, dpi: float) -> bytes:
    """The figure as PNG bytes, drawn by an Agg canvas attached here (no pyplot, no global backend)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
