"""The bench: one bridge plus SMU channels in the roles supply, source and monitor.

The Bench owns safe operation (contract sections 3 and 4), so no caller has to
remember it: compliance is set before an output turns on; VDD ramps up before
EXT_IN and MON are driven and down after they are off; setpoints outside the
recommended ratings (:mod:`labctl.families.cmna.ratings`) are refused; every output goes off
on exit, on an exception and on SIGINT/SIGTERM/SIGHUP (:mod:`labctl.shutdown`). A normal exit
may keep VDD on (``keep_powered``) so programmed latches survive; EXT_IN and MON still go off.
An open Bench holds the bench's lock (:mod:`labctl.bench_lock`): a second client is refused.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from labctl import bench_lock, shutdown
from labctl.held_bench import HeldBench
from labctl.families.cmna import ratings
from labctl.bench_file import BenchConfig, load_bench_file
from labctl.families.cmna.chip import ChipDescription
from labctl.families.cmna.link import Bridge
from labctl.families.cmna.protocol import StatusFlag
from labctl.drivers.instruments import open_instrument
from labctl.errors import ConfigError, InstrumentError, LabctlError, SafetyError
from labctl.readings import Reading, ReadingListener




class Bench(HeldBench):
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
        self._lock: bench_lock.BenchLock | None = None
        self.shutdown_report: shutdown.ShutdownReport | None = None
        """What the last power-down left, in words (also :func:`labctl.shutdown.record`-ed for the command line)."""
        self.left_on: list[str] = []
        """Outputs the last power-down could not turn off ("EXT_IN", "MON", "VDD"): empty when all went off."""
        self.kept_on: list[str] = []
        """Outputs the last power-down kept on as asked: ["VDD"] after a normal exit with ``keep_powered``."""

    @classmethod
    def from_file(cls, path, **kwargs) -> "Bench":
        return cls(load_bench_file(path), **kwargs)

    # -- opening and closing -------------------------------------------------

    def open(self) -> "Bench":
        """Take the bench's lock, connect to the bridge and every instrument; bind roles to channels. Powers nothing.

        The lock (bridge port and every instrument resource, :mod:`labctl.bench_lock`) comes
        first: when another client holds the bench, :class:`~labctl.bench_lock.BenchInUseError`
        names it and nothing here has been opened or touched. Held until :meth:`disconnect`.
        """
        if self._lock is None:
            self._lock = bench_lock.lock_bench(self.config)
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

    @property
    def is_open(self) -> bool:
        return self.bridge is not None

    def close(self, *, emergency: bool = False) -> None:
        """Turn outputs off (VDD stays on after a normal exit with keep_powered) and disconnect."""
        keep = self.keep_powered and not emergency
        try:
            try:
                self.power_down(keep_supply=keep)
            except KeyboardInterrupt as interrupt:
                if keep:  # a signal during a keep-powered exit: an interrupt turns every output off
                    try:
                        self.power_down()
                    except LabctlError as problem:  # the interrupt stays what ended the run
                        interrupt.add_note(f"at power-down: {problem}")
                raise
        finally:
            self.disconnect()

    def disconnect(self) -> None:
        """Close the bridge and instruments without touching any output (e.g. after ``identify``); release the lock."""
        for inst in self._instruments.values():
            try:
                inst.close()  # type: ignore[attr-defined]
            except Exception:
                pass
        self._instruments.clear()
        self._channels.clear()
        if self.bridge is not None:
            try:
                self.bridge.close()
            finally:
                self.bridge = None
        if self._lock is not None:
            lock, self._lock = self._lock, None
            lock.release()

    # -- power sequencing ----------------------------------------------------

    def _channel(self, role: str):
        try:
            return self._channels[role]
        except KeyError:
            raise LabctlError("bench is not open") from None

    def power_up(self) -> None:
        """Prove the wiring, ramp VDD to 1.80 V, prove EXT_IN and MON, then hold MON at 0.9 V and
        connect EXT_IN at 0 A (sections 3 and 4; the proof: :mod:`labctl.families.cmna.wiring`).

        A bench file whose roles do not reach their pads is refused with a one-line SafetyError
        naming them, before VDD is raised (supply) or with VDD ramped down again (source, monitor).
        """
        if self.powered:
            return
        supply, monitor, source = (self._channel(r) for r in ("supply", "monitor", "source"))
        proof = self._wiring_proof()
        # a supply kept on by an earlier session (keep_powered) is taken over at its level, not
        # set to 0 V in one step: VDD never jumps, and the latches keep their content
        taken_over = self._supply_in_range()
        if taken_over:
            self._prove_kept_supply(proof)
        try:
            if not taken_over:
                proof.prove_supply_unpowered()  # leaves the supply on at 0 V, 2 mA compliance
            start_v = ratings.VDD_V if taken_over else 0.0
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
            proof.prove_source_and_monitor()  # leaves both on (0 A; 0.9 V), EXT_IN unrouted
            monitor.source_voltage(ratings.MON_V, ratings.MON_CURRENT_LIMIT_A)
            monitor.enable_output()
            source.source_current(0.0, min(ratings.EXT_IN_COMPLIANCE_V, ratings.VDD_V))
            source.enable_output()
            self._ext_in_a = 0.0
        except BaseException:
            self.power_down()
            raise

    def _wiring_proof(self):
        """The proof of this bench file's roles (contract section 4, proving the wiring before power)."""
        from labctl.families.cmna.wiring import WiringProof

        labels = {role: f"{b.instrument}:{b.channel}" for role, b in self.config.roles.items()}
        return WiringProof(self._channels, labels, self.bridge, self.read, self.nplc)

    def _prove_kept_supply(self, proof) -> None:
        """A die powered by an earlier session: the supply role must read VDD (reads only).

        Refused, the Bench lets go of its channels: the one holding VDD is not the one the bench
        file names, so no output may be touched, not even to turn it off (the die stays powered).
        """
        try:
            proof.prove_supply_powered()
        except SafetyError:
            self._channels.clear()
            raise

    def power_down(self, *, keep_supply: bool = False) -> shutdown.ShutdownReport | None:
        """EXT_IN to 0 A and off, EXT_IN unrouted, MON off, then VDD ramped down and off (unless keep_supply).

        Never stops halfway: signals that arrive meanwhile are deferred until it is done
        (:func:`labctl.shutdown.deferred_signals`), and a step that fails (an instrument that
        vanished) is recorded while the rest is still tried. The order of section 3 holds even
        then: EXT_IN's level and output come first, and VDD goes down only once EXT_IN is known
        to be off (a current into EXT_IN while VDD falls lifts the pad above VDD: damage, section
        4); otherwise VDD stays up and is reported. MON is tried whatever happened to EXT_IN.
        What is left on is in :attr:`left_on`, :attr:`kept_on` and :attr:`shutdown_report` (also
        recorded for the command line); if a step failed this raises InstrumentError at the end.
        """
        if not self._channels:
            return None
        return shutdown.power_down(lambda: self._power_down_steps(keep_supply), still_on=lambda: self.left_on)

    def _power_down_steps(self, keep_supply: bool) -> shutdown.ShutdownReport:
        steps = shutdown.PowerDownSteps()
        step, problems = steps.step, steps.problems
        left: dict[str, str] = {}
        kept: dict[str, str] = {}

        level_zero = step("EXT_IN level", lambda: self._channel("source").set_current(0.0))
        ext_off = step("EXT_IN output", lambda: self._channel("source").disable_output())
        if level_zero or ext_off:
            self._ext_in_a = 0.0
        if ext_off:  # a source that may still push current stays routed: unrouted, the pad would float up
            if step("EXT_IN routing", lambda: self._bridge_route(None)):
                self.ext_in_channel = None
        else:
            left["EXT_IN"] = "output on at 0 A" if level_zero else "its source may still drive current"
        if not step("MON output", lambda: self._channel("monitor").disable_output()):
            left["MON"] = "output still holds the pad"
        if keep_supply:
            if self.powered or self._channel("supply").output_enabled:
                kept["VDD"] = f"at {self._vdd_v:.2f} V, kept powered so the latches keep their weights"
            elif self._supply_in_range():
                kept["VDD"] = "in range, as an earlier session left it"
        elif "EXT_IN" in left:  # section 4: a current into EXT_IN while VDD falls lifts the pad above VDD
            problems.append("VDD ramp-down: not started while EXT_IN may drive current (its pad would rise above VDD)")
            left["VDD"] = (f"kept up at {self._vdd_v:.2f} V because EXT_IN could not be turned off; "
                           "turn EXT_IN off first, then ramp VDD down")
        else:  # (a MON left holding 0.9 V stays inside its 0 to 1.8 V absolute maximum at any VDD)
            ramped = step("VDD ramp-down", self._ramp_supply_down)
            vdd_off = step("VDD output", lambda: self._channel("supply").disable_output())
            if ramped or vdd_off:
                self.powered = False
            if not vdd_off:
                left["VDD"] = f"output could not be turned off (last set to {self._vdd_v:.2f} V)"
        self.left_on, self.kept_on = list(left), list(kept)
        report = shutdown.ShutdownReport(
            bench=f"{self.config.name} ({self.config.bridge_port})",
            left_on=tuple(f"{name} ({why})" for name, why in left.items()),
            kept_on=tuple(f"VDD {why}" if name == "VDD" else f"{name} ({why})" for name, why in kept.items()),
            problems=tuple(problems))
        self.shutdown_report = report
        shutdown.record(report)
        return report

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
