"""Physics of the simulated RC-Spike die (docs/specs/ttfs-bench.md 1.3-1.8, 1.10).

Expected spike times are computed here independently of the simulator's
integrator: by quadrature of the contract's law, ``t = integral C(V) dV / I(V)``
from the start level to the threshold, with the drawn die's own parameters.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp

from labctl.families.ttfs.sim.die import run_patterns, tdc_codes
from labctl.families.ttfs.sim.mismatch import draw_die
from labctl.families.ttfs.sim.neuron import Trajectory
from labctl.families.ttfs.sim.parts import PARTS, ROP, TDC_MISSED
from labctl.families.ttfs.sim.probe import mon_trace
from labctl.families.ttfs.sim.synapses import blank_state, ladder_current, read_codes, write_rows

SMALL = PARTS["RCS-S"]
NO_INPUT = [[255, 255, 255, 255]]


def programmed(die, writes, seed=0):
    """A blank die with ``writes`` = [(matrix, row, column, code), ...] programmed at ROP."""
    state, rng = blank_state(die), np.random.default_rng(seed)
    for m, row, col, code in writes:
        codes = state.codes[m][row].astype(int).copy()
        codes[col] = code
        state = write_rows(die, state, ROP, m, row, codes[None, :], rng).state
    return state


def exc_current(v, a, lam, e_exc, v_k):
    """Contract 1.6, written out again: A (1 + lambda (V - E+)) (1 - exp(-(V - E+)/V_K))."""
    return a * (1.0 + lam * (v - e_exc)) * (1.0 - np.exp(-(v - e_exc) / v_k))


def capacitance(die, layer, i, v):
    n = die.neurons[layer - 1]
    return n.c_fixed[i] + n.c_row[i] * (1.0 + die.cap_voltage_coeff * (v - die.v_rest))


def expected_edge_ns(die, state, layer, i, row, t_on, v_start):
    """Edge time of neuron i of ``layer`` driven by one excitatory row switched on at t_on (ns)."""
    m, n = layer - 1, die.neurons[layer - 1]
    a, lam = state.a_exc[m][row, i], die.matrices[m].lambda_n[row, i]
    e_exc, v_th = ROP.e_exc + die.e_offsets[0], ROP.vth + n.offset[i]
    integrand = lambda v: capacitance(die, layer, i, v) / (exc_current(v, a, lam, e_exc, ROP.v_k) + n.leak[i])
    seconds, _ = quad(integrand, v_th, v_start, epsabs=1e-15, epsrel=1e-10)
    return t_on + seconds * 1e9 + n.delay_ns[i]


def bias_only_edge(die, code, col=5, bias_code=0):
    state = programmed(die, [(0, 4, col, code)])
    res = run_patterns(die, state, ROP, NO_INPUT, bias_codes=[bias_code, 255])
    return state, res.edge_ns[1][0, col], int(res.tdc[1][0, col])


@pytest.mark.parametrize("seed,code", [(1, 15), (2, 8), (3, 3)])
def test_single_excitatory_synapse_fires_when_the_law_says(seed, code):
    die = draw_die(SMALL, seed)
    state, edge, tdc = bias_only_edge(die, code)
    n = die.neurons[0]
    t_on = 10.0 * 0 + die.matrices[0].row_delay_ns[-1]
    want = expected_edge_ns(die, state, 1, 5, 4, t_on, die.v_rest - n.pedestal[5] + die.kappa)
    assert edge == pytest.approx(want, abs=0.1)
    assert abs(tdc + 0.5 - want) <= 1.0  # within the TDC LSB (INL, DNL included)
    nominal = {15: 2000.0, 8: 3700.0, 3: 9800.0}[code]  # contract 1.4: d + 109.3 fF x 0.546 V / (c x 2 nA)
    assert tdc == pytest.approx(nominal, rel=0.15)


def test_spike_time_falls_with_larger_codes():
    die = draw_die(SMALL, 4)
    codes = [bias_only_edge(die, c)[2] for c in (3, 4, 6, 8, 11, 15)]
    assert all(b < a for a, b in zip(codes, codes[1:])), codes
    assert codes[0] != TDC_MISSED


def test_hidden_spike_drives_the_next_layer_from_its_edge():
    die = draw_die(SMALL, 5)
    state = programmed(die, [(0, 4, 2, 15), (1, 2, 1, 12)])
    res = run_patterns(die, state, ROP, NO_INPUT, bias_codes=[0, 255])
    hidden_edge = res.edge_ns[1][0, 2]
    n = die.neurons[1]
    v0 = die.v_rest - n.pedestal[1]
    drift = n.leak[1] * hidden_edge * 1e-9 / capacitance(die, 2, 1, v0)  # the leak alone until the row is on
    want = expected_edge_ns(die, state, 2, 1, 2, hidden_edge, v0 - drift + die.kappa)
    assert res.edge_ns[2][0, 1] == pytest.approx(want, abs=0.1)
    others = np.delete(res.tdc[2][0], 1)
    assert (others == TDC_MISSED).all()


def test_injected_hidden_lines_switch_rows_at_their_time_codes():
    """Entry layer 1 (2.5): the codes drive layer 1's spike lines at 10 ns x code + d_in."""
    die = draw_die(SMALL, 18)
    state = programmed(die, [(1, 7, 2, 15)])
    codes = np.full((1, 16), 255)
    codes[0, 7] = 40
    res = run_patterns(die, state, ROP, codes, entry=1, bias_codes=[255, 255])
    assert res.edge_ns[1] is None and res.tdc[1] is None
    n = die.neurons[1]
    t_on = 400.0 + die.matrices[1].row_delay_ns[7]
    v0 = die.v_rest - n.pedestal[2]
    v_start = v0 - n.leak[2] * t_on * 1e-9 / capacitance(die, 2, 2, v0) + die.kappa
    assert res.edge_ns[2][0, 2] == pytest.approx(expected_edge_ns(die, state, 2, 2, 7, t_on, v_start), abs=0.1)


