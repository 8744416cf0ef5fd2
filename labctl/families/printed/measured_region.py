"""The region of component space a cell map was fitted on: where its predictions are measurements.

A CellMap is linear in the log components (process_map) and fitted on ~9
distinct designs per kind; near them it interpolates, away from them it
extrapolates, and an extrapolated NEG transition can be volts off. Training
moved NEG designs to R3/R4 ~ 9 with R5 ~ 47 k, where only structures flagged
``transition_outside`` lie: the map predicted eta3 0.34 V where the printed
cell has 2.5 V, and the printed network classified 32 % against 94 %
predicted. A box over the structures is not enough either: the NEG's
transfer is far from linear in the log components, and a corner of the box
that combines extremes of different structures (R1/R2 ~ 2 from one, R3
~ 340 k and W/L ~ 6 from others) was mispredicted just as badly (sim-7:
32 % again; with a neighbourhood of 0.3 the printed sample of sim-11 still
fell outside its interval). So the region is two conditions, both in the map's
normalised coordinates z = (log c - mid) / half (|z| <= 1 over the
printable ranges):

- the box: every component, and the ratios contract 1.5's constraints name
  (R1/R2 and R3/R4 for NEG), between the smallest and largest value among
  the fitted structures, widened by MARGIN_LOG (log units);
- the neighbourhood: within TRUST_RADIUS of the kind (Euclidean in z) of a
  fitted structure.

Structures left out of the fit (flagged, e.g. ``transition_outside``) are
not among the points, so their surroundings are not trusted.

HDF5 (inside the map's group): ``region_low``, ``region_high`` (log box),
``region_points`` (the structures' z), attr ``region_features``. A map
written before the region existed has none: ``read`` returns None and
training is bounded by the printable ranges only, as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
from numpy.typing import NDArray

from labctl.errors import DataFileError
from labctl.families.printed.printable import CELL_COMPONENTS, COMPONENT_RANGES

__all__ = ["MARGIN_LOG", "RATIOS", "TRUST_RADIUS", "MeasuredRegion", "log_range"]

MARGIN_LOG = 0.05
"""Widening of the measured box, in log units (~5 %): the drawing grid and rounding, well below the run's
eps (5 to 15 %, contract 1.6)."""
TRUST_RADIUS: Mapping[str, float] = {"ACT": 0.3, "NEG": 0.1}
"""How far (Euclidean, in z) a design may sit from its nearest fitted structure, per kind. Measured on the
sim-7 and sim-11 maps against the simulator's own cell curves over -0.25 to 1.6 V (25 random designs per
distance): the ACT map is within ~0.05 V rms (median) at every distance up to 0.9, but the NEG map's median
error grows from 0.02 V at a structure to 0.12 V at 0.15, 0.3 V at 0.3 and 1.2 V at 0.9 (90th percentile
0.7 V at 0.15). 0.1 in z is ~20 % on a resistor, about the run's eps."""
RATIOS: Mapping[str, tuple[tuple[str, str], ...]] = {"ACT": (), "NEG": (("R1", "R2"), ("R3", "R4"))}
"""The ratios contract 1.5's constraints name (R1/R2 > R3/R4 > 1): the NEG's transition follows them."""


