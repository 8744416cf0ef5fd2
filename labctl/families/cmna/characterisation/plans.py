"""What each recorded configuration meant to write, rebuilt from the file alone.

Every configuration's latches are read back and stored (``/raw/config_codes``),
together with the parameters its plan was built from. Comparing the two tells
which latch bits are stuck (the digital twin needs them) without storing the
plans themselves: chains rebuild from their shifts, fan-in and forced sources,
negative-weight probes from their draw and the dark run's read-back, a deeper
layer's linear-range run from its layer; every other run writes zeros.
"""

from __future__ import annotations

import numpy as np

from labctl.families.cmna.characterisation.configurations import config_from_params
from labctl.families.cmna.characterisation.linear_range import LINEAR_RANGE_KIND, layer_knee
from labctl.families.cmna.characterisation.negative_probe import negative_probe
from labctl.families.cmna.chip import ChipDescription
from labctl.families.cmna.storage import RawTables
from labctl.families.cmna.latch_codes import nibbles_to_signed


def held_nibbles(chip: ChipDescription, flat: np.ndarray) -> list[np.ndarray]:
    """Latch nibbles per matrix from one row of ``/raw/config_codes`` (all matrices in a row), as read
    back: a sign bit on magnitude 0 (a stuck bit the signed code cannot show) included."""
    held, start = [], 0
    for m in range(chip.n_matrices):
        rows, cols = chip.matrix_shape(m)
        held.append(np.asarray(flat[start:start + rows * cols], np.uint8).reshape(rows, cols))
        start += rows * cols
    return held


def held_codes(chip: ChipDescription, flat: np.ndarray) -> list[np.ndarray]:
    """Signed codes per matrix from one row of ``/raw/config_codes``: what the synapses compute with."""
    return [nibbles_to_signed(n) for n in held_nibbles(chip, flat)]


def dark_held(chip: ChipDescription, raw: RawTables) -> list[np.ndarray] | None:
    """What the latches held when the dark run wrote all zeros: the stuck-at-1 bits (recorded, so a
    resume plans the same); None before the dark run."""
    for row, flat in zip(raw.configs, raw.config_codes):
        if _kind(row) == "dark":
            return held_codes(chip, flat)
    return None


def planned_codes(chip: ChipDescription, kind: str, params: dict,
                  dark: list[np.ndarray] | None) -> list[np.ndarray]:
    """The signed codes per matrix a recorded configuration meant to write."""
    if kind.startswith("chain"):
        return config_from_params(chip, kind, params).codes
    if kind == "negative_probe":
        seed, round_ = divmod(int(params["draw"]), 1000)
        return negative_probe(chip, int(params["matrix"]), seed, round_, int(params["negatives"]), dark).codes
    if kind == LINEAR_RANGE_KIND and int(params.get("layer", 0)) > 0:
        return layer_knee(chip, int(params["layer"])).codes
    return [np.zeros(chip.matrix_shape(m), np.int8) for m in range(chip.n_matrices)]


def _kind(row: np.void) -> str:
    return row["kind"].decode() if isinstance(row["kind"], bytes) else str(row["kind"])
