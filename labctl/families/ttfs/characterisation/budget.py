"""A plan's bench time before it runs: each step as implemented, priced with contract 3.6's timings.

Contract 7 sets the goals (RCS-S under 5 minutes, RCS-L under 30) and a plan
is chosen per part (:meth:`.plan.CharacterisationPlan.for_part`); this prices
one against them from the die's geometry alone, so a test can hold a part's
plan to its goal without running it. Every row a step writes is counted as
programmed (5 ms), also where the die already holds the code (mode 0 skips
it): an upper bound there. A trace costs 3.6's 0.25 s at 16 averages over
16 us, adjusted for its own window and averages (3.4's arming allowance
included). Steps 0 and 9 take contract 7's figures.
"""

from __future__ import annotations

import math

from labctl.families.ttfs.characterisation.dc_shape import shape_rows
from labctl.families.ttfs.characterisation.plan import CharacterisationPlan

REQUEST_S = 2e-3
"""One bridge request with a small payload: 1 to 3 ms (3.6)."""
LINK_BYTES_PER_S = 1e6
WRITE_ROW_S = 5e-3
BIAS_CHANGE_S = 15e-3
"""Ramp in 0.2 V steps and settle: 10 to 20 ms (3.6)."""
TRACE_S = 0.25
"""One averaged trace, 16 averages, 2000 points WORD, at the default window (3.6)."""
DEFAULT_WINDOW_NS = 16000
T_RESET_NS = 2000.0
REARM_GAP_NS = 200e3
ARM_ALLOWANCE_S = 0.1
MAX_PAYLOAD = 8192
POWER_UP_S = 2.0
POWER_DOWN_S = 1.0


def reading_s(nplc: float) -> float:
    """One SMU current reading: 30 ms at NPLC 1, 210 ms at NPLC 10 (3.6, 50 Hz)."""
    return nplc / 50.0 + 0.01


def held_reading_s(nplc: float, released: bool) -> float:
    """HOLD_ROW, a reading, release (and a released reading)."""
    return 2 * REQUEST_S + reading_s(nplc) * (2 if released else 1)


def patterns_s(count: int, n_entry: int, n_readout: int, window_ns: float) -> float:
    """APPLY_PATTERNS of ``count`` patterns, split into frames of at most the maximum payload (2.5)."""
    per_frame = min((MAX_PAYLOAD - 7) // n_entry, (MAX_PAYLOAD - 1) // (2 * n_readout))
    frames = math.ceil(count / per_frame)
    period_s = max(window_ns + T_RESET_NS, n_entry * 10.0 + 1000.0) * 1e-9
    return frames * REQUEST_S + count * (n_entry + 2 * n_readout) / LINK_BYTES_PER_S + count * period_s


def _batch_s(window_ns: float, averages: int) -> float:
    period_s = (window_ns + T_RESET_NS + REARM_GAP_NS) * 1e-9
    return (averages + math.ceil(ARM_ALLOWANCE_S / period_s)) * period_s


def trace_s(window_ns: float, averages: int) -> float:
    return TRACE_S - _batch_s(DEFAULT_WINDOW_NS, 16) + _batch_s(window_ns, averages)


def estimate_bench_seconds(plan: CharacterisationPlan, layer_sizes: tuple[int, ...]) -> dict[str, float]:
    """Bench seconds of each step of ``plan`` on a die of ``layer_sizes`` (input layer first), in run order."""
    matrices = [(layer_sizes[m] + 1, layer_sizes[m + 1]) for m in range(len(layer_sizes) - 1)]
    neurons = [(layer, n) for layer, n in enumerate(layer_sizes) if layer >= 1]
    every_row = sum(rows for rows, _ in matrices) * WRITE_ROW_S
    window = plan.window_ns or DEFAULT_WINDOW_NS
    steps = {"0 power-up": POWER_UP_S, "1 MON chain": 3 * trace_s(DEFAULT_WINDOW_NS, 16) + 3 * BIAS_CHANGE_S}

    leak = trace_s(plan.leak_window_ns, plan.leak_averages)
    kappa_traces = sum(min(plan.kappa_neurons, n) for _, n in neurons)
    steps["8 leakage, coupling"] = every_row + (sum(n for _, n in neurons) + kappa_traces) * leak

    held = sum(len(shape_rows(rows, plan.shape_rows)) for rows, _ in matrices)
    shape = 0.0
    for levels in (plan.exc_levels_v, plan.inh_levels_v):
        shape += held * WRITE_ROW_S + BIAS_CHANGE_S
        shape += len(levels) * (BIAS_CHANGE_S + reading_s(plan.nplc) + held * held_reading_s(plan.nplc, False))
    steps["2 DC shape"] = shape

    per_code = len(matrices) * (WRITE_ROW_S + held_reading_s(plan.nplc, True))
    steps["7 ladder"] = 2 * len(plan.ladder_codes) * per_code

    reversal = sum(min(plan.reversal_neurons, n) for _, n in neurons) * trace_s(plan.reversal_window_ns,
                                                                                plan.trace_averages)
    steps["3 reversal"] = 2 * reversal + 2 * len(matrices) * WRITE_ROW_S + 6 * BIAS_CHANGE_S

    anchors = every_row
    for layer, n in neurons:
        rows, _ = matrices[layer - 1]
        n_in = layer_sizes[layer - 1]
        timed = patterns_s(plan.anchor_repeats, n_in, n, window)
        trace = 2 * REQUEST_S + timed + trace_s(window, plan.trace_averages)
        if plan.anchor_rows == "bias":
            per_neuron = (len(plan.anchor_codes) * (WRITE_ROW_S + held_reading_s(plan.anchor_nplc, True) + timed)
                          + trace + WRITE_ROW_S)
        else:  # the trace drive, then every row at each code, each held; the column written 0 again
            per_neuron = (WRITE_ROW_S + held_reading_s(plan.anchor_nplc, True) + trace + timed
                          + len(plan.anchor_codes) * (rows * (WRITE_ROW_S + held_reading_s(plan.anchor_nplc, False))
                                                      + reading_s(plan.anchor_nplc) + timed)
                          + rows * WRITE_ROW_S)
        anchors += n * (REQUEST_S + per_neuron)
    steps["4 anchors"] = anchors

    sites = 2 * every_row
    for m, (rows, cols) in enumerate(matrices):
        sites += rows * (REQUEST_S + patterns_s(plan.site_repeats, layer_sizes[m], cols, window))
    steps["5 sites"] = sites
    steps["9 power-down"] = POWER_DOWN_S
    return steps
