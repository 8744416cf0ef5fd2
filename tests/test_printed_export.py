"""Export of a printed design (contract 3; issue 13): job round trip, geometries, refusal, SPICE agreement."""

from __future__ import annotations

import csv
import dataclasses
import shutil

import numpy as np
import pytest
import torch

from labctl.errors import ConfigError
from labctl.families.printed.design_network import network_from_design
from labctl.families.printed.export import export_design
from labctl.families.printed.geometry import draw_resistor
from labctl.families.printed.print_job import read_job
from labctl.families.printed.printable import crossbar_g_range_s
from labctl.families.printed.spice import run_ngspice
from labctl.families.printed.training import TrainingSettings, train_design
from test_printed_model import synthetic_calibration
from test_printed_training import blobs


@pytest.fixture(scope="module")
def trained():
    cal = synthetic_calibration(process="sim-7")
    x, y = blobs(90, seed=2)
    design = train_design(cal, (x, y), restarts=1, settings=TrainingSettings(epochs=60, eval_every=10))
    return cal, design, x


@pytest.mark.parametrize("r_ohm, layer, r_s", [(1e6, "RH", 52_000.0), (6.2e3, "RH", 50_000.0), (7.9e6, "RH", 40_000.0),
                                               (200.0, "RL", 24.5), (5.2, "RL", 25.0)])
def test_geometry_is_narrowest_on_grid_and_within_half_a_percent(r_ohm, layer, r_s):
    geo = draw_resistor(r_ohm, layer, r_s)
    assert geo.r_ohm == pytest.approx(r_s * geo.l_um / geo.w_um, rel=1e-8)
    assert abs(geo.r_ohm / r_ohm - 1) <= 0.005 and 50 <= geo.w_um <= 2000 and 50 <= geo.l_um <= 10000
    assert 0.1 <= geo.l_um / geo.w_um <= 200
    narrower = geo.w_um - 1
    if narrower >= 50:   # one um narrower cannot reach the value within the rules
        exact = r_ohm * narrower / r_s
        assert not any(50 <= l <= 10000 and 0.1 <= l / narrower <= 200 and abs(r_s * l / narrower / r_ohm - 1) <= 0.005
                       for l in (int(np.floor(exact)), int(np.ceil(exact))))


def test_geometry_keeps_the_crossbar_bound_and_the_run_narrows_it():
    geo = draw_resistor(1e7, "RH", 52_000.0, bounds=(1e4, 1e7))
    assert geo.r_ohm <= 1e7
    with pytest.raises(ConfigError, match="cannot be drawn on RH"):      # 250 squares: beyond aspect 200
        draw_resistor(1e7, "RH", 40_000.0)
    g_lo, g_hi = crossbar_g_range_s(40_000.0)                          # so a run at -20 % prints >= 1/(200 R_s)
    draw_resistor(1 / g_lo, "RH", 40_000.0, bounds=(1e4, 1e7))
    draw_resistor(1 / g_hi, "RH", 40_000.0, bounds=(1e4, 1e7))
    assert crossbar_g_range_s(None) == (1e-7, 1e-4)
    with pytest.raises(ConfigError, match="cannot be drawn on RL"):
        draw_resistor(1.0, "RL", 25.0)


def test_export_round_trips_through_read_job(tmp_path, trained):
    cal, design, _ = trained
    paths = export_design(design, tmp_path / "out", id_code=87)
    job = read_job(paths["job"], process="sim-7")
    assert job.id_code == 87 and job.layers == design.layers and job.rh_ohm_sq == cal.rh_ohm_sq
    printed = sum(int((layer.g_s > 0).sum()) for layer in design.layer_values)
    assert len(job.resistors) == printed
    negs = sum(int(layer.neg_present.sum()) for layer in design.layer_values)
    assert sum(c.type == "NEG" for c in job.cells) == negs and sum(c.type == "ACT" for c in job.cells) == 6
    for r in job.resistors:                     # each drawn within 0.5 % of its designed 1/g, on the right line
        layer, tag, col = r.id[1:].split(".")
        values = design.layer_values[int(layer) - 1]
        n_in = values.theta.shape[0] - 2
        row = {"b": n_in, "nb": n_in, "g": n_in + 1}.get(tag) or int(tag[1:])
        assert abs(r.geometry.r_ohm * values.g_s[row, int(col)] - 1) <= 0.005
        assert bool(values.negated[row, int(col)]) == tag.startswith("n")
    first = design.layer_values[0]
    act = next(c for c in job.cells if c.id == "ACT.1.0").component_values()
    np.testing.assert_allclose([act[k] for k in ("R1", "R2")], first.act_components[0, :2], rtol=0.005)
    pads = {p.pad: (p.net, p.role) for p in job.pads}
    assert pads["D01"] == ("x.0", "input") and pads["D23"] == ("bias", "bias") and pads["S01"] == ("a.2.0", "output")
    assert pads["S04"] == ("a.1.0", "probe")
    with open(paths["components"]) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(job.resistors) + sum(len(c.resistors) + len(c.egts) for c in job.cells)


def test_a_component_outside_the_printable_range_is_refused_before_anything_is_written(tmp_path, trained):
    _, design, _ = trained
    layer = design.layer_values[0]
    act = layer.act_components.copy()
    act[1, 0] = 3.0e6                                                   # R1 above 2.05 Mohm
    bad = dataclasses.replace(design, layer_values=(dataclasses.replace(layer, act_components=act),
                                                    *design.layer_values[1:]))
    out = tmp_path / "bad"
    with pytest.raises(ConfigError) as info:
        export_design(bad, out)
    message = str(info.value)
    assert message.startswith(f"{out / 'job.toml'}: cell ACT.1.1: R1 3.0")
    assert message.endswith("ohm is outside the printable range 250000 to 2.05e+06 ohm (rule J5)")
    assert not out.exists()


@pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice is not installed")
def test_ngspice_operating_points_match_the_model_within_a_millivolt(tmp_path, trained):
    cal, design, x = trained
    rows = x[:8]
    paths = export_design(design, tmp_path / "spice", rows=rows)
    spice = run_ngspice(paths["spice"], design.layers[-1])
    with torch.no_grad():
        model, _ = network_from_design(design, cal)(torch.as_tensor(rows))
    assert spice.shape == (8, 3)
    assert np.max(np.abs(spice - model[0].numpy())) < 1e-3
