"""Learnable cells stay where the calibration measured (measured_region, cell_design, cell_region).

A map fitted on a cluster of structures must not be trusted far from them:
the region is the cluster's log box (components and NEG's R1/R2, R3/R4) and
the neighbourhood of its structures; it round-trips with the map, an older
map without one reads as unconstrained, and training keeps every learnable
cell inside it.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from labctl.families.printed.cell_design import CellBank, act_components, neg_components
from labctl.families.printed.design import Design
from labctl.families.printed.measured_region import MARGIN_LOG, TRUST_RADIUS, MeasuredRegion, log_range
from labctl.families.printed.printable import (CELL_COMPONENTS, COMPONENT_RANGES, REFERENCE_DESIGNS,
                                               neg_constraints_hold)
from labctl.families.printed.process_calibration import ProcessCalibration
from labctl.families.printed.process_map import TARGETS, CellMap, fit_cell_map
from labctl.families.printed.training import TrainingSettings, train_design
from test_printed_model import SE, truth
from test_printed_training import blobs


def clustered(kind: str, n: int, seed: int) -> tuple[dict, dict, dict]:
    """n printable structures within 0.15 (in the maps' z) of the reference design per component (NEG:
    R3/R4 about 2, far below the printable 8 or more), measured on the synthetic truth."""
    rng = np.random.default_rng(seed)
    ref = np.array([REFERENCE_DESIGNS[kind][c] for c in CELL_COMPONENTS[kind]])
    _, half = log_range(kind)
    rows = []
    while len(rows) < n:
        design = dict(zip(CELL_COMPONENTS[kind], ref * np.exp(rng.uniform(-0.15, 0.15, len(ref)) * half)))
        in_range = all(COMPONENT_RANGES[kind][c].low <= v <= COMPONENT_RANGES[kind][c].high
                       for c, v in design.items())
        if in_range and (kind == "ACT" or neg_constraints_hold(design) is None):
            rows.append(design)
    comps = {c: np.array([r[c] for r in rows]) for c in CELL_COMPONENTS[kind]}
    true = truth(kind, comps)
    se = {t: (SE[t] * np.abs(true[t]) if t in ("eta4", "p1") else np.full(n, SE[t])) for t in TARGETS}
    return comps, {t: true[t] + rng.normal(0, 1, n) * se[t] for t in TARGETS}, se


def bounded_calibration() -> ProcessCalibration:
    act, neg = fit_cell_map("ACT", *clustered("ACT", 14, 0)), fit_cell_map("NEG", *clustered("NEG", 13, 1))
    return ProcessCalibration(process="sim-test", sample="sim-test/PNC-TS-A/S0", eps=0.05, eps_se=0.005,
                              rh_ohm_sq=52_000.0, rl_ohm_sq=24.5, act=act, neg=neg)


def test_the_region_is_the_fitted_structures_box_and_neighbourhood():
    comps, _, _ = clustered("NEG", 13, 1)
    region = fit_cell_map("NEG", *clustered("NEG", 13, 1)).region
    ratio = np.log(comps["R3"] / comps["R4"])
    np.testing.assert_allclose(region.log_bounds("R3/R4"), (ratio.min() - MARGIN_LOG, ratio.max() + MARGIN_LOG))
    assert region.log_bounds("R5")[1] == pytest.approx(np.log(comps["R5"]).max() + MARGIN_LOG)
    matrix = np.column_stack([comps[c] for c in CELL_COMPONENTS["NEG"]])
    assert region.contains(matrix).all()
    far = matrix[:1] * np.array([1, 1, 4, 0.5, 0.3, 1, 1])          # R3/R4 x 8, R5 / 3: a flagged corner
    assert not region.contains(far).any()
    corners = np.array([[300e3, 7e3, 81, 41, 481, 31], [2e6, 30e3, 99, 79, 501, 39]])
    spread = MeasuredRegion.of_structures("ACT", corners)
    between = np.sqrt(corners[0] * corners[1])                  # inside their box, far from both
    _, half = log_range("ACT")
    assert np.linalg.norm(np.log(corners[1] / between) / half) > TRUST_RADIUS["ACT"]
    assert spread.contains(corners).all() and not spread.contains(between).any()


def test_any_parameter_value_keeps_cells_in_the_box_and_the_contract():
    cal = bounded_calibration()
    u = torch.randn(3000, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 6
    act, neg = act_components(u[:, :6], cal.act.region).numpy(), neg_components(u, cal.neg.region).numpy()
    for region, comps in ((cal.act.region, act), (cal.neg.region, neg)):
        feats = np.column_stack([np.log(comps), *([np.log(comps[:, 0] / comps[:, 1]),
                                                  np.log(comps[:, 2] / comps[:, 3])] if comps.shape[1] == 7 else [])])
        assert np.all((feats >= region.low - 1e-9) & (feats <= region.high + 1e-9))
    assert all(neg_constraints_hold(dict(zip(CELL_COMPONENTS["NEG"], row))) is None for row in neg)


def test_keep_measured_brings_every_cell_back_into_the_region():
    cal = bounded_calibration()
    for kind, cell_map in (("ACT", cal.act), ("NEG", cal.neg)):
        bank = CellBank(kind, 200, fixed=False, generator=torch.Generator().manual_seed(3), region=cell_map.region)
        with torch.no_grad():
            bank.u.mul_(0).add_(torch.randn(bank.u.shape, generator=torch.Generator().manual_seed(4),
                                            dtype=torch.float64) * 4)
        assert not cell_map.region.contains(bank.components().detach().numpy()).all()
        bank.keep_measured()
        comps = bank.components().detach().numpy()
        assert cell_map.region.contains(comps).all()
        if kind == "NEG":
            assert all(neg_constraints_hold(dict(zip(CELL_COMPONENTS["NEG"], row))) is None for row in comps)


def test_a_region_the_contract_forbids_yields_to_the_contract():
    region = MeasuredRegion("NEG", MeasuredRegion.feature_names("NEG"),
                            np.log([10, 5, 1e4, 8e3, 1e4, 200, 10, 1.0, 1.0]),
                            np.log([20, 10, 2e4, 1.6e4, 2e4, 300, 20, 1.01, 1.01]),   # R1/R2 ~ R3/R4 ~ 1
                            np.zeros((1, 7)))
    u = torch.randn(500, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 6
    for row in neg_components(u, region).numpy():
        assert neg_constraints_hold(dict(zip(CELL_COMPONENTS["NEG"], row))) is None


def test_the_region_round_trips_and_an_older_map_reads_unconstrained(tmp_path):
    cell_map = fit_cell_map("NEG", *clustered("NEG", 13, 1))
    with h5py.File(tmp_path / "maps.h5", "w") as fh:
        cell_map.write(fh.create_group("new"))
        cell_map.write(fh.create_group("old"))
        for name in ("region_low", "region_high", "region_points"):
            del fh["old"][name]
        del fh["old"].attrs["region_features"]
        new, old = CellMap.read(fh["new"]), CellMap.read(fh["old"])
    np.testing.assert_array_equal(new.region.low, cell_map.region.low)
    np.testing.assert_array_equal(new.region.high, cell_map.region.high)
    np.testing.assert_array_equal(new.region.points, cell_map.region.points)
    assert new.region.features == MeasuredRegion.feature_names("NEG") and old.region is None


def test_trained_cells_stay_inside_the_measured_region_and_the_record_says_so(tmp_path):
    cal = bounded_calibration()
    x, y = blobs(90, seed=1)
    design = train_design(cal, (x, y), restarts=1, seed=2,
                          settings=TrainingSettings(epochs=60, eval_every=10, train_samples=4, test_samples=20))
    for layer in design.layer_values:
        assert cal.act.region.contains(layer.act_components).all()
        assert cal.neg.region.contains(layer.neg_components).all()
    assert design.provenance.cell_bounds == "measured"
    design.write(tmp_path / "design.h5")
    with h5py.File(tmp_path / "design.h5", "a") as fh:
        del fh["provenance"].attrs["cell_bounds"]                # a design made before the record
    assert Design.read(tmp_path / "design.h5").provenance.cell_bounds == ""
    fixed = train_design(cal, (x, y), restarts=1, fixed_circuits=True,
                         settings=TrainingSettings(epochs=20, eval_every=10, train_samples=4, test_samples=20))
    assert fixed.provenance.cell_bounds == "fixed"
