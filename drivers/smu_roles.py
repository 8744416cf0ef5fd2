"""What an SMU channel can do, independent of its make and model.

The bench (contract section 3) gives each pad a role: the supply and the
monitor are voltage sources that measure current, EXT_IN is a current source
that measures voltage. Code above the drivers asks for these roles only (the
Bluesky/ophyd habit of typing devices by small protocols), so a Keithley 2450,
a Keysight B2902A channel and a Keithley 2636B channel are interchangeable.

Every driver's channel class fulfils all roles at once (:class:`SmuChannel`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class VoltageSource(Protocol):
    def source_voltage(self, level_v: float, current_limit_a: float) -> None:
        """Configure voltage-source mode: current compliance first, then the level.

        The output state is left as it is (contract section 3: compliance is
        set before an output is turned on).
        """

    def set_voltage(self, level_v: float) -> None:
        """Change the voltage level of a channel already configured by :meth:`source_voltage`."""


@runtime_checkable
class CurrentSource(Protocol):
    def source_current(self, level_a: float, voltage_limit_v: float) -> None:
        """Configure current-source mode: voltage compliance first, then the level; output untouched."""

    def set_current(self, level_a: float) -> None:
        """Change the current level of a channel already configured by :meth:`source_current`."""


@runtime_checkable
class Ammeter(Protocol):
    def measure_current(self) -> float:
        """One current reading in amperes (positive = flowing out of the SMU into the pad)."""

    def set_nplc(self, nplc: float) -> None:
        """Integration time of each reading in power-line cycles (noise falls as 1/sqrt(nplc))."""


@runtime_checkable
class Voltmeter(Protocol):
    def measure_voltage(self) -> float:
        """One voltage reading in volts at the channel's terminals."""

    def set_nplc(self, nplc: float) -> None:
        """Integration time of each reading in power-line cycles."""


@runtime_checkable
class Switchable(Protocol):
    def enable_output(self) -> None:
        """Connect the source to the pad."""

    def disable_output(self) -> None:
        """Open the output: no current flows (contract section 4)."""

    @property
    def output_enabled(self) -> bool:
        """True once this driver has turned the output on (and not off since)."""


@runtime_checkable
class SmuChannel(VoltageSource, CurrentSource, Ammeter, Voltmeter, Switchable, Protocol):
    """One output of a source-measure unit; ``name`` is its channel name ("1", "a", ...)."""

    name: str
