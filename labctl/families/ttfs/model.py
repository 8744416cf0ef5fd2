"""The die as labctl believes it to be: one torch implementation of the vendor's model (contract 1.3, 1.6).

Training, programming checks and replay all predict first-spike times with
this module, from a :class:`TtfsDieParameters` and nothing else. Units inside:
ns, V, nA, fF, so that ``dV/dt [V/ns] = 1e-3 I [nA] / C [fF]``.

Between threshold and rest the knee of 1.6 is 1 within 1e-6 and every branch
current is linear in V (the conductance form, 1.6 informative), so between
two row events (1.3: an input or bias row at ``10 ns x code + d_in``, a
hidden row at the spike edge of the neuron below) the membrane obeys

    C dV/dt = alpha - beta V,   alpha = -S0E + S1E E+ + S0I + S1I E- - I_leak,   beta = S1E + S1I

with S0 = sum of A_ij and S1 = sum of A_ij lambda_ij over the rows that are
on. Each segment is solved in closed form, so a crossing time and its
gradient are exact (autograd through the closed form is the implicit
function theorem's answer): :func:`layer_exact`. :func:`layer_grid` is the
seed's differentiable spike-time discretisation of the same equation: rows
switch on over a grid step in proportion to the part of the step they are on
(a smooth surrogate of the row step), and the crossing is interpolated
inside its step. Everything else of 1.6 (the knee near the rails, code-0
sites, the membrane dependence of C) is in the contract's residual.

A site's current at the verify point is ``TtfsDieParameters.verify_current``
(1.7) times ``1 + eps`` (the write residual); the write fixes
``A_ij = I_ij / ((1 + lambda (V_REST - E+)) (1 - exp(-(V_REST - E+)/V_K)))``
(1.6), the rails being those of the characterisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from labctl.families.ttfs.die_parameters import MAX_CODE, TtfsDieParameters

INPUT_LSB_NS = 10.0
"""Input and bias time DAC step (1.8)."""
NO_SPIKE_CODE = 255
"""A time code that never switches its row on (1.3, 1.8)."""
MAX_TIME_CODE = 254
NA_PER_FF = 1e-3
"""V/ns per nA/fF."""
DTYPE = torch.float64
PREDICT_CHUNK = 128
"""Patterns per forward pass of a prediction: RCS-L's input layer holds (patterns x 256 events x 512) numbers."""


def _t(value, dtype: torch.dtype = DTYPE) -> torch.Tensor:
    return torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=dtype)


@dataclass(frozen=True)
class LayerCircuit:
    """One layer's neurons (leading draw dimension D: tensors (D, N)) and its matrix's lambdas (D, R, N)."""

    capacitance_ff: torch.Tensor
    start_v: torch.Tensor
    threshold_v: torch.Tensor
    delay_ns: torch.Tensor
    leak_na: torch.Tensor
    gain: torch.Tensor
    lam_exc: torch.Tensor
    lam_inh: torch.Tensor


@dataclass(frozen=True)
class Circuit:
    """D drawn versions of the die (D = 1: the measured values themselves)."""

    layers: tuple[LayerCircuit, ...]
    exc_table_na: torch.Tensor  # (D, 16): the excitatory ladder's current for magnitudes 0..15
    inh_table_na: torch.Tensor
    e_exc: float
    e_inh: float
    v_rest: torch.Tensor  # (D,)
    v_k: float
    kappa_v: torch.Tensor  # (D,)
    input_delay_ns: float
    window_ns: float

    @property
    def draws(self) -> int:
        return int(self.v_rest.shape[0])


def _value(m, draw: bool, generator: torch.Generator | None, count: int, dtype: torch.dtype) -> torch.Tensor:
    """(count, *shape) copies of a Measured value; with ``draw``, each perturbed by N(0, se)."""
    value, se = _t(m.value, dtype), _t(m.se, dtype)
    out = value.expand(count, *value.shape).clone()
    if draw:
        out = out + torch.randn(out.shape, generator=generator, dtype=dtype) * se
    return out


