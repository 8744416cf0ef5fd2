"""Negative-weight probes: a-/a+ of many somas of one layer per configuration (issue 5).

A negative twin (:mod:`labctl.families.cmna.characterisation.configurations`) drives every input
at one common code, so a column's several negative rows cannot be told apart
and a fan-in matrix such as 50 -> 10 yields only ten numbers per configuration
for fifty somas. A probe of matrix m instead drives every neuron of layer m
from an input channel of its own (matrices below m are one-to-one chains of
+7 weights, matrices above m are zero) and switches the channels of the
*negative* rows on and off in a balanced random pattern over the levels, while
the *positive* rows step through a few drive levels. Each column of matrix m
takes K positive rows at +7 and N negative rows at -3, so its MON reading is
linear in its positive sum and in each switched negative row separately: one
configuration gives N samples of a-/a+ (each through one synapse) per column,
N times more than a twin, and no twin is needed because the column's positive
response is fitted in the same run. Few positive rows (K = 2) keep the
switched negatives a large part of the column's response (the signal).

MON reads the rows only at a few *calibration* levels (every channel on, at
two drives, and the pilot): a row's output is linear in its channel's code, so a line
through them predicts it at every switched level; MON reads the columns only at
the switched levels. That keeps the cost near one reading per column and level.

Pure: a probe is data built from the geometry, the matrix and a draw number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labctl.families.cmna.characterisation.configurations import NEGATIVE_CODE, UNIT_CODE
from labctl.families.cmna.chip import ChipDescription

POSITIVE_SHARE = 1 / 3
"""Share of layer m's neurons that serve as steady positive rows; the rest are switched negatives."""
PROBE_FAN_IN = 2
"""Positive rows per column: 14 units against 3 per negative row switched on."""
ON_SHARE = 0.3
"""Share of levels each negative row is on: about 2.4 of 8 at once, so the column rarely turns off."""
DRIVE_STEPS = (0.6, 0.8, 1.0)
"""Multipliers of the top code the positive rows step through (the column's slope needs a spread)."""
CALIBRATION_STEPS = (0.6, 1.0)
"""The first levels: every channel on at these drives, rows read (with the pilot, three points of a line)."""
CALIBRATION_LEVELS = len(CALIBRATION_STEPS)


@dataclass
class NegativeProbe:
    """Codes per matrix and, per level, each input channel's multiplier of the top code."""

    matrix: int
    draw: int
    codes: list[np.ndarray]
    pattern: np.ndarray
    """(levels, n_inputs): drive of each channel at each level, as a fraction of the top code."""
    row_channels: np.ndarray
    """The input channel that drives each neuron of layer ``matrix``."""
    negatives: int

    kind = "negative_probe"

    def params(self, top_code: int) -> dict:
        """What the file records: enough to fit the probe without redrawing it."""
        return {"matrix": self.matrix, "draw": self.draw, "negatives": self.negatives, "top_code": top_code,
                "row_channels": self.row_channels.tolist(),
                "channel_codes": [self.level_codes(level, top_code).tolist() for level in range(len(self.pattern))]}

    def level_codes(self, level: int, top_code: int) -> np.ndarray:
        return np.round(self.pattern[level] * top_code).astype(int)


def switched_levels(negatives: int) -> int:
    """Levels for N switched rows per column: the fit has N + 2 unknowns; twice that keeps it well posed."""
    return 2 * negatives + 4


def negative_probe(chip: ChipDescription, matrix: int, seed: int, round_: int, negatives: int,
                   dark_held: list[np.ndarray] | None = None) -> NegativeProbe:
    """Probe ``round_`` of matrix ``matrix``: layer-``matrix`` neurons on private channels, K positive and
    N switched negative rows per column, drawn at random (a resume redraws the same). The positive
    rows rotate from round to round, so (nearly) every row is a negative row in two rounds of three.

    The private chains below avoid rows with a latch stuck at 1 (``dark_held``: what the latches held
    when all were written zero): driven, such a row would also feed a neuron that is not its own.
    """
    draw = int(seed) * 1000 + int(round_)
    rng = np.random.default_rng([draw, int(matrix), 7])
    codes = [np.zeros(chip.matrix_shape(m), np.int8) for m in range(chip.n_matrices)]
    rows, cols = chip.matrix_shape(matrix)
    channel_of = _private_chains(chip, matrix, codes, rng, dark_held)
    n_pos = min(rows - 1, max(PROBE_FAN_IN, round(rows * POSITIVE_SHARE)))
    roles = np.roll(np.random.default_rng([int(seed), int(matrix), 8]).permutation(rows), -round_ * n_pos)
    positive, negative = rng.permutation(roles[:n_pos]), rng.permutation(roles[n_pos:])
    k, n = min(PROBE_FAN_IN, n_pos), min(negatives, len(negative))
    c = codes[matrix]
    for j in range(cols):
        c[positive[(j * k + np.arange(k)) % n_pos], j] = UNIT_CODE
        c[negative[(j * n + np.arange(n)) % len(negative)], j] = -NEGATIVE_CODE
    levels = switched_levels(n)
    step = np.resize(DRIVE_STEPS, levels)[rng.permutation(levels)]
    on = np.array([rng.permutation(np.arange(levels) < round(ON_SHARE * levels)) for _ in negative]).T
    switched = np.zeros((levels, chip.n_inputs))
    switched[:, channel_of[positive]] = step[:, None]
    switched[:, channel_of[negative]] = step[:, None] * on
    calibration = np.zeros((CALIBRATION_LEVELS, chip.n_inputs))
    calibration[:, channel_of] = np.array(CALIBRATION_STEPS)[:, None]
    return NegativeProbe(matrix, draw, codes, np.vstack([calibration, switched]), channel_of, n)



def _private_chains(chip: ChipDescription, matrix: int, codes: list[np.ndarray], rng: np.random.Generator,
                    dark_held: list[np.ndarray] | None) -> np.ndarray:
    """Write one-to-one +7 chains into the matrices below ``matrix``; return the input channel that
    drives each neuron of layer ``matrix`` alone."""
    channel_of = np.arange(chip.layer_sizes[matrix])
    for m in range(matrix - 1, -1, -1):
        below, _ = chip.matrix_shape(m)
        stuck = np.any(dark_held[m] != 0, axis=1) if dark_held else np.zeros(below, bool)
        order = rng.permutation(below)
        order = np.concatenate([order[~stuck[order]], order[stuck[order]]])  # stuck rows only if unavoidable
        src = order[:chip.layer_sizes[m + 1]]
        codes[m][src, np.arange(len(src))] = UNIT_CODE
        channel_of = src[channel_of]
    return channel_of
