"""Pads of the simulated die and how an SMU settles on them.

A pad is described by its static I(V) curve: the current that flows from the
instrument into the pad when the pad sits at a given voltage (monotonic, so an
operating point is unique). An SMU channel emulator solves its operating point
on that curve (:func:`solve_operating_point`): a voltage source in current
compliance, or a current source in voltage compliance, lands where the curve
meets the limit, exactly as a real SMU would; an output that is off is open
(contract section 4: no current flows).

The die owns the pads; an instrument channel ``attach``-es itself as the pad's
driver. The die asks its drivers for the operating point whenever it needs pad
state (power, EXT_IN current, MON voltage), and a driver calls
``pad.changed()`` after each configuration step so overstress is seen at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Protocol

SourceMode = Literal["V", "I"]


@dataclass(frozen=True)
class OperatingPoint:
    """Where an instrument and a pad settled. ``voltage_v`` is None for an open (off) output."""

    voltage_v: float | None
    current_a: float
    in_compliance: bool = False


OPEN = OperatingPoint(voltage_v=None, current_a=0.0, in_compliance=False)


class PadDriver(Protocol):
    """An instrument channel wired to a pad (implemented by the SMU emulators)."""

    def drive(self, pad: "Pad") -> OperatingPoint:
        """Solve and return the operating point on ``pad`` for the channel's present state."""


class Pad:
    """Base class of a die pad. Subclasses implement :meth:`current_into`."""

    name: str = "pad"
    noise_frac: float = 0.0
    """Relative 1-sigma noise of one reading at 1 NPLC (the die's reading noise)."""

    def __init__(self) -> None:
        self._driver: PadDriver | None = None
        self._listeners: list[Callable[[], None]] = []

    def current_into(self, voltage_v: float) -> float:
        """Current (A) flowing from the instrument into the pad at ``voltage_v``; monotonic."""
        raise NotImplementedError

    def attach(self, driver: PadDriver | None) -> None:
        self._driver = driver
        self.changed()

    def on_change(self, callback: Callable[[], None]) -> None:
        """Register a callback (the die's state update) to run after a driver changed."""
        self._listeners.append(callback)

    def changed(self) -> None:
        for callback in self._listeners:
            callback()

    def operating_point(self) -> OperatingPoint:
        if self._driver is None:
            return OPEN
        return self._driver.drive(self)


class ResistorPad(Pad):
    """A resistor to ground: a bench test load for driver tests (Ohm's law, nothing more)."""

    def __init__(self, resistance_ohm: float, name: str = "R") -> None:
        super().__init__()
        self.resistance_ohm = resistance_ohm
        self.name = name

    def current_into(self, voltage_v: float) -> float:
        return voltage_v / self.resistance_ohm


class OpenPad(Pad):
    """Nothing connected: a terminal that carries only 1 TOhm of insulation leakage."""

    name = "open"

    def current_into(self, voltage_v: float) -> float:
        return voltage_v * 1e-12


def solve_operating_point(
    current_into: Callable[[float], float],
    mode: SourceMode,
    level: float,
    limit: float,
    output_on: bool,
    v_span: float = 200.0,
) -> OperatingPoint:
    """Operating point of an SMU output on a load with monotonic I(V).

    mode "V": source ``level`` volts, current limit ``limit`` amperes (symmetric).
    mode "I": source ``level`` amperes, voltage limit ``limit`` volts (symmetric).
    """
    if not output_on:
        return OPEN
    limit = abs(limit)
    if mode == "V":
        current = current_into(level)
        if abs(current) <= limit:
            return OperatingPoint(level, current, False)
        target = limit if current > 0 else -limit
        lo, hi = (min(0.0, level), max(0.0, level))
        voltage = _bisect(lambda v: current_into(v) - target, lo, hi)
        return OperatingPoint(voltage, target, True)
    # current source: find V with I(V) = level inside [-limit, limit]
    if current_into(limit) < level:
        return OperatingPoint(limit, current_into(limit), True)
    if current_into(-limit) > level:
        return OperatingPoint(-limit, current_into(-limit), True)
    voltage = _bisect(lambda v: current_into(v) - level, -min(limit, v_span), min(limit, v_span))
    return OperatingPoint(voltage, level, False)


def _bisect(f: Callable[[float], float], lo: float, hi: float, iterations: int = 60) -> float:
    """Root of a non-decreasing f on [lo, hi] (f(lo) <= 0 <= f(hi) assumed, clamped otherwise)."""
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if f(mid) < 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
