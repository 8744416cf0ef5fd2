"""Session record and offline replay (issue 7): record on simulated die A, replay against its twin.

Die A has a latch bit stuck at 1 (the sign bit of an unused synapse), so the
record, the twin and the replay all have a stuck bit to carry.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import h5py
import numpy as np
import pytest

from labctl.drivers.bridge_protocol import Status
from labctl.families.cmna.link import Bridge
from labctl.families.cmna.programming import StuckBit
from labctl.families.cmna.protocol import Opcode, parse_identify
from labctl.families.cmna.storage import load_die_parameters, load_weights, read_raw
from labctl.recipes import parse_recipe, run_recipe
from labctl.families.cmna.replay import chip_of, compare_readings
from labctl.replay import replay_session, step_windows
from labctl.session import SessionRecorder, load_session
from labctl.families.cmna.sim.bench import SimulatedBench
from labctl.families.cmna.sim.truth import DieTruth
from labctl.families.cmna.sim.twin import stuck_bits_seen, twin_bench, twin_truth
from quick_recipes import iris_recipe

SEED = 4
STUCK = (0, 6, 2, 3, 1)
"""Matrix 0, row 6 (unused by Iris), column 2, sign bit stuck at 1."""
RECIPE = iris_recipe('Iris, recorded', epochs=None, then=(
    '[[steps]]\n'
    'kind = "evaluate"\n'
    'weights = "tailored"\n'
    'gate_ms = 100\n'
))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A session recorded on die A; the recorder is kept to compare counts."""
    run = tmp_path_factory.mktemp("session") / "run"
    truth = DieTruth.draw((7, 7, 7), SEED).with_stuck_bits([STUCK])
    recorder = SessionRecorder()
    with SimulatedBench("CMNA-777", SEED, truth=truth) as sim:
        bench = sim.write_bench_file(run.parent / "bench.toml")
        result = run_recipe(parse_recipe(RECIPE), bench, run, recorder=recorder)
    return run, recorder, result, truth


def test_session_holds_identity_transactions_readings_and_copies(recorded):
    run, recorder, result, _ = recorded
    session = load_session(run)
    assert session.outcome == "completed" and session.recipe_text == RECIPE
    assert chip_of(session).serial == "CMNA-777-00000%d" % SEED and session.family == "cmna"
    assert set(session.instruments) == {"smu_a", "smu_b"} and "2450" in session.instruments["smu_a"]
    assert "[roles]" in session.bench_text
    tx = session.transactions
    assert len(tx) == recorder.n_transactions > 500
    assert np.all(np.diff(tx["time_s"]) >= -0.01)  # in order, on the readings' clock
    assert session.readings["time_s"].min() >= tx["time_s"].min()
    first_identify = int(np.flatnonzero(tx["op"] == Opcode.IDENTIFY)[0])
    assert parse_identify(session.response(first_identify)) == chip_of(session)
    batches = np.flatnonzero((tx["op"] == Opcode.RUN_BATCH) & (tx["status"] == Status.OK))
    # one in-situ round classifies the 120 training samples, then the evaluation the 30 test samples
    assert sum(int.from_bytes(session.request(i)[2:4], "little") for i in batches) == 120 + 30
    assert all(len(session.response(i)) == 4 * 7 * int.from_bytes(session.request(i)[2:4], "little")
               for i in batches)
    roles = {(r.decode(), q.decode()) for r, q in zip(session.readings["role"], session.readings["quantity"])}
    assert ("monitor", "current") in roles and ("supply", "voltage") in roles
    assert [s.kind for s in session.steps] == ["characterise", "train", "evaluate"]
    assert all(s.outcome == "done" for s in session.steps)
    assert session.steps[1].params == {"kind": "train", "name": "tailored", "dataset": "iris", "naive": False,
                                          "method": "auto", "seed": 0, "power_weight": 0.0}

    with h5py.File(run / "session.h5") as f, h5py.File(run / "die.h5") as die:
        np.testing.assert_array_equal(f["characterisation/raw/mon"][()], die["raw/mon"][()])
        np.testing.assert_array_equal(f["characterisation/calibration/layer_1/a_plus"][()],
                                      die["calibration/layer_1/a_plus"][()])
        assert f["characterisation"].attrs["parameters"] == die.attrs["parameters"]
        np.testing.assert_array_equal(f["weights/tailored/weights/matrix_0/codes"][()],
                                      load_weights(run / "weights_tailored.h5").codes[0])
    evaluation = session.results["evaluation_tailored"]
    assert evaluation["on_chip_accuracy"] == result.on_chip["tailored"].result.evaluation.on_chip_accuracy
    assert [list(b.values())[:4] + [b["held"]] for b in evaluation["stuck_bits"]] == [list(STUCK)]


