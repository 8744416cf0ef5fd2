"""A neuron's membrane as the MON pad shows it (contract 1.3, 1.10).

The membrane: V_REST while clamped (the reset phase, t < 0); ``V0`` at release;
the recorded trajectory of :mod:`.neuron` (cubic Hermite between its points,
whose slopes are the ODE's own); after a crossing it keeps falling at its
threshold slope until the spike edge ``d_i`` later (the column is gated by the
edge, 1.3), then the discharger pulls it to V_REST with a 4 ns time constant
("within 20 ns"); at t = W every membrane is clamped likewise.

The buffer (1.10): the input clipped to the linear range 0.20..1.65 V,
``V_MON = G_MON V + V_OS``, a single pole at the die's bandwidth with a 20 V/us
slew limit, a pure delay that makes the group delay 12 ns, and 0.3 mV rms
output noise when a generator is given.
"""

from __future__ import annotations

import numpy as np

from labctl.families.ttfs.sim.die import run_patterns
from labctl.families.ttfs.sim.mismatch import Die
from labctl.families.ttfs.sim.neuron import Trajectory
from labctl.families.ttfs.sim.parts import CLAMP_TAU_NS, T_RESET_NS, OperatingPoint
from labctl.families.ttfs.sim.synapses import SynapseState

GRID_NS = 1.0
LINEAR_RANGE_V = (0.20, 1.65)
SLEW_V_PER_NS = 0.020
GROUP_DELAY_NS = 12.0
OUTPUT_NOISE_V = 0.3e-3


def _hermite(tr: Trajectory, t: np.ndarray) -> np.ndarray:
    """Cubic Hermite interpolation of the recorded (t, V, dV/dt) points; a jump is a repeated time."""
    tt, vv, ff = (np.asarray(a) for a in (tr.t, tr.v, tr.f))
    idx = np.clip(np.searchsorted(tt, t, side="right") - 1, 0, tt.size - 2)
    t0, t1 = tt[idx], tt[idx + 1]
    h = np.where(t1 > t0, t1 - t0, 1.0)
    s = np.clip((t - t0) / h, 0.0, 1.0)
    h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
    return h00 * vv[idx] + h10 * h * ff[idx] + h01 * vv[idx + 1] + h11 * h * ff[idx + 1]


def membrane(die: Die, tr: Trajectory, edge_ns: float, delay_ns: float, window_ns: float, t: np.ndarray) -> np.ndarray:
    """The selected membrane (V) at times ``t`` (ns from release) given its recorded trajectory and spike edge."""
    end = min(edge_ns - delay_ns, window_ns) if np.isfinite(edge_ns) else window_ns
    v = _hermite(tr, np.clip(t, 0.0, end))
    v_end = float(_hermite(tr, np.array([end]))[0])
    if np.isfinite(edge_ns):
        f_th = tr.f[int(np.searchsorted(tr.t, end, side="right")) - 1]
        v = np.where(t > end, v_end + f_th * (np.minimum(t, edge_ns) - end), v)
        v_end, end = v_end + f_th * delay_ns, edge_ns
    clamp = die.v_rest + (v_end - die.v_rest) * np.exp(-np.maximum(t - end, 0.0) / CLAMP_TAU_NS)
    v = np.where(t > end, clamp, v)
    return np.where(t < 0.0, die.v_rest, v)


def buffer(die: Die, v_in: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """MON from the membrane sampled every GRID_NS (1.10): clip, gain and offset, pole, slew, delay, noise."""
    target = die.mon_gain * np.clip(v_in, *LINEAR_RANGE_V) + die.mon_offset
    tau = 1e9 / (2.0 * np.pi * die.mon_bandwidth_hz)
    alpha = -np.expm1(-GRID_NS / tau)
    out = np.empty_like(target)
    y, slew = float(target[0]), SLEW_V_PER_NS * GRID_NS
    for k, x in enumerate(target.tolist()):
        y += min(max(alpha * (x - y), -slew), slew)
        out[k] = y
    shift = int(round(max(GROUP_DELAY_NS - tau, 0.0) / GRID_NS))
    out = np.concatenate([np.full(shift, out[0]), out[: out.size - shift]])
    if rng is not None:
        out = out + rng.normal(0.0, OUTPUT_NOISE_V, out.shape)
    return out


def mon_trace(die: Die, state: SynapseState, op: OperatingPoint, codes, layer: int, neuron: int, t_ns,
              *, bias_codes=None, entry: int = 0, rng: np.random.Generator | None = None) -> np.ndarray:
    """V_MON (V) at times ``t_ns`` from t = 0 (SYNC) for one pattern with neuron ``neuron`` of ``layer`` selected."""
    tr = Trajectory(layer=layer, pattern=0, neuron=neuron, t=[], v=[], f=[])
    res = run_patterns(die, state, op, np.atleast_2d(codes), entry=entry, bias_codes=bias_codes,
                       probe=(layer, neuron), rng=rng, record=tr)
    t_ns = np.asarray(t_ns, dtype=float)
    start = min(float(t_ns.min()), 0.0) - T_RESET_NS / 4
    grid = np.arange(start, float(t_ns.max()) + 4 * GRID_NS, GRID_NS)
    delay = float(die.neurons[layer - 1].delay_ns[neuron])
    v = membrane(die, tr, float(res.edge_ns[layer][0, neuron]), delay, op.window_ns, grid)
    return np.interp(t_ns, grid, buffer(die, v, rng))