def log_range(kind: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(mid, half) of log(component) over the printable ranges of ``kind``: the maps' normalisation."""
    ranges = COMPONENT_RANGES[kind]
    lo = np.log([ranges[c].low for c in CELL_COMPONENTS[kind]])
    hi = np.log([ranges[c].high for c in CELL_COMPONENTS[kind]])
    return (hi + lo) / 2, (hi - lo) / 2


def _features(kind: str, comps: NDArray) -> NDArray[np.float64]:
    """(n, f) log components then log constraint ratios of (n, k) components."""
    names = CELL_COMPONENTS[kind]
    logs = np.log(np.atleast_2d(comps))
    ratios = [logs[:, names.index(a)] - logs[:, names.index(b)] for a, b in RATIOS[kind]]
    return np.column_stack([logs, *ratios]) if ratios else logs


@dataclass(frozen=True)
class MeasuredRegion:
    """The log box (``low``..``high`` per feature) and the z ``points`` of the structures a map was fitted on."""

    kind: str
    features: tuple[str, ...]
    low: NDArray[np.float64]
    high: NDArray[np.float64]
    points: NDArray[np.float64]

    @staticmethod
    def feature_names(kind: str) -> tuple[str, ...]:
        """The components of ``kind`` then its constraint ratios, e.g. ``R3/R4``."""
        return CELL_COMPONENTS[kind] + tuple(f"{a}/{b}" for a, b in RATIOS[kind])

    @classmethod
    def of_structures(cls, kind: str, comps: NDArray) -> "MeasuredRegion":
        """The region of the fitted structures' (n, k) components (replicas count once)."""
        feats = _features(kind, comps)
        mid, half = log_range(kind)
        points = np.unique((np.log(np.atleast_2d(comps)) - mid) / half, axis=0)
        return cls(kind, cls.feature_names(kind), feats.min(axis=0) - MARGIN_LOG, feats.max(axis=0) + MARGIN_LOG,
                   points)

    def log_bounds(self, name: str) -> tuple[float, float]:
        """(low, high) of log ``name`` (a component or a ratio such as ``R3/R4``)."""
        i = self.features.index(name)
        return float(self.low[i]), float(self.high[i])

    def structures(self) -> NDArray[np.float64]:
        """(m, k) components of the fitted structures (``points`` back from z)."""
        mid, half = log_range(self.kind)
        return np.exp(mid + half * self.points)

    def _distances(self, comps: NDArray) -> NDArray[np.float64]:
        """(n, m) z distance of each design to each fitted structure."""
        mid, half = log_range(self.kind)
        z = (np.log(np.atleast_2d(comps)) - mid) / half
        return np.linalg.norm(z[:, None, :] - self.points[None], axis=2)

    def contains(self, comps: NDArray, tol: float = 1e-6) -> NDArray[np.bool_]:
        """Per design of (n, k) components: inside the box and the neighbourhood (``tol``: float rounding)."""
        feats = _features(self.kind, comps)
        in_box = np.all((feats >= self.low - tol) & (feats <= self.high + tol), axis=1)
        return in_box & (self._distances(comps).min(axis=1) <= TRUST_RADIUS[self.kind] + tol)

    def project(self, comps: NDArray) -> NDArray[np.float64]:
        """(n, k) designs moved toward their nearest structure until within its TRUST_RADIUS (slightly inside).

        Along the straight line in log space, so the contract's constraints, linear in the logs and met
        by both ends, still hold; designs already near a structure are returned unchanged.
        """
        mid, half = log_range(self.kind)
        z = (np.log(np.atleast_2d(comps)) - mid) / half
        dist = self._distances(comps)
        nearest = self.points[dist.argmin(axis=1)]
        d = dist.min(axis=1, keepdims=True)
        radius = TRUST_RADIUS[self.kind]
        shrink = np.where(d > radius, 0.999 * radius / np.maximum(d, 1e-12), 1.0)
        return np.exp(mid + half * (nearest + (z - nearest) * shrink))

    def write(self, group) -> None:
        """Store in the map's h5py group (module docstring)."""
        group.attrs["region_features"] = list(self.features)
        group["region_low"], group["region_high"], group["region_points"] = self.low, self.high, self.points

    @classmethod
    def read(cls, group, kind: str) -> "MeasuredRegion | None":
        """The stored region, or None for a map written before regions were recorded."""
        names = ("region_low", "region_high", "region_points")
        if not all(n in group for n in names) or "region_features" not in group.attrs:
            return None
        features = tuple(str(f) for f in group.attrs["region_features"])
        if features != cls.feature_names(kind):
            raise DataFileError(f"{group.file.filename}:{group.name}: measured region over {features}, "
                                f"expected {cls.feature_names(kind)}")
        low, high, points = (np.asarray(group[n][()], float) for n in names)
        return cls(kind, features, low, high, points)
