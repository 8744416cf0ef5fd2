"""Trained networks as the trainer and the pre-training exchange them, and how one meets a die.

The trainer (:mod:`labctl.families.cmna.training.trainer`) makes weights and
a :class:`TrainReport`, and fine-tunes from a :class:`PretrainedNetwork` under
a :class:`Teacher`; the pre-training
(:mod:`labctl.families.cmna.training.population`) makes a
:class:`PretrainedNetwork` with the trainer. Both need these types, and a
pre-trained network needs the input encoding (:func:`choose_encoding`) to
become weights for a die: they live here, below both, so that the population
imports the trainer and the trainer never imports the population.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labctl.errors import ConfigError
from labctl.families.cmna import ratings
from labctl.families.cmna.chip import ChipDescription
from labctl.families.cmna.die_parameters import DieParameters
from labctl.families.cmna.training.die_model import predict_rates, soma_currents_a
from labctl.families.cmna.training.network_map import NetworkMap, map_network
from labctl.families.cmna.weights import InputEncoding, TrainingProvenance, WeightSet
from labctl.train.datasets import Dataset


Progress = Callable[[int, int, float, float], None]
"""``progress(epoch, epochs, loss, nominal training accuracy)`` after every epoch."""


@dataclass
class TrainReport:
    """What happened during training, for the log, the HDF5 file and the GUI."""

    dataset: str
    die_serial: str
    naive: bool
    seed: int
    loss: str
    layer_sizes_used: tuple[int, ...]
    epochs: int
    batch_size: int
    learning_rate: float
    variation_aware: bool
    seconds: float
    """Wall time of training and encoding."""
    restarts: int = 1
    rounding: str = "ste"
    """Rounding scheme of the restart that was kept."""
    fine_tuned: bool = False
    losses: list[float] = field(default_factory=list)
    """Training loss after each epoch of the kept restart (sampled dies, 3-bit network)."""
    train_accuracies: list[float] = field(default_factory=list)
    """Accuracy of the 3-bit network on the training split after each epoch of the kept restart (mean model)."""
    best_epoch: int = 0
    """Epoch whose weights were kept (fewest expected training errors on sampled dies)."""
    expected_train_errors: float = float("nan")
    """Expected training-split errors of the kept codes, mean over the scoring dies, with count noise."""
    worst_train_errors: float = float("nan")
    """The same on the worst of the scoring dies."""
    ideal_accuracy: float = float("nan")
    """Test accuracy of the same codes on an ideal die (nominal gains, no offsets, no dark rate)."""
    train_accuracy: float = float("nan")
    """Training-split accuracy of the programmed network (3-bit codes, DAC codes) in the model."""
    software_accuracy: float = float("nan")
    """Test-split accuracy of the programmed network (3-bit codes, DAC codes) in the model."""
    input_full_scale_code: float = float("nan")
    """DAC code of a feature at its training maximum (and of the bias channel)."""
    max_soma_input_a: list[float] = field(default_factory=list)
    """Largest soma input current per layer over the training split, A."""
    median_winner_rate_hz: float = float("nan")
    """Median rate of the winning output on the test split: compare with the C2F dark rate."""
    stores: list[list[np.ndarray]] = field(default_factory=list, repr=False)
    """Float store (code units) of every restart's kept epoch, most robust first: starts for fine-tuning."""


@dataclass
class Teacher:
    """A reference network and the die it computes on: its decisions are the targets of distillation."""

    weights: WeightSet
    params: DieParameters

    def decisions(self, features: np.ndarray) -> np.ndarray:
        rates = predict_rates(self.params, self.weights, self.weights.encoding.encode(features))
        return self.weights.encoding.classify(rates)


