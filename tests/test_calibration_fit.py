"""Fits: line errors are calibrated; path products recover node gains up to a scale per layer."""

import numpy as np

from labctl.families.cmna.characterisation.configurations import chain_config, chain_shift_plan
from labctl.calibration.fit import fit_line, fit_path_products, log_mean, normalise_mean_one
from labctl.families.cmna.chip import ChipDescription

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


LARGE = ChipDescription("T", 1, (1, 0), (40, 20, 10, 4), 3, 12, 1e-10, 1e12, 1000, 1024)


def test_fan_in_chain_feeds_every_column_from_k_rows_and_twins_agree():
    from labctl.families.cmna.characterisation.configurations import chain_config

    plus = chain_config(LARGE, (0, 3, 1), fan_in=(4, 4, 5), neg_fan_in=(2, 2, 3))
    minus = chain_config(LARGE, (0, 3, 1), with_negatives=True, fan_in=(4, 4, 5), neg_fan_in=(2, 2, 3))
    for m, (p, n) in enumerate(zip(plus.codes, minus.codes)):
        assert ((p == 7).sum(axis=0) == (4, 4, 5)[m]).all() and not (p < 0).any()
        assert np.array_equal(n > 0, p > 0)  # the twin has the same positive rows
        assert ((n == -3).sum(axis=0) == (2, 2, 3)[m]).all()
    assert not plus.single_paths


def test_negative_probe_drives_each_probed_row_alone_and_rotates_roles():
    from labctl.families.cmna.characterisation.negative_probe import CALIBRATION_LEVELS, PROBE_FAN_IN, negative_probe

    negative_rows = np.zeros(20, int)
    for round_ in range(3):
        probe = negative_probe(LARGE, 1, seed=2, round_=round_, negatives=4)
        # matrix 0 is a one-to-one chain: every layer-1 neuron has its own channel; matrix 2 is off
        assert ((probe.codes[0] == 7).sum(axis=0) == 1).all() and not probe.codes[2].any()
        assert len(set(probe.row_channels.tolist())) == 20
        c = probe.codes[1]
        assert ((c == 7).sum(axis=0) == PROBE_FAN_IN).all() and ((c == -3).sum(axis=0) == 4).all()
        assert (probe.pattern[:CALIBRATION_LEVELS, probe.row_channels] > 0).all()  # rows read with all on
        negative = np.any(c < 0, axis=1)
        switched = probe.pattern[CALIBRATION_LEVELS:, probe.row_channels[negative]]
        assert ((switched > 0).any(axis=0) & (switched == 0).any(axis=0)).all()  # each one on and off
        negative_rows += negative
    # every row is a negative row in two rounds of three (one, where the positive blocks overlap)
    assert (negative_rows >= 1).all() and (negative_rows >= 2).mean() > 0.9


def test_joint_ratio_fit_recovers_rows_with_honest_errors():
    from labctl.families.cmna.characterisation.chains import RatioEquations, solve_ratios

    rng = np.random.default_rng(3)
    n, z = 30, []
    for _ in range(20):
        truth = rng.lognormal(0, 0.1, n)
        eq = RatioEquations()
        for _ in range(300):  # sums over 1 to 3 rows, with mismatch and reading noise
            rows = rng.choice(n, rng.integers(1, 4), replace=False)
            w = np.zeros(n)
            w[rows] = rng.uniform(0.5, 1.0, len(rows))
            w /= w.sum()
            reading = 0.02
            eq.weights.append(w)
            eq.values.append(float(w @ (truth * rng.lognormal(0, 0.05, n))) * (1 + rng.normal(0, reading)))
            eq.stds.append(reading * eq.values[-1])
        est = solve_ratios(eq, n)
        z.append((est.value - truth) / est.std)
    rms = float(np.sqrt(np.mean(np.concatenate(z) ** 2)))
    assert 0.8 < rms < 1.25, rms