def test_inhibition_delays_and_then_prevents_firing():
    die = draw_die(SMALL, 6)
    excite = [(0, 4, 3, 10)]
    base = run_patterns(die, programmed(die, excite), ROP, [[20, 255, 255, 255]]).edge_ns[1][0, 3]
    one = run_patterns(die, programmed(die, excite + [(0, 0, 3, -4)]), ROP, [[20, 255, 255, 255]]).edge_ns[1][0, 3]
    strong = excite + [(0, r, 3, -15) for r in range(4)]
    none = run_patterns(die, programmed(die, strong), ROP, [[20, 20, 20, 20]])
    assert one > base + 100.0
    assert none.tdc[1][0, 3] == TDC_MISSED


def test_inhibition_pushes_towards_e_minus_and_never_past_it():
    """Inhibition alone from a membrane near E-: it settles at E- (the knee) and never passes it."""
    die = draw_die(SMALL, 7)
    state = programmed(die, [(0, 4, 0, -15)])
    tr = Trajectory(layer=1, pattern=0, neuron=0, t=[], v=[], f=[])
    op = dataclasses.replace(ROP, e_inh=1.40)
    run_patterns(die, state, op, NO_INPUT, bias_codes=[0, 255], record=tr)
    e_minus = op.e_inh + die.e_offsets[1]
    assert max(tr.v) <= e_minus + 1e-6
    assert tr.v[-1] == pytest.approx(e_minus, abs=3e-3)


def test_no_input_reads_missed():
    die = draw_die(SMALL, 8)
    state = programmed(die, [(0, 4, c, 15) for c in range(16)])
    quiet = run_patterns(die, state, ROP, NO_INPUT, bias_codes=[255, 255])
    idle = run_patterns(die, state, ROP, [[0, 0, 0, 0]], idle=True)
    blank = run_patterns(die, blank_state(die), ROP, [[0, 0, 0, 0]])
    for res in (quiet, idle, blank):
        assert (res.tdc[1] == TDC_MISSED).all() and (res.tdc[2] == TDC_MISSED).all()


def test_tdc_quantises_with_a_1_ns_lsb_and_reads_missed_at_the_window():
    ideal = dataclasses.replace(draw_die(SMALL, 9), tdc_dnl_ns=np.zeros(4), tdc_inl_ns=0.0)
    edges = np.array([0.2, 100.3, 100.999, 15999.5, 16000.0, np.inf])
    assert tdc_codes(ideal, edges, 16000.0).tolist() == [0, 100, 100, 15999, TDC_MISSED, TDC_MISSED]
    real = draw_die(SMALL, 9)
    sweep = np.arange(10.0, 2000.0, 0.01)
    codes = tdc_codes(real, sweep, 16000.0).astype(int)
    assert (np.diff(codes) >= 0).all() and np.abs(codes + 0.5 - sweep).max() <= 1.0
    widths = np.bincount(codes)[20:1990] * 0.01
    assert widths.min() >= 0.75 - 0.011 and widths.max() <= 1.25 + 0.011  # DNL within +-0.25 LSB


def test_tdc_offset_is_the_spike_delay():
    die = draw_die(SMALL, 10)
    slower = dataclasses.replace(die.neurons[0], delay_ns=die.neurons[0].delay_ns + 5.0)
    late = dataclasses.replace(die, neurons=(slower, die.neurons[1]))
    _, edge, _ = bias_only_edge(die, 12)
    _, edge_late, _ = bias_only_edge(late, 12)
    assert edge_late - edge == pytest.approx(5.0, abs=1e-6)


