"""Printed training (issue 13): design record, CSV splits, power-aware training, valid-only choices.

Small synthetic slices made here (no /work/shared/data), a synthetic calibration (test_printed_model)
with the cells' port targets, so training runs the loaded model (contract 1.3).
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from pydantic import ValidationError

from labctl.errors import ConfigError, DataFileError
from labctl.families.printed.dataset import load_csv, load_task
from labctl.families.printed.design import Design
from labctl.families.printed.options import TrainOptions
from labctl.families.printed.training import TrainingSettings, train_design
from test_printed_model import synthetic_calibration

FAST = TrainingSettings(epochs=300, eval_every=10, patience=300, train_samples=10, test_samples=100, processes=1)
"""In this process: the monkeypatched tests need it (test_candidates_on_two_processes_train_the_same_design
checks the pool)."""


def blobs(n: int = 150, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes in 4 features (in [0, 1]), overlapping a little."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    centres = np.array([[0.2, 0.8, 0.3, 0.5], [0.8, 0.2, 0.5, 0.3], [0.5, 0.5, 0.9, 0.8]])
    return np.clip(centres[labels] + rng.normal(0, 0.15, (n, 4)), 0, 1), labels


@pytest.fixture(scope="module")
def blind_and_aware():
    cal = synthetic_calibration(ports=True)
    x, y = blobs()
    # Overlapping classes, so printed variation costs accuracy and the prediction is a spread (seeds 0,
    # 1, 2, 6 all train: software 93 to 100 %, predicted 93 to 97 % with sd 2 to 4 points).
    blind = train_design(cal, (x, y), restarts=1, seed=6, settings=FAST)
    aware = train_design(cal, (x, y), restarts=1, seed=6, power_weight=0.7, settings=FAST)
    return blind, aware


def test_a_variation_aware_design_predicts_a_distribution(blind_and_aware):
    blind, _ = blind_and_aware
    p = blind.prediction
    assert p.software_accuracy > 0.9 and p.test_mean > 0.85
    assert p.test_q05 <= p.test_mean <= p.test_q95 and p.test_sd > 0 and p.n_samples == 100 and p.eps == 0.10
    assert 1e-4 < p.power_w < 0.1                 # cells dominate: about a mW each (contract 1.8)
    assert blind.provenance.split_generated and blind.split is not None
    assert blind.layers == (4, 3, 3) and blind.process == "sim-test"


def test_power_aware_training_lowers_predicted_power_with_small_accuracy_loss(blind_and_aware):
    blind, aware = blind_and_aware
    assert aware.prediction.power_blind_power_w == pytest.approx(blind.prediction.power_w, rel=0.05)
    # cells kept within the measured region save less than free ones. At alpha 0.7: 1.42x in an earlier
    # environment; 1.22x for seed 6 with numpy 2.4.6 / scipy 1.17.1 (1.18 to 1.31 over seeds 0, 1, 2, 6): the
    # same code, another environment: the bound leaves room for the spread over seeds, not only seed 6's value
    assert blind.prediction.power_w / aware.prediction.power_w >= 1.15
    assert aware.prediction.test_mean >= blind.prediction.test_mean - 0.1
    neg_blind = sum(int(layer.neg_present.sum()) for layer in blind.layer_values)
    neg_aware = sum(int(layer.neg_present.sum()) for layer in aware.layer_values)
    assert neg_aware < neg_blind                   # fewer NEG cells is where the power goes (seed 001)


def test_design_round_trips_through_hdf5_atomically(tmp_path, blind_and_aware):
    design, _ = blind_and_aware
    path = tmp_path / "design.h5"
    design.write(path)
    assert [p.name for p in tmp_path.iterdir()] == ["design.h5"]          # no temp file left
    back = Design.read(path)
    assert back.prediction == design.prediction and back.provenance == design.provenance
    for a, b in zip(back.layer_values, design.layer_values):
        np.testing.assert_array_equal(a.theta, b.theta)
        np.testing.assert_array_equal(a.neg_present, b.neg_present)
        np.testing.assert_array_equal(a.act_components, b.act_components)
        np.testing.assert_array_equal(a.neg_ports, b.neg_ports)
        assert np.all(b.act_ports[:, 0] > 1e3) and np.all(np.isinf(b.act_ports[:, 1]))   # r_out; a gate input
    np.testing.assert_array_equal(back.split, design.split)
    with h5py.File(path) as fh:
        assert (fh.attrs["family"], fh.attrs["kind"], fh.attrs["process"]) == ("printed", "design", "sim-test")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as fh:
        fh.attrs["family"] = "printed"
        fh.attrs["kind"] = "characterisation"
    with pytest.raises(DataFileError, match="not a printed design"):
        Design.read(other)


def test_fixed_circuits_keep_the_reference_cells():
    cal = synthetic_calibration()
    x, y = blobs(90, seed=1)
    design = train_design(cal, (x, y), restarts=1, fixed_circuits=True, nominal=True,
                          settings=TrainingSettings(epochs=40, eval_every=10))
    act = design.layer_values[0].act_components
    np.testing.assert_allclose(act, np.tile([1.0e6, 15e3, 90, 60, 490, 35], (3, 1)))
    assert design.provenance.train_eps == 0.0 and design.prediction.eps == 0.10   # predicted at the run's eps


@pytest.mark.parametrize("reference_wins", [True, False])
def test_learnable_training_also_tries_the_reference_cells_and_valid_chooses(monkeypatch, reference_wins):
    """tictactoe on sim-7 (eps 5 %): learnable cells settled at 71 % on valid, the reference cells reached 85 %.
    Every restart and loss is also trained with the cells held at the references; the better on valid wins,
    whichever it is (here the valid scores are dictated, to pin the choice and not the optimiser)."""
    from labctl.families.printed import training

    tried = []

    def scored_fit(network, parts, settings, *, eps, seed, task_loss="hinge", **_):
        held = network.layers[0].act.fixed
        tried.append((seed, task_loss, held))
        return training._Fit(network.state_dict(), 0.1 if held == reference_wins else 0.2, 10, task_loss)

    monkeypatch.setattr(training, "_fit", scored_fit)
    x, y = blobs(90, seed=1)
    design = train_design(synthetic_calibration(), (x, y), restarts=2, seed=0, settings=FAST)
    assert sorted(tried) == [(0, "hinge", False), (0, "hinge", True), (1, "hinge", False), (1, "hinge", True)]
    assert design.provenance.cell_bounds == ("fixed" if reference_wins else "measured")
    assert design.provenance.fixed_circuits is False
    tried.clear()
    train_design(synthetic_calibration(), (x, y), restarts=2, seed=0, fixed_circuits=True, settings=FAST)
    assert sorted(tried) == [(0, "hinge", True), (1, "hinge", True)]     # fixed: nothing else to try


def test_candidates_on_two_processes_train_the_same_design():
    """The candidate runs go to a process pool (every core); each seeds its own generators, so the design
    does not depend on how many processes trained it, and every run's epochs still reach ``on_epoch``."""
    from dataclasses import replace

    x, y = blobs(90, seed=1)
    short = replace(FAST, epochs=30, patience=30)
    designs, epochs = [], []
    for processes in (1, 2):
        seen = []
        designs.append(train_design(synthetic_calibration(), (x, y), restarts=2, seed=0,
                                    settings=replace(short, processes=processes),
                                    on_epoch=lambda epoch, total, loss, acc: seen.append(epoch)))
        epochs.append(sorted(seen))
    one, two = designs
    assert epochs[0] == epochs[1] == sorted([10, 20, 30] * 4)        # 2 restarts x (learnt, reference cells)
    assert two.provenance.chosen_restart == one.provenance.chosen_restart
    assert two.provenance.cell_bounds == one.provenance.cell_bounds
    assert_same_design(one, two)


