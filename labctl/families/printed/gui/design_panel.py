"""Design and verification: what a bespoke design predicts for printed samples, and what the print did.

A printed circuit cannot be reprogrammed, so training ends in a prediction
over printed samples of the run (the design record: the accuracy's mean and
90 % interval, the power); verification sets the printed sample beside it.
One row per design: the predicted interval as a bar, its mean and the
software (nominal circuit) accuracy as marks, and after verification the
printed accuracy; the power plot puts the measured power beside the
predicted. The confusion matrix of a verification is the shell's Evaluation
tab (``confusion_matrix`` in :mod:`.panels`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from labctl.gui.plots import plot_widget

if TYPE_CHECKING:
    from labctl.families.printed.design import Design
    from labctl.families.printed.verification import Verification

INTERVAL_COLOUR = "#9ecae1"
PRINTED_COLOUR = "#d62728"


@dataclass
class DesignRow:
    """One design's prediction (fractions, W) and, once verified, its printed sample's figures."""

    name: str
    how: str
    """How it was trained (provenance in words), empty when only its verification was seen."""
    predicted_mean: float
    predicted_interval: tuple[float, float]
    software: float
    predicted_power_w: float
    printed: float | None = None
    measured_power_w: float | None = None

    def same_prediction(self, verification: Verification) -> bool:
        """Whether a verification is of this design: it copies the design's prediction from the design file."""
        return (self.printed is None and self.predicted_mean == verification.predicted_accuracy
                and tuple(self.predicted_interval) == tuple(verification.predicted_interval)
                and self.predicted_power_w == verification.predicted_power_w)

    def line(self, number: int) -> str:
        lo, hi = self.predicted_interval
        how = f" ({self.how})" if self.how else ""
        text = (f"{number}. <b>{self.name}</b>{how}: predicted {self.predicted_mean:.1%} over printed samples "
                f"(90 %: {lo:.1%} to {hi:.1%}), software {self.software:.1%}, power {self.predicted_power_w * 1e3:.4g} mW predicted")
        if self.printed is not None:
            inside = "inside" if lo <= self.printed <= hi else "OUTSIDE"
            text += f"; <b>printed {self.printed:.1%}</b> ({inside} the interval)"
        if self.measured_power_w is not None:
            text += f", {self.measured_power_w * 1e3:.4g} mW measured"
        return text


def design_words(design: Design) -> str:
    """How a design was trained, in words (its provenance)."""
    p = design.provenance
    words = ["nominal" if p.nominal else "variation-aware", "fixed circuits" if p.fixed_circuits else "learnable cells"]
    if p.power_weight:
        words.append(f"power weight {p.power_weight:g}")
    return ", ".join(words)


class DesignPanel(QWidget):
    title = "Design"
    stages = ("train", "evaluate")

    def __init__(self) -> None:
        super().__init__()
        self.header = QLabel("No design yet.")
        self.header.setWordWrap(True)
        self.accuracy = plot_widget("Test accuracy: predicted 90 % interval and mean, printed sample", "accuracy",
                                    "design (numbered as above)", "%")
        self.accuracy.addLegend(offset=(10, 10))
        self.power = plot_widget("Power: predicted and measured", "design (numbered as above)", "power", None, "W")
        self.power.addLegend(offset=(10, 10))
        self.rows: list[DesignRow] = []
        plots = QHBoxLayout()
        plots.addWidget(self.accuracy, 3)
        plots.addWidget(self.power, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addLayout(plots, 1)

    def clear(self) -> None:
        self.rows.clear()
        self._draw()

    def step_done(self, kind: str, outcome) -> None:
        """A train step's (design, report) or an evaluate step's :class:`~labctl.recipes.ProgrammedWeights`."""
        if kind == "train":
            self.add_design(outcome[0])
        else:
            self.add_verification(outcome.weights_name, outcome.result)

    def add_design(self, design: Design) -> None:
        """A trained design (the train step's outcome)."""
        p = design.prediction
        self.rows.append(DesignRow(f"design {len(self.rows) + 1}", design_words(design), p.test_mean,
                                   (p.test_q05, p.test_q95), p.software_accuracy, p.power_w))
        self._draw()

    def add_verification(self, weights_name: str, verification: Verification) -> None:
        """A verified printed sample: joins its design's row (or makes one when its design was not trained here)."""
        row = next((r for r in self.rows if r.same_prediction(verification)), None)
        if row is None:
            row = DesignRow(weights_name, "", verification.predicted_accuracy, tuple(verification.predicted_interval),
                            verification.software_accuracy, verification.predicted_power_w)
            self.rows.append(row)
        row.name = weights_name
        row.printed, row.measured_power_w = verification.printed_accuracy, verification.supply_power_w
        self._draw()

    def _draw(self) -> None:
        self.header.setText("<br>".join(r.line(i + 1) for i, r in enumerate(self.rows)) or "No design yet.")
        self.accuracy.clear()
        self.power.clear()
        if not self.rows:
            return
        y = np.arange(len(self.rows), dtype=float)
        for i, row in enumerate(self.rows):
            self.accuracy.plot([100 * v for v in row.predicted_interval], [i, i],
                               pen=pg.mkPen(INTERVAL_COLOUR, width=10), name="predicted 90 %" if i == 0 else None)
        self._marks(y, [r.predicted_mean for r in self.rows], "d", "#08519c", "predicted mean")
        self._marks(y, [r.software for r in self.rows], "x", "#636363", "software (nominal circuit)")
        printed = [r for r in self.rows if r.printed is not None]
        if printed:
            self._marks(np.array([self.rows.index(r) for r in printed], float), [r.printed for r in printed], "star",
                        PRINTED_COLOUR, "printed sample", size=20)
        self.accuracy.getAxis("left").setTicks([_numbers(len(self.rows))])
        self.accuracy.setYRange(-0.6, len(self.rows) - 0.4)
        self.accuracy.setXRange(0, 100)
        self._power_bars(y)

    def _marks(self, y: np.ndarray, accuracies: list[float], symbol: str, colour: str, name: str,
               size: int = 14) -> None:
        self.accuracy.addItem(pg.ScatterPlotItem(100 * np.asarray(accuracies), y, symbol=symbol, size=size,
                                                 pen=pg.mkPen(colour), brush=colour, name=name))

    def _power_bars(self, x: np.ndarray) -> None:
        """Predicted power of every design; measured beside it where a printed sample was verified."""
        self.power.addItem(pg.BarGraphItem(x=x - 0.18, height=[r.predicted_power_w for r in self.rows], width=0.34,
                                           brush="#bbbbbb", pen=pg.mkPen("k"), name="predicted"))
        measured = [(i, r.measured_power_w) for i, r in enumerate(self.rows) if r.measured_power_w is not None]
        if measured:
            index, power_w = zip(*measured)
            self.power.addItem(pg.BarGraphItem(x=np.array(index) + 0.18, height=power_w, width=0.34,
                                               brush=PRINTED_COLOUR, pen=pg.mkPen("k"), name="measured (printed)"))
        self.power.getAxis("bottom").setTicks([_numbers(len(self.rows))])
        self.power.setXRange(-0.6, len(self.rows) - 0.4)


def _numbers(n: int) -> list[tuple[float, str]]:
    """Row ticks 1..n (the header's numbering; design names are too long for an axis)."""
    return [(float(i), str(i + 1)) for i in range(n)]