def test_dies_differ_by_the_stated_spreads():
    big = draw_die(PARTS["RCS-L"], 11)
    offsets = np.concatenate([n.offset for n in big.neurons])
    assert np.std(offsets) == pytest.approx(5e-3, rel=0.2) and np.abs(offsets).max() <= 30e-3
    delays = np.concatenate([n.delay_ns for n in big.neurons])
    assert np.mean(delays) == pytest.approx(6.0, abs=0.2) and np.std(delays) == pytest.approx(1.0, rel=0.2)
    gains = np.concatenate([n.gain for n in big.neurons])
    assert np.std(gains) == pytest.approx(0.01, rel=0.2)
    pedestals = np.concatenate([n.pedestal for n in big.neurons])
    assert np.mean(pedestals) == pytest.approx(3e-3, abs=0.2e-3) and np.std(pedestals) == pytest.approx(1e-3, rel=0.2)
    lam = big.matrices[0].lambda_n / big.lambda_n_mean
    assert np.std(lam) == pytest.approx(0.05, rel=0.2)
    c1 = big.neurons[0].c_fixed + big.neurons[0].c_row
    assert np.mean(c1) == pytest.approx(421.3e-15, rel=0.15)
    dies = [draw_die(SMALL, s) for s in range(300)]
    assert np.std([d.i_lsb[0] for d in dies]) / 2e-9 == pytest.approx(0.04, rel=0.2)
    assert np.std([d.i_lsb[1] / d.i_lsb[0] for d in dies]) == pytest.approx(0.02, rel=0.2)
    assert np.std([d.v_rest for d in dies]) == pytest.approx(5e-3, rel=0.2)
    assert np.std([d.bit_weights[0, 0] for d in dies]) == pytest.approx(0.03, rel=0.2)
    other = draw_die(PARTS["RCS-L"], 12)
    assert not np.allclose(other.neurons[0].offset, big.neurons[0].offset)


def test_the_same_seed_gives_the_same_die_and_the_same_spike_times():
    a, b = draw_die(SMALL, 13), draw_die(SMALL, 13)
    for x, y in zip(dataclasses.astuple(a.neurons[0]), dataclasses.astuple(b.neurons[0])):
        assert np.array_equal(x, y)
    assert a.i_lsb == b.i_lsb and np.array_equal(a.matrices[1].lambda_p, b.matrices[1].lambda_p)
    sa, sb = programmed(a, [(0, 4, 1, 9)], seed=3), programmed(b, [(0, 4, 1, 9)], seed=3)
    ra = run_patterns(a, sa, ROP, [[5, 6, 7, 8]], rng=np.random.default_rng(1))
    rb = run_patterns(b, sb, ROP, [[5, 6, 7, 8]], rng=np.random.default_rng(1))
    assert np.array_equal(ra.tdc[1], rb.tdc[1])


def test_reprogramming_redraws_the_write_residual_within_its_window():
    die = draw_die(SMALL, 14)
    rng = np.random.default_rng(0)
    codes = np.arange(-7, 9)[None, :]
    e_w = ROP.e_exc + die.e_offsets[0]
    lam = die.matrices[0].lambda_n[2]
    factor = (1 + lam * (die.v_rest - e_w)) * (1 - np.exp(-(die.v_rest - e_w) / ROP.v_k))
    target = ladder_current(die, 0, np.abs(codes[0])) * die.neurons[0].gain
    currents = []
    for _ in range(2):
        state = write_rows(die, blank_state(die), ROP, 0, 2, codes, rng).state
        currents.append(state.a_exc[0][2] * factor)
        assert read_codes(die, state, 0)[2].tolist() == codes[0].tolist()
    pos = codes[0] > 0
    for current in currents:
        assert np.all(np.abs(current[pos] / target[pos] - 1.0) <= 0.025 + 1e-12)
    assert not np.allclose(currents[0][pos], currents[1][pos], rtol=1e-4, atol=0.0)


def bias_only_trajectory(die, code, neuron):
    """A noiseless run of one hidden neuron under its bias-row synapse: (t, V, dV/dt) arrays and its crossing time."""
    state = programmed(die, [(0, 4, neuron, code)])
    tr = Trajectory(layer=1, pattern=0, neuron=neuron, t=[], v=[], f=[])
    res = run_patterns(die, state, ROP, NO_INPUT, bias_codes=[0, 255], record=tr)
    cross = res.edge_ns[1][0, neuron] - die.neurons[0].delay_ns[neuron]
    return state, (np.asarray(x) for x in (tr.t, tr.v, tr.f)), cross


