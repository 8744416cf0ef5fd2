"""The simulated FPGA bridge of an RC-Spike die: TTFS protocol v1 operations on loopback (contract 1.9, 2).

:class:`SimulatedTtfsDie` is the die behind the bridge board: the die's physics
(:mod:`.mismatch`, :mod:`.synapses`, :mod:`.die`), its non-volatile synapse
memory, the bridge's registers (window, gap, bias times, probe selection, held
row), the status flags of 2.6 and the pads' voltages (:meth:`SimulatedTtfsDie.set_pads`;
no bench drives them yet, so a new board starts powered at the ROP).
Every public ``op_*`` method is one bridge operation that has passed its
length and argument checks; :class:`TtfsDieFault` is a HW_FAULT.

:class:`TtfsBridgeServer` is the family-blind
:class:`~labctl.sim.bridge_server.LoopbackBridgeServer` (loopback socket, replay
of a repeated (seq, op), fault injection, reconnects, the order of the checks:
version, header length, opcode, the op's length rule, arguments, hardware)
with TTFS's opcodes, each op parsed and run with the codecs of
:mod:`labctl.families.ttfs.protocol` and its sibling modules (:mod:`~labctl.families.ttfs.identify`,
:mod:`~labctl.families.ttfs.synapse_codes`, :mod:`~labctl.families.ttfs.patterns`,
:mod:`~labctl.families.ttfs.probe_ops`), the same ones the host uses.

Modelling choices (beyond the contract): APPLY_PATTERNS with R > 1 computes
the last repetition only (the die keeps nothing from one pattern to the next);
READ_MONITORS reads the pads exactly (well inside the ADC's +-(0.5 % + 5 mV));
a write is never interrupted (no bench drives the supply during it), so
SYNAPSES_INVALID is only set through :meth:`SimulatedTtfsDie.mark_rows_invalid`.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from functools import partial
from typing import Callable

import numpy as np

from labctl.drivers.bridge_protocol import status_answer
from labctl.families.ttfs.identify import DieDescription, identify_answer
from labctl.families.ttfs.patterns import (
    NO_SPIKE,
    PatternBatch,
    Timing,
    apply_patterns_answer,
    parse_apply_patterns_request,
    parse_bias_times_request,
    parse_set_timing_request,
)
from labctl.families.ttfs.probe_ops import Monitors, monitors_answer, parse_hold_row_request, parse_select_probe_request
from labctl.families.ttfs.protocol import MalformedRequestError, Opcode, RequestArgumentError, StatusFlag, check_empty
from labctl.families.ttfs.synapse_codes import (
    SynapseWrite,
    WriteOutcome,
    pack_codes,
    parse_read_synapses_request,
    parse_write_synapses_request,
    write_synapses_answer,
)
from labctl.families.ttfs.sim.die import run_patterns
from labctl.families.ttfs.sim.mismatch import Die, draw_die
from labctl.families.ttfs.sim.parts import PARTS, ROP, OperatingPoint
from labctl.families.ttfs.sim.synapses import blank_state, read_codes, write_rows
from labctl.sim.bridge_server import LoopbackBridgeServer, Rejected

VDD_RANGE_V = (1.71, 1.89)  # 2.6 bit 0
BIAS_RANGES_V = {"vth": (0.40, 1.20), "e_exc": (0.00, 0.70), "e_inh": (1.40, 1.80)}  # section 4
BIAS_TOLERANCE_V = 0.020  # 2.6 bit 3: the window comparators
POWER_ON_V = 1.6  # 1.9: the die leaves reset as VDD rises through about 1.6 V
ADC_MIN_VDD_V = 1.60  # 2.7: READ_MONITORS
ABSOLUTE_MAX_VDD_V = (-0.3, 2.00)  # section 4
PAD_MARGIN_V = 0.3  # section 4: a bias pad within -0.3 V .. VDD + 0.3 V
PLL_LOCK_S = 1e-3  # 1.8, 1.9
ENDURANCE_CYCLES = 10_000  # 1.4
OVERTEMP_C = 85.0


class TtfsDieFault(Exception):
    """The die cannot execute the request (HW_FAULT, contract 2.7)."""


class SimulatedTtfsDie:
    """One simulated RC-Spike die on its bridge board."""

    def __init__(self, part: str = "RCS-S", seed: int = 0, *, noise: bool = True, powered: bool = True,
                 clock: Callable[[], float] = time.monotonic, max_payload: int = 8192, truth: Die | None = None,
                 serial: str | None = None) -> None:
        """``truth``: the die's physics (default: drawn from ``seed``; the twin gives a measured die's), ``serial``
        what IDENTIFY answers (default PART-SEED); ``seed`` also seeds the noise streams."""
        if part not in PARTS:
            raise ValueError(f"unknown part {part!r}; known parts: {', '.join(PARTS)}")
        if not 0 <= seed <= 999_999:
            raise ValueError(f"die seed {seed} outside 0..999999 (it is the serial number)")
        self.truth = truth if truth is not None else draw_die(PARTS[part], seed)
        self.chip = DieDescription(serial=serial or f"{part}-{seed:06d}", part=part, layer_sizes=PARTS[part].layers,
                                   max_payload=max_payload)
        self.noise = noise
        self.clock = clock
        self.lock = threading.RLock()
        self._t0_s = clock()
        self._write_rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
        self.pattern_rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
        """Per-pattern noise (reset, comparator, edge jitter) of APPLY_PATTERNS."""
        # non-volatile: the SONOS cells, per-row erase/program cycles, rows left invalid by a fault
        self.synapses = blank_state(self.truth)
        self.cycles = [np.zeros(self.chip.matrix_shape(m)[0], np.int64) for m in range(self.chip.n_matrices)]
        self.invalid_rows: set[tuple[int, int]] = set()
        # the bridge's registers (they live on the FPGA and survive a die power cycle)
        self._reset_registers()
        # pads and health
        self.pads = dataclasses.replace(ROP) if powered else OperatingPoint(vdd=0.0, vth=0.0, e_exc=0.0, e_inh=0.0)
        self._powered_at_s: float | None = self._t0_s - 1.0 if powered else None
        self.damaged = False
        self._overstress = self._verify_failed = self._tdc_overflow = False

    def _reset_registers(self) -> None:
        self.timing = Timing()
        self.bias_codes: tuple[int, ...] = (0,) * self.chip.n_matrices
        self.probe: tuple[int, int] | None = None
        self.held_row: tuple[int, int] | None = None

    # -- pads -----------------------------------------------------------------------

    def set_pads(self, **volts: float) -> None:
        """Set pad voltages (``vdd``, ``vth``, ``e_exc``, ``e_inh``, ``temperature_c``) as the bench's SMUs would."""
        with self.lock:
            was_powered = self.powered
            self.pads = dataclasses.replace(self.pads, **volts)
            p = self.pads
            top = max(p.vdd, 0.0) + PAD_MARGIN_V
            if not ABSOLUTE_MAX_VDD_V[0] <= p.vdd <= ABSOLUTE_MAX_VDD_V[1] or \
                    any(not -PAD_MARGIN_V <= v <= top for v in (p.vth, p.e_exc, p.e_inh)):
                self.damaged = self._overstress = True
            if self.powered and not was_powered:
                self._powered_at_s = self.clock()
            elif not self.powered:
                self._powered_at_s = None  # membranes, latches, TDC registers and the PLL's lock are lost

    def power_cycle(self) -> None:
        """Biases down, VDD down, then back up at the levels they had (contract 5.2's order)."""
        with self.lock:
            levels = dataclasses.asdict(self.pads)
            self.set_pads(vth=0.0, e_exc=0.0, e_inh=0.0)
            self.set_pads(vdd=0.0)
            self.set_pads(vdd=levels["vdd"])
            self.set_pads(e_inh=levels["e_inh"], e_exc=levels["e_exc"], vth=levels["vth"])

    @property
    def powered(self) -> bool:
        return self.pads.vdd >= POWER_ON_V

    def _supply_ok(self) -> bool:
        return VDD_RANGE_V[0] <= self.pads.vdd <= VDD_RANGE_V[1]

    def _bias_ok(self, *names: str) -> bool:
        names = names or tuple(BIAS_RANGES_V)
        p = self.pads
        ok = all(lo - BIAS_TOLERANCE_V <= getattr(p, n) <= hi + BIAS_TOLERANCE_V
                 for n, (lo, hi) in BIAS_RANGES_V.items() if n in names)
        return ok and self.powered and (p.e_inh <= p.vdd or "e_inh" not in names)

    def _locked(self) -> bool:
        return self._powered_at_s is not None and self.clock() - self._powered_at_s >= PLL_LOCK_S

    def mark_rows_invalid(self, matrix: int, rows) -> None:
        """Test hook: rows left undefined by a write a supply fault interrupted (1.9)."""
        with self.lock:
            self.invalid_rows.update((matrix, int(r)) for r in rows)

    # -- bridge operations (checked requests) --------------------------------------------

    def status(self) -> tuple[int, int, float]:
        with self.lock:
            flags = StatusFlag(0)
            checks = ((not self._supply_ok(), StatusFlag.SUPPLY_OUT_OF_RANGE),
                      (self._overstress, StatusFlag.OVERSTRESS),
                      (bool(self.invalid_rows), StatusFlag.SYNAPSES_INVALID),
                      (not self._bias_ok(), StatusFlag.BIAS_OUT_OF_RANGE),
                      (self.pads.temperature_c > OVERTEMP_C, StatusFlag.OVERTEMP),
                      (self._tdc_overflow, StatusFlag.TDC_OVERFLOW),
                      (self._verify_failed, StatusFlag.VERIFY_FAILED),
                      (not self._locked(), StatusFlag.TIMEBASE_UNLOCKED),
                      (any(int(c.max()) > ENDURANCE_CYCLES for c in self.cycles), StatusFlag.ENDURANCE))
            for condition, flag in checks:
                if condition:
                    flags |= flag
            uptime_ms = int(round((self.clock() - self._t0_s) * 1e3)) & 0xFFFFFFFF
            return int(flags), uptime_ms, float(self.pads.temperature_c)

    def op_reset(self) -> None:
        """RESET: registers to defaults, sticky flags cleared (OVERSTRESS stays on a damaged die); codes kept."""
        with self.lock:
            self._reset_registers()
            self._overstress = self.damaged
            self._verify_failed = self._tdc_overflow = False

    def op_read_monitors(self) -> Monitors:
        with self.lock:
            if self.pads.vdd < ADC_MIN_VDD_V:
                raise TtfsDieFault("the housekeeping ADC is unpowered")
            p = self.pads
            return Monitors(p.vdd, p.vth, p.e_exc, p.e_inh, self.truth.v_rest)

    def _check_not_held(self, op: Opcode) -> None:
        if self.held_row is not None:
            raise RequestArgumentError(f"{op.name} while row {self.held_row[1]} of matrix "
                                       f"{self.held_row[0]} is held")

    def _check_rails(self) -> None:
        if self.damaged or not self._supply_ok() or not self._bias_ok("e_exc", "e_inh"):
            raise TtfsDieFault("VDD, EREV_EXC or EREV_INH out of range")

    def op_write_synapses(self, request: SynapseWrite) -> WriteOutcome:
        """Rows in order; mode 0 leaves rows that read back as requested alone (no wear, not counted)."""
        with self.lock:
            self._check_not_held(Opcode.WRITE_SYNAPSES)
            if request.codes.shape[0] == 0:
                return WriteOutcome(0, 0)
            self._check_rails()
            m = request.matrix
            held = read_codes(self.truth, self.synapses, m)
            programmed = failed = 0
            for k, codes in enumerate(request.codes):
                row = request.first_row + k
                if request.mode == 0 and np.array_equal(held[row], codes) and (m, row) not in self.invalid_rows:
                    continue
                result = write_rows(self.truth, self.synapses, self.pads, m, row, codes[None, :], self._write_rng)
                self.synapses = result.state
                self.cycles[m][row] += 1
                self.invalid_rows.discard((m, row))
                programmed += 1
                failed += result.failed_cells
            self._verify_failed |= failed > 0
            return WriteOutcome(programmed, failed)

    def op_read_synapses(self, matrix: int, first_row: int, count: int) -> np.ndarray:
        with self.lock:
            self._check_not_held(Opcode.READ_SYNAPSES)
            self._check_rails()
            return read_codes(self.truth, self.synapses, matrix)[first_row:first_row + count]

    def op_set_timing(self, timing: Timing) -> None:
        with self.lock:
            self.timing = timing

    def op_set_bias_times(self, codes: tuple[int, ...]) -> None:
        with self.lock:
            self.bias_codes = tuple(codes)

    def op_select_probe(self, layer: int, neuron: int | None) -> None:
        with self.lock:
            self.probe = None if neuron is None else (layer, neuron)

    def op_hold_row(self, matrix: int, row: int | None) -> None:
        with self.lock:
            self.held_row = None if row is None else (matrix, row)

    def op_apply_patterns(self, batch: PatternBatch) -> np.ndarray:
        """TDC codes (P, n_r) of the readout layer; results are discarded on any fault (HW_FAULT)."""
        with self.lock:
            self._check_not_held(Opcode.APPLY_PATTERNS)
            self._tdc_overflow = False
            if self.damaged or not self._supply_ok() or not self._bias_ok() or not self._locked():
                raise TtfsDieFault("die damaged, VDD or a bias out of range, or the time base unlocked")
            op = dataclasses.replace(self.pads, window_ns=float(self.timing.window_ns))
            probe = self.probe if self.probe is not None and self.probe[0] >= 1 else None
            result = run_patterns(self.truth, self.synapses, op, batch.codes, entry=batch.entry,
                                  bias_codes=np.array(self.bias_codes), idle=batch.idle, probe=probe,
                                  rng=self.pattern_rng if self.noise else None)
            tdc = result.tdc[batch.readout]
            self._tdc_overflow = bool((tdc == NO_SPIKE).any())
            return tdc