def test_knee_fit_finds_the_onset_of_a_compressive_soma():
    from labctl.families.cmna.characterisation.linear_range import fit_knee

    rng = np.random.default_rng(4)
    x = np.concatenate([np.linspace(20e-9, 200e-9, 9), np.linspace(240e-9, 480e-9, 6)])
    errors, stds = [], []
    for _ in range(60):
        onset = rng.uniform(280e-9, 330e-9)
        excess = np.maximum(x - onset, 0)
        y = 1.2 * (np.minimum(x, onset) + excess / (1 + excess / onset)) * (1 + rng.normal(0, 0.005, x.size))
        value, std = fit_knee(x, y)
        errors.append(value - onset)
        stds.append(std)
    errors, stds = np.array(errors), np.array(stds)
    assert np.sqrt(np.mean(errors ** 2)) < 10e-9
    assert 0.5 < np.sqrt(np.mean((errors / stds) ** 2)) < 2.0
    linear = 1.2 * x * (1 + rng.normal(0, 0.005, x.size))
    assert np.isnan(fit_knee(x, linear)[0])  # no knee in the data: no onset made up


def test_a_deeper_layers_knee_run_feeds_every_soma_from_few_feeders_and_relays():
    from labctl.families.cmna.characterisation.linear_range import KNEE_FEEDERS, KNEE_RELAYS, layer_knee

    knee = layer_knee(ChipDescription("L", 1, (1, 0), (196, 100, 50, 10), 10, 12, 1e-10, 1e12, 1000, 1024), 3)
    into, below, first = knee.codes[2], knee.codes[1], knee.codes[0]
    feeders = np.flatnonzero(into.any(axis=1))
    assert len(feeders) == KNEE_FEEDERS and np.all(into[feeders] == 7)  # every output soma, same feeders
    assert np.all(below[:, feeders].astype(bool).sum(axis=0) == KNEE_RELAYS)  # each feeder: two relays at +7
    assert set(np.flatnonzero(below.any(axis=1))) == set(np.flatnonzero(first.any(axis=0)))
    assert first.astype(bool).sum() == KNEE_RELAYS * KNEE_RELAYS and first.min() >= 0
    assert not layer_knee(CHIP, 1).codes[1].any()  # nothing beyond the probed layer
    assert layer_knee(CHIP, 2).codes[1].astype(bool).sum() == 7 * 7  # a small layer: all of it feeds


def test_deeper_onsets_come_from_the_feeders_readings():
    """Feeders at known outputs, somas with the contract's compressive shape: the onset comes back,
    and a column with a negative connection (a stuck sign bit) gets none."""
    from labctl.families.cmna.characterisation.linear_range import layer_onsets

    rng = np.random.default_rng(7)
    rows, cols = 12, 40
    held = np.zeros((20, cols), np.int8)
    held[:rows] = 7
    held[0, -1] = -7
    feeder = np.outer(np.linspace(0.2, 1.0, 12), rng.uniform(70e-9, 90e-9, rows))  # (levels, rows)
    feeder_mon = np.full((12, 20), np.nan)
    feeder_mon[:, :rows] = feeder * (1 + rng.normal(0, 0.003, feeder.shape))
    x = feeder @ held[:rows].astype(float) / 12
    onset = rng.uniform(280e-9, 330e-9, cols)
    excess = np.maximum(x - onset, 0)
    gain = rng.lognormal(0, 0.1, cols)
    soma_mon = gain * (np.minimum(x, onset) + excess / (1 + excess / onset)) * (1 + rng.normal(0, 0.005, x.shape))
    found = layer_onsets(held, feeder_mon, soma_mon)
    assert np.isnan(found.value[-1])
    ok = np.isfinite(found.value)
    assert ok.sum() >= cols - 4
    z = (found.value[ok] - onset[ok]) / found.std[ok]
    assert np.sqrt(np.mean((found.value[ok] / onset[ok] - 1) ** 2)) < 0.06
    assert 0.3 < np.sqrt(np.mean(z ** 2)) < 2.0


def test_the_mon_bound_of_a_knee_run_is_never_below_a_compressive_response():
    from labctl.families.cmna.characterisation.probing import _next_reading_bound

    codes = np.linspace(100, 1300, 13)
    response = lambda c: np.where(c < 600, c, 600 + (c - 600) / (1 + (c - 600) / 600)) * 0.4e-9
    seen = [(codes[0], float(response(codes[0])))]
    for code in codes[1:]:
        assert _next_reading_bound(seen, code) >= response(code) * (1 - 1e-12)
        seen.append((code, float(response(code))))
