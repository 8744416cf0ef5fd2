"""The digital twin of a characterised die: a simulated die built from what was measured.

A characterisation file (``die.h5``) holds what the pipeline learned about one
die; :func:`twin_truth` turns it into a :class:`DieTruth`, so the simulator
can stand in for that die offline (``labctl replay``, ``labctl sim serve
--from die.h5``). What the twin takes from the measurement, and what it has
to assume (contract section 1 lists the quantities):

- a+ and a- per neuron: the measured values times the layer's ``scale``
  (absolute gains; the die-wide MON gain is folded in, so the twin's MON gain
  is 1);
- bias generator gain and offset per input channel, C2F gain and dark rate
  per output: as measured;
- synapse mirror gains: drawn with the measured spread (nominal 5 % where it
  was not measured), then scaled so that every column's mean unit weight is 1:
  a per-neuron measurement sees that mean as part of the neuron's a+
  (:meth:`DieTruth.seen_a_plus`), and the measured a+ already holds it;
- stuck latch bits: those the characterisation's read-backs showed (plus any
  given, e.g. from a session's programming reports);
- leakage: folded into the measured bias offset (layer 0) and dark rate
  (outputs), as the measurement sees it; hidden somas leak the nominal 20 pA;
- compression onset per soma: as measured where the linear-range runs found it,
  the nominal 300 nA elsewhere;
- nominal: reading noise (0.5 %), no temperature drift (the gains stay as they
  were measured).

The twin answers IDENTIFY with the recorded die's serial, so weights trained
for that die are accepted by it.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from labctl.families.cmna.characterisation.plans import dark_held, held_nibbles, planned_codes
from labctl.families.cmna.chip import ChipDescription
from labctl.families.cmna.die_parameters import LayerGains
from labctl.errors import DataFileError
from labctl.families.cmna.storage import load_die_parameters, read_chip, read_raw
from labctl.families.cmna.latch_codes import signed_to_nibbles
from labctl.families.cmna.programming import StuckBit
from labctl.families.cmna.sim.bench import SimulatedBench
from labctl.families.cmna.sim.die import PARTS
from labctl.families.cmna.sim.truth import MAGNITUDE_BITS, NOMINAL_ONSET_A, DieTruth

NOMINAL_LEAK_A = 20e-12
NOMINAL_NOISE_FRAC = 0.005
"""Relative noise of one reading: the middle of the contract's 0.2 to 1 %."""
NOMINAL_SYNAPSE_SPREAD = 0.05
_UNIT_BITS = 2.0 ** np.arange(MAGNITUDE_BITS)


def twin_truth(characterisation: str | Path, *, seed: int = 0,
               stuck_bits: list[StuckBit] | None = None) -> DieTruth:
    """The hidden parameters of a simulated die that behaves as the characterised one was measured; its
    stuck latch bits are those the characterisation's read-backs showed and ``stuck_bits``."""
    params = load_die_parameters(characterisation)
    sizes = tuple(params.chip.layer_sizes)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    a_plus = [absolute_gains(layer)[0] for layer in params.layers]
    a_minus = [absolute_gains(layer)[1] for layer in params.layers]
    spread = params.synapse_spread if np.isfinite(params.synapse_spread) else NOMINAL_SYNAPSE_SPREAD
    synapse_gain = [_unit_mean_columns(np.exp(rng.normal(0.0, spread, (rows, cols, 2, MAGNITUDE_BITS))))
                    for rows, cols in zip(sizes[:-1], sizes[1:])]
    ratios = np.concatenate([(m / p)[np.isfinite(m / p)] for m, p in zip(a_minus[:-1], a_plus[:-1])])
    seen = sorted(set(stuck_bits_seen(characterisation)) | set(stuck_bits or []))
    return DieTruth(
        layer_sizes=sizes, seed=seed,
        a_plus_sigma=float(np.std(np.log(np.concatenate(a_plus)))),
        ratio_sigma=float(np.std(np.log(ratios))) if ratios.size else 0.0,
        ratio_offset=float(np.exp(np.mean(np.log(ratios)))) if ratios.size else 1.0,
        synapse_spread=float(spread),
        bias_gain_sigma=float(np.std(np.log(params.bias_gain))),
        c2f_sigma=float(np.std(np.log(params.c2f_gain_hz_per_a))),
        noise_frac=NOMINAL_NOISE_FRAC,
        a_plus=a_plus, a_minus=a_minus,
        leak_a=[np.full(n, 0.0 if l in (0, len(sizes) - 1) else NOMINAL_LEAK_A) for l, n in enumerate(sizes)],
        compression_onset_a=[measured_onsets(layer) for layer in params.layers],
        synapse_gain=synapse_gain,
        bias_gain=np.asarray(params.bias_gain, float), bias_offset_a=np.asarray(params.bias_offset_a, float),
        c2f_gain_hz_per_a=np.asarray(params.c2f_gain_hz_per_a, float),
        c2f_dark_hz=np.maximum(np.asarray(params.c2f_dark_hz, float), 0.0),
        mon_gain=1.0, temp_phase_rad=0.0, temp_alpha_per_c=0.0, temp_walk_seed=seed,
        stuck_bits=[(b.matrix, b.row, b.column, b.bit, b.held) for b in seen],
    )


