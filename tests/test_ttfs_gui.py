"""The TTFS family's GUI parts, offscreen (conftest.py), on the files of test_ttfs_report.

The characterisation panel is fed a characterise step's outcome and must show
what its file holds (the C median, I_LSB, the report's figures); while the run
writes the file, the live estimate shows the steps read so far. The spike-times
panel is fed an evaluation (a step's outcome, or a record as
``write_records`` writes it) and must show its accuracy, energy per inference
and the winning output's spike times per class. ``TtfsFamily.gui`` is set to
the module here, as the family is to name it.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from test_ttfs_report import characterised, evaluation_record, interrupted, shared  # noqa: E402

from labctl.families.seam import CharacterisationOutcome, OnChipOutcome  # noqa: E402
from labctl.families.ttfs.energy import EnergyReading  # noqa: E402
from labctl.families.ttfs.evaluation import OnChipEvaluation, first_spike_classes, tie_count  # noqa: E402
from labctl.families.ttfs.family import FAMILY, describe_die  # noqa: E402
from labctl.families.ttfs.identify import DieDescription  # noqa: E402
from labctl.families.ttfs.report.evaluations import from_record  # noqa: E402
from labctl.families.ttfs.storage import read_parameters  # noqa: E402
from labctl.gui.family import FamilyGui  # noqa: E402
from labctl.gui.main_window import MainWindow  # noqa: E402
from labctl.recipes import ProgrammedWeights  # noqa: E402


@pytest.fixture
def parts() -> FamilyGui:
    return FamilyGui(FAMILY)


def test_the_window_shows_the_ttfs_stages_in_pipeline_order(qtbot, tmp_path, parts: FamilyGui) -> None:
    window = MainWindow(runs_dir=tmp_path)
    qtbot.addWidget(window)
    window._set_family(parts)  # what connecting to a TTFS bench does
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == [
        "Bench", "Characterisation", "Training", "Evaluation", "Spike times"]
    window.close()


def test_the_characterisation_panel_shows_the_files_fits(panels, tmp_path_factory) -> None:
    path = characterised(shared(tmp_path_factory, "ttfs-die"))
    p = read_parameters(path)
    chip = DieDescription(serial=p.serial, part=p.part, layer_sizes=p.layer_sizes)
    panel = panels["Characterisation"]
    panel.step_done("characterise", CharacterisationOutcome(path, describe_die(chip), (), {}))
    text = panel.header.text()
    caps = np.concatenate([layer.capacitance_f.value for layer in p.layers])
    shown = float(re.search(r"C median ([0-9.]+) fF", text).group(1))
    assert shown == pytest.approx(np.median(caps) * 1e15, rel=1e-4)
    assert "excitatory: I_LSB 1.9460 ± 0.0040 nA" in text and "116.4 s of bench time" in text
    assert list(panel.tabs.figures) == ["Neurons", "Ladders", "DC shape, lambda", "Reversal"]
    assert panel.tabs.count() == 4
    neurons = panel.tabs.figures["Neurons"]
    assert neurons.axes[0].get_ylabel() == "capacitance C (fF)"
    drawn = np.concatenate([c.lines[0].get_ydata() for c in neurons.axes[0].containers])
    assert np.allclose(drawn, caps * 1e15)  # every neuron's C, as the file holds it


def test_the_live_view_shows_the_steps_so_far(panels, parts: FamilyGui, tmp_path_factory) -> None:
    partial = interrupted(shared(tmp_path_factory, "ttfs-interrupted"))
    estimate = parts.live_estimate(partial.with_name("die.h5"), None)  # the worker names the final file
    panel = panels["Characterisation"]
    panel.show_live(estimate)
    assert "<b>Measuring</b> RCS-S-000042: 3 of 7 steps read" in panel.header.text()
    assert list(panel.tabs.figures) == ["DC shape, lambda"]  # nothing fitted yet
    assert parts.live_estimate(partial.with_name("never-written.h5"), None) is None  # the next tick tries again


def test_the_spike_times_panel_shows_a_record(panels) -> None:
    record = evaluation_record(np.random.default_rng(3))
    panel = panels["Spike times"]
    panel.show_record(from_record("tailored", record))
    text = panel.header.text()
    assert f"on-chip accuracy {record['on_chip_accuracy']:.1%} of 45 test patterns (model 95.6%)" in text
    assert "energy per inference 3.21 ± 0.42 pJ" in text and "no output fired on 2.2%" in text
    fig = panel.tabs.figures["Confusion and spike times"]
    hist_axes = [ax for ax in fig.axes if ax.get_xlabel() == "first-spike time (ns)"]
    assert len(hist_axes) == 3 and hist_axes[0].get_title().startswith("true class 0: 15 spikes")


def test_an_evaluate_step_reaches_the_panel_and_the_shell(panels, parts: FamilyGui) -> None:
    record = evaluation_record(np.random.default_rng(4))
    labels, tdc = np.array(record["labels"]), np.array(record["output_tdc"])
    predicted = first_spike_classes(tdc)
    result = OnChipEvaluation(float(np.mean(predicted == labels)), predicted, labels, tdc,
                              np.array(record["confusion"]), tie_count(tdc),
                              EnergyReading(1.2e-3, 1.2e-3, 40e-9, 2.5e-12, 0.3e-12, 62.5e-6, {}))
    outcome = OnChipOutcome(True, (), result.accuracy, 0.9, len(labels), result=(None, result))
    panel = panels["Spike times"]
    panel.step_done("evaluate", ProgrammedWeights("naive", outcome))
    assert f"<b>naive</b>: on-chip accuracy {result.accuracy:.1%} of 45" in panel.header.text()
    assert "energy per inference 2.50 ± 0.30 pJ" in panel.header.text()
    confusion = parts.confusion_matrix(outcome)  # the shell's Evaluation tab: true by predicted class
    assert confusion.shape == (3, 3) and confusion.sum() == len(labels) - 1  # one pattern had no output fire
    panel.step_done("program", ProgrammedWeights("naive", OnChipOutcome(True, (), result=(None, None))))
    assert panel.choice.count() == 1  # programming classified nothing
    panel.clear()
    assert panel.tabs.count() == 0 and panel.records == {}
