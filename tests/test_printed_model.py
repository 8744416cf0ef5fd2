"""Printed family: the process calibration record (CellMap, ProcessCalibration) and the network model.

Nothing here reads /work/shared/data or the simulator: calibrations are made
from a known synthetic truth (``synthetic_calibration``, also used by the
training, print-job and export tests).
"""

from __future__ import annotations

from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch

from labctl.errors import ConfigError, DataFileError
from labctl.families.printed import process_calibration
from labctl.families.printed.printable import CELL_COMPONENTS, COMPONENT_RANGES, neg_constraints_hold
from labctl.families.printed.process_calibration import ProcessCalibration, require_process
from labctl.families.printed.process_map import PORT_TARGETS, TARGETS, CellMap, fit_cell_map

# -- a synthetic process: linear-in-log truth ---------------------------------------------

BASE = {"ACT": {"eta1": 0.15, "eta2": 0.80, "eta3": 0.25, "eta4": np.log(20.0), "p1": np.log(1.0e-3),
                "p2": 1.0e-4, "p3": 1.0e-7},
        "NEG": {"eta1": 0.10, "eta2": 1.00, "eta3": 0.10, "eta4": np.log(5.0), "p1": np.log(1.0e-3),
                "p2": 1.0e-4, "p3": 1.0e-5}}
BASE["ACT"].update({"r_out_ohm": np.log(12e3)})
BASE["NEG"].update({"r_out_ohm": np.log(35e3), "r_in_ohm": np.log(150e3), "i_in0_a": np.log(1.3e-5)})
"""Port targets near the simulated kit's (ACT R2 || 100 k; NEG input ending near VSS: ~2 V / r_in at 0 V)."""
SLOPES = {"eta1": 0.04, "eta2": 0.05, "eta3": 0.08, "eta4": 0.4, "p1": 0.3, "p2": 2e-5, "p3": 1e-7,
          "r_out_ohm": 0.4, "r_in_ohm": 0.8, "i_in0_a": -0.8}
SE = {"eta1": 2e-3, "eta2": 2e-3, "eta3": 2e-3, "eta4": 0.02, "p1": 0.01, "p2": 2e-6, "p3": 2e-7,
      "r_out_ohm": 0.02, "r_in_ohm": 0.02, "i_in0_a": 0.02}
"""Measurement se (eta4, p1 and the port targets relative)."""
RELATIVE = ("eta4", "p1", *PORT_TARGETS)
SYNTHETIC_PORTS = {"ACT": ("r_out_ohm",), "NEG": ("r_out_ohm", "r_in_ohm", "i_in0_a")}
"""The port targets the synthetic process measures: one output resistance for both levels (an unmeasured
r_out_low_ohm takes r_out_ohm's value, process_map.NEUTRAL_PORTS)."""


