"""Characterisation: the die's fitted parameters, the ladders, the DC shape and the reversal potentials.

While the die is measured the panel shows the steps finished so far and their
readings (the partial file, re-read as steps end); when the step ends it
shows the file's fits. Everything is read through
:mod:`labctl.families.ttfs.report.contents` and drawn by
:mod:`labctl.families.ttfs.report.figures`, so the panel and ``labctl report``
show the same numbers and the same figures.
"""

from __future__ import annotations

import html

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from labctl.families.ttfs.gui.figure_tabs import FigureTabs
from labctl.families.ttfs.report import figures
from labctl.families.ttfs.report.contents import (
    POLARITIES,
    STEPS,
    TtfsReport,
    capacitance_median_f,
    delay_median_ns,
    load,
    polarity_of,
)
from labctl.families.ttfs.report.words import measured


class CharacterisationPanel(QWidget):
    title = "Characterisation"
    stages = ("characterise",)

    def __init__(self) -> None:
        super().__init__()
        self.header = QLabel("No characterisation yet.")
        self.header.setWordWrap(True)
        self.tabs = FigureTabs()
        self._live_steps: list[str] | None = None
        """The steps the live view last drew (it redraws only when another step has ended)."""
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(self.tabs, 1)

    def clear(self) -> None:
        self.tabs.clear()
        self._live_steps = None
        self.header.setText("Characterisation starting...")

    def show_live(self, report: TtfsReport) -> None:
        """The steps measured so far (the live estimate: the partial file as it stands)."""
        self.header.setText(f"<b>Measuring</b> {html.escape(report.serial)}: {len(report.steps_done)} of "
                            f"{len(STEPS)} steps read ({html.escape(', '.join(report.steps_done) or 'none yet')});"
                            f" fits follow when every step is measured.")
        if report.steps_done != self._live_steps:
            self._live_steps = list(report.steps_done)
            self.tabs.show_figures(_figures(report))

    def step_done(self, kind: str, outcome) -> None:
        """A characterise step ended: its :class:`~labctl.families.seam.CharacterisationOutcome` names the file."""
        self.show_final(load(outcome.path))

    def show_final(self, report: TtfsReport) -> None:
        self._live_steps = None
        self.header.setText(summary_text(report))
        self.tabs.show_figures(_figures(report))


def _figures(report: TtfsReport) -> dict:
    """The report's characterisation figures that the file has data for (as the page leaves the others out)."""
    has = {"Neurons": report.params is not None, "Ladders": report.ladder is not None,
           "DC shape, lambda": report.dc_shape is not None, "Reversal": bool(report.reversal)}
    makers = {"Neurons": figures.neurons, "Ladders": figures.ladder, "DC shape, lambda": figures.dc_shape,
              "Reversal": figures.reversal}
    return {name: make(report) for name, make in makers.items() if has[name]}


def summary_text(report: TtfsReport) -> str:
    """The header: the die, its headline figures with their errors, and what a partial file lacks."""
    bench = f" in {report.bench_s:.1f} s of bench time" if report.bench_s is not None else ""
    parts = [f"<b>Characterised</b> {html.escape(report.serial)} ({html.escape(report.part)}, "
             f"{'-'.join(map(str, report.layer_sizes))}){bench}"]
    p = report.params
    if p is not None:
        parts.append(f"{report.neurons} neurons: C median {capacitance_median_f(p) * 1e15:.4g} fF, "
                     f"d median {delay_median_ns(p):.4g} ns")
        parts.append(f"V_REST {measured(p.v_rest_v, 1e3, 'mV')}, V_K {measured(p.v_k_v, 1e3, 'mV')}")
        for polarity, name in POLARITIES:
            pol = polarity_of(p, polarity)
            parts.append(f"{name}: I_LSB {measured(pol.i_lsb_a, 1e9, 'nA')}, lambda "
                         f"{measured(pol.lam_per_v, 1.0, '/V')}, reversal {measured(pol.reversal_v, 1e3, 'mV')}")
    return "; ".join(parts) + "." + "".join(f"<br>{html.escape(m)}" for m in report.missing)
