"""Fits: line errors are calibrated; path products recover node gains up to a scale per layer."""

import numpy as np

from labctl.calibration.configurations import chain_config, chain_shift_plan
from labctl.calibration.fit import fit_line, fit_path_products, log_mean, normalise_mean_one
from labctl.chip import ChipDescription

CHIP = ChipDescription("T", 1, (1, 0), (7, 7, 7), 3, 12, 1e-10, 1e12, 1000, 1024)


def test_line_fit_standard_error_matches_scatter():
    rng = np.random.default_rng(0)
    x = np.linspace(1, 10, 10)
    slopes, errs = [], []
    for _ in range(400):
        f = fit_line(x, 2.0 * x + 1.0 + rng.normal(0, 0.1, x.size))
        slopes.append(f.slope)
        errs.append(f.slope_std)
    assert abs(np.mean(slopes) - 2.0) < 0.003
    assert 0.85 < np.mean(errs) / np.std(slopes) < 1.15


def test_path_products_recover_gains_on_chain_plan():
    rng = np.random.default_rng(1)
    gains = [rng.lognormal(0, 0.2, n) for n in CHIP.layer_sizes]
    paths, logs = [], []
    for shifts in chain_shift_plan(CHIP, 7):
        for path in chain_config(CHIP, shifts).paths():
            paths.append(path)
            logs.append(sum(np.log(gains[l][n]) for l, n in enumerate(path)) + rng.normal(0, 0.005))
    est = fit_path_products(np.array(paths), np.array(logs), CHIP.layer_sizes)
    for l in range(3):
        got = est.value[7 * l:7 * (l + 1)]
        truth = gains[l] / np.exp(np.log(gains[l]).mean())
        assert np.allclose(got, truth, rtol=0.02), (l, got / truth)


def test_chain_config_feeds_each_neuron_once_and_negatives_differ():
    cfg = chain_config(CHIP, (2, 5), with_negatives=True)
    for m, c in enumerate(cfg.codes):
        assert ((c == 7).sum(axis=0) == 1).all()
        assert ((c == -3).sum(axis=0) == 1).all()
        assert (cfg.sources[m] != cfg.negatives[m]).all()


def test_log_mean_and_normalisation():
    est = log_mean([[1.0, 1.0], [2.0, 2.0], []], 3)
    assert np.isnan(est.value[2])
    norm, scale = normalise_mean_one(est)
    assert np.isclose(np.nanmean(norm.value), 1.0) and np.isclose(scale, 1.5)
