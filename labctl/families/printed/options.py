"""The printed family's step options: one schema that recipes validate and the CLI builds its options from.

Field metadata follows :mod:`labctl.families.cmna.options` (``flag``,
``metavar``, ``recipe``, ``cli``). Where a name is shared with another family
(``dataset``, ``hidden``, ``power_weight``, ``seed``), the command line shows
it once and this family validates its own values.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from labctl.families.printed.dataset import task_name_problem
from labctl.families.seam import StepOptions

DEFAULT_HIDDEN = 3
"""Hidden neurons of a bespoke design: the papers' topology [inputs, 3, classes] (seeds 000, 001)."""


class CharacteriseOptions(StepOptions):
    """Sweep every test structure of a PNC-TS sample and fit the process (``labctl characterise``)."""


class TrainOptions(StepOptions):
    """Train a bespoke printed design for one task (``labctl train``)."""

    dataset: str = Field(description="the task: a .csv with feature columns, a label column and optionally a split "
                                     "column (train / valid / test) that fixes the split; or iris, wine "
                                     "(built in, split 60/20/20 by --seed); at most 22 features")
    label_column: str | None = Field(default=None, description="CSV data: the column that holds the class "
                                                                "(default: label)")
    hidden: list[Annotated[int, Field(ge=1, le=20)]] | None = Field(
        default=None, description=f"hidden layer sizes, e.g. 3 (default: {DEFAULT_HIDDEN})")
    power_weight: float = Field(default=0.0, ge=0.0, le=1.0, json_schema_extra={"metavar": "ALPHA"},
                                description="power-aware training: loss = (1 - ALPHA) x task loss + ALPHA x "
                                            "predicted power / the power-blind design's")
    nominal: bool = Field(default=False, description="train for the nominal process (no variation): the baseline "
                                                     "the variation-aware design is compared with")
    fixed_circuits: bool = Field(default=False, description="keep the activation and negative-weight circuits at "
                                                            "the reference designs (only the crossbar is learnt); "
                                                            "without it both are tried and valid chooses")
    seed: int = Field(default=0, ge=0, description="seed for the data split (CSV without split) and initialisation")

    @field_validator("dataset")
    @classmethod
    def _csv_or_builtin(cls, value: str) -> str:
        problem = task_name_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class ProgramOptions(StepOptions):
    """A printed circuit cannot be programmed: it is printed (``labctl export``, then the printer)."""


class EvaluateOptions(StepOptions):
    """Verify a printed network on the bench against its design (``labctl evaluate --design``)."""

    power_patterns: int | None = Field(default=None, ge=0, json_schema_extra={"metavar": "N"},
                                       description="test patterns whose power is measured (default: all; 0: none)")


STEP_OPTIONS = {"characterise": CharacteriseOptions, "train": TrainOptions, "program": ProgramOptions,
                "evaluate": EvaluateOptions}
