"""Characterisation: gain histograms per layer and line-fit residuals, live while the die is measured.

During the run the panel shows the quick estimates of
:mod:`labctl.families.cmna.live_view` (re-read from the HDF5 file as readings arrive);
when the step ends, the histograms switch to the fitted gains of
:mod:`labctl.families.cmna.characterisation.analysis` (absolute a+, the layer's scale applied).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from labctl.families.cmna.live_view import LiveCharacterisation
from labctl.gui.plots import LAYER_COLOURS, plot_widget

BIN_EDGES = np.arange(0.3, 2.01, 0.05)


class CharacterisationPanel(QWidget):
    title = "Characterisation"
    stages = ("characterise",)

    def __init__(self) -> None:
        super().__init__()
        self.header = QLabel("No characterisation yet: press Train and program.")
        self.header.setWordWrap(True)
        self.gains = plot_widget("Output gain a+ per neuron", "a+ (absolute)", "neurons")
        self.gains.addLegend(offset=(-10, 10))
        self.residuals = plot_widget("MON line-fit residuals", "MON reading", "residual", "A", "%")
        self.residuals.addLegend(offset=(-10, 10))
        self._hist: list[pg.PlotDataItem] = []
        self._scatter: list[pg.ScatterPlotItem] = []
        plots = QHBoxLayout()
        plots.addWidget(self.gains)
        plots.addWidget(self.residuals)
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addLayout(plots)

    def clear(self) -> None:
        self.gains.clear()
        self.residuals.clear()
        self._hist, self._scatter = [], []
        self.header.setText("Characterisation starting...")

    def _ensure_layers(self, n_layers: int) -> None:
        while len(self._hist) < n_layers:
            l = len(self._hist)
            colour = pg.mkColor(LAYER_COLOURS[l % len(LAYER_COLOURS)])
            fill = pg.mkColor(colour)
            fill.setAlpha(60)
            self._hist.append(self.gains.plot([0, 1], [0], stepMode="center", fillLevel=0, brush=fill,
                                              pen=pg.mkPen(colour, width=2), name=f"layer {l}"))
            scatter = pg.ScatterPlotItem(size=5, pen=None, brush=colour, name=f"layer {l}")
            self.residuals.addItem(scatter)
            self._scatter.append(scatter)

    def _show_gains(self, gains: list[np.ndarray]) -> None:
        self._ensure_layers(len(gains))
        for l, values in enumerate(gains):
            finite = values[np.isfinite(values)]
            counts, _ = np.histogram(np.clip(finite, BIN_EDGES[0], BIN_EDGES[-1]), BIN_EDGES)
            self._hist[l].setData(BIN_EDGES, counts)

    def show_live(self, live: LiveCharacterisation) -> None:
        """Quick estimates from the raw readings measured so far."""
        seen = [int(np.isfinite(g).sum()) for g in live.gains]
        reached = ", ".join(f"layer {l}: {n} of {len(g)}" for l, (n, g) in enumerate(zip(seen, live.gains)))
        self.header.setText(
            f"<b>Measuring</b> (live estimate from the readings so far): {live.configurations} runs done, "
            f"{live.mon_readings} MON readings, {live.c2f_gates} C2F gates. Neurons reached: {reached}.")
        self._show_gains(live.gains)
        for l, scatter in enumerate(self._scatter):
            mine = live.residual_layer == l
            scatter.setData(live.residual_current_a[mine], live.residual_pct[mine])

    def step_done(self, kind: str, outcome) -> None:
        """A characterise step ended: its outcome is the analysis result."""
        self.show_final(outcome)

    def show_final(self, result) -> None:
        """The fitted gains (an :class:`~labctl.families.cmna.characterisation.analysis.AnalysisResult`)."""
        params = result.params
        gains = [layer.a_plus * (layer.scale if np.isfinite(layer.scale) else 1.0) for layer in params.layers]
        self._show_gains(gains)
        parts = []
        for l, info in enumerate(result.summary["layers"]):
            parts.append(f"layer {l}: a+ known to {info['rms_rel_std_a_plus']:.2%}, {info['flagged']} flagged")
        spread = result.summary.get("synapse_spread_per_bit")
        spread_text = f"; synapse spread per bit {spread:.1%}" if spread is not None and np.isfinite(spread) else ""
        self.header.setText(f"<b>Characterised</b> ({result.summary['configurations']} runs, "
                            f"{result.summary['mon_readings']} MON readings, {result.summary['c2f_gates']} "
                            f"C2F gates): {'; '.join(parts)}{spread_text}. Histograms show the fitted gains.")
