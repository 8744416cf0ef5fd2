"""Tailored training: weights for one characterised die (seed 004 sections 1.1 and 3.4).

The measured gains of the die go into the forward pass (:mod:`die_model`), so
backpropagation finds 3-bit weights that suit this die's heterogeneous
neurons. What characterisation cannot pin down (the mirror gain of every
synapse bit, the fits' own errors, hidden somas' leakage) is sampled every
step (:mod:`variation`), and the loss asks for a margin in units of the C2F
count noise at the evaluation gate (:mod:`objectives`), so that the weights
hold on the die itself and not only in the model. ``naive=True`` trains the
same way on nominal gains (with the contract's typical synapse spread): the
baseline a lab would get without characterisation, and, evaluated on a
nominal die, the ideal software network.

Training sees what the die will see: the DAC codes of the training split
under the encoding in force (re-chosen every epoch so that every soma stays
below 200 nA: the linear range ends near 300 nA, contract section 1), the
measured bias offsets, the leakage, the dark rates. Among the epochs of every
restart, and among restarts (different seeds, alternating the two rounding
schemes of :mod:`quantise`), the codes with the fewest expected training
errors over a fixed set of sampled dies, with count noise, are kept; the test
split is never looked at.

Fine-tuning (:func:`finetune`) starts from a network pre-trained on the
contract's population of dies (:mod:`population`) or from earlier codes, and
needs far fewer steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from labctl.families.cmna.die_parameters import DieParameters
from labctl.families.cmna.ratings import DEFAULT_GATE_MS
from labctl.errors import ConfigError
from labctl.families.cmna.training import objectives
from labctl.train.datasets import Dataset
from labctl.families.cmna.training.die_model import (
    input_currents_a,
    output_rates_hz,
    predict_rates,
    rectify,
    soma_currents_a,
    soma_inputs,
)
from labctl.families.cmna.training.in_situ import MirrorEstimate
from labctl.families.cmna.training.network_map import NetworkMap, map_network
from labctl.families.cmna.training.networks import (
    PretrainedNetwork,
    Progress,
    Teacher,
    TrainReport,
    accuracy,
    choose_encoding,
    input_encoding,
    soma_input_limit_a,
)
from labctl.families.cmna.training.power_aware import PowerTerm, predicted_power
from labctl.families.cmna.training.quantise import ROUNDINGS, LatchDefects, QuantisedWeights
from labctl.families.cmna.training.variation import READING_NOISE_FRAC, ContractPopulation, DieDraws, MeasuredDistribution
from labctl.families.cmna.weights import InputEncoding, TrainingProvenance, WeightSet

LOSSES = objectives.LOSSES
TORCH_THREADS = 1
"""The tensors are small: a second thread mostly spins, and on a shared machine it slows everyone down."""
L1_NEGATIVE = 1e-6
"""L1 penalty on negative weights (seed 004 section 3.4)."""
GRADIENT_LEAK = 0.05
"""Rectifier gradient below zero during training: revives neurons that are off for every sample."""
DEFAULT_RESTARTS = 2
"""Restarts from scratch: one per rounding scheme, the more robust is kept."""
SCRATCH_STEPS = 2000
FINETUNE_STEPS = 600
"""Default optimiser steps per restart from scratch and when fine-tuning."""
SMALL_NETWORK_SYNAPSES = 10_000
"""Up to this size, fine-tuning tries two pre-trained starts (seconds each); above, only the best."""
DRAW_PATTERNS = 2000
DRAW_SYNAPSES = 100_000
"""Sampled dies per step: about 2000 patterns per step, at most 100k synapses' worth of mirror gains (speed)."""
AUGMENT_COPIES = 4
JITTER = 0.05
"""Distillation on small data sets: jittered copies of every training sample (5 % of the feature range)."""
SCORE_SAMPLES = 20_000
"""Patterns x sampled dies for the robustness score of one epoch (at least 4 dies, at most 32)."""

