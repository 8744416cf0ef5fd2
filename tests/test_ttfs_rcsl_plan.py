"""The characterisation plan per part (contract 7): RCS-S's unchanged, RCS-L's within its 30-minute goal.

A whole RCS-L characterisation takes about 25 minutes of wall time here
(``benchmarks/ttfs_char_rcsl.py``), so RCS-L's plan is held by its choices
and its bench-time estimate from contract 3.6's timings; the bias-row path
it takes (anchors on the bias row alone, column gains from step 5) runs
end to end on an RCS-S die.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from labctl.families.ttfs.characterisation.branch import charge_integral
from labctl.families.ttfs.characterisation.budget import estimate_bench_seconds
from labctl.families.ttfs.characterisation.characterise import characterise_die
from labctl.families.ttfs.characterisation.dc_shape import shape_rows
from labctl.families.ttfs.characterisation.plan import CharacterisationPlan
from labctl.families.ttfs.sim.parts import C_MIM_F, C_NODE_F, C_ROW_F, I_LSB_A, PARTS

RCS_S, RCS_L = PARTS["RCS-S"].layers, PARTS["RCS-L"].layers


def test_rcs_s_keeps_its_plan():
    """RCS-S's plan is the defaults (every row at the anchors and in step 2, the bridge's window)."""
    plan = CharacterisationPlan.for_part("RCS-S")
    assert plan == CharacterisationPlan()
    assert (plan.anchor_rows, plan.shape_rows, plan.window_ns) == ("all", None, None)
    assert CharacterisationPlan.for_part("RCS-X") == plan  # an unknown part: the defaults


def test_rcs_l_plan_choices():
    """RCS-L anchors on the bias row alone at contract 7's codes, holds 16 rows per matrix in step 2 and runs
    steps 4 and 5 at a 32 us window; the rest is RCS-S's plan."""
    plan = CharacterisationPlan.for_part("RCS-L")
    assert plan.anchor_rows == "bias"
    assert plan.anchor_codes == (6, 10, 15) and plan.trace_code in plan.anchor_codes
    assert plan.shape_rows == 16
    assert plan.window_ns == 32000 and plan.reversal_window_ns == 24000
    changed = {k for k, v in plan.as_dict().items() if v != CharacterisationPlan().as_dict()[k]}
    assert changed == {"anchor_rows", "shape_rows", "window_ns", "reversal_window_ns"}
    with pytest.raises(ValueError, match="trace code"):
        dataclasses.replace(plan, trace_code=8)


def test_the_window_holds_the_slowest_bias_anchor():
    """One code-6 bias site on an RCS-L layer-1 neuron at 1.7's worst bounds (C +10 %, I_LSB -12 %, gain -4 %,
    V_REST low, a large pedestal, an offset below) fires before the anchor window ends, not before 16 us."""
    c_max = 1.10 * (C_MIM_F + C_NODE_F + C_ROW_F * (RCS_L[0] + 1))
    current = 6 * I_LSB_A * 0.88 * 0.96
    q = float(charge_integral(1.285 - 8e-3, 0.80 - 30e-3, 0.30, 0.40, 0.0257, 1.285))
    t_ns = 12.0 + 1e9 * c_max * q / current
    assert 16000 < t_ns < CharacterisationPlan.for_part("RCS-L").window_ns


def test_shape_rows_spread_over_the_matrix():
    assert shape_rows(17, None).tolist() == list(range(17))
    assert shape_rows(5, 16).tolist() == list(range(5))
    rows = shape_rows(785, 16)
    assert len(rows) == 16 and rows[0] == 0 and rows[-1] == 784


def test_bench_time_estimates():
    """From contract 3.6's timings: RCS-S's plan within its 5 minutes, RCS-L's within its 30 (about 14); RCS-S's
    plan on RCS-L would take days, its step 4 alone (every row held at every anchor code)."""
    small = estimate_bench_seconds(CharacterisationPlan.for_part("RCS-S"), RCS_S)
    assert 100 < sum(small.values()) < 300
    large = estimate_bench_seconds(CharacterisationPlan.for_part("RCS-L"), RCS_L)
    assert 600 < sum(large.values()) < 1000
    assert max(large, key=large.get) == "4 anchors"
    assert 400 < large["4 anchors"] < 800
    assert large["2 DC shape"] < 30 and large["5 sites"] < 40
    naive = estimate_bench_seconds(CharacterisationPlan(), RCS_L)
    assert naive["4 anchors"] > 24 * 3600


def test_bias_row_plan_end_to_end_on_rcs_s(tmp_path: Path):
    """RCS-L's path (bias-row anchors, sampled DC shape rows, gains from step 5, the long window) on an RCS-S die
    (about 30 s here): every per-neuron value near the truth and at least 85 % within 2 standard errors."""
    from labctl.families.ttfs.sim.bench import SimulatedTtfsBench

    plan = dataclasses.replace(CharacterisationPlan.for_part("RCS-L"), shape_rows=3)
    with SimulatedTtfsBench("RCS-S", seed=3) as sim:
        result = characterise_die(sim.write_bench_file(tmp_path / "bench.toml"), tmp_path / "die.h5", plan=plan)
        truth = sim.die.truth
    params = result.params
    mean_g = np.concatenate([n.gain for n in truth.neurons]).mean()
    inside = []
    for layer, n in zip(params.layers, truth.neurons):
        expected = {"capacitance_f": (n.c_fixed + n.c_row, 0.01 * (n.c_fixed + n.c_row)),
                    "start_v": (truth.v_rest - n.pedestal, 1.5e-3), "threshold_v": (params.vth_pad_v + n.offset, 2e-3),
                    "delay_ns": (n.delay_ns, 15.0), "column_gain": (n.gain / mean_g, 0.02)}
        for name, (true, tolerance) in expected.items():
            fit = getattr(layer, name)
            error = np.abs(np.asarray(fit.value) - true)
            assert np.all(error < tolerance), name
            inside.append(error < 2 * np.asarray(fit.se))
    assert np.mean(np.concatenate(inside)) >= 0.85
    assert 0.015 < params.write_residual_half_width < 0.035
    assert result.bench_seconds < 60.0  # RCS-S's own plan: about 116 s
