"""The toy device's link (what the family talks to) and its simulator (what tests draw), kept apart.

The link reads and writes the device file like a driver talks to hardware:
it never looks at the gains; only :func:`make_device` (the simulator, for
tests) draws them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ROWS, COLUMNS = 5, 3
"""Four input rows and a bias row (held at 1 V), three output columns."""
LEVELS = tuple(range(-3, 4))
G_UNIT_S = 1e-6
NOISE_FRAC = 0.01


def make_device(path: Path, seed: int) -> Path:
    """Simulator: a die with its own mismatch (10 % gain spread), latches at 0."""
    rng = np.random.default_rng(seed)
    state = {"serial": f"TOY-{seed:04d}", "part": "TOY-4x3", "gains": (1 + 0.1 * rng.standard_normal((ROWS, COLUMNS))).tolist(),
             "codes": np.zeros((ROWS, COLUMNS), int).tolist(), "seed": seed, "reads": 0}
    path.write_text(json.dumps(state))
    return path


class ToyLink:
    """Program, read back, apply patterns, identify: the toy's link operations."""

    def __init__(self, port: str) -> None:
        self.path = Path(port.removeprefix("toy://"))
        if not self.path.exists():
            raise FileNotFoundError(f"no toy device at {self.path}")

    def _state(self) -> dict:
        return json.loads(self.path.read_text())

    def identify(self) -> tuple[str, str]:
        state = self._state()
        return state["part"], state["serial"]

    def write_codes(self, codes: np.ndarray) -> None:
        state = self._state()
        state["codes"] = np.asarray(codes, int).tolist()
        self.path.write_text(json.dumps(state))

    def read_codes(self) -> np.ndarray:
        return np.asarray(self._state()["codes"], int)

    def apply(self, volts: np.ndarray) -> np.ndarray:
        """Output currents (patterns x columns) for input voltages (patterns x rows), with reading noise."""
        state = self._state()
        state["reads"] += 1
        self.path.write_text(json.dumps(state))
        rng = np.random.default_rng(state["seed"] * 7919 + state["reads"])
        clean = np.atleast_2d(volts) @ (np.asarray(state["gains"]) * np.asarray(state["codes"]) * G_UNIT_S)
        return clean * (1 + NOISE_FRAC * rng.standard_normal(clean.shape))