def build_circuit(params: TtfsDieParameters, *, draws: int = 1, generator: torch.Generator | None = None,
                  sample: bool = False, dtype: torch.dtype = DTYPE) -> Circuit:
    """The model's circuit: the measured values (``sample=False``) or ``draws`` dies drawn from the measurement's
    standard errors, for variation-aware training. Without per-site lambdas the die mean stands for every site,
    and a draw spreads it by the measured per-site spread (1.6: 5 %)."""
    n = draws

    def ladder(pol) -> torch.Tensor:
        lsb = _value(pol.i_lsb_a, sample, generator, n, dtype) * 1e9
        bits = _value(pol.bit_weights, sample, generator, n, dtype)
        mags = torch.arange(MAX_CODE + 1)
        mask = ((mags[:, None] >> torch.arange(bits.shape[-1])) & 1).to(dtype)
        return lsb[:, None] * (bits @ mask.T)

    layers = []
    for m, layer in enumerate(params.layers):
        shape = params.matrix_shape(m)
        lams = []
        for pol in (params.excitatory, params.inhibitory):
            if pol.site_lam_per_v is not None:
                lams.append(_value(pol.site_lam_per_v[m], sample, generator, n, dtype))
                continue
            lam = _value(pol.lam_per_v, sample, generator, n, dtype)[:, None, None].expand(n, *shape)
            if sample:
                lam = lam * (1.0 + pol.lam_site_sd * torch.randn((n, *shape), generator=generator, dtype=dtype))
            lams.append(lam)
        layers.append(LayerCircuit(
            capacitance_ff=_value(layer.capacitance_f, sample, generator, n, dtype) * 1e15,
            start_v=_value(layer.start_v, sample, generator, n, dtype),
            threshold_v=_value(layer.threshold_v, sample, generator, n, dtype),
            delay_ns=_value(layer.delay_ns, sample, generator, n, dtype),
            leak_na=_value(layer.leak_a, sample, generator, n, dtype) * 1e9,
            gain=_value(layer.column_gain, sample, generator, n, dtype),
            lam_exc=lams[0], lam_inh=lams[1]))
    return Circuit(
        layers=tuple(layers), exc_table_na=ladder(params.excitatory), inh_table_na=ladder(params.inhibitory),
        e_exc=float(np.asarray(params.excitatory.reversal_v.value)),
        e_inh=float(np.asarray(params.inhibitory.reversal_v.value)),
        v_rest=_value(params.v_rest_v, sample, generator, n, dtype), v_k=float(np.asarray(params.v_k_v.value)),
        kappa_v=_value(params.kappa_v, sample, generator, n, dtype), input_delay_ns=float(params.input_delay_ns),
        window_ns=float(params.window_ns))


def site_currents_na(circuit: Circuit, m: int, codes: torch.Tensor, eps: torch.Tensor | None = None, *,
                     quantise: bool = True) -> torch.Tensor:
    """Signed verify-point currents (D, R, N) in nA (+ excitatory) of matrix ``m``'s codes (R, N).

    ``codes`` may be continuous: the forward pass uses the nearest code in -15..+15 (what the die is written
    with), the backward pass the identity times one ladder step (straight-through estimator); ``quantise=False``
    keeps them continuous (one mean ladder step per unit: an ideal network's weights). ``eps`` (D, R, N): the
    write residual of each site (1.7).
    """
    layer = circuit.layers[m]
    clipped = codes.clamp(-MAX_CODE, MAX_CODE)
    step = 0.5 * (circuit.exc_table_na[:, 1] + circuit.inh_table_na[:, 1])[:, None, None]
    if not quantise:
        current = clipped * step * layer.gain[:, None, :]
        return current if eps is None else current * (1.0 + eps)
    integer = torch.round(clipped).detach().to(torch.int64)
    mag = integer.abs()
    exc = circuit.exc_table_na[:, mag] * (integer > 0)
    inh = circuit.inh_table_na[:, mag] * (integer < 0)
    current = (exc - inh + (clipped - clipped.detach()) * step) * layer.gain[:, None, :]
    return current if eps is None else current * (1.0 + eps)


