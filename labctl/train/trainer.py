"""Tailored training: weights for one characterised die (seed 004 sections 1.1 and 3.4).

The measured gains of the die go into the forward pass (:mod:`die_model`), so
backpropagation finds 3-bit weights that suit this die's heterogeneous
neurons. What characterisation cannot pin down (the mirror gain of every
synapse bit, the fits' own errors, hidden somas' leakage) is sampled every
step (:mod:`variation`), and the loss asks for a margin in units of the C2F
count noise at the evaluation gate (:mod:`objectives`), so that the weights
hold on the die itself and not only in the model. ``naive=True`` trains the
same way on nominal gains without variation: the baseline a lab would get
without characterisation, and, evaluated on a nominal die, the ideal software
network.

Training sees exactly what the die will see: the DAC codes of the training
split under the encoding in force (re-chosen every epoch so that every soma
stays below 200 nA: the linear range ends near 300 nA, contract section 1),
the measured bias offsets, the leakage, the dark rates. Among the epochs of
every restart, and among restarts (different seeds, both rounding schemes of
:mod:`quantise`), the codes with the fewest expected training errors over a
fixed set of sampled dies, with count noise, are kept; the test split is
never looked at.

Fine-tuning (:func:`finetune`) starts from a network pre-trained on the
contract's population of dies (:mod:`population`) or from earlier codes, and
needs far fewer epochs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from labctl.die_parameters import DieParameters
from labctl.errors import ConfigError
from labctl.train import objectives
from labctl.train.datasets import Dataset
from labctl.train.die_model import (
    input_currents_a,
    output_rates_hz,
    predict_rates,
    rectify,
    soma_currents_a,
    soma_inputs,
)
from labctl.train.network_map import NetworkMap, map_network
from labctl.train.quantise import ROUNDINGS, LatchDefects, QuantisedWeights
from labctl.train.variation import READING_NOISE_FRAC, ContractPopulation, DieDraws, MeasuredDistribution
from labctl.weights import InputEncoding, WeightSet

TARGET_MAX_SOMA_INPUT_A = 200e-9
"""Largest soma input current the encoding allows on the training set (linear range ~300 nA, section 1)."""

LOSSES = objectives.LOSSES
TORCH_THREADS = 2
L1_NEGATIVE = 1e-6
"""L1 penalty on negative weights (seed 004 section 3.4)."""
GRADIENT_LEAK = 0.05
"""Rectifier gradient below zero during training: revives neurons that are off for every sample."""
DEFAULT_GATE_MS = 20
"""Gate of the on-chip evaluation (labctl.evaluation's default); the count noise the margin is measured in."""
SCORE_SAMPLES = 20_000
"""Patterns x sampled dies for the robustness score of one epoch (at least 4 dies, at most 32)."""

Progress = Callable[[int, int, float, float], None]
Distribution = MeasuredDistribution | ContractPopulation


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
    """Expected training-split errors of the kept codes, mean over sampled dies, with count noise."""
    worst_train_errors: float = float("nan")
    """The same on the worst of the sampled dies."""
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


@dataclass
class _Candidate:
    codes: list[np.ndarray]
    score: float
    """Robustness score: mean of the expected training errors over the scoring dies and of the worst die's."""
    rounding: str
    logs: dict


def train_weights(
    params: DieParameters,
    dataset: Dataset,
    *,
    hidden: tuple[int, ...] | None = None,
    seed: int = 0,
    epochs: int | None = None,
    loss: str = "margin",
    naive: bool = False,
    progress: Progress | None = None,
    batch_size: int | None = None,
    learning_rate: float = 0.05,
    variation_aware: bool = True,
    restarts: int | None = None,
    rounding: str | Sequence[str] = ROUNDINGS,
    start: Sequence[np.ndarray] | None = None,
    defects: LatchDefects | None = None,
    gate_ms: int = DEFAULT_GATE_MS,
    population: bool = False,
) -> tuple[WeightSet, TrainReport]:
    """Train 3-bit weights for the die described by ``params`` (or nominal gains if ``naive``).

    ``restarts`` runs (default 4 from scratch, 1 from ``start``) cycle through
    the ``rounding`` schemes; the most robust codes are kept. ``start`` gives
    initial weights in code units (full die geometry), ``defects`` known stuck
    latch bits (training uses what those latches really hold). ``population``
    trains for the contract's population of dies instead of ``params`` (its
    chip geometry is used; see :func:`labctl.train.population.pretrain_population`).
    Returns the weights on the full die geometry with their input encoding,
    and a report. Deterministic for a given seed (2 torch threads).
    """
    if loss not in LOSSES:
        raise ConfigError(f"unknown loss {loss!r}: use one of {', '.join(LOSSES)}")
    if epochs is not None and epochs < 1:
        raise ConfigError(f"training needs at least 1 epoch, got {epochs}")
    roundings = (rounding,) if isinstance(rounding, str) else tuple(rounding)
    if not roundings or any(r not in ROUNDINGS for r in roundings):
        raise ConfigError(f"rounding must be among {', '.join(ROUNDINGS)}, got {rounding!r}")
    started = time.perf_counter()
    chip = params.chip
    model_params = DieParameters.nominal(chip) if naive else params
    network = map_network(chip, dataset.n_features, dataset.n_classes, hidden)
    n_train = len(dataset.y_train)
    batch_size = batch_size or int(np.clip(n_train // 8, 16, 200))
    steps_per_epoch = math.ceil(n_train / batch_size)
    if epochs is None:
        budget = 1000 if start is not None else 3000
        epochs = int(np.clip(math.ceil(budget / steps_per_epoch), 20 if start is not None else 50, 400))
    restarts = restarts if restarts is not None else (1 if start is not None else 4)
    distribution: Distribution = ContractPopulation(chip) if population else MeasuredDistribution(model_params)
    varied = variation_aware and not naive
    gate_s = gate_ms * 1e-3

    threads = torch.get_num_threads()
    torch.set_num_threads(TORCH_THREADS)
    try:
        fit = _Fit(distribution, network, dataset, loss=loss, batch_size=batch_size, learning_rate=learning_rate,
                   varied=varied, gate_s=gate_s, defects=defects, seed=seed)
        candidates = []
        total = epochs * restarts
        for run in range(restarts):
            report_epoch = None if progress is None else (
                lambda e, _t, l, a, run=run: progress(run * epochs + e, total, l, a))
            candidates.append(fit.run(seed=seed + 1000 * run, epochs=epochs, rounding=roundings[run % len(roundings)],
                                      start=start, progress=report_epoch))
    finally:
        torch.set_num_threads(threads)
    best = min(candidates, key=lambda c: c.score)
    codes = best.codes

    encoding, full_scale = choose_encoding(model_params, network, dataset, codes)
    weights = WeightSet(
        die_serial=chip.serial,
        layer_sizes=tuple(chip.layer_sizes),
        codes=codes,
        encoding=encoding,
        dataset=dataset.name,
        software_accuracy=float("nan"),
        naive=naive,
        metadata={"trainer": "labctl.train", "loss": loss, "seed": str(seed),
                  "model": "population" if population else ("nominal" if naive else "measured"),
                  "layer_sizes_used": ",".join(str(n) for n in network.layer_sizes_used),
                  "rounding": best.rounding, "fine_tuned": str(start is not None)},
    )
    train_codes = encoding.encode(dataset.X_train)
    currents = soma_currents_a(model_params, codes, train_codes)
    test_rates = predict_rates(model_params, weights, encoding.encode(dataset.X_test))
    weights.software_accuracy = accuracy(encoding.classify(test_rates), dataset.y_test)
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
        variation_aware=varied,
        seconds=time.perf_counter() - started,
        restarts=restarts,
        rounding=best.rounding,
        fine_tuned=start is not None,
        ideal_accuracy=accuracy(encoding.classify(ideal_rates), dataset.y_test),
        train_accuracy=accuracy(encoding.classify(train_rates), dataset.y_train),
        software_accuracy=weights.software_accuracy,
        input_full_scale_code=full_scale,
        max_soma_input_a=[float(c.max()) for c in currents],
        median_winner_rate_hz=float(np.median(test_rates[:, encoding.class_outputs].max(axis=1))),
        expected_train_errors=best.logs["expected_errors"],
        worst_train_errors=best.logs["worst_errors"],
        losses=best.logs["losses"],
        train_accuracies=best.logs["train_accuracies"],
        best_epoch=best.logs["best_epoch"],
    )
    return weights, report


def finetune(
    params: DieParameters,
    dataset: Dataset,
    start: "Sequence[np.ndarray] | WeightSet | object",
    *,
    epochs: int | None = None,
    learning_rate: float = 0.02,
    seed: int = 0,
    defects: LatchDefects | None = None,
    progress: Progress | None = None,
    **options,
) -> tuple[WeightSet, TrainReport]:
    """Adapt pre-trained weights to one measured die in seconds (seed 004, "Discussion").

    ``start`` is a :class:`labctl.train.population.PretrainedNetwork`, a
    :class:`WeightSet` or a list of code-unit arrays (full die geometry). The
    network's layer sizes come from the start; other options go to
    :func:`train_weights`.
    """
    latent, hidden = _start_arrays(start, params)
    return train_weights(params, dataset, hidden=hidden, seed=seed, epochs=epochs, learning_rate=learning_rate,
                         start=latent, defects=defects, progress=progress, **options)


def _start_arrays(start, params: DieParameters) -> tuple[list[np.ndarray], tuple[int, ...] | None]:
    sizes_used = None
    if isinstance(start, WeightSet):
        latent = [c.astype(np.float64) for c in start.codes]
        sizes_used = start.metadata.get("layer_sizes_used")
    elif hasattr(start, "latent"):
        latent, sizes_used = list(start.latent), ",".join(str(n) for n in start.layer_sizes_used)
    else:
        latent = [np.asarray(a, dtype=np.float64) for a in start]
    shapes = [params.chip.matrix_shape(m) for m in range(params.chip.n_matrices)]
    if [a.shape for a in latent] != shapes:
        raise ConfigError(f"start weights have shapes {[a.shape for a in latent]}, die {params.chip.serial} needs {shapes}")
    hidden = tuple(int(n) for n in sizes_used.split(",")[1:-1]) if sizes_used else None
    return latent, hidden


class _Fit:
    """One training problem (die distribution, network, data, loss); :meth:`run` is one restart."""

    def __init__(self, distribution: Distribution, network: NetworkMap, dataset: Dataset, *, loss: str,
                 batch_size: int, learning_rate: float, varied: bool, gate_s: float,
                 defects: LatchDefects | None, seed: int) -> None:
        self.distribution = distribution
        self.chip = distribution.chip
        self.network = network
        self.dataset = dataset
        self.loss = loss
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.varied = varied
        self.gate_s = gate_s
        self.defects = defects
        self.dtype = torch.float32
        self.masks = network.masks(self.chip)
        self.outputs = torch.as_tensor(network.class_outputs)
        self.y_train = torch.as_tensor(dataset.y_train)
        self.mean = distribution.mean()
        n_train = len(dataset.y_train)
        self.draws_per_step = int(np.clip(2000 // batch_size, 1, 16)) if varied else 1
        score_dies = int(np.clip(SCORE_SAMPLES // n_train, 4, 32)) if varied else 1
        # the same sampled dies score every epoch of every restart (common random numbers)
        self.score_draws = (distribution.sample(score_dies, torch.Generator().manual_seed(seed + 7919))
                            if varied else self.mean)
        self.rate_norm = float(self.mean.rate_gain[0, self.outputs].mean())

    def run(self, *, seed: int, epochs: int, rounding: str, start: Sequence[np.ndarray] | None,
            progress: Progress | None) -> _Candidate:
        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        weights = QuantisedWeights(self.masks, self.chip.max_magnitude, [0.4 * self.chip.max_magnitude] * len(self.masks),
                                   self.dtype, rounding=rounding, defects=self.defects, generator=generator)
        if start is not None:
            weights.set_latent(start)
        else:
            _start_bias_positive(weights, self.network)
        full_scale = self._full_scale(weights, float(self.chip.max_dac_code))
        dac = self._dac(full_scale)
        log_gain = torch.nn.Parameter(torch.zeros((), dtype=self.dtype))
        if self.loss != "margin":
            with torch.no_grad():
                typical = self._rates(self.mean, dac, weights.codes())[0].max(dim=1).values.mean() / self.rate_norm
                log_gain.fill_(-float(torch.log(typical.clamp(min=1e-12))))
        optimiser = torch.optim.Adam([*weights.parameters(), log_gain], lr=self.learning_rate)
        total_steps = epochs * math.ceil(len(self.y_train) / self.batch_size)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=total_steps,
                                                              eta_min=self.learning_rate * 0.05)
        logs: dict = {"losses": [], "train_accuracies": [], "best_epoch": 0}
        best: tuple[float, list[np.ndarray], tuple[float, float]] | None = None
        for epoch in range(epochs):
            weights.train()
            epoch_loss, batches = 0.0, 0
            for batch in torch.randperm(len(self.y_train), generator=generator).split(self.batch_size):
                draws = self.distribution.sample(self.draws_per_step, generator) if self.varied else self.mean
                total = self._loss(draws, dac[batch], self.y_train[batch], weights.codes(), log_gain)
                total = total + L1_NEGATIVE * weights.negative_l1()
                optimiser.zero_grad()
                total.backward()
                optimiser.step()
                schedule.step()
                weights.clip_()
                epoch_loss, batches = epoch_loss + float(total), batches + 1
            weights.eval()
            full_scale = self._full_scale(weights, full_scale)
            dac = self._dac(full_scale)
            expected, worst, nominal_accuracy = self._score(weights, dac)
            logs["losses"].append(epoch_loss / batches)
            logs["train_accuracies"].append(nominal_accuracy)
            score = 0.5 * (expected + worst)
            if best is None or score < best[0]:
                best = (score, weights.integer_codes(), (expected, worst))
                logs["best_epoch"] = epoch
            if progress is not None:
                progress(epoch + 1, epochs, epoch_loss / batches, nominal_accuracy)
        assert best is not None
        logs["expected_errors"], logs["worst_errors"] = best[2]
        return _Candidate(best[1], best[0], rounding, logs)

    # -- pieces ------------------------------------------------------------------

    def _dac(self, full_scale: float) -> torch.Tensor:
        encoding = _encoding(self.chip.n_inputs, self.network, self.dataset, full_scale, self.chip.max_dac_code)
        return torch.as_tensor(encoding.encode(self.dataset.X_train).astype(np.float64), dtype=self.dtype)

    def _currents(self, draws: DieDraws, dac: torch.Tensor, codes: list[torch.Tensor],
                  gradient_leak: float = 0.0) -> list[torch.Tensor]:
        return soma_inputs(draws, input_currents_a(draws, dac, self.chip.dac_lsb_a), codes, gradient_leak)

    def _rates(self, draws: DieDraws, dac: torch.Tensor, codes: list[torch.Tensor]) -> torch.Tensor:
        return output_rates_hz(draws, self._currents(draws, dac, codes)[-1])[..., self.outputs]

    @torch.no_grad()
    def _full_scale(self, weights: QuantisedWeights, full_scale: float) -> float:
        """Input full scale (DAC code) that puts the largest soma input of the training split at 200 nA."""
        codes = weights.codes(deterministic=True)
        for _ in range(8):
            peak = max(float(c.max()) for c in self._currents(self.mean, self._dac(full_scale), codes))
            wanted = min(full_scale * 0.999 * TARGET_MAX_SOMA_INPUT_A / max(peak, 1e-15), self.chip.max_dac_code)
            if abs(wanted / full_scale - 1.0) < 0.01:
                return wanted
            full_scale = max(wanted, 1.0)
        return full_scale

    def _loss(self, draws: DieDraws, dac: torch.Tensor, labels: torch.Tensor, codes: list[torch.Tensor],
              log_gain: torch.Tensor) -> torch.Tensor:
        currents = self._currents(draws, dac, codes, GRADIENT_LEAK)
        last = currents[-1][..., self.outputs]
        gain = draws.rate_gain[:, None, self.outputs]
        if self.loss != "margin":
            logits = torch.exp(log_gain) * gain * torch.relu(last) / self.rate_norm
            return objectives.scale_free_loss(self.loss, logits, labels)
        # the encoding keeps the largest soma input at 200 nA: a network that raises its peak current
        # lowers every output rate in proportion, which this factor (value 1) lets the gradient see
        peak = torch.stack([c.amax(dim=(1, 2)) for c in currents]).amax(dim=0)
        at_limit = (peak.detach() > 0.5 * TARGET_MAX_SOMA_INPUT_A).to(peak.dtype)
        rescale = 1.0 + at_limit * (peak.detach() / peak - 1.0)
        signal = gain * rectify(last, GRADIENT_LEAK)
        rates = signal * rescale[:, None, None] + draws.dark_hz[:, None, self.outputs]
        return objectives.margin_loss(rates, labels, self.gate_s, READING_NOISE_FRAC)

    @torch.no_grad()
    def _score(self, weights: QuantisedWeights, dac: torch.Tensor) -> tuple[float, float, float]:
        """Expected training errors with count noise (mean and worst over the scoring dies), mean-model accuracy."""
        codes = weights.codes(deterministic=True)
        rates = self._rates(self.score_draws, dac, codes)
        expected = objectives.error_probability(rates, self.y_train, self.gate_s, READING_NOISE_FRAC).sum(dim=1)
        nominal = self._rates(self.mean, dac, codes)[0]
        accuracy_mean = float((nominal.argmax(dim=1) == self.y_train).double().mean())
        return float(expected.mean()), float(expected.max()), accuracy_mean


def _start_bias_positive(weights: QuantisedWeights, network: NetworkMap) -> None:
    """Start the bias weights positive so that no hidden neuron begins switched off for every input."""
    if network.bias_channel is None:
        return
    with torch.no_grad():
        row = weights.latent[0][network.bias_channel]
        row.copy_(row.abs())


def relative_inputs(network: NetworkMap, n_channels: int, unit_features: np.ndarray) -> np.ndarray:
    """Layer-0 drive in relative units: features on their channels, 1 on the bias channel, 0 elsewhere."""
    x = np.zeros((unit_features.shape[0], n_channels))
    x[:, network.input_channels] = unit_features
    if network.bias_channel is not None:
        x[:, network.bias_channel] = 1.0
    return x


def choose_encoding(
    params: DieParameters, network: NetworkMap, dataset: Dataset, codes: list[np.ndarray]
) -> tuple[InputEncoding, float]:
    """The largest input scale with every soma input <= 200 nA on the training split and codes <= max.

    The network is homogeneous but for the offsets and leakage, so the first
    step lands almost on the answer; DAC rounding and the offsets are not,
    hence the check on real codes.
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


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(predicted) == np.asarray(labels)))
