"""TTFS characterisation (contract 7): each fit on data from the simulator's physics, then one whole run.

The unit tests feed the fits with what the simulated die does (sim.mismatch,
sim.synapses, sim.die, sim.probe) and compare with its hidden truth; the
end-to-end test characterises an RCS-S die over the simulated bench and
checks every fitted parameter against ``bench.die.truth`` with tolerances a
wrong fit fails, and that the standard errors are calibrated.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np
import pytest

from labctl.errors import ConfigError, DataFileError
from labctl.families.ttfs.characterisation.anchor_fit import AnchorLevel, fit_anchor
from labctl.families.ttfs.characterisation.branch import ExcitatoryShape, charge_integral
from labctl.families.ttfs.characterisation.characterise import characterise_die
from labctl.families.ttfs.characterisation.ladder_fit import column_gains, fit_ladder, normalise_gains
from labctl.families.ttfs.characterisation.shape_fit import combine_rows, fit_rail_approach, fit_row_lambda
from labctl.families.ttfs.die_parameters import Measured
from labctl.families.ttfs.sim.die import run_patterns
from labctl.families.ttfs.sim.mismatch import draw_die
from labctl.families.ttfs.sim.parts import PARTS, ROP
from labctl.families.ttfs.sim.probe import mon_trace
from labctl.families.ttfs.sim.synapses import blank_state, branch_factor, write_rows
from labctl.families.ttfs.storage import read_parameters, write_characterisation

SEED = 3


@pytest.fixture(scope="module")
def die():
    return draw_die(PARTS["RCS-S"], SEED)


def _held_current(die, state, m: int, row: int, polarity: int, op=ROP) -> float:
    """What a held row carries through its rail (contract 2.2), from the simulator's state."""
    if polarity > 0:
        a, lam_a = state.a_exc[m][row], state.lam_exc[m][row]
        x = die.v_rest - (op.e_exc + die.e_offsets[0])
    else:
        a, lam_a = state.a_inh[m][row], state.lam_inh[m][row]
        x = (op.e_inh + die.e_offsets[1]) - die.v_rest
    lam = np.where(a > 0, lam_a / np.where(a > 0, a, 1.0), 0.0)
    return float(np.sum(a * branch_factor(x, lam, op.v_k)))


def test_charge_integral_matches_the_membrane_solver(die):
    """C Q / I is the time the simulator's membrane takes from V0 to V_th under one source (1.6)."""
    k = 2
    row = np.zeros((1, 16), int)
    row[0, k] = 10
    state = write_rows(die, blank_state(die), ROP, 0, 4, row, np.random.default_rng(0)).state
    edge = run_patterns(die, state, ROP, np.full((1, 4), 255)).edge_ns[1][0, k]
    n = die.neurons[0]
    current = _held_current(die, state, 0, 4, 1)
    lam = die.matrices[0].lambda_n[4, k]
    q = charge_integral(die.v_rest - n.pedestal[k] + die.kappa, ROP.vth + n.offset[k], lam,
                        ROP.e_exc + die.e_offsets[0], ROP.v_k, die.v_rest)
    predicted = 1e9 * (n.c_fixed[k] + n.c_row[k]) * q / current + n.delay_ns[k] + die.matrices[0].row_delay_ns[4]
    assert predicted == pytest.approx(edge, abs=0.5 + 0.002 * edge)  # the voltage-dependent C_row is the residual


