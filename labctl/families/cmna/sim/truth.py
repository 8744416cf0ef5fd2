"""The hidden parameters of one simulated die (contract section 1, "Mismatch").

Everything that makes one simulated CMNA differ from the nominal datasheet is
drawn here, once, from a seed, and kept in a :class:`DieTruth`. The die
(:mod:`labctl.families.cmna.sim.die`) only reads it. Tests and benchmarks compare what
characterisation measured against it; it is stored in HDF5 so that a test can
read the truth of a die served by another process. Nothing outside
``labctl.sim`` and the tests may look at it.

Spreads are drawn per die inside the contract's typical ranges, then per
neuron, channel or synapse from them (log-normal where the contract says so).

Model formulas (used by the die; keep docs in sync):

- soma transfer with compression onset ``r0`` (about 300 nA, per neuron)::

      f(r) = r                              for 0 <= r <= r0
      f(r) = r0 + (r - r0) / (1 + (r - r0) / r0)   for r > r0
      f(r) = 0                              for r < 0

  continuous with slope 1 at ``r0``, saturating towards ``2 * r0``.
- die temperature ``T(t) = 25 + 1.5 * sin(2 pi t / 1800 s + phase) + W(t)``
  degC, ``W`` a seeded random walk (knots every 10 s, steps uniform in
  +-1.5 mdegC, linearly interpolated, ``W(0) = 0``).
- drift factor of every gain (a+, a-, C2F, MON): ``1 + alpha * (T - 25)``,
  alpha in 0.5..1.5e-3 per degC, hence at most 0.049 % per minute.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import h5py
import numpy as np

W_LSB = 1.0 / 12.0
"""Nominal unit synapse weight (mirror W/L 0.5 against the soma's 6), contract section 1."""
MAGNITUDE_BITS = 3
NOMINAL_C2F_HZ_PER_A = 1e12
NOMINAL_ONSET_A = 300e-9
STUCK_BIT_PROBABILITY = 2e-4
TEMPERATURE_NOMINAL_C = 25.0
TEMPERATURE_SWING_C = 1.5
TEMPERATURE_PERIOD_S = 1800.0
WALK_KNOT_S = 10.0
WALK_STEP_C = 1.5e-3
_WALK_BLOCK = 1024
_FORMAT = "labctl.sim.DieTruth/1"

StuckBit = tuple[int, int, int, int, int]
"""(matrix, row, column, latch bit 0..3, stuck value 0/1)."""


def soma_transfer(r_a: np.ndarray, onset_a: np.ndarray) -> np.ndarray:
    """Rectified, compressive soma response f(max(r, 0)) (formula in the module docstring)."""
    r = np.maximum(r_a, 0.0)
    excess = np.maximum(r - onset_a, 0.0)
    return np.minimum(r, onset_a) + excess / (1.0 + excess / onset_a)


@dataclass(eq=False)
class DieTruth:
    """All hidden parameters of one die. Lists are indexed by layer or by matrix."""

    layer_sizes: tuple[int, ...]
    seed: int
    # die-level spreads (1 sigma of the log, except where noted)
    a_plus_sigma: float
    ratio_sigma: float
    ratio_offset: float
    synapse_spread: float
    bias_gain_sigma: float
    c2f_sigma: float
    noise_frac: float
    # per neuron / channel / synapse
    a_plus: list[np.ndarray]
    a_minus: list[np.ndarray]
    leak_a: list[np.ndarray]
    compression_onset_a: list[np.ndarray]
    synapse_gain: list[np.ndarray]
    """Per matrix (rows, cols, 2, 3): mirror gain of [row, col, sign (0 = positive branch), bit]."""
    bias_gain: np.ndarray
    bias_offset_a: np.ndarray
    c2f_gain_hz_per_a: np.ndarray
    c2f_dark_hz: np.ndarray
    mon_gain: float
    # drift
    temp_phase_rad: float
    temp_alpha_per_c: float
    temp_walk_seed: int
    # defects
    stuck_bits: list[StuckBit]
    _walk_knots_c: np.ndarray = field(default_factory=lambda: np.zeros(1), init=False, repr=False)

    @classmethod
    def draw(cls, layer_sizes: tuple[int, ...], seed: int,
             stuck_bits: list[StuckBit] | None = None) -> "DieTruth":
        """Draw a die. ``stuck_bits`` overrides the drawn defects (tests)."""
        sizes = tuple(int(n) for n in layer_sizes)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0]))
        a_plus_sigma = rng.uniform(0.10, 0.25)
        ratio_sigma = rng.uniform(0.05, 0.15)
        ratio_offset = float(np.exp(rng.normal(0.0, 0.05)))
        synapse_spread = rng.uniform(0.02, 0.08)
        bias_gain_sigma = rng.uniform(0.03, 0.06)
        c2f_sigma = rng.uniform(0.03, 0.06)
        noise_frac = rng.uniform(0.002, 0.01)

        a_plus = [np.exp(rng.normal(0.0, a_plus_sigma, n)) for n in sizes]
        a_minus = [a * ratio_offset * np.exp(rng.normal(0.0, ratio_sigma, a.size)) for a in a_plus]
        leak_a = [rng.uniform(10e-12, 50e-12, n) for n in sizes]
        onset_a = [NOMINAL_ONSET_A * rng.uniform(0.93, 1.1, n) for n in sizes]
        synapse_gain = [np.exp(rng.normal(0.0, synapse_spread, (rows, cols, 2, MAGNITUDE_BITS)))
                        for rows, cols in zip(sizes[:-1], sizes[1:])]
        n_in, n_out = sizes[0], sizes[-1]
        bias_gain = np.exp(rng.normal(0.0, bias_gain_sigma, n_in))
        bias_offset_a = rng.uniform(-0.2e-9, 0.2e-9, n_in)
        c2f_gain = NOMINAL_C2F_HZ_PER_A * np.exp(rng.normal(0.0, c2f_sigma, n_out))
        c2f_dark = rng.uniform(0.0, 5.0, n_out)
        mon_gain = 1.0 + rng.normal(0.0, 0.02)
        temp_phase = rng.uniform(0.0, 2.0 * np.pi)
        temp_alpha = rng.uniform(0.0005, 0.0015)
        walk_seed = int(rng.integers(0, 2**63 - 1))

        drawn: list[StuckBit] = []
        for m, (rows, cols) in enumerate(zip(sizes[:-1], sizes[1:])):
            hit = np.argwhere(rng.random((rows, cols, 4)) < STUCK_BIT_PROBABILITY)
            values = rng.integers(0, 2, len(hit))
            drawn += [(m, int(r), int(c), int(b), int(v)) for (r, c, b), v in zip(hit, values)]

        return cls(
            layer_sizes=sizes, seed=int(seed),
            a_plus_sigma=float(a_plus_sigma), ratio_sigma=float(ratio_sigma),
            ratio_offset=ratio_offset, synapse_spread=float(synapse_spread),
            bias_gain_sigma=float(bias_gain_sigma), c2f_sigma=float(c2f_sigma),
            noise_frac=float(noise_frac),
            a_plus=a_plus, a_minus=a_minus, leak_a=leak_a, compression_onset_a=onset_a,
            synapse_gain=synapse_gain, bias_gain=bias_gain, bias_offset_a=bias_offset_a,
            c2f_gain_hz_per_a=c2f_gain, c2f_dark_hz=c2f_dark, mon_gain=float(mon_gain),
            temp_phase_rad=float(temp_phase), temp_alpha_per_c=float(temp_alpha),
            temp_walk_seed=walk_seed,
            stuck_bits=drawn if stuck_bits is None else [tuple(int(v) for v in s) for s in stuck_bits],
        )

    def seen_a_plus(self, layer: int) -> np.ndarray:
        """a+ as any per-neuron measurement through the synapses sees it.

        A neuron of layer l > 0 can only be driven through its input column, so
        the mean unit-weight (code 7) gain of that column multiplies its a+ in
        every measurement and, equally, in the network's function: the two are
        one factor. What remains (the scatter of single synapses around their
        column mean) is synapse mismatch proper, which no per-neuron
        characterisation separates (contract section 1). Layer 0 is driven
        directly through EXT_IN, so its a+ is seen as is. Tests and benchmarks
        compare characterisation against this and, for reference, against the
        bare soma gain.
        """
        if layer == 0:
            return self.a_plus[0].copy()
        bit_weights = 2.0 ** np.arange(MAGNITUDE_BITS)
        unit = (self.synapse_gain[layer - 1][:, :, 0, :] * bit_weights).sum(axis=-1) / bit_weights.sum()
        return self.a_plus[layer] * unit.mean(axis=0)

    def with_stuck_bits(self, stuck_bits: list[StuckBit]) -> "DieTruth":
        """A copy with other latch defects (tests that need a known stuck bit)."""
        return replace(self, stuck_bits=[tuple(int(v) for v in s) for s in stuck_bits])

    # -- drift ---------------------------------------------------------------

    def temperature_c(self, t_s: float | np.ndarray) -> float | np.ndarray:
        """Die temperature at bench time ``t_s`` (VirtualClock seconds)."""
        t = np.maximum(np.asarray(t_s, dtype=np.float64), 0.0)
        seasonal = TEMPERATURE_SWING_C * np.sin(2.0 * np.pi * t / TEMPERATURE_PERIOD_S + self.temp_phase_rad)
        out = TEMPERATURE_NOMINAL_C + seasonal + self._walk_c(t)
        return float(out) if out.ndim == 0 else out

    def drift_factor(self, t_s: float | np.ndarray) -> float | np.ndarray:
        """Factor on every gain (a+, a-, C2F, MON) at bench time ``t_s``: 1 + alpha (T - 25)."""
        return 1.0 + self.temp_alpha_per_c * (self.temperature_c(t_s) - TEMPERATURE_NOMINAL_C)

    def _walk_c(self, t: np.ndarray) -> np.ndarray:
        """Random-walk part of T, generated lazily in fixed seeded blocks (order independent)."""
        needed = int(np.max(t, initial=0.0) // WALK_KNOT_S) + 2
        knots = self._walk_knots_c
        while knots.size < needed:
            block = (knots.size - 1) // _WALK_BLOCK
            rng = np.random.default_rng(np.random.SeedSequence([self.temp_walk_seed, block]))
            steps = rng.uniform(-WALK_STEP_C, WALK_STEP_C, _WALK_BLOCK)
            knots = np.concatenate([knots, knots[-1] + np.cumsum(steps)])
        self._walk_knots_c = knots
        return np.interp(t / WALK_KNOT_S, np.arange(knots.size), knots)

    # -- HDF5 ----------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the truth to an HDF5 file (scalars as root attributes, arrays as datasets)."""
        with h5py.File(path, "w") as f:
            f.attrs["format"] = _FORMAT
            for name, value in self._scalars().items():
                f.attrs[name] = value
            for name in _LAYER_LISTS:
                group = f.create_group(name)
                for i, arr in enumerate(getattr(self, name)):
                    group.create_dataset(str(i), data=arr)
            for name in _ARRAYS:
                f.create_dataset(name, data=getattr(self, name))
            f.create_dataset("stuck_bits", data=np.asarray(self.stuck_bits, dtype=np.int64).reshape(-1, 5))
            f["stuck_bits"].attrs["columns"] = "matrix,row,column,bit,value"

    @classmethod
    def load(cls, path: str | Path) -> "DieTruth":
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != _FORMAT:
                raise ValueError(f"{path} is not a simulated die truth file ({_FORMAT})")
            kwargs: dict[str, object] = {}
            for item in fields(cls):
                name = item.name
                if name in _LAYER_LISTS:
                    group = f[name]
                    kwargs[name] = [group[str(i)][()] for i in range(len(group))]
                elif name in _ARRAYS:
                    kwargs[name] = f[name][()]
                elif name == "stuck_bits":
                    kwargs[name] = [tuple(int(v) for v in row) for row in f[name][()]]
                elif name == "layer_sizes":
                    kwargs[name] = tuple(int(v) for v in f.attrs[name])
                elif item.init:
                    kwargs[name] = f.attrs[name].item()
        return cls(**kwargs)  # type: ignore[arg-type]

    def _scalars(self) -> dict[str, object]:
        skip = set(_LAYER_LISTS) | set(_ARRAYS) | {"stuck_bits"}
        out: dict[str, object] = {}
        for item in fields(self):
            if item.name in skip or not item.init:
                continue
            value = getattr(self, item.name)
            out[item.name] = list(value) if isinstance(value, tuple) else value
        return out


_LAYER_LISTS = ("a_plus", "a_minus", "leak_a", "compression_onset_a", "synapse_gain")
_ARRAYS = ("bias_gain", "bias_offset_a", "c2f_gain_hz_per_a", "c2f_dark_hz")
