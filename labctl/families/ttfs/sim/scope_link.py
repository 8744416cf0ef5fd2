"""The cables from a simulated RC-Spike bridge board to the scope: SYNC and MON (contract 1.10, 3.2).

When the bridge runs APPLY_PATTERNS, every pattern raises SYNC (a 100 ns,
3.3 V pulse into 1 Mohm at t = 0 of the pattern, IDLE patterns included), and
MON carries the probe buffer's output: the selected membrane
(:func:`.probe.mon_trace`), a reference through the buffer's gain and offset,
or 0 V with the probe disconnected. :class:`ScopeLink` hands the scope
emulator one train of trigger edges per batch and a function that gives each
input's voltage around each edge, evaluated only for the edges the scope
actually records.

Modelling choices: the die, codes and pads are taken as they were when the
batch ran (the scope may read them later); a membrane's per-pattern noise
(reset, comparator, jitter, buffer) is drawn for :data:`REALISATIONS` records
of each pattern and reused cyclically, which keeps an averaged trace cheap; a
reference (or a neuron held in reset) is flat, the buffer's transfer of it plus its output noise.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from labctl.families.ttfs.patterns import NO_INPUT, PatternBatch
from labctl.families.ttfs.sim.probe import LINEAR_RANGE_V, OUTPUT_NOISE_V, mon_trace
from labctl.sim.scope_emulator import InfiniiVisionEmulator

SYNC_HIGH_V = 3.3  # 3.2: LVCMOS into 1 Mohm
SYNC_WIDTH_S = 100e-9
REALISATIONS = 4


class ScopeLink:
    """SYNC into ``sync_input`` and MON into ``mon_input`` of one scope emulator."""

    def __init__(self, scope: InfiniiVisionEmulator, mon_input: str, sync_input: str, seed: int = 0) -> None:
        self.scope = scope
        self.mon_input = mon_input
        self.sync_input = sync_input
        self._seed = seed
        self._batches = 0

    def batch(self, die, batch: PatternBatch, start_s: float, period_s: float) -> None:
        """A batch started at ``start_s`` on the bench clock on ``die`` (a SimulatedTtfsDie): its edges and MON."""
        self._batches += 1
        n = batch.repeats * batch.codes.shape[0]
        signals = _Signals(die, batch, self.mon_input, self.sync_input,
                           np.random.default_rng(np.random.SeedSequence([self._seed, 3, self._batches])))
        self.scope.trigger_train(self.sync_input, start_s + period_s * np.arange(n), SYNC_HIGH_V, signals)


class _Signals:
    """What each scope input shows around trigger k of one batch."""

    def __init__(self, die, batch: PatternBatch, mon_input: str, sync_input: str, rng: np.random.Generator) -> None:
        self.truth = die.truth
        self.state = die.synapses
        self.op = dataclasses.replace(die.pads, window_ns=float(die.timing.window_ns))
        self.bias_codes = np.array(die.bias_codes)
        self.probe = die.probe if die.powered else None
        self.batch = batch
        self.mon_input, self.sync_input = mon_input, sync_input
        self.rng = rng
        self._cache: dict[tuple, np.ndarray] = {}

    def __call__(self, k: int, name: str, t_s: np.ndarray) -> np.ndarray:
        if name == self.sync_input:
            return np.where((t_s >= 0.0) & (t_s < SYNC_WIDTH_S), SYNC_HIGH_V, 0.0)
        if name != self.mon_input or self.probe is None:
            return np.zeros_like(t_s)
        pattern = k % self.batch.codes.shape[0]
        key = (pattern, k % REALISATIONS, t_s.size, float(t_s[0]), float(t_s[-1]))
        if key not in self._cache:
            self._cache[key] = self._mon(pattern, t_s)
        return self._cache[key]

    def _mon(self, pattern: int, t_s: np.ndarray) -> np.ndarray:
        layer, index = self.probe
        die = self.truth
        if layer <= self.batch.entry:  # a reference, or a neuron of an injection layer held in reset (2.5)
            v_in = (self.op.vth, self.op.e_exc, self.op.e_inh, die.v_rest)[index] if layer == 0 else die.v_rest
            flat = die.mon_gain * float(np.clip(v_in, *LINEAR_RANGE_V)) + die.mon_offset
            return flat + self.rng.normal(0.0, OUTPUT_NOISE_V, t_s.shape)
        codes, bias = self.batch.codes[pattern], self.bias_codes
        if self.batch.idle:
            codes, bias = np.full_like(codes, NO_INPUT), np.full_like(bias, NO_INPUT)
        return mon_trace(die, self.state, self.op, codes, layer, index, t_s * 1e9, bias_codes=bias,
                         entry=self.batch.entry, rng=self.rng)
