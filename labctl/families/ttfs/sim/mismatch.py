"""One simulated RC-Spike die drawn from a seed: every spread of contract 1.7 (and 1.3, 1.5, 1.8, 1.10).

Each spread is a normal draw with the contract's (T) sigma, clipped to its
(G) bound where the contract gives one (so no die is out of contract).
Where the contract states a size but not a distribution, the choice is
written at the field. Die-level quantities are drawn first, then per layer
(neurons), then per matrix (sites), all from ``numpy.random.default_rng(seed)``,
so one seed gives one die. The write residual eps is not here: it is drawn
anew at every write (:mod:`.synapses`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labctl.families.ttfs.sim.parts import C_MIM_F, C_NODE_F, C_ROW_F, I_LSB_A, MAX_MAGNITUDE, V_REST_V, Part

STUCK_FRACTION = 1e-5  # 1.4: cells that cannot reach their target (T)


@dataclass(frozen=True)
class NeuronSpreads:
    """The neurons of one layer l >= 1 (arrays of length n_l; 1.5, 1.7)."""

    c_fixed: np.ndarray  # F: C_MIM (die x local 0.3 %) + C_0 (die +-10 %, local 1 %)
    c_row: np.ndarray  # F: the row parasitics at V_REST (die +-10 %, local 1 %)
    offset: np.ndarray  # V: comparator offset o_i, sigma 5 mV, within +-30 mV
    pedestal: np.ndarray  # V: release pedestal p_i, 3 mV sigma 1 mV, 0..8 mV
    delay_ns: np.ndarray  # spike delay d_i (the TDC offset), 6 ns sigma 1 ns, 3..12 ns
    leak: np.ndarray  # A at 25 degC, out of the membrane: N(3 pA, 3 pA) within +-30 pA (choice)
    gain: np.ndarray  # column verify gain g_i, sigma 1 %, within +-4 %


@dataclass(frozen=True)
class MatrixSpreads:
    """The sites of one matrix (arrays rows x columns; 1.4, 1.6, 1.7) and its row lines."""

    lambda_n: np.ndarray  # 1/V: die mean x (1 + N(0, 5 %)) per site
    lambda_p: np.ndarray
    i_zero: np.ndarray  # A: a code-0 site's current with its row on, U(0, 0.2 pA) (choice within the T bound)
    stuck_max: np.ndarray  # the magnitude a stuck cell can reach (MAX_MAGNITUDE: not stuck)
    row_delay_ns: np.ndarray  # d_in of each code-driven row: die 1.0 ns sigma 0.2, +-0.25 ns per line (1.3)


@dataclass(frozen=True)
class Die:
    """A die's hidden truth: what characterisation has to measure."""

    part: Part
    seed: int
    v_rest: float  # V, 1.300 sigma 5 mV, 1.285..1.315
    kappa: float  # V per row switching on, 0.05 mV sigma 0.02 mV, 0..0.15 mV (choice of sigma)
    lambda_n_mean: float  # 1/V, 0.50 sigma 0.05, 0.30..0.80 (choice of sigma)
    lambda_p_mean: float  # 1/V, 0.35 sigma 0.035, 0.20..0.60
    e_offsets: tuple[float, float]  # V: E+ - V(EREV_EXC), E- - V(EREV_INH), sigma 0.7 mV within +-2 mV
    i_lsb: tuple[float, float]  # A: excitatory ladder LSB (2 nA, 4 %, +-12 %), inhibitory (ratio 2 %, +-6 %)
    bit_weights: np.ndarray  # (2, 4): ladder bit k of each polarity, 2^k (1 + N(0, 3 % / sqrt(2^k)))
    cap_voltage_coeff: float  # 1/V: relative change of c_row with (V - V_REST); +-5 % over the swing (1.5)
    tdc_dnl_ns: np.ndarray  # (4,): code-boundary shifts of the four interpolation phases, within +-0.12 ns
    tdc_inl_ns: float  # amplitude of a smooth INL bow over the 16-bit range, within +-0.4 ns
    mon_gain: float  # probe buffer G_MON, 0.990 sigma 0.005, 0.97..1.00 (1.10)
    mon_offset: float  # V_OS, +5 mV sigma 5 mV, within +-20 mV
    mon_bandwidth_hz: float  # 15 MHz sigma 1 MHz, at least 8 MHz
    neurons: tuple[NeuronSpreads, ...]  # layers 1..L-1
    matrices: tuple[MatrixSpreads, ...]  # matrices 0..L-2


def _normal(rng: np.random.Generator, mean: float, sigma: float, lo: float, hi: float, size=None):
    """N(mean, sigma) clipped to [lo, hi]: a typical spread held inside its guaranteed bound."""
    return np.clip(rng.normal(mean, sigma, size), lo, hi)


