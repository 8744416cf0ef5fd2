"""Report figures inside the window: one tab per matplotlib Figure, drawn on a Qt canvas.

The TTFS panels show the very figures ``labctl report`` writes
(:mod:`labctl.families.ttfs.report.figures`), so the window and the page can
never disagree; this widget only hosts them. PySide6 is imported before
matplotlib's Qt backend so that the backend binds to it.
"""

from __future__ import annotations

from PySide6.QtWidgets import QTabWidget

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg  # noqa: E402 (after PySide6: the binding)
from matplotlib.figure import Figure


class FigureTabs(QTabWidget):
    """Named figures, one tab each; ``show_figures`` replaces them all, keeping the tab the user was on."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, Figure] = {}
        """What the tabs show, by tab name (what the tests read)."""

    def show_figures(self, figures: dict[str, Figure]) -> None:
        current = self.tabText(self.currentIndex()) if self.count() else None
        self.clear()
        self.figures = dict(figures)
        for name, fig in self.figures.items():
            self.addTab(FigureCanvasQTAgg(fig), name)
        if current in self.figures:
            self.setCurrentIndex(list(self.figures).index(current))

    def clear(self) -> None:
        while self.count():
            widget = self.widget(0)
            self.removeTab(0)
            widget.deleteLater()
        self.figures = {}
