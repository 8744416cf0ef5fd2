"""A trained network for one die: latch codes plus how data become DAC codes.

This is what training hands to programming and evaluation. The codes cover the
full die geometry (unused neurons have zero weights), so programming never needs
to know which network was mapped onto the die.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from labctl.families.cmna.latch_codes import MAGNITUDE_MASK


@dataclass
class InputEncoding:
    """Feature -> DAC code mapping: code = clip(round((x - offset) * scale), 0, max_code)."""

    input_offset: np.ndarray
    input_scale: np.ndarray
    input_channels: np.ndarray
    constant_codes: np.ndarray
    class_outputs: np.ndarray
    max_code: int = 4095

    def encode(self, features: np.ndarray) -> np.ndarray:
        """DAC codes (patterns x layer-0 channels, uint16) for a batch of feature rows."""
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if x.shape[1] != len(self.input_channels):
            raise ValueError(f"expected {len(self.input_channels)} features per sample, got {x.shape[1]}")
        codes = np.tile(self.constant_codes.astype(np.int64), (x.shape[0], 1))
        feature_codes = np.rint((x - self.input_offset) * self.input_scale)
        codes[:, self.input_channels] = np.clip(feature_codes, 0, self.max_code).astype(np.int64)
        return codes.astype(np.uint16)

    def classify(self, output_rates: np.ndarray) -> np.ndarray:
        """Class index per pattern: the most active of the outputs that carry a class."""
        return np.argmax(np.asarray(output_rates)[:, self.class_outputs], axis=1)


@dataclass(frozen=True)
class TrainingProvenance:
    """How a set of weights was made. Evaluation reloads the same data split from it (source, label
    column, split seed), programming retrains around stuck bits with its seed, and fine-tuning from the
    weights takes the network's layer sizes and the die the network computes on (``model``) from it.
    None: not recorded (weights made before the field existed, or by a path that does not set it).

    Kept in the weights file as the JSON attribute ``metadata`` (strings, as ever:
    :func:`labctl.families.cmna.storage.save_weights`)."""

    trainer: str | None = None
    loss: str | None = None
    seed: int | None = None
    """Seed of the training run (restarts, batches)."""
    model: str | None = None
    """The die the weights were trained for: "measured" (this die's characterisation), "nominal" or
    "population" (the part's contract)."""
    layer_sizes_used: tuple[int, ...] | None = None
    """The network mapped onto the die: inputs, hidden layers, classes."""
    rounding: str | None = None
    fine_tuned: bool | None = None
    distilled: bool | None = None
    dataset_source: str | None = None
    """What :func:`labctl.train.datasets.load_dataset` loads (a built-in name or a CSV path)."""
    label_column: str | None = None
    split_seed: int | None = None
    """Seed of the data set's train/test split."""
    training_method: str | None = None
    """"scratch" or "finetune" (``labctl train --method``)."""
    reference: str | None = None
    """Pre-training key of a reference network's weights."""
    stuck_bits: int | None = None
    """Stuck latch bits the weights were retrained around."""
    in_situ_rounds: int | None = None
    power_weight: float | None = None
    """Power-aware training's alpha (``labctl train --power-weight``)."""
    power_budget_w: float | None = None
    """Power-aware training's budget of predicted mean network power (``--power-budget``)."""
    power_reference_w: float | None = None
    """The power-blind weights' predicted controlled power (the power term's unit: what the weights draw
    above the quiescent current, under the patterns and idle, less the inputs)."""
    other: dict[str, str] = field(default_factory=dict)
    """Entries this version does not know (a later labctl's), kept as they were."""

    def over(self, base: "TrainingProvenance") -> "TrainingProvenance":
        """``base`` with what this one records put over it (retrained weights keep their start's split)."""
        known = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "other"}
        return replace(base, **{k: v for k, v in known.items() if v is not None}, other=base.other | self.other)


@dataclass
class WeightSet:
    """Signed magnitude codes per weight matrix (full die geometry) and their encoding."""

    die_serial: str
    layer_sizes: tuple[int, ...]
    codes: list[np.ndarray]
    encoding: InputEncoding
    dataset: str
    software_accuracy: float
    calibration_sha256: str = ""
    naive: bool = False
    provenance: TrainingProvenance = field(default_factory=TrainingProvenance)
    predicted_supply_power_w: float = float("nan")
    """The model's mean supply power over the training split (NaN: not predicted, e.g. naive weights)."""
    predicted_network_power_w: float = float("nan")
    """The model's mean network power over the training split: what ``--power-budget`` bounds."""

    def __post_init__(self) -> None:
        for m, c in enumerate(self.codes):
            expected = (self.layer_sizes[m], self.layer_sizes[m + 1])
            if c.shape != expected:
                raise ValueError(f"matrix {m} has shape {c.shape}, die geometry needs {expected}")
            if c.size and (c.min() < -MAGNITUDE_MASK or c.max() > MAGNITUDE_MASK):
                raise ValueError(f"matrix {m} holds codes outside -{MAGNITUDE_MASK}..{MAGNITUDE_MASK}")
