"""A batch of input spike-time patterns through a simulated die (contract 1.3, 1.5, 1.8; APPLY_PATTERNS of 2.5).

Layer by layer (feed-forward), every neuron's membrane is integrated by
:mod:`.neuron`: rows of matrix m switch on at ``10 ns x code + d_in`` (input
lines, bias rows, injected lines) or at the spike edge of neuron j of layer m
(``t_cross + d_j``); a neuron's spike edge gates its column off, so only its
first crossing counts. Per pattern (when a noise generator is given): reset
noise 0.2 mV on the start level, comparator noise 0.5 mV on the threshold
(1.5) and 0.25 ns rms edge jitter (1.8). The TDC (1.8) captures the edge:
code k for an edge in ``[k, k+1)`` ns (after the die's DNL and INL), 0xFFFF
when the edge is not before t = W.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labctl.families.ttfs.sim.mismatch import Die
from labctl.families.ttfs.sim.neuron import LayerDrive, Trajectory, integrate_layer
from labctl.families.ttfs.sim.parts import C_PROBE_F, INPUT_LSB_NS, NO_SPIKE_CODE, TDC_MISSED, OperatingPoint
from labctl.families.ttfs.sim.synapses import TEMPERATURE_COEFF, SynapseState

RESET_NOISE_V = 0.2e-3  # 1.5 (T)
COMPARATOR_NOISE_V = 0.5e-3  # 1.5 (T)
EDGE_JITTER_NS = 0.25  # 1.8 (T): the floor of a spike time's jitter
INL_PERIOD_NS = 65536.0  # the INL bow spans the 16-bit counter


@dataclass(frozen=True)
class PatternResult:
    """Spike edges (ns, inf: none before W) and TDC codes per layer; None for layers the batch did not run."""

    edge_ns: tuple[np.ndarray | None, ...]
    tdc: tuple[np.ndarray | None, ...]


def layer_drive(die: Die, state: SynapseState, op: OperatingPoint, layer: int, probe: int | None = None) -> LayerDrive:
    """The circuit of ``layer`` (>= 1) at ``op``: the die's truth, the programmed A's, the temperature's effects."""
    m, cells, neurons = layer - 1, die.matrices[layer - 1], die.neurons[layer - 1]
    drift = 1.0 + TEMPERATURE_COEFF * (op.temperature_c - state.write_temperature_c)
    c_fixed = neurons.c_fixed.copy()
    if probe is not None:
        c_fixed[probe] += C_PROBE_F
    return LayerDrive(
        a_exc=state.a_exc[m] * drift, lam_exc=state.lam_exc[m] * drift,
        a_inh=state.a_inh[m] * drift, lam_inh=state.lam_inh[m] * drift,
        i_zero=np.where(state.reached[m] == 0, cells.i_zero, 0.0),
        c_fixed=c_fixed, c_row=neurons.c_row, cap_coeff=die.cap_voltage_coeff, v_rest=die.v_rest,
        e_exc=op.e_exc + die.e_offsets[0], e_inh=op.e_inh + die.e_offsets[1], v_k=op.v_k,
        leak=neurons.leak * 2.0 ** ((op.temperature_c - 25.0) / 10.0), kappa=die.kappa)


def code_times_ns(codes: np.ndarray, row_delay_ns: np.ndarray) -> np.ndarray:
    """When code-driven rows switch on: ``10 ns x code + d_in`` (1.3); code 255 never (inf)."""
    codes = np.asarray(codes)
    return np.where(codes == NO_SPIKE_CODE, np.inf, INPUT_LSB_NS * codes + row_delay_ns)


def tdc_codes(die: Die, edge_ns: np.ndarray, window_ns: float) -> np.ndarray:
    """The TDC's capture of spike edges (1.8): code k for ``[k + dnl[k mod 4], k + 1 + dnl[(k + 1) mod 4])``.

    The edge first passes the die's INL bow; an edge at or past W (or none) reads 0xFFFF.
    """
    t = edge_ns - die.tdc_inl_ns * np.sin(2.0 * np.pi * np.where(np.isfinite(edge_ns), edge_ns, 0.0) / INL_PERIOD_NS)
    base = np.floor(np.where(np.isfinite(t), t, 0.0))
    low = base + die.tdc_dnl_ns[base.astype(np.int64) % 4]
    high = base + 1.0 + die.tdc_dnl_ns[(base.astype(np.int64) + 1) % 4]
    k = base - (t < low) + (t >= high)
    ok = np.isfinite(edge_ns) & (edge_ns < window_ns) & (k >= 0)
    return np.where(ok, np.clip(k, 0, window_ns - 1), TDC_MISSED).astype(np.uint16)


def run_patterns(die: Die, state: SynapseState, op: OperatingPoint, codes, *, entry: int = 0,
                 bias_codes=None, idle: bool = False, probe: tuple[int, int] | None = None,
                 rng: np.random.Generator | None = None, record: Trajectory | None = None,
                 max_step_ns: float = 40.0) -> PatternResult:
    """Apply a batch of time-code patterns (patterns x n_entry, u8) at ``entry``; every layer above it runs.

    ``bias_codes``: one time code per matrix (default 0: every bias row on at d_in);
    ``idle``: no row switches on; ``probe``: (layer, neuron) on the mux (its +0.5 fF);
    ``rng``: per-pattern noise (None: noiseless); ``record``: a trajectory of the probed neuron.
    """
    part = die.part
    codes = np.atleast_2d(np.asarray(codes))
    if codes.shape[1] != part.layers[entry]:
        raise ValueError(f"patterns need {part.layers[entry]} codes for layer {entry}")
    bias = np.zeros(part.n_matrices, dtype=np.int64) if bias_codes is None else np.asarray(bias_codes)
    n_pat = codes.shape[0]
    edges: list[np.ndarray | None] = [None] * len(part.layers)
    lines = code_times_ns(codes, die.matrices[entry].row_delay_ns[:-1])
    for layer in range(entry + 1, len(part.layers)):
        m = layer - 1
        bias_on = code_times_ns(np.full((n_pat, 1), bias[m]), die.matrices[m].row_delay_ns[-1:])
        row_on = np.concatenate([lines, bias_on], axis=1)
        if idle:
            row_on = np.full_like(row_on, np.inf)
        edges[layer] = _layer_edges(die, state, op, layer, row_on, probe, rng, record, max_step_ns)
        lines = edges[layer]
    tdc = tuple(None if e is None else tdc_codes(die, e, op.window_ns) for e in edges)
    return PatternResult(tuple(edges), tdc)


def _layer_edges(die, state, op, layer, row_on, probe, rng, record, max_step_ns) -> np.ndarray:
    neurons = die.neurons[layer - 1]
    shape = (row_on.shape[0], neurons.offset.size)
    v0 = np.broadcast_to(die.v_rest - neurons.pedestal, shape).copy()
    v_th = np.broadcast_to(op.vth + neurons.offset, shape).copy()
    if rng is not None:
        v0 += rng.normal(0.0, RESET_NOISE_V, shape)
        v_th += rng.normal(0.0, COMPARATOR_NOISE_V, shape)
    probed = probe is not None and probe[0] == layer
    drive = layer_drive(die, state, op, layer, probe[1] if probed else None)
    recorded = record if record is not None and record.layer == layer else None
    cross = integrate_layer(drive, row_on, v0, v_th, op.window_ns, max_step_ns, recorded)
    edge = cross + neurons.delay_ns
    if rng is not None:
        edge = edge + rng.normal(0.0, EDGE_JITTER_NS, shape)
    return np.where(edge < op.window_ns, edge, np.inf)
