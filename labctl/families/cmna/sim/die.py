"""A simulated CMNA die: analog core, latches, power and overstress (contract sections 1, 4).

The die is what a bridge server talks to. Its digital side (latches, the
FPGA's DAC/route/monitor registers, STATUS flags) follows the bridge protocol's
semantics; its analog side computes, vectorised, what the contract's signal
path describes, with the hidden parameters of a :class:`DieTruth`:

- layer-0 input ``r0 = bias_gain * code * 0.1 nA + bias_offset`` (+ the EXT_IN
  soma current on the routed channel, only while powered and routed);
- soma state ``z = f(max(r, 0)) + leak`` (``f``: :func:`soma_transfer`);
  positive-path output ``y = d * a+ * z``;
- synapse (sign s, magnitude bits b) from soma i to soma j passes
  ``+-sum_b bit_b 2^b (1/12) g[i, j, s, b] * d * a_s_i * z_i``, negative for
  s = 1; a soma of layer l > 0 gets the sum of its column;
- output ``rate_k = C2F_k * d * (d * a+_k * z_k) + dark_k``;
- MON sinks ``mon_gain * d * (1 + 0.25 (V - 0.9)) * y`` of the selected neuron;

``d = 1 + alpha (T(t) - 25)`` is the drift factor at bench time t (clock time).
One reading of a C2F channel counts ``Poisson(rate * (1 + N(0, noise_frac)) * gate)``.
A damaged die's a+ and a- are scaled by a random factor in 0.3..0.8 per neuron.

Pads (:mod:`labctl.families.cmna.sim.die_pads`) are polled at the start of every operation
and whenever an instrument reports a change, so power-up and overstress are
seen as soon as they happen.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from labctl.families.cmna.chip import ChipDescription
from labctl.sim.clock import VirtualClock
from labctl.families.cmna.sim.die_pads import (
    EXT_IN_ABS_MAX_A,
    EXT_IN_OVER_VDD_MIN_A,
    EXT_IN_OVER_VDD_V,
    MON_MAX_V,
    MON_MIN_V,
    MON_TOLERANCE_V,
    POWER_ON_V,
    SUPPLY_MAX_V,
    SUPPLY_MIN_V,
    VDD_ABS_MAX_V,
    ExtInPad,
    MonPad,
    PadState,
    VddPad,
)
from labctl.sim.pads import Pad
from labctl.families.cmna.sim.truth import MAGNITUDE_BITS, W_LSB, DieTruth, soma_transfer

PARTS: dict[str, tuple[int, ...]] = {"CMNA-777": (7, 7, 7), "CMNA-L": (196, 100, 50, 10)}

DAC_LSB_A = 1e-10
DAC_BITS = 12
MAX_GATE_MS = 1000
MAX_PAYLOAD = 1024
GATE_EXCESS_MAX_S = 200e-6
"""A MEASURE gate really lasts the requested time plus up to 200 us (reported to the host)."""
DAMAGE_GAIN_RANGE = (0.3, 0.8)
FLAG_SUPPLY = 1 << 0
FLAG_OVERSTRESS = 1 << 1
FLAG_LATCHES_UNWRITTEN = 1 << 2
FLAG_OVERRUN = 1 << 3
_SIGN = 0x8
_PAD_CHANGE_WAIT_S = 0.05


class DieFault(Exception):
    """Raised by die ops that the bridge must answer with HW_FAULT."""


@dataclass(frozen=True)
class _Core:
    """Immutable snapshot of everything the analog core computes from.

    Replaced (never mutated) on every change, so the MON pad can evaluate the
    network in an instrument thread without the die's lock.
    """

    powered: bool
    a_plus: tuple[np.ndarray, ...]
    a_minus: tuple[np.ndarray, ...]
    matrices: tuple[np.ndarray, ...]
    """Per matrix (rows, cols): signed effective weight a_s_i * w_ij, drift not included."""
    dac_codes: np.ndarray
    ext_channel: int | None
    ext_current_a: float
    monitor: tuple[int, int] | None


def _same_operating_state(a: "_Core", b: "_Core") -> bool:
    """Whether two snapshots draw the same supply current (same inputs, weights and power)."""
    return (a.powered == b.powered and a.ext_channel == b.ext_channel and a.ext_current_a == b.ext_current_a
            and all(x is y for x, y in zip(a.matrices, b.matrices)) and all(np.array_equal(x, y) for x, y in zip(a.a_plus, b.a_plus))
            and np.array_equal(a.dac_codes, b.dac_codes))


def _soma_states(truth: DieTruth, core: _Core, codes: np.ndarray, ext_a: float,
                 drift: np.ndarray) -> list[np.ndarray]:
    """z = f(max(r, 0)) + leak of every soma, per layer (P, n_l), for patterns ``codes`` (P, n0)."""
    r = truth.bias_gain * codes * DAC_LSB_A + truth.bias_offset_a
    if core.ext_channel is not None and ext_a:
        r[:, core.ext_channel] += ext_a
    states = [soma_transfer(r, truth.compression_onset_a[0]) + truth.leak_a[0]]
    for m, weights in enumerate(core.matrices):
        r = drift[:, None] * (states[-1] @ weights)
        states.append(soma_transfer(r, truth.compression_onset_a[m + 1]) + truth.leak_a[m + 1])
    return states


def _output_rates_hz(truth: DieTruth, core: _Core, z_out: np.ndarray, drift: np.ndarray) -> np.ndarray:
    """C2F rate: C2F gain x (drifted) a+ of the output soma x its state, plus the dark rate."""
    d = drift[:, None]
    return truth.c2f_gain_hz_per_a * d * (d * core.a_plus[-1] * z_out) + truth.c2f_dark_hz


class SimulatedDie:
    """One CMNA die with its three pads; every public method is one bridge operation."""

    def __init__(self, part: str = "CMNA-777", seed: int = 0, clock: VirtualClock | None = None,
                 truth: DieTruth | None = None) -> None:
        if part not in PARTS:
            raise ValueError(f"unknown part {part!r}; known parts: {', '.join(PARTS)}")
        if not 0 <= seed <= 999_999:
            raise ValueError(f"die seed {seed} outside 0..999999 (it is the serial number)")
        sizes = PARTS[part]
        if truth is None:
            truth = DieTruth.draw(sizes, seed)
        elif tuple(truth.layer_sizes) != sizes:
            raise ValueError(f"truth is for layers {truth.layer_sizes}, part {part} has {sizes}")
        self.chip = ChipDescription(
            serial=f"{part}-{seed:06d}", protocol=1, firmware=(1, 2), layer_sizes=sizes,
            magnitude_bits=MAGNITUDE_BITS, dac_bits=DAC_BITS, dac_lsb_a=DAC_LSB_A,
            c2f_gain_hz_per_a=1e12, max_gate_ms=MAX_GATE_MS, max_payload=MAX_PAYLOAD,
        )
        self.truth = truth
        self.clock = clock if clock is not None else VirtualClock()
        self.lock = threading.RLock()
        self.overrun_next_gate_ms: float = 0.0
        """Test hook (bridge fault injection): added to the next gate, sets STATUS bit 3."""
        self._rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
        self._helper_rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
        """Noise for :meth:`soma_outputs`, kept apart so ground-truth peeks do not change readings."""
        self._t0_s = self.clock.now()
        shapes = [self.chip.matrix_shape(m) for m in range(self.chip.n_matrices)]
        self._stuck_clear = [np.full(s, 0xF, np.uint8) for s in shapes]
        self._stuck_set = [np.zeros(s, np.uint8) for s in shapes]
        for m, row, col, bit, value in truth.stuck_bits:
            self._stuck_clear[m][row, col] &= ~np.uint8(1 << bit)
            self._stuck_set[m][row, col] |= np.uint8(value << bit)
        self._latches = [self._held(m, np.zeros(s, np.uint8)) for m, s in enumerate(shapes)]
        self._written = [np.zeros(s[0], bool) for s in shapes]
        self._latches_valid = False
        self._weights: list[np.ndarray | None] = [None] * len(shapes)
        # FPGA registers
        self._dac = np.zeros(sizes[0], np.uint16)
        self._ext_channel: int | None = None
        self._monitor: tuple[int, int] | None = None
        # power and health
        self._powered = False
        self._supply_ok = False
        self._overstress = False
        self._overrun = False
        self._damage_cause: str | None = None
        self._damage_scale = [np.ones(n) for n in sizes]
        self._ext_current_a = 0.0
        self._refreshing = False
        self.pad_state = PadState()
        self._branch_cache_a: float | None = None
        self._core = self._build_core()
        self.pads: dict[str, Pad] = {
            "VDD": VddPad(self, truth.noise_frac),
            "EXT_IN": ExtInPad(self, truth.noise_frac),
            "MON": MonPad(self, truth.noise_frac),
        }
        for pad in self.pads.values():
            pad.on_change(self._on_pad_change)

    # -- public state --------------------------------------------------------

    @property
    def damaged(self) -> bool:
        return self._damage_cause is not None

    @property
    def damage_cause(self) -> str | None:
        """Which absolute maximum rating was exceeded first (None on a healthy die)."""
        return self._damage_cause

    # -- bridge operations ---------------------------------------------------

    def reset(self) -> None:
        """RESET: clear FPGA registers and sticky flags; clear the latches if the chain has power."""
        with self.lock:
            self._refresh()
            self._dac[:] = 0
            self._ext_channel = None
            self._monitor = None
            self._overrun = False
            self._overstress = self.damaged
            if self._supply_ok:
                for m, latches in enumerate(self._latches):
                    latches[:] = self._held(m, np.zeros_like(latches))
                    self._written[m][:] = True
                    self._weights[m] = None
                self._latches_valid = True
            self._refresh()

    def status(self) -> tuple[int, int, float]:
        """STATUS: (flags, uptime in ms since the die was created, die temperature in degC)."""
        with self.lock:
            self._refresh()
            flags = 0
            flags |= 0 if self._supply_ok else FLAG_SUPPLY
            flags |= FLAG_OVERSTRESS if self._overstress else 0
            flags |= 0 if (self._powered and self._latches_valid) else FLAG_LATCHES_UNWRITTEN
            flags |= FLAG_OVERRUN if self._overrun else 0
            now = self.clock.now()
            uptime_ms = int(round((now - self._t0_s) * 1e3)) & 0xFFFFFFFF
            return flags, uptime_ms, float(self.truth.temperature_c(now))

    def write_latches(self, matrix: int, first_row: int, nibbles: np.ndarray) -> None:
        """WRITE_WEIGHTS: ``nibbles`` (rows, cols) latch codes 0..15 into rows from ``first_row``."""
        with self.lock:
            codes = np.asarray(nibbles)
            rows, cols = self.chip.matrix_shape(matrix)
            if codes.ndim != 2 or codes.shape[1] != cols:
                raise ValueError(f"matrix {matrix} rows have {cols} columns, got array of shape {codes.shape}")
            self._check_rows(matrix, first_row, codes.shape[0], rows)
            if codes.size and (codes.min() < 0 or codes.max() > 0xF):
                raise ValueError("latch codes are 4-bit (0..15)")
            if codes.shape[0] == 0:
                return
            self._refresh()
            self._require_latch_power()
            end = first_row + codes.shape[0]
            self._latches[matrix][first_row:end] = self._held(matrix, codes.astype(np.uint8), first_row)
            self._written[matrix][first_row:end] = True
            self._latches_valid = self._latches_valid or all(w.all() for w in self._written)
            self._weights[matrix] = None
            self._publish()

    def read_latches(self, matrix: int, first_row: int, count: int) -> np.ndarray:
        """READ_WEIGHTS: what the latches really hold (stuck bits included), (count, cols) uint8."""
        with self.lock:
            rows, cols = self.chip.matrix_shape(matrix)
            self._check_rows(matrix, first_row, count, rows)
            if count == 0:
                return np.zeros((0, cols), np.uint8)
            self._refresh()
            self._require_latch_power()
            return self._latches[matrix][first_row:first_row + count].copy()

    def set_dac(self, first_channel: int, codes: Sequence[int]) -> None:
        """SET_INPUTS: bias generator codes of channels ``first_channel``.. (FPGA registers)."""
        with self.lock:
            values = np.asarray(codes, dtype=np.int64).reshape(-1)
            if values.size == 0:
                return
            n0 = self.chip.n_inputs
            if first_channel < 0 or first_channel + values.size > n0:
                raise ValueError(f"input channels {first_channel}..{first_channel + values.size - 1} "
                                 f"outside 0..{n0 - 1}")
            self._check_codes(values)
            self._dac[first_channel:first_channel + values.size] = values
            self._publish()

    def route_ext_in(self, channel: int | None) -> None:
        """ROUTE_EXT_IN: connect the EXT_IN pad to layer-0 channel ``channel`` (None disconnects)."""
        with self.lock:
            if channel is not None and not 0 <= channel < self.chip.n_inputs:
                raise ValueError(f"input channel {channel} outside 0..{self.chip.n_inputs - 1}")
            self._ext_channel = channel
            self._refresh()

    def set_monitor(self, layer: int, neuron: int | None) -> None:
        """SET_MONITOR: copy neuron ``neuron`` of ``layer`` to MON (neuron None disconnects)."""
        with self.lock:
            if neuron is not None:
                sizes = self.chip.layer_sizes
                if not 0 <= layer < len(sizes):
                    raise ValueError(f"layer {layer} outside 0..{len(sizes) - 1}")
                if not 0 <= neuron < sizes[layer]:
                    raise ValueError(f"neuron {neuron} outside 0..{sizes[layer] - 1} of layer {layer}")
            self._monitor = None if neuron is None else (int(layer), int(neuron))
            self._publish()

    def measure(self, gate_ms: int) -> tuple[int, np.ndarray]:
        """MEASURE: count C2F events for one gate; returns (actual gate in us, counts per output)."""
        with self.lock:
            self._check_gate(gate_ms)
            self._refresh()
            self._require_measurable()
            gate_s = gate_ms * 1e-3 + self._rng.uniform(0.0, GATE_EXCESS_MAX_S) + self._take_overrun_s()
            drift = np.array([self.truth.drift_factor(self.clock.now() + gate_s / 2)])
            codes = self._core.dac_codes[None, :].astype(np.float64)
            counts = self._count(codes, drift, np.array([gate_s]))
            self.clock.advance(gate_s)
            return int(round(gate_s * 1e6)), counts[0]

    def run_batch(self, gate_ms: int, patterns: np.ndarray) -> np.ndarray:
        """RUN_BATCH: one gate per pattern of DAC codes (P, n0); counts (P, n_out). DAC codes stay."""
        with self.lock:
            self._check_gate(gate_ms)
            codes = np.asarray(patterns)
            n0 = self.chip.n_inputs
            if codes.ndim != 2 or codes.shape[0] < 1 or codes.shape[1] != n0:
                raise ValueError(f"patterns must be (P >= 1, {n0}) DAC codes, got shape {codes.shape}")
            self._check_codes(codes)
            self._refresh()
            self._require_measurable()
            gates_s = np.full(codes.shape[0], gate_ms * 1e-3)
            gates_s[0] += self._take_overrun_s()
            mid_s = self.clock.now() + np.cumsum(gates_s) - gates_s / 2
            counts = self._count(codes.astype(np.float64), self.truth.drift_factor(mid_s), gates_s)
            self.clock.advance(float(gates_s.sum()))
            return counts

    # -- ground truth (tests, benchmarks) ------------------------------------

    def soma_outputs(self, dac_codes: np.ndarray, ext_in_a: float = 0.0,
                     noiseless: bool = True) -> list[np.ndarray]:
        """Positive-path output current ``d * a+ * (f(max(r, 0)) + leak)`` of every soma, per layer (P, n_l).

        Uses the latches as they are held now, the drift at the present clock
        time, and ``ext_in_a`` on the routed channel (power state is ignored).
        ``noiseless=False`` applies one reading's relative noise to every value.
        """
        with self.lock:
            codes = np.atleast_2d(np.asarray(dac_codes, dtype=np.float64))
            if codes.shape[1] != self.chip.n_inputs:
                raise ValueError(f"expected {self.chip.n_inputs} DAC codes per pattern, got {codes.shape[1]}")
            if ext_in_a and self._ext_channel is None:
                raise ValueError("ext_in_a needs a routed EXT_IN channel")
            core = self._build_core()
            drift = np.full(codes.shape[0], self.truth.drift_factor(self.clock.now()))
            states = _soma_states(self.truth, core, codes, ext_in_a, drift)
            outputs = [drift[:, None] * a * z for a, z in zip(core.a_plus, states)]
            if not noiseless:
                nf = self.truth.noise_frac
                outputs = [y * (1.0 + self._helper_rng.normal(0.0, nf, y.shape)) for y in outputs]
            return outputs

    # -- pad side (called by the pads, lock-free) ----------------------------

    def mon_copy_a(self) -> float:
        """Copy current of the selected neuron at 0.9 V: mon_gain * d * (d * a+ * z)."""
        core = self._core
        if not core.powered or core.monitor is None:
            return 0.0
        layer, neuron = core.monitor
        drift = np.array([self.truth.drift_factor(self.clock.now())])
        z = _soma_states(self.truth, core, core.dac_codes[None, :].astype(np.float64),
                         core.ext_current_a, drift)[layer][0, neuron]
        d = float(drift[0])
        return float(self.truth.mon_gain * d * d * core.a_plus[layer][neuron] * z)

    # -- internals -------------------------------------------------------------

    def _on_pad_change(self) -> None:
        """An instrument changed a pad: look at once, unless the die stays busy.

        The wait is short because a thread that holds the die's lock may be
        waiting for this instrument's lock (deadlock); a change not seen here
        is seen by the next operation, which polls the pads first.
        """
        if self.lock.acquire(timeout=_PAD_CHANGE_WAIT_S):
            try:
                self._refresh()
            finally:
                self.lock.release()

    def _refresh(self) -> None:
        """Poll all pads: power transitions, supply range, overstress, EXT_IN current."""
        if self._refreshing:
            return
        self._refreshing = True
        try:
            self._refresh_pads()
        finally:
            self._refreshing = False

    def _refresh_pads(self) -> None:
        vdd = self.pads["VDD"].operating_point()
        vdd_v = vdd.voltage_v if vdd.voltage_v is not None else 0.0
        if vdd_v > VDD_ABS_MAX_V:
            self._overstressed(f"VDD at {vdd_v:.3f} V, above the {VDD_ABS_MAX_V:.2f} V absolute maximum")
        powered = vdd_v >= POWER_ON_V
        if powered and not self._powered:
            self._power_up()
        elif self._powered and not powered:
            self._latches_valid = False
        self._powered = powered
        self._supply_ok = powered and SUPPLY_MIN_V <= vdd_v <= SUPPLY_MAX_V and not vdd.in_compliance
        self.pad_state = PadState(powered=powered, vdd_v=vdd_v, ext_in_routed=self._ext_channel is not None)

        ext = self.pads["EXT_IN"].operating_point()
        self._ext_current_a = 0.0
        if ext.voltage_v is not None:
            if abs(ext.current_a) > EXT_IN_ABS_MAX_A:
                self._overstressed(f"EXT_IN current {ext.current_a:g} A beyond the 2 uA absolute maximum")
            elif ext.voltage_v > vdd_v + EXT_IN_OVER_VDD_V and abs(ext.current_a) > EXT_IN_OVER_VDD_MIN_A:
                self._overstressed(f"EXT_IN at {ext.voltage_v:.3f} V, above VDD ({vdd_v:.3f} V), "
                                   f"carrying {ext.current_a:g} A")
            self._ext_current_a = ExtInPad.soma_current_a(ext.voltage_v, self.pad_state)
        self._publish()

        mon = self.pads["MON"].operating_point()
        if mon.voltage_v is not None and not (
                MON_MIN_V - MON_TOLERANCE_V <= mon.voltage_v <= MON_MAX_V + MON_TOLERANCE_V):
            self._overstressed(f"MON at {mon.voltage_v:.3f} V, outside the 0..1.8 V absolute maximum")
            self._publish()

    def _power_up(self) -> None:
        """VDD rose through 1.0 V: every latch comes up random (STATUS bit 2 until all written)."""
        for m, latches in enumerate(self._latches):
            random = self._rng.integers(0, 16, latches.shape, dtype=np.uint8)
            latches[:] = self._held(m, random)
            self._written[m][:] = False
            self._weights[m] = None
        self._latches_valid = False

    def _overstressed(self, cause: str) -> None:
        """An absolute maximum rating was exceeded: the die is damaged for good."""
        self._overstress = True
        if self._damage_cause is None:
            self._damage_cause = cause
            lo, hi = DAMAGE_GAIN_RANGE
            self._damage_scale = [self._rng.uniform(lo, hi, n) for n in self.chip.layer_sizes]
            self._weights = [None] * len(self._weights)

    def _publish(self) -> None:
        """Rebuild the analog snapshot; the supply current is recomputed only when asked for
        and only after something it depends on changed (RUN_BATCH refreshes the pads every call)."""
        old, self._core = self._core, self._build_core()
        if old is None or not _same_operating_state(old, self._core):
            self._branch_cache_a = None
        self.pad_state = PadState(powered=self._powered, vdd_v=self.pad_state.vdd_v,
                                  ext_in_routed=self._ext_channel is not None)

    def branch_current_a(self) -> float:
        """Supply current of all branches for the present state (cached: RUN_BATCH never asks)."""
        if not self._powered:
            return 0.0
        if self._branch_cache_a is None:
            self._branch_cache_a = self._branch_current_a()
        return self._branch_cache_a

    def _build_core(self) -> _Core:
        a_plus = tuple(a * s for a, s in zip(self.truth.a_plus, self._damage_scale))
        a_minus = tuple(a * s for a, s in zip(self.truth.a_minus, self._damage_scale))
        for m, cached in enumerate(self._weights):
            if cached is None:
                self._weights[m] = self._effective_weights(m, a_plus[m], a_minus[m])
        return _Core(
            powered=self._powered, a_plus=a_plus, a_minus=a_minus,
            matrices=tuple(self._weights),  # type: ignore[arg-type]
            dac_codes=self._dac.copy(), ext_channel=self._ext_channel,
            ext_current_a=self._ext_current_a if self._powered else 0.0, monitor=self._monitor,
        )

    def _effective_weights(self, matrix: int, a_plus: np.ndarray, a_minus: np.ndarray) -> np.ndarray:
        """Signed a_s_i * sum_b bit_b 2^b w_lsb g[i, j, s, b] for the latches as held."""
        codes = self._latches[matrix]
        negative = (codes & _SIGN) != 0
        bits = (codes[..., None] >> np.arange(MAGNITUDE_BITS)) & 1
        gains = self.truth.synapse_gain[matrix]
        mirror = np.where(negative[..., None], gains[:, :, 1, :], gains[:, :, 0, :])
        magnitude = W_LSB * (bits * mirror * (1 << np.arange(MAGNITUDE_BITS))).sum(axis=-1)
        return np.where(negative, -a_minus[:, None] * magnitude, a_plus[:, None] * magnitude)

    def _branch_current_a(self) -> float:
        """Currents of all soma branches (input, + and - drivers), synapses and C2F unit synapses."""
        core = self._core
        d = float(self.truth.drift_factor(self.clock.now()))
        drift = np.array([d])
        states = _soma_states(self.truth, core, core.dac_codes[None, :].astype(np.float64),
                              core.ext_current_a, drift)
        total = sum(float((z * (1.0 + d * ap + d * am)).sum())
                    for z, ap, am in zip(states, core.a_plus, core.a_minus))
        total += sum(float(d * (z @ np.abs(w)).sum()) for z, w in zip(states, core.matrices))
        total += float((d * core.a_plus[-1] * states[-1]).sum())
        return total

    def _count(self, codes: np.ndarray, drift: np.ndarray, gates_s: np.ndarray) -> np.ndarray:
        """C2F counts for patterns (P, n0): Poisson(rate (1 + N(0, noise_frac)) gate)."""
        core = self._core
        states = _soma_states(self.truth, core, codes, core.ext_current_a, drift)
        rates = _output_rates_hz(self.truth, core, states[-1], drift)
        rates = rates * (1.0 + self._rng.normal(0.0, self.truth.noise_frac, rates.shape))
        counts = self._rng.poisson(np.maximum(rates, 0.0) * gates_s[:, None])
        return np.minimum(counts, 0xFFFFFFFF).astype(np.uint32)

    def _take_overrun_s(self) -> float:
        extra_ms = self.overrun_next_gate_ms
        self.overrun_next_gate_ms = 0.0
        if extra_ms > 0:
            self._overrun = True
            return extra_ms * 1e-3
        return 0.0

    def _held(self, matrix: int, codes: np.ndarray, first_row: int = 0) -> np.ndarray:
        """What latches hold after writing ``codes`` from ``first_row``: stuck bits win."""
        rows = slice(first_row, first_row + codes.shape[0])
        return (codes & self._stuck_clear[matrix][rows]) | self._stuck_set[matrix][rows]

    def _require_latch_power(self) -> None:
        if not self._supply_ok:
            raise DieFault("supply out of range (VDD must be 1.71..1.89 V, not in compliance): "
                           "the latch chain has no power")

    def _require_measurable(self) -> None:
        if self.damaged:
            raise DieFault(f"die damaged: {self._damage_cause}")
        if not self._supply_ok:
            raise DieFault("supply out of range (VDD must be 1.71..1.89 V, not in compliance)")

    @staticmethod
    def _check_rows(matrix: int, first_row: int, count: int, rows: int) -> None:
        if first_row < 0 or count < 0 or first_row + count > rows:
            raise ValueError(f"rows {first_row}..{first_row + count - 1} outside 0..{rows - 1} of matrix {matrix}")

    def _check_codes(self, codes: np.ndarray) -> None:
        top = self.chip.max_dac_code
        if codes.size and (codes.min() < 0 or codes.max() > top):
            raise ValueError(f"DAC codes must lie in 0..{top}")

    def _check_gate(self, gate_ms: int) -> None:
        if not 1 <= gate_ms <= self.chip.max_gate_ms:
            raise ValueError(f"gate {gate_ms} ms outside 1..{self.chip.max_gate_ms} ms")