def _draw_neurons(rng: np.random.Generator, part: Part, layer: int, c_mim_die: float, par_die: float) -> NeuronSpreads:
    n, rows = part.layers[layer], part.layers[layer - 1] + 1
    c_mim = C_MIM_F * c_mim_die * (1.0 + rng.normal(0.0, 0.003, n))
    c_node = C_NODE_F * par_die * (1.0 + rng.normal(0.0, 0.01, n))
    c_row = C_ROW_F * rows * par_die * (1.0 + rng.normal(0.0, 0.01, n))
    return NeuronSpreads(
        c_fixed=c_mim + c_node,
        c_row=c_row,
        offset=_normal(rng, 0.0, 5e-3, -30e-3, 30e-3, n),
        pedestal=_normal(rng, 3e-3, 1e-3, 0.0, 8e-3, n),
        delay_ns=_normal(rng, 6.0, 1.0, 3.0, 12.0, n),
        leak=_normal(rng, 3e-12, 3e-12, -30e-12, 30e-12, n),
        gain=_normal(rng, 1.0, 0.01, 0.96, 1.04, n),
    )


def _draw_matrix(rng: np.random.Generator, part: Part, m: int, lam_n: float, lam_p: float,
                 d_in: float) -> MatrixSpreads:
    shape = part.matrix_shape(m)
    stuck = rng.random(shape) < STUCK_FRACTION
    stuck_max = np.where(stuck, rng.integers(0, MAX_MAGNITUDE, shape), MAX_MAGNITUDE)
    return MatrixSpreads(
        lambda_n=lam_n * (1.0 + rng.normal(0.0, 0.05, shape)),
        lambda_p=lam_p * (1.0 + rng.normal(0.0, 0.05, shape)),
        i_zero=rng.uniform(0.0, 0.2e-12, shape),
        stuck_max=stuck_max.astype(np.int8),
        row_delay_ns=d_in + rng.uniform(-0.25, 0.25, shape[0]),
    )


def draw_die(part: Part, seed: int) -> Die:
    """The die of ``part`` that ``seed`` names; the same seed always gives the same die."""
    rng = np.random.default_rng(seed)
    i_lsb_e = I_LSB_A * _normal(rng, 1.0, 0.04, 0.88, 1.12)
    i_lsb_i = i_lsb_e * _normal(rng, 1.0, 0.02, 0.94, 1.06)
    nominal_bits = 2.0 ** np.arange(4)
    bits = nominal_bits * (1.0 + rng.normal(0.0, 0.03, (2, 4)) / np.sqrt(nominal_bits))
    lam_n = float(_normal(rng, 0.50, 0.05, 0.30, 0.80))
    lam_p = float(_normal(rng, 0.35, 0.035, 0.20, 0.60))
    c_mim_die = float(_normal(rng, 1.0, 0.03, 0.90, 1.10))
    par_die = float(rng.uniform(0.90, 1.10))
    d_in = float(_normal(rng, 1.0, 0.2, 0.6, 1.4))
    scalars = dict(
        v_rest=float(_normal(rng, V_REST_V, 5e-3, 1.285, 1.315)),
        kappa=float(_normal(rng, 0.05e-3, 0.02e-3, 0.0, 0.15e-3)),
        e_offsets=(float(_normal(rng, 0.0, 0.7e-3, -2e-3, 2e-3)), float(_normal(rng, 0.0, 0.7e-3, -2e-3, 2e-3))),
        cap_voltage_coeff=float(rng.uniform(-0.05, 0.05)),
        tdc_dnl_ns=rng.uniform(-0.12, 0.12, 4),
        tdc_inl_ns=float(rng.uniform(-0.4, 0.4)),
        mon_gain=float(_normal(rng, 0.990, 0.005, 0.97, 1.00)),
        mon_offset=float(_normal(rng, 5e-3, 5e-3, -20e-3, 20e-3)),
        mon_bandwidth_hz=float(_normal(rng, 15e6, 1e6, 8e6, 20e6)),
    )
    layers = range(1, len(part.layers))
    neurons = tuple(_draw_neurons(rng, part, layer, c_mim_die, par_die) for layer in layers)
    matrices = tuple(_draw_matrix(rng, part, m, lam_n, lam_p, d_in) for m in range(part.n_matrices))
    return Die(part=part, seed=seed, lambda_n_mean=lam_n, lambda_p_mean=lam_p, i_lsb=(float(i_lsb_e), float(i_lsb_i)),
               bit_weights=bits, neurons=neurons, matrices=matrices, **scalars)
