"""Evaluation: the on-chip accuracy, the confusion matrix, and the model's prediction beside it.

The on-chip accuracy is the number that counts (seed 004, section 1.4): the
test split classified by the device. Everything here comes from the seam's
:class:`~labctl.families.seam.OnChipOutcome` (``on_chip_accuracy``,
``software_accuracy``, ``n_samples``); the confusion matrix is shown when the
family's GUI parts offer one for the outcome (CMNA's do). The bar chart puts
the software model's accuracy of each weight set next to what the device
achieved.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from labctl.gui.plots import plot_widget, weight_colour
from labctl.recipes import ProgrammedWeights

COLOURMAP = "CET-L12"
MAX_CELL_LABELS = 12
"""Confusion matrices up to this many classes get a count in every cell."""


class EvaluationPanel(QWidget):
    title = "Evaluation"
    stages = ("evaluate",)

    def __init__(self) -> None:
        super().__init__()
        self.accuracy = QLabel("No on-chip evaluation yet.")
        font = self.accuracy.font()
        font.setPointSize(font.pointSize() + 5)
        font.setBold(True)
        self.accuracy.setFont(font)
        self.accuracy.setWordWrap(True)
        self.choice = QComboBox()
        self.choice.currentTextChanged.connect(self._show_confusion)
        top = QHBoxLayout()
        top.addWidget(self.accuracy, 1)
        top.addWidget(QLabel("Confusion matrix of:"))
        top.addWidget(self.choice)
        self.confusion = plot_widget("Confusion matrix (on chip)", "predicted class", "true class")
        self.confusion.invertY(True)
        self.confusion.showGrid(x=False, y=False)
        self.bars = plot_widget("Accuracy on the test split", "weights", "accuracy", None, "%")
        self.bars.setYRange(0, 100)
        self.bars.addLegend(offset=(10, 10))
        self.bars.getAxis("bottom").enableAutoSIPrefix(False)
        plots = QHBoxLayout()
        plots.addWidget(self.confusion, 1)
        plots.addWidget(self.bars, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(plots, 1)
        self._outcomes: dict[str, ProgrammedWeights] = {}
        self._confusions: dict[str, np.ndarray] = {}

    def clear(self) -> None:
        self._outcomes.clear()
        self._confusions.clear()
        self.choice.clear()
        self.confusion.clear()
        self.bars.clear()
        self.accuracy.setText("No on-chip evaluation yet.")

    def show_outcome(self, programmed: ProgrammedWeights, confusion=None) -> None:
        """An evaluate step's outcome (with its confusion matrix when the family offers one)."""
        outcome = programmed.outcome
        if outcome.on_chip_accuracy is None:
            return
        name = programmed.weights_name
        self._outcomes[name] = programmed
        if confusion is not None:
            self._confusions[name] = np.asarray(confusion, float)
            if self.choice.findText(name) < 0:
                self.choice.addItem(name)
            self.choice.setCurrentText(name)
            self._show_confusion(name)
        self._show_bars()
        lines = []
        for name, o in self._outcomes.items():
            accuracy, n = o.outcome.on_chip_accuracy, o.outcome.n_samples
            correct = int(round(accuracy * n))
            lines.append(f"{name}: on-chip accuracy {accuracy:.1%} ({correct} of {n})")
        self.accuracy.setText("<br>".join(lines))

    def accuracy_text(self) -> str:
        return self.accuracy.text()

    def _show_confusion(self, name: str) -> None:
        confusion = self._confusions.get(name)
        if confusion is None:
            return
        outcome = self._outcomes[name]
        k = confusion.shape[0]
        self.confusion.clear()
        image = pg.ImageItem(confusion, levels=(0, max(1.0, confusion.max())))
        image.setColorMap(pg.colormap.get(COLOURMAP))
        self.confusion.addItem(image)
        if k <= MAX_CELL_LABELS:
            for (r, c), count in np.ndenumerate(confusion):
                light = count < 0.6 * confusion.max()
                text = pg.TextItem(f"{int(count)}", color="k" if light else "w", anchor=(0.5, 0.5))
                text.setPos(c + 0.5, r + 0.5)
                self.confusion.addItem(text)
        names = outcome.class_names if len(outcome.class_names) == k else [str(i) for i in range(k)]
        step = max(1, k // 10)
        ticks = [[(i + 0.5, names[i]) for i in range(0, k, step)]]
        self.confusion.getAxis("bottom").setTicks(ticks)
        self.confusion.getAxis("left").setTicks(ticks)
        self.confusion.setRange(xRange=(0, k), yRange=(0, k), padding=0.02)
        self.confusion.setTitle(f"Confusion matrix on chip: {name} weights, {outcome.outcome.n_samples} test samples", size="11pt")

    def _show_bars(self) -> None:
        self.bars.clear()
        names = list(self._outcomes)
        x = np.arange(len(names), dtype=float)
        software = [100 * (self._outcomes[n].outcome.software_accuracy or 0.0) for n in names]
        chip = [100 * self._outcomes[n].outcome.on_chip_accuracy for n in names]
        self.bars.addItem(pg.BarGraphItem(x=x - 0.18, height=software, width=0.34, brush="#bbbbbb",
                                          pen=pg.mkPen("k"), name="software model"))
        brushes = [weight_colour(n, i) for i, n in enumerate(names)]
        self.bars.addItem(pg.BarGraphItem(x=x + 0.18, height=chip, width=0.34, brush=brushes[0], brushes=brushes,
                                          pen=pg.mkPen("k"), name="on chip"))
        for xi, value in zip(x + 0.18, chip):
            label = pg.TextItem(f"{value:.1f} %", color="k", anchor=(0.5, 1.0))
            label.setPos(xi, value)
            self.bars.addItem(label)
        self.bars.getAxis("bottom").setTicks([[(i, n) for i, n in enumerate(names)]])
        self.bars.setXRange(-0.6, len(names) - 0.4)
        self.bars.setYRange(0, 112)
        self.accuracy.setAlignment(Qt.AlignLeft | Qt.AlignVCenter)