def truth(kind: str, comps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Targets linear in the normalised log components (first two components, alternating signs)."""
    names = CELL_COMPONENTS[kind]
    ranges = COMPONENT_RANGES[kind]
    z = {c: (np.log(comps[c]) - np.log(ranges[c].low * ranges[c].high) / 2)
         / (np.log(ranges[c].high / ranges[c].low) / 2) for c in names}
    out = {}
    for i, t in enumerate(TARGETS + SYNTHETIC_PORTS[kind]):
        y = BASE[kind][t] + SLOPES[t] * (z[names[i % len(names)]] - 0.5 * z[names[(i + 1) % len(names)]])
        out[t] = np.exp(y) if t in RELATIVE else y
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


def measured(kind: str, n: int, seed: int, ports: bool = False) -> tuple[dict, dict, dict]:
    """Structures' components, measured targets and se; the kind's port targets too with ``ports``."""
    rng = np.random.default_rng(seed)
    comps = spread_designs(kind, n, rng)
    true = truth(kind, comps)
    names = TARGETS + (SYNTHETIC_PORTS[kind] if ports else ())
    se = {t: (SE[t] * true[t] if t in RELATIVE else np.full(n, SE[t])) for t in names}
    meas = {t: true[t] + rng.normal(0.0, 1.0, n) * se[t] for t in names}
    return comps, meas, se


def synthetic_calibration(process: str = "sim-test", eps: float = 0.10, seed: int = 0,
                          ports: bool = False) -> ProcessCalibration:
    """A calibration of a synthetic run (14 ACT, 13 NEG structures; nominal inks); ``ports`` adds the
    cells' port targets (the loaded model), else the crossbar does not load the cells."""
    act = fit_cell_map("ACT", *measured("ACT", 14, seed, ports))
    neg = fit_cell_map("NEG", *measured("NEG", 13, seed + 1, ports))
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
    cal = replace(cal, neg=replace(cal.neg, excess_sd=(0.03, 0.02, 0.15, 0.1)))
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
    assert back.neg.excess_sd == (0.03, 0.02, 0.15, 0.1) and back.act.excess_sd is None
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
from labctl.families.printed.network import PrintedNetwork, spread_cells, vary  # noqa: E402
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


def test_a_maps_excess_spread_moves_printed_cells_etas_by_its_sd_and_not_the_nominal():
    cal = synthetic_calibration()
    neg = replace(cal.neg, excess_sd=(0.03, 0.0, 0.15, 0.2))
    held_out = [neg.fits[t].loo_rms_fitted for t in ("eta1", "eta2", "eta3", "eta4")]
    expected = np.maximum([0.03, 0.0, 0.15, 0.2], held_out)     # the larger of excess and the map's error
    assert neg.cell_spread_sd == tuple(expected) and held_out[1] > 0
    comps = torch.tensor(np.column_stack([spread_designs("NEG", 3, np.random.default_rng(2))[c]
                                          for c in CELL_COMPONENTS["NEG"]]))
    base = neg.targets_and_ports(comps).expand(20000, -1, -1)
    spread = spread_cells(base, neg, 20000, 0.1, torch.Generator().manual_seed(0))
    shift = (spread - base)[..., :3]
    np.testing.assert_allclose(shift.std(dim=0).numpy(), np.tile(expected[:3], (3, 1)), rtol=0.03)
    assert torch.log(spread[..., 3] / base[..., 3]).std().item() == pytest.approx(expected[3], rel=0.03)
    assert torch.equal(spread[..., 4:], base[..., 4:])                       # power and ports untouched
    assert torch.equal(spread_cells(base[:1], neg, 0, 0.1, None), base[:1])  # the nominal circuit
    older = replace(cal.neg, fits={t: replace(f, loo_rms_fitted=np.nan) for t, f in cal.neg.fits.items()})
    assert older.cell_spread_sd is None and torch.equal(spread_cells(base, older, 20000, 0.1, None), base)


def test_learnable_components_stay_printable_whatever_the_parameters():
    u = torch.randn(5000, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 6
    for kind, comps in (("ACT", act_components(u[:, :6])), ("NEG", neg_components(u))):
        for k, name in enumerate(CELL_COMPONENTS[kind]):
            r = COMPONENT_RANGES[kind][name]
            assert comps[:, k].min() >= r.low * (1 - 1e-9) and comps[:, k].max() <= r.high * (1 + 1e-9), name
        if kind == "NEG":
            for row in comps.numpy():
                assert neg_constraints_hold(dict(zip(CELL_COMPONENTS["NEG"], row))) is None


# -- port targets and the loaded crossbar (contract 1.3, 1.5, 1.8) ------------------------

from scipy.optimize import fsolve  # noqa: E402

from labctl.families.printed.network import LOADED_ITERATIONS, Drive  # noqa: E402


def _matrix(kind: str, comps: dict[str, np.ndarray]) -> np.ndarray:
    return np.column_stack([comps[c] for c in CELL_COMPONENTS[kind]])


@pytest.mark.parametrize("kind, n", [("ACT", 14), ("NEG", 13)])
def test_port_targets_are_fitted_in_log_and_the_torch_ports_equal_predict(kind, n):
    cell_map = fit_cell_map(kind, *measured(kind, n, seed=5, ports=True))
    assert [cell_map.has_target(t) for t in PORT_TARGETS] == [t in SYNTHETIC_PORTS[kind] for t in PORT_TARGETS]
    fresh = spread_designs(kind, 40, np.random.default_rng(7))
    pred, true = cell_map.predict(fresh), truth(kind, fresh)
    pred["r_out_low_ohm"] = pred["r_out_ohm"]                           # unmeasured: the one resistance
    for t in SYNTHETIC_PORTS[kind]:
        assert cell_map.fits[t].log
        assert np.max(np.abs(pred[t] / true[t] - 1)) < 0.06, t          # 2 % se, 13-14 structures
    ports = cell_map.ports(torch.tensor(_matrix(kind, fresh))).numpy()
    for i, t in enumerate(PORT_TARGETS):
        expected = pred[t] if t in pred else np.full(40, (0.0, np.inf, 0.0)[i])   # ACT: a gate input
        np.testing.assert_allclose(ports[:, i], expected, rtol=1e-12)


def test_port_targets_are_optional_and_partial_rows_are_left_out():
    comps, meas, se = measured("NEG", 13, seed=6, ports=True)
    plain = fit_cell_map("NEG", comps, {t: meas[t] for t in TARGETS}, se)
    assert plain.has_target("eta1") and not any(plain.has_target(t) for t in PORT_TARGETS)
    np.testing.assert_array_equal(plain.ports(torch.tensor(_matrix("NEG", comps))).numpy(),
                                  np.tile([0.0, np.inf, 0.0, 0.0], (13, 1)))  # unloaded: ideal out, no input
    partial = dict(meas, r_in_ohm=np.where(np.arange(13) < 4, np.nan, meas["r_in_ohm"]),
                   i_in0_a=np.full(13, np.nan))
    m = fit_cell_map("NEG", comps, partial, se)
    assert m.has_target("r_in_ohm") and m.has_target("r_out_ohm") and not m.has_target("i_in0_a")
    fresh = spread_designs("NEG", 20, np.random.default_rng(8))
    assert np.max(np.abs(m.predict(fresh)["r_in_ohm"] / truth("NEG", fresh)["r_in_ohm"] - 1)) < 0.1
    act_comps, act_meas, act_se = measured("ACT", 14, seed=6, ports=True)
    with pytest.raises(ValueError, match="ACT has no r_in_ohm: its input is an EGT gate"):
        fit_cell_map("ACT", act_comps, dict(act_meas, r_in_ohm=np.full(14, 1e5)), dict(act_se, r_in_ohm=np.ones(14)))
    with pytest.raises(ValueError, match="target r_out_ohm: values given without standard errors"):
        fit_cell_map("ACT", act_comps, act_meas, {t: act_se[t] for t in TARGETS})


def test_a_map_with_ports_round_trips_and_an_older_map_still_reads(tmp_path):
    with_ports = fit_cell_map("NEG", *measured("NEG", 13, seed=9, ports=True))
    plain = fit_cell_map("NEG", *measured("NEG", 13, seed=9))
    comps = spread_designs("NEG", 5, np.random.default_rng(2))
    with h5py.File(tmp_path / "maps.h5", "w") as fh:
        with_ports.write(fh.create_group("a"))
        plain.write(fh.create_group("b"))
        assert tuple(fh["b"].attrs["targets"]) == TARGETS                  # what an older reader expects
        back_a, back_b = CellMap.read(fh["a"]), CellMap.read(fh["b"])
    assert back_a.targets == TARGETS + SYNTHETIC_PORTS["NEG"] and back_b.targets == TARGETS
    for t in back_a.targets:
        np.testing.assert_array_equal(back_a.predict(comps)[t], with_ports.predict(comps)[t])
    assert not back_b.has_target("r_out_ohm")


def _ports(cell_map: CellMap, kind: str) -> dict[str, float]:
    ref = torch.tensor([[REFERENCE_DESIGNS[kind][c] for c in CELL_COMPONENTS[kind]]], dtype=torch.float64)
    return dict(zip(PORT_TARGETS, cell_map.ports(ref)[0].tolist()))


def _act(e: dict[str, float], v_z: float) -> tuple[float, float]:
    """(output, power) of an ACT at input v_z."""
    t = np.tanh((v_z - e["eta3"]) * e["eta4"])
    return e["eta1"] + e["eta2"] * t, e["p1"] + e["p2"] * t + e["p3"] * v_z**2


def _neg(e: dict[str, float], v_in: float) -> tuple[float, float]:
    """(open-circuit output, power) of a NEG at input v_in."""
    t = np.tanh((v_in - e["eta3"]) * e["eta4"])
    return -(e["eta1"] + e["eta2"] * t), e["p1"] + e["p2"] * t + e["p3"] * v_in**2


def test_a_loaded_negated_line_gives_the_hand_solved_kcl_and_power():
    cal = synthetic_calibration(ports=True)
    net = PrintedNetwork((2, 1), cal.act, cal.neg, fixed_circuits=True)
    with torch.no_grad():
        net.layers[0].theta.copy_(torch.tensor([[3.0], [-8.0], [0.05], [4.0]], dtype=torch.float64))
    x = np.array([[-0.9, 0.8], [0.9, -0.4]])
    out, power = net(torch.tensor(x))
    a, n, r_n = _etas(cal.act, "ACT"), _etas(cal.neg, "NEG"), _ports(cal.neg, "NEG")["r_out_ohm"]
    g = np.array([3.0, 8.0, 0.05, 4.0]) / 0.05 * 1e-7                  # rows x0, n.1 (NEG), bias, GND
    for row, (x0, x1) in enumerate(x):
        v_oc, p_neg = _neg(n, x1)
        # unknowns (V_n, V_z): V_n = V_oc - R_n g1 (V_n - V_z);  KCL: sum_r g_r (V_r - V_z) = 0
        kcl = np.array([[1 + r_n * g[1], -r_n * g[1]], [-g[1], g.sum()]])
        v_n, v_z = np.linalg.solve(kcl, [v_oc, g[0] * x0 + g[2] * 1.0])
        assert abs(v_z - (g @ [x0, v_oc, 1.0, 0.0]) / g.sum()) > 0.01        # the load matters here
        v_out, p_act = _act(a, v_z)
        assert out[0, row, 0].item() == pytest.approx(v_out, abs=1e-12)
        crossbar = np.sum(g * (np.array([x0, v_n, 1.0, 0.0]) - v_z) ** 2)
        assert power[0, row].item() == pytest.approx(crossbar + p_act + p_neg, rel=1e-12)


def test_a_cell_output_is_loaded_through_the_source_resistance_of_its_level():
    """A NEG output's source resistance depends on its level (inverter off: its load resistors, ~48 kohm in
    the simulated kit; on: its channel, a few kohm): the model interpolates r_out_low_ohm .. r_out_ohm by
    the output's level. One resistance for both levels missed a printed NEG line by up to 1.2 V."""
    cal = synthetic_calibration(ports=True)
    comps, meas, se = measured("NEG", 13, seed=1, ports=True)
    neg_map = fit_cell_map("NEG", comps, {**meas, "r_out_low_ohm": meas["r_out_ohm"] / 10},
                           {**se, "r_out_low_ohm": se["r_out_ohm"] / 10})
    net = PrintedNetwork((1, 1), cal.act, neg_map, fixed_circuits=True)
    with torch.no_grad():
        net.layers[0].theta.copy_(torch.tensor([[-8.0], [0.05], [4.0]], dtype=torch.float64))
        out, _ = net(torch.tensor([[-1.5], [1.5]]))
    a, n, ports = _etas(cal.act, "ACT"), _etas(neg_map, "NEG"), _ports(neg_map, "NEG")
    assert ports["r_out_low_ohm"] == pytest.approx(ports["r_out_ohm"] / 10, rel=0.05)
    g = np.array([-8.0, 0.05, 4.0]) / 0.05 * 1e-7                   # rows n.1.0, bias, GND
    for row, x in enumerate((-1.5, 1.5)):
        v_oc = _neg(n, x)[0]
        high = (1 + np.tanh((x - n["eta3"]) * n["eta4"])) / 2         # NEG: its output is high when t = -1
        r = ports["r_out_low_ohm"] + (ports["r_out_ohm"] - ports["r_out_low_ohm"]) * (1 - high)
        # unknowns (V_n, V_z): V_n = V_oc - r |g_n| (V_n - V_z); KCL: |g_n| V_n + g_b - V_z sum|g| = 0
        kcl = np.array([[1 + r * -g[0], -r * -g[0]], [-g[0], -np.abs(g).sum()]])
        v_n, v_z = np.linalg.solve(kcl, [v_oc, -g[1]])
        assert out[0, row, 0].item() == pytest.approx(_act(a, v_z)[0], abs=1e-9)


def test_act_driven_rows_are_loaded_by_the_next_crossbar_exactly():
    cal = synthetic_calibration(ports=True)
    net = PrintedNetwork((2, 2, 1), cal.act, cal.neg, fixed_circuits=True)
    with torch.no_grad():
        net.layers[0].theta.copy_(torch.tensor([[1.0, 2.0], [2.0, 0.5], [0.5, 1.0], [1.0, 1.0]],
                                               dtype=torch.float64))
        net.layers[1].theta.copy_(torch.tensor([[2.0], [5.0], [0.05], [3.0]], dtype=torch.float64))
    x = np.array([[0.1, 0.7], [0.6, 0.2]])
    out, _ = net(torch.tensor(x))
    a, r_a = _etas(cal.act, "ACT"), _ports(cal.act, "ACT")["r_out_ohm"]
    g1 = np.array([[1.0, 2.0], [2.0, 0.5], [0.5, 1.0], [1.0, 1.0]]) / np.array([0.5, 0.5]) * 1e-7
    g2 = np.array([2.0, 5.0, 0.05, 3.0]) / 0.05 * 1e-7                 # rows a.1.0, a.1.1, bias, GND
    for row, (x0, x1) in enumerate(x):
        v_hidden = [_act(a, v)[0] for v in np.array([x0, x1, 1.0, 0.0]) @ g1 / g1.sum(axis=0)]  # pads: ideal
        # unknowns (V_1, V_2, V_z): V_k = a_k - R_a g_k (V_k - V_z);  KCL at the output column
        kcl = np.array([[1 + r_a * g2[0], 0.0, -r_a * g2[0]], [0.0, 1 + r_a * g2[1], -r_a * g2[1]],
                        [-g2[0], -g2[1], g2.sum()]])
        v_z = np.linalg.solve(kcl, [*v_hidden, g2[2]])[2]
        assert out[0, row, 0].item() == pytest.approx(_act(a, v_z)[0], abs=1e-9)
        assert abs(v_z - (g2[:3] @ [*v_hidden, 1.0]) / g2.sum()) > 0.01


def _layer2_residual(v, hidden, g, a_ports, n_ports, n_etas):
    """KCL of layer 2 below: unknowns (V_a0, V_a1, V_n0, V_z0, V_z1); rows a.1.0, a.1.1, n.2.0, bias, GND."""
    v_p, v_n, v_z = v[:2], v[2], v[3:]
    g_p, g_n, g_b, g_gnd = g[:2].clip(min=0), -g[0].clip(max=0), g[2], g[3]
    neg_in = n_ports["i_in0_a"] + v_p[0] / n_ports["r_in_ohm"]          # a.1.0 has a NEG, a.1.1 none
    i_p = (g_p * (v_p[:, None] - v_z)).sum(axis=1) + np.array([neg_in, 0.0])
    return [*(v_p - hidden + a_ports["r_out_ohm"] * i_p),
            v_n - _neg(n_etas, v_p[0])[0] + n_ports["r_out_ohm"] * (g_n * (v_n - v_z)).sum(),
            *(((g_p * (v_p[:, None] - v_z)).sum(axis=0) + g_n * (v_n - v_z) + g_b * (1 - v_z) - g_gnd * v_z)
              / np.abs(g).sum(axis=0))]                                   # KCL in volts, like the others


def test_a_neg_on_a_loaded_line_converges_to_the_nonlinear_solution():
    """Layer 2's NEG sees its ACT-driven input line loaded by a column and by its own input; its output
    reaches that line back through the other columns, so the network re-solves LOADED_ITERATIONS times."""
    cal = synthetic_calibration(ports=True)
    net = PrintedNetwork((2, 2, 2), cal.act, cal.neg, fixed_circuits=True)
    theta2 = np.array([[-4.0, 3.0], [2.0, 5.0], [0.05, 0.05], [3.0, 2.0]])
    with torch.no_grad():
        net.layers[0].theta.copy_(torch.tensor([[1.0, 2.0], [2.0, 0.5], [0.5, 1.0], [1.0, 1.0]],
                                               dtype=torch.float64))
        net.layers[1].theta.copy_(torch.tensor(theta2))
    a, n = _etas(cal.act, "ACT"), _etas(cal.neg, "NEG")
    a_ports, n_ports = _ports(cal.act, "ACT"), _ports(cal.neg, "NEG")
    g1 = np.array([[1.0, 2.0], [2.0, 0.5], [0.5, 1.0], [1.0, 1.0]]) / 0.5 * 1e-7
    g2 = theta2 / 0.05 * 1e-7
    worst, sag = 0.0, 0.0
    for x in np.random.default_rng(1).uniform(-1, 1, (8, 2)):
        hidden = np.array([_act(a, v)[0] for v in np.array([*x, 1.0, 0.0]) @ g1 / g1.sum(axis=0)])
        start = [*hidden, _neg(n, hidden[0])[0], 0.5, 0.5]
        solution = fsolve(_layer2_residual, start, args=(hidden, g2, a_ports, n_ports, n), xtol=1e-12)
        assert np.max(np.abs(_layer2_residual(solution, hidden, g2, a_ports, n_ports, n))) < 1e-12
        sag = max(sag, abs(solution[0] - hidden[0]))
        out, _ = net(torch.tensor(x[None]))
        expected = [_act(a, v)[0] for v in solution[3:]]
        worst = max(worst, float(np.max(np.abs(out[0, 0].detach().numpy() - expected))))
    assert sag > 0.02                                                   # the NEG input draws real current
    assert worst < 1e-7, worst                                         # 2.6e-9 V measured


def test_without_port_targets_the_forward_is_the_unloaded_one():
    cal = synthetic_calibration()
    net = PrintedNetwork((3, 2, 2), cal.act, cal.neg, seed=4)
    x = np.random.default_rng(3).uniform(-1, 1, (6, 3))
    with torch.no_grad():
        out, power = net(torch.tensor(x))
        layers = [(v.g_s.numpy(), v.negated.numpy(), v.neg_present.numpy(), cal.act.predict(v.act.numpy()),
                   cal.neg.predict(v.neg.numpy())) for v in net.printed()]
    v, total = x, np.zeros(len(x))
    for g, negated, present, a, n in layers:                            # seed 000/001: V_z = sum g V / sum g
        v_src = np.column_stack([v, np.ones(len(v))])
        t_neg = np.tanh((v_src - n["eta3"]) * n["eta4"])
        rows = np.concatenate([np.where(negated[:-1], -(n["eta1"] + n["eta2"] * t_neg)[:, :, None],
                                        v_src[:, :, None]), np.zeros((len(v), 1, g.shape[1]))], axis=1)
        v_z = np.einsum("brc,rc->bc", rows, g) / g.sum(axis=0)
        t_act = np.tanh((v_z - a["eta3"]) * a["eta4"])
        total += np.einsum("brc,rc->b", (rows - v_z[:, None]) ** 2, g)
        total += (a["p1"] + a["p2"] * t_act + a["p3"] * v_z**2).sum(axis=1)
        total += ((n["p1"] + n["p2"] * t_neg + n["p3"] * v_src**2) * present).sum(axis=1)
        v = a["eta1"] + a["eta2"] * t_act
    assert any(layer[1].any() for layer in layers)
    np.testing.assert_allclose(out[0].numpy(), v, rtol=0, atol=1e-12)
    np.testing.assert_allclose(power[0].numpy(), total, rtol=1e-12)


def test_variation_reaches_the_port_values_through_the_components():
    cal = synthetic_calibration(ports=True)
    net = PrintedNetwork((3, 2, 2), cal.act, cal.neg, seed=1)
    layer, x = net.layers[0], torch.rand(1, 4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        drive, _ = layer(Drive(x, None), (cal.act, cal.neg), 200, 0.1, torch.Generator().manual_seed(5))
        values, gen = layer.printed(), torch.Generator().manual_seed(5)
        vary(values.g_s, 200, 0.1, gen)                                           # the layer's draw order
        spread_cells(cal.neg.targets_and_ports(vary(values.neg, 200, 0.1, gen)), cal.neg, 200, 0.1, gen)
        expected = cal.act.ports(vary(values.act, 200, 0.1, gen))[..., 0]
    np.testing.assert_allclose(drive.r_out_ohm[:, 0].numpy(), expected.numpy(), rtol=1e-12)
    spread = drive.r_out_ohm.std(dim=0) / drive.r_out_ohm.mean(dim=0)
    assert torch.all(spread > 0.005) and torch.all(spread < 0.2)


def test_a_steep_act_keeps_its_curve_forward_and_a_gradient_backward():
    """The ACT's switching: the exact tanh forward (eta4 60 /V, contract 1.4's range); far outside its
    20 mV window the true gradient is ~1e-40, the surrogate's is the 5 /V tanh's."""
    from labctl.families.printed.network import SURROGATE_SLOPE_PER_V, _switching

    u = torch.tensor([-0.3, 0.0, 0.3], dtype=torch.float64, requires_grad=True)
    slope = torch.tensor(60.0, dtype=torch.float64)
    out = _switching(u, slope)
    torch.testing.assert_close(out.detach(), torch.tanh(u.detach() * 60.0))
    out.sum().backward()
    soft = SURROGATE_SLOPE_PER_V / torch.cosh(u.detach() * SURROGATE_SLOPE_PER_V) ** 2
    torch.testing.assert_close(u.grad, 60.0 / torch.cosh(u.detach() * 60.0) ** 2 + soft)
    assert u.grad[0] > 0.1
    with torch.no_grad():
        torch.testing.assert_close(_switching(u, slope), torch.tanh(u * 60.0))
