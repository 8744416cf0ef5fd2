"""Programming: the latch map of every weight matrix, as read back, with verified and stuck bits.

Programming ends with READ_WEIGHTS (contract section 1: a latch bit can be
stuck, and only the read-back tells what the die computes with). Each matrix
is drawn as rows (pre-synaptic neurons, layer m) by columns (post-synaptic,
layer m+1), coloured by the signed code the latch holds; a latch whose
read-back equals what was written is verified, one with a stuck bit is marked
with a red cross.

An evaluation also reads the die's supply while each test pattern is held:
the panel states the supply and network power and the energy per inference,
with the presentation rate that energy assumes (issue 14).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from labctl.families.cmna.latch_codes import MAGNITUDE_MASK
from labctl.gui.plots import plot_widget

COLOURMAP = "CET-D1"
NO_POWER = "No power measured (programming only, or evaluate with --power-patterns 0)."


class ProgrammingPanel(QWidget):
    title = "Programming"
    stages = ("program", "evaluate")
    """Evaluation programs the die first: its latch map is shown here too."""

    def __init__(self) -> None:
        super().__init__()
        self.header = QLabel("Nothing programmed yet.")
        self.header.setWordWrap(True)
        self.choice = QComboBox()
        self.choice.currentTextChanged.connect(self._show_choice)
        top = QHBoxLayout()
        top.addWidget(QLabel("Weights:"))
        top.addWidget(self.choice)
        top.addWidget(self.header, 1)
        self.power = QLabel(NO_POWER)
        self.power.setWordWrap(True)
        self.maps = QHBoxLayout()
        self._plots: list[pg.PlotWidget] = []
        self._bars: list[pg.ColorBarItem] = []
        self._outcomes: dict[str, object] = {}
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.power)
        layout.addLayout(self.maps, 1)
        legend = QLabel("Colour: the signed code each latch holds (read back), blue negative, red positive, "
                        "-7..7. Red cross: a stuck bit (read-back differs from what was written); "
                        "every other latch is verified.")
        legend.setWordWrap(True)
        layout.addWidget(legend)

    def clear(self) -> None:
        self._outcomes.clear()
        self.choice.clear()
        self.header.setText("Nothing programmed yet.")
        self.power.setText(NO_POWER)

    def step_done(self, kind: str, outcome) -> None:
        self.show_outcome(outcome)

    def show_outcome(self, outcome) -> None:
        """A :class:`labctl.recipes.ProgrammedWeights` (weights written, program report)."""
        self._outcomes[outcome.weights_name] = outcome
        if self.choice.findText(outcome.weights_name) < 0:
            self.choice.addItem(outcome.weights_name)
        self.choice.setCurrentText(outcome.weights_name)
        self._show_choice(outcome.weights_name)

    def _show_choice(self, name: str) -> None:
        outcome = self._outcomes.get(name)
        if outcome is None:
            return
        report = outcome.result.program
        held = report.held_codes
        self._make_plots(len(held))
        stuck_cells: dict[int, set[tuple[int, int]]] = {}
        for bit in report.stuck:
            stuck_cells.setdefault(bit.matrix, set()).add((bit.row, bit.column))
        for m, (plot, codes) in enumerate(zip(self._plots, held)):
            plot.clear()
            rows, cols = codes.shape
            image = pg.ImageItem(np.asarray(codes, float), levels=(-MAGNITUDE_MASK, MAGNITUDE_MASK))
            image.setColorMap(pg.colormap.get(COLOURMAP))
            plot.addItem(image)
            cells = sorted(stuck_cells.get(m, ()))
            if cells:
                r, c = np.array(cells).T
                plot.addItem(pg.ScatterPlotItem(c + 0.5, r + 0.5, symbol="x", size=14, pen=pg.mkPen("r", width=3),
                                                brush="r"))
            plot.setTitle(f"matrix {m}: layer {m} to layer {m + 1} ({rows} x {cols})<br>"
                          f"{rows * cols - len(cells)} of {rows * cols} latches verified", size="10pt")
            plot.setRange(xRange=(0, cols), yRange=(0, rows), padding=0.02)
            plot.getAxis("bottom").setTicks([_cell_ticks(cols)])
            plot.getAxis("left").setTicks([_cell_ticks(rows)])
            bar = self._bars[m]
            if bar.scene() is None:  # first image: the bar takes its place beside the map
                bar.setImageItem(image, insert_in=plot.getPlotItem())
            else:
                bar.setImageItem(image)
        total = sum(c.size for c in held)
        state = "verified" if report.verified else f"{len(report.stuck)} stuck bit(s) will not take"
        self.header.setText(f"<b>{name}</b> weights for die {outcome.weights.die_serial}: {total} latches written "
                            f"and read back in {report.attempts} pass(es); {state}.")
        power = outcome.result.power
        self.power.setText(NO_POWER if power is None else "<br>".join(power.summary_lines()))

    def _make_plots(self, n: int) -> None:
        if len(self._plots) == n:
            return
        for plot in self._plots:
            self.maps.removeWidget(plot)
            plot.deleteLater()
        self._plots, self._bars = [], []
        for m in range(n):
            plot = plot_widget(f"matrix {m}", f"post-synaptic neuron (layer {m + 1})",
                               f"pre-synaptic neuron (layer {m})")
            plot.invertY(True)
            plot.setAspectLocked(False)
            plot.showGrid(x=False, y=False)
            bar = pg.ColorBarItem(values=(-MAGNITUDE_MASK, MAGNITUDE_MASK), colorMap=pg.colormap.get(COLOURMAP), interactive=False,
                                  label="signed code", width=14)
            self.maps.addWidget(plot)
            self._plots.append(plot)
            self._bars.append(bar)


def _cell_ticks(n: int) -> list[tuple[float, str]]:
    """Neuron numbers at cell centres, at most about 10 of them."""
    step = max(1, int(np.ceil(n / 10)))
    return [(i + 0.5, str(i)) for i in range(0, n, step)]
