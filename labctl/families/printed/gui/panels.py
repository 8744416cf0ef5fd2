"""What only the printed family knows for the GUI shell (``labctl.gui``), named by ``PrintedFamily.gui``
(docs/families.md).

- the live characterisation estimate: the sweeps of the process file as it is
  being written (:mod:`labctl.families.printed.report.contents`, read as SWMR);
- the confusion matrix of a verified printed sample (the shell's Evaluation tab);
- the stage panels: characterisation (sweeps with fits, eps, flagged
  structures) and design (predicted against printed accuracy and power).

The bench tab uses the shell's default (the ``describe`` description): a
printed bench has no status to poll and no bridge transactions.
"""

from __future__ import annotations

from pathlib import Path

from labctl.errors import DataFileError
from labctl.families.seam import DeviceDescription, OnChipOutcome


def live_estimate(path: Path, description: DeviceDescription):
    """The process file's sweeps so far (its partial file while the run writes it); None while it cannot be
    read yet (not created, or caught mid-write): the next tick tries again, and the run never waits for it."""
    from labctl.families.printed.report.contents import load

    try:
        return load(path, swmr=True)
    except (DataFileError, OSError):
        return None


def confusion_matrix(outcome: OnChipOutcome):
    """The printed sample's confusion matrix (true class by predicted class), None without one."""
    return getattr(outcome.result, "confusion", None)


def stage_panels() -> list:
    """The printed family's stage panels, in pipeline order (each has ``title``, ``stages``, ``clear``,
    ``step_done``)."""
    from labctl.families.printed.gui.characterisation_panel import CharacterisationPanel
    from labctl.families.printed.gui.design_panel import DesignPanel

    return [CharacterisationPanel(), DesignPanel()]
