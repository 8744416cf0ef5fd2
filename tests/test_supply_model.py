"""Characterisation fits a supply-current model that predicts states it never saw (issue 14).

Simulated dies (three CMNA-777, one CMNA-L) are characterised in-process
through the real drivers. Afterwards, on the same powered bench, new random
weight configurations and input patterns (other draws, other densities than
the supply run's) are programmed and the supply SMU read: the model's
prediction from the stored characterisation must agree with every reading
within 5 %, and with the dynamic part (the current above the same
configuration's all-zero pattern) well enough that a model knowing only the
quiescent current would fail. The fitted quiescent current is compared with
the simulator's truth (2 uA plus VDD across its 1 MOhm supply network), the
supply run must keep every soma at about half its linear range, take little
bench time, and files written before the supply model existed still load
and resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

import labctl.families.cmna.sim.die as sim_die
from labctl.families.cmna import ratings
from labctl.families.cmna.bench import Bench
from labctl.families.cmna.characterisation import supply_probe
from labctl.families.cmna.characterisation.characterise import characterise, refit
from labctl.families.cmna.die_parameters import DieParameters
from labctl.families.cmna.latch_codes import nibbles_to_signed, signed_to_nibbles
from labctl.families.cmna.sim.bench import SimulatedBench
from labctl.families.cmna.sim.die_pads import QUIESCENT_A
from labctl.families.cmna.storage import load_die_parameters, read_raw
from labctl.families.cmna.training.die_model import soma_currents_a
from labctl.families.cmna.training.power_model import predict_power

SEEDS = (21, 22, 23)
LARGE_SEED = 7
SUPPLY_NETWORK_OHM = 1e6
"""The simulator's supply network across VDD (die_pads.VddPad): part of the quiescent current."""
NEW_STATES = {"CMNA-777": (4, 6, 0.35), "CMNA-L": (2, 6, 0.05)}
"""Per part: new weight configurations, patterns per configuration (the all-zero one included), density."""
NEW_STATE_INPUT_A = 150e-9
"""Largest soma input of the new states, planned on the measured die (inside the linear range)."""
READINGS = 5


@dataclass
class Checked:
    part: str
    seed: int
    params: DieParameters
    summary: dict
    true_quiescent_a: float
    supply_peak_a: float
    """Largest soma input (A) the die computed during the supply run."""
    supply_onset_share: float
    """...relative to that soma's compression onset."""
    supply_bench_s: float
    measured_a: np.ndarray
    """New states: mean supply readings (configurations, patterns)."""
    truth_a: np.ndarray
    """New states: the simulator's own supply current."""
    predicted_a: np.ndarray


class SupplyWatch:
    """Sees every soma input the die computes while the supply run reads, and the bench time it takes."""

    def __init__(self, sim: SimulatedBench) -> None:
        self.sim = sim
        self.active = False
        self.peak_a = self.onset_share = self.bench_s = 0.0
        self._transfer = sim_die.soma_transfer
        self._measure = supply_probe.measure_configuration

    def transfer(self, r_a: np.ndarray, onset_a: np.ndarray) -> np.ndarray:
        if self.active:
            self.peak_a = max(self.peak_a, float(np.max(r_a)))
            self.onset_share = max(self.onset_share, float(np.max(r_a / onset_a)))
        return self._transfer(r_a, onset_a)

    def measure(self, *args) -> None:
        start, self.active = self.sim.clock.now(), True
        try:
            self._measure(*args)
        finally:
            self.active = False
            self.bench_s += self.sim.clock.now() - start


def _new_states(chip, params: DieParameters, seed: int, part: str) -> list[tuple[list[np.ndarray], np.ndarray]]:
    """Random signed codes and patterns the fit never saw, scaled on the measured die to stay linear."""
    configurations, patterns, density = NEW_STATES[part]
    rng = np.random.default_rng(1000 + seed)
    states = []
    for _ in range(configurations):
        codes = [(rng.integers(-7, 8, chip.matrix_shape(m)) * (rng.random(chip.matrix_shape(m)) < density))
                 .astype(np.int8) for m in range(chip.n_matrices)]
        direction = rng.random((patterns - 1, chip.n_inputs)) * (rng.random((patterns - 1, chip.n_inputs)) < 0.6)
        peak = np.max([c.max(axis=1) for c in soma_currents_a(params, codes, 1000 * direction)], axis=0)
        scale = 1000 * rng.uniform(0.3, 1.0, patterns - 1) * NEW_STATE_INPUT_A / peak
        dac = np.clip(np.round(direction * scale[:, None]), 0, chip.max_dac_code).astype(int)
        states.append((codes, np.concatenate([np.zeros((1, chip.n_inputs), int), dac])))
    return states


