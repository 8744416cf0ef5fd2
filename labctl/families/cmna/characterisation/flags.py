"""The neurons of one layer whose gains are doubtful, as the analysis found them.

One :class:`NeuronFlags` per layer goes from the analysis to the file
(``/flags/layer_{l}/methods_disagree``, ``poor_fit``, ``unmeasured``; only the
flags the analysis computed are written), to the report and to the command
line's summary.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass(frozen=True, eq=False)
class NeuronFlags:
    """Per-neuron bools of one layer; a flag the analysis did not compute is None (and is not stored)."""

    methods_disagree: np.ndarray | None = None
    """The two methods' a+ differ beyond 3 sigma (only when both methods ran)."""
    poor_fit: np.ndarray | None = None
    """a+ known worse than 3 % (1 sigma)."""
    unmeasured: np.ndarray | None = None
    """No measurement reached the neuron: its gains are filled in."""

    NAMES = ("methods_disagree", "poor_fit", "unmeasured")
    """The flags by name, as the file's datasets are named."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                object.__setattr__(self, f.name, np.asarray(value, bool))

    def present(self) -> dict[str, np.ndarray]:
        """The computed flags by name (sorted), for the file and for display."""
        return {name: value for name in sorted(self.NAMES) if (value := getattr(self, name)) is not None}

    def any(self, n_neurons: int) -> np.ndarray:
        """Per neuron: at least one flag set."""
        out = np.zeros(n_neurons, bool)
        for value in self.present().values():
            out |= value
        return out

    def count(self) -> int:
        """Flags set in the layer (a neuron with two flags counts twice, as the run summary has it)."""
        return int(sum(np.sum(v) for v in self.present().values()))

    def names_at(self, neuron: int) -> list[str]:
        """The flags set on one neuron, by name (sorted)."""
        return [name for name, value in self.present().items() if value[neuron]]