def measured_onsets(layer: LayerGains) -> np.ndarray:
    """A layer's compression onsets: as measured, nominal where not (or in a file from before them)."""
    onset = layer.compression_onset_a if layer.compression_onset_a is not None else np.full(len(layer.a_plus), np.nan)
    return np.where(np.isfinite(onset), onset, NOMINAL_ONSET_A)


def absolute_gains(layer: LayerGains) -> tuple[np.ndarray, np.ndarray]:
    """(a+, a-) of a layer in absolute units: times the measured scale (1 where unknown);
    a- = a+ where it was not measured (the last layer drives no signed synapses)."""
    scale = float(layer.scale) if np.isfinite(layer.scale) else 1.0
    a_minus = np.where(np.isfinite(layer.a_minus), layer.a_minus, layer.a_plus)
    return layer.a_plus * scale, a_minus * scale


def _unit_mean_columns(gains: np.ndarray) -> np.ndarray:
    """Scale each column (and sign branch) so its mean unit-weight (code 7) gain is exactly 1."""
    unit = (gains * _UNIT_BITS).sum(axis=-1) / _UNIT_BITS.sum()  # (rows, cols, 2)
    return gains / unit.mean(axis=0)[None, :, :, None]


def stuck_bits_seen(characterisation: str | Path) -> list[StuckBit]:
    """Latch bits whose read-back differed from what a characterisation configuration wrote.

    Every configuration's latches are read back and stored (``/raw/config_codes``);
    a bit that held another value than the configuration's plan
    (:func:`labctl.families.cmna.characterisation.plans.planned_codes`) is stuck at the value it
    held. Only bits the plans exercised can show up.
    """
    chip = read_chip(characterisation)
    raw = read_raw(characterisation)
    dark = dark_held(chip, raw)
    found: set[StuckBit] = set()
    for row, flat in zip(raw.configs, raw.config_codes):
        kind = row["kind"].decode() if isinstance(row["kind"], bytes) else str(row["kind"])
        planned = planned_codes(chip, kind, json.loads(row["params"]), dark)
        for m, (held, want) in enumerate(zip(held_nibbles(chip, flat), planned)):
            want = signed_to_nibbles(want)
            for r, c in zip(*np.nonzero(held != want)):
                for bit in range(4):
                    if ((held[r, c] ^ want[r, c]) >> bit) & 1:
                        found.add(StuckBit(m, int(r), int(c), bit, int((held[r, c] >> bit) & 1)))
    return sorted(found)


def twin_bench(characterisation: str | Path, *, stuck_bits: list[StuckBit] | None = None,
               realtime: bool = False, served: bool = False, wiring: str = "default") -> SimulatedBench:
    """A simulated bench whose die is the twin of the characterised one (same serial). Not started."""
    chip = read_chip(characterisation)
    if chip.part not in PARTS:
        raise DataFileError(f"{characterisation}: die {chip.serial} has geometry {chip.layer_sizes}; "
                            f"the simulator knows {', '.join(PARTS)}")
    seed = _seed_of(chip)
    sim = SimulatedBench(chip.part, seed, truth=twin_truth(characterisation, seed=seed, stuck_bits=stuck_bits),
                         realtime=realtime, served=served, wiring=wiring)
    if sim.die.chip.serial != chip.serial:
        # SimulatedDie names itself PART-SEED; the twin must answer IDENTIFY with the recorded serial
        sim.die.chip = replace(sim.die.chip, serial=chip.serial)
        sim.bridge_server.chip = sim.die.chip
    return sim


def _seed_of(chip: ChipDescription) -> int:
    """The seed of a simulated die's serial (PART-NNNNNN), else 0."""
    match = re.fullmatch(rf"{re.escape(chip.part)}-(\d{{6}})", chip.serial)
    return int(match.group(1)) if match else 0