def _read_new_states(bench: Bench, sim: SimulatedBench, params: DieParameters, part: str, seed: int):
    """(measured, truth, predicted) supply currents of the new states (configurations, patterns)."""
    chip = bench.chip
    measured, truth, predicted = [], [], []
    bench.power_up()
    for codes, patterns in _new_states(chip, params, seed, part):
        held = []
        for m, c in enumerate(codes):
            bench.bridge.write_weights(m, signed_to_nibbles(c))
            held.append(nibbles_to_signed(bench.bridge.read_weights(m)))
        row_m, row_t = [], []
        for dac in patterns:
            bench.bridge.set_inputs(dac.tolist())
            row_m.append(np.mean([bench.read("supply", "current") for _ in range(READINGS)]))
            row_t.append(QUIESCENT_A + sim.die.branch_current_a() + bench.read("supply", "voltage") / SUPPLY_NETWORK_OHM)
        measured.append(row_m)
        truth.append(row_t)
        predicted.append(predict_power(params, held, patterns).supply_w / params.supply.vdd_v)
    bench.bridge.set_inputs([0] * chip.n_inputs)
    return np.array(measured), np.array(truth), np.array(predicted)


def _check(part: str, seed: int, out: Path) -> Checked:
    with SimulatedBench(part, seed=seed) as sim, pytest.MonkeyPatch.context() as mp:
        watch = SupplyWatch(sim)
        mp.setattr(sim_die, "soma_transfer", watch.transfer)
        mp.setattr(supply_probe, "measure_configuration", watch.measure)
        with Bench.from_file(sim.write_bench_file(out.parent / "bench.toml")) as bench:
            result = characterise(bench, out)
            params = load_die_parameters(out)
            vdd = bench.read("supply", "voltage")
            measured, truth, predicted = _read_new_states(bench, sim, params, part, seed)
        return Checked(part, seed, params, result.summary, QUIESCENT_A + vdd / SUPPLY_NETWORK_OHM, watch.peak_a,
                       watch.onset_share, watch.bench_s, measured, truth, predicted)


@pytest.fixture(scope="module", params=[("CMNA-777", s) for s in SEEDS] + [("CMNA-L", LARGE_SEED)],
                ids=[f"777-seed{s}" for s in SEEDS] + [f"L-seed{LARGE_SEED}"])
def checked(request, tmp_path_factory) -> Checked:
    part, seed = request.param
    return _check(part, seed, tmp_path_factory.mktemp(f"{part}-{seed}") / "die.h5")


def test_prediction_agrees_with_every_reading_of_new_states(checked: Checked) -> None:
    rel = checked.predicted_a / checked.measured_a - 1
    print(f"{checked.part} seed {checked.seed}: new states {checked.measured_a.min() * 1e6:.2f} to "
          f"{checked.measured_a.max() * 1e6:.2f} uA, prediction error rms {np.sqrt(np.mean(rel ** 2)):.2%}, "
          f"worst {np.max(np.abs(rel)):.2%}")
    assert np.all(np.abs(rel) < 0.05)
    # the readings are what the die draws (issue 14: within 2 % of the simulator's truth)
    assert np.all(np.abs(checked.measured_a / checked.truth_a - 1) < 0.02)


def test_prediction_follows_the_dynamic_current(checked: Checked) -> None:
    """The current above each configuration's all-zero pattern: a model knowing only the quiescent
    current predicts none of it (the new states draw at least 30 % above it)."""
    measured = checked.measured_a[:, 1:] - checked.measured_a[:, :1]
    predicted = checked.predicted_a[:, 1:] - checked.predicted_a[:, :1]
    rel = predicted / measured - 1
    print(f"{checked.part} seed {checked.seed}: dynamic {measured.min() * 1e6:.2f} to {measured.max() * 1e6:.2f} uA, "
          f"prediction error rms {np.sqrt(np.mean(rel ** 2)):.2%}, worst {np.max(np.abs(rel)):.2%}")
    assert np.max(measured / checked.measured_a[:, :1]) > 0.3
    assert np.sqrt(np.mean(rel ** 2)) < 0.05 and np.all(np.abs(rel) < 0.15)