def test_channel_length_modulation_weakens_excitation_towards_threshold():
    die = draw_die(SMALL, 15)
    _, (t, v, f), cross = bias_only_trajectory(die, 15, 7)
    early, late = np.argmax(t > 5.0), np.nonzero(t < cross)[0][-1]
    leak = die.neurons[0].leak[7]
    current = lambda k: -f[k] * 1e9 * capacitance(die, 1, 7, v[k]) - leak
    fall = 1.0 - current(late) / current(early)
    e_exc, lam = ROP.e_exc + die.e_offsets[0], die.matrices[0].lambda_n[4, 7]
    assert fall == pytest.approx(1.0 - (1 + lam * (v[late] - e_exc)) / (1 + lam * (v[early] - e_exc)), rel=0.01)
    assert 0.12 <= fall <= 0.22  # contract 1.6: about 17 % from rest to threshold at ROP


def test_integrator_matches_a_fine_ode_solve_with_mixed_rows_and_coupling():
    die = draw_die(SMALL, 16)
    state = programmed(die, [(0, 4, 0, 6), (0, 0, 0, 9), (0, 1, 0, -5), (0, 2, 0, 4), (0, 3, 0, 0)])
    pattern = [30, 60, 10, 120]
    edge = run_patterns(die, state, ROP, [pattern]).edge_ns[1][0, 0]
    on = np.append(10.0 * np.array(pattern), 0.0) + die.matrices[0].row_delay_ns
    n, mat = die.neurons[0], die.matrices[0]
    e_exc, e_inh = ROP.e_exc + die.e_offsets[0], ROP.e_inh + die.e_offsets[1]

    def rhs(t_ns, y):
        live = on <= t_ns
        vv = y[0]
        i_e = exc_current(vv, state.a_exc[0][:, 0], mat.lambda_n[:, 0], e_exc, ROP.v_k)
        i_i = state.a_inh[0][:, 0] * (1 + mat.lambda_p[:, 0] * (e_inh - vv)) * (1 - np.exp(-(e_inh - vv) / ROP.v_k))
        i0 = np.where(state.codes[0][:, 0] == 0, mat.i_zero[:, 0], 0.0)
        current = np.sum(live * (i_i - i_e - i0)) - n.leak[0]
        return [1e-9 * current / capacitance(die, 1, 0, vv)]

    v_th = ROP.vth + n.offset[0]
    v, t0 = die.v_rest - n.pedestal[0], 0.0
    for t1 in list(np.sort(on)) + [ROP.window_ns]:
        hit = lambda t, y: y[0] - v_th
        hit.terminal = True
        sol = solve_ivp(rhs, (t0, t1), [v], events=hit, rtol=1e-10, atol=1e-12, max_step=5.0)
        if sol.t_events[0].size:
            assert edge == pytest.approx(sol.t_events[0][0] + n.delay_ns[0], abs=0.2)
            return
        v, t0 = sol.y[0, -1] + die.kappa, t1
    pytest.fail("the reference solve never reached threshold")


def test_mon_trace_shows_the_membrane_through_the_buffer():
    die = draw_die(SMALL, 17)
    state = programmed(die, [(0, 4, 5, 15)])
    t = np.arange(-500.0, 4000.0, 5.0)
    mon = mon_trace(die, state, ROP, NO_INPUT[0], 1, 5, t, bias_codes=[0, 255])
    g, b, n = die.mon_gain, die.mon_offset, die.neurons[0]
    assert mon[t < -100].mean() == pytest.approx(g * die.v_rest + b, abs=0.2e-3)
    ramp = (t > 100.0) & (t < 400.0)
    start = np.polyval(np.polyfit(t[ramp], mon[ramp], 2), 12.0)  # back to release, through the 12 ns group delay
    assert start == pytest.approx(g * (die.v_rest - n.pedestal[5]) + b, abs=1e-3)
    assert mon.min() == pytest.approx(g * (ROP.vth + n.offset[5]) + b, abs=5e-3)
    assert mon[-1] == pytest.approx(g * die.v_rest + b, abs=1e-3)


def test_spike_time_jitter_follows_the_noise_at_the_threshold_slope():
    """1.8: rms jitter sqrt(0.25 ns^2 + (0.55 mV / slope)^2), slope = |dV/dt| at the threshold (4.5 ns at code 8)."""
    die = draw_die(SMALL, 2)
    state, (t, _, f), cross = bias_only_trajectory(die, 8, 5)
    slope = -f[np.nonzero(t < cross)[0][-1]]
    noisy = run_patterns(die, state, ROP, np.full((600, 4), 255), bias_codes=[0, 255], rng=np.random.default_rng(0))
    jitter = np.std(noisy.tdc[1][:, 5].astype(float))
    assert jitter == pytest.approx(np.hypot(0.25, 0.55e-3 / slope), rel=0.15)
    assert jitter == pytest.approx(4.5, rel=0.2)
