"""The TTFS bench: one bridge, four SMU channels (VDD, VTH, EREV_EXC, EREV_INH) and a scope (contract 3, 4, 5).

:class:`TtfsBench` owns safe operation, so no caller has to remember it:

- the bench file's roles are checked before anything is opened (3.1, 3.3);
- the wiring is proven before VDD and before the biases (5.1, :mod:`.wiring`);
- power-up and power-down follow 5.2: compliance before every output turns
  on, VDD in 0.1 V steps before the biases, EREV_INH, EREV_EXC, then VTH last
  in steps of at most 0.2 V; power-down the reverse, then every output off,
  on every exit, exception and signal (:class:`labctl.held_bench.HeldBench`);
- a setpoint outside the ratings of section 4, or one 5.3 says is never
  commanded, is refused with one line before anything is sent;
- a supply or rail found in compliance is a fault (5.3): the bench powers
  down and one line names the role and its reading.

Membrane traces (3.4) and energy per inference (3.5) are measured by
:mod:`.membrane` and :mod:`.energy` through this bench.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labctl import bench_lock, shutdown
from labctl.bench_file import BenchConfig, RoleBinding, parse_bridge_bench_text
from labctl.drivers.infiniivision import InfiniiVision
from labctl.drivers.instruments import open_instrument
from labctl.errors import ConfigError, InstrumentError, LabctlError, SafetyError
from labctl.families.ttfs import wiring
from labctl.families.ttfs.energy import EnergyReading, measure_energy
from labctl.families.ttfs.identify import DieDescription
from labctl.families.ttfs.link import TtfsBridge
from labctl.families.ttfs.membrane import (
    VTH_REFERENCE,
    ChainCalibration,
    MembraneTrace,
    acquire,
    calibrate_chain,
    read_membrane,
)
from labctl.families.ttfs.protocol import StatusFlag
from labctl.held_bench import HeldBench
from labctl.readings import Reading, ReadingListener
from labctl.toml_files import read_user_file

ROLES = ("supply", "threshold", "rev_exc", "rev_inh", "probe", "sync")  # contract 3.1
SMU_ROLES = ROLES[:4]
BIAS_ROLES = ("threshold", "rev_exc", "rev_inh")
SCOPE_INPUTS = ("1", "2", "3", "4", "EXT")  # 3.3


@dataclass(frozen=True)
class Rating:
    """One SMU role: its pad, operating range (section 4), reference level (1.2) and compliance (3.1)."""

    pad: str
    low_v: float
    high_v: float
    rop_v: float
    compliance_a: float
    step_v: float


RATINGS = {
    "supply": Rating("VDD", 1.71, 1.89, 1.80, 10e-3, 0.1),
    "threshold": Rating("VTH", 0.40, 1.20, 0.80, 10e-6, 0.2),
    "rev_exc": Rating("EREV_EXC", 0.00, 0.70, 0.40, 1e-3, 0.2),
    "rev_inh": Rating("EREV_INH", 1.40, 1.80, 1.70, 1e-3, 0.2),
}
POWER_UP_ORDER = ("rev_inh", "rev_exc", "threshold")  # 5.2 step 5: VTH last
RAMP_PAUSE_S = 1e-3  # 5.2: steps at least 1 ms apart
POWER_ON_WAIT_S = 2e-3  # 5.2 step 3
SCOPE_PROOF_TOLERANCE_V = 0.050  # 5.1
SCOPE_PROOF_AVERAGES = 4
COMPLIANCE_FRACTION = 0.98
"""A reading at this fraction of its compliance or more counts as in compliance."""


# -- the bench file ---------------------------------------------------------------------


def parse_ttfs_bench_text(text: str, source: Path | None = None) -> BenchConfig:
    """A TTFS bench file (3.3): the generic bridge bench file with this family's roles, then its channel rules."""
    where = f"bench file {source}" if source else "bench file"
    config = parse_bridge_bench_text(text, source)
    if config.family not in (None, "ttfs"):
        raise ConfigError(f"{where}: family = {config.family!r}, not a TTFS bench")
    roles = {role: dataclasses.replace(b, channel="EXT") if b.channel.upper() == "EXT" else b
             for role, b in config.roles.items()}
    _check_channels(roles, where)
    return dataclasses.replace(config, family="ttfs", roles=roles)