def assert_same_design(one: Design, two: Design) -> None:
    """Bit for bit: the printed values and the predicted accuracy."""
    for a, b in zip(one.layer_values, two.layer_values):
        np.testing.assert_array_equal(a.theta, b.theta)
        np.testing.assert_array_equal(a.act_components, b.act_components)
    assert two.prediction.test_mean == one.prediction.test_mean


def test_csv_split_column_is_kept_and_a_missing_one_is_generated_stratified(tmp_path):
    x, y = blobs(100)
    split = np.array(["train"] * 60 + ["valid"] * 20 + ["test"] * 20)
    lines = ["f0,f1,f2,f3,cls,split"] + [",".join([*(f"{v:.4f}" for v in row), str(c), s])
                                         for row, c, s in zip(x, y, split)]
    with_split = tmp_path / "a.csv"
    with_split.write_text("\n".join(lines) + "\n")
    data = load_csv(with_split, label_column="cls")
    assert list(data.split) == list(split) and not data.split_generated and data.feature_names == ("f0", "f1", "f2",
                                                                                                   "f3")
    without = tmp_path / "b.csv"
    without.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    data = load_csv(without, label_column="cls", seed=4)
    assert data.split_generated
    for cls in range(3):
        counts = {s: int(np.sum((data.labels == cls) & (data.split == s))) for s in ("train", "valid", "test")}
        assert abs(counts["train"] - 0.6 * sum(counts.values())) <= 1 and counts["valid"] >= 6
    assert list(load_csv(without, label_column="cls", seed=4).split) == list(data.split)
    with pytest.raises(ConfigError, match="no column 'label'"):
        load_csv(without)


