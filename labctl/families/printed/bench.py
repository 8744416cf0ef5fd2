"""The printed bench: one 34980A-class mainframe and one B2902A, kept inside the contract by construction.

printed-bench.md sections 4 and 6. The bench, not its callers, owns safety:

- every setpoint is checked against the ratings of 4.4 for the present state
  *before* anything is sent (a D pad may leave +-0.2 V only while a circuit it
  drives has full rails; resistor pads +-0.5 V; D24 0 to 0.2 V; rails within
  their window, never reversed, never more than 0.5 V out of symmetry;
  compliance at most 100 mA): a refused setpoint raises SafetyError and the
  instrument never hears of it (6.4);
- the order of operations of 6.3: reset and configure, identification and the
  D-pad contact proof before any rail, one rail group closed at a time with
  both rails at 0 V, ramps of 0.5 V every 5 ms, 50 ms for the double layers,
  rail currents checked before any input moves;
- power-down in the reverse order on a normal exit, on an exception and on
  SIGINT/SIGTERM/SIGHUP (:mod:`labctl.shutdown`); rails are ramped down even
  when the mainframe no longer answers (6.3);
- one client per bench (:mod:`labctl.bench_lock`).

The 10 ms input settling of 4.5 is a channel delay on the first channel read
after a DAC command (``ROUT:CHAN:DEL``): the instrument itself waits between
executing the DAC command and closing the channel, so the wait can neither be
shortened by host jitter nor forgotten.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from labctl import bench_lock, shutdown
from labctl.held_bench import HeldBench
from labctl.drivers.instruments import open_instrument
from labctl.drivers.keysight_34980a import (
    DAC_SLOTS,
    Keysight34980A,
    dac_channel,
    dac_realised_v,
    rail_channels,
    sense_channel,
    shunt_channel,
)
from labctl.drivers.keysight_b2900 import KeysightB2900, KeysightB2900Channel
from labctl.errors import ConfigError, InstrumentError, LabctlError, SafetyError
from labctl.families.printed.bench_file import (
    PrintedBenchConfig,
    SamplePlan,
    load_printed_bench_file,
    load_sample,
)
from labctl.families.printed.layout import ID_PAD, ID_TAPS, pad_number
from labctl.families.printed.printable import VDD_V, VSS_V

# -- ratings and timing (4.4, 4.5, 6.x) -------------------------------------------------------------

RAIL_TOLERANCE_V = 0.10
"""Operating window of each rail around +-2.00 V (4.4)."""
RAIL_STEP_V = 0.5
"""Ramp step (6.3); also the largest |VDD + VSS| ever allowed (4.4)."""
RAMP_PAUSE_S = 0.005
RAIL_SETTLE_S = 0.050
"""After the rails reach +-2.00 V the electrolyte double layers charge (4.5)."""
INPUT_SETTLE_S = 0.010
"""After the last DAC command before the first reading (4.5, G)."""
HOT_SWITCH_V = 0.05
"""No rail relay switches, and no mainframe reset happens, with a rail beyond this (6.4)."""
CIRCUIT_INPUT_V = 1.5
UNPOWERED_INPUT_V = 0.2
RESISTOR_PAD_V = 0.5
ID_PAD_V = (0.0, 0.2)
CELL_CURRENT_A = (10e-6, 1.5e-3)
"""Rail current window per cell (1.4, 1.5, 6.2)."""
TEST_STRUCTURE_COMPLIANCE_A = 3e-3
NETWORK_COMPLIANCE_A = (100e-3, 2e-3)
"""A network's compliance: min(100 mA, 2 mA x cells) (4.4)."""
FAST_NPLC = 1.0
SLOW_NPLC = 10.0
PROOF_V = 0.100
PROOF_MIN_A = {"circuit": 5e-9, "resistor": 10e-9}
"""D-pad contact proof thresholds (6.2)."""
ID_DRIVE_V = 0.200
NO_SAMPLE_A = 20e-9
ID_LEVEL_OHM = 10e3
ID_LEVEL_FACTOR = 1.68
"""A value further than this from every ID level is not an ID resistor (2.2)."""
SMU_CHANNELS = ("1", "2")
"""Channel 1 is VDD, channel 2 VSS (4.1)."""
EXPECTED_MODULES = {**{slot: "34951A" for slot in DAC_SLOTS}, 7: "34922A", 8: "34922A"}
ALL_DACS = tuple(slot * 1000 + channel for slot in DAC_SLOTS for channel in range(1, 5))