class TtfsBridgeServer(LoopbackBridgeServer):
    """The loopback bridge server in front of a :class:`SimulatedTtfsDie`, answering TTFS's operations."""

    opcodes = Opcode
    hardware_faults = (TtfsDieFault,)

    def prepare(self, op: Opcode, payload: bytes) -> Callable[[], bytes | None]:
        """Parsing reads the die's registers (the window), so it runs with the op, under the die's lock."""
        return partial(self._execute, op, payload)

    def execute(self, run: Callable[[], bytes | None], overrun: bool) -> bytes | None:
        """``overrun`` has no TTFS meaning; a malformed request answers its status."""
        try:
            return run()
        except MalformedRequestError as refused:
            raise Rejected(refused.status) from None

    def _execute(self, op: Opcode, payload: bytes) -> bytes | None:
        """Parse (length, then arguments), then run on the die."""
        die, chip = self.die, self.chip
        if op in (Opcode.IDENTIFY, Opcode.RESET, Opcode.STATUS, Opcode.READ_MONITORS):
            check_empty(op, payload)
            if op == Opcode.IDENTIFY:
                return identify_answer(chip)
            if op == Opcode.RESET:
                return die.op_reset()
            if op == Opcode.STATUS:
                return status_answer(*die.status())
            return monitors_answer(die.op_read_monitors())
        if op == Opcode.WRITE_SYNAPSES:
            request = parse_write_synapses_request(payload, chip)
            return write_synapses_answer(die.op_write_synapses(request))
        if op == Opcode.READ_SYNAPSES:
            codes = die.op_read_synapses(*parse_read_synapses_request(payload, chip))
            return pack_codes(codes)
        if op == Opcode.SET_TIMING:
            return die.op_set_timing(parse_set_timing_request(payload))
        if op == Opcode.SET_BIAS_TIMES:
            return die.op_set_bias_times(parse_bias_times_request(payload, chip))
        if op == Opcode.SELECT_PROBE:
            return die.op_select_probe(*parse_select_probe_request(payload, chip))
        if op == Opcode.HOLD_ROW:
            return die.op_hold_row(*parse_hold_row_request(payload, chip))
        batch = parse_apply_patterns_request(payload, chip, die.timing)
        return apply_patterns_answer(die.op_apply_patterns(batch))


def serve(part: str = "RCS-S", seed: int = 0, **die_options) -> TtfsBridgeServer:
    """A started loopback bridge in front of a fresh simulated die; ``server.url`` is its ``socket://`` port."""
    return TtfsBridgeServer(SimulatedTtfsDie(part, seed, **die_options)).start()
