"""Bench status: what is connected, its status, the live role readings and their recent history.

Readings come from :class:`labctl.gui.worker.LiveReadings` (the window polls
it on a timer): while a recipe runs, every SMU reading and status answer the
pipeline makes; while idle, the poller's readings once a second. What the
device is comes from its :class:`~labctl.families.seam.DeviceDescription`;
which role readings are shown and which one is plotted is the family's choice
(its GUI parts, :class:`labctl.gui.family.FamilyGui`; CMNA: VDD, EXT_IN and MON
after contract section 3).
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QGroupBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from labctl.gui.family import FamilyGui, Key
from labctl.gui.plots import LAYER_COLOURS, plot_widget
from labctl.gui.worker import LiveSnapshot


class BenchPanel(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.source = QLabel("not connected")
        self.die = QLabel("-")
        self.temperature = QLabel("-")
        self.flags = QLabel("-")
        self.values: dict[Key, QLabel] = {}
        self._units: dict[Key, str] = {}
        for label in (self.source, self.die, self.flags):
            label.setWordWrap(True)
        self.form = QFormLayout()
        self.form.addRow("Bench:", self.source)
        self.form.addRow("Device:", self.die)
        self.form.addRow("Temperature:", self.temperature)
        self.form.addRow("Status:", self.flags)
        box = QGroupBox("Bench and device")
        box.setLayout(self.form)
        self._big = self.temperature.font()
        self._big.setPointSize(self._big.pointSize() + 2)
        self.temperature.setFont(self._big)

        self.temperature_plot = plot_widget("Die temperature", "time", "temperature", "s", "°C")
        self.reading_plot = plot_widget("Readings", "time", "reading", "s")
        self.temperature_curve = self.temperature_plot.plot(pen=pg.mkPen(LAYER_COLOURS[3], width=2))
        self.reading_curve = self.reading_plot.plot(pen=None, symbol="o", symbolSize=4, symbolBrush=LAYER_COLOURS[0],
                                                    symbolPen=None)
        plots = QVBoxLayout()
        plots.addWidget(self.temperature_plot)
        plots.addWidget(self.reading_plot)
        layout = QHBoxLayout(self)
        layout.addWidget(box, 2)
        layout.addLayout(plots, 3)

    def set_family(self, parts: FamilyGui) -> None:
        """The rows of the family's role readings and its plotted reading (on connecting)."""
        while self.form.rowCount() > 4:
            self.form.removeRow(2)
        self.values, self._units = {}, {}
        for row, (key, title, unit) in enumerate(parts.readings):
            label = QLabel("-")
            label.setTextInteractionFlags(Qt.TextSelectableByMouse)
            label.setFont(self._big)
            self.form.insertRow(2 + row, f"{title}:", label)
            self.values[key], self._units[key] = label, unit
        plotted = parts.plotted_reading
        self.reading_plot.setVisible(plotted is not None)
        if plotted is not None:
            _, title, unit = plotted
            self.reading_plot.setTitle(title, size="11pt")
            self.reading_plot.setLabel("left", title, units=unit)
        self.reading_curve.setData([], [])
        self.temperature_curve.setData([], [])
        self.die.setText("-")
        self.temperature.setText("-")
        self.flags.setText("-")

    def show_snapshot(self, snap: LiveSnapshot) -> None:
        now = time.time()
        self.source.setText(snap.source)
        if snap.description is not None:
            self.die.setText("\n".join(line.strip() for line in snap.description.lines()))
        for key, label in self.values.items():
            if key in snap.values:
                value, t = snap.values[key]
                label.setText(f"{pg.siFormat(value, precision=4, suffix=self._units[key])}   ({_age(now - t)})")
        status = snap.status
        if status is not None:
            if status.temperature_c is not None:
                self.temperature.setText(f"{status.temperature_c:.2f} °C")
            self.flags.setText(status.words)
        for curve, name in ((self.temperature_curve, "temperature_c"), (self.reading_curve, "plotted")):
            points = snap.history.get(name, [])
            if points:
                t, v = np.array(points).T
                curve.setData(t - now, v)


def _age(seconds: float) -> str:
    return "just now" if seconds < 1.5 else f"{seconds:.0f} s ago"