def test_a_built_in_set_is_taken_by_name_and_split_by_seed():
    """``--dataset iris`` works for a printed design as for CMNA (scikit-learn's copy, nothing downloaded);
    a set with too many inputs for one crossbar or an unknown name is refused in one line."""
    data = load_task("iris", seed=3)
    assert data.features.shape == (150, 4) and data.class_names == ("setosa", "versicolor", "virginica")
    assert data.split_generated and data.source == "iris" and data.feature_names[0] == "sepal length (cm)"
    assert {s: int(np.sum(data.split == s)) for s in ("train", "valid", "test")} == {"train": 90, "valid": 30,
                                                                                      "test": 30}
    assert list(load_task("iris", seed=3).split) == list(data.split) != list(load_task("iris", seed=4).split)
    assert TrainOptions(dataset="wine").dataset == "wine"
    for bad in ("digits", "iris.txt"):
        with pytest.raises(ValidationError, match="a .csv file or one of iris, wine"):
            TrainOptions(dataset=bad)
        with pytest.raises(ConfigError, match=f"not '{bad}'"):
            load_task(bad)


def test_the_shipped_printed_recipe_trains_aware_against_the_papers_baseline():
    from labctl.families.printed.family import FAMILY
    from labctl.recipes import load_recipe

    recipe = load_recipe(FAMILY.shipped_recipes["PNC-TS"])
    assert recipe.family is FAMILY and recipe.recipe.part == "PNC-TS"
    assert [s.kind for s in recipe.steps] == ["characterise", "train", "train"]
    trained = {name: (s.options.nominal, s.options.fixed_circuits, s.options.dataset)
               for name, s in recipe.train_steps().items()}
    assert trained == {"aware": (False, False, "iris"), "baseline": (True, True, "iris")}


def test_more_inputs_than_a_sample_takes_are_refused_before_training():
    """Rule J8 (22 inputs on a PF-144 sample) would refuse the design only at export, after training."""
    cal = synthetic_calibration()
    x = np.random.default_rng(0).random((60, 30))
    with pytest.raises(ConfigError, match="30 features, but a printed sample takes at most 22 inputs"):
        train_design(cal, (x, np.arange(60) % 3))


def test_more_than_three_classes_try_cross_entropy_and_keep_the_loss_better_on_valid(blind_and_aware):
    """Six classes: the authors' hinge, which pushes only the largest wrong output, reached 50 % here (measured;
    chance 17 %) and softmax cross-entropy 88 %: training tries both and keeps the better on valid. Three
    classes train with the hinge alone."""
    rng = np.random.default_rng(0)
    labels = np.arange(360) % 6
    x = np.clip(rng.uniform(0.1, 0.9, (6, 4))[labels] + rng.normal(0, 0.08, (360, 4)), 0, 1)
    design = train_design(synthetic_calibration(ports=True), (x, labels), restarts=1, seed=0, nominal=True,
                          settings=FAST)
    assert design.provenance.task_loss == "softmax" and design.prediction.software_accuracy >= 0.8
    assert blind_and_aware[0].provenance.task_loss == "hinge"


def test_a_run_paused_at_the_rung_ends_where_an_uninterrupted_one_does():
    """Successive halving pauses every candidate at ``rung_epochs`` and resumes the best: the resumed run
    must be the run that never stopped (same weights, Adam state, batches and sampled circuits), else
    halving would change which design wins, not only how long the losers train."""
    from dataclasses import replace

    from labctl.families.printed import training
    from labctl.families.printed.dataset import from_arrays
    from labctl.families.printed.network import PrintedNetwork

    cal = synthetic_calibration(ports=True)
    parts = training._parts(from_arrays(*blobs(90, seed=1), seed=0))
    settings = replace(FAST, epochs=40, patience=40)

    def network():
        return PrintedNetwork((4, 3, 3), cal.act, cal.neg, seed=3, rh_ohm_sq=cal.rh_ohm_sq)

    whole = network()
    straight = training._fit(whole, parts, settings, eps=cal.eps, seed=5)
    halves = network()
    paused = training._fit(halves, parts, settings, eps=cal.eps, seed=5, stop_epoch=20)
    assert paused.paused is not None and paused.paused.epoch == 20 and paused.epochs <= 20
    resumed = training._fit(network(), parts, settings, eps=cal.eps, seed=5, resume=paused)
    assert resumed.paused is None and resumed.epochs == straight.epochs and resumed.score == straight.score
    for name, value in straight.state.items():
        assert torch.equal(value, resumed.state[name]), name


