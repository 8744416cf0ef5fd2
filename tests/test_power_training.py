"""Power-aware training (issue 14): weights that draw less network power, under the same input encoding.

A simulated CMNA-777 die is characterised in-process through the real
drivers; Iris weights are trained power-blind and then with a power weight
and with a budget. The power-aware weights must keep the power-blind input
encoding (the savings come from the weights, not from a smaller input
scale), predict clearly less network power, and record their goal and
predicted powers in the weights file, where stuck-bit retraining finds the
goal again. On chip, a budget is honoured: the measured network power comes
within 10 % of the budget or below it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labctl.errors import ConfigError
from labctl.families.cmna.bench import Bench
from labctl.families.cmna.characterisation.characterise import characterise
from labctl.families.cmna.sim.bench import SimulatedBench
from labctl.families.cmna.storage import load_die_parameters, load_weights
from labctl.families.cmna.training.power_aware import power_term_of, predicted_power
from labctl.families.cmna.training.power_model import predict_power
from labctl.families.cmna.workflow import program_and_evaluate, run_training
from labctl.train.datasets import load_dataset

LABCTL = [sys.executable, "-m", "labctl"]


@pytest.fixture(scope="module")
def die(tmp_path_factory):
    """A characterised CMNA-777 die (its bench still served for on-chip checks)."""
    folder = tmp_path_factory.mktemp("power-die")
    with SimulatedBench("CMNA-777", seed=6) as sim:
        bench_file = sim.write_bench_file(folder / "bench.toml")
        with Bench.from_file(bench_file) as bench:
            characterise(bench, folder / "die.h5")
        yield sim, bench_file, folder / "die.h5", folder


@pytest.fixture(scope="module")
def trained(die):
    """Power-blind and power-aware (alpha 0.9) Iris weights for the die."""
    _, _, calibration, folder = die
    blind, _ = run_training(calibration, "iris", folder / "blind.h5")
    aware, _ = run_training(calibration, "iris", folder / "aware.h5", power_weight=0.9)
    return load_weights(folder / "blind.h5"), load_weights(folder / "aware.h5")


def test_power_aware_weights_keep_the_encoding_and_draw_less(trained, die) -> None:
    blind, aware = trained
    for name in ("input_scale", "input_offset", "constant_codes", "input_channels"):
        assert np.array_equal(getattr(blind.encoding, name), getattr(aware.encoding, name)), name
    assert aware.predicted_network_power_w < 0.8 * blind.predicted_network_power_w
    assert aware.predicted_supply_power_w < blind.predicted_supply_power_w
    assert aware.software_accuracy >= blind.software_accuracy - 0.034  # at most one of 30 test samples
    # the recorded prediction is the model's mean over the training split
    params = load_die_parameters(die[2])
    dataset = load_dataset("iris", seed=0)
    again = predicted_power(params, aware, dataset.X_train)
    assert again.network_w == pytest.approx(aware.predicted_network_power_w, rel=1e-9)


def test_power_aware_weights_do_not_buy_network_power_with_idle_draw(trained, die) -> None:
    """The network power subtracts the idle draw (every input at code 0), which leakage amplified by the
    weights can raise: the trained quantity counts it in, so the power-aware weights' idle draw does not
    grow, and what training minimises bounds the network power from above."""
    params = load_die_parameters(die[2])
    dataset = load_dataset("iris", seed=0)
    blind, aware = (predict_power(params, w.codes, w.encoding.encode(dataset.X_train)) for w in trained)
    assert aware.idle_w <= blind.idle_w * 1.001
    for p in (blind, aware):
        assert np.all(p.controlled_w >= p.network_w)


def test_the_goal_is_recorded_and_retraining_keeps_it(trained, die) -> None:
    blind, aware = trained
    assert blind.provenance.power_weight is None and blind.provenance.power_budget_w is None
    assert aware.provenance.power_weight == 0.9 and aware.provenance.power_budget_w is None
    params = load_die_parameters(die[2])
    dataset = load_dataset("iris", seed=0)
    assert aware.provenance.power_reference_w == pytest.approx(
        predicted_power(params, blind, dataset.X_train).controlled_w, rel=1e-9)
    term = power_term_of(params, aware, dataset)
    assert term is not None and term.weight == 0.9 and term.encoding is aware.encoding
    assert power_term_of(params, blind, dataset) is None


def test_a_budget_is_met_in_the_model_and_an_unreachable_one_is_refused(trained, die) -> None:
    blind, _ = trained
    _, _, calibration, folder = die
    budget = 0.7 * blind.predicted_network_power_w
    run_training(calibration, "iris", folder / "budget.h5", power_budget_w=budget)
    held = load_weights(folder / "budget.h5")
    assert held.predicted_network_power_w <= budget
    assert held.provenance.power_budget_w == budget
    with pytest.raises(ConfigError, match="no weights within the power budget"):
        run_training(calibration, "iris", folder / "never.h5", power_budget_w=0.01 * budget, epochs=5)
    assert not (folder / "never.h5").exists()


def test_a_budget_is_honoured_on_chip(die) -> None:
    """Programmed with stuck-bit retraining and an in-situ round (which keep the goal), the die's measured
    network power is within 10 % of the budget or below it."""
    _, bench_file, calibration, folder = die
    held = load_weights(folder / "budget.h5") if (folder / "budget.h5").exists() else None
    if held is None:
        blind = load_weights(folder / "blind.h5")
        run_training(calibration, "iris", folder / "budget.h5", power_budget_w=0.7 * blind.predicted_network_power_w)
        held = load_weights(folder / "budget.h5")
    budget = held.provenance.power_budget_w
    result = program_and_evaluate(bench_file, folder / "budget.h5", evaluate=True, calibration=calibration,
                                  programmed_out=folder / "budget-programmed.h5")
    measured = result.power.as_json()
    assert measured["network_power_w"] <= 1.1 * budget, (measured["network_power_w"], budget)
    assert result.weights.provenance.power_budget_w == budget  # retraining kept the goal ...
    assert np.array_equal(result.weights.encoding.input_scale, held.encoding.input_scale)  # ... and the encoding
    assert result.evaluation.on_chip_accuracy >= 0.9


@pytest.mark.parametrize("args, words", [
    (["--power-weight", "0.5", "--power-budget", "1e-6"], "not both"),
    (["--power-weight", "0.5", "--naive"], "not with --naive"),
    (["--power-weight", "1.5"], "--power-weight: Input should be less than or equal to 1"),
])
def test_contradictory_power_options_are_refused_in_one_line(die, args, words) -> None:
    _, _, calibration, folder = die
    result = subprocess.run([*LABCTL, "train", "--calibration", str(calibration), "--dataset", "iris",
                             "--out", str(folder / "refused.h5"), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr
    assert not (folder / "refused.h5").exists()
