"""The bench: one bridge plus SMU channels in the roles supply, source and monitor.

The Bench owns safe operation (contract sections 3 and 4), so no caller has to
remember it: compliance is set before an output turns on; VDD ramps up before
EXT_IN and MON are driven and down after they are off; setpoints outside the
recommended ratings (:mod:`labctl.families.cmna.ratings`) are refused; every output goes off
on exit, on an exception and on Ctrl-C/SIGTERM. A normal exit may keep VDD on
(``keep_powered``) so programmed latches survive; EXT_IN and MON still go off.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import Callable

import numpy as np

from labctl.families.cmna import ratings
from labctl.bench_file import BenchConfig, load_bench_file
from labctl.families.cmna.chip import ChipDescription
from labctl.drivers.bridge import Bridge
from labctl.drivers.bridge_protocol import StatusFlag
from labctl.drivers.instruments import open_instrument
from labctl.errors import ConfigError, InstrumentError, LabctlError, SafetyError


@dataclass(frozen=True)
class Reading:
    """One SMU reading, as the session record stores it."""

    time_s: float
    role: str
    quantity: str
    value: float


ReadingListener = Callable[[Reading], None]


class Bench:
    """A CMNA bench opened from a bench file. Use as a context manager."""

    def __init__(
        self,
        config: BenchConfig,
        *,
        keep_powered: bool = False,
        nplc: float = 1.0,
        transcript: Callable | None = None,
        on_reading: ReadingListener | None = None,
    ) -> None:
        self.config = config
        self.keep_powered = keep_powered
        self.nplc = nplc
        self._transcript = transcript
        self._on_reading = on_reading
        self.bridge: Bridge | None = None
        self._instruments: dict[str, object] = {}
        self._channels: dict[str, object] = {}
        self.powered = False
        self.ext_in_channel: int | None = None
        self._ext_in_a = 0.0
        self._vdd_v = 0.0
        """The supply level this session last set (a ramp down starts there)."""
        self._old_handlers: dict[int, object] = {}

    @classmethod
    def from_file(cls, path, **kwargs) -> "Bench":
        return cls(load_bench_file(path), **kwargs)

    # -- opening and closing -------------------------------------------------

    def open(self) -> "Bench":
        """Connect to the bridge and every instrument; bind roles to channels. Powers nothing."""
        try:
            self.bridge = Bridge(self.config.bridge_port, timeout_s=self.config.bridge_timeout_s,
                                 transcript=self._transcript)
            try:
                self.bridge.open()
                self.bridge.identify()
            except LabctlError as exc:  # name the bench file's key, as for the instruments
                raise InstrumentError(f"bridge.port: {exc}") from None
            for name, section in self.config.instruments.items():
                try:
                    self._instruments[name] = open_instrument(section.resource, timeout_s=section.timeout_s)
                except LabctlError as exc:
                    raise InstrumentError(f"instruments.{name}: {exc}") from None
            for role, binding in self.config.roles.items():
                instrument = self._instruments[binding.instrument]
                try:
                    channel = instrument.channel(binding.channel)  # type: ignore[attr-defined]
                except LabctlError as exc:
                    raise ConfigError(f"roles.{role}: {exc}") from None
                channel.set_nplc(self.nplc)
                self._channels[role] = channel
        except BaseException:
            self.disconnect()
            raise
        return self

    @property
    def chip(self) -> ChipDescription:
        assert self.bridge is not None and self.bridge.chip is not None, "bench is not open"
        return self.bridge.chip

    def set_nplc(self, nplc: float) -> None:
        """Integration time of every role's readings, in power-line cycles (speed against noise)."""
        self.nplc = nplc
        for channel in self._channels.values():
            channel.set_nplc(nplc)

    def instrument_identities(self) -> dict[str, str]:
        return {name: getattr(inst, "idn", "?") for name, inst in self._instruments.items()}

    def close(self, *, emergency: bool = False) -> None:
        """Turn outputs off (VDD stays on after a normal exit with keep_powered) and disconnect."""
        try:
            self.power_down(keep_supply=self.keep_powered and not emergency)
        finally:
            self.disconnect()

    def disconnect(self) -> None:
        """Close the bridge and instruments without touching any output (e.g. after ``identify``)."""
        for inst in self._instruments.values():
            try:
                inst.close()  # type: ignore[attr-defined]
            except Exception:
                pass
        self._instruments.clear()
        self._channels.clear()
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None

    def __enter__(self) -> "Bench":
        self._install_signal_handlers()
        if self.bridge is None:
            try:
                self.open()
            except BaseException:
                self._restore_signal_handlers()
                raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.close(emergency=exc_type is not None)
        finally:
            self._restore_signal_handlers()

    def _install_signal_handlers(self) -> None:
        """SIGTERM behaves like Ctrl-C, so the context manager's exit turns outputs off."""
        if threading.current_thread() is not threading.main_thread():
            return

        def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        self._old_handlers[signal.SIGTERM] = signal.signal(signal.SIGTERM, _raise_interrupt)

    def _restore_signal_handlers(self) -> None:
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._old_handlers.clear()

    # -- power sequencing ----------------------------------------------------

    def _channel(self, role: str):
        try:
            return self._channels[role]
        except KeyError:
            raise LabctlError("bench is not open") from None

    def power_up(self) -> None:
        """Ramp VDD to 1.80 V, then hold MON at 0.9 V and connect EXT_IN at 0 A (section 3)."""
        if self.powered:
            return
        supply, monitor, source = (self._channel(r) for r in ("supply", "monitor", "source"))
        try:
            # a supply kept on by an earlier session (keep_powered) is taken over at its level, not
            # set to 0 V in one step: VDD never jumps, and the latches keep their content
            start_v = ratings.VDD_V if self._supply_in_range() else 0.0
            supply.source_voltage(start_v, ratings.VDD_CURRENT_LIMIT_A)
            self._vdd_v = start_v
            supply.enable_output()
            for v in _ramp(start_v, ratings.VDD_V, ratings.VDD_RAMP_STEP_V):
                supply.set_voltage(v)
                self._vdd_v = v
            self.powered = True
            vdd_v = self.read("supply", "voltage")
            low, high = ratings.VDD_IN_RANGE_V
            if not low <= vdd_v <= high:
                raise SafetyError(f"VDD reads {vdd_v:g} V after ramp-up, outside {low}-{high} V: check the supply wiring")
            monitor.source_voltage(ratings.MON_V, ratings.MON_CURRENT_LIMIT_A)
            monitor.enable_output()
            source.source_current(0.0, min(ratings.EXT_IN_COMPLIANCE_V, ratings.VDD_V))
            source.enable_output()
            self._ext_in_a = 0.0
        except BaseException:
            self.power_down()
            raise

    def power_down(self, *, keep_supply: bool = False) -> None:
        """EXT_IN off, MON off, then VDD ramped down and off (unless keep_supply). Never raises halfway."""
        if not self._channels:
            return
        errors: list[str] = []
        steps: list[tuple[str, Callable[[], None]]] = [
            ("EXT_IN level", lambda: self._channel("source").set_current(0.0)),
            ("EXT_IN output", lambda: self._channel("source").disable_output()),
            ("EXT_IN routing", lambda: self._bridge_route(None)),
            ("MON output", lambda: self._channel("monitor").disable_output()),
        ]
        if not keep_supply:
            steps.append(("VDD ramp-down", self._ramp_supply_down))
            steps.append(("VDD output", lambda: self._channel("supply").disable_output()))
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # keep turning the rest off
                errors.append(f"{what}: {exc}")
        self._ext_in_a = 0.0
        self.ext_in_channel = None
        if not keep_supply:
            self.powered = False
        if errors:
            raise InstrumentError("could not turn everything off: " + "; ".join(errors))

    def _ramp_supply_down(self) -> None:
        """Ramp from the level this session set, or from 1.80 V when an earlier session left VDD on."""
        supply = self._channel("supply")
        if supply.output_enabled:
            start_v = self._vdd_v
        elif self._supply_in_range():
            start_v = ratings.VDD_V
        else:
            return
        for v in _ramp(start_v, 0.0, ratings.VDD_RAMP_STEP_V):
            supply.set_voltage(v)
            self._vdd_v = v

    def _supply_in_range(self) -> bool:
        """STATUS bit 0 clear: VDD is at the pad, 1.71 to 1.89 V (section 4), whoever turned it on."""
        try:
            return self.bridge is not None and not self.bridge.status().flags & StatusFlag.SUPPLY_OUT_OF_RANGE
        except LabctlError:
            return False

    def _bridge_route(self, channel: int | None) -> None:
        if self.bridge is not None:
            self.bridge.route_ext_in(channel)

    # -- guarded analog operations -----------------------------------------

    def route_ext_in(self, channel: int | None) -> None:
        """Route EXT_IN to a layer-0 channel (None disconnects); the current goes to 0 first."""
        if channel is not None and not 0 <= channel < self.chip.n_inputs:
            raise SafetyError(f"EXT_IN channel {channel} does not exist (die has {self.chip.n_inputs} inputs)")
        if self._ext_in_a != 0.0:
            self.set_ext_in(0.0)
        assert self.bridge is not None
        self.bridge.route_ext_in(channel)
        self.ext_in_channel = channel

    def set_ext_in(self, current_a: float) -> None:
        """Source ``current_a`` into EXT_IN: only while powered, routed, and within 0..500 nA."""
        if not 0.0 <= current_a <= ratings.EXT_IN_MAX_A:
            raise SafetyError(f"EXT_IN current {current_a:g} A is outside the recommended 0 to {ratings.EXT_IN_MAX_A:g} A")
        if current_a > 0 and not self.powered:
            raise SafetyError("EXT_IN may be driven only while VDD is up (power up first)")
        if current_a > 0 and self.ext_in_channel is None:
            raise SafetyError("EXT_IN is not routed to an input channel: a current would float the pad to compliance")
        self._channel("source").set_current(current_a)
        self._ext_in_a = current_a

    def read(self, role: str, quantity: str) -> float:
        """One reading ('current' or 'voltage') of the channel serving ``role``."""
        channel = self._channel(role)
        value = channel.measure_current() if quantity == "current" else channel.measure_voltage()
        if self._on_reading is not None:
            self._on_reading(Reading(time.time(), role, quantity, float(value)))
        return float(value)

    def read_mon(self) -> float:
        """MON current in A (positive: the die sinks the copy current, section 4)."""
        if not self.powered:
            raise SafetyError("MON can be read only while the die is powered")
        return self.read("monitor", "current")


def _ramp(start: float, stop: float, step: float) -> list[float]:
    n = max(1, int(np.ceil(abs(stop - start) / step - 1e-9)))
    return [float(v) for v in np.linspace(start, stop, n + 1)[1:]]