def test_anchor_fit_recovers_c_d_v0_vth(die):
    """Step 4 on the simulator's physics: C to 0.5 %, V0 and V_th to 1 mV, d to 2.5 ns, errors calibrated."""
    rng, write_rng = np.random.default_rng(1), np.random.default_rng(2)
    shape = ExcitatoryShape(die.lambda_n_mean, ROP.e_exc + die.e_offsets[0], ROP.v_k, die.v_rest,
                            lam_se=0.003, lam_site_sd=0.05)
    t_ns = np.arange(-1000.0, 16000.0, 8.0)
    pulls = []
    for k in (0, 5, 9, 13):
        levels = []
        for code, rows in ((6, [4]), (6, range(5)), (10, range(5)), (15, range(5))):
            codes = np.zeros((5, 16), int)
            codes[list(rows), k] = code
            state = write_rows(die, blank_state(die), ROP, 0, 0, codes, write_rng).state
            current = sum(_held_current(die, state, 0, r, 1) for r in rows) * (1 + rng.normal(0, 3e-4))
            pattern = np.full((16, 4), 255)
            pattern[:, [r for r in rows if r < 4]] = 0
            if len(rows) == 1:  # the trace drive: the scope sees the probed membrane 12 ns late (1.10)
                trace = np.mean([mon_trace(die, state, ROP, pattern[0], 1, k, t_ns + 12.0, rng=rng)
                                 for _ in range(4)], axis=0)
                v = (trace - die.mon_offset) / die.mon_gain
                probed = run_patterns(die, state, ROP, pattern, rng=rng, probe=(1, k)).tdc[1][:, k].mean()
                trace_current = current
                continue
            tdc = run_patterns(die, state, ROP, pattern, rng=rng).tdc[1][:, k].astype(float)
            levels.append(AnchorLevel(current, 3e-4 * current, tdc.mean(), tdc.std(ddof=1) / 4, 5 * die.kappa))
        fit = fit_anchor(levels, t_ns * 1e-9, v, probed, trace_current, shape, input_delay_ns=1.0,
                         input_delay_se_ns=0.3, trace_time_se_s=8e-9, sites=5, trace_kick_v=die.kappa)
        n = die.neurons[0]
        truth = (n.c_fixed[k] + n.c_row[k], n.delay_ns[k], die.v_rest - n.pedestal[k], ROP.vth + n.offset[k])
        got = (fit.capacitance_f, fit.delay_ns, fit.start_v, fit.threshold_v)
        ses = (fit.capacitance_se, fit.delay_se, fit.start_se, fit.threshold_se)
        assert got[0] == pytest.approx(truth[0], rel=5e-3)
        assert got[1] == pytest.approx(truth[1], abs=2.5)
        assert got[2] == pytest.approx(truth[2], abs=1e-3)
        assert got[3] == pytest.approx(truth[3], abs=1e-3)
        pulls.append([(g - t) / s for g, t, s in zip(got, truth, ses)])
        assert fit.trace_capacitance_f == pytest.approx(truth[0] + 0.5e-15, rel=5e-3)  # the probe's 0.5 fF
    assert np.mean(np.abs(pulls) < 2.0) >= 0.85


def test_dc_shape_gives_lambda_and_its_site_spread(die):
    """Step 2 on held rows of the simulated die: the die's mean lambda_N within 2 se and 2 %."""
    rng = np.random.default_rng(4)
    state = blank_state(die)
    for m in range(2):
        state = write_rows(die, state, ROP, m, 0, np.full(PARTS["RCS-S"].matrix_shape(m), 15), rng).state
    rows, sites = [], []
    levels = np.array([0.0, 0.15, 0.30, 0.40, 0.55, 0.70])
    for m in range(2):
        for r in range(PARTS["RCS-S"].matrix_shape(m)[0]):
            current = np.array([_held_current(die, state, m, r, 1, dataclasses.replace(ROP, e_exc=e)) for e in levels])
            current *= 1 + rng.normal(0, 1e-3, current.shape)
            rows.append(fit_row_lambda(die.v_rest - (levels + die.e_offsets[0]), current, ROP.v_k))
            sites.append(PARTS["RCS-S"].matrix_shape(m)[1])
    fit = combine_rows(rows, np.array(sites))
    assert fit.mean == pytest.approx(die.lambda_n_mean, rel=0.02)
    assert abs(fit.mean - die.lambda_n_mean) < 2.5 * fit.se
    assert 0.02 < fit.site_sd < 0.09  # the simulator's 5 % per site


def test_rail_approach_gives_the_reversal_potential_and_v_k(die):
    """Step 3: a membrane settling on E+ gives E+ to 0.5 mV and V_K to 2 mV."""
    rng = np.random.default_rng(5)
    state = write_rows(die, blank_state(die), ROP, 0, 4, np.full((1, 16), 15), rng).state
    op = dataclasses.replace(ROP, e_exc=0.6, vth=0.4, window_ns=8000.0)
    t_ns = np.linspace(-1000.0, 8000.0, 2000)
    trace = np.mean([mon_trace(die, state, op, np.full(4, 255), 1, 0, t_ns + 12.0, rng=rng) for _ in range(4)], 0)
    fit = fit_rail_approach(t_ns * 1e-9, (trace - die.mon_offset) / die.mon_gain, die.lambda_n_mean, 8e-6,
                            towards_below=True)
    assert fit.rail_v == pytest.approx(0.6 + die.e_offsets[0], abs=5e-4)
    assert fit.v_k == pytest.approx(op.v_k, abs=2e-3)
    assert abs(fit.v_k - op.v_k) < 3 * fit.v_k_se