def test_twin_is_built_from_the_measurement(recorded):
    run, _, _, truth = recorded
    assert stuck_bits_seen(run / "die.h5") == [StuckBit(*STUCK)]  # the characterisation's read-backs showed it
    twin = twin_truth(run / "die.h5", seed=SEED)
    assert twin.stuck_bits == [STUCK]
    for layer in range(3):
        ratio = twin.seen_a_plus(layer) / truth.seen_a_plus(layer)
        # absolute gains carry the die-wide MON gain (2 %, contract section 4); relative ones are measured
        assert ratio.mean() == pytest.approx(1.0, abs=0.05)
        assert np.std(ratio / ratio.mean()) < 0.02
    params = load_die_parameters(run / "die.h5")
    np.testing.assert_allclose(twin.bias_gain, params.bias_gain)
    np.testing.assert_allclose(twin.c2f_gain_hz_per_a, params.c2f_gain_hz_per_a)
    for layer, onset in zip(params.layers, twin.compression_onset_a):  # measured where found, else nominal
        found = np.isfinite(layer.compression_onset_a)
        assert found.sum() >= len(onset) // 2
        np.testing.assert_array_equal(onset[found], layer.compression_onset_a[found])
        assert np.all(onset[~found] == 300e-9)
    with twin_bench(run / "die.h5") as sim:
        assert sim.die.chip.serial == "CMNA-777-00000%d" % SEED
        assert sim.die.truth.temp_alpha_per_c == 0.0


def test_twin_of_a_die_with_any_serial_answers_with_that_serial(recorded, tmp_path):
    run, _, _, _ = recorded
    die = tmp_path / "die.h5"
    shutil.copy(run / "die.h5", die)
    with h5py.File(die, "r+") as f:
        f["die"].attrs["serial"] = "W12-D07"
    with twin_bench(die) as sim, Bridge(sim.bridge_server.url) as bridge:
        assert bridge.identify().serial == "W12-D07"


def test_replay_reproduces_weights_and_accuracy(recorded):
    run, _, result, _ = recorded
    report = replay_session(run)
    assert report.serial == "CMNA-777-00000%d" % SEED
    assert [(w.name, w.same_codes, w.differing_codes) for w in report.weights] == [("tailored", True, 0)]
    (accuracy,) = report.accuracy
    recorded_accuracy = result.on_chip["tailored"].result.evaluation.on_chip_accuracy
    assert accuracy.recorded == recorded_accuracy
    assert abs(accuracy.twin - accuracy.recorded) * accuracy.n_samples <= 2  # within 2 of 30 samples
    assert accuracy.agreement >= 0.7  # near-ties follow single synapses, which no twin knows
    assert accuracy.recorded_stuck == accuracy.twin_stuck == 1
    groups = {c.quantity: c for c in report.readings}
    assert {"MON current, layer 0, EXT_IN sweep", "MON current, layer 1, chains", "C2F counts, chains",
            "RUN_BATCH counts, tailored"} <= set(groups)
    assert groups["RUN_BATCH counts, tailored"].n == (120 + 30) * 7  # the in-situ round, then the test split
    for c in report.readings:  # the twin agrees with its own die within the stated uncertainty
        assert c.rms_sigma < 2.5, c


def test_replay_shows_where_the_chip_left_its_twin(recorded):
    """A neuron whose gain changed after characterisation stands out in the table."""
    run, _, _, _ = recorded
    session = load_session(run)
    params = load_die_parameters(run / "die.h5")
    layers = list(params.layers)
    changed = layers[1].a_plus.copy()
    changed[3] *= 1.25
    layers[1] = dataclasses.replace(layers[1], a_plus=changed)
    twin = dataclasses.replace(params, layers=layers)
    rows = {c.quantity: c for c in compare_readings(session, twin, read_raw(run / "die.h5"), step_windows(session),
                                                    parse_recipe(session.recipe_text))}
    chains = rows["MON current, layer 1, chains"]
    assert chains.worst_at == "L1 n3" and chains.worst_sigma < -5  # the chip reads less than the twin expects
    assert rows["MON current, layer 0, EXT_IN sweep"].rms_sigma < 2.5


def test_session_of_a_stopped_run_is_written(tmp_path):
    import threading

    from labctl.recipes import Stopped

    stop = threading.Event()
    recorder = SessionRecorder()
    with SimulatedBench("CMNA-777", 5) as sim:
        bench = sim.write_bench_file(tmp_path / "bench.toml")
        with pytest.raises(Stopped):
            run_recipe(parse_recipe(RECIPE), bench, tmp_path / "run", recorder=recorder, stop_event=stop,
                       progress=lambda stage, done, total: stop.set())
    session = load_session(tmp_path / "run")
    assert session.outcome == "stopped"
    assert [s.outcome for s in session.steps] == ["stopped"]
    assert len(session.transactions) == recorder.n_transactions > 0
    with h5py.File(tmp_path / "run" / "session.h5") as f:
        assert len(f["characterisation/raw/mon"]) > 0
        assert json.loads(f["characterisation"].attrs["parameters"])["method"] == "both"
