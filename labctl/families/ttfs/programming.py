"""Write trained codes into the die's SONOS synapses, read them back and report the cells that hold another code.

The synapse memory is non-volatile and written row-wise with program-and-verify
(contract 1.4): a row that already reads back as requested is skipped (mode 0,
no wear), and a cell that cannot reach its target fails verify and reads the
code nearest to what it reached. So programming ends with a measurement, the
codes the cells really hold (READ_SYNAPSES), and the on-chip evaluation
computes with those. A row that differs is written once more (mode 1: erase
and program again); what still differs is reported as stuck, not hidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from labctl.errors import DataFileError
from labctl.families.ttfs.identify import DieDescription
from labctl.families.ttfs.link import TtfsBridge

RETRIES = 1
"""Rewrites of a row that reads back wrong: one more program-and-verify, then the difference is a measurement."""


@dataclass(frozen=True)
class StuckCell:
    """A site whose cell holds another code than was written (failed verify, contract 1.4)."""

    matrix: int
    row: int
    column: int
    wanted: int
    held: int


@dataclass(frozen=True)
class ProgramReport:
    rows_programmed: int
    """Rows erased and programmed (rows already holding their codes are skipped: no wear)."""
    failed_cells: int
    """Cells the die reported as failing verify, summed over every write."""
    held_codes: tuple[np.ndarray, ...]
    """Signed codes per matrix as read back: what the die computes with."""
    stuck: tuple[StuckCell, ...]

    @property
    def verified(self) -> bool:
        return not self.stuck


def check_codes_for_die(part: str, serial: str, layer_sizes: tuple[int, ...], chip: DieDescription,
                        source: str) -> None:
    """Refuse codes trained for another die or another geometry, before anything is written."""
    if serial != chip.serial:
        raise DataFileError(f"{source} was trained for die {serial!r}, but the bench holds die {chip.serial!r}")
    if tuple(layer_sizes) != tuple(chip.layer_sizes) or part != chip.part:
        raise DataFileError(f"{source} is for {part} {'-'.join(map(str, layer_sizes))}, the die is {chip.part} "
                            f"{'-'.join(map(str, chip.layer_sizes))}")


def program_codes(link: TtfsBridge, codes: tuple[np.ndarray, ...], *,
                  progress: Callable[[str, int, int], None] | None = None) -> ProgramReport:
    """Write each matrix (mode 0), read it back, rewrite rows that differ (mode 1), report what still differs."""
    programmed = failed = 0
    held: list[np.ndarray] = []
    stuck: list[StuckCell] = []
    for m, want in enumerate(codes):
        want = np.asarray(want, dtype=np.int8)
        outcome = link.write_synapses(m, want, mode=0)
        programmed, failed = programmed + outcome.rows_programmed, failed + outcome.failed_cells
        got = link.read_synapses(m)
        for _ in range(RETRIES):
            for row in np.flatnonzero(np.any(got != want, axis=1)):
                outcome = link.write_synapses(m, want[row:row + 1], first_row=int(row), mode=1)
                programmed, failed = programmed + outcome.rows_programmed, failed + outcome.failed_cells
                got[row] = link.read_synapses(m, first_row=int(row), count=1)[0]
        held.append(got)
        stuck += [StuckCell(m, int(r), int(c), int(want[r, c]), int(got[r, c])) for r, c in np.argwhere(got != want)]
        if progress:
            progress("programming", m + 1, len(codes))
    return ProgramReport(programmed, failed, tuple(held), tuple(stuck))