Pause = Callable[[float], None]


# -- pure rules -----------------------------------------------------------------------------------


def pad_limits(pad: str, plan: SamplePlan, powered_group: int | None, rails_full: bool) -> tuple[float, float]:
    """The operating range of D pad ``pad`` in the present state (4.4): (low, high) in V."""
    if pad == ID_PAD:
        return ID_PAD_V
    if pad in plan.resistor_pads:
        return -RESISTOR_PAD_V, RESISTOR_PAD_V
    groups = plan.circuit_inputs.get(pad)
    if groups is None:
        return 0.0, 0.0  # a pad the sample does not use stays at 0 V
    limit = CIRCUIT_INPUT_V if rails_full and powered_group in groups else UNPOWERED_INPUT_V
    return -limit, limit


def check_pad_setpoint(pad: str, volts: float, plan: SamplePlan, powered_group: int | None,
                       rails_full: bool) -> float:
    """``volts`` as a float if pad ``pad`` may be set to it now; SafetyError naming the rule otherwise (6.4)."""
    if isinstance(volts, bool) or not isinstance(volts, (int, float)) or not math.isfinite(volts):
        raise SafetyError(f"pad {pad}: setpoint {volts!r} is not a finite number")
    low, high = pad_limits(pad, plan, powered_group, rails_full)
    if not low <= float(volts) <= high:
        state = "its circuit's rails at full level" if high == CIRCUIT_INPUT_V else "the present state"
        raise SafetyError(f"pad {pad} ({plan.net_of(pad)}): {float(volts)!r} V is outside its operating range "
                          f"{low:g} to {high:g} V in {state} (contract 4.4); not sent")
    return float(volts)


def check_rails(vdd_v: float, vss_v: float) -> None:
    """SafetyError unless VDD/VSS setpoints keep 4.4: VDD 0..2.1 V, VSS -2.1..0 V, |VDD + VSS| <= 0.5 V."""
    for name, value in (("VDD", vdd_v), ("VSS", vss_v)):
        if not math.isfinite(value):
            raise SafetyError(f"{name} setpoint {value!r} is not a finite number")
    if not 0.0 <= vdd_v <= VDD_V + RAIL_TOLERANCE_V:
        raise SafetyError(f"VDD setpoint {vdd_v!r} V is outside 0 to {VDD_V + RAIL_TOLERANCE_V:g} V (4.4); not sent")
    if not VSS_V - RAIL_TOLERANCE_V <= vss_v <= 0.0:
        raise SafetyError(f"VSS setpoint {vss_v!r} V is outside {VSS_V - RAIL_TOLERANCE_V:g} to 0 V (4.4); not sent")
    if abs(vdd_v + vss_v) > RAIL_STEP_V + 1e-12:
        raise SafetyError(f"rails {vdd_v!r} V / {vss_v!r} V are more than {RAIL_STEP_V} V out of symmetry "
                          "(4.4: a half-powered cell sees up to 4 V); not sent")


def rail_compliance_a(plan: SamplePlan) -> float:
    """3 mA for one test structure; min(100 mA, 2 mA x cells) for a network (4.4)."""
    if plan.kind == "test-structures":
        return TEST_STRUCTURE_COMPLIANCE_A
    cap, per_cell = NETWORK_COMPLIANCE_A
    return min(cap, per_cell * max(plan.cells_per_group.values(), default=1))


