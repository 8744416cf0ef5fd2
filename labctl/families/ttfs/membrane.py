"""Reading a membrane through the probe buffer and the scope (contract 1.10, 3.4).

The chain (probe buffer, cable, scope) maps the membrane to the scope's
reading as ``V_MON = a V + b``; two flat readings of the VTH reference at two
VTH levels, with the same scope settings, give ``a`` and ``b`` (3.4 step 5),
and a trace is then ``V = (V_MON - b) / a``. An acquisition is one
``:DIGitize`` armed before a batch of the same pattern repeated
``R = count + ceil(0.1 s / T_p)`` times with a gap of at least 200 us (the
scope's re-arm time); times and volts come from the preamble only. A
:DIGitize that sees no trigger is completed by a further IDLE batch and
discarded (3.4, last paragraph), then tried once more.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from labctl.drivers.infiniivision import InfiniiVision
from labctl.errors import InstrumentError
from labctl.families.ttfs.identify import DieDescription
from labctl.families.ttfs.link import TtfsBridge
from labctl.families.ttfs.patterns import NO_INPUT, Timing, pattern_period_ns

SETTLE_S = 10e-6  # 3.4 step 1: the buffer settles 10 us after SELECT_PROBE
REARM_GAP_US = 200  # 3.4 step 3
ARM_ALLOWANCE_S = 0.1  # 3.4 step 3: the scope may arm up to 100 ms after :DIGitize
OPC_MARGIN_S = 1.0  # 3.4: *OPC? waits the batch time plus 1 s
TRIGGER_LEVEL_V = 1.0  # 3.2
DIVISIONS = 8
"""The window spans 8 of the screen's 10 divisions: 2 us/div for W = 16 us (3.4 step 2)."""
CALIBRATION_VTH_V = (0.75, 1.15)
"""Two VTH levels inside both VTH's range (section 4) and the default screen (0.70 to 1.50 V)."""
VTH_REFERENCE = (0, 0)  # SELECT_PROBE layer 0, neuron 0: the VTH pad (1.10)


class ProbeBench(Protocol):
    """What a trace needs of the bench (:class:`labctl.families.ttfs.bench.TtfsBench`)."""

    link: TtfsBridge
    scope: InfiniiVision
    chain: "ChainCalibration | None"
    probe_input: str
    sync_input: str

    @property
    def chip(self) -> DieDescription: ...

    def bias_v(self, role: str) -> float: ...

    def set_bias(self, role: str, volts: float) -> None: ...

    def measure_voltage(self, role: str) -> float: ...


@dataclass(frozen=True)
class ChainCalibration:
    """``V_MON = gain x V + offset_v`` of buffer and scope together (3.4 step 5), with standard errors."""

    gain: float
    offset_v: float
    gain_se: float
    offset_se: float

    def membrane_v(self, v_mon: np.ndarray) -> np.ndarray:
        return (np.asarray(v_mon) - self.offset_v) / self.gain


@dataclass(frozen=True)
class MembraneTrace:
    """A membrane (or reference) against time from t = 0 (SYNC), averaged over ``averages`` patterns."""

    t_s: np.ndarray
    v: np.ndarray
    layer: int
    neuron: int
    averages: int


def fit_chain(levels_v: tuple[float, float], readings: tuple[np.ndarray, np.ndarray]) -> ChainCalibration:
    """Gain and offset through two flat traces at known input levels; errors from each trace's scatter."""
    (x0, x1), (r0, r1) = levels_v, readings
    m0, m1 = float(r0.mean()), float(r1.mean())
    s0, s1 = (float(r.std(ddof=1)) / math.sqrt(r.size) for r in (r0, r1))
    span = x1 - x0
    gain = (m1 - m0) / span
    return ChainCalibration(gain, m0 - gain * x0, math.hypot(s0, s1) / abs(span),
                            math.hypot(s0 * x1 / span, s1 * x0 / span))


def calibrate_chain(bench: ProbeBench, *, scale_v: float, offset_v: float, averages: int = 16) -> ChainCalibration:
    """3.4 step 5: VTH reference read flat under IDLE patterns at two VTH levels; VTH restored after."""
    vth = bench.bias_v("threshold")
    levels, readings = [], []
    try:
        for level in CALIBRATION_VTH_V:
            bench.set_bias("threshold", level)
            levels.append(bench.measure_voltage("threshold"))
            readings.append(acquire(bench, *VTH_REFERENCE, None, entry=0, averages=averages, window_ns=None,
                                    scale_v=scale_v, offset_v=offset_v, points=2000)[1])
    finally:
        bench.set_bias("threshold", vth)
    return fit_chain((levels[0], levels[1]), (readings[0], readings[1]))


def read_membrane(bench: ProbeBench, layer: int, neuron: int, codes, *, entry: int, averages: int,
                  window_ns: int | None, scale_v: float, offset_v: float, points: int) -> MembraneTrace:
    """3.4 steps 1-4 and the chain's correction (the bench has calibrated the chain with these settings)."""
    t_s, v_mon = acquire(bench, layer, neuron, codes, entry=entry, averages=averages, window_ns=window_ns,
                         scale_v=scale_v, offset_v=offset_v, points=points)
    return MembraneTrace(t_s, bench.chain.membrane_v(v_mon), layer, neuron, averages)


def acquire(bench: ProbeBench, layer: int, neuron: int, codes, *, entry: int, averages: int,
            window_ns: int | None, scale_v: float, offset_v: float, points: int) -> tuple[np.ndarray, np.ndarray]:
    """One averaged MON record of probe (layer, neuron) under ``codes`` (None: IDLE patterns): times, V_MON."""
    link, scope, chip = bench.link, bench.scope, bench.chip
    before = link.timing
    window = int(window_ns if window_ns is not None else before.window_ns)
    idle = codes is None
    pattern = np.full((1, chip.layer_sizes[entry]), NO_INPUT) if idle else np.asarray(codes).reshape(1, -1)
    readout = max(layer, entry + 1)
    timing = Timing(window, max(before.gap_us, REARM_GAP_US))
    period_s = pattern_period_ns(timing, chip.layer_sizes[entry]) * 1e-9
    repeats = averages + math.ceil(ARM_ALLOWANCE_S / period_s)
    link.select_probe(layer, neuron)
    time.sleep(SETTLE_S)
    link.set_timing(timing.window_ns, timing.gap_us)
    channel = scope.channel(bench.probe_input)
    channel.set_input()
    channel.set_vertical(scale_v, offset_v)
    scope.set_timebase(window * 1e-9 / DIVISIONS, 0.0, "LEFT")
    scope.set_edge_trigger(bench.sync_input, TRIGGER_LEVEL_V)
    scope.set_averaging(averages)
    try:
        for _attempt in range(2):
            scope.digitize(bench.probe_input)
            link.apply_patterns(pattern, entry=entry, readout=readout, repeats=repeats, idle=idle)
            if scope.wait_complete(repeats * period_s + OPC_MARGIN_S):
                wave = scope.read_waveform(bench.probe_input, points)
                return wave.t_s, wave.v
            # 3.4: an IDLE batch's SYNC edges complete the held acquisition, which is discarded
            link.apply_patterns(np.full_like(pattern, NO_INPUT), entry=entry, readout=readout, repeats=repeats,
                                idle=True)
        raise InstrumentError(f"scope {scope.label} did not trigger on sync ({bench.sync_input}): "
                              "check the SYNC cable and the trigger input")
    finally:
        link.select_probe(layer, None)
        link.set_timing(before.window_ns, before.gap_us)
