"""The TTFS model (labctl.families.ttfs.model) against the simulated die's physics, given the die's true parameters.

Contract 1.6: given the true parameters, first-spike times follow the model
within +-(0.5 % + 3 ns) apart from noise and the TDC. The simulator runs with
noise off and a write without residual, so the comparison is of physics only.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import labctl.families.ttfs.sim.synapses as sim_synapses
from labctl.families.ttfs.model import (build_circuit, layer_exact, layer_grid, network, predict_spike_times,
                                         site_currents_na)
from labctl.families.ttfs.sim.die import run_patterns
from labctl.families.ttfs.sim.mismatch import draw_die
from labctl.families.ttfs.sim.parts import PARTS, ROP
from labctl.families.ttfs.sim.synapses import blank_state, write_rows
from labctl.families.ttfs.sim.truth import parameters_of

SEED = 7


@pytest.fixture(scope="module")
def die():
    return draw_die(PARTS["RCS-S"], SEED)


def _simulate(die, codes, time_codes, bias, monkeypatch):
    """The sim's spike edges for ``codes`` written with no residual (eps = 0), noise off."""
    monkeypatch.setattr(sim_synapses, "EPS_HALF_WIDTH", 0.0)
    state, rng = blank_state(die), np.random.default_rng(0)
    for m, c in enumerate(codes):
        state = write_rows(die, state, ROP, m, 0, c, rng).state
    return run_patterns(die, state, ROP, time_codes, bias_codes=bias, max_step_ns=10.0).edge_ns[1:]


def _random_network(rng):
    return [rng.integers(-6, 16, (5, 16)), rng.integers(-10, 16, (17, 3))]


def test_spike_times_follow_the_simulated_physics_within_the_contract_residual(die, monkeypatch):
    rng = np.random.default_rng(1)
    codes, x, bias = _random_network(rng), rng.integers(0, 255, (40, 4)), np.array([0, 3])
    sim = _simulate(die, codes, x, bias, monkeypatch)
    model = predict_spike_times(parameters_of(die), codes, x, bias)
    for s, p in zip(sim, model):
        both = np.isfinite(s) & np.isfinite(p)
        assert both.sum() > 0.8 * s.size  # the comparison is not vacuous
        np.testing.assert_array_equal(np.isfinite(s), np.isfinite(p))
        assert np.all(np.abs(p[both] - s[both]) <= 0.005 * s[both] + 3.0)
        assert np.median(np.abs(p[both] - s[both]) / s[both]) < 1e-3


def test_die_mean_lambda_alone_costs_about_a_percent(die, monkeypatch):
    """Without per-site lambdas (1.7: 5 % spread) the model still holds within a few percent."""
    rng = np.random.default_rng(2)
    codes, x, bias = _random_network(rng), rng.integers(0, 255, (40, 4)), np.array([0, 0])
    sim = _simulate(die, codes, x, bias, monkeypatch)
    model = predict_spike_times(parameters_of(die, per_site_lambda=False), codes, x, bias)
    both = np.isfinite(sim[0]) & np.isfinite(model[0])
    error = np.abs(model[0][both] - sim[0][both]) / sim[0][both]
    assert error.max() < 0.03 and np.median(error) < 0.005


def test_grid_method_agrees_with_exact_method(die):
    """DSTD's time grid (100 ns) against the event-driven solution: within a fraction of a grid step."""
    params, rng = parameters_of(die), np.random.default_rng(3)
    circuit = build_circuit(params)
    x = torch.as_tensor(rng.integers(0, 255, (1, 30, 4)), dtype=torch.float64)
    currents = [site_currents_na(circuit, m, torch.as_tensor(c, dtype=torch.float64))
                for m, c in enumerate(_random_network(rng))]
    bias = torch.zeros(2, dtype=torch.float64)
    exact = network(circuit, currents, x, bias, method="exact")
    grid = network(circuit, currents, x, bias, method="dstd", step_ns=100.0)
    for e, g in zip(exact, grid):
        same = e.fired & g.fired
        assert (e.fired == g.fired).float().mean() > 0.97
        assert torch.all((e.edge_ns - g.edge_ns).abs()[same] < 0.01 * e.edge_ns[same] + 30.0)