def _check_channels(roles: dict[str, RoleBinding], where: str) -> None:
    """3.3: one channel never serves two roles; an SMU channel never serves probe or sync; scope inputs 1-4, EXT."""
    pairs = [(b.instrument, b.channel) for b in roles.values()]
    for role, b in roles.items():
        if pairs.count((b.instrument, b.channel)) > 1:
            raise ConfigError(f"{where}: roles.{role}: channel {b.instrument}:{b.channel} serves two roles")
    scope = roles["probe"].instrument
    if roles["sync"].instrument != scope:
        raise ConfigError(f"{where}: roles.sync must be an input of the probe's scope {scope!r}")
    for role in SMU_ROLES:
        if roles[role].instrument == scope:
            raise ConfigError(f"{where}: roles.{role}: {scope!r} is the scope; an SMU role needs an SMU channel")
    for role, allowed in (("probe", SCOPE_INPUTS[:4]), ("sync", SCOPE_INPUTS)):
        if roles[role].channel not in allowed:
            raise ConfigError(f"{where}: roles.{role}: scope input {roles[role].channel!r} is not one of "
                              f"{', '.join(allowed)}")


def load_ttfs_bench_file(path: str | Path) -> BenchConfig:
    return parse_ttfs_bench_text(read_user_file(path, "bench file"), source=Path(path))


# -- the bench ----------------------------------------------------------------------------