def test_successive_halving_trains_only_the_best_third_past_the_rung():
    """Six candidates (3 restarts x learnt / reference cells): all six report up to the rung, two after it."""
    from dataclasses import replace

    seen = []
    settings = replace(FAST, epochs=50, patience=50, rung_epochs=20)
    train_design(synthetic_calibration(), blobs(90, seed=1), restarts=3, seed=0, settings=settings,
                 on_epoch=lambda epoch, total, loss, acc: seen.append(epoch))
    assert sorted(seen) == sorted([10, 20] * 6 + [30, 40, 50] * 2)


def test_a_power_sweep_gives_the_designs_of_separate_trainings(blind_and_aware):
    """``train_designs`` trains the power-blind design once for every alpha (a Pareto sweep); each design is
    the one ``train_design`` gives for its alpha alone."""
    from labctl.families.printed.training import train_designs

    swept = train_designs(synthetic_calibration(ports=True), blobs(), restarts=1, seed=6, power_weights=(0.0, 0.7),
                          settings=FAST)
    for alone, design in zip(blind_and_aware, swept):
        assert design.provenance.power_weight == alone.provenance.power_weight
        assert design.provenance.epochs == alone.provenance.epochs
        assert_same_design(alone, design)


def test_halving_keeps_the_best_runs_of_each_task_loss(monkeypatch):
    """Cross-entropy starts slower than the hinge: at the rung it is behind on valid even where it wins in
    the end (pendigits). Halving therefore keeps the best third of each loss's runs, not of all runs."""
    from dataclasses import replace

    from labctl.families.printed import training

    resumed = []

    def scored_fit(network, parts, settings, *, eps, seed, task_loss="hinge", resume=None, stop_epoch=None, **_):
        if resume is not None:
            resumed.append(task_loss)
            return replace(resume, paused=None)
        behind = 0.3 if task_loss == "softmax" else 0.0
        paused = training._Paused({}, {}, torch.zeros(1), stop_epoch)
        return training._Fit(network.state_dict(), 0.5 + behind + 1e-3 * (seed % 1000), stop_epoch, task_loss,
                             paused=paused)

    monkeypatch.setattr(training, "_fit", scored_fit)
    labels = np.arange(120) % 6
    x = np.random.default_rng(0).random((120, 4))
    train_design(synthetic_calibration(), (x, labels), restarts=3, seed=0, settings=FAST)
    assert sorted(resumed) == ["hinge", "hinge", "softmax", "softmax"]      # 12 runs: 2 losses x 3 x 2 cells


def test_power_aware_training_also_starts_every_act_cell_at_the_lowest_power_structure():
    """The measured region keeps a learnable cell near the structure it starts at, so power-aware training
    also starts from the blind design's crossbars and NEG cells with every ACT cell at the measured structure
    that draws least (learnable even where the blind design held the references, whose NEGs then move into
    the measured region): with the learnt NEGs kept, that start draws less."""
    from labctl.families.printed import training
    from labctl.families.printed.cell_region import cell_bounds
    from labctl.families.printed.dataset import from_arrays

    cal = synthetic_calibration(ports=True)
    parts = training._parts(from_arrays(*blobs(90, seed=1), seed=0))
    structures = cal.act.region.structures()
    lowest = cal.act.lowest_power_structure()
    assert cal.act.predict(lowest[None])["p1"][0] == pytest.approx(cal.act.predict(structures)["p1"].min())

    def power(network):
        return training.evaluate(network, parts["train"], n_samples=0, eps=0.0, seed=0)[1]

    for held in (False, True):
        blind = training._Run(cal, parts, (4, 3, 3), training._Candidate(0, "hinge", held), cal.eps, 0, FAST)
        state = blind.network().state_dict()
        first, low = training._aware_starts(blind, state, fixed_circuits=False)
        assert first.start is state and not low.candidate.held
        blind_network, low_network = first.network(), low.network()
        for blind_layer, low_layer in zip(blind_network.layers, low_network.layers):
            assert torch.equal(low_layer.theta, blind_layer.theta)
            np.testing.assert_allclose(low_layer.act.components().detach().numpy(),
                                       np.tile(lowest, (low_layer.act.n, 1)), rtol=1e-9)
            if not held:  # held NEG references are moved into the measured region, so only learnt ones stay
                np.testing.assert_allclose(low_layer.neg.components().detach().numpy(),
                                           blind_layer.neg.components().detach().numpy(), rtol=1e-9)
        assert cell_bounds(low_network) == "measured"
        if not held:
            assert power(low_network) < 0.97 * power(blind_network)
    assert len(training._aware_starts(blind, state, fixed_circuits=True)) == 1
