"""Printed family: the process calibration record (CellMap, ProcessCalibration) and the network model.

Nothing here reads /work/shared/data or the simulator: calibrations are made
from a known synthetic truth (``synthetic_calibration``, also used by the
training, print-job and export tests).
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from labctl.errors import ConfigError, DataFileError
from labctl.families.printed import process_calibration
from labctl.families.printed.printable import CELL_COMPONENTS, COMPONENT_RANGES, neg_constraints_hold
from labctl.families.printed.process_calibration import ProcessCalibration, require_process
from labctl.families.printed.process_map import TARGETS, CellMap, fit_cell_map

# -- a synthetic process: linear-in-log truth ---------------------------------------------

BASE = {"ACT": {"eta1": 0.15, "eta2": 0.80, "eta3": 0.25, "eta4": np.log(20.0), "p1": np.log(1.0e-3),
                "p2": 1.0e-4, "p3": 1.0e-7},
        "NEG": {"eta1": 0.10, "eta2": 1.00, "eta3": 0.10, "eta4": np.log(5.0), "p1": np.log(1.0e-3),
                "p2": 1.0e-4, "p3": 1.0e-5}}
SLOPES = {"eta1": 0.04, "eta2": 0.05, "eta3": 0.08, "eta4": 0.4, "p1": 0.3, "p2": 2e-5, "p3": 1e-7}
SE = {"eta1": 2e-3, "eta2": 2e-3, "eta3": 2e-3, "eta4": 0.02, "p1": 0.01, "p2": 2e-6, "p3": 2e-7}
"""Measurement se (eta4 and p1 relative)."""


def truth(kind: str, comps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Targets linear in the normalised log components (first two components, alternating signs)."""
    names = CELL_COMPONENTS[kind]
    ranges = COMPONENT_RANGES[kind]
    z = {c: (np.log(comps[c]) - np.log(ranges[c].low * ranges[c].high) / 2)
         / (np.log(ranges[c].high / ranges[c].low) / 2) for c in names}
    out = {}
    for i, t in enumerate(TARGETS):
        y = BASE[kind][t] + SLOPES[t] * (z[names[i % len(names)]] - 0.5 * z[names[(i + 1) % len(names)]])
        out[t] = np.exp(y) if t in ("eta4", "p1") else y
    return out


