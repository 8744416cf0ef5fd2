"""The CMNA family's step options: one schema that recipes validate and the CLI builds its options from.

Each field's ``description`` is its help text and its default is the default
everywhere (``labctl <command> --help``, recipes, the GUI), so a choice or a
default is written once. Field metadata (``json_schema_extra``): ``flag`` names
a command-line flag that differs from the field name, ``metavar`` its
placeholder, ``recipe: False`` keeps a field off recipes (paths the recipe
runner fills in itself), ``cli: False`` keeps it off the command line.
"""

from __future__ import annotations

from pathlib import Path
import typing
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from labctl.families.cmna.ratings import DEFAULT_GATE_MS
from labctl.families.seam import StepOptions

CharacterisationMethod = Literal["network", "mon", "both"]
CHARACTERISATION_METHODS = typing.get_args(CharacterisationMethod)
TrainingMethod = Literal["auto", "finetune", "scratch"]
TRAINING_METHODS = typing.get_args(TrainingMethod)


class CharacteriseOptions(StepOptions):
    """Measure every neuron of the die (``labctl characterise``)."""

    method: CharacterisationMethod = Field(
        default="both", description="network: through the output counters (the paper's way); mon: direct probing "
                                    "on MON; both: each checks the other")
    configs: int | None = Field(default=None, ge=1, le=200, description="chain configurations (default: 7 on "
                                "CMNA-777, 8 on larger dies; with a target: the most)")
    levels: int | None = Field(default=None, ge=2, le=50,
                               description="drive levels per configuration (default 6; 4 on large dies)")
    gate_ms: int | None = Field(default=None, ge=1, le=65535,
                                description="C2F gate per reading in ms (default 200; 100 on large dies)")
    nplc: float | None = Field(default=None, gt=0, le=25, description="SMU integration per reading in power-line "
                               "cycles (default 1; 0.2 on large dies)")
    target_a_plus: float | None = Field(default=None, gt=0, lt=1, json_schema_extra={"metavar": "REL"},
                                        description="stop when every layer's a+ is known to this relative error "
                                                    "(e.g. 0.01)")
    target_ratio: float | None = Field(default=None, gt=0, lt=1, json_schema_extra={"metavar": "REL"},
                                       description="... and a-/a+ to this relative error (e.g. 0.02)")
    time_budget_s: float | None = Field(default=None, gt=0, json_schema_extra={"flag": "--time-budget",
                                                                                  "metavar": "S"},
                                        description="stop after this much bench time (s)")
    max_configs: int = Field(default=40, ge=1, le=1000, description="configuration budget with a target")
    linear_range: Literal["off", "input", "all"] | None = Field(
        default=None, description="whose onset of compression to measure: input: the input layer's somas (EXT_IN); "
                                  "all: every layer's, one more run per deeper layer, fed through synapses (CMNA-L: "
                                  "3 runs, about 50 s; with a target, raise --max-configs by as many); off: none. "
                                  "Default: all on small dies, input on large ones. Later operating points stay "
                                  "below the lowest onset found")
    resume: bool = Field(default=False, json_schema_extra={"recipe": False},
                         description="continue the interrupted run in --out without repeating finished "
                                     "configurations")


