"""Printing variation of PNC-1 (contract 1.6): one printed instance of a nominal component set.

Every printed value (each resistance, and the W and the L of each EGT
separately) is its nominal value times ``1 + U(-eps, eps)``, independently
per component and per sample. Nothing else is spread per component: run-level
effects (sheet resistance, EGT material) belong to the process, not here.
Works on any frozen dataclass of floats, so ACT, NEG and crossbar component
sets share one rule.
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

import numpy as np

MAX_EPS = 0.15  # contract 1.6 (G): eps of a run is at most 15 %

T = TypeVar("T")


def draw_printed(nominal: T, eps: float, rng: np.random.Generator) -> T:
    """Return ``nominal`` with every float field multiplied by ``1 + U(-eps, eps)``.

    Fields are drawn in declaration order from ``rng`` so that one seed gives
    one sample. ``eps = 0`` returns equal values (and consumes no randomness).
    """
    if not 0.0 <= eps <= MAX_EPS:
        raise ValueError(f"eps {eps} outside 0..{MAX_EPS} (contract 1.6)")
    if not dataclasses.is_dataclass(nominal) or isinstance(nominal, type):
        raise TypeError("nominal must be a dataclass instance")
    names = [f.name for f in dataclasses.fields(nominal) if isinstance(getattr(nominal, f.name), float)]
    if eps == 0.0:
        return dataclasses.replace(nominal)
    factors = 1.0 + rng.uniform(-eps, eps, size=len(names))
    return dataclasses.replace(nominal, **{name: getattr(nominal, name) * f for name, f in zip(names, factors)})


def factors(count: int, eps: float, rng: np.random.Generator) -> np.ndarray:
    """``count`` independent factors ``1 + U(-eps, eps)`` (contract 1.6), for values kept in arrays."""
    if not 0.0 <= eps <= MAX_EPS:
        raise ValueError(f"eps {eps} outside 0..{MAX_EPS} (contract 1.6)")
    return 1.0 + rng.uniform(-eps, eps, size=count)