def test_quiescent_current_is_the_simulators(checked: Checked) -> None:
    supply = checked.params.supply
    rel = supply.quiescent_a / checked.true_quiescent_a - 1
    print(f"{checked.part} seed {checked.seed}: quiescent {supply.quiescent_a * 1e6:.4f} +- "
          f"{supply.std[0] * 1e6:.4f} uA, truth {checked.true_quiescent_a * 1e6:.4f} uA ({rel:+.2%}); "
          f"soma {supply.soma:.3f} drive {supply.drive:.3f} synapse {supply.synapse:.3f}")
    assert abs(rel) < 0.02
    assert all(c >= 0 for c in (supply.soma, supply.drive, supply.synapse))


def test_held_out_residual_is_stored_and_small(checked: Checked) -> None:
    supply = checked.params.supply
    stated = checked.summary["supply"]
    print(f"{checked.part} seed {checked.seed}: held-out rms {supply.held_out_rms:.2%}, max "
          f"{supply.held_out_max:.2%} on {supply.n_held_out} states ({supply.n_fitted} fitted)")
    plan = supply_probe.supply_plan(checked.params.chip)
    assert supply.n_held_out == plan.configurations // 3 * plan.patterns
    assert supply.n_fitted + supply.n_held_out == plan.configurations * plan.patterns
    assert supply.held_out_rms < 0.05 and supply.held_out_max < 0.05
    assert stated["held_out_rms"] == pytest.approx(supply.held_out_rms)
    assert stated["quiescent_a"] == pytest.approx(supply.quiescent_a)
    assert ratings.VDD_IN_RANGE_V[0] < supply.vdd_v < ratings.VDD_IN_RANGE_V[1]


def test_supply_run_is_gentle_and_short(checked: Checked) -> None:
    print(f"{checked.part} seed {checked.seed}: supply run {checked.supply_bench_s:.1f} s of bench time, largest "
          f"soma input {checked.supply_peak_a * 1e9:.0f} nA ({checked.supply_onset_share:.0%} of its onset)")
    assert 0.25 * ratings.LINEAR_RANGE_A < checked.supply_peak_a < 0.6 * ratings.LINEAR_RANGE_A
    assert checked.supply_onset_share < 0.65
    assert checked.supply_bench_s < (6.0 if checked.part == "CMNA-777" else 20.0)


def _stop_after_chains(n: int):
    def progress(stage: str, done: int, total: int) -> None:
        if stage == "chain configurations" and done >= n:
            raise KeyboardInterrupt
    return progress


def test_files_without_the_supply_group_load_and_resume(tmp_path) -> None:
    """An interrupted run of an earlier labctl (no /raw/supply_*) resumes and gets its supply model; a complete
    file of an earlier labctl (neither group) loads and refits with supply None."""
    out = tmp_path / "die.h5"
    with SimulatedBench("CMNA-777", seed=SEEDS[0]) as sim:
        bench_file = sim.write_bench_file(tmp_path / "bench.toml")
        with pytest.raises(KeyboardInterrupt), Bench.from_file(bench_file) as bench:
            characterise(bench, out, progress=_stop_after_chains(2))
        with h5py.File(tmp_path / "die.partial.h5", "r+") as f:
            del f["raw/supply_configurations"], f["raw/supply_readings"]
        with Bench.from_file(bench_file) as bench:
            resumed = characterise(bench, out, resume=True)
    assert resumed.params.supply is not None and resumed.params.supply.held_out_rms < 0.05
    assert read_raw(out).supply is not None
    with h5py.File(out, "r+") as f:
        del f["raw/supply_configurations"], f["raw/supply_readings"], f["calibration/supply"]
    assert read_raw(out).supply is None
    assert load_die_parameters(out).supply is None
    refitted = refit(out)
    assert refitted.params.supply is None and refitted.summary["supply"] is None
    assert load_die_parameters(out).supply is None