def conductances(circuit: Circuit, m: int, current_na: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-site (A, A lambda) of each polarity, (D, R, N) each: the verify point's normalisation of 1.6."""
    layer = circuit.layers[m]
    x_e = (circuit.v_rest - circuit.e_exc)[:, None, None]
    x_i = (circuit.e_inh - circuit.v_rest)[:, None, None]
    knee_e = -torch.expm1(-x_e / circuit.v_k)
    knee_i = -torch.expm1(-x_i / circuit.v_k)
    a_e = torch.relu(current_na) / ((1.0 + layer.lam_exc * x_e) * knee_e)
    a_i = torch.relu(-current_na) / ((1.0 + layer.lam_inh * x_i) * knee_i)
    return a_e, a_e * layer.lam_exc, a_i, a_i * layer.lam_inh


@dataclass(frozen=True)
class LayerSpikes:
    """A layer's threshold crossings + delays (D, P, N): finite ``edge_ns`` with ``fired`` where the edge is
    before W (elsewhere W), and the membrane at W (for a loss that reaches neurons that did not fire)."""

    edge_ns: torch.Tensor
    fired: torch.Tensor
    v_end: torch.Tensor

    def times_ns(self) -> torch.Tensor:
        """Spike edges with inf for a neuron that did not fire (0xFFFF on the die, 1.8)."""
        return torch.where(self.fired, self.edge_ns, torch.full_like(self.edge_ns, float("inf")))


def _affine_scan(decay: torch.Tensor, offset: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inclusive prefix composition of the maps ``v -> decay_e v + offset_e`` along ``dim`` (Hillis-Steele:
    log2(n) vectorised passes; every factor stays in [0, 1], so nothing overflows as a product of exponentials
    over a long window would). Returns (product of decays, offset) of each prefix."""
    n, shift = decay.shape[dim], 1
    while shift < n:
        head = [slice(None)] * decay.dim()
        head[dim] = slice(0, n - shift)
        pad_shape = list(decay.shape)
        pad_shape[dim] = shift
        prev_decay = torch.cat([torch.ones(pad_shape, dtype=decay.dtype), decay[tuple(head)]], dim=dim)
        prev_offset = torch.cat([torch.zeros(pad_shape, dtype=offset.dtype), offset[tuple(head)]], dim=dim)
        offset = decay * prev_offset + offset
        decay = decay * prev_decay
        shift *= 2
    return decay, offset


def _site_drive(circuit: Circuit, g: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Each site's share of (alpha, beta) while its row is on, (D, R, 2N): the sums of 1.6 are linear in it."""
    a_e, l_e, a_i, l_i = g
    return torch.cat([-a_e + l_e * circuit.e_exc + a_i + l_i * circuit.e_inh, l_e + l_i], dim=-1)


def _drive(circuit: Circuit, m: int, share: torch.Tensor, on: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha [nA], beta [nA/V]) (D, P, K, N) for row-on weights ``on`` (D, P, K, R) and the sites' shares."""
    n = share.shape[-1] // 2
    sums = torch.matmul(on, share[:, None])
    return sums[..., :n] - circuit.layers[m].leak_na[:, None, None, :], sums[..., n:]


@dataclass(frozen=True)
class _Events:
    """A batch's row events in time order: event e at ``times[..., e]`` (D or 1, P or 1, E) adds ``increments``
    (D, P, E, 2N) to the drive and ``rows`` (D, P, E) rows' coupling steps to the membrane."""

    times: torch.Tensor
    increments: torch.Tensor
    rows: torch.Tensor


def _events_by_row(share: torch.Tensor, row_on_ns: torch.Tensor, w: float) -> _Events:
    """One event per row, sorted per pattern (differentiable in the row times)."""
    d, p, r = row_on_ns.shape
    times, order = torch.sort(torch.clamp(row_on_ns, max=w), dim=-1)
    switched = (times < w).to(share.dtype)
    width = share.shape[-1]
    rows = share[:, None].expand(d, p, r, width).gather(2, order[..., None].expand(d, p, r, width))
    return _Events(times, rows * switched[..., None], switched)


def _events_by_time(share: torch.Tensor, row_on_ns: torch.Tensor, w: float, distinct: torch.Tensor) -> _Events:
    """One event per distinct switching time of the batch, shared by its patterns: input rows switch on a 10 ns
    grid (1.3), so a batch of integer codes has at most 255 of them however many rows there are."""
    index = torch.searchsorted(distinct, row_on_ns.contiguous())  # (D, P, R)
    hot = torch.nn.functional.one_hot(index, distinct.numel() + 1)[..., :-1].to(share.dtype)  # times >= W: no event
    increments = torch.matmul(hot.transpose(-1, -2), share[:, None])  # (D, P, E, 2N)
    return _Events(distinct[None, None], increments, hot.sum(dim=-2))


def layer_exact(circuit: Circuit, m: int, current_na: torch.Tensor, row_on_ns: torch.Tensor) -> LayerSpikes:
    """First crossings of layer m+1, exact within the conductance form: closed-form segments between row events.

    ``row_on_ns`` (D, P, R): when each row of matrix m switches on (anything >= W: never). Events are the rows
    sorted by time (:func:`_events_by_row`) or, when the times are not being trained and the batch has fewer
    distinct times than rows, those times (:func:`_events_by_time`); the drive after e events is a prefix sum
    of their increments (one cumsum, no product per event); each segment is an affine map of the membrane,
    composed by :func:`_affine_scan`. The membrane is monotone within a segment, so the first segment that ends
    at or below threshold holds the crossing, timed in closed form. (The membrane is not clamped at E- between
    events: a guard of the model, never reached between threshold and rest.)
    """
    layer, w = circuit.layers[m], circuit.window_ns
    share = _site_drive(circuit, conductances(circuit, m, current_na))  # (D, R, 2N)
    distinct = torch.unique(row_on_ns.detach()[row_on_ns.detach() < w])
    if not row_on_ns.requires_grad and distinct.numel() < row_on_ns.shape[-1]:
        events = _events_by_time(share, row_on_ns, w, distinct)
    else:
        events = _events_by_row(share, row_on_ns, w)
    return _crossings(circuit, m, events, w)


def _crossings(circuit: Circuit, m: int, events: _Events, w: float) -> LayerSpikes:
    layer = circuit.layers[m]
    d, p, e, width = events.increments.shape
    n = width // 2
    sums = torch.cumsum(events.increments, dim=2)
    dtype = sums.dtype
    sums = torch.cat([torch.zeros(d, p, 1, width, dtype=dtype), sums], dim=2)  # (D, P, E + 1, 2N): e events on
    alpha = sums[..., :n] - layer.leak_na[:, None, None, :]
    beta = sums[..., n:]
    times = events.times.expand(d, p, e)
    bounds = torch.cat([torch.zeros(d, p, 1, dtype=dtype), times, torch.full((d, p, 1), w, dtype=dtype)], dim=-1)
    span = (bounds[..., 1:] - bounds[..., :-1])[..., None]  # (D, P, E + 1, 1)
    kick = circuit.kappa_v[:, None, None, None] * torch.cat([torch.zeros(d, p, 1, dtype=dtype), events.rows],
                                                            dim=-1)[..., None]
    cap = layer.capacitance_ff[:, None, None, :]
    rate = torch.clamp(NA_PER_FF * beta / cap, min=1e-15)
    decay = torch.exp(-rate * span)
    gain = NA_PER_FF * alpha / cap * (-torch.expm1(-rate * span)) / rate
    through, offset = _affine_scan(decay, decay * kick + gain, dim=2)
    v0 = layer.start_v[:, None, None, :]
    v_end = through * v0 + offset  # (D, P, E + 1, N)
    v_start = torch.cat([v0.expand(d, p, 1, n), v_end[:, :, :-1]], dim=2) + kick
    v_th = layer.threshold_v[:, None, None, :]
    crossed = (v_start > v_th) & (v_end <= v_th)
    at_start = layer.start_v[:, None, :].expand(d, p, n) <= layer.threshold_v[:, None, :]
    any_cross = crossed.any(dim=2)
    index = crossed.to(torch.int8).argmax(dim=2, keepdim=True)  # the first crossed segment
    vs = v_start.gather(2, index)[:, :, 0]
    a, b = alpha.gather(2, index)[:, :, 0], beta.gather(2, index)[:, :, 0]
    seg_rate = rate.gather(2, index)[:, :, 0]
    u = NA_PER_FF * (a - b * vs) / cap[:, :, 0]
    z = seg_rate * (layer.threshold_v[:, None, :] - vs) / torch.where(any_cross, u, torch.full_like(u, -1.0))
    z = torch.where(any_cross, torch.clamp(z, max=1.0 - 1e-12), torch.zeros_like(z))
    seg_span = span.expand(d, p, e + 1, n).gather(2, index)[:, :, 0]
    delay = torch.minimum(-torch.log1p(-z) / seg_rate, seg_span)
    start_t = bounds[..., :-1, None].expand(d, p, e + 1, n).gather(2, index)[:, :, 0]
    cross = torch.where(at_start, torch.zeros_like(delay),
                        torch.where(any_cross, start_t + delay, torch.full_like(delay, w)))
    edge = cross + layer.delay_ns[:, None, :]
    fired = (at_start | any_cross) & (edge < w)
    v_w = torch.minimum(v_end[:, :, -1], torch.full_like(v_end[:, :, -1], circuit.e_inh))
    return LayerSpikes(torch.where(fired, edge, torch.full_like(edge, w)), fired, v_w)


def layer_grid(circuit: Circuit, m: int, current_na: torch.Tensor, row_on_ns: torch.Tensor,
               step_ns: float = 40.0) -> LayerSpikes:
    """First crossings of layer m+1 on a time grid (the seed's DSTD): a row counts in a step with the fraction
    of the step it is on (a piecewise-linear surrogate of its switching step, so gradients reach its time);
    the membrane follows the segment's closed form per step and the crossing is interpolated inside its step.

    Only the steps in which rows still switch on are composed by :func:`_affine_scan`; after the last one
    every step repeats the same map, whose powers :func:`_repeat_step` writes in closed form. On RCS-L's input
    layer the pixels switch on within the first 3 us of the 16 us window, so the scan covers a sixth of the
    grid (the scan's passes over the (P, K, N) grid were most of a training step)."""
    layer, w = circuit.layers[m], circuit.window_ns
    share = _site_drive(circuit, conductances(circuit, m, current_na))
    k = int(np.ceil(w / step_ns))
    switching = row_on_ns.detach()[row_on_ns.detach() < w]
    # from the step after the last row's switching step on, every step sees the same rows
    active = min(k, int(switching.max() // step_ns) + 2) if switching.numel() else 1
    edges = torch.arange(1, active + 1, dtype=row_on_ns.dtype) * step_ns  # step ends
    frac = torch.clamp((edges[:, None] - row_on_ns[:, :, None, :]) / step_ns, 0.0, 1.0)  # (D, P, K', R)
    frac = torch.where(row_on_ns[:, :, None, :] < w, frac, torch.zeros_like(frac))
    alpha, beta = _drive(circuit, m, share, frac)  # (D, P, K', N)
    cap = layer.capacitance_ff[:, None, None, :]
    rate = torch.clamp(NA_PER_FF * beta / cap, min=1e-15)
    decay = -rate * step_ns  # log of the step's decay factor
    gain = NA_PER_FF * alpha / cap * (-torch.expm1(decay)) / rate  # V_{k+1} = V_k e^{decay} + gain
    rows_on = frac.sum(dim=-1)  # (D, P, K')
    coupling = circuit.kappa_v[:, None, None, None] * rows_on.diff(dim=-1, prepend=torch.zeros_like(
        rows_on[..., :1]))[..., None]  # rows newly on in a step lift the membrane
    factor = torch.exp(decay)  # V_k = e^{decay_k} (V_{k-1} + kappa_k) + gain_k, composed by the scan
    through, offset = _affine_scan(factor, factor * coupling + gain, dim=2)
    v0 = layer.start_v[:, None, None, :]
    v_grid = through * v0 + offset
    if k > active:
        v_grid = torch.cat([v_grid, _repeat_step(v_grid[:, :, -1:], decay[:, :, -1:], gain[:, :, -1:], k - active)],
                           dim=2)
    v_prev = torch.cat([v0.expand(*v_grid.shape[:2], 1, -1), v_grid[:, :, :-1]], dim=2)
    v_th = layer.threshold_v[:, None, None, :]
    below = v_grid <= v_th
    first = below & (torch.cumsum(below.to(torch.int64), dim=2) == 1)
    fired_any = below.any(dim=2)
    index = first.to(torch.int64).argmax(dim=2, keepdim=True)
    vp, vn = v_prev.gather(2, index)[:, :, 0], v_grid.gather(2, index)[:, :, 0]
    th = layer.threshold_v[:, None, :]
    frac_in = torch.clamp((vp - th) / torch.where(fired_any, vp - vn, torch.ones_like(vp)), 0.0, 1.0)
    cross = (index[:, :, 0].to(frac_in.dtype) + frac_in) * step_ns
    edge = cross + layer.delay_ns[:, None, :]
    fired = fired_any & (edge < w)
    return LayerSpikes(torch.where(fired, edge, torch.full_like(edge, w)), fired, v_grid[:, :, -1])


def _repeat_step(v: torch.Tensor, decay: torch.Tensor, gain: torch.Tensor, steps: int) -> torch.Tensor:
    """The membrane after 1..``steps`` repeats of ``v -> e^decay v + gain`` (each (D, P, 1, N)): ``e^(j decay) v +
    gain (1 - e^(j decay)) / (1 - e^decay)``, in expm1 form so that a near-zero decay (no row with a lambda on)
    stays exact. Returns (D, P, steps, N)."""
    j_decay = torch.arange(1, steps + 1, dtype=v.dtype)[:, None] * decay
    return torch.exp(j_decay) * v + gain * (torch.expm1(j_decay) / torch.expm1(decay))


def input_row_times(circuit: Circuit, time_codes: torch.Tensor, bias_code: torch.Tensor) -> torch.Tensor:
    """Matrix 0's row times (D, P, n_in + 1): ``10 ns x code + d_in`` (1.3), code 255 never (W)."""
    codes = torch.cat([time_codes, bias_code.expand(*time_codes.shape[:-1], 1)], dim=-1)
    times = INPUT_LSB_NS * codes + circuit.input_delay_ns
    return torch.where(codes >= NO_SPIKE_CODE - 0.5, torch.full_like(times, circuit.window_ns), times)


def network(circuit: Circuit, currents_na: list[torch.Tensor], time_codes: torch.Tensor,
            bias_codes: torch.Tensor, *, method: str = "exact", step_ns: float = 40.0) -> list[LayerSpikes]:
    """Every layer's spikes for input time codes (D, P, n_in) (float: continuous codes train the bias times);
    ``bias_codes``: one time code per matrix; ``method``: "exact" (:func:`layer_exact`) or "dstd"
    (:func:`layer_grid` with ``step_ns``)."""
    if method not in ("exact", "dstd"):
        raise ValueError(f"unknown spike-time method {method!r}")
    rows = input_row_times(circuit, time_codes, bias_codes[0])
    out = []
    for m, current in enumerate(currents_na):
        if method == "exact":
            spikes = layer_exact(circuit, m, current, rows)
        else:
            spikes = layer_grid(circuit, m, current, rows, step_ns)
        out.append(spikes)
        if m + 1 < len(currents_na):
            bias = input_row_times(circuit, torch.zeros(*rows.shape[:2], 0, dtype=rows.dtype), bias_codes[m + 1])
            rows = torch.cat([torch.where(spikes.fired, spikes.edge_ns, torch.full_like(spikes.edge_ns,
                                                                                    circuit.window_ns)), bias], dim=-1)
    return out


def predict_spike_times(params: TtfsDieParameters, codes: list[np.ndarray], time_codes: np.ndarray,
                        bias_codes: np.ndarray, *, quantise: bool = True) -> list[np.ndarray]:
    """First-spike edge times (ns, inf: none before W) of every layer >= 1 for integer time codes (P, n_in), at
    the nominal write (eps = 0): what the die should answer, less the TDC's quantisation and the noise.
    ``quantise=False`` takes continuous codes as analog weights (site_currents_na)."""
    circuit = build_circuit(params)
    time_codes = np.atleast_2d(time_codes)
    chunks = []
    with torch.no_grad():
        currents = [site_currents_na(circuit, m, _t(c), quantise=quantise) for m, c in enumerate(codes)]
        for first in range(0, len(time_codes), PREDICT_CHUNK):
            layers = network(circuit, currents, _t(time_codes[first:first + PREDICT_CHUNK])[None], _t(bias_codes))
            chunks.append([s.times_ns()[0].numpy() for s in layers])
    return [np.concatenate(per_layer) for per_layer in zip(*chunks)]


def first_to_fire(output_times_ns: np.ndarray, n_classes: int) -> np.ndarray:
    """The class of each pattern: the output (of the first ``n_classes``) that fires first; -1 when none fires
    before W (1.1: the class is the output that fires first)."""
    times = np.asarray(output_times_ns)[..., :n_classes]
    return np.where(np.isfinite(times).any(axis=-1), np.argmin(times, axis=-1), -1)
