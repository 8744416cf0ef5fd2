"""Energy per inference from the four SMUs' currents (contract 1.11, 3.5; names of CMNA's power issue).

``supply_power_w`` is ``sum_k V_k I_k`` over VDD, VTH, EREV_EXC and EREV_INH
while the patterns run back to back; ``idle_power_w`` the same with the IDLE
flag (same P, R, window and gap, so the same period T_p, no spike anywhere);
their difference times T_p is the energy of one inference, counted at the
rate the patterns really ran. The idle draw is four orders larger than the
dynamic one, so the method removes it carefully (3.5):

- gap 0, the probe disconnected (its buffer draws 250 uA), no row held;
- each batch repeated until it outlasts one NPLC 10 reading of every role,
  started at least 50 ms after the request (at least 0.5 s in all);
- the bridge answers only after a batch, so the readings are taken between
  sending the request and collecting the answer
  (:meth:`TtfsBridge.apply_patterns_while`);
- 4 idle batches before and 4 after the pattern batches, so a slow drift
  cancels; the standard error comes from the readings' scatter.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from labctl.errors import ConfigError
from labctl.families.ttfs.identify import DieDescription
from labctl.families.ttfs.link import TtfsBridge
from labctl.families.ttfs.patterns import Timing, pattern_period_ns

ENERGY_ROLES = ("supply", "threshold", "rev_exc", "rev_inh")
NPLC = 10.0
READING_S = 0.21  # 3.6: one SMU reading at NPLC 10 (50 Hz)
READ_START_S = 0.05  # 3.5: readings start at least 50 ms after the request's last byte
BATCH_MARGIN_S = 0.1
MIN_BATCH_S = 0.5  # 3.5
IDLE_BATCHES = 4  # 3.5: before and after
RUN_BATCHES = 4


class PoweredBench(Protocol):
    """What the method needs of the bench (:class:`labctl.families.ttfs.bench.TtfsBench`)."""

    link: TtfsBridge

    @property
    def chip(self) -> DieDescription: ...

    def measure_current(self, role: str, *, nplc: float = 1.0) -> float: ...

    def measure_voltage(self, role: str) -> float: ...


@dataclass(frozen=True)
class EnergyReading:
    """Contract 3.5's figures; ``per_role`` is each role's ``V_k dI_k`` (W)."""

    supply_power_w: float
    idle_power_w: float
    dynamic_power_w: float
    energy_per_inference_j: float
    energy_se_j: float
    period_s: float
    per_role: dict[str, float]


def batch_repeats(patterns: int, period_s: float) -> int:
    """R such that a batch outlasts the start delay and one NPLC 10 reading of every role, and 0.5 s."""
    needed_s = max(MIN_BATCH_S, READ_START_S + len(ENERGY_ROLES) * READING_S + BATCH_MARGIN_S)
    return math.ceil(needed_s / (patterns * period_s))


def energy_from_readings(volts: dict[str, float], run: dict[str, np.ndarray], idle: dict[str, np.ndarray],
                         period_s: float) -> EnergyReading:
    """The figures of 3.5 from each role's voltage and its current readings running and idle."""
    per_role = {r: volts[r] * float(run[r].mean() - idle[r].mean()) for r in ENERGY_ROLES}
    supply = sum(volts[r] * float(run[r].mean()) for r in ENERGY_ROLES)
    idle_w = sum(volts[r] * float(idle[r].mean()) for r in ENERGY_ROLES)
    variance = sum(volts[r] ** 2 * (run[r].var(ddof=1) / run[r].size + idle[r].var(ddof=1) / idle[r].size)
                   for r in ENERGY_ROLES)
    dynamic = sum(per_role.values())
    return EnergyReading(supply, idle_w, dynamic, dynamic * period_s, math.sqrt(variance) * period_s, period_s,
                         per_role)


def measure_energy(bench: PoweredBench, codes, *, entry: int = 0, window_ns: int | None = None,
                   frames: int = 1) -> EnergyReading:
    """3.5 on ``codes`` (P, n_entry), one frame of patterns measured ``frames`` times; the mean is the figure."""
    link, chip = bench.link, bench.chip
    values = np.asarray(codes)
    if values.ndim != 2 or values.shape[1] != chip.layer_sizes[entry]:
        raise ConfigError(f"patterns must be (P, {chip.layer_sizes[entry]}) time codes, got shape {values.shape}")
    before = link.timing
    timing = Timing(int(window_ns if window_ns is not None else before.window_ns), 0)
    period_s = pattern_period_ns(timing, chip.layer_sizes[entry]) * 1e-9
    repeats = batch_repeats(values.shape[0], period_s)
    link.set_timing(timing.window_ns, 0)
    link.select_probe(0, None)  # 5.3: no probe (its buffer draws 250 uA) ...
    link.hold_row(0, None)  # ... and no held row during an energy measurement
    try:
        volts = {r: bench.measure_voltage(r) for r in ENERGY_ROLES}
        run: dict[str, list[float]] = {r: [] for r in ENERGY_ROLES}
        idle: dict[str, list[float]] = {r: [] for r in ENERGY_ROLES}

        def batch(is_idle: bool) -> None:
            _, currents = link.apply_patterns_while(values, lambda: _read_currents(bench), entry=entry,
                                                    repeats=repeats, idle=is_idle)
            for role, value in currents.items():
                (idle if is_idle else run)[role].append(value)

        for _ in range(frames):
            for kind in [True] * IDLE_BATCHES + [False] * RUN_BATCHES + [True] * IDLE_BATCHES:
                batch(kind)
    finally:
        link.set_timing(before.window_ns, before.gap_us)
    return energy_from_readings(volts, {r: np.array(v) for r, v in run.items()},
                                {r: np.array(v) for r, v in idle.items()}, period_s)


def _read_currents(bench: PoweredBench) -> dict[str, float]:
    """One NPLC 10 current reading of every role, starting at least 50 ms after the request was sent."""
    time.sleep(READ_START_S)
    return {role: bench.measure_current(role, nplc=NPLC) for role in ENERGY_ROLES}
