"""Screenshots of every panel for docs/gui.md, taken from a real run on an embedded simulated die.

Run it in a real window system, e.g. a virtual X server::

    xvfb-run -s "-screen 0 1400x900x24" env QT_QPA_PLATFORM=xcb \\
        python -m labctl.gui.screenshots docs/screenshots --recipe recipes/iris_cmna777.toml

It presses Train and program, grabs the bench and characterisation panels
while the chain configurations are measured (live view), and every panel
when the run has finished.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from labctl.gui.app import check_qt
from labctl.gui.main_window import MainWindow
from labctl.recipes import DEFAULT_RECIPE

LIVE_STAGE = "chain configurations"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder for the PNG files")
    parser.add_argument("--recipe", type=Path, default=DEFAULT_RECIPE)
    parser.add_argument("--part", default="CMNA-777")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    check_qt()

    app = QApplication.instance() or QApplication(sys.argv[:1])
    runs = Path(tempfile.mkdtemp(prefix="labctl-screenshots-"))
    window = MainWindow(recipe=args.recipe, runs_dir=runs)
    window.show()
    window.start_simulated(args.part, args.seed)
    taken_live = False

    def grab(tab: str, name: str) -> None:
        window.tabs.setCurrentWidget(window.tab(tab))
        app.processEvents()
        path = args.out / f"{name}.png"
        window.grab().save(str(path))
        print(f"wrote {path}", flush=True)

    def on_progress(stage: str, done: int, total: int) -> None:
        nonlocal taken_live
        if stage == LIVE_STAGE and done >= max(2, total // 2) and not taken_live:
            taken_live = True
            window._refresh()
            grab("Bench", "bench")
            grab("Characterisation", "characterisation_live")

    def on_finished(outcome: str) -> None:
        for tab in ("Characterisation", "Training", "Programming", "Evaluation"):
            grab(tab, tab.lower())
        print(f"run {outcome}: {window.stage.text()}", flush=True)
        window.close()
        app.quit()

    window.stage_changed.connect(on_progress)
    window.run_finished.connect(on_finished)
    QTimer.singleShot(2500, window.train_and_program)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