@dataclass
class PretrainedNetwork:
    """A network trained for a part's population of dies: the start of every fine-tuning."""

    layer_sizes: tuple[int, ...]
    layer_sizes_used: tuple[int, ...]
    dataset: str
    stores: list[list[np.ndarray]]
    """Population network: float store per matrix (code units, full die geometry) of every restart, best first."""
    reference_codes: list[np.ndarray]
    """The reference network's codes (full die geometry)."""
    key: str
    seconds: float
    """Wall time the pre-training took when it ran (kept in the cache)."""
    from_cache: bool = False
    path: Path | None = None

    def reference(self, chip: ChipDescription, dataset: Dataset) -> WeightSet:
        """The reference network as weights for ``chip`` (encoding chosen on a perfect die)."""
        nominal = DieParameters.nominal(chip)
        hidden = self.layer_sizes_used[1:-1]
        network = map_network(chip, dataset.n_features, dataset.n_classes, hidden)
        encoding, _ = choose_encoding(nominal, network, dataset, self.reference_codes)
        weights = WeightSet(chip.serial, tuple(chip.layer_sizes), [c.copy() for c in self.reference_codes], encoding,
                            dataset.name, float("nan"), naive=True,
                            provenance=TrainingProvenance(
                                trainer="labctl.train", model="nominal", reference=self.key,
                                layer_sizes_used=tuple(self.layer_sizes_used), dataset_source=dataset.source,
                                label_column=dataset.label_column or None))
        rates = predict_rates(nominal, weights, encoding.encode(dataset.X_test))
        weights.software_accuracy = accuracy(encoding.classify(rates), dataset.y_test)
        return weights

    def reference_report(self, weights: WeightSet, dataset: Dataset) -> TrainReport:
        """A training report for :meth:`reference` weights (the naive baseline: nothing trained for the die)."""
        return TrainReport(dataset=dataset.name, die_serial=weights.die_serial, naive=True, seed=0, loss="margin",
                           layer_sizes_used=self.layer_sizes_used, epochs=0, batch_size=0, learning_rate=0.0,
                           variation_aware=True, seconds=0.0 if self.from_cache else self.seconds,
                           ideal_accuracy=weights.software_accuracy, software_accuracy=weights.software_accuracy)


def soma_input_limit_a(params: DieParameters) -> float:
    """The largest soma input the encoding may reach on this die: 200 nA, or less where
    characterisation measured a soma compressing early (:func:`labctl.families.cmna.ratings.soma_input_limit_a`)."""
    return ratings.soma_input_limit_a(ratings.TARGET_SOMA_INPUT_A, (lay.compression_onset_a for lay in params.layers))


def choose_encoding(
    params: DieParameters, network: NetworkMap, dataset: Dataset, codes: list[np.ndarray]
) -> tuple[InputEncoding, float]:
    """The largest input scale with every soma input within :func:`soma_input_limit_a` on the training
    split and codes <= max.

    The network is homogeneous but for the offsets and leakage, so the first
    step lands almost on the answer; DAC rounding and the offsets are not,
    hence the check on real codes.
    """
    chip = params.chip
    limit = soma_input_limit_a(params)
    full_scale = float(chip.max_dac_code)
    for _ in range(20):
        encoding = input_encoding(chip.n_inputs, network, dataset, full_scale, chip.max_dac_code)
        currents = soma_currents_a(params, codes, encoding.encode(dataset.X_train))
        peak = max(float(c.max()) for c in currents)
        if peak <= limit:
            return encoding, full_scale
        full_scale *= 0.999 * limit / peak
    raise ConfigError(f"no input scale keeps the somas of {chip.serial} below {limit:g} A")


def input_encoding(n_channels: int, network: NetworkMap, dataset: Dataset, full_scale: float,
                   max_code: int) -> InputEncoding:
    """The encoding that puts a feature at its training maximum, and the bias channel, at DAC code
    ``full_scale``."""
    constant = np.zeros(n_channels, dtype=np.int64)
    if network.bias_channel is not None:
        constant[network.bias_channel] = int(round(full_scale))
    return InputEncoding(
        input_offset=dataset.feature_offset.copy(),
        input_scale=dataset.feature_scale * full_scale,
        input_channels=network.input_channels.copy(),
        constant_codes=constant,
        class_outputs=network.class_outputs.copy(),
        max_code=max_code,
    )


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(predicted) == np.asarray(labels)))
