"""The one-click window: connect to a bench (or an embedded simulated die), press Train and program.

The window is family-blind: the family comes from the bench file when
connecting (:func:`labctl.families.for_bench`), and what only the family knows
comes from its GUI parts (:class:`labctl.gui.family.FamilyGui`). Tabs: the
bench, the family's stage panels (CMNA: characterisation, programming), training
and evaluation, in pipeline order. The Train and program button runs the same recipe
file as ``labctl run`` (default ``recipes/train_and_program.toml``) in a
worker thread and records the session in the run folder; Stop halts it
safely at any point (every output off, data kept). Problems appear at the
bottom of the window as one line of words.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

from PySide6.QtCore import QThread, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from labctl import families
from labctl.bench_file import load_bench_file
from labctl.errors import LabctlError
from labctl.families.seam import STAGES
from labctl.gui.bench_panel import BenchPanel
from labctl.gui.evaluation_panel import EvaluationPanel
from labctl.gui.family import FamilyGui
from labctl.gui.plots import configure
from labctl.gui.training_panel import TrainingPanel
from labctl.gui.worker import LiveReadings, RecipeWorker, StatusPoller
from labctl.recipes import DEFAULT_RECIPE, LoadedRecipe, load_recipe, resolve_run_dir

SIMULATED = tuple(f"Simulated {part}" for part in families.demo_parts())
BENCH_FILE = "Bench file"
REFRESH_MS = 250


class MainWindow(QMainWindow):
    """``run_finished`` carries the outcome: "completed", "stopped" or "failed"; ``stage_changed`` the
    progress of a run (stage, done, total). Both are emitted in the GUI thread."""

    run_finished = Signal(str)
    stage_changed = Signal(str, int, int)

    def __init__(self, recipe: Path | None = None, runs_dir: Path | None = None) -> None:
        super().__init__()
        configure()
        self.setWindowTitle("labctl: characterise, train and program a device")
        self.live = LiveReadings()
        self.parts: FamilyGui | None = None
        """The connected bench's family, as the window uses it."""
        self.family_panels: list[QWidget] = []
        self.sim = None
        self.bench_file: Path | None = None
        self.runs_dir = runs_dir
        self.run_dir: Path | None = None
        self.poller: StatusPoller | None = None
        self.worker: RecipeWorker | None = None
        self.thread: QThread | None = None
        self._loaded: LoadedRecipe | None = None
        self._tmp = Path(tempfile.mkdtemp(prefix="labctl-gui-"))
        self._closing = False

        controls = self._build_controls(recipe)
        self._build_panels()
        status = self._build_status()
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addLayout(controls)
        layout.addWidget(self.steps)
        layout.addWidget(self.tabs, 1)
        layout.addLayout(status)
        layout.addWidget(self.message)
        self.setCentralWidget(central)
        self.resize(1280, 820)

        self.timer = QTimer(self)
        self.timer.timeout.connect(self._refresh)
        self.timer.start(REFRESH_MS)

    def _build_controls(self, recipe: Path | None) -> QGridLayout:
        """The two rows a user acts on, in the order of use: which bench (a simulated die and its seed, or
        a bench file) and Connect; which recipe, Train and program, Stop. Nothing can run before a bench
        is connected, and Stop only while a run is going."""
        self.source = QComboBox()
        self.source.addItems([*SIMULATED, BENCH_FILE])
        self.seed = QSpinBox()
        self.seed.setRange(0, 999_999)
        self.seed.setValue(1)
        self.seed.setPrefix("seed ")
        self.bench_path = QLineEdit()
        self.bench_path.setPlaceholderText("bench.toml (for a real bench)")
        browse_bench = QPushButton("Browse...")
        browse_bench.clicked.connect(self._browse_bench)
        self.connect_button = QPushButton("Connect")
        self.connect_button.clicked.connect(self.connect_selected)
        self.recipe_path = QLineEdit(str(recipe or DEFAULT_RECIPE))
        browse_recipe = QPushButton("Browse...")
        browse_recipe.clicked.connect(self._browse_recipe)
        self.run_button = QPushButton("Train and program")
        self.run_button.setStyleSheet("font-weight: bold; padding: 6px 18px;")
        self.run_button.clicked.connect(self.train_and_program)
        self.run_button.setEnabled(False)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setStyleSheet("font-weight: bold; color: #b00000; padding: 6px 18px;")
        self.stop_button.clicked.connect(self.stop)
        self.stop_button.setEnabled(False)

        controls = QGridLayout()
        controls.addWidget(QLabel("Bench:"), 0, 0)
        controls.addWidget(self.source, 0, 1)
        controls.addWidget(self.seed, 0, 2)
        controls.addWidget(self.bench_path, 0, 3)
        controls.addWidget(browse_bench, 0, 4)
        controls.addWidget(self.connect_button, 0, 5)
        controls.addWidget(QLabel("Recipe:"), 1, 0)
        controls.addWidget(self.recipe_path, 1, 1, 1, 3)
        controls.addWidget(browse_recipe, 1, 4)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.stop_button)
        controls.addLayout(buttons, 1, 5)
        controls.setColumnStretch(3, 1)
        return controls

    def _build_panels(self) -> None:
        """The shell's tabs: bench, training, evaluation (the family's stage panels join on connecting)."""
        self.bench_panel = BenchPanel()
        self.training = TrainingPanel()
        self.evaluation = EvaluationPanel()
        self.tabs = QTabWidget()
        self._arrange_tabs()

    def _arrange_tabs(self) -> None:
        """One tab per pipeline stage, in pipeline order (a panel sorts by its first stage), so that a run
        moves left to right through them; the bench first."""
        panels = [self.training, self.evaluation, *self.family_panels]
        panels.sort(key=lambda panel: min(STAGES.index(kind) for kind in panel.stages))
        while self.tabs.count():
            self.tabs.removeTab(0)
        self.tabs.addTab(self.bench_panel, "Bench")
        for panel in panels:
            self.tabs.addTab(panel, panel.title)

    def _set_family(self, parts: FamilyGui) -> None:
        """The connected bench's family: its stage panels become tabs, its readings the bench panel's rows."""
        self.bench_panel.set_family(parts)
        if self.parts is not None and self.parts.family is parts.family:
            return
        for panel in self.family_panels:
            panel.deleteLater()
        self.parts = parts
        self.family_panels = parts.stage_panels()
        self._arrange_tabs()

    def tab(self, title: str) -> QWidget | None:
        """The panel of the tab with this title (None: no such tab)."""
        for i in range(self.tabs.count()):
            if self.tabs.tabText(i) == title:
                return self.tabs.widget(i)
        return None

    def _tab_of_step(self, kind: str) -> int:
        """The first tab (in pipeline order) whose panel shows steps of this kind; the bench otherwise."""
        for i in range(1, self.tabs.count()):
            if kind in getattr(self.tabs.widget(i), "stages", ()):
                return i
        return 0

    def _build_status(self) -> QHBoxLayout:
        """Where a run reports itself: the recipe's steps, the current stage with its progress, and a line
        for problems in words (never a traceback)."""
        self.steps = QLabel("")
        self.stage = QLabel("Connect to a bench or start a simulated die.")
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        status = QHBoxLayout()
        status.addWidget(self.stage, 2)
        status.addWidget(self.progress, 1)
        return status

    # -- connecting ------------------------------------------------------------------

    def connect_selected(self) -> None:
        choice = self.source.currentText()
        if choice == BENCH_FILE:
            path = self.bench_path.text().strip()
            if not path:
                self.show_error("choose a bench file first (Browse...)")
                return
            self.connect_bench_file(Path(path))
        else:
            self.start_simulated(choice.removeprefix("Simulated "), self.seed.value())

    def start_simulated(self, part: str, seed: int) -> None:
        """Start an embedded simulated device of ``part`` (its own bridge and instruments on loopback), connect."""
        self._disconnect()
        self.sim = families.simulator_of(families.for_part(part)).start(part, seed, served=False).start()
        self.source.setCurrentText(f"Simulated {part}")
        self.seed.setValue(seed)
        self.connect_bench_file(self.sim.write_bench_file(self._tmp / "bench.toml"), keep_sim=True)

    def connect_bench_file(self, path: Path, keep_sim: bool = False) -> None:
        if not keep_sim:
            self._disconnect()
            self.source.setCurrentText(BENCH_FILE)
            self.bench_path.setText(str(path))
        try:
            parts = FamilyGui(families.for_bench(load_bench_file(Path(path))))
        except LabctlError as exc:
            self.show_error(str(exc))
            return
        self._set_family(parts)
        plotted = parts.plotted_reading
        self.live = LiveReadings(plotted=plotted[0] if plotted else None)
        self.bench_file = Path(path)
        self.live.set_source(f"{self.bench_file} (connecting...)")
        self._start_poller()
        self.run_button.setEnabled(True)
        self.stage.setText("Connected: press Train and program.")
        self.clear_error()

    def _start_poller(self) -> None:
        assert self.bench_file is not None and self.parts is not None
        self.poller = StatusPoller(self.bench_file, self.live, self.parts).start()

    def _disconnect(self) -> None:
        """Stop the poller (in the background: it may be waiting for a slow bench) and any embedded die."""
        if self.poller is not None:
            poller, self.poller = self.poller, None
            if self.sim is not None:
                poller.stop()  # before the embedded die goes away
            else:
                threading.Thread(target=poller.stop, daemon=True).start()
        if self.sim is not None:
            self.sim.stop()
            self.sim = None
        self.live = LiveReadings()
        self.bench_file = None
        self.run_button.setEnabled(False)

    # -- running ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.worker is not None

    def train_and_program(self) -> None:
        """Run the recipe file in a worker thread (the button)."""
        if self.running or self.bench_file is None or self.parts is None:
            return
        try:
            # bound to the bench's family now, so a step the family refuses is shown before anything runs
            loaded = load_recipe(Path(self.recipe_path.text().strip())).bound_to(self.parts.family)
        except LabctlError as exc:
            self.show_error(str(exc))
            return
        self.clear_error()
        self._loaded = loaded
        run_dir = resolve_run_dir(loaded)
        self.run_dir = self.runs_dir / run_dir.name if self.runs_dir else run_dir
        for panel in (self.training, self.evaluation, *self.family_panels):
            panel.clear()
        self._show_steps(-1)
        worker = RecipeWorker(loaded, self.bench_file, self.run_dir, self.live, self.poller, self.parts)
        self.poller = None
        thread = QThread(self)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.progress.connect(self._on_progress)
        worker.step_started.connect(self._on_step_started)
        worker.epoch.connect(self.training.add_epoch)
        worker.live_estimate.connect(self._on_live_estimate)
        worker.step_done.connect(self._on_step_done)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.stopped.connect(self._on_stopped)
        self.worker, self.thread = worker, thread
        self.run_button.setEnabled(False)
        self.connect_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.stage.setText(f"Running {loaded.name} into {self.run_dir}...")
        thread.start()

    def stop(self) -> None:
        """Stop safely: the run halts at its next progress report, every output goes off, data stay."""
        if self.worker is not None:
            self.worker.stop()
            self.stop_button.setEnabled(False)
            self.stage.setText("Stopping: turning every output off...")

    def _on_progress(self, stage: str, done: int, total: int) -> None:
        self.stage.setText(f"{stage}: {done} of {total}")
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)
        self.stage_changed.emit(stage, done, total)

    def _on_step_started(self, index: int, kind: str) -> None:
        self._show_steps(index)
        self.tabs.setCurrentIndex(self._tab_of_step(kind))

    def _on_live_estimate(self, estimate) -> None:
        for panel in self.family_panels:
            if hasattr(panel, "show_live"):
                panel.show_live(estimate)

    def _on_step_done(self, index: int, kind: str, outcome) -> None:
        """Every panel that shows steps of this kind gets the outcome (a program or evaluate step's is a
        :class:`labctl.recipes.ProgrammedWeights`, a train step's the weights and the training report)."""
        if kind == "train":
            assert self._loaded is not None
            weights, report = outcome
            self.training.finished(self._loaded.steps[index].weights_name, weights, report)
        for panel in self.family_panels:
            if kind in panel.stages:
                panel.step_done(kind, outcome)
        if kind in ("program", "evaluate") and outcome.outcome.on_chip_accuracy is not None:
            assert self.parts is not None
            self.evaluation.show_outcome(outcome, self.parts.confusion_matrix(outcome.outcome))
            self.tabs.setCurrentWidget(self.evaluation)

    def _on_finished(self, result) -> None:
        self._show_steps(len(result.recipe.steps))
        accuracies = [f"{name} {o.outcome.on_chip_accuracy:.1%}" for name, o in result.on_chip.items()
                      if o.outcome.on_chip_accuracy is not None]
        self._end_run(f"Completed in {result.wall_s:.0f} s"
                      + (f": on-chip accuracy {', '.join(accuracies)}" if accuracies else "")
                      + f". Run folder {result.run_dir} (session.h5 recorded).", "completed")

    def _on_failed(self, message: str) -> None:
        self.show_error(message)
        self._end_run("Failed: every output is off; see the message below.", "failed")

    def _on_stopped(self, message: str) -> None:
        self.message.setStyleSheet("color: #a05000;")
        self.message.setText(message)
        self._end_run(f"Stopped. Data so far are in {self.run_dir}.", "stopped")

    def _end_run(self, text: str, outcome: str) -> None:
        self.stage.setText(text)
        if self.thread is not None:
            self.thread.quit()
            self.thread.wait()
            self.thread.deleteLater()
        if self.worker is not None:
            self.worker.deleteLater()
        self.worker, self.thread = None, None
        self.run_button.setEnabled(True)
        self.connect_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        if self.bench_file is not None and not self._closing:
            self._start_poller()
        self.run_finished.emit(outcome)

    def _show_steps(self, current: int) -> None:
        if self._loaded is None:
            return
        parts = []
        for i, step in enumerate(self._loaded.steps):
            what = step.kind + (f" {step.weights_name}" if step.kind == "train" else
                                f" {step.weights or ''}").rstrip()
            parts.append(f"<b>{i + 1}. {what}</b>" if i == current else
                         (f"{i + 1}. {what} (done)" if i < current else f"{i + 1}. {what}"))
        self.steps.setText(f"{self._loaded.name}: " + " → ".join(parts))

    # -- messages and housekeeping ----------------------------------------------------------

    def show_error(self, message: str) -> None:
        """One line of words (a LabctlError's message), never a traceback."""
        self.message.setStyleSheet("color: #b00000; font-weight: bold;")
        self.message.setText(f"Error: {message}")

    def clear_error(self) -> None:
        self.message.setText("")

    def error_text(self) -> str:
        return self.message.text()

    def _refresh(self) -> None:
        snapshot = self.live.snapshot()
        self.bench_panel.show_snapshot(snapshot)
        if snapshot.error and not self.running and not self.message.text():
            self.show_error(snapshot.error)

    def _browse_bench(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Bench file", "", "Bench files (*.toml)")
        if path:
            self.bench_path.setText(path)
            self.source.setCurrentText(BENCH_FILE)

    def _browse_recipe(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Recipe", str(DEFAULT_RECIPE.parent), "Recipes (*.toml)")
        if path:
            self.recipe_path.setText(path)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop a run (outputs off) and the pollers before the window goes."""
        self._closing = True
        self.timer.stop()
        if self.worker is not None and self.thread is not None:
            self.worker.stop()
            self.thread.quit()
            self.thread.wait()
        if self.poller is not None:
            self.poller.stop()
            self.poller = None
        if self.sim is not None:
            self.sim.stop()
            self.sim = None
        shutil.rmtree(self._tmp, ignore_errors=True)
        super().closeEvent(event)