def test_ladder_and_column_gains_from_held_rows(die):
    """I_LSB x mean gain within 0.5 %, the bit weights within 3 se, every column gain within 1.5 % (normalised to
    mean 1; the column gains' own spread is 1 %, 1.7) and its error calibrated."""
    rng = np.random.default_rng(6)
    part = PARTS["RCS-S"]
    mags, sums, currents = [], [], []
    state = blank_state(die)
    for c in range(1, 16):
        for m in range(2):
            rows, cols = part.matrix_shape(m)
            state = write_rows(die, state, ROP, m, rows - 1, np.full((1, cols), c), rng).state
            mags.append(c)
            sums.append(cols)
            currents.append(_held_current(die, state, m, rows - 1, 1) * (1 + rng.normal(0, 1e-3)))
    sites = []
    for m in range(2):
        rows, cols = part.matrix_shape(m)
        site_i, site_c, site_k = [], [], []
        for k in range(cols):
            for c in (6, 10, 15):
                codes = np.zeros((rows, cols), int)
                codes[:, k] = c
                state = write_rows(die, state, ROP, m, 0, codes, rng).state
                site_i += [_held_current(die, state, m, r, 1) for r in range(rows)]
                site_c += [c] * rows
                site_k += [k] * rows
        sites.append((np.array(site_i), np.array(site_c), np.array(site_k), cols))
    gain_sums = np.array(sums, float)
    for _ in range(3):  # the gains weight the ladder's rows, the ladder divides the gains (analysis does the same)
        ladder = fit_ladder(np.array(mags), gain_sums, np.array(currents))
        gains, _ = normalise_gains([column_gains(*s, ladder) for s in sites])
        gain_sums = np.array([gains[m].gain.sum() for m in (0, 1) * 15], float)
    truth = [n.gain for n in die.neurons]
    mean_g = np.concatenate(truth).mean()
    error = np.concatenate([fit.gain - true / mean_g for fit, true in zip(gains, truth)])
    se = np.concatenate([fit.se for fit in gains])
    assert np.abs(error).max() < 0.015
    assert np.mean(np.abs(error) < 2 * se) >= 0.75  # 19 columns: 95 % expected, 15 of 19 happens (1 draw in 10)
    true_bits = die.bit_weights[0] * 15 / die.bit_weights[0].sum()  # the record's convention: w(15) = 15
    assert ladder.i_lsb_a == pytest.approx(die.i_lsb[0] * die.bit_weights[0].sum() / 15 * mean_g, rel=5e-3)
    assert np.all(np.abs(ladder.bit_weights - true_bits) < 3 * ladder.bit_se)
    assert ladder.bit_weights == pytest.approx(true_bits, rel=0.02)


def test_storage_round_trip_and_refusals(tmp_path: Path):
    """The record survives the file; partial, other-family and incomplete files are refused in one line."""
    from labctl.families.ttfs.die_parameters import NeuronLayer, Polarity, TtfsDieParameters

    def arr(n, v):
        return Measured(np.full(n, v), np.full(n, v / 100))

    pol = Polarity(Measured(2e-9, 1e-12), Measured(2.0 ** np.arange(4), np.full(4, 0.01)), Measured(0.5, 0.01),
                   0.05, Measured(0.4, 1e-4), 0.4,
                   site_lam_per_v=(Measured(np.full((5, 16), 0.5), np.full((5, 16), 0.02)),
                                   Measured(np.full((17, 3), 0.51), np.full((17, 3), 0.02))))
    layers = tuple(NeuronLayer(arr(n, 1.1e-13), arr(n, 1.295), arr(n, 0.8), arr(n, 6.0), arr(n, 1.0), arr(n, 3e-12))
                   for n in (16, 3))
    params = TtfsDieParameters("RCS-S", "RCS-S-000003", (4, 16, 3), Measured(1.3, 1e-4), 0.8, Measured(0.0257, 1e-3),
                               Measured(5e-5, 1e-5), pol, pol, layers, extras={"mon_chain_gain": Measured(0.99, 1e-4)})
    out = write_characterisation(tmp_path / "die.h5", params, {"raw/dc": np.zeros(3)}, {"bench_seconds": 1.0})
    back = read_parameters(out)
    assert back.serial == params.serial and back.layer_sizes == params.layer_sizes
    assert np.array_equal(back.layers[1].capacitance_f.value, layers[1].capacitance_f.value)
    assert back.excitatory.bit_weights.se == pytest.approx(pol.bit_weights.se)
    assert back.extras["mon_chain_gain"].value == 0.99
    assert back.inhibitory.site_lam_per_v[1].value.shape == (17, 3)
    assert back.inhibitory.site_lam_per_v[1].value[0, 0] == 0.51
    with h5py.File(tmp_path / "cmna.h5", "w") as f:
        f.attrs["family"] = "cmna"
    with pytest.raises(DataFileError, match="cmna file"):
        read_parameters(tmp_path / "cmna.h5")
    with h5py.File(tmp_path / "half.h5", "w") as f:
        f.attrs.update({"family": "ttfs", "complete": False})
    with pytest.raises(DataFileError, match="incomplete"):
        read_parameters(tmp_path / "half.h5")
    (tmp_path / "die.partial.h5").write_bytes(b"")
    with pytest.raises(DataFileError, match="partial"):
        read_parameters(tmp_path / "die.partial.h5")
    with pytest.raises(ConfigError, match="--force"):
        characterise_die(tmp_path / "bench.toml", out)  # refused before any bench is opened


