"""Signals and safe shutdown, for any device family.

While a bench is open, SIGINT (Ctrl-C), SIGTERM and SIGHUP all become the
same thing: an :class:`Interrupted` (a ``KeyboardInterrupt`` naming the
signal) raised in the main thread, so the bench's context manager runs its
power-down. This holds whatever disposition the process inherited: a
background job started from a script inherits SIGINT *ignored*, and ``nohup``
ignores SIGHUP; inside :func:`signals_handled` both lead to the safe shutdown
anyway (the previous dispositions come back when the block ends).

Only the first signal is raised. Signals that come while that interrupt is on
its way out (it is still alive: propagating, or held by the command line
while it reports) and signals that come inside :func:`deferred_signals` (the
power-down) are recorded, not raised: a second Ctrl-C can no longer stop a
power-down halfway. When a :func:`deferred_signals` block ends and no
interrupt is already under way, the first signal recorded during it is raised
then, after every output is off.

Python ignores an exception raised inside a ``__del__`` or a weakref callback
(it prints "Exception ignored in ..."), and a signal handler may run there: an
interrupt lost that way is delivered again to the main thread a moment later
(:func:`sys.unraisablehook`), so a single SIGTERM or SIGHUP is never lost.

What a bench left on when it shut down is a :class:`ShutdownReport`; benches
:func:`record` theirs and the command line :func:`collecting` them says what
it really left (family-blind: the reports carry words, not pads).
"""

from __future__ import annotations

import _thread
import signal
import sys
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Callable, Iterator, Sequence

HANDLED_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
"""The signals that lead to the safe shutdown (no SIGHUP on Windows)."""