def test_silent_neuron_reads_inf(die, monkeypatch):
    codes = [np.full((5, 16), 8), np.full((17, 3), 2)]
    codes[0][:, 4] = -5  # only inhibition: neuron 4 of layer 1 never reaches its threshold
    codes[1][:, 2] = 0  # no current at all: output 2 waits for its (tiny) leakage
    x = np.array([[10, 50, 100, 200]])
    model = predict_spike_times(parameters_of(die), codes, x, np.array([0, 0]))
    sim = _simulate(die, codes, x, np.array([0, 0]), monkeypatch)
    for times in (model, sim):
        assert np.isinf(times[0][0, 4]) and np.isinf(times[1][0, 2])
        assert np.isfinite(times[0][0, :4]).all()


@pytest.mark.parametrize("code", [8, 15])
def test_single_synapse_fires_after_the_contracts_integral(die, monkeypatch, code):
    """1.4: one code-c synapse alone fires a layer-1 neuron after about d + C x 0.546 V / (c x I_LSB)."""
    params = parameters_of(die)
    codes = [np.zeros((5, 16), dtype=int), np.zeros((17, 3), dtype=int)]
    codes[0][0, :] = code
    x = np.array([[0, 255, 255, 255]])
    t = predict_spike_times(params, codes, x, np.array([255, 255]))[0][0]
    current = params.verify_current(0, codes[0])[0]
    layer = params.layers[0]
    expected = 1.0 + layer.delay_ns.value + layer.capacitance_f.value * 0.546 / current * 1e9
    np.testing.assert_allclose(t, expected, rtol=0.04)
    sim = _simulate(die, codes, x, np.array([255, 255]), monkeypatch)[0][0]
    np.testing.assert_allclose(t, sim, rtol=0.005, atol=3.0)


def test_events_by_time_and_by_row_give_the_same_crossings(die):
    """A batch of integer codes is solved per distinct switching time (at most 255 events however many rows, what
    makes RCS-L's 785 rows affordable); a batch whose row times carry gradients per sorted row. Same crossings."""
    params, rng = parameters_of(die), np.random.default_rng(5)
    circuit = build_circuit(params)
    currents = [site_currents_na(circuit, m, torch.as_tensor(c, dtype=torch.float64))
                for m, c in enumerate(_random_network(rng))]
    x = torch.as_tensor(rng.integers(0, 255, (1, 40, 4)), dtype=torch.float64)
    bias = torch.zeros(2, dtype=torch.float64)
    by_time = network(circuit, currents, x, bias)
    by_row = network(circuit, currents, x, bias.clone().requires_grad_(True))
    for t, r in zip(by_time, by_row):
        assert torch.equal(t.fired, r.fired) and t.fired.float().mean() > 0.5
        assert torch.allclose(t.edge_ns, r.edge_ns.detach(), rtol=0, atol=1e-6)


def test_grid_tail_in_closed_form_is_the_exact_membrane(die):
    """Rows switching on at grid edges make DSTD's steps exact: the grid's membrane at W, most of whose window
    is the closed-form tail after the last row is on (``model._repeat_step``), is the event-driven solution's,
    and the crossings in that tail are within one grid step of the exact ones."""
    params, rng = parameters_of(die), np.random.default_rng(6)
    circuit = build_circuit(params)
    codes = torch.as_tensor(_random_network(rng)[0], dtype=torch.float64)
    current = site_currents_na(circuit, 0, codes)
    rows = torch.as_tensor(rng.integers(0, 8, (1, 30, 5)) * 100.0, dtype=torch.float64)  # all on by 700 ns
    exact, grid = layer_exact(circuit, 0, current, rows), layer_grid(circuit, 0, current, rows, step_ns=100.0)
    assert circuit.window_ns > 5000.0  # the tail is most of the window
    v_grid = torch.minimum(grid.v_end, torch.full_like(grid.v_end, circuit.e_inh))
    torch.testing.assert_close(v_grid, exact.v_end, rtol=0, atol=1e-9)
    late = exact.fired & (exact.edge_ns > 1000.0)
    assert late.sum() > 20  # crossings in the tail, not only in the scanned steps
    assert torch.equal(grid.fired, exact.fired)
    assert torch.all((grid.edge_ns - exact.edge_ns).abs()[late] < 100.0)
