"""Tailored training: weights for one characterised die (seed 004 sections 1.1 and 3.4).

The measured gains of the die go into the forward pass (:class:`DieModel`),
so backpropagation finds 3-bit weights that suit this die's heterogeneous
neurons. ``naive=True`` trains the same way on nominal gains: the baseline a
lab would get without characterisation.

The die has no bias terms and is positively homogeneous (ReLU somas, linear
synapses): scaling all input currents scales every current in the network and
leaves the class decision alone. Training therefore works in relative input
units (features in [0, 1], the bias channel at 1), and the DAC scale is
chosen afterwards so that every soma stays in its linear range (contract
section 1: up to about 300 nA; we aim at 200 nA) while the signals stay far
above leakage (tens of pA) and the C2F dark rate (a few Hz).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from labctl.die_parameters import DieParameters
from labctl.errors import ConfigError
from labctl.train.datasets import Dataset
from labctl.train.die_model import DieModel, predict_rates, rectify, soma_currents_a
from labctl.train.network_map import NetworkMap, map_network
from labctl.train.quantise import QuantisedWeights
from labctl.weights import InputEncoding, WeightSet

TARGET_MAX_SOMA_INPUT_A = 200e-9
"""Largest soma input current the encoding allows on the training set (linear range ~300 nA, section 1)."""

LOSSES = ("mse", "ce")
TORCH_THREADS = 2
L1_NEGATIVE = 1e-6
"""L1 penalty on negative weights (seed 004 section 3.4)."""

GRADIENT_LEAK = 0.05
"""Rectifier gradient below zero during training: revives neurons that are off for every sample."""

Progress = Callable[[int, int, float, float], None]


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
    losses: list[float] = field(default_factory=list)
    """Training loss of the 3-bit network after each epoch (whole training split)."""
    train_accuracies: list[float] = field(default_factory=list)
    """Accuracy of the 3-bit network on the training split after each epoch (relative input units)."""
    best_epoch: int = 0
    """Epoch whose weights were kept (lowest training loss)."""
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


def train_weights(
    params: DieParameters,
    dataset: Dataset,
    *,
    hidden: tuple[int, ...] | None = None,
    seed: int = 0,
    epochs: int | None = None,
    loss: str = "mse",
    naive: bool = False,
    progress: Progress | None = None,
    batch_size: int | None = None,
    learning_rate: float = 0.05,
    variation_aware: bool = True,
) -> tuple[WeightSet, TrainReport]:
    """Train 3-bit weights for the die described by ``params`` (or nominal gains if ``naive``).

    Returns the weights on the full die geometry with their input encoding,
    and a report. Deterministic for a given seed (2 torch threads).
    """
    if loss not in LOSSES:
        raise ConfigError(f"unknown loss {loss!r}: use one of {', '.join(LOSSES)}")
    if epochs is not None and epochs < 1:
        raise ConfigError(f"training needs at least 1 epoch, got {epochs}")
    start = time.perf_counter()
    chip = params.chip
    model_params = DieParameters.nominal(chip) if naive else params
    network = map_network(chip, dataset.n_features, dataset.n_classes, hidden)
    n_train = len(dataset.y_train)
    batch_size = batch_size or int(np.clip(n_train // 8, 16, 200))
    steps_per_epoch = math.ceil(n_train / batch_size)
    epochs = epochs if epochs is not None else int(np.clip(math.ceil(3000 / steps_per_epoch), 50, 400))
    noisy = variation_aware and np.isfinite(model_params.synapse_spread) and model_params.synapse_spread > 0

    threads = torch.get_num_threads()
    torch.set_num_threads(TORCH_THREADS)
    try:
        torch.manual_seed(seed)
        codes, logs = _fit(model_params, network, dataset, loss, epochs, batch_size, learning_rate, noisy, seed, progress)
    finally:
        torch.set_num_threads(threads)

    encoding, full_scale = _choose_encoding(model_params, network, dataset, codes)
    weights = WeightSet(
        die_serial=chip.serial,
        layer_sizes=tuple(chip.layer_sizes),
        codes=codes,
        encoding=encoding,
        dataset=dataset.name,
        software_accuracy=float("nan"),
        naive=naive,
        metadata={"trainer": "labctl.train", "loss": loss, "seed": str(seed), "model": "nominal" if naive else "measured"},
    )
    train_codes = encoding.encode(dataset.X_train)
    currents = soma_currents_a(model_params, codes, train_codes)
    test_rates = predict_rates(model_params, weights, encoding.encode(dataset.X_test))
    weights.software_accuracy = _accuracy(encoding.classify(test_rates), dataset.y_test)
    train_rates = predict_rates(model_params, weights, train_codes)
    ideal_rates = predict_rates(DieParameters.nominal(chip), weights, encoding.encode(dataset.X_test))
    report = TrainReport(
        dataset=dataset.name,
        die_serial=chip.serial,
        naive=naive,
        seed=seed,
        loss=loss,
        layer_sizes_used=network.layer_sizes_used,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        variation_aware=noisy,
        seconds=time.perf_counter() - start,
        ideal_accuracy=_accuracy(encoding.classify(ideal_rates), dataset.y_test),
        train_accuracy=_accuracy(encoding.classify(train_rates), dataset.y_train),
        software_accuracy=weights.software_accuracy,
        input_full_scale_code=full_scale,
        max_soma_input_a=[float(c.max()) for c in currents],
        median_winner_rate_hz=float(np.median(test_rates[:, encoding.class_outputs].max(axis=1))),
        **logs,
    )
    return weights, report


def relative_inputs(network: NetworkMap, n_channels: int, unit_features: np.ndarray) -> np.ndarray:
    """Layer-0 drive in relative units: features on their channels, 1 on the bias channel, 0 elsewhere."""
    x = np.zeros((unit_features.shape[0], n_channels))
    x[:, network.input_channels] = unit_features
    if network.bias_channel is not None:
        x[:, network.bias_channel] = 1.0
    return x


def _fit(
    params: DieParameters,
    network: NetworkMap,
    dataset: Dataset,
    loss_name: str,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    noisy: bool,
    seed: int,
    progress: Progress | None,
) -> tuple[list[np.ndarray], dict]:
    """Adam on the float store with 3-bit forward passes (seed 004 section 3.4).

    Keeps the codes of the epoch with the lowest training loss of the 3-bit
    network (training accuracy over 100-odd samples overfits borderline ones).
    """
    chip = params.chip
    dtype = torch.float32
    model = DieModel(params, dtype=dtype)
    masks = network.masks(chip)
    weights = QuantisedWeights(masks, chip.max_magnitude, [0.4 * chip.max_magnitude] * len(masks), dtype)
    _start_bias_positive(weights, network)
    outputs = torch.as_tensor(network.class_outputs)

    def drive(features: np.ndarray) -> torch.Tensor:
        x = relative_inputs(network, chip.n_inputs, dataset.unit(features))
        return torch.as_tensor(x, dtype=dtype) * model.bias_gain

    x_train = drive(dataset.X_train)
    y_train = torch.as_tensor(dataset.y_train)
    rate_norm = model.rate_gain[outputs].mean()

    def outputs_of(x: torch.Tensor, codes: list[torch.Tensor], factors=None, leak: float = 0.0) -> torch.Tensor:
        last = model.soma_inputs(x, codes, factors, leak)[-1]
        return model.rate_gain[outputs] * rectify(last[:, outputs], leak) / rate_norm

    with torch.no_grad():
        typical = outputs_of(x_train, weights.codes()).max(dim=1).values.mean().clamp(min=1e-12)
    log_gain = torch.nn.Parameter(-torch.log(typical).to(dtype))
    optimiser = torch.optim.Adam([*weights.parameters(), log_gain], lr=learning_rate)
    total_steps = epochs * math.ceil(len(y_train) / batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=total_steps, eta_min=learning_rate * 0.05)
    shuffle = torch.Generator().manual_seed(seed)
    one_hot = torch.eye(len(outputs), dtype=dtype)
    spread = params.synapse_spread

    def objective(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if loss_name == "ce":
            return torch.nn.functional.cross_entropy(logits, labels)
        return ((logits - one_hot[labels]) ** 2).sum(dim=1).mean()

    logs: dict = {"losses": [], "train_accuracies": [], "best_epoch": 0}
    best_loss = math.inf
    kept = weights.integer_codes()
    for epoch in range(epochs):
        for batch in torch.randperm(len(y_train), generator=shuffle).split(batch_size):
            factors = [torch.exp(spread * torch.randn(m.shape, dtype=dtype)) for m in masks] if noisy else None
            logits = torch.exp(log_gain) * outputs_of(x_train[batch], weights.codes(), factors, GRADIENT_LEAK)
            total = objective(logits, y_train[batch]) + L1_NEGATIVE * weights.negative_l1()
            optimiser.zero_grad()
            total.backward()
            optimiser.step()
            schedule.step()
            weights.clip_()
        with torch.no_grad():
            logits = torch.exp(log_gain) * outputs_of(x_train, weights.codes())
            epoch_loss = float(objective(logits, y_train))
            accuracy = float((logits.argmax(dim=1) == y_train).double().mean())
        logs["losses"].append(epoch_loss)
        logs["train_accuracies"].append(accuracy)
        if epoch_loss < best_loss:
            best_loss, kept, logs["best_epoch"] = epoch_loss, weights.integer_codes(), epoch
        if progress is not None:
            progress(epoch + 1, epochs, epoch_loss, accuracy)
    return kept, logs


def _start_bias_positive(weights: QuantisedWeights, network: NetworkMap) -> None:
    """Start the bias weights positive so that no hidden neuron begins switched off for every input."""
    if network.bias_channel is None:
        return
    with torch.no_grad():
        row = weights.latent[0][network.bias_channel]
        row.copy_(row.abs())


def _choose_encoding(
    params: DieParameters, network: NetworkMap, dataset: Dataset, codes: list[np.ndarray]
) -> tuple[InputEncoding, float]:
    """The largest input scale with every soma input <= 200 nA on the training split and codes <= max.

    The network is homogeneous, so the first step lands almost on the answer;
    DAC rounding and the bias offsets are not, hence the check on real codes.
    """
    chip = params.chip
    full_scale = float(chip.max_dac_code)
    for _ in range(20):
        encoding = _encoding(chip.n_inputs, network, dataset, full_scale, chip.max_dac_code)
        currents = soma_currents_a(params, codes, encoding.encode(dataset.X_train))
        peak = max(float(c.max()) for c in currents)
        if peak <= TARGET_MAX_SOMA_INPUT_A:
            return encoding, full_scale
        full_scale *= 0.999 * TARGET_MAX_SOMA_INPUT_A / peak
    raise ConfigError(f"no input scale keeps the somas of {chip.serial} below {TARGET_MAX_SOMA_INPUT_A:g} A")


def _encoding(n_channels: int, network: NetworkMap, dataset: Dataset, full_scale: float, max_code: int) -> InputEncoding:
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


def _accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(predicted) == np.asarray(labels)))