def spread_designs(kind: str, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """n designs log-uniform over the printable ranges (NEG constraints kept by rejection)."""
    rows = []
    while len(rows) < n:
        c = {name: float(np.exp(rng.uniform(np.log(r.low), np.log(r.high))))
             for name, r in COMPONENT_RANGES[kind].items()}
        if kind == "ACT" or neg_constraints_hold(c) is None:
            rows.append(c)
    return {name: np.array([r[name] for r in rows]) for name in CELL_COMPONENTS[kind]}


def measured(kind: str, n: int, seed: int) -> tuple[dict, dict, dict]:
    rng = np.random.default_rng(seed)
    comps = spread_designs(kind, n, rng)
    true = truth(kind, comps)
    se = {t: (SE[t] * true[t] if t in ("eta4", "p1") else np.full(n, SE[t])) for t in TARGETS}
    meas = {t: true[t] + rng.normal(0.0, 1.0, n) * se[t] for t in TARGETS}
    return comps, meas, se


def synthetic_calibration(process: str = "sim-test", eps: float = 0.10, seed: int = 0) -> ProcessCalibration:
    """A calibration of a synthetic run (14 ACT, 13 NEG structures; nominal inks)."""
    act = fit_cell_map("ACT", *measured("ACT", 14, seed))
    neg = fit_cell_map("NEG", *measured("NEG", 13, seed + 1))
    return ProcessCalibration(process=process, sample=f"{process}/PNC-TS-A/S0", eps=eps, eps_se=0.005,
                              rh_ohm_sq=52_000.0, rl_ohm_sq=24.5, act=act, neg=neg)


# -- CellMap ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, n", [("ACT", 14), ("NEG", 13)])
def test_cell_map_recovers_a_linear_in_log_truth_within_its_stated_se(kind, n):
    cell_map = fit_cell_map(kind, *measured(kind, n, seed=3))
    fresh = spread_designs(kind, 50, np.random.default_rng(99))
    pred, se, true = cell_map.predict(fresh), cell_map.predict_se(fresh), truth(kind, fresh)
    for t in TARGETS:
        z = (pred[t] - true[t]) / se[t]
        assert np.sqrt(np.mean(z**2)) < 2.5, (t, z)       # the stated se is honest (ridge bias included)
        assert np.max(np.abs(z)) < 5.0, t
    # held-out residuals are reported and near the measurement noise
    assert cell_map.loo_rms["eta3"] < 3 * SE["eta3"]
    assert cell_map.residual_rms["eta1"] < 2 * SE["eta1"]


def test_cell_map_accepts_arrays_and_its_torch_forward_equals_predict():
    comps, meas, se = measured("NEG", 13, seed=4)
    matrix = np.column_stack([comps[c] for c in CELL_COMPONENTS["NEG"]])
    structured = np.rec.fromarrays([comps[c] for c in CELL_COMPONENTS["NEG"]], names=list(CELL_COMPONENTS["NEG"]))
    a = fit_cell_map("NEG", comps, meas, se)
    b = fit_cell_map("NEG", matrix, meas, se)
    c = fit_cell_map("NEG", structured, meas, se)
    for t in TARGETS:
        np.testing.assert_allclose(a.predict(comps)[t], b.predict(matrix)[t], rtol=1e-12)
        np.testing.assert_allclose(a.predict(comps)[t], c.predict(comps)[t], rtol=1e-12)
    tensor = torch.tensor(matrix, requires_grad=True)
    out = a.etas_and_power(tensor)
    np.testing.assert_allclose(out.detach().numpy(), np.column_stack([a.predict(comps)[t] for t in TARGETS]),
                               rtol=1e-12)
    out[:, 3].sum().backward()
    assert torch.all(torch.isfinite(tensor.grad)) and tensor.grad.abs().sum() > 0


def test_calibration_round_trips_and_refuses_other_files(tmp_path):
    cal = synthetic_calibration()
    path = tmp_path / "process.h5"
    with h5py.File(path, "w") as fh:
        fh.attrs["family"] = "printed"
        cal.write(fh)
    back = process_calibration.read(path)
    assert (back.process, back.eps, back.rh_ohm_sq, back.rl_ohm_sq) == (cal.process, 0.10, 52_000.0, 24.5)
    comps = spread_designs("ACT", 5, np.random.default_rng(1))
    for t in TARGETS:
        np.testing.assert_array_equal(back.act.predict(comps)[t], cal.act.predict(comps)[t])
    assert back.neg.loo_rms == cal.neg.loo_rms
    with h5py.File(path, "r") as fh:
        assert fh["calibration"].attrs["rh_ohm_sq"] == 52_000.0 and "ACT" in fh["calibration"]

    cmna = tmp_path / "die.h5"
    with h5py.File(cmna, "w") as fh:
        fh.attrs["family"] = "cmna"
    with pytest.raises(DataFileError, match="a cmna file, not a printed process calibration"):
        process_calibration.read(cmna)
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as fh:
        fh.attrs["family"] = "printed"
    with pytest.raises(DataFileError, match="not a printed process calibration"):
        process_calibration.read(empty)
    text = tmp_path / "x.h5"
    text.write_text("hello")
    with pytest.raises(DataFileError, match="not a readable HDF5 file"):
        process_calibration.read(text)
    with pytest.raises(DataFileError, match="no such file"):
        process_calibration.read(tmp_path / "missing.h5")


def test_require_process_refuses_a_design_for_another_run():
    cal = synthetic_calibration(process="sim-7")
    require_process(cal, "sim-7")
    with pytest.raises(ConfigError, match="is for process 'sim-8', but the calibration is for process 'sim-7'"):
        require_process(cal, "sim-8")


def test_cell_map_read_refuses_a_group_that_is_not_one(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as fh:
        group = fh.create_group("ACT")
        group.attrs["kind"] = "ACT"
        with pytest.raises(DataFileError, match="not a printed cell map"):
            CellMap.read(group)


# -- the network model -------------------------------------------------------------------

from labctl.families.printed.cell_design import act_components, neg_components  # noqa: E402
from labctl.families.printed.network import PrintedNetwork, vary  # noqa: E402
from labctl.families.printed.printable import REFERENCE_DESIGNS  # noqa: E402


def _etas(cell_map: CellMap, kind: str) -> dict[str, float]:
    ref = {k: np.array([v]) for k, v in REFERENCE_DESIGNS[kind].items()}
    return {t: float(v[0]) for t, v in cell_map.predict(ref).items()}


def test_forward_and_power_equal_a_hand_computed_two_input_crossbar():
    cal = synthetic_calibration()
    net = PrintedNetwork((2, 1), cal.act, cal.neg, fixed_circuits=True)
    with torch.no_grad():
        net.layers[0].theta.copy_(torch.tensor([[1.0], [-2.0], [0.5], [4.0]], dtype=torch.float64))
    x = np.array([[0.3, 0.8], [0.9, 0.1]])
    out, power = net(torch.tensor(x))
    a, n = _etas(cal.act, "ACT"), _etas(cal.neg, "NEG")
    g = np.array([1.0, 2.0, 0.5, 4.0]) / 0.5 * 1e-7            # smallest printed |theta| -> 1e-7 S
    for row, (x0, x1) in enumerate(x):
        v_neg = -(n["eta1"] + n["eta2"] * np.tanh((x1 - n["eta3"]) * n["eta4"]))
        v_rows = np.array([x0, v_neg, 1.0, 0.0])
        v_z = g @ v_rows / g.sum()
        t_act = np.tanh((v_z - a["eta3"]) * a["eta4"])
        assert out[0, row, 0].item() == pytest.approx(a["eta1"] + a["eta2"] * t_act, abs=1e-12)
        crossbar = np.sum(g * (v_rows - v_z) ** 2)
        p_act = a["p1"] + a["p2"] * t_act + a["p3"] * v_z**2
        p_neg = n["p1"] + n["p2"] * np.tanh((x1 - n["eta3"]) * n["eta4"]) + n["p3"] * x1**2
        assert power[0, row].item() == pytest.approx(crossbar + p_act + p_neg, rel=1e-9)
    values = net.layers[0].printed()
    assert values.neg_present.tolist() == [False, True, False]      # only input 1 is negated; bias positive


def test_unprinted_thetas_drop_out_and_columns_scale_to_g_min():
    cal = synthetic_calibration()
    net = PrintedNetwork((2, 2), cal.act, cal.neg)
    with torch.no_grad():
        net.layers[0].theta.copy_(torch.tensor([[0.005, 2.0], [-0.2, 12.0], [0.4, -0.001], [1.0, 0.3]],
                                               dtype=torch.float64))
    with torch.no_grad():
        v = net.layers[0].printed()
    np.testing.assert_allclose(v.g_s[:, 0].numpy(), [0.0, 1e-7, 2e-7, 5e-7])
    np.testing.assert_allclose(v.g_s[:, 1].numpy(), [2.0 / 0.3 * 1e-7, 10 / 0.3 * 1e-7, 0.0, 1e-7])  # clamped to 10
    assert v.g_s.max() <= 1e-4 and v.negated[1, 0] and not v.negated[2, 1]


def test_variation_samples_are_uniform_within_eps():
    values = torch.full((4, 5), 2.0, dtype=torch.float64)
    samples = vary(values, 4000, 0.1, torch.Generator().manual_seed(1)) / 2.0 - 1.0
    assert samples.shape == (4000, 4, 5)
    assert samples.min() >= -0.1 and samples.max() <= 0.1
    assert samples.std().item() == pytest.approx(0.1 / np.sqrt(3), rel=0.02)   # U(-eps, eps)
    assert abs(samples.mean().item()) < 2e-3
    assert torch.equal(vary(values, 0, 0.1, None)[0], values)

    cal = synthetic_calibration()
    net = PrintedNetwork((3, 2, 2), cal.act, cal.neg, seed=2)
    x = torch.rand(50, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        spreads = [net(x, n_samples=50, eps=eps, generator=torch.Generator().manual_seed(3))[0].std(dim=0).mean()
                   for eps in (0.0, 0.05, 0.15)]
    assert spreads[0] == 0.0 and 0 < spreads[1] < spreads[2]


def test_learnable_components_stay_printable_whatever_the_parameters():
    u = torch.randn(5000, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 6
    for kind, comps in (("ACT", act_components(u[:, :6])), ("NEG", neg_components(u))):
        for k, name in enumerate(CELL_COMPONENTS[kind]):
            r = COMPONENT_RANGES[kind][name]
            assert comps[:, k].min() >= r.low * (1 - 1e-9) and comps[:, k].max() <= r.high * (1 + 1e-9), name
        if kind == "NEG":
            for row in comps.numpy():
                assert neg_constraints_hold(dict(zip(CELL_COMPONENTS["NEG"], row))) is None