class TrainOptions(StepOptions):
    """Train signed 3-bit weights for the characterised die (``labctl train``)."""

    dataset: str = Field(description="iris, wine, breast_cancer, digits, mnist (5,000 images at 14x14), or a CSV "
                                     "path (header row, numeric features, class in the last column or "
                                     "--label-column)")
    label_column: str | None = Field(default=None, description="CSV data: the column that holds the class")
    naive: bool = Field(default=False, description="ignore the measured gains (nominal die): the baseline a lab "
                                                   "without characterisation gets")
    method: TrainingMethod = Field(
        default="auto", description="finetune: adapt the pre-trained network in seconds; scratch: train for this "
                                    "die from random weights (the paper's way; seconds for Iris, a minute for "
                                    "MNIST); auto: scratch for small networks, finetune for large ones")
    hidden: list[Annotated[int, Field(ge=1)]] | None = Field(
        default=None, description="hidden layer sizes, e.g. 7 or 100,50 (default: the die's)")
    epochs: int | None = Field(default=None, ge=1, le=10000, description="training epochs (default: per data set)")
    seed: int = Field(default=0, ge=0, description="seed for the data split and initialisation")
    power_weight: float = Field(default=0.0, ge=0.0, le=1.0, json_schema_extra={"metavar": "ALPHA"},
                                description="power-aware training: loss = (1 - ALPHA) x task loss + ALPHA x predicted "
                                            "network power / the power-blind weights' (same input encoding); 0: "
                                            "power-blind")
    power_budget: float | None = Field(default=None, gt=0.0, json_schema_extra={"metavar": "W"},
                                       description="train to a power budget instead: the predicted mean network "
                                                   "power over the training split stays at or below W watts")
    cache_dir: Path | None = Field(default=None, json_schema_extra={"recipe": False},
                                   description="where pre-trained networks are kept (default ~/.cache/labctl or "
                                               "$XDG_CACHE_HOME/labctl)")

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value: str) -> str:
        from labctl.train.datasets import BUILTIN

        if value not in BUILTIN and not value.lower().endswith(".csv"):
            raise ValueError(f"unknown data set {value!r}: use one of {', '.join(BUILTIN)} or a .csv path")
        return value

    @model_validator(mode="after")
    def _one_power_goal(self) -> "TrainOptions":
        if self.power_budget is not None and self.power_weight:
            raise ValueError("give --power-weight or --power-budget, not both")
        if self.naive and (self.power_budget is not None or self.power_weight):
            raise ValueError("power-aware training needs the measured die: not with --naive")
        return self

    @model_validator(mode="after")
    def _readable_csv(self) -> "TrainOptions":
        """A CSV data set is read now (missing file, NaN, empty classes, unknown label column), so a recipe
        says so before its characterisation, not after it."""
        from labctl.errors import ConfigError
        from labctl.train.datasets import load_dataset

        if self.dataset.lower().endswith(".csv"):
            try:
                load_dataset(self.dataset, seed=self.seed, label_column=self.label_column)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return self


class ProgramOptions(StepOptions):
    """Write weights into the latches, read them back and verify (``labctl program``)."""

    keep_powered: bool = Field(default=False, description="leave VDD on after a normal exit so the volatile "
                                                          "latches keep the weights (EXT_IN, MON off)")
    calibration: Path | None = Field(default=None, json_schema_extra={"recipe": False},
                                     description="the characterisation the weights were trained on: programming "
                                                 "then retrains around stuck latch bits and fine-tunes on the die's "
                                                 "own outputs for the training split (in-situ)")
    retrain: bool = Field(default=True, json_schema_extra={"cli": False},
                          description="tailored weights: retrain around stuck bits, in-situ rounds (recipes: with "
                                      "the run's characterisation)")
    in_situ_rounds: int = Field(default=1, ge=0, le=5, json_schema_extra={"metavar": "N"},
                                description="with a characterisation: rounds of measuring the training split and "
                                            "fine-tuning")
    programmed_out: Path | None = Field(default=None, json_schema_extra={"recipe": False, "metavar": "PATH"},
                                        description="with --calibration: where the weights the die ends up holding "
                                                    "are saved (default <weights>-programmed.h5; the input file is "
                                                    "never overwritten)")


class EvaluateOptions(ProgramOptions):
    """Program, verify and classify the test split on the die (``labctl evaluate``)."""

    gate_ms: int = Field(default=DEFAULT_GATE_MS, ge=1, le=65535, description="C2F gate per pattern in ms")
    dataset: str | None = Field(default=None, json_schema_extra={"recipe": False},
                                description="the data set the weights were trained on (default: the one named "
                                            "in the weights file)")
    presentation_rate: float = Field(default=66e3, gt=0.0, json_schema_extra={"metavar": "HZ"},
                                     description="patterns presented per second, an assumption for the energy per "
                                                 "inference (seed 004 presents 66 kHz)")
    power_patterns: int | None = Field(default=None, ge=0, json_schema_extra={"metavar": "N"},
                                       description="test patterns whose supply current is read for the power figures "
                                                   "(default: all; 0: no power measurement)")


STEP_OPTIONS = {"characterise": CharacteriseOptions, "train": TrainOptions, "program": ProgramOptions,
                "evaluate": EvaluateOptions}
