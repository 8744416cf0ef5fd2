"""Work off the GUI thread: the recipe run (a QThread worker) and the idle bench poller.

The window never talks to the bench itself. A :class:`RecipeWorker` runs
:func:`labctl.recipes.run_recipe` in its own QThread and reports through Qt
signals (queued to the GUI thread); its Stop sets a ``threading.Event`` that
the next progress report turns into :class:`labctl.recipes.Stopped`, so the
bench's context manager turns every output off and the files keep their data
(contract section 3, safe operation).

Live bench readings (VDD, EXT_IN, MON, die temperature) reach the window
through :class:`LiveReadings`, a small thread-safe store that the GUI polls on
a timer: while a recipe runs it is fed by the session recorder (every SMU
reading, every STATUS answer), while idle by a :class:`StatusPoller` thread
that keeps the bench open without powering anything.
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

from labctl.families.cmna.bench import Bench, Reading
from labctl.drivers.bridge import Transaction
from labctl.drivers.bridge_protocol import Status
from labctl.families.cmna.protocol import Opcode, StatusFlag, parse_identify, parse_status
from labctl.errors import LabctlError
from labctl.families.cmna.live_view import live_characterisation
from labctl.recipes import LoadedRecipe, Stopped, run_recipe
from labctl.session import SessionRecorder

HISTORY_S = 300.0
"""How much history the live plots keep."""
LIVE_FIT_INTERVAL_S = 0.5
"""At most this often the characterisation file is re-read for the live view."""
POLL_INTERVAL_S = 1.0
QUANTITIES = (("supply", "voltage"), ("supply", "current"), ("source", "voltage"), ("monitor", "current"))


@dataclass
class LiveSnapshot:
    values: dict[tuple[str, str], tuple[float, float]]
    """(role, quantity) -> (value in SI units, time of the reading)."""
    temperature_c: float | None
    flags: str
    chip: Any
    history: dict[str, list[tuple[float, float]]]
    source: str
    error: str | None


@dataclass
class LiveReadings:
    """Latest readings and a short history, written by worker threads, read by the GUI timer."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _values: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    _temperature_c: float | None = None
    _flags: str = ""
    _chip: Any = None
    _history: dict[str, deque] = field(default_factory=lambda: {"temperature_c": deque(), "mon_a": deque()})
    _source: str = "not connected"
    _error: str | None = None

    def reading(self, reading: Reading) -> None:
        with self._lock:
            self._values[(reading.role, reading.quantity)] = (reading.value, reading.time_s)
            if (reading.role, reading.quantity) == ("monitor", "current"):
                self._append("mon_a", reading.time_s, reading.value)

    def transaction(self, tx: Transaction) -> None:
        """IDENTIFY answers name the die; STATUS answers carry its temperature and flags (section 2)."""
        if tx.status != Status.OK:
            return
        if tx.op == Opcode.STATUS:
            status = parse_status(tx.response)
            self.status(status.temperature_c, _flag_names(status.flags))
        elif tx.op == Opcode.IDENTIFY:
            with self._lock:
                self._chip = parse_identify(tx.response)

    def status(self, temperature_c: float, flags: str) -> None:
        with self._lock:
            self._temperature_c, self._flags = temperature_c, flags
            self._append("temperature_c", time.time(), temperature_c)

    def identity(self, chip: Any, source: str) -> None:
        with self._lock:
            self._chip, self._source, self._error = chip, source, None

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
            return LiveSnapshot(dict(self._values), self._temperature_c, self._flags, self._chip,
                                {k: list(v) for k, v in self._history.items()}, self._source, self._error)


class StatusPoller:
    """While idle: keep the bench open (nothing powered) and read STATUS and the SMUs once a second."""

    def __init__(self, bench_file: Path, live: LiveReadings) -> None:
        self.bench_file = bench_file
        self.live = live
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
        bench = Bench.from_file(self.bench_file, on_reading=self.live.reading)
        try:
            bench.open()
            self.live.identity(bench.chip, f"{bench.config.name} (idle: polled every {POLL_INTERVAL_S:g} s)")
            while not self._stop.is_set():
                status = bench.bridge.status()
                self.live.status(status.temperature_c, _flag_names(status.flags))
                for role, quantity in QUANTITIES:
                    bench.read(role, quantity)
                self._stop.wait(POLL_INTERVAL_S)
        except LabctlError as exc:
            self.live.error(f"bench: {exc}")
        finally:
            bench.disconnect()


class RecipeWorker(QObject):
    """Runs one recipe in a QThread; every outcome arrives as a signal, errors as one line of words."""

    progress = Signal(str, int, int)
    step_started = Signal(int, str)
    epoch = Signal(str, int, int, float, float)
    characterisation_live = Signal(object)
    step_done = Signal(int, str, object)
    finished = Signal(object)
    failed = Signal(str)
    stopped = Signal(str)

    def __init__(self, loaded: LoadedRecipe, bench_file: Path, run_dir: Path, live: LiveReadings,
                 poller: StatusPoller | None) -> None:
        super().__init__()
        self.loaded = loaded
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
        recorder = SessionRecorder(on_transaction=self.live.transaction, on_reading=self.live.reading)
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
        """Re-read the characterisation file and send the live estimates to the window."""
        chip = self.live.snapshot().chip
        if chip is not None:
            self.characterisation_live.emit(live_characterisation(self.run_dir / "die.h5", chip))


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


def _flag_names(flags: StatusFlag) -> str:
    """STATUS flags in words (contract section 2): 'none' or e.g. 'SUPPLY_OUT_OF_RANGE, LATCHES_UNWRITTEN'."""
    names = [f.name for f in StatusFlag if f in flags and f.name]
    return ", ".join(names).lower().replace("_", " ") if names else "none"