class Interrupted(KeyboardInterrupt):
    """The stop a signal asked for; ``signum`` names it (``str()`` is e.g. ``"SIGTERM"``)."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(self.name)

    @property
    def name(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"


def signal_number(interrupt: BaseException) -> int:
    """The signal that asked for the stop ``interrupt`` belongs to: the first one handled, if any.

    The first signal is not always the one that surfaces: one raised inside a
    finaliser is swallowed and delivered again 10 ms later, and a second signal
    in between surfaces first. The exit status still names the first. Without a
    handled signal it is the interrupt's own (SIGINT when Python's handler raised it).
    """
    if _state.received:
        return _state.received[0]
    return interrupt.signum if isinstance(interrupt, Interrupted) else int(signal.SIGINT)


class _State:
    def __init__(self) -> None:
        self.depth = 0
        self.saved: dict[int, object] = {}
        self.stop: weakref.ref[Interrupted] | None = None
        """The interrupt raised last; a stop is under way while it is alive."""
        self.deferring = 0
        self.pending: list[int] = []
        self.received: list[int] = []
        """Every handled signal since the outermost block began, in order (for reports and tests)."""
        self.unraisablehook = sys.unraisablehook


_state = _State()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _stop_under_way() -> bool:
    return _state.stop is not None and _state.stop() is not None


def _raise(signum: int) -> None:
    interrupt = Interrupted(signum)
    _state.stop = weakref.ref(interrupt)
    try:
        raise interrupt
    finally:
        del interrupt  # the traceback keeps this frame: it must not keep the interrupt alive too


def _handler(signum: int, frame: FrameType | None) -> None:
    _state.received.append(signum)
    if _state.deferring or _stop_under_way():
        _state.pending.append(signum)
        return
    _raise(signum)


def _unraisable(unraisable) -> None:
    """An interrupt raised where Python ignores exceptions (``__del__``, weakref callbacks): deliver it again."""
    interrupt = unraisable.exc_value
    if isinstance(interrupt, Interrupted) and _state.depth:
        if _state.stop is not None and _state.stop() is interrupt:
            _state.stop = None  # this stop never got under way
        threading.Thread(target=_redeliver, args=(interrupt.signum,), name="labctl-redeliver-signal",
                         daemon=True).start()
        return
    _state.unraisablehook(unraisable)


def _redeliver(signum: int) -> None:
    time.sleep(0.01)  # let the main thread leave the finaliser that swallowed it
    if _state.depth:
        _thread.interrupt_main(signum)  # runs our handler in the main thread; nothing if it is gone


def installed() -> bool:
    """True while :func:`signals_handled` has the handlers in place."""
    return _state.depth > 0


@contextmanager
def signals_handled() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` inside the block, whatever they did before.

    Re-entrant; the outermost block restores the earlier dispositions and
    forgets deferred signals (the stop they belonged to is over). Outside the
    main thread (where Python cannot install handlers) it does nothing.
    """
    if not _in_main_thread():
        yield
        return
    if _state.depth == 0:
        _state.stop, _state.pending, _state.received = None, [], []
        for signum in HANDLED_SIGNALS:
            previous = signal.signal(signum, _handler)
            _state.saved[signum] = signal.SIG_DFL if previous is None else previous
        _state.unraisablehook, sys.unraisablehook = sys.unraisablehook, _unraisable
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1
        if _state.depth == 0:
            for signum, previous in _state.saved.items():
                signal.signal(signum, previous)  # type: ignore[arg-type]
            _state.saved.clear()
            if sys.unraisablehook is _unraisable:
                sys.unraisablehook = _state.unraisablehook
            _state.stop, _state.pending = None, []


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Record the handled signals instead of raising them until the block ends (use it around a power-down).

    At the end, the first signal recorded is raised as :class:`Interrupted`,
    unless an interrupt is already under way (then it was part of that stop).
    Installs the handlers for the block if nobody has (outside the main
    thread it does nothing: signals go to the main thread).
    """
    if not _in_main_thread():
        yield
        return
    with signals_handled():
        _state.deferring += 1
        try:
            yield
        finally:
            _state.deferring -= 1
            if not _state.deferring and _state.pending:
                first, _state.pending = _state.pending[0], []
                if not _stop_under_way():
                    _raise(first)


def pending_signals() -> list[int]:
    """Signals recorded and not raised yet."""
    return list(_state.pending)


def received_signals() -> list[int]:
    """Every handled signal since the outermost :func:`signals_handled` began."""
    return list(_state.received)


# -- what a shutdown left ------------------------------------------------------------------


@dataclass(frozen=True)
class ShutdownReport:
    """What one bench left when it shut down, in words a user acts on."""

    bench: str
    """Which bench (its name and bridge port)."""
    left_on: tuple[str, ...] = ()
    """Outputs that may still be on although they should be off, each with why: turn them off by hand."""
    kept_on: tuple[str, ...] = ()
    """Outputs left on as asked (e.g. a supply kept on so volatile latches keep their weights)."""
    problems: tuple[str, ...] = ()
    """Every step of the power-down that failed."""

    @property
    def all_off(self) -> bool:
        return not self.left_on and not self.kept_on


_collectors: list[list[ShutdownReport]] = []
_collectors_guard = threading.Lock()


def record(report: ShutdownReport) -> None:
    """A bench says what its shutdown left (every active :func:`collecting` block gets it)."""
    with _collectors_guard:
        for reports in _collectors:
            reports.append(report)


@contextmanager
def collecting() -> Iterator[list[ShutdownReport]]:
    """Collect the reports of every bench shut down inside the block, in order."""
    reports: list[ShutdownReport] = []
    with _collectors_guard:
        _collectors.append(reports)
    try:
        yield reports
    finally:
        with _collectors_guard:
            _collectors[:] = [r for r in _collectors if r is not reports]


def final_state(reports: list[ShutdownReport]) -> list[ShutdownReport]:
    """The last report of each bench: a later session of the same bench supersedes an earlier one."""
    last: dict[str, ShutdownReport] = {}
    for report in reports:
        last.pop(report.bench, None)
        last[report.bench] = report
    return list(last.values())


class PowerDownSteps:
    """The steps of one power-down: each is tried even when an earlier one failed (an instrument that
    vanished must not leave the rest on), and what failed is kept for the report."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def step(self, what: str, action: Callable[[], object]) -> bool:
        try:
            action()
            return True
        except Exception as exc:  # noqa: BLE001 - keep turning the rest off
            self.problems.append(f"{what}: {exc}")
            return False


def power_down(steps: Callable[[], ShutdownReport],
               still_on: Callable[[], Sequence[str]] | None = None) -> ShutdownReport:
    """Run a bench's power-down ``steps`` with signals deferred, so it never stops halfway; if a step failed,
    one InstrumentError names what failed and what may still be on (``still_on()``, default the report's)."""
    from labctl.errors import InstrumentError

    with deferred_signals():
        report = steps()
    if report.problems:
        left = report.left_on if still_on is None else still_on()
        still = f" (still on: {', '.join(left)})" if left else ""
        raise InstrumentError("could not turn everything off" + still + ": " + "; ".join(report.problems))
    return report
