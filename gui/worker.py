"""Work off the GUI thread: the recipe run (a QThread worker) and the idle bench poller.

The window never talks to the bench itself. A :class:`RecipeWorker` runs
:func:`labctl.recipes.run_recipe` in its own QThread and reports through Qt
signals (queued to the GUI thread); its Stop sets a ``threading.Event`` that
the next progress report turns into :class:`labctl.recipes.Stopped`, so the
bench's context manager turns every output off and the files keep their data
(contract section 3, safe operation).

Live bench readings (the device's description and status, the role readings)
reach the window through :class:`LiveReadings`, a small thread-safe store that
the GUI polls on a timer: while a recipe runs it is fed by the session
recorder (every SMU reading, and every bridge transaction the family's GUI
parts can read), while idle by a :class:`StatusPoller` thread that watches
the bench through the family's GUI parts without powering anything.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from labctl.drivers.bridge import Transaction
from labctl.errors import LabctlError
from labctl.families.seam import DeviceDescription, DeviceStatus
from labctl.gui.family import FamilyGui, Key
from labctl.recipes import LoadedRecipe, Stopped, characterisation_name, run_recipe
from labctl.session import SessionRecorder

HISTORY_S = 300.0
"""How much history the live plots keep."""
LIVE_FIT_INTERVAL_S = 0.5
"""At most this often the characterisation file is re-read for the live view."""
POLL_INTERVAL_S = 1.0


@dataclass
class LiveSnapshot:
    values: dict[Key, tuple[float, float]]
    """(role, quantity) -> (value in SI units, time of the reading)."""
    status: DeviceStatus | None
    description: DeviceDescription | None
    history: dict[str, list[tuple[float, float]]]
    """"temperature_c" and "plotted" (the family's plotted reading) -> (time, value)."""
    source: str
    error: str | None


@dataclass
class LiveReadings:
    """Latest readings and a short history, written by worker threads, read by the GUI timer.

    ``plotted`` is the (role, quantity) whose history is kept for a plot (the family's choice)."""

    plotted: Key | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _values: dict[Key, tuple[float, float]] = field(default_factory=dict)
    _status: DeviceStatus | None = None
    _description: DeviceDescription | None = None
    _history: dict[str, deque] = field(default_factory=lambda: {"temperature_c": deque(), "plotted": deque()})
    _source: str = "not connected"
    _error: str | None = None

    def reading(self, reading: Any) -> None:
        """One role reading (``role``, ``quantity``, ``value``, ``time_s``) from the bench or the recorder."""
        key = (reading.role, reading.quantity)
        with self._lock:
            self._values[key] = (reading.value, reading.time_s)
            if key == self.plotted:
                self._append("plotted", reading.time_s, reading.value)

    def status(self, status: DeviceStatus) -> None:
        with self._lock:
            self._status = status
            if status.temperature_c is not None:
                self._append("temperature_c", time.time(), status.temperature_c)

    def identity(self, description: DeviceDescription, source: str | None = None) -> None:
        with self._lock:
            self._description = description
            if source is not None:
                self._source, self._error = source, None

    def set_source(self, source: str) -> None:
        with self._lock:
            self._source = source

    def error(self, message: str | None) -> None:
        with self._lock:
            self._error = message

    def _append(self, name: str, t: float, value: float) -> None:
        history = self._history[name]
        history.append((t, value))
        while history and history[0][0] < t - HISTORY_S:
            history.popleft()

    def snapshot(self) -> LiveSnapshot:
        with self._lock:
            return LiveSnapshot(dict(self._values), self._status, self._description,
                                {k: list(v) for k, v in self._history.items()}, self._source, self._error)


class TransactionReader:
    """The session recorder's transaction hook: the family's GUI parts read status and identity from it."""

    def __init__(self, parts: FamilyGui, live: LiveReadings) -> None:
        self.parts, self.live = parts, live

    def __call__(self, tx: Transaction) -> None:
        status = self.parts.transaction_status(tx)
        if status is not None:
            self.live.status(status)
            return
        description = self.parts.transaction_description(tx)
        if description is not None:
            self.live.identity(description)


class StatusPoller:
    """While idle: watch the bench (nothing powered) through the family's GUI parts, once a second."""

    def __init__(self, bench_file: Path, live: LiveReadings, parts: FamilyGui) -> None:
        self.bench_file = bench_file
        self.live = live
        self.parts = parts
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="labctl-status-poller", daemon=True)

    def start(self) -> "StatusPoller":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the poller to close the bench and wait for it (call off the GUI thread)."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            with self.parts.watch(self.bench_file, self.live.reading) as watch:
                self.live.identity(watch.description, f"{watch.name} (idle: polled every {POLL_INTERVAL_S:g} s)")
                while not self._stop.is_set():
                    status = watch.poll()
                    if status is not None:
                        self.live.status(status)
                    self._stop.wait(POLL_INTERVAL_S)
        except (LabctlError, OSError) as exc:
            self.live.error(f"bench: {exc}")


