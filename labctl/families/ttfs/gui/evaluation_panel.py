"""Spike times: what the on-chip evaluation of each weight set did, in time.

The shell's Evaluation tab has the accuracy and the confusion matrix of every
family; a TTFS die decides by which output fires first, so this panel adds
what only it can show: the first-spike time of the winning output per true
class (right and wrong winners stacked), how often no output fired, and the
energy per inference the four SMUs measured. The figure is the report's
(:func:`labctl.families.ttfs.report.figures.evaluation`).
"""

from __future__ import annotations

import html

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from labctl.families.ttfs.gui.figure_tabs import FigureTabs
from labctl.families.ttfs.report import figures
from labctl.families.ttfs.report.evaluations import EvaluationRecord, from_outcome
from labctl.report_page import with_se


class SpikeTimesPanel(QWidget):
    title = "Spike times"
    stages = ("evaluate",)

    def __init__(self) -> None:
        super().__init__()
        self.header = QLabel("No on-chip evaluation yet.")
        self.header.setWordWrap(True)
        self.choice = QComboBox()
        self.choice.currentTextChanged.connect(self._show_figure)
        self.tabs = FigureTabs()
        self.records: dict[str, EvaluationRecord] = {}
        top = QHBoxLayout()
        top.addWidget(self.header, 1)
        top.addWidget(QLabel("Weights:"))
        top.addWidget(self.choice)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.tabs, 1)

    def clear(self) -> None:
        self.records.clear()
        self.choice.clear()
        self.tabs.clear()
        self.header.setText("No on-chip evaluation yet.")

    def step_done(self, kind: str, outcome) -> None:
        """An evaluate step's :class:`~labctl.recipes.ProgrammedWeights` (a program step's classifies nothing)."""
        record = from_outcome(outcome.weights_name, outcome.outcome)
        if record is not None:
            self.show_record(record)

    def show_record(self, record: EvaluationRecord) -> None:
        """One weight set's evaluation (from a step's outcome, or an ``evaluation_<name>.json`` record)."""
        self.records[record.name] = record
        self.header.setText("<br>".join(evaluation_line(r) for r in self.records.values()))
        if self.choice.findText(record.name) < 0:
            self.choice.addItem(record.name)
        self.choice.setCurrentText(record.name)
        self._show_figure(record.name)

    def _show_figure(self, name: str) -> None:
        record = self.records.get(name)
        if record is not None:
            self.tabs.show_figures({"Confusion and spike times": figures.evaluation(record)})


def evaluation_line(r: EvaluationRecord) -> str:
    """One weight set in words: accuracy, the patterns no output decided, the energy per inference."""
    parts = [f"<b>{html.escape(r.name)}</b>: on-chip accuracy "
             + ("-" if r.accuracy is None else f"{r.accuracy:.1%}") + f" of {r.n_samples} test patterns"]
    if r.software_accuracy is not None:
        parts[0] += f" (model {r.software_accuracy:.1%})"
    if r.no_spike_fraction is not None:
        parts.append(f"no output fired on {r.no_spike_fraction:.1%}, {r.ties} ties")
    if r.energy_per_inference_j is not None:
        se = r.energy_se_j if r.energy_se_j is not None else float("nan")
        parts.append(f"energy per inference {with_se(r.energy_per_inference_j, se, 1e12)} pJ")
    return "; ".join(parts)
