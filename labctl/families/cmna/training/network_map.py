"""Placing a network on the die geometry (contract section 1: "a 4-7-3 network uses a subset").

The die is a fixed feed-forward array without bias terms. A smaller network
uses the first neurons of each layer; the others keep zero weights. If layer 0
has a channel to spare, it carries a constant DAC code and acts as the bias
input of the first hidden layer (its weights are that layer's biases).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labctl.families.cmna.chip import ChipDescription
from labctl.errors import ConfigError


@dataclass(frozen=True)
class NetworkMap:
    """Which die neurons a network uses.

    ``layer_sizes_used`` counts the network's neurons per die layer (features,
    hidden layers, classes); the bias channel is not counted in it.
    """

    layer_sizes_used: tuple[int, ...]
    input_channels: np.ndarray
    bias_channel: int | None
    class_outputs: np.ndarray

    def masks(self, chip: ChipDescription) -> list[np.ndarray]:
        """Per weight matrix (full die geometry): True where a synapse belongs to the network."""
        masks = []
        for m in range(chip.n_matrices):
            mask = np.zeros(chip.matrix_shape(m), dtype=bool)
            rows = self.used_neurons(m)
            mask[np.ix_(rows, self.used_neurons(m + 1))] = True
            masks.append(mask)
        return masks

    def used_neurons(self, layer: int) -> np.ndarray:
        """Indices of the die neurons of ``layer`` that carry signal (bias channel included)."""
        if layer == 0:
            extra = [] if self.bias_channel is None else [self.bias_channel]
            return np.sort(np.concatenate([self.input_channels, np.array(extra, dtype=np.int64)]))
        if layer == len(self.layer_sizes_used) - 1:
            return self.class_outputs
        return np.arange(self.layer_sizes_used[layer])


def map_network(
    chip: ChipDescription, n_features: int, n_classes: int, hidden: tuple[int, ...] | None = None
) -> NetworkMap:
    """Map an ``n_features``-hidden-``n_classes`` network onto ``chip``; hidden defaults to the full die.

    Raises ConfigError naming what does not fit.
    """
    die_hidden = tuple(chip.layer_sizes[1:-1])
    hidden = die_hidden if hidden is None else tuple(int(h) for h in hidden)
    if len(hidden) != len(die_hidden):
        raise ConfigError(
            f"{chip.part} has {len(die_hidden)} hidden layer(s) {die_hidden}, the network asks for {len(hidden)}"
        )
    if n_features > chip.n_inputs:
        raise ConfigError(f"{n_features} features do not fit the {chip.n_inputs} input channels of {chip.part}")
    if n_classes > chip.n_outputs:
        raise ConfigError(f"{n_classes} classes do not fit the {chip.n_outputs} output neurons of {chip.part}")
    if n_features < 1 or n_classes < 2:
        raise ConfigError(f"a classifier needs at least 1 feature and 2 classes, got {n_features} and {n_classes}")
    for layer, (want, have) in enumerate(zip(hidden, die_hidden), start=1):
        if not 1 <= want <= have:
            raise ConfigError(f"hidden layer {layer} asks for {want} neurons, {chip.part} has 1 to {have}")
    bias = n_features if n_features < chip.n_inputs else None
    return NetworkMap(
        layer_sizes_used=(n_features, *hidden, n_classes),
        input_channels=np.arange(n_features),
        bias_channel=bias,
        class_outputs=np.arange(n_classes),
    )
