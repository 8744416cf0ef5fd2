"""The printed family's GUI parts (issue 13, "GUI panel ... as for CMNA"), offscreen (conftest.py).

The characterisation panel is fed the outcome of the session's simulated
characterisation (test_printed_report) and must show what its file holds:
one fitted curve per fitted structure, the file's eps, every flagged
structure; while the run writes the file, the live estimate shows the sweeps
so far. The design panel is fed a design's prediction and then the printed
sample's verification, and must show both sets of numbers side by side.
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from test_printed_report import STOP_AFTER, characterised, interrupted, shared  # noqa: E402

from labctl import families  # noqa: E402
from labctl.families.printed.characterisation.transfer_fit import tanh_form  # noqa: E402
from labctl.families.printed.design import Design, Prediction, Provenance  # noqa: E402
from labctl.families.printed.verification import Verification  # noqa: E402
from labctl.families.seam import OnChipOutcome  # noqa: E402
from labctl.gui.family import FamilyGui  # noqa: E402
from labctl.gui.main_window import MainWindow  # noqa: E402
from labctl.recipes import ProgrammedWeights  # noqa: E402


@pytest.fixture(scope="module")
def parts() -> FamilyGui:
    return FamilyGui(families.named("printed"))


def test_the_window_shows_the_printed_stages_in_pipeline_order(qtbot, tmp_path, parts: FamilyGui) -> None:
    window = MainWindow(runs_dir=tmp_path)
    qtbot.addWidget(window)
    window._set_family(parts)  # what connecting to a printed bench does
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == [
        "Bench", "Characterisation", "Training", "Design", "Evaluation"]
    window.close()


def test_the_characterisation_panel_shows_the_files_fits(panels, tmp_path_factory) -> None:
    outcome = characterised(shared(tmp_path_factory, "printed-process"))
    panel = panels["Characterisation"]
    panel.step_done("characterise", outcome)
    with h5py.File(outcome.path) as f:
        fits = {kind: f[f"fits/{kind}"][()] for kind in ("ACT", "NEG")}
        eps, eps_se = f.attrs["eps"], f.attrs["eps_se"]
    for kind, rows in fits.items():
        fitted = rows[np.all(np.isfinite(rows["eta"]), axis=1)]
        curves = panel.fit_curves[kind]
        assert len(curves) == len(fitted) > 10
        x, y = curves[0].getData()
        sign = 1 if kind == "ACT" else -1
        assert np.allclose(y, sign * tanh_form(x, fitted[0]["eta"]))  # the first structure's fit, as stored
    shown = re.search(r"eps ([0-9.]+) ± ([0-9.]+)", panel.header.text()).groups()
    assert float(shown[0]) == pytest.approx(eps, abs=0.051 * eps_se)
    assert float(shown[1]) == pytest.approx(eps_se, abs=0.051 * eps_se)
    flagged = [r["id"].decode() for rows in fits.values() for r in rows if r["flags"]]
    items = [panel.flagged.item(i).text() for i in range(panel.flagged.count())]
    assert [item.split(" ")[0] for item in items] == flagged and f"{len(flagged)} flagged" in panel.header.text()


def test_the_live_view_shows_the_sweeps_so_far(panels, parts: FamilyGui, tmp_path_factory) -> None:
    partial = interrupted(shared(tmp_path_factory, "printed-interrupted"))
    final_name = partial.with_name("process.h5")  # the worker names the file the run will promote
    estimate = parts.live_estimate(final_name, None)
    panel = panels["Characterisation"]
    panel.show_live(estimate)
    assert f"{STOP_AFTER} of 35 structures swept" in panel.header.text()
    assert panel.fit_curves == {"ACT": [], "NEG": []}
    swept = [item for item in panel.plots["ACT"].listDataItems() if len(item.getData()[0])]
    assert len(swept) == STOP_AFTER
    assert parts.live_estimate(partial.with_name("never-written.h5"), None) is None  # the next tick tries again


def design(mean: float, q05: float, q95: float, power_w: float, fixed: bool) -> Design:
    """A design record as training writes it (only what the panel reads is meaningful)."""
    prediction = Prediction(mean, 0.1, q05, q95, 100, 0.1, 0.935, mean, power_w, power_w)
    provenance = Provenance("iris.csv", "label", False, 0, 0.1, False, fixed, 0.0, 3, 0, 1, 0, 100, 0.01, 10, 27.0,
                            "2026-01-01T00:00:00Z", "labctl", "fixed" if fixed else "measured")
    return Design("sim-7", "sim-7/PNC-TS-A/S0", 55e3, 22.0, (4, 3, 3), (), np.zeros(4), np.ones(4),
                  ("f0", "f1", "f2", "f3"), ("a", "b", "c"), prediction, provenance)


def test_the_design_panel_sets_the_printed_sample_beside_the_prediction(panels, parts: FamilyGui) -> None:
    panel = panels["Design"]
    learnable, fixed = design(0.777, 0.581, 0.968, 3.49e-3, False), design(0.811, 0.613, 0.968, 4.07e-3, True)
    panel.step_done("train", (learnable, None))
    panel.step_done("train", (fixed, None))
    text = panel.header.text()
    assert "predicted 77.7% over printed samples (90 %: 58.1% to 96.8%)" in text and "3.49 mW predicted" in text
    assert "fixed circuits" in text and "81.1%" in text and "printed" not in text.replace("printed samples", "")
    confusion = np.array([[9, 1, 0], [0, 10, 0], [1, 0, 10]])
    verification = Verification(Path("weights_tailored.h5"), "sim-7/iris/K0", 29 / 31, 31, 0.777, (0.581, 0.968),
                                0.935, 3.02e-3, 3.49e-3, confusion, np.zeros((31, 3)), None)
    outcome = OnChipOutcome(True, (), 29 / 31, 0.935, 31, verification.as_json(), result=verification)
    panel.step_done("evaluate", ProgrammedWeights("tailored", outcome))
    first = panel.header.text().split("<br>")[0]
    assert first.startswith("1. <b>tailored</b>") and "printed 93.5%</b> (inside the interval)" in first
    assert "3.02 mW measured" in first and len(panel.rows) == 2  # joined its design's row, made no new one
    stars = [item for item in panel.accuracy.listDataItems() if item.opts.get("symbol") == "star"]
    assert len(stars) == 1 and stars[0].getData()[0].tolist() == pytest.approx([100 * 29 / 31])
    assert parts.confusion_matrix(outcome) is confusion  # the shell's Evaluation tab draws it
    panel.clear()
    assert panel.rows == [] and panel.header.text() == "No design yet."
