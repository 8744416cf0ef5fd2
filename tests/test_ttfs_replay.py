"""TTFS session replay: record a short Iris run on simulated RCS-S die A, replay it against die A's twin.

The twin is built from the run's characterisation only (never from the seed),
so what it reproduces is what the measurement captured.
"""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from labctl.families.ttfs.sim.bench import SimulatedTtfsBench
from labctl.families.ttfs.sim.parts import ROP
from labctl.families.ttfs.sim.synapses import blank_state, read_codes, write_rows
from labctl.families.ttfs.sim.twin import twin_bench, twin_die
from labctl.families.ttfs.storage import read_parameters
from labctl.recipes import parse_recipe, run_recipe
from labctl.replay import replay_session
from labctl.session import SessionRecorder, load_session

SEED = 3
RECIPE = '''
name = "Iris on RCS-S, recorded"
part = "RCS-S"

[[steps]]
kind = "characterise"

[[steps]]
kind = "train"
name = "circuit"
dataset = "iris"
method = "exact"
epochs = 20

[[steps]]
kind = "evaluate"
weights = "circuit"
power_patterns = 8
'''
"""Characterise, train with exact gradients for a few epochs, classify the 45 test samples (energy on 8 of them,
so the step's APPLY_PATTERNS answers hold more than the test split)."""


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    run = tmp_path_factory.mktemp("ttfs-session") / "run"
    with SimulatedTtfsBench("RCS-S", SEED) as sim:
        bench = sim.write_bench_file(run.parent / "bench.toml")
        result = run_recipe(parse_recipe(RECIPE), bench, run, recorder=SessionRecorder())
    assert result.outcome == "completed"
    return run


def test_twin_is_built_from_the_measurement(recorded):
    params = read_parameters(recorded / "die.h5")
    twin = twin_die(params)
    for measured, neurons in zip(params.layers, twin.neurons):
        np.testing.assert_allclose(neurons.c_fixed + neurons.c_row, measured.capacitance_f.value)
        np.testing.assert_allclose(ROP.vth + neurons.offset, measured.threshold_v.value)
        np.testing.assert_allclose(twin.v_rest - neurons.pedestal, measured.start_v.value)
        np.testing.assert_array_equal(neurons.delay_ns, measured.delay_ns.value)
        np.testing.assert_array_equal(neurons.gain, measured.column_gain.value)
    assert twin.i_lsb == (params.excitatory.i_lsb_a.value, params.inhibitory.i_lsb_a.value)
    np.testing.assert_array_equal(twin.bit_weights[1], params.inhibitory.bit_weights.value)
    assert twin.lambda_n_mean == params.excitatory.lam_per_v.value
    assert np.all(twin.matrices[0].lambda_p == params.inhibitory.lam_per_v.value)  # not measured per site
    assert twin.e_offsets[0] == params.excitatory.reversal_v.value - params.excitatory.pad_v
    with twin_bench(recorded / "die.h5") as sim:
        assert sim.die.truth.tdc_inl_ns == 0.0  # nominal: an ideal TDC
        assert sim.die.chip.serial == sim.bridge_server.chip.serial == "RCS-S-%06d" % SEED


def test_twin_holds_the_stuck_cells_it_is_given(recorded):
    twin = twin_die(read_parameters(recorded / "die.h5"), stuck_cells=[(1, 4, 2, 3)])
    codes = np.zeros((1, 3), np.int8)
    codes[0, 2] = -9
    written = write_rows(twin, blank_state(twin), ROP, 1, 4, codes, np.random.default_rng(0)).state
    assert read_codes(twin, written, 1)[4].tolist() == [0, 0, -3]


def test_replay_reproduces_codes_classes_and_spike_times(recorded):
    report = replay_session(recorded)
    assert report.serial == "RCS-S-%06d" % SEED
    assert [(w.name, w.same_codes, w.total_codes) for w in report.weights] == [("circuit", True, 5 * 16 + 17 * 3 + 2)]
    (accuracy,) = report.accuracy
    evaluation = load_session(recorded).results["evaluation_circuit"]
    assert accuracy.recorded == evaluation["on_chip_accuracy"] and accuracy.n_samples == 45
    assert abs(accuracy.twin - accuracy.recorded) * accuracy.n_samples <= 2
    assert accuracy.agreement >= 0.93  # near-ties may follow a single write residual, which no twin knows
    assert accuracy.recorded_stuck == accuracy.twin_stuck == 0  # stuck cells, for TTFS
    rows = {c.quantity: c for c in report.readings}
    codes = rows["synapse codes read back, circuit"]
    assert codes.n == 5 * 16 + 17 * 3 and codes.rms_sigma == 0.0  # every cell holds what the chip's held
    times = rows["first-spike times, circuit"]
    assert times.n >= 100 and times.rms_relative < 0.02
    assert times.rms_sigma < 2.0, times  # the twin agrees with its die within the stated uncertainty


def test_replay_shows_where_the_chip_left_its_twin(recorded, tmp_path):
    """An output whose threshold moved after characterisation stands out in the spike-time table."""
    session = tmp_path / "session.h5"
    shutil.copy(recorded / "session.h5", session)
    with h5py.File(session, "r+") as f:
        threshold = f["characterisation/parameters/layer_2/threshold_v"]
        threshold[1] = threshold[1] + 0.03  # the twin's output 1 crosses 30 mV higher than the chip's does
    rows = {c.quantity: c for c in replay_session(session).readings}
    times = rows["first-spike times, circuit"]
    assert times.worst_at.endswith("out 1") and times.worst_sigma > 6  # the chip fired later than its twin
    assert times.rms_sigma > 3
