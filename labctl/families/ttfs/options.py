"""The TTFS family's step options: one schema that recipes validate and the CLI builds its options from.

Field metadata follows :mod:`labctl.families.cmna.options` (``flag``,
``metavar``, ``recipe``, ``cli``). Names shared with other families
(``dataset``, ``label_column``, ``method``, ``epochs``, ``seed``,
``power_patterns``) appear once on the command line; this family validates
its own values (``--method`` takes the union of every family's choices, and
a choice that is not TTFS's is refused here in one line).
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from labctl.families.seam import StepOptions

TrainingMethod = Literal["auto", "dstd", "exact", "mapped"]
TRAINING_METHODS = typing.get_args(TrainingMethod)
SpikeOrder = Literal["auto", "larger-earlier", "smaller-earlier"]
DATASETS = ("iris", "fashion-mnist")
"""Built-in tasks of the TTFS parts: Iris for RCS-S (4 inputs), Fashion-MNIST for RCS-L (784 inputs)."""


class CharacteriseOptions(StepOptions):
    """Probe every neuron and synapse of the die through spike timing, rail currents and membrane traces
    (``labctl characterise``; contract section 7)."""


class TrainOptions(StepOptions):
    """Train signed synapse codes through the measured circuit model (``labctl train``)."""

    dataset: str = Field(description="iris (RCS-S), fashion-mnist (RCS-L; the IDX files of the Debian package "
                                     "dataset-fashion-mnist, or --data-dir), or a CSV path (header row, numeric "
                                     "features, class in the last column or --label-column)")
    data_dir: Path | None = Field(default=None, json_schema_extra={"recipe": False, "metavar": "DIR"},
                                  description="fashion-mnist: the folder holding its four IDX files (default: "
                                              "where the Debian package installs them)")
    label_column: str | None = Field(default=None, description="CSV data: the column that holds the class")
    method: TrainingMethod = Field(
        default="auto", description="dstd: the seed's differentiable spike-time discretisation; exact: exact "
                                    "spike-time gradients; mapped: an ANN trained without the circuit's physics, "
                                    "mapped to codes (the seed's baseline); auto: dstd and exact, the better on "
                                    "the validation split")
    spike_order: SpikeOrder = Field(
        default="auto", json_schema_extra={"metavar": "ORDER"},
        description="which feature value spikes first: larger-earlier (intensities, as in Fashion-MNIST), "
                    "smaller-earlier, or auto: the data set's own default (smaller-earlier on Iris, which "
                    "measured higher on simulated dies; larger-earlier otherwise); stored with the weights")
    epochs: int | None = Field(default=None, ge=1, le=10000,
                               description="training epochs: full-batch steps on a small data set (default 600 "
                                           "exact, 300 dstd), passes on a large one such as fashion-mnist "
                                           "(default 4 dstd, 1 exact)")
    budget_minutes: float | None = Field(default=None, gt=0, le=10000, json_schema_extra={"metavar": "MIN"},
                                         description="large data sets: stop training after this many minutes, "
                                                     "keeping the best codes so far (default 115)")
    seed: int = Field(default=0, ge=0, description="seed for the data split and initialisation")

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value: str) -> str:
        if value not in DATASETS and not value.lower().endswith(".csv"):
            raise ValueError(f"unknown data set {value!r} for a TTFS die: use one of {', '.join(DATASETS)} or a "
                             f".csv path")
        return value


class ProgramOptions(StepOptions):
    """Write the trained codes into the die's non-volatile synapses, read them back and verify
    (``labctl program``)."""


class EvaluateOptions(StepOptions):
    """Program (rows already holding their codes are not rewritten), then classify the test split on chip
    from first-spike times and measure energy per inference (``labctl evaluate``)."""

    power_patterns: int | None = Field(default=None, ge=0, json_schema_extra={"metavar": "N"},
                                       description="test patterns whose energy per inference is measured, "
                                                   "at most one frame's worth (RCS-S 1365, RCS-L 10; default: "
                                                   "that many; 0: none)")


STEP_OPTIONS = {"characterise": CharacteriseOptions, "train": TrainOptions, "program": ProgramOptions,
                "evaluate": EvaluateOptions}
