"""Bench status: what is connected, the live pad readings and the die temperature.

Readings come from :class:`labctl.gui.worker.LiveReadings` (the window polls
it on a timer): while a recipe runs, every SMU reading and STATUS answer the
pipeline makes; while idle, the poller's readings once a second. Pads follow
contract section 3: VDD (supply, 1.80 V), EXT_IN (source, 0 to 500 nA),
MON (monitor, held at 0.9 V, the die sinks the copy current).
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QGroupBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from labctl.gui.plots import LAYER_COLOURS, plot_widget
from labctl.gui.worker import LiveSnapshot

ROWS = (
    (("supply", "voltage"), "VDD (supply voltage)", "V"),
    (("supply", "current"), "VDD supply current", "A"),
    (("source", "voltage"), "EXT_IN pad voltage", "V"),
    (("monitor", "current"), "MON current (sunk by the die)", "A"),
)


class BenchPanel(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.source = QLabel("not connected")
        self.die = QLabel("-")
        self.values = {key: QLabel("-") for key, _, _ in ROWS}
        self.temperature = QLabel("-")
        self.flags = QLabel("-")
        for label in (self.source, self.die, self.flags):
            label.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Bench:", self.source)
        form.addRow("Die (IDENTIFY):", self.die)
        for key, title, _ in ROWS:
            self.values[key].setTextInteractionFlags(Qt.TextSelectableByMouse)
            form.addRow(f"{title}:", self.values[key])
        form.addRow("Die temperature (STATUS):", self.temperature)
        form.addRow("STATUS flags:", self.flags)
        box = QGroupBox("Bench and die")
        box.setLayout(form)
        big = self.values[("monitor", "current")].font()
        big.setPointSize(big.pointSize() + 2)
        for label in (*self.values.values(), self.temperature):
            label.setFont(big)

        self.temperature_plot = plot_widget("Die temperature", "time", "temperature", "s", "°C")
        self.mon_plot = plot_widget("MON current", "time", "MON current", "s", "A")
        self.temperature_curve = self.temperature_plot.plot(pen=pg.mkPen(LAYER_COLOURS[3], width=2))
        self.mon_curve = self.mon_plot.plot(pen=None, symbol="o", symbolSize=4, symbolBrush=LAYER_COLOURS[0],
                                            symbolPen=None)
        plots = QVBoxLayout()
        plots.addWidget(self.temperature_plot)
        plots.addWidget(self.mon_plot)
        layout = QHBoxLayout(self)
        layout.addWidget(box, 2)
        layout.addLayout(plots, 3)

    def show_snapshot(self, snap: LiveSnapshot) -> None:
        now = time.time()
        self.source.setText(snap.source)
        chip = snap.chip
        if chip is not None:
            self.die.setText(f"{chip.serial} ({chip.part}), layers {'-'.join(map(str, chip.layer_sizes))}, "
                             f"firmware {chip.firmware[0]}.{chip.firmware[1]}")
        for key, _, unit in ROWS:
            if key in snap.values:
                value, t = snap.values[key]
                self.values[key].setText(f"{pg.siFormat(value, precision=4, suffix=unit)}   ({_age(now - t)})")
        if snap.temperature_c is not None:
            self.temperature.setText(f"{snap.temperature_c:.2f} °C")
        self.flags.setText(snap.flags or "-")
        for curve, name in ((self.temperature_curve, "temperature_c"), (self.mon_curve, "mon_a")):
            points = snap.history.get(name, [])
            if points:
                t, v = np.array(points).T
                curve.setData(t - now, v)


def _age(seconds: float) -> str:
    return "just now" if seconds < 1.5 else f"{seconds:.0f} s ago"
