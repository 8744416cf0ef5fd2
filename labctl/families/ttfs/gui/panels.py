"""What only the TTFS family knows for the GUI shell (``labctl.gui``), named by ``TtfsFamily.gui``
(docs/families.md).

- the live characterisation estimate: the steps of the characterisation file
  read so far (its partial file while the run writes it);
- the confusion matrix of an on-chip evaluation (the shell's Evaluation tab);
- the stage panels: characterisation (fitted parameters, ladders, DC shape,
  reversal potentials) and spike times (accuracy, energy per inference, the
  winning output's first-spike times per class).

The bench tab uses the shell's default (the ``describe`` description).
"""

from __future__ import annotations

from pathlib import Path

from labctl.errors import DataFileError
from labctl.families.seam import DeviceDescription, OnChipOutcome


def live_estimate(path: Path, description: DeviceDescription):
    """The characterisation file's steps so far (:class:`~labctl.families.ttfs.report.contents.TtfsReport`);
    None while it cannot be read (not created yet, or caught while a step writes it): the next tick tries
    again, and the run never waits for it."""
    from labctl.families.ttfs.report.contents import load

    try:
        return load(path)
    except (DataFileError, OSError, KeyError):
        return None


def confusion_matrix(outcome: OnChipOutcome):
    """True class by predicted class, None without an evaluation. The shell draws a square matrix, so the
    "no output fired" column is left out here; the Spike times tab counts those patterns."""
    _, result = outcome.result
    if result is None:
        return None
    return result.confusion[:, :-1]


def stage_panels() -> list:
    """The TTFS stage panels, in pipeline order (each has ``title``, ``stages``, ``clear``, ``step_done``)."""
    from labctl.families.ttfs.gui.characterisation_panel import CharacterisationPanel
    from labctl.families.ttfs.gui.evaluation_panel import SpikeTimesPanel

    return [CharacterisationPanel(), SpikeTimesPanel()]