def test_an_interrupted_run_leaves_the_complete_file_alone(tmp_path: Path):
    """A run that stops keeps its readings in the partial file; the complete file is never replaced by it."""
    from labctl.families.ttfs.storage import CharacterisationWriter

    out = tmp_path / "die.h5"
    out.write_bytes(b"the complete file of an earlier run")
    writer = CharacterisationWriter.create(out, {"part": "RCS-S"}, "bench text")
    writer.add({"raw/dc_shape": np.zeros(4)})
    writer.abandon()
    assert out.read_bytes() == b"the complete file of an earlier run"
    with h5py.File(tmp_path / "die.partial.h5", "r") as f:
        assert f.attrs["complete"] == False  # noqa: E712 (an HDF5 attribute, numpy bool)
        assert f["raw/dc_shape"].shape == (4,)
    with pytest.raises(DataFileError, match="partial"):
        read_parameters(tmp_path / "die.partial.h5")
    (tmp_path / "other.partial.h5").write_bytes(b"readings of an interrupted run")
    with pytest.raises(ConfigError, match="interrupted run"):
        characterise_die(tmp_path / "bench.toml", tmp_path / "other.h5")  # refused before any bench is opened


@pytest.fixture(scope="module")
def characterised(tmp_path_factory):
    """One characterisation of an RCS-S die over the simulated bench (about 25 s here, 2 min of bench time)."""
    from labctl.families.ttfs.sim.bench import SimulatedTtfsBench

    folder = tmp_path_factory.mktemp("ttfs_char")
    stages: list[str] = []
    with SimulatedTtfsBench("RCS-S", seed=SEED) as sim:
        bench_file = sim.write_bench_file(folder / "bench.toml")
        result = characterise_die(bench_file, folder / "die.h5",
                                  progress=lambda stage, done, total: stages.append(stage))
        return result, sim.die.truth, sim.bench_seconds, stages


def _calibrated(fit: Measured, truth) -> np.ndarray:
    return np.abs(np.asarray(fit.value) - truth) < 2 * np.asarray(fit.se)


def test_characterisation_fits_every_neuron(characterised):
    """Per neuron, against the hidden truth: C 0.75 %, V0 and V_th 1.5 mV, d 3 ns, g 1 %, leakage 0.3 pA; and at
    least 85 % of the per-neuron values within 2 standard errors (the errors are calibrated)."""
    result, truth, _, _ = characterised
    params = result.params
    mean_g = np.concatenate([n.gain for n in truth.neurons]).mean()
    inside = []
    for layer, n in zip(params.layers, truth.neurons):
        expected = {"capacitance_f": (n.c_fixed + n.c_row, 7.5e-3 * (n.c_fixed + n.c_row)),
                    "start_v": (truth.v_rest - n.pedestal, 1.5e-3),
                    "threshold_v": (params.vth_pad_v + n.offset, 1.5e-3),
                    "delay_ns": (n.delay_ns, 3.0), "column_gain": (n.gain / mean_g, 0.01), "leak_a": (n.leak, 0.3e-12)}
        for name, (true, tolerance) in expected.items():
            fit = getattr(layer, name)
            assert np.all(np.abs(np.asarray(fit.value) - true) < tolerance), name
            inside.append(_calibrated(fit, true))
    assert np.mean(np.concatenate(inside)) >= 0.85