class RecipeWorker(QObject):
    """Runs one recipe in a QThread; every outcome arrives as a signal, errors as one line of words."""

    progress = Signal(str, int, int)
    step_started = Signal(int, str)
    epoch = Signal(str, int, int, float, float)
    live_estimate = Signal(object)
    step_done = Signal(int, str, object)
    finished = Signal(object)
    failed = Signal(str)
    stopped = Signal(str)

    def __init__(self, loaded: LoadedRecipe, bench_file: Path, run_dir: Path, live: LiveReadings,
                 poller: StatusPoller | None, parts: FamilyGui) -> None:
        super().__init__()
        self.loaded = loaded
        self.parts = parts
        self.bench_file = bench_file
        self.run_dir = run_dir
        self.live = live
        self.poller = poller
        self.stop_event = threading.Event()
        self._last_live = 0.0
        self.current_kind: str | None = None
        """The kind of the recipe step running now (the listener sets it): live fits while characterising."""

    def stop(self) -> None:
        """Thread-safe: the run stops at its next progress report with every output off."""
        self.stop_event.set()

    @Slot()
    def run(self) -> None:
        if self.poller is not None:
            self.poller.stop()  # the bench takes one client at a time
        self.live.set_source(f"{self.bench_file.name} (running {self.loaded.name})")
        recorder = SessionRecorder(on_transaction=TransactionReader(self.parts, self.live),
                                   on_reading=self.live.reading)
        try:
            result = run_recipe(self.loaded, self.bench_file, self.run_dir, progress=self._progress,
                                stop_event=self.stop_event, recorder=recorder, listener=_SignalListener(self))
        except Stopped as exc:
            self.stopped.emit(str(exc))
        except LabctlError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # the window shows words; the traceback goes to the log
            traceback.print_exc(file=sys.stderr)
            self.failed.emit(f"unexpected error ({type(exc).__name__}): {exc}")
        else:
            self.finished.emit(result)

    def _progress(self, stage: str, done: int, total: int) -> None:
        self.progress.emit(stage, done, total)
        now = time.monotonic()
        if self.current_kind == "characterise" and now - self._last_live >= LIVE_FIT_INTERVAL_S:
            self._last_live = now
            self.emit_live()

    def emit_live(self) -> None:
        """Re-read the characterisation file and send the family's live estimate to the window."""
        description = self.live.snapshot().description
        if description is not None:
            estimate = self.parts.live_estimate(self.run_dir / characterisation_name(1), description)
            if estimate is not None:
                self.live_estimate.emit(estimate)


class _SignalListener:
    """The recipe's :class:`~labctl.recipes.RunListener`, turned into the worker's signals."""

    def __init__(self, worker: RecipeWorker) -> None:
        self.worker = worker

    def step_started(self, index: int, step) -> None:
        self.worker.current_kind = step.kind
        self.worker.step_started.emit(index, step.kind)

    def epoch(self, name: str, epoch: int, n_epochs: int, loss: float, accuracy: float) -> None:
        self.worker.epoch.emit(name, epoch, n_epochs, loss, accuracy)

    def step_finished(self, index: int, step, outcome: Any) -> None:
        if step.kind == "characterise":
            self.worker.emit_live()  # the residuals of every reading, not those of half a second ago
        self.worker.step_done.emit(index, step.kind, outcome)