Distribution = MeasuredDistribution | ContractPopulation


@dataclass
class _Candidate:
    codes: list[np.ndarray]
    store: list[np.ndarray]
    score: float
    """Mean of the expected training errors over the scoring dies and of the worst die's."""
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
    batch_size: int | None = None, learning_rate: float = 0.05, steps: int | None = None,
    variation_aware: bool = True,
    restarts: int | None = None,
    rounding: str | Sequence[str] = ROUNDINGS,
    starts: Sequence[Sequence[np.ndarray]] | None = None,
    defects: LatchDefects | None = None,
    gate_ms: int = DEFAULT_GATE_MS,
    population: bool = False,
    margin_sigmas: float = objectives.DEFAULT_MARGIN_SIGMAS,
    synapse_spread: float | None = None,
    teacher: Teacher | None = None, augment: int | None = None,
    in_situ: MirrorEstimate | None = None,
    power: PowerTerm | None = None,
) -> tuple[WeightSet, TrainReport]:
    """Train 3-bit weights for the die described by ``params`` (or nominal gains if ``naive``).

    ``restarts`` runs (default 2 from scratch, one per start given) cycle
    through the ``rounding`` schemes and ``starts`` (initial weights in code
    units, full die geometry); the most robust codes are kept. ``defects`` are
    known stuck latch bits (training uses what those latches really hold).
    ``population`` trains for the contract's population of dies instead of
    ``params`` (only its geometry is used; see :mod:`population`); the margin
    is measured against the count noise of the on-chip gate ``gate_ms``;
    ``synapse_spread`` overrides the measured per-bit mirror spread.
    ``teacher`` replaces the labels by a reference network's decisions
    (distillation: the die then computes what the reference computes), on
    the training split and ``augment`` jittered copies of it (default 4 for
    small data sets, none from 1000 samples on). ``in_situ`` holds the
    mirror gains measured on the programmed die (:mod:`in_situ`); ``power``
    makes it power-aware (:mod:`power_aware`); ``steps`` overrides the budget
    of optimiser steps. Returns the weights (full die geometry) with their
    input encoding, and a report (seeded).
    """
    roundings = _checked_roundings(loss, epochs, rounding)
    started = time.perf_counter()
    chip = params.chip
    model_params = DieParameters.nominal(chip) if naive else params
    network = map_network(chip, dataset.n_features, dataset.n_classes, hidden)
    features, labels = _targets(dataset, teacher, augment, seed)
    fine = bool(starts)
    batch_size, epochs, restarts = _budget(len(labels), batch_size, epochs, restarts, starts, steps)
    distribution = _die_distribution(model_params, population, synapse_spread, in_situ)
    with _torch_threads(TORCH_THREADS):
        fit = _Fit(distribution, network, dataset, features, labels, loss=loss, batch_size=batch_size,
                   learning_rate=learning_rate, varied=variation_aware, gate_s=gate_ms * 1e-3, defects=defects,
                   seed=seed, margin_sigmas=margin_sigmas, max_soma_input_a=soma_input_limit_a(model_params),
                   power=power)
        candidates = _run_restarts(fit, seed=seed, epochs=epochs, restarts=restarts, roundings=roundings,
                                   starts=starts if fine else None, progress=progress)
    best = candidates[0]
    encoding, full_scale = _encoding(model_params, network, dataset, best.codes, power)
    model = "population" if population else ("nominal" if naive else "measured")
    weights = WeightSet(chip.serial, tuple(chip.layer_sizes), best.codes, encoding, dataset.name, float("nan"),
                        naive=naive, provenance=_provenance(dataset, network, loss=loss, seed=seed, model=model,
                                                            rounding=best.rounding, fine_tuned=fine,
                                                            distilled=teacher is not None))
    report = TrainReport(
        dataset=dataset.name, die_serial=chip.serial, naive=naive, seed=seed, loss=loss,
        layer_sizes_used=network.layer_sizes_used, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, variation_aware=variation_aware, restarts=restarts,
        rounding=best.rounding, fine_tuned=fine, input_full_scale_code=full_scale,
        expected_train_errors=best.logs["expected_errors"], worst_train_errors=best.logs["worst_errors"],
        losses=best.logs["losses"], train_accuracies=best.logs["train_accuracies"],
        best_epoch=best.logs["best_epoch"], stores=[c.store for c in candidates],
        **_judge_in_model(weights, model_params, dataset), seconds=time.perf_counter() - started,
    )
    if model == "measured":
        _record_predicted_power(weights, model_params, dataset)
    return weights, report


