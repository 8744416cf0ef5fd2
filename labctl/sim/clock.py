"""Bench time for the simulator.

By default time is virtual: gates and SMU integration are accounted, not waited,
so tests and demos run at software speed while benchmarks still report the bench
time real hardware would spend. ``realtime=True`` also sleeps it out.
"""

from __future__ import annotations

import threading
import time


class VirtualClock:
    """Monotonic bench time in seconds since the simulated bench started."""

    def __init__(self, realtime: bool = False) -> None:
        self.realtime = realtime
        self._lock = threading.Lock()
        self._virtual_s = 0.0
        self._start = time.monotonic()

    def now(self) -> float:
        with self._lock:
            if self.realtime:
                return time.monotonic() - self._start
            return self._virtual_s

    def advance(self, seconds: float) -> None:
        """Spend ``seconds`` of bench time (a gate, an integration, a settling wait)."""
        if seconds <= 0:
            return
        if self.realtime:
            time.sleep(seconds)
            return
        with self._lock:
            self._virtual_s += seconds