def ramp_levels(start_v: float, stop_v: float) -> list[float]:
    """Magnitudes from ``start_v`` to ``stop_v`` in steps of at most 0.5 V, end included, start excluded."""
    n = max(1, math.ceil(abs(stop_v - start_v) / RAIL_STEP_V - 1e-9))
    return [start_v + (stop_v - start_v) * (i + 1) / n for i in range(n)]


@dataclass(frozen=True)
class IdReading:
    """The ID ladder as read (6.1 step 3): current, node voltages, resistances, digits and code."""

    current_a: float
    v_pad: float
    v_s45: float
    v_s46: float
    resistances_ohm: tuple[float, float, float]
    digits: tuple[int, int, int]
    code: int


def decode_id(resistances_ohm: Sequence[float]) -> tuple[tuple[int, ...], int]:
    """Digits ``round(2 log10(R / 10 kohm))`` and the code ``25 d1 + 5 d2 + d3`` (2.2); SafetyError if a
    value is no ID level (more than a factor 1.68 from every level)."""
    digits = []
    for index, r in enumerate(resistances_ohm, start=1):
        if not (math.isfinite(r) and r > 0):
            raise SafetyError(f"ID resistor R_ID{index} reads {r:g} ohm: not an ID ladder (is the sample down?)")
        d = round(2 * math.log10(r / ID_LEVEL_OHM))
        level = ID_LEVEL_OHM * 10 ** (d / 2)
        if not 0 <= d <= 4 or max(r / level, level / r) > ID_LEVEL_FACTOR:
            raise SafetyError(f"ID resistor R_ID{index} reads {r:.4g} ohm, more than a factor {ID_LEVEL_FACTOR} "
                              "from every ID level (10 k, 31.6 k, 100 k, 316 k, 1 Mohm): not an ID ladder")
        digits.append(d)
    return tuple(digits), 25 * digits[0] + 5 * digits[1] + digits[2]


@dataclass(frozen=True)
class DriveProof:
    """The D-pad contact proof (6.2): each proven pad's current at +0.100 V and the pads that did not answer."""

    currents_a: dict[str, float]
    failed: tuple[str, ...]


@dataclass(frozen=True)
class RailReading:
    """Both rails of the selected group: setpoints, currents (positive out of the source) and trip state."""

    vdd_v: float
    vss_v: float
    i_dd_a: float
    i_ss_a: float
    tripped: tuple[bool, bool] = (False, False)

    @property
    def power_w(self) -> float:
        """The rails' share of 1.8: V_DD I_DD + V_SS I_SS."""
        return self.vdd_v * self.i_dd_a + self.vss_v * self.i_ss_a


class RailFault(SafetyError):
    """A rail in compliance or outside its current window (6.2, 6.4); the group is already ramped down."""

    def __init__(self, message: str, group: int) -> None:
        super().__init__(message)
        self.group = group


@dataclass(frozen=True)
class StartReport:
    """What the bench proved before any rail (6.1, 6.2)."""

    identification: IdReading
    drive_proof: DriveProof
    shunt_offsets_v: dict[int, float]
    instrument_idns: dict[str, str]


