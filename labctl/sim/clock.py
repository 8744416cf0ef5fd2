"""Bench time for the simulator.

By default time is virtual: gates and SMU integration are accounted, not waited,
so tests and demos run at software speed while benchmarks still report the bench
time real hardware would spend. ``realtime=True`` also sleeps it out.

A *served* clock (``served=True``, what :class:`~labctl.families.cmna.sim.bench.SimulatedBench`
uses, hence ``labctl sim serve`` and ``--from die.h5``) never stands still: a
client that reads STATUS twice sees the uptime (and die temperature, and drift,
which all derive from :meth:`VirtualClock.now`) move at least as fast as the
wall clock, also while no gate runs. Its rule, with ``wall = monotonic() - start``:

- ``now() = max(virtual, wall)``: the later of the two;
- ``advance(s)`` sets ``virtual = now() + s``: a gate charged after an idle
  spell starts at the present served time and still costs its full length
  (it is not swallowed by the wall time that passed meanwhile);
- hence time never runs backwards: ``virtual`` only grows, ``wall`` is
  monotonic, and the maximum of two non-decreasing functions is non-decreasing.
  While software runs faster than the bench (gates are accounted, not waited)
  ``virtual`` leads; served time is the accounted time plus, for every gate
  charged while the wall clock was ahead, the lead the wall clock had then.

:attr:`VirtualClock.accounted_s` is the pure accounted time: the sum of every
``advance`` (gates, integrations, settling waits), whatever the mode. It is
what real hardware would spend on the same work, so benchmarks report it.
A served timeline carries wall time (opening the bench, software between
gates), and the die's drift and hence its readings follow it; runs that must
repeat bit for bit (benchmarks, with ``SimulatedBench(..., served=False)``)
keep the clock purely virtual.
"""

from __future__ import annotations

import threading
import time


class VirtualClock:
    """Monotonic bench time in seconds since the simulated bench started.

    ``realtime``: gates and integrations are slept out, :meth:`now` is wall
    time since start. ``served``: :meth:`now` never falls behind wall time
    since start (module docstring: the rule). Neither: pure virtual time,
    which moves only by :meth:`advance` (tests, in-process emulators).
    """

    def __init__(self, realtime: bool = False, *, served: bool = False) -> None:
        self.realtime = realtime
        self.served = served
        self._lock = threading.Lock()
        self._virtual_s = 0.0
        self._accounted_s = 0.0
        self._start = time.monotonic()

    def _wall_s(self) -> float:
        return time.monotonic() - self._start

    def _now_locked(self) -> float:
        if self.realtime:
            return self._wall_s()
        if self.served:
            return max(self._virtual_s, self._wall_s())
        return self._virtual_s

    def now(self) -> float:
        with self._lock:
            return self._now_locked()

    @property
    def accounted_s(self) -> float:
        """Bench time charged by :meth:`advance` so far: what real hardware would spend, no idle time."""
        with self._lock:
            return self._accounted_s

    def advance(self, seconds: float) -> None:
        """Spend ``seconds`` of bench time (a gate, an integration, a settling wait)."""
        if seconds <= 0:
            return
        with self._lock:
            self._accounted_s += seconds
            if not self.realtime:
                # on top of the present time: after an idle spell a gate still costs its full length
                self._virtual_s = self._now_locked() + seconds
        if self.realtime:
            time.sleep(seconds)
