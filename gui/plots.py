"""Shared look of the window's plots: white background, readable fonts, one colour per layer or weight set."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QFont

LAYER_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
WEIGHT_COLOURS = {"tailored": "#1f77b4", "naive": "#ff7f0e"}
FALLBACK_COLOURS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2")


def configure() -> None:
    """Global pyqtgraph options; call once before any plot is made."""
    pg.setConfigOptions(background="w", foreground="k", antialias=True, imageAxisOrder="row-major")


def plot_widget(title: str, bottom: str, left: str, bottom_units: str | None = None,
                left_units: str | None = None) -> pg.PlotWidget:
    """A plot with a title and labelled axes (units get SI prefixes from pyqtgraph)."""
    widget = pg.PlotWidget()
    widget.setTitle(title, size="11pt")
    widget.setLabel("bottom", bottom, units=bottom_units)
    widget.setLabel("left", left, units=left_units)
    widget.showGrid(x=True, y=True, alpha=0.25)
    font = QFont()
    font.setPointSize(9)
    for axis in ("bottom", "left"):
        widget.getAxis(axis).setTickFont(font)
    return widget


def weight_colour(name: str, index: int) -> str:
    return WEIGHT_COLOURS.get(name, FALLBACK_COLOURS[index % len(FALLBACK_COLOURS)])