class PrintedBench(HeldBench):
    """A printed bench opened from its bench file (4.6); use as a context manager.

    Opening takes the bench's lock and connects; it switches nothing. :meth:`start`
    runs 6.3 steps 1 to 4 (reset, configuration, identification, D-pad proof);
    :meth:`powered` runs steps 5 and 6 for one rail group and reverses them;
    leaving the ``with`` block powers everything down in the order of 6.3.
    """

    def __init__(self, config: PrintedBenchConfig, plan: SamplePlan, *, pause: Pause = time.sleep,
                 transcript: Callable | None = None, on_reading: Callable | None = None) -> None:
        """``transcript``/``on_reading``: the session recorder's hooks (:meth:`SessionRecorder.bench_options`);
        a printed bench has no bridge transactions, and its readings are not yet offered to the recorder."""
        self.config = config
        self.plan = plan
        self._pause = pause
        self.waited_s = 0.0
        """Host waits (ramp steps, double-layer charging): bench time the instruments do not see."""
        self.mainframe: Keysight34980A | None = None
        self.smu: KeysightB2900 | None = None
        self._lock: bench_lock.BenchLock | None = None
        self.group: int | None = None
        self.rails_full = False
        self._rails = [0.0, 0.0]
        self._dac: dict[str, float] = {}
        self._dmm: dict[int, tuple[float, bool, float]] = {}
        self._scan: tuple[int, ...] = ()
        self.offsets_v: dict[int, float] = {}
        self.shutdown_report: shutdown.ShutdownReport | None = None

    @classmethod
    def from_file(cls, path: str | Path, **kwargs) -> "PrintedBench":
        """Read the bench file and its sample file (every bad input refused here, before anything is opened)."""
        config = load_printed_bench_file(path)
        return cls(config, load_sample(config), **kwargs)

    # -- opening and closing ------------------------------------------------------------------

    def open(self) -> "PrintedBench":
        """Take the bench's lock, open both instruments and check their models. Switches nothing."""
        self._lock = bench_lock.lock_bench(self.config)
        try:
            self.mainframe = self._open("mainframe", Keysight34980A, "a 34980A-class mainframe")
            self.smu = self._open("smu", KeysightB2900, "a Keysight B2902A")
            if self.smu.model != "B2902A":
                raise InstrumentError(f"instruments.smu: {self.smu.label} has one channel; the rails need a B2902A")
        except BaseException:
            self.disconnect()
            raise
        return self

    def _open(self, name: str, driver: type, what: str):
        section = self.config.instruments[name]
        try:
            instrument = open_instrument(section.resource, timeout_s=section.timeout_s)
        except LabctlError as exc:
            raise InstrumentError(f"instruments.{name}: {exc}") from None
        if not isinstance(instrument, driver):
            instrument.close()
            raise InstrumentError(f"instruments.{name}: {instrument.label} is not {what}")
        return instrument

    def disconnect(self) -> None:
        """Close the sessions without touching any output; release the lock."""
        for instrument in (self.mainframe, self.smu):
            if instrument is not None:
                with contextlib.suppress(Exception):
                    instrument.close()
        self.mainframe = self.smu = None
        if self._lock is not None:
            lock, self._lock = self._lock, None
            lock.release()

    @property
    def is_open(self) -> bool:
        return self.mainframe is not None

    def close(self, *, emergency: bool = False) -> None:
        """Power everything down in the order of 6.3, then disconnect (a printed bench keeps nothing powered,
        so ``emergency`` changes nothing)."""
        try:
            self.power_down()
        finally:
            self.disconnect()

    def _mf(self) -> Keysight34980A:
        if self.mainframe is None:
            raise LabctlError("bench is not open")
        return self.mainframe

    def _rail(self, index: int) -> KeysightB2900Channel:
        if self.smu is None:
            raise LabctlError("bench is not open")
        return self.smu.channel(SMU_CHANNELS[index])  # type: ignore[return-value]

    def wait(self, seconds: float) -> None:
        """A host wait the instruments cannot do for us (ramp steps, double layers); counted in :attr:`waited_s`."""
        self._pause(seconds)
        self.waited_s += seconds

    # -- 6.3 steps 1 to 4 -----------------------------------------------------------------------

    def start(self) -> StartReport:
        """Reset and configure (6.3 steps 1 to 3), identify (6.1) and prove the D pads (6.2), all before any rail.

        A wrong or missing sample is refused here in one line; the D pads that
        did not answer are in the report (a network refuses them, see :meth:`require_drive_pads`).
        """
        self.prepare()
        self.check_modules()
        offsets = self.null_offsets()
        reading = self.read_id()
        if reading.code != self.plan.id_code:
            what = "layout" if self.plan.kind == "test-structures" else "print job"
            raise SafetyError(f"ID code read {reading.code} (digits {reading.digits}), expected {self.plan.id_code} "
                              f"from the {what} {self.config.sample_file.name}: wrong sample on the card")
        proof = self.prove_drive_pads()
        idns = {"mainframe": self._mf().idn, "smu": self.smu.idn if self.smu else ""}
        return StartReport(reading, proof, offsets, idns)

    def prepare(self) -> None:
        """6.3 steps 1 to 3: mainframe reset and slot-7 configuration, SMU rails on at 0 V, every DAC on at 0 V."""
        self._require_rails_at_zero("reset the mainframe")
        mf = self._mf()
        mf.reset()
        channels = [shunt_channel(k) for k in range(1, 25)] + [sense_channel(n) for n in range(1, 47)]
        mf.configure_voltage(channels)
        mf.set_nplc(FAST_NPLC, channels)
        mf.set_high_impedance(True, channels)
        self._dmm = dict.fromkeys(channels, (FAST_NPLC, True, 0.0))
        self._scan = tuple(channels)
        assert self.smu is not None
        self.smu.configure("*RST")
        compliance = rail_compliance_a(self.plan)
        for index in range(2):
            rail = self._rail(index)
            rail.source_function = "V"
            rail.voltage_range_v = 2.0
            rail.voltage_level_v = 0.0
            rail.current_limit_a = compliance
            rail.current_nplc = FAST_NPLC
            rail.remote_sense = True
            rail.output = True
        self._rails = [0.0, 0.0]
        mf.set_dac_voltage(list(ALL_DACS), 0.0)
        mf.set_dac_output(list(ALL_DACS), True)
        self._dac = {}

    def check_modules(self) -> None:
        """6.1 step 1: 34951A DACs in slots 1 to 6, 34922A multiplexers in 7 and 8."""
        mf = self._mf()
        for slot, model in EXPECTED_MODULES.items():
            found = mf.module_type(slot)
            if found != model:
                raise InstrumentError(f"instruments.mainframe: slot {slot} holds {found or 'nothing'}, "
                                      f"the printed bench needs a {model} there (4.1)")

    def null_offsets(self) -> dict[int, float]:
        """6.1 step 2: every shunt read at NPLC 10 with every DAC at 0 V; those readings are the offsets."""
        pads = list(range(1, 25))
        volts = self.read_volts([shunt_channel(k) for k in pads], SLOW_NPLC, settle=True)
        self.offsets_v = dict(zip(pads, volts))
        return dict(self.offsets_v)

    def read_id(self) -> IdReading:
        """6.1 step 3: D24 at 0.200 V, its shunt and the taps S45, S46 at NPLC 10, D24 back to 0 V; decoded."""
        self.set_pad(ID_PAD, ID_DRIVE_V)
        try:
            channels = [shunt_channel(24)] + [sense_channel(pad_number(tap, "S")) for tap in ID_TAPS]
            v_shunt, v45, v46 = self.read_volts(channels, SLOW_NPLC, settle=True)
        finally:
            self.set_pad(ID_PAD, 0.0)
        drop = v_shunt - self.offsets_v.get(24, 0.0)
        current = drop / self.config.shunt_ohm
        if current < NO_SAMPLE_A:
            raise SafetyError(f"ID ladder (D24) carries {current:.3g} A at {ID_DRIVE_V} V, under "
                              f"{NO_SAMPLE_A:g} A: no sample on the card, or the card is not down (6.1)")
        v_pad = dac_realised_v(ID_DRIVE_V) - drop
        resistances = ((v_pad - v45) / current, (v45 - v46) / current, v46 / current)
        digits, code = decode_id(resistances)
        return IdReading(current, v_pad, v45, v46, resistances, digits, code)  # type: ignore[arg-type]

    def prove_drive_pads(self) -> DriveProof:
        """6.2: every used circuit-input, bias and resistor pad at +0.100 V at once, shunts at NPLC 10, back to 0 V."""
        circuit = sorted(self.plan.circuit_inputs, key=lambda p: pad_number(p, "D"))
        resistor = list(self.plan.resistor_pads)
        pads = circuit + resistor
        if not pads:
            return DriveProof({}, ())
        self.set_pads(pads, PROOF_V)
        try:
            volts = self.read_volts([shunt_channel(pad_number(p, "D")) for p in pads], SLOW_NPLC, settle=True)
        finally:
            self.set_pads(pads, 0.0)
        currents = {pad: self.shunt_current(pad, v) for pad, v in zip(pads, volts)}
        failed = tuple(pad for pad in pads
                       if currents[pad] < PROOF_MIN_A["circuit" if pad in circuit else "resistor"])
        return DriveProof(currents, failed)

    def require_drive_pads(self, proof: DriveProof) -> None:
        """A network stops on the first D pad that did not answer (6.2), naming pad, net and reading."""
        if proof.failed:
            pad = proof.failed[0]
            raise SafetyError(f"pad {pad} ({self.plan.net_of(pad)}) does not answer: {proof.currents_a[pad]:.3g} A "
                              f"at {PROOF_V} V (at least {PROOF_MIN_A['circuit']:g} A expected; 6.2)")

    # -- guarded operations ---------------------------------------------------------------------

    def set_pad(self, pad: str, volts: float) -> None:
        """D pad ``pad`` to ``volts``, checked against 4.4 for the present state before anything is sent."""
        self.set_pads([pad], volts)

    def set_pads(self, pads: Sequence[str], volts: float) -> None:
        """Several D pads to one setpoint in one command (the contact proof), each checked first (4.4)."""
        value = 0.0
        for pad in pads:
            value = check_pad_setpoint(pad, volts, self.plan, self.group, self.rails_full)
        self._mf().set_dac_voltage([dac_channel(pad_number(pad, "D")) for pad in pads], value)
        for pad in pads:
            self._dac[pad] = value

    def dac_setpoint(self, pad: str) -> float:
        """What pad ``pad`` was last commanded to (0 V after the reset)."""
        return self._dac.get(pad, 0.0)

    def shunt_current(self, pad: str, reading_v: float) -> float:
        """``I = V_sh / R_shunt`` after the offset null (4.3); positive from the DAC into the pad."""
        k = pad_number(pad, "D")
        return (reading_v - self.offsets_v.get(k, 0.0)) / self.config.shunt_ohm

    def pad_voltage(self, pad: str, reading_v: float) -> float:
        """``V_pad = V_set - V_sh`` (4.3), with the setpoint as the DAC's 16-bit grid realises it."""
        k = pad_number(pad, "D")
        return dac_realised_v(self.dac_setpoint(pad)) - (reading_v - self.offsets_v.get(k, 0.0))

    def read_volts(self, channels: Sequence[int], nplc: float | Sequence[float], *, settle: bool = False,
                   high_impedance: bool = True) -> list[float]:
        """Slot-7 readings in list order (``ROUT:SCAN``, ``READ?``); ``settle``: the first waits 10 ms (4.5).

        ``nplc`` is one value or one per channel (a shunt at NPLC 10 and its
        taps at NPLC 1 in one scan, section 7). Channel settings are sent only
        when they change, so a sweep point costs its DAC command and one ``READ?``.
        """
        nplcs = [float(nplc)] * len(channels) if isinstance(nplc, (int, float)) else [float(n) for n in nplc]
        wanted = {c: (nplcs[i], high_impedance, INPUT_SETTLE_S if settle and i == 0 else 0.0)
                  for i, c in enumerate(channels)}
        self._configure_dmm(wanted)
        mf = self._mf()
        if tuple(channels) != self._scan:
            mf.set_scan(list(channels))
            self._scan = tuple(channels)
        values = mf.read()
        if len(values) != len(channels):
            raise InstrumentError(f"{mf.label}: READ? gave {len(values)} readings for {len(channels)} channels")
        return values

    def _configure_dmm(self, wanted: dict[int, tuple[float, bool, float]]) -> None:
        mf = self._mf()
        for field, send in ((0, mf.set_nplc), (1, mf.set_high_impedance), (2, mf.set_channel_delay)):
            changes: dict[object, list[int]] = {}
            for channel, setting in wanted.items():
                known = self._dmm.get(channel)
                if known is None or known[field] != setting[field]:
                    changes.setdefault(setting[field], []).append(channel)
            for value, channels in changes.items():
                send(value, channels)  # type: ignore[operator]
                for channel in channels:
                    old = list(self._dmm.get(channel, (FAST_NPLC, False, 0.0)))
                    old[field] = value
                    self._dmm[channel] = tuple(old)  # type: ignore[assignment]

    def rails(self, *, trips: bool = False) -> RailReading:
        """Both rail currents in one ``:MEAS:CURR? (@1,2)`` (22 ms); ``trips`` also asks each compliance state."""
        assert self.smu is not None
        i_dd, i_ss = self.smu.measure_currents(SMU_CHANNELS)
        tripped = (self._rail(0).in_compliance(), self._rail(1).in_compliance()) if trips else (False, False)
        return RailReading(self._rails[0], self._rails[1], i_dd, i_ss, tripped)

    # -- rail groups (6.3 steps 5 and 6, and their reverse) --------------------------------------

    @contextlib.contextmanager
    def powered(self, group: int) -> Iterator[RailReading]:
        """Rail group ``group`` at +-2.00 V for the block (checked per 6.2), ramped down and opened after it."""
        reading = self.power_up_group(group)
        try:
            yield reading
        except BaseException as exc:
            try:
                self.power_down_group()
            except LabctlError as problem:  # the error that ended the block stays the one reported;
                exc.add_note(f"at rail group {group} power-down: {problem}")  # __exit__ ramps down anyway
            raise
        self.power_down_group()

    def power_up_group(self, group: int) -> RailReading:
        """Close VSS then VDD of ``group`` at 0 V, ramp, wait 50 ms, check the rails; RailFault (ramped down) if not."""
        if self.group is not None:
            raise SafetyError(f"rail group {self.group} is closed: two rail groups are never closed at once (6.4)")
        if group not in self.plan.cells_per_group:
            raise SafetyError(f"rail group {group} carries no circuit of this sample: not powered")
        self._require_rails_at_zero("close a rail relay")
        vdd_channel, vss_channel = rail_channels(group)
        mf = self._mf()
        mf.close_routes(vss_channel)
        self.group = group
        mf.close_routes(vdd_channel)
        mf.wait_complete()
        self._ramp(VDD_V)
        self.wait(RAIL_SETTLE_S)
        self.rails_full = True
        reading = self.rails(trips=True)
        problem = self._rail_problem(reading, self.plan.cells_per_group[group])
        if problem:
            self.power_down_group()
            raise RailFault(f"rail group {group}: {problem}; ramped down (6.2)", group)
        return reading

    @staticmethod
    def _rail_problem(reading: RailReading, cells: int) -> str | None:
        low, high = (cells * limit for limit in CELL_CURRENT_A)
        for name, current, tripped in (("VDD", reading.i_dd_a, reading.tripped[0]),
                                       ("VSS", reading.i_ss_a, reading.tripped[1])):
            if tripped:
                return f"{name} in compliance ({current:.4g} A)"
            if not low <= abs(current) <= high:
                return f"{name} draws {current:.4g} A, outside {low:g} to {high:g} A for {cells} cell(s)"
        return None

    def power_down_group(self) -> None:
        """Inputs to 0 V (bias last), rails ramped to 0 V (VDD then VSS each step), VDD then VSS relay opened."""
        self._inputs_to_zero()
        self.rails_full = False
        self._ramp(0.0)
        if self.group is not None:
            vdd_channel, vss_channel = rail_channels(self.group)
            mf = self._mf()
            mf.open_routes(vdd_channel)
            mf.open_routes(vss_channel)
            self.group = None

    def _inputs_to_zero(self) -> None:
        live = [pad for pad, v in self._dac.items() if v != 0.0]
        live.sort(key=lambda pad: pad == self.plan.bias_pad)  # inputs first, the bias last (6.3)
        for pad in live:
            self.set_pad(pad, 0.0)

    def _ramp(self, target_v: float) -> None:
        """Rails together to +-``target_v`` in 0.5 V steps, 5 ms apart: VSS first going up, VDD first going down."""
        if self._rails == [target_v, 0.0 - target_v]:
            return
        levels = ramp_levels(self._rails[0], target_v)
        going_up = target_v > self._rails[0]
        for i, level in enumerate(levels):
            order = (1, 0) if going_up else (0, 1)
            for index in order:
                self._set_rail(index, level if index == 0 else 0.0 - level)
            if i < len(levels) - 1:
                self.wait(RAMP_PAUSE_S)

    def _set_rail(self, index: int, volts: float) -> None:
        rails = list(self._rails)
        rails[index] = volts
        check_rails(*rails)
        self._rail(index).voltage_level_v = volts
        self._rails[index] = volts

    def _require_rails_at_zero(self, action: str) -> None:
        if any(abs(v) > HOT_SWITCH_V for v in self._rails):
            raise SafetyError(f"cannot {action} with the rails at {self._rails[0]:g}/{self._rails[1]:g} V "
                              "(no hot switching, 6.4)")

    # -- power-down (6.3, on exit, exception or signal) -------------------------------------------

    def power_down(self) -> shutdown.ShutdownReport | None:
        """Everything off in the order of 6.3; each step tried even if an earlier one failed.

        Rails are ramped down even when the mainframe does not answer (inputs of
        at most 1.5 V against 0 V rails stay inside the electrolyte window;
        rails left on do not). Signals during it are deferred. InstrumentError
        at the end names what failed.
        """
        if self.mainframe is None and self.smu is None:
            return None
        return shutdown.power_down(self._power_down_steps)

    def _power_down_steps(self) -> shutdown.ShutdownReport:
        steps = shutdown.PowerDownSteps()
        step, problems = steps.step, steps.problems
        left: list[str] = []

        step("inputs to 0 V", self._inputs_to_zero)
        self.rails_full = False
        if self.smu is not None and not step("rail ramp-down", lambda: self._ramp(0.0)):
            left.append(f"rails (last set {self._rails[0]:g}/{self._rails[1]:g} V)")
        if self.group is not None and not any(abs(v) > HOT_SWITCH_V for v in self._rails):
            group = self.group
            if step("rail relays", lambda: self._mf().open_routes(list(rail_channels(group)))):
                self.group = None
        if self.smu is not None and not step("SMU outputs off", self.smu.all_outputs_off):
            left.append("SMU outputs")
        if self.mainframe is not None and not step("DAC outputs off",
                                                   lambda: self._mf().set_dac_output(list(ALL_DACS), False)):
            left.append("DAC outputs")
        report = shutdown.ShutdownReport(bench=f"{self.config.name} ({self.config.mainframe.resource})",
                                         left_on=tuple(left), problems=tuple(problems))
        self.shutdown_report = report
        shutdown.record(report)
        return report


def identify_sample(bench_file: str | Path) -> tuple[PrintedBenchConfig, IdReading, dict[str, str]]:
    """Open the bench and read the sample's ID ladder, powering nothing beyond D24's 0.2 V (6.1, ``labctl identify``).

    Returns the bench file, the ID reading and each instrument's ``*IDN?``;
    no rail relay is closed, every output is off again on return.
    """
    bench = PrintedBench.from_file(bench_file)
    with bench:
        bench.prepare()
        bench.check_modules()
        bench.null_offsets()
        reading = bench.read_id()
        idns = {"mainframe": bench._mf().idn, "smu": bench.smu.idn if bench.smu else ""}
    return bench.config, reading, idns