def test_characterisation_fits_the_die_and_ladders(characterised):
    """Per polarity and die: I_LSB x mean gain 0.5 %, bit weights 2 %, lambda 2 %, rails 1 mV, V_K 3 mV, V_REST 1 mV,
    kappa 30 %; each within 3 standard errors."""
    result, truth, _, _ = characterised
    p = result.params
    mean_g = np.concatenate([n.gain for n in truth.neurons]).mean()
    for pol, polarity in ((0, p.excitatory), (1, p.inhibitory)):
        bits = truth.bit_weights[pol]
        checks = ((polarity.i_lsb_a, truth.i_lsb[pol] * bits.sum() / 15 * mean_g, 5e-3 * truth.i_lsb[pol]),
                  (polarity.bit_weights, bits * 15 / bits.sum(), 0.02 * bits),
                  (polarity.lam_per_v, (truth.lambda_n_mean, truth.lambda_p_mean)[pol], 0.02),
                  (polarity.reversal_v, polarity.pad_v + truth.e_offsets[pol], 1e-3))
        for fit, true, tolerance in checks:
            assert np.all(np.abs(np.asarray(fit.value) - true) < tolerance)
            assert np.all(np.abs(np.asarray(fit.value) - true) < 3 * np.asarray(fit.se))
    assert p.excitatory.lam_site_sd == pytest.approx(0.05, abs=0.025)
    for fit, true, tolerance in ((p.v_k_v, ROP.v_k, 3e-3), (p.v_rest_v, truth.v_rest, 1e-3),
                                 (p.kappa_v, truth.kappa, 0.3 * truth.kappa + 5e-6)):
        assert abs(fit.value - true) < tolerance
        assert abs(fit.value - true) < 3 * fit.se
    assert p.extras["probe_load_f"].value == pytest.approx(0.5e-15, rel=0.05)  # the simulator's mux load (1.10)
    assert p.extras["mon_chain_gain"].value == pytest.approx(truth.mon_gain, rel=0.02)
    assert p.write_residual_half_width == pytest.approx(0.025, rel=0.2)


def test_characterisation_file_time_and_progress(characterised):
    """The file reads back as written, RCS-S takes under 5 minutes of bench time, every step reports progress."""
    result, truth, bench_seconds, stages = characterised
    back = read_parameters(result.path)
    assert back.serial == result.params.serial
    assert np.array_equal(back.layers[0].capacitance_f.value, result.params.layers[0].capacitance_f.value)
    assert bench_seconds < 300.0
    assert result.summary["off_ladder_sites"] == 0  # this die has no stuck cell: no good site is left out
    with h5py.File(result.path, "r") as f:
        assert f.attrs["family"] == "ttfs" and f.attrs["complete"]
        assert f["fits/site_current_a/matrix_0"].shape == (5, 16)
        assert len(f["raw/dc_shape"]) == (6 + 5) * 22  # six E+ and five E- levels, every row of both matrices
        site = f["fits/site_current_a/matrix_1"][()]
    # step 5: every site at +10 carries about 10 I_LSB g (1 +- 2.5 %) of the die
    assert np.all(np.abs(site / (10 * result.params.excitatory.i_lsb_a.value) - 1) < 0.08)
    assert not result.path.with_name("die.partial.h5").exists()
    assert {"MON chain", "leakage", "anchors", "sites", "fit"} <= set(stages)


def test_a_site_off_the_ladder_is_left_out_of_its_column_gain():
    """A cell that did not take its code (held at 4 of 10 steps) among sites spread by the write residual
    (1.7, +-2.5 %): the column's gain is that of its good sites, and only the stuck site is left out."""
    rng = np.random.default_rng(1)
    columns = np.repeat(np.arange(4), 12)
    gains = np.array([0.97, 1.0, 1.02, 1.01])
    magnitudes = np.full(len(columns), 10)
    ladder = fit_ladder(np.arange(1, 16), np.full(15, 1.0), np.arange(1, 16) * 2e-9)
    current = ladder.current(magnitudes) * gains[columns] * (1 + rng.uniform(-0.025, 0.025, len(columns)))
    current[5] *= 0.4
    fit = column_gains(current, magnitudes, columns, 4, ladder)
    assert np.flatnonzero(fit.off_ladder).tolist() == [5]
    assert np.all(np.abs(fit.gain - gains) < 0.012)
