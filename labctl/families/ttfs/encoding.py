"""Features to input time codes (contract 1.3, 1.8): a feature's value is how early its line spikes.

TTFS carries a value in how early a spike comes, so by default a feature at
the training split's maximum gets code 0 (its row on at d_in) and one at the
minimum code ``max_code`` (254 by default: 2.54 us, the input window's end;
code 255 is "no spike" and is never produced). ``larger_earlier=False``
reverses the direction (the smallest value spikes first): for a data set
whose features carry no intensity, such as Iris's lengths, it is a free
choice, and it is stored with the weights. The scaling is fixed on the
training split (``labctl.train.datasets.Dataset.feature_offset`` and
``feature_scale``) and stored with the weights, so that the test split and
later data get the same codes; values beyond the training range clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labctl.families.ttfs.model import MAX_TIME_CODE
from labctl.train.datasets import Dataset


@dataclass(frozen=True)
class TimeEncoding:
    """``code = round(max_code x (1 - u))``, ``u = clip((x - offset) x scale, 0, 1)`` per feature (``max_code x u``
    when not ``larger_earlier``)."""

    offset: np.ndarray
    scale: np.ndarray
    max_code: int = MAX_TIME_CODE
    larger_earlier: bool = True

    def encode(self, features: np.ndarray) -> np.ndarray:
        """Input time codes (patterns x features, uint8) for a batch of feature rows."""
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if x.shape[1] != len(self.offset):
            raise ValueError(f"expected {len(self.offset)} features per sample, got {x.shape[1]}")
        unit = np.clip((x - self.offset) * self.scale, 0.0, 1.0)
        lateness = 1.0 - unit if self.larger_earlier else unit
        return np.rint(self.max_code * lateness).astype(np.uint8)

    @classmethod
    def of(cls, dataset: Dataset, *, larger_earlier: bool = True, max_code: int = MAX_TIME_CODE) -> "TimeEncoding":
        """The training split's scaling of ``dataset``."""
        return cls(np.asarray(dataset.feature_offset, float), np.asarray(dataset.feature_scale, float), max_code,
                   larger_earlier)