class TtfsBench(HeldBench):
    """A TTFS bench opened from a bench file; use :func:`open_ttfs_bench`."""

    def __init__(self, config: BenchConfig, *, nplc: float = 1.0, transcript: Callable | None = None,
                 on_reading: ReadingListener | None = None, announce: Callable[[str], None] | None = None,
                 progress: Callable[[str, int, int], None] | None = None) -> None:
        self.config = config
        self.nplc = nplc
        self._transcript = transcript
        self._on_reading = on_reading
        """The session recorder's hook: every SMU reading, as it is taken."""
        self._announce = announce or (lambda message: None)
        self._progress = progress or (lambda stage, done, total: None)
        self.link: TtfsBridge | None = None  # type: ignore[assignment]
        self.scope: InfiniiVision | None = None
        self._instruments: dict[str, object] = {}
        self._channels: dict[str, object] = {}
        self._nplc: dict[str, float] = {}
        self._setpoint_v = {role: 0.0 for role in SMU_ROLES}
        self.powered = False
        self._outputs_used = False
        """Whether this session has configured an SMU output (then every exit brings them all down)."""
        self.chain: ChainCalibration | None = None
        self.chain_settings: tuple[float, float] | None = None
        """(scale_v, offset_v) of the scope when the chain was calibrated: a trace needs the same."""
        self._lock: bench_lock.BenchLock | None = None
        self.shutdown_report: shutdown.ShutdownReport | None = None

    # -- opening and closing ---------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.link is not None

    @property
    def chip(self) -> DieDescription:
        assert self.link is not None and self.link.chip is not None, "bench is not open"
        return self.link.chip

    def open(self) -> "TtfsBench":
        """Lock the bench, open the bridge (IDENTIFY first), the SMUs and the scope; powers nothing."""
        if self._lock is None:
            self._lock = bench_lock.lock_bench(self.config)
        try:
            self.link = TtfsBridge(self.config.bridge_port, timeout_s=self.config.bridge_timeout_s,
                                   transcript=self._transcript)
            try:
                self.link.open()
                self.link.identify()
            except LabctlError as exc:
                raise InstrumentError(f"bridge.port: {exc}") from None
            scope_name = self.config.roles["probe"].instrument
            for name, section in self.config.instruments.items():
                try:
                    if name == scope_name:
                        self.scope = InfiniiVision.from_resource(section.resource, timeout_s=section.timeout_s)
                    else:
                        self._instruments[name] = open_instrument(section.resource, timeout_s=section.timeout_s)
                except LabctlError as exc:
                    raise InstrumentError(f"instruments.{name}: {exc}") from None
            for role in SMU_ROLES:
                binding = self.config.roles[role]
                try:
                    self._channels[role] = self._instruments[binding.instrument].channel(binding.channel)
                except LabctlError as exc:
                    raise ConfigError(f"roles.{role}: {exc}") from None
            for role in ("probe", "sync"):
                channel = self.config.roles[role].channel
                if self.scope is not None and channel not in self.scope.input_names():
                    raise ConfigError(f"roles.{role}: the {self.scope.model} has no input {channel!r}")
        except BaseException:
            self.disconnect()
            raise
        return self

    def identities(self) -> dict[str, str]:
        """Instrument name (as the bench file names it) -> its ``*IDN?`` answer."""
        found = {name: str(getattr(inst, "idn", "?")) for name, inst in self._instruments.items()}
        if self.scope is not None:
            found[self.config.roles["probe"].instrument] = self.scope.idn
        return found

    def close(self, *, emergency: bool = False) -> None:
        try:
            self.power_down()
        finally:
            self.disconnect()

    def disconnect(self) -> None:
        """Close bridge and instruments without touching any output; release the lock."""
        for inst in [*self._instruments.values(), self.scope]:
            if inst is not None:
                try:
                    inst.close()  # type: ignore[attr-defined]
                except Exception:
                    pass
        self._instruments.clear()
        self._channels.clear()
        self.scope = None
        if self.link is not None:
            try:
                self.link.close()
            finally:
                self.link = None
        if self._lock is not None:
            lock, self._lock = self._lock, None
            lock.release()

    def _label(self, role: str) -> str:
        binding = self.config.roles[role]
        return f"{binding.instrument}:{binding.channel}"

    def _channel(self, role: str):
        try:
            return self._channels[role]
        except KeyError:
            raise LabctlError("bench is not open") from None

    # -- power ---------------------------------------------------------------------------

    def power_up(self) -> None:
        """Contract 5.2: outputs on at 0 V, contacts proven, VDD up, biases proven, then the biases to the ROP."""
        if self.powered:
            return
        channels = {role: self._channel(role) for role in SMU_ROLES}
        labels = {role: self._label(role) for role in SMU_ROLES}
        compliance = {role: r.compliance_a for role, r in RATINGS.items()}
        try:
            self._announce("power-up: outputs on at 0 V")
            self._outputs_used = True
            self._progress("power-up", 0, 4)
            for role in SMU_ROLES:
                channels[role].source_voltage(0.0, RATINGS[role].compliance_a)
                self._set_nplc(role, self.nplc)
                channels[role].enable_output()
                self._setpoint_v[role] = 0.0
            wiring.prove_contacts(channels, labels, self.measure_current, compliance)
            self._announce("power-up: VDD")
            self._progress("power-up", 1, 4)
            self._ramp("supply", RATINGS["supply"].rop_v)
            time.sleep(POWER_ON_WAIT_S)
            vdd = self.measure_voltage("supply")
            rating = RATINGS["supply"]
            if not rating.low_v <= vdd <= rating.high_v:
                raise SafetyError(f"VDD reads {vdd:.4f} V after ramp-up, outside {rating.low_v}-{rating.high_v} V: "
                                  "check the supply wiring")
            self._check_compliance("supply", self.measure_current("supply"))
            flags = self.link.status().flags
            if flags & (StatusFlag.SUPPLY_OUT_OF_RANGE | StatusFlag.TIMEBASE_UNLOCKED):
                raise SafetyError(f"VDD is up but STATUS still shows {StatusFlag(flags)!r}: the die did not power up")
            self.powered = True
            wiring.prove_biases(channels, labels, self.link.read_monitors, compliance)
            self._announce("power-up: biases")
            self._progress("power-up", 2, 4)
            for role in POWER_UP_ORDER:
                self._ramp(role, RATINGS[role].rop_v)
            for role in SMU_ROLES:
                self._check_compliance(role, self.measure_current(role))
            self._prove_scope()
            self._progress("power-up", 4, 4)
        except BaseException:
            self.power_down()
            raise

    def _prove_scope(self) -> None:
        """5.1, after power: the probe input shows the VTH reference (within 50 mV) and triggers on sync."""
        _, v_mon = acquire(self, *VTH_REFERENCE, None, entry=0, averages=SCOPE_PROOF_AVERAGES, window_ns=None,
                           scale_v=0.1, offset_v=1.1, points=200)
        vth = self._setpoint_v["threshold"]
        if abs(float(v_mon.mean()) - vth) > SCOPE_PROOF_TOLERANCE_V:
            raise SafetyError(f"wiring: probe ({self._label('probe')}) reads {float(v_mon.mean()):.3f} V with the VTH "
                              f"reference selected, not {vth:.2f} V within {SCOPE_PROOF_TOLERANCE_V * 1e3:g} mV: "
                              "check the MON cable")

    def power_down(self) -> shutdown.ShutdownReport | None:
        """5.2 reversed: VTH, EREV_EXC, EREV_INH to 0 V, then VDD, then every output off; never stops halfway.

        A step that fails is recorded and the rest is still tried, except that
        VDD stays up while a bias may still be up (EREV_INH above 0.3 V on an
        unpowered die is an overstress, section 4).
        """
        if not self._channels or not self._outputs_used:
            return None  # opened without power (identify, describe): this session turned nothing on
        return shutdown.power_down(self._power_down_steps)

    def _power_down_steps(self) -> shutdown.ShutdownReport:
        steps = shutdown.PowerDownSteps()
        step, problems = steps.step, steps.problems
        left: list[str] = []

        stuck: list[str] = []
        for role in reversed(POWER_UP_ORDER):
            if not step(f"{role} ramp-down", lambda r=role: self._ramp(r, 0.0, checked=False)):
                if not step(f"{role} output", lambda r=role: self._channel(r).disable_output()):
                    stuck.append(role)
                    left.append(f"{RATINGS[role].pad} ({self._label(role)}, may still be up)")
        biases_down = not stuck
        if biases_down:
            step("VDD ramp-down", lambda: self._ramp("supply", 0.0, checked=False))
        else:
            problems.append("VDD kept up: a bias could not be brought down (a bias above an unpowered VDD is an "
                            "overstress); bring it down by hand, then VDD")
            left.append(f"VDD ({self._label('supply')})")
        self.powered = False
        outputs = [r for r in reversed(POWER_UP_ORDER) if r not in stuck] + (["supply"] if biases_down else [])
        for role in outputs:
            if not step(f"{role} output", lambda r=role: self._channel(r).disable_output()):
                left.append(f"{RATINGS[role].pad} ({self._label(role)})")
        report = shutdown.ShutdownReport(bench=f"{self.config.name} ({self.config.bridge_port})",
                                         left_on=tuple(left), problems=tuple(problems))
        self.shutdown_report = report
        shutdown.record(report)
        return report

    def _ramp(self, role: str, target_v: float, *, checked: bool = True) -> None:
        """From the present setpoint to ``target_v`` in the role's steps, 1 ms apart (5.2); the target is
        checked before the first step (the steps of a ramp from 0 V lie below every operating range)."""
        if checked:
            self._check_setpoint(role, target_v)
        start = self._setpoint_v[role]
        n = max(1, math.ceil(abs(target_v - start) / RATINGS[role].step_v - 1e-9))
        channel = self._channel(role)
        for v in np.linspace(start, target_v, n + 1)[1:]:
            channel.set_voltage(float(v))
            self._setpoint_v[role] = float(v)
            time.sleep(RAMP_PAUSE_S)

    # -- ratings ----------------------------------------------------------------------------

    def _check_setpoint(self, role: str, volts: float) -> None:
        """Section 4 and 5.3: what is never commanded, refused before it is sent."""
        rating = RATINGS[role]
        pad = rating.pad
        if role == "supply":
            if not 0.0 <= volts <= rating.high_v:
                raise SafetyError(f"VDD {volts:g} V refused: outside 0 to {rating.high_v} V (5.3)")
            if any(self._setpoint_v[r] > wiring.OTHERS_BELOW_V for r in BIAS_ROLES) and volts < rating.low_v:
                raise SafetyError(f"VDD {volts:g} V refused while a bias is up (5.2: biases go down first)")
            return
        if not self.powered:
            if volts > wiring.OTHERS_BELOW_V:
                raise SafetyError(f"{pad} {volts:g} V refused: VDD is not proven and in range (5.3); power up first")
            return
        if volts != 0.0 and not rating.low_v <= volts <= rating.high_v:
            raise SafetyError(f"{pad} {volts:g} V refused: outside its operating range {rating.low_v:g} to "
                              f"{rating.high_v:g} V (section 4)")
        if volts > self._setpoint_v["supply"]:
            vdd = self._setpoint_v["supply"]
            raise SafetyError(f"{pad} {volts:g} V refused: above the VDD setpoint {vdd:g} V (5.3)")

    def _check_compliance(self, role: str, current_a: float) -> None:
        """5.3: a supply or rail in compliance is a fault: power down, then one line names it."""
        limit = RATINGS[role].compliance_a
        if abs(current_a) >= COMPLIANCE_FRACTION * limit:
            message = (f"{role} ({RATINGS[role].pad}, {self._label(role)}) is in compliance: reads {current_a:.4g} A "
                       f"at a {limit:g} A limit; bench powered down")
            self.power_down()
            raise SafetyError(message)

    # -- the API ----------------------------------------------------------------------------

    def bias_v(self, role: str) -> float:
        """The setpoint of an SMU role (supply, threshold, rev_exc, rev_inh)."""
        if role not in RATINGS:
            raise ConfigError(f"{role!r} is not an SMU role (roles: {', '.join(SMU_ROLES)})")
        return self._setpoint_v[role]

    def set_bias(self, role: str, volts: float) -> None:
        """Ramp a role to ``volts``; the target is checked against the ratings before a step is sent."""
        if role not in RATINGS:
            raise ConfigError(f"{role!r} is not an SMU role (roles: {', '.join(SMU_ROLES)})")
        if not self.powered:
            raise SafetyError(f"{RATINGS[role].pad} cannot be set: the bench is not powered up")
        if role == "supply" and not RATINGS[role].low_v <= volts <= RATINGS[role].high_v:
            raise SafetyError(f"VDD {volts:g} V refused: outside {RATINGS[role].low_v} to {RATINGS[role].high_v} V "
                              "(section 4)")
        if role == "supply" and volts < self._setpoint_v["rev_inh"]:
            raise SafetyError(f"VDD {volts:g} V refused: below EREV_INH at {self._setpoint_v['rev_inh']:g} V (5.3)")
        self._ramp(role, volts)

    def measure_current(self, role: str, *, nplc: float = 1.0) -> float:
        """One current reading (A, positive into the die); a reading in compliance is a fault (5.3)."""
        self._set_nplc(role, nplc)
        value = self._report(role, "current", self._channel(role).measure_current())
        if self.powered:
            self._check_compliance(role, value)
        return value

    def measure_voltage(self, role: str) -> float:
        """One voltage reading (V) at the role's SMU terminals."""
        self._set_nplc(role, self.nplc)
        return self._report(role, "voltage", self._channel(role).measure_voltage())

    def _report(self, role: str, quantity: str, value) -> float:
        if self._on_reading is not None:
            self._on_reading(Reading(time.time(), role, quantity, float(value)))
        return float(value)

    def _set_nplc(self, role: str, nplc: float) -> None:
        if self._nplc.get(role) != nplc:
            self._channel(role).set_nplc(nplc)
            self._nplc[role] = nplc

    def calibrate_probe_chain(self, *, scale_v: float = 0.1, offset_v: float = 1.1) -> ChainCalibration:
        """3.4 step 5: the chain's gain and offset from the VTH reference at two levels; VTH restored."""
        self._require_power()
        self.chain = calibrate_chain(self, scale_v=scale_v, offset_v=offset_v)
        self.chain_settings = (scale_v, offset_v)
        return self.chain

    def read_membrane(self, layer: int, neuron: int, codes: np.ndarray | None, *, entry: int = 0,
                      averages: int = 16, window_ns: int | None = None, scale_v: float = 0.1, offset_v: float = 1.1,
                      points: int = 2000) -> MembraneTrace:
        """3.4: a membrane (or a reference, layer 0) against time from SYNC, through the calibrated chain."""
        self._require_power()
        if self.chain is None or self.chain_settings != (scale_v, offset_v):
            self.calibrate_probe_chain(scale_v=scale_v, offset_v=offset_v)
        return read_membrane(self, layer, neuron, codes, entry=entry, averages=averages, window_ns=window_ns,
                             scale_v=scale_v, offset_v=offset_v, points=points)

    def measure_energy(self, codes: np.ndarray, *, entry: int = 0, window_ns: int | None = None,
                       frames: int = 1) -> EnergyReading:
        """3.5: energy per inference of the patterns ``codes`` (one frame), idle batches before and after."""
        self._require_power()
        return measure_energy(self, codes, entry=entry, window_ns=window_ns, frames=frames)

    def _require_power(self) -> None:
        if not self.powered:
            raise SafetyError("the bench is not powered up")

    @property
    def probe_input(self) -> str:
        return self.config.roles["probe"].channel

    @property
    def sync_input(self) -> str:
        return self.config.roles["sync"].channel


@contextmanager
def open_ttfs_bench(bench_file: Path, *, power: bool = True, progress=None, announce=None,
                    **bench_options) -> Iterator[TtfsBench]:
    """The bench locked and opened (IDENTIFY first), wiring proven and powered to the ROP unless ``power=False``;
    every exit ramps down in 5.2's order and turns every output off."""
    bench = TtfsBench(load_ttfs_bench_file(bench_file), announce=announce, progress=progress, **bench_options)
    with bench:
        if power:
            bench.power_up()
        yield bench
