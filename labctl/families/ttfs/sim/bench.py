"""A whole simulated TTFS bench: one RC-Spike die, its bridge, four SMU channels and a scope, on loopback.

Everything labctl does to a real bench it does to this one, through the same
drivers and sockets (pyserial ``socket://`` for the bridge, pyvisa-py
``TCPIP0::...::SOCKET`` for the instruments). The die's four supply and bias
pads (:mod:`.pads`) are wired to emulated SMU channels as the bench file says,
so power sequencing, the wiring proof and damage behave physically; MON and
SYNC go to the scope emulator (:mod:`.scope_link`).

Bench time is accounted on the virtual clock: a batch of patterns lasts
``R x P x T_p`` from the moment the bridge starts it (the next bridge request
waits for its end, and SMU readings taken meanwhile see it running), a
written row 5 ms and a read row 0.2 ms likewise, a request its turnaround and
bytes (3.6), SMU readings their NPLC, scope acquisitions their triggers and
re-arm times.
Only tests, benchmarks and the family's simulator entry import this module.
"""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from labctl.families.ttfs.patterns import PatternBatch, pattern_period_ns
from labctl.families.ttfs.synapse_codes import SynapseWrite, WriteOutcome
from labctl.families.ttfs.sim.bridge import SimulatedTtfsDie, TtfsBridgeServer
from labctl.families.ttfs.sim.charge import PatternCharges, held_row_currents, pattern_charges
from labctl.families.ttfs.sim.mismatch import Die
from labctl.families.ttfs.sim.pads import NO_HELD_ROW, Activity, DiePads, DieSide
from labctl.families.ttfs.sim.parts import OperatingPoint
from labctl.families.ttfs.sim.scope_link import ScopeLink
from labctl.sim.clock import VirtualClock
from labctl.sim.instrument_server import InstrumentServer
from labctl.sim.loopback_bench import LoopbackBench
from labctl.sim.scope_emulator import InfiniiVisionEmulator, ScopeServer
from labctl.sim.smu_emulators import (
    Keithley2450Emulator,
    Keithley2636BEmulator,
    KeysightB2902AEmulator,
    SmuEmulator,
)

WRITE_ROW_S = 5e-3  # 1.4 (T)
READ_ROW_S = 0.2e-3  # 1.4 (T)
REQUEST_S = 1e-3  # 3.6: a small request, 1 to 3 ms
LINK_BYTES_PER_S = 1e6  # 3.6
ROLE_OF_PAD = {"VDD": "supply", "VTH": "threshold", "EREV_EXC": "rev_exc", "EREV_INH": "rev_inh"}


@dataclass(frozen=True)
class Wiring:
    """SMU models by name, which channel holds which pad, where MON and SYNC enter the scope.

    ``claimed`` overrides what the bench file says for some roles (a wiring
    fault: the file names a channel that is not the one on the pad).
    """

    instruments: dict[str, type[SmuEmulator]]
    pads: dict[str, tuple[str, str]]
    probe: str = "1"
    sync: str = "EXT"
    claimed: dict[str, tuple[str, str]] | None = None


_TWO_B2902A = {"smu_a": KeysightB2902AEmulator, "smu_b": KeysightB2902AEmulator}
_CONTRACT_PADS = {"VDD": ("smu_a", "1"), "VTH": ("smu_a", "2"), "EREV_EXC": ("smu_b", "1"), "EREV_INH": ("smu_b", "2")}

WIRINGS: dict[str, Wiring] = {
    # contract 3.3: supply and threshold on one B2902A, both rails on the other; MON on 1, SYNC on EXT
    "default": Wiring(_TWO_B2902A, _CONTRACT_PADS),
    # a 2636B holds VDD (smua) and VTH (smub), one 2450 per rail; SYNC into channel 2
    "2636b": Wiring({"smu_a": Keithley2636BEmulator, "smu_b": Keithley2450Emulator, "smu_c": Keithley2450Emulator},
                    {"VDD": ("smu_a", "a"), "VTH": ("smu_a", "b"), "EREV_EXC": ("smu_b", "1"),
                     "EREV_INH": ("smu_c", "1")}, probe="1", sync="2"),
    # the contract's bench file, but the rails' cables are swapped at smu_b (the proof after VDD must refuse)
    "swapped_rails": Wiring(_TWO_B2902A, _CONTRACT_PADS,
                            claimed={"rev_exc": ("smu_b", "2"), "rev_inh": ("smu_b", "1")}),
}


