"""Characterisation: every ACT and NEG test structure's sweep with its fitted tanh, eps and the flagged ones.

While the sample is measured the panel shows the sweeps read so far (the
partial file, re-read as points arrive); when the step ends it shows the
file's fits: one curve per fitted structure over its points, the run's eps,
sheet resistances, and each flagged structure with the reason. Everything is
read through :mod:`labctl.families.printed.report.contents`, so the panel and
``labctl report`` show the same numbers.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListWidget, QVBoxLayout, QWidget

from labctl.families.printed.characterisation.plan import SWEEP_LIMIT_V
from labctl.families.printed.report.contents import ProcessReport, load
from labctl.families.printed.report.words import reason
from labctl.report_page import with_se
from labctl.gui.plots import LAYER_COLOURS, plot_widget

KINDS = ("ACT", "NEG")
FIT_V = np.linspace(-SWEEP_LIMIT_V, SWEEP_LIMIT_V, 151)


class CharacterisationPanel(QWidget):
    title = "Characterisation"
    stages = ("characterise",)

    def __init__(self) -> None:
        super().__init__()
        self.header = QLabel("No characterisation yet.")
        self.header.setWordWrap(True)
        self.plots = {kind: plot_widget(f"{kind} structures", "V_in at pad", "V_out", "V", "V") for kind in KINDS}
        self.fit_curves: dict[str, list[pg.PlotDataItem]] = {kind: [] for kind in KINDS}
        """Per kind, one fitted tanh per structure that has one (what the tests count)."""
        self.flagged = QListWidget()
        self.flagged.setWordWrap(True)
        plots = QHBoxLayout()
        for plot in self.plots.values():
            plots.addWidget(plot)
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addLayout(plots, 3)
        layout.addWidget(QLabel("Flagged structures (dashed curves), and why:"))
        layout.addWidget(self.flagged, 1)

    def clear(self) -> None:
        for kind, plot in self.plots.items():
            plot.clear()
            self.fit_curves[kind] = []
        self.flagged.clear()
        self.header.setText("Characterisation starting...")

    def show_live(self, report: ProcessReport) -> None:
        """The sweeps measured so far (the live estimate: the partial file as it stands)."""
        self._show(report)
        swept = sum(len(s.sweep.v_in_v) > 0 for s in report.structures)
        self.header.setText(f"<b>Measuring</b> {report.sample}: {swept} of {len(report.structures)} structures "
                            f"swept so far; fits follow when every structure is measured.")

    def step_done(self, kind: str, outcome) -> None:
        """A characterise step ended: its outcome is the :class:`ProcessOutcome`, whose file holds the sweeps."""
        self.show_final(load(outcome.path))

    def show_final(self, report: ProcessReport) -> None:
        self._show(report)
        used = sum(s.fit is not None and s.fit.used for s in report.structures)
        parts = [f"<b>Characterised</b> process {report.process}, sample {report.sample}: {used} of "
                 f"{len(report.structures)} structures fitted into the process maps"]
        if report.eps is not None:
            parts.append(f"eps {with_se(report.eps.eps, report.eps.se)}")
        cal = report.calibration
        if cal is not None:
            parts.append(f"R_s RH {with_se(cal.rh_ohm_sq, cal.rh_ohm_sq_se)} ohm/sq, "
                         f"RL {with_se(cal.rl_ohm_sq, cal.rl_ohm_sq_se)} ohm/sq")
        parts.append(f"{len(report.flagged)} flagged")
        self.header.setText("; ".join(parts) + "." + "".join(f"<br>{m}" for m in report.missing))

    def _show(self, report: ProcessReport) -> None:
        for kind, plot in self.plots.items():
            plot.clear()
            self.fit_curves[kind] = []
            structures = report.of_kind(kind)
            for i, structure in enumerate(structures):
                colour = pg.mkColor(LAYER_COLOURS[i % len(LAYER_COLOURS)])
                sweep = structure.sweep
                plot.addItem(pg.ScatterPlotItem(sweep.v_in_v, sweep.v_out_v, size=4, pen=None, brush=colour))
                if structure.fit is not None:
                    style = Qt.DashLine if structure.flags else Qt.SolidLine
                    curve = plot.plot(FIT_V, structure.model_v(FIT_V), pen=pg.mkPen(colour, width=1.5, style=style))
                    self.fit_curves[kind].append(curve)
            plot.setTitle(f"{kind} structures: {len(self.fit_curves[kind])} of {len(structures)} fitted "
                          f"(points measured, lines fitted tanh)", size="10pt")
        self.flagged.clear()
        for s in report.flagged:
            self.flagged.addItem(f"{s.id} ({s.kind}, {s.cell.design}): {', '.join(s.flags)}: {reason(s.flags)}")
