"""``labctl gui``: the Qt application around :class:`labctl.gui.main_window.MainWindow`."""

from __future__ import annotations

import sys
from pathlib import Path

import PySide6
from PySide6.QtWidgets import QApplication

from labctl.errors import ConfigError
from labctl.gui.main_window import MainWindow

BROKEN_QT = {("6.12.0", (3, 11))}
"""PySide6 releases that drop a reference to None/True/False at every call on these Pythons (before
immortal objects, 3.12): the interpreter aborts ('deallocating None') a minute or two into a run."""


def check_qt() -> None:
    """Refuse a PySide6 known to crash on this Python, in words instead of an abort mid-run."""
    if (PySide6.__version__, sys.version_info[:2]) in BROKEN_QT:
        raise ConfigError(f"PySide6 {PySide6.__version__} crashes on Python "
                          f"{sys.version_info.major}.{sys.version_info.minor} (reference counting of None): "
                          "install another version, e.g. pip install 'PySide6-Essentials==6.11.3'")


def run_app(bench: Path | None = None, simulate: str | None = None, seed: int = 1,
            recipe: Path | None = None) -> int:
    """Open the window, connected to ``bench`` or to an embedded simulated die; return the exit status."""
    check_qt()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow(recipe=recipe)
    if bench is not None:
        window.connect_bench_file(bench)
    elif simulate is not None:
        window.start_simulated(simulate, seed)
    window.show()
    return app.exec()