class BenchTtfsDie(SimulatedTtfsDie):
    """The die on a bench: SMUs set its pads, a batch runs for its duration on the bench clock and feeds the scope."""

    def __init__(self, part: str, seed: int, clock: VirtualClock, **die) -> None:
        super().__init__(part, seed, powered=False, clock=clock.now, **die)
        self.bench_clock = clock
        self.side = DieSide(clock.now, lambda: self.powered, lambda: self.powered and self.probe is not None,
                            self._held_a)
        self.pad_log: list[tuple[float, OperatingPoint]] = []
        """Every pad change on the bench clock: tests read the power sequence here."""
        self.die_pads = DiePads(self, self.side)
        self.scope_link: ScopeLink | None = None
        self.busy_until_s = 0.0
        self._last_charges: tuple[tuple, PatternCharges] | None = None

    def set_pads(self, **volts: float) -> None:
        super().set_pads(**volts)
        self.pad_log.append((self.clock(), self.pads))

    def _charges(self, key: tuple, compute: Callable[[], PatternCharges]) -> PatternCharges:
        """The batch's charges, kept for the next batch of the same patterns (energy runs repeat one frame)."""
        if self._last_charges is None or self._last_charges[0] != key:
            self._last_charges = (key, compute())
        return self._last_charges[1]

    def _held_a(self) -> tuple[float, float, float]:
        """A held row's DC currents, while the dischargers clamp (the die powered, its biases in range, 2.7)."""
        if self.held_row is None or not self._bias_ok():
            return NO_HELD_ROW
        return held_row_currents(self.truth, self.synapses, self.pads, *self.held_row)

    def settle(self) -> None:
        """The bridge is busy until its batch ends: the next request starts after it."""
        self.bench_clock.advance(self.busy_until_s - self.clock())

    def op_write_synapses(self, request: SynapseWrite) -> WriteOutcome:
        """A row takes 5 ms to erase, program and verify (1.4, T); the bridge is busy meanwhile."""
        with self.lock:
            outcome = super().op_write_synapses(request)
            self.busy_until_s = self.clock() + WRITE_ROW_S * outcome.rows_programmed
            return outcome

    def op_read_synapses(self, matrix: int, first_row: int, count: int) -> np.ndarray:
        with self.lock:
            codes = super().op_read_synapses(matrix, first_row, count)
            self.busy_until_s = self.clock() + READ_ROW_S * count
            return codes

    def op_apply_patterns(self, batch: PatternBatch):
        with self.lock:
            tdc = super().op_apply_patterns(batch)
            period_s = pattern_period_ns(self.timing, self.chip.layer_sizes[batch.entry]) * 1e-9
            start = self.clock()
            self.busy_until_s = start + batch.repeats * batch.codes.shape[0] * period_s
            op = dataclasses.replace(self.pads, window_ns=float(self.timing.window_ns))
            key = (batch.codes.tobytes(), batch.codes.shape, batch.entry, self.bias_codes, batch.idle, op,
                   id(self.synapses))
            compute = partial(pattern_charges, self.truth, self.synapses, op, batch.codes, entry=batch.entry,
                              bias_codes=list(self.bias_codes), idle=batch.idle)
            self.side.activity = Activity(start, self.busy_until_s, period_s, partial(self._charges, key, compute))
            if self.scope_link is not None:
                self.scope_link.batch(self, batch, start, period_s)
            return tdc


class BenchBridgeServer(TtfsBridgeServer):
    """The loopback bridge of a bench die: a request waits for the one before it (the FPGA runs one thing),
    and costs its turnaround and its bytes on the link (3.6: 1 ms, 1 MB/s each way)."""

    def prepare(self, op, payload: bytes):
        run = super().prepare(op, payload)
        return partial(self._timed, run, len(payload))

    def _timed(self, run, request_bytes: int):
        self.die.settle()
        body = run()
        self.die.bench_clock.advance(REQUEST_S + (request_bytes + len(body or b"")) / LINK_BYTES_PER_S)
        return body


class SimulatedTtfsBench(LoopbackBench):
    """``with SimulatedTtfsBench("RCS-S", seed=3) as sim:``; ``sim.bench_text`` is its bench file.

    ``served`` and ``realtime`` are the clock's modes (:mod:`labctl.sim.clock`):
    the default keeps time purely virtual, so a run repeats bit for bit.
    """

    family = "ttfs"

    def __init__(self, part: str = "RCS-S", seed: int = 0, *, served: bool = False, realtime: bool = False,
                 wiring: str = "default", bridge_timeout_s: float = 0.25, truth: Die | None = None,
                 serial: str | None = None) -> None:
        if wiring not in WIRINGS:
            raise ValueError(f"unknown wiring {wiring!r}; known: {', '.join(WIRINGS)}")
        self.clock = VirtualClock(realtime=realtime, served=served)
        self.die = BenchTtfsDie(part, seed, self.clock, truth=truth, serial=serial)
        self.wiring = WIRINGS[wiring]
        self.emulators = {name: cls(clock=self.clock, seed=seed * 31 + i)
                          for i, (name, cls) in enumerate(self.wiring.instruments.items())}
        for pad, (name, channel) in self.wiring.pads.items():
            self.emulators[name].channel(channel).attach(self.die.die_pads[pad])
        self.scope = InfiniiVisionEmulator(self.clock, seed=seed * 31 + 17)
        self.die.scope_link = ScopeLink(self.scope, self.wiring.probe, self.wiring.sync, seed)
        self.bridge_server = BenchBridgeServer(self.die)
        self.instrument_servers: dict[str, InstrumentServer] = {
            name: InstrumentServer(emu, lock=self.die.lock) for name, emu in self.emulators.items()}
        self.instrument_servers["scope"] = ScopeServer(self.scope)
        self.bridge_timeout_s = bridge_timeout_s

    def channel_of(self, pad: str):
        """The emulated SMU channel wired to ``pad`` (VDD, VTH, EREV_EXC, EREV_INH)."""
        name, channel = self.wiring.pads[pad]
        return self.emulators[name].channel(channel)

    @property
    def bench_seconds(self) -> float:
        """Bench time real hardware would have spent, the batch still running included."""
        return self.clock.accounted_s + max(self.die.busy_until_s - self.clock.now(), 0.0)

    @property
    def label(self) -> str:
        return f"simulated {self.die.chip.part} {self.die.chip.serial}"

    def role_lines(self) -> list[str]:
        claimed = self.wiring.claimed or {}
        lines = []
        for pad, (name, channel) in self.wiring.pads.items():
            role = ROLE_OF_PAD[pad]
            name, channel = claimed.get(role, (name, channel))
            lines.append(f'{role} = "{name}:{channel}"')
        return lines + [f'probe = "scope:{self.wiring.probe}"', f'sync = "scope:{self.wiring.sync}"']

    def save_truth(self, path: Path) -> None:
        """The die's hidden truth (a pickle: simulator-only data, for benchmarks that score a characterisation)."""
        Path(path).write_bytes(pickle.dumps(self.die.truth))
