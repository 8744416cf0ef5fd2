"""Synapse branches: the current law of contract 1.6 and program-and-verify of 1.4, 1.7.

Branch currents (1.6), ``x`` the branch's drain-source voltage:

    excitatory  I^E = A (1 + lambda_N x) (1 - exp(-x / V_K)),  x = V - E+
    inhibitory  I^I = A (1 + lambda_P x) (1 - exp(-x / V_K)),  x = E- - V

The write fixes ``A``: the verify makes the branch's current at the verify point
(membrane at V_REST, rails as at the write) equal to the programmed current

    I_ij = |c| I_LSB,pol (1 + delta_pol(|c|)) g_i (1 + eps_ij)

with the ladder's bit weights (``|c| (1 + delta)`` = the weights of the bits
of ``|c|`` summed), the column gain g_i and the write residual eps_ij,
``U(-2.5 %, +2.5 %)``, drawn anew for every cell of a row at every write of
that row (1.7). Currents follow the die temperature at +0.1 %/K after the
write (1.7). Relaxation, retention and slow drift (1.4, 1.7) are not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from labctl.families.ttfs.sim.mismatch import Die
from labctl.families.ttfs.sim.parts import MAX_MAGNITUDE, OperatingPoint

EPS_HALF_WIDTH = 0.025  # 1.7 (T): the verify window
TEMPERATURE_COEFF = 1e-3  # 1.7: +0.1 %/K after the write


def saturation_knee(x, v_k: float):
    """``1 - exp(-x / V_K)``, the weak-inversion knee; the exponent is bounded where x is far below 0."""
    return -np.expm1(-np.maximum(x, -40.0 * v_k) / v_k)


def branch_factor(x, lam, v_k: float):
    """``(1 + lambda x) (1 - exp(-x / V_K))``: a branch's current over its A at drain-source voltage x (1.6)."""
    return (1.0 + lam * x) * saturation_knee(x, v_k)


def ladder_current(die: Die, polarity: int, magnitude):
    """The ladder's target for ``magnitude`` steps (0 excitatory, 1 inhibitory): bit weights summed, times I_LSB."""
    magnitude = np.asarray(magnitude, dtype=np.int64)
    bits = (magnitude[..., None] >> np.arange(4)) & 1
    return die.i_lsb[polarity] * (bits * die.bit_weights[polarity]).sum(axis=-1)


@dataclass(frozen=True)
class SynapseState:
    """What the cells hold, per matrix (rows x columns): codes as written and each branch's A (A)."""

    codes: tuple[np.ndarray, ...]  # int8, -15..+15
    reached: tuple[np.ndarray, ...]  # int8: the signed magnitude reached (differs from codes on stuck cells)
    a_exc: tuple[np.ndarray, ...]
    a_inh: tuple[np.ndarray, ...]
    lam_exc: tuple[np.ndarray, ...]  # per-site lambda_N x A: the CLM term of the summed current
    lam_inh: tuple[np.ndarray, ...]
    write_temperature_c: float = 25.0


def blank_state(die: Die) -> SynapseState:
    """A new die: every code 0 (1.4, G)."""
    shapes = [die.part.matrix_shape(m) for m in range(die.part.n_matrices)]
    zeros = tuple(np.zeros(s) for s in shapes)
    codes = tuple(np.zeros(s, dtype=np.int8) for s in shapes)
    return SynapseState(codes, codes, zeros, zeros, zeros, zeros)


@dataclass(frozen=True)
class WriteResult:
    state: SynapseState
    rows_programmed: int
    failed_cells: int


def write_rows(die: Die, state: SynapseState, op: OperatingPoint, m: int, first_row: int, codes,
               rng: np.random.Generator) -> WriteResult:
    """Erase and program rows ``first_row..`` of matrix ``m`` with ``codes`` (rows x columns) at ``op``'s rails.

    Every cell of a written row gets a fresh eps; a stuck cell stops at its reachable magnitude and fails verify.
    """
    codes = np.asarray(codes, dtype=np.int64)
    rows = slice(first_row, first_row + codes.shape[0])
    if np.abs(codes).max(initial=0) > MAX_MAGNITUDE:
        raise ValueError("codes must lie in -15..+15 (contract 1.4)")
    spreads, gain = die.matrices[m], die.neurons[m].gain
    magnitude = np.minimum(np.abs(codes), spreads.stuck_max[rows])
    eps = rng.uniform(-EPS_HALF_WIDTH, EPS_HALF_WIDTH, codes.shape)
    e_exc, e_inh = op.e_exc + die.e_offsets[0], op.e_inh + die.e_offsets[1]
    a = {}
    branches = ((0, spreads.lambda_n[rows], die.v_rest - e_exc, 1), (1, spreads.lambda_p[rows], e_inh - die.v_rest, -1))
    for pol, lam, x, sign in branches:
        current = ladder_current(die, pol, magnitude) * gain * (1.0 + eps) * (np.sign(codes) == sign)
        a[pol] = current / branch_factor(x, lam, op.v_k)
    updates = dict(codes=codes.astype(np.int8), reached=(np.sign(codes) * magnitude).astype(np.int8),
                   a_exc=a[0], a_inh=a[1], lam_exc=a[0] * spreads.lambda_n[rows], lam_inh=a[1] * spreads.lambda_p[rows])
    fields = {}
    for name, block in updates.items():
        matrices = list(getattr(state, name))
        matrices[m] = matrices[m].copy()
        matrices[m][rows] = block
        fields[name] = tuple(matrices)
    new_state = replace(state, write_temperature_c=op.temperature_c, **fields)
    return WriteResult(new_state, codes.shape[0], int((magnitude != np.abs(codes)).sum()))


def read_codes(die: Die, state: SynapseState, m: int) -> np.ndarray:
    """READ_SYNAPSES (1.4): per cell the code whose ladder target is nearest to what the cell holds.

    The column gain scales the held current and the read target alike and eps (within 2.5 %) never reaches a
    mid-point, so the read code is the signed magnitude the cell reached (the written code unless it is stuck).
    """
    reached = state.reached[m].astype(np.int64)
    mags = np.arange(MAX_MAGNITUDE + 1)
    codes = np.zeros(reached.shape, dtype=np.int8)
    for pol, sign in ((0, 1), (1, -1)):
        held = ladder_current(die, pol, np.abs(reached)) * (np.sign(reached) == sign)
        targets = ladder_current(die, pol, mags)
        nearest = np.abs(held[..., None] - targets).argmin(axis=-1)
        codes = np.where(np.sign(reached) == sign, sign * nearest, codes).astype(np.int8)
    return codes