def _record_predicted_power(weights: WeightSet, params: DieParameters, dataset: Dataset) -> None:
    """What the weights will draw on this die (mean over the training split), in the file for the lab to see."""
    predicted = predicted_power(params, weights, dataset.X_train)
    weights.predicted_supply_power_w, weights.predicted_network_power_w = predicted.supply_w, predicted.network_w


def _encoding(params: DieParameters, network: NetworkMap, dataset: Dataset, codes: list[np.ndarray],
              power: PowerTerm | None) -> tuple[InputEncoding, float]:
    """The input encoding of trained codes and its full-scale DAC code: the largest that keeps the somas
    linear, or under power-aware training the power-blind weights' (the savings must come from the weights)."""
    if power is None:
        return choose_encoding(params, network, dataset, codes)
    return power.encoding, float(power.encoding.encode(dataset.X_train).max())


def _die_distribution(model_params: DieParameters, population: bool, synapse_spread: float | None,
                      in_situ: MirrorEstimate | None) -> Distribution:
    """The dies every step samples: the contract's whole population (pre-training, for no die in
    particular), or dies the characterisation of this one cannot tell apart from it (its fit errors, the
    synapse mirrors no per-neuron measurement sees, narrowed by in-situ measurements when there are)."""
    if population:
        return ContractPopulation(model_params.chip)
    return MeasuredDistribution(model_params, synapse_spread=synapse_spread,
                                bit_priors=in_situ.bit_priors() if in_situ else None)


def _provenance(dataset: Dataset, network: NetworkMap, *, loss: str, seed: int, model: str, rounding: str,
                fine_tuned: bool, distilled: bool) -> TrainingProvenance:
    """How the weights were made, kept with them in the weights file: evaluation reloads the same data
    split from it (source, label column), and fine-tuning from these weights (stuck-bit retraining,
    in-situ rounds) takes the network's layer sizes and the die it computes on (model) from it."""
    return TrainingProvenance(trainer="labctl.train", loss=loss, seed=seed, model=model,
                              layer_sizes_used=tuple(network.layer_sizes_used), rounding=rounding,
                              fine_tuned=fine_tuned, distilled=distilled, dataset_source=dataset.source,
                              label_column=dataset.label_column or None)


def _checked_roundings(loss: str, epochs: int | None, rounding: str | Sequence[str]) -> tuple[str, ...]:
    """Refuse a bad option before any work (one line a lab engineer can act on); the rounding schemes
    the restarts cycle through."""
    if loss not in LOSSES:
        raise ConfigError(f"unknown loss {loss!r}: use one of {', '.join(LOSSES)}")
    if epochs is not None and epochs < 1:
        raise ConfigError(f"training needs at least 1 epoch, got {epochs}")
    roundings = (rounding,) if isinstance(rounding, str) else tuple(rounding)
    if not roundings or any(r not in ROUNDINGS for r in roundings):
        raise ConfigError(f"rounding must be among {', '.join(ROUNDINGS)}, got {rounding!r}")
    return roundings


