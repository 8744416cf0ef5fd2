"""What a PNC-TS characterisation sweeps (printed-bench.md 7, the reference plan).

The reference plan is the contract's: every circuit structure forward from
-1.500 to +1.500 V in 50 mV steps (61 points) and back from +1.25 to -1.50 V
in 0.25 V steps (12 points, for hysteresis); the resistor structures at
-0.5, -0.25, 0, +0.25, +0.5 V with the shunt at NPLC 10 and the taps at
NPLC 1. :meth:`SweepPlan.quick` is a documented reduction (fewer forward
points) for tests and quick looks; it changes nothing else.

One addition to the contract's plan: a steep cell (eta4 up to ~100 /V, a
transition ~10 to 25 mV wide) leaves at most one or two forward points in its
transition at 50 mV steps, so eta4 is not identified (the Jacobian's se then
understates the error). After the forward sweep, the step where the output
jumps most is swept again upward at ``refine_step_v`` (10 mV: 4 more points at
the reference step, 9 at the quick one; about 15 to 35 s of bench time for the
35 structures). ``refine_step_v = None`` gives the contract's plan exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SWEEP_LIMIT_V = 1.5
"""The bench never takes a cell input beyond +-1.5 V (4.4)."""


def _levels(start: float, stop: float, step: float) -> tuple[float, ...]:
    n = int(round(abs(stop - start) / step)) + 1
    return tuple(float(round(v, 9)) for v in np.linspace(start, stop, n))


@dataclass(frozen=True)
class SweepPlan:
    """The input levels of one characterisation run, in V."""

    forward_v: tuple[float, ...]
    backward_v: tuple[float, ...]
    resistor_drive_v: tuple[float, ...] = (-0.5, -0.25, 0.0, 0.25, 0.5)
    refine_step_v: float | None = 0.01

    @classmethod
    def reference(cls) -> "SweepPlan":
        """Section 7: 61 forward points at 50 mV, 12 backward at 0.25 V."""
        return cls(_levels(-SWEEP_LIMIT_V, SWEEP_LIMIT_V, 0.05), _levels(1.25, -SWEEP_LIMIT_V, 0.25))

    @classmethod
    def quick(cls, forward_step_v: float = 0.1) -> "SweepPlan":
        """The reference plan with coarser forward steps (0.1 V: 31 points); the backward sweep is kept."""
        return cls(_levels(-SWEEP_LIMIT_V, SWEEP_LIMIT_V, forward_step_v), _levels(1.25, -SWEEP_LIMIT_V, 0.25))

    @property
    def points_per_structure(self) -> int:
        return len(self.forward_v) + len(self.backward_v)


def refinement_levels(forward_v: np.ndarray, forward_out: np.ndarray, step_v: float | None) -> tuple[float, ...]:
    """Levels strictly inside the forward step where the output moved most, ``step_v`` apart (module docstring)."""
    if step_v is None or len(forward_v) < 2:
        return ()
    i = int(np.argmax(np.abs(np.diff(forward_out))))
    low, high = float(forward_v[i]), float(forward_v[i + 1])
    n = int(round((high - low) / step_v))
    return tuple(float(round(low + k * (high - low) / n, 9)) for k in range(1, n))
