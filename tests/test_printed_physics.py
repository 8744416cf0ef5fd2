"""Physics core of the simulated PNC-1 process: EGT compact model, variation, crossbar node."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from labctl.families.printed.sim.cells import crossbar_output
from labctl.families.printed.sim.egt import EgtDevice, EgtMaterial, drain_current, drain_current_partials
from labctl.families.printed.sim.variation import draw_printed

MAT = EgtMaterial()
DEV = EgtDevice(w_um=490.0, l_um=35.0)


def test_egt_is_symmetric_in_source_and_drain():
    vg, va, vb = np.meshgrid(np.linspace(-1.5, 1.5, 7), np.linspace(-2, 2, 9), np.linspace(-2, 2, 9))
    assert np.allclose(drain_current(DEV, MAT, vg, va, vb), -drain_current(DEV, MAT, vg, vb, va), rtol=0, atol=1e-18)
    assert np.all(drain_current(DEV, MAT, 1.0, 0.0, 0.0) == 0.0)


def test_subthreshold_swing_and_square_law():
    vt, n, phi = MAT.v_t, MAT.n, MAT.phi_t
    i1, i2 = drain_current(DEV, MAT, [vt - 0.4, vt - 0.3], 1.0, 0.0)
    swing = 0.1 / np.log10(i2 / i1)
    assert swing == pytest.approx(n * phi * np.log(10), rel=0.02)
    vds = 1.5  # saturation, far above threshold: beta/(2n) (Vgs - Vt)^2 (1 + lam Vds)
    i_sat = drain_current(DEV, MAT, vt + 1.0, vds, 0.0)
    expected = DEV.beta(MAT) / (2 * n) * 1.0 ** 2 * (1 + MAT.lam * (np.hypot(vds, MAT.v_smooth) - MAT.v_smooth))
    assert i_sat == pytest.approx(expected, rel=0.01)
    assert 1e-5 < i_sat < 2e-3  # EGT currents of 100 uA to 1 mA at ~1 V (seed 002)


def test_partials_match_finite_differences_and_are_continuous():
    rng = np.random.default_rng(1)
    v = rng.uniform(-2, 2, size=(3, 200))
    v[1, :20] = v[2, :20] + rng.uniform(-1e-3, 1e-3, 20)  # around V_DS = 0
    h = 1e-6
    analytic = drain_current_partials(DEV, MAT, *v)
    for k in range(3):
        up, down = v.copy(), v.copy()
        up[k] += h
        down[k] -= h
        numeric = (drain_current(DEV, MAT, *up) - drain_current(DEV, MAT, *down)) / (2 * h)
        assert np.allclose(analytic[k], numeric, rtol=1e-5, atol=1e-12)
    assert np.allclose(sum(analytic), 0.0, atol=1e-15)
    vds = np.linspace(-1e-3, 1e-3, 2001)
    gds = drain_current_partials(DEV, MAT, 1.0, vds, 0.0)[1]
    assert np.max(np.abs(np.diff(gds))) < 1e-3 * np.max(np.abs(gds))  # no kink at V_DS = 0


@dataclass(frozen=True)
class _Parts:
    r1: float
    r2: float
    w: float
    label: str = "x"


def test_variation_spreads_within_eps_and_not_at_zero():
    nominal = _Parts(1e6, 2e4, 500.0)
    rng = np.random.default_rng(7)
    samples = np.array([[p.r1, p.r2, p.w] for p in (draw_printed(nominal, 0.1, rng) for _ in range(2000))])
    ratio = samples / np.array([1e6, 2e4, 500.0])
    assert np.all(np.abs(ratio - 1) <= 0.1)
    assert np.all(ratio.std(axis=0) == pytest.approx(0.1 / np.sqrt(3), rel=0.1))  # uniform on +-eps
    assert abs(np.corrcoef(ratio.T)[0, 1]) < 0.1  # independent per component
    assert draw_printed(nominal, 0.0, rng) == nominal
    a, b = (draw_printed(nominal, 0.05, np.random.default_rng(3)) for _ in range(2))
    assert a == b  # one seed, one sample
    with pytest.raises(ValueError):
        draw_printed(nominal, 0.2, rng)


def test_unloaded_crossbar_node_is_the_conductance_weighted_mean():
    rng = np.random.default_rng(0)
    g = rng.uniform(1e-7, 1e-4, size=(50, 6))
    v = rng.uniform(-1.5, 1.5, size=(50, 6))
    v_z, i_rows = crossbar_output(g, v)
    assert np.allclose(v_z, (g * v).sum(-1) / g.sum(-1), rtol=0, atol=1e-12)
    assert np.all(np.abs(i_rows.sum(-1)) < 1e-12)  # KCL: no current leaves an unloaded node
    power = (g * (v - v_z[:, None]) ** 2).sum(-1)  # contract 1.8: dissipation = delivered power
    assert np.allclose(power, (v * i_rows).sum(-1), rtol=1e-9, atol=0)


def test_loaded_crossbar_node_obeys_kcl():
    g, v = np.array([1e-5, 2e-5, 1e-7]), np.array([1.0, -0.5, 0.0])
    v_z, i_rows = crossbar_output(g, v, load_g=1e-6, load_v=-2.0)
    assert abs(i_rows.sum() - 1e-6 * (v_z + 2.0)) < 1e-18