def _targets(dataset: Dataset, teacher: Teacher | None, augment: int | None,
             seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features and the classes training asks for: the labels, or with a teacher its decisions on the
    training split and jittered copies of it (distillation: the die then computes what the teacher
    computes, also between the training samples; copies only on small data sets, where they matter)."""
    if teacher is None:
        return dataset.X_train, dataset.y_train
    copies = augment if augment is not None else (AUGMENT_COPIES if len(dataset.y_train) < 1000 else 0)
    features = _jittered(dataset, copies, seed)
    return features, teacher.decisions(features)


def _budget(n_train: int, batch_size: int | None, epochs: int | None, restarts: int | None,
            starts: Sequence[Sequence[np.ndarray]] | None, steps: int | None = None) -> tuple[int, int, int]:
    """Batch size, epochs and restarts not given. The defaults are a budget of optimiser steps
    (:data:`SCRATCH_STEPS`, :data:`FINETUNE_STEPS`), not of epochs, so that a data set of any size gets
    about the same training; one restart per start when fine-tuning."""
    fine = bool(starts)
    batch_size = batch_size or int(np.clip(n_train // 8, 16, 200))
    steps_per_epoch = math.ceil(n_train / batch_size)
    if epochs is None:
        budget = steps or (FINETUNE_STEPS if fine else SCRATCH_STEPS)
        epochs = int(np.clip(math.ceil(budget / steps_per_epoch), 10 if fine else 50, 400))
    restarts = restarts if restarts is not None else (len(starts) if fine else DEFAULT_RESTARTS)
    if restarts < 1:
        raise ConfigError(f"training needs at least 1 restart, got {restarts}")
    return batch_size, epochs, restarts


def _run_restarts(fit: _Fit, *, seed: int, epochs: int, restarts: int, roundings: tuple[str, ...],
                  starts: Sequence[Sequence[np.ndarray]] | None, progress: Progress | None) -> list[_Candidate]:
    """Every restart of ``fit`` (own seed, the rounding schemes and starts in turn), most robust first.
    Progress counts the epochs of all restarts as one run."""
    candidates = []
    total = epochs * restarts
    for run in range(restarts):
        report_epoch = None if progress is None else (
            lambda e, _t, l, a, run=run: progress(run * epochs + e, total, l, a))
        candidates.append(fit.run(seed=seed + 1000 * run, epochs=epochs, rounding=roundings[run % len(roundings)],
                                  start=starts[run % len(starts)] if starts else None, progress=report_epoch))
    candidates.sort(key=lambda c: c.score)
    return candidates


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Torch on ``n`` threads meanwhile (see :data:`TORCH_THREADS`; how a large reduction is split, and
    so its rounding, can depend on the thread count, so all of training runs on the same count), and the
    caller's thread count back whatever happens."""
    threads = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _judge_in_model(weights: WeightSet, model_params: DieParameters, dataset: Dataset) -> dict:
    """What the trained weights do in the model they were trained on (software accuracy on the test
    split, also set on ``weights``; training accuracy; soma currents; the winners' rates) and on an ideal
    die (how much of the accuracy is the network's and how much the die's): :class:`TrainReport` fields."""
    encoding, codes = weights.encoding, weights.codes
    train_codes = encoding.encode(dataset.X_train)
    currents = soma_currents_a(model_params, codes, train_codes)
    test_rates = predict_rates(model_params, weights, encoding.encode(dataset.X_test))
    weights.software_accuracy = accuracy(encoding.classify(test_rates), dataset.y_test)
    train_rates = predict_rates(model_params, weights, train_codes)
    ideal_rates = predict_rates(DieParameters.nominal(model_params.chip), weights, encoding.encode(dataset.X_test))
    return {
        "ideal_accuracy": accuracy(encoding.classify(ideal_rates), dataset.y_test),
        "train_accuracy": accuracy(encoding.classify(train_rates), dataset.y_train),
        "software_accuracy": weights.software_accuracy,
        "max_soma_input_a": [float(c.max()) for c in currents],
        "median_winner_rate_hz": float(np.median(test_rates[:, encoding.class_outputs].max(axis=1))),
    }


FinetuneStart = PretrainedNetwork | WeightSet | Sequence[np.ndarray]
"""What fine-tuning starts from: a pre-training, trained weights, or one list of code-unit arrays."""


def finetune(
    params: DieParameters,
    dataset: Dataset,
    start: FinetuneStart,
    *,
    max_starts: int | None = None,
    learning_rate: float = 0.02,
    distil: bool = True,
    **options,
) -> tuple[WeightSet, TrainReport]:
    """Adapt pre-trained weights to one measured die in seconds (seed 004, "Discussion").

    ``start`` is a :class:`labctl.families.cmna.training.networks.PretrainedNetwork` (the
    best restart of its population network, its reference network, the other
    restarts, each fine-tuned once: up to ``max_starts``, by default two on a
    small network and one on a large one), a :class:`WeightSet` or one list of
    code-unit arrays (full die geometry). The network's layer sizes come from the start. With
    ``distil``, the targets are the start's own decisions (a pre-trained
    network's on a perfect die, a weight set's on the die it was trained for):
    the measured die is then made to compute what the start computes. Other
    options go to :func:`train_weights`.
    """
    stores, hidden = _start_stores(start, params)
    if max_starts is None:
        synapses = sum(int(np.count_nonzero(a)) for a in stores[0])
        max_starts = 2 if synapses <= SMALL_NETWORK_SYNAPSES else 1
    teacher = _teacher_of(start, params, dataset) if distil else None
    return train_weights(params, dataset, hidden=hidden, learning_rate=learning_rate,
                         starts=stores[:max_starts], teacher=teacher, **options)


def _teacher_of(start: FinetuneStart, params: DieParameters, dataset: Dataset) -> Teacher | None:
    """The start as a reference network, on the die whose function it was trained to compute (bare
    arrays carry no such die: no teacher)."""
    nominal = DieParameters.nominal(params.chip)
    if isinstance(start, WeightSet):
        return Teacher(start, params if start.provenance.model == "measured" else nominal)
    if isinstance(start, PretrainedNetwork):
        return Teacher(start.reference(params.chip, dataset), nominal)
    return None


def _start_stores(start: FinetuneStart, params: DieParameters) -> tuple[list[list[np.ndarray]], tuple[int, ...] | None]:
    """Start weights as float stores (code units), and the hidden layer sizes they were trained with."""
    sizes_used: tuple[int, ...] | None = None
    if isinstance(start, WeightSet):
        stores = [[c.astype(np.float64) for c in start.codes]]
        sizes_used = start.provenance.layer_sizes_used
    elif isinstance(start, PretrainedNetwork):  # the best population restart, the reference itself, the other restarts
        stores = [start.stores[0], [c.astype(np.float64) for c in start.reference_codes], *start.stores[1:]]
        sizes_used = tuple(start.layer_sizes_used)
    else:
        stores = [[np.asarray(a, dtype=np.float64) for a in start]]
    shapes = [params.chip.matrix_shape(m) for m in range(params.chip.n_matrices)]
    for store in stores:
        if [a.shape for a in store] != shapes:
            raise ConfigError(
                f"start weights have shapes {[a.shape for a in store]}, die {params.chip.serial} needs {shapes}")
    hidden = tuple(int(n) for n in sizes_used[1:-1]) if sizes_used else None
    return stores, hidden


class _Fit:
    """One training problem (die distribution, network, data, loss); :meth:`run` is one restart."""

    def __init__(self, distribution: Distribution, network: NetworkMap, dataset: Dataset, features: np.ndarray,
                 labels: np.ndarray, *, loss: str,
                 batch_size: int, learning_rate: float, varied: bool, gate_s: float,
                 defects: LatchDefects | None, seed: int, margin_sigmas: float, max_soma_input_a: float,
                 power: PowerTerm | None = None) -> None:
        self.distribution = distribution
        self.power = power
        self.max_soma_input_a = max_soma_input_a
        self.chip = distribution.chip
        self.network = network
        self.dataset = dataset
        self.features = features
        self.loss = loss
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.varied = varied
        self.gate_s = gate_s
        self.defects = defects
        self.margin_sigmas = margin_sigmas
        self.dtype = torch.float32
        self.masks = network.masks(self.chip)
        self.outputs = torch.as_tensor(network.class_outputs)
        self.y_train = torch.as_tensor(labels)
        self.mean = distribution.mean()
        n_train = len(labels)
        synapses = int(sum(mask.sum() for mask in self.masks))
        self.draws_per_step = (int(np.clip(min(DRAW_PATTERNS // batch_size, DRAW_SYNAPSES // synapses), 1, 16))
                               if varied else 1)
        score_dies = int(np.clip(SCORE_SAMPLES // n_train, 4, 32)) if varied else 1
        # the same sampled dies score every epoch of every restart (common random numbers)
        self.score_draws = (distribution.sample(score_dies, torch.Generator().manual_seed(seed + 7919))
                            if varied else self.mean)
        self.rate_norm = float(self.mean.rate_gain[0, self.outputs].mean())

    def run(self, *, seed: int, epochs: int, rounding: str, start: Sequence[np.ndarray] | None,
            progress: Progress | None) -> _Candidate:
        generator = torch.Generator().manual_seed(seed)
        weights = QuantisedWeights(self.masks, self.chip.max_magnitude,
                                   [0.4 * self.chip.max_magnitude] * len(self.masks), self.dtype,
                                   rounding=rounding, defects=self.defects, generator=generator)
        if start is not None:
            weights.set_latent(start)
        else:
            _start_bias_positive(weights, self.network)
        full_scale = self._full_scale(weights, float(self.chip.max_dac_code))
        dac = self._dac(full_scale)
        n_train = len(self.y_train)
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
        best: tuple[float, list[np.ndarray], tuple[float, float], list[np.ndarray]] | None = None
        for epoch in range(epochs):
            weights.train()
            epoch_loss, batches = 0.0, 0
            for batch in torch.randperm(len(self.y_train), generator=generator).split(self.batch_size):
                draws = self.distribution.sample(self.draws_per_step, generator) if self.varied else self.mean
                codes = weights.codes()
                total = self._loss(draws, dac[batch], self.y_train[batch], codes, log_gain)
                if self.power is not None:
                    total = self.power.blend(total, self.power.loss(draws, dac[batch], codes))
                total = total + L1_NEGATIVE * weights.negative_l1()
                optimiser.zero_grad()
                total.backward()
                optimiser.step()
                schedule.step()
                weights.clip_()
                epoch_loss, batches = epoch_loss + float(total.detach()), batches + 1
            weights.eval()
            full_scale = self._full_scale(weights, full_scale)
            dac = self._dac(full_scale)
            expected, worst, nominal_accuracy = self._score(weights, dac)
            logs["losses"].append(epoch_loss / batches)
            logs["train_accuracies"].append(nominal_accuracy)
            score: float | None = 0.5 * (expected + worst)
            if self.power is not None:
                predicted = self.power.predicted_a(self.mean, dac, weights.codes(deterministic=True))
                score = self.power.judge_epoch(score, predicted)
            if score is not None and (best is None or score < best[0]):
                best = (score, weights.integer_codes(), (expected, worst), weights.latent_arrays())
                logs["best_epoch"] = epoch
            if progress is not None:
                progress(epoch + 1, epochs, epoch_loss / batches, nominal_accuracy)
        if best is None:
            assert self.power is not None  # only a power budget can leave every epoch out
            raise self.power.unreachable()
        logs["expected_errors"], logs["worst_errors"] = best[2]
        return _Candidate(best[1], best[3], best[0], rounding, logs)

    # -- pieces ------------------------------------------------------------------

    def _dac(self, full_scale: float) -> torch.Tensor:
        """The training split's DAC codes: under the power term's fixed encoding, or at ``full_scale``."""
        if self.power is not None:
            return torch.as_tensor(self.power.encoding.encode(self.features).astype(np.float64), dtype=self.dtype)
        encoding = input_encoding(self.chip.n_inputs, self.network, self.dataset, full_scale, self.chip.max_dac_code)
        return torch.as_tensor(encoding.encode(self.features).astype(np.float64), dtype=self.dtype)

    def _currents(self, draws: DieDraws, dac: torch.Tensor, codes: list[torch.Tensor],
                  gradient_leak: float = 0.0) -> list[torch.Tensor]:
        return soma_inputs(draws, input_currents_a(draws, dac, self.chip.dac_lsb_a), codes, gradient_leak)

    def _rates(self, draws: DieDraws, dac: torch.Tensor, codes: list[torch.Tensor]) -> torch.Tensor:
        return output_rates_hz(draws, self._currents(draws, dac, codes)[-1])[..., self.outputs]

    @torch.no_grad()
    def _full_scale(self, weights: QuantisedWeights, full_scale: float) -> float:
        """Input full scale (DAC code) that puts the largest soma input of the training split at the limit
        (none under a fixed encoding)."""
        if self.power is not None:
            return full_scale
        codes = weights.codes(deterministic=True)
        for _ in range(8):
            peak = max(float(c.max()) for c in self._currents(self.mean, self._dac(full_scale), codes))
            wanted = min(full_scale * 0.999 * self.max_soma_input_a / max(peak, 1e-15), self.chip.max_dac_code)
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
        # the encoding keeps the largest soma input at the limit: a network that raises its peak current
        # lowers every output rate in proportion, which this factor (value 1) lets the gradient see
        peak = torch.stack([c.amax(dim=(1, 2)) for c in currents]).amax(dim=0)
        at_limit = (peak.detach() > 0.5 * self.max_soma_input_a).to(peak.dtype) * (self.power is None)
        rescale = 1.0 + at_limit * (peak.detach() / peak - 1.0)
        rates = gain * rectify(last, GRADIENT_LEAK) * rescale[:, None, None] + draws.dark_hz[:, None, self.outputs]
        return objectives.margin_loss(rates, labels, self.gate_s, READING_NOISE_FRAC, self.margin_sigmas)

    @torch.no_grad()
    def _score(self, weights: QuantisedWeights, dac: torch.Tensor) -> tuple[float, float, float]:
        """Expected training errors with count noise (mean and worst over the scoring dies), mean-model accuracy."""
        codes = weights.codes(deterministic=True)
        rates = self._rates(self.score_draws, dac, codes)
        expected = objectives.error_probability(rates, self.y_train, self.gate_s, READING_NOISE_FRAC).sum(dim=1)
        nominal = self._rates(self.mean, dac, codes)[0]
        accuracy_mean = float((nominal.argmax(dim=1) == self.y_train).double().mean())
        return float(expected.mean()), float(expected.max()), accuracy_mean


def _jittered(dataset: Dataset, copies: int, seed: int) -> np.ndarray:
    """The training split plus ``copies`` copies jittered by 5 % of each feature's range (raw features)."""
    if copies <= 0:
        return dataset.X_train
    rng = np.random.default_rng(seed)
    unit = dataset.unit(dataset.X_train)
    jitter = np.clip(unit[None] + JITTER * rng.standard_normal((copies, *unit.shape)), 0.0, 1.0)
    raw = dataset.feature_offset + jitter.reshape(-1, unit.shape[1]) / dataset.feature_scale
    return np.vstack([dataset.X_train, raw])


def _start_bias_positive(weights: QuantisedWeights, network: NetworkMap) -> None:
    """Start the bias weights positive so that no hidden neuron begins switched off for every input."""
    if network.bias_channel is None:
        return
    with torch.no_grad():
        row = weights.latent[0][network.bias_channel]
        row.copy_(row.abs())
