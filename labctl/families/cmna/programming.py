"""Write weights into the latches, read them back, retry, and report stuck bits.

Latches are volatile and a bit can be stuck (contract section 1), so the only
trustworthy statement about what the die computes is READ_WEIGHTS. Programming
therefore ends with a measurement: the codes the latches really hold, which go
back into the pipeline (e.g. retraining around stuck bits) as data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from labctl.families.cmna.chip import ChipDescription
from labctl.families.cmna.link import Bridge
from labctl.errors import DataFileError
from labctl.families.cmna.latch_codes import nibbles_to_signed, signed_to_nibbles
from labctl.families.cmna.weights import WeightSet

LATCHES_NOT_WRITTEN = 1 << 2
"""STATUS bit 2: latches not written since power-up (section 2)."""


@dataclass(frozen=True, order=True)
class StuckBit:
    """A latch bit that holds one value whatever is written: where it is and what it holds."""

    matrix: int
    row: int
    column: int
    bit: int
    held: int
    """The value the bit holds whatever is written (0 or 1)."""


@dataclass
class ProgramReport:
    attempts: int
    stuck: list[StuckBit]
    held_codes: list[np.ndarray] = field(default_factory=list)
    """Signed codes as read back: what the die really computes with."""

    @property
    def verified(self) -> bool:
        return not self.stuck


def check_weights_for_die(weights: WeightSet, chip: ChipDescription, source: str = "weights file") -> None:
    """Refuse weights trained for another die or another geometry."""
    if weights.die_serial != chip.serial:
        raise DataFileError(
            f"{source} was trained for die {weights.die_serial!r}, but the bench holds die {chip.serial!r}")
    if tuple(weights.layer_sizes) != tuple(chip.layer_sizes):
        raise DataFileError(f"{source} has geometry {weights.layer_sizes}, the die has {chip.layer_sizes}")


def program_weights(bridge: Bridge, chip: ChipDescription, weights: WeightSet, *, max_attempts: int = 3,
                    progress: Callable[[str, int, int], None] | None = None) -> ProgramReport:
    """Write every matrix, read back, rewrite rows that differ; persistent differences are stuck bits."""
    check_weights_for_die(weights, chip)
    wanted = [signed_to_nibbles(c) for c in weights.codes]
    attempts = 0
    held: list[np.ndarray] = []
    for m, want in enumerate(wanted):
        bridge.write_weights(m, want)
        got = bridge.read_weights(m)
        for attempt in range(1, max_attempts):
            bad_rows = np.flatnonzero(np.any(got != want, axis=1))
            if not len(bad_rows):
                break
            attempts = max(attempts, attempt)
            for r in bad_rows:
                bridge.write_weights(m, want[r:r + 1], first_row=int(r))
                got[r] = bridge.read_weights(m, first_row=int(r), row_count=1)[0]
        held.append(got)
        if progress:
            progress("programming", m + 1, len(wanted))
    stuck = [
        StuckBit(m, int(r), int(c), int(b), int((held[m][r, c] >> b) & 1))
        for m in range(len(wanted))
        for r, c in zip(*np.nonzero(held[m] != wanted[m]))
        for b in range(4)
        if ((held[m][r, c] ^ wanted[m][r, c]) >> b) & 1
    ]
    return ProgramReport(attempts + 1, stuck, [nibbles_to_signed(h) for h in held])
