"""Program weights, read back what the die holds and computes, retrain around it and program again.

A latch bit can be stuck (contract section 1); programming finds out by
reading back (:func:`labctl.families.cmna.programming.program_weights`), and what it learns
comes back as a measurement: the stuck bits and the codes the latches really
hold. Training then uses, for every synapse with a known stuck bit, the value
its latch will really hold for whatever is written there
(:class:`labctl.families.cmna.training.quantise.LatchDefects`), so the other weights
compensate; the new weights are programmed and read back again. A bit stuck
at the value written first is invisible until a later write needs the other
value, so the loop repeats until the latches hold exactly the trained values.

Optionally (``in_situ_rounds``) the programmed die then classifies the
training split (RUN_BATCH, a longer gate than evaluation), the mirror gains
of the synapses in use are estimated from its rates
(:mod:`labctl.families.cmna.training.in_situ`), and the weights are fine-tuned on that better
model of the die and programmed again. The test split is never used.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from labctl.families.cmna.bench import Bench
from labctl.families.cmna.die_parameters import DieParameters
from labctl.families.cmna.programming import ProgramReport, program_weights
from labctl.train.datasets import Dataset
from labctl.families.cmna.training.in_situ import MirrorEstimate, estimate_from_chip
from labctl.families.cmna.training.quantise import LatchDefects
from labctl.families.cmna.training.power_aware import power_term_of
from labctl.families.cmna.training.trainer import TrainReport, finetune
from labctl.families.cmna.weights import WeightSet

MAX_ROUNDS = 4
"""Programming rounds (each after a retraining) before giving up on matching the latches."""
IN_SITU_GATE_MS = 100
"""Gate for the training-split rates: 5 x the evaluation gate, so counting noise stays under the mismatch."""


@dataclass
class StuckBitResult:
    """What programming with retraining did; ``weights`` are the last ones programmed."""

    weights: WeightSet
    program: ProgramReport
    """Report of the last programming round."""
    defects: LatchDefects
    """Every stuck bit found, over all rounds."""
    rounds: int
    """Programming rounds (1 when nothing needed retraining)."""
    trainings: list[TrainReport] = field(default_factory=list)
    estimates: list[MirrorEstimate] = field(default_factory=list)
    """Mirror gains measured on the die, one per in-situ round."""

    @property
    def retrained(self) -> bool:
        return bool(self.trainings)

    @property
    def matches(self) -> bool:
        """True when the latches hold exactly the codes the weights were trained with."""
        return _holds(self.program, self.weights)


def program_with_stuck_bit_retraining(
    bench: Bench,
    params: DieParameters,
    dataset: Dataset,
    weights: WeightSet,
    *,
    seed: int = 0,
    epochs: int | None = None,
    max_rounds: int = MAX_ROUNDS,
    in_situ_rounds: int = 0,
    gate_ms: int = IN_SITU_GATE_MS,
    progress: Callable[[str, int, int], None] | None = None,
) -> StuckBitResult:
    """Program ``weights`` on a powered bench; retrain around stuck bits until the die holds what was trained.

    ``params`` is the die's characterisation and ``dataset`` the data the
    weights were trained on (same split). Retraining fine-tunes from the
    weights, with their own decisions as targets and the power goal they were
    trained with; the retrained weights carry a re-chosen encoding (the same
    one for power-aware weights), the original provenance and calibration hash, and
    ``stuck_bits`` in their provenance. ``in_situ_rounds`` adds rounds of
    measuring the training split on the die and retraining on what it showed.
    """
    result = StuckBitResult(weights, program_weights(bench.bridge, bench.chip, weights, progress=progress),
                            LatchDefects(), 1)

    def retrain(in_situ: MirrorEstimate | None = None) -> None:
        epoch_progress = None if progress is None else (lambda e, total, *_: progress("retraining", e, total))
        retrained, training = finetune(params, dataset, result.weights, seed=seed, epochs=epochs,
                                       defects=result.defects, in_situ=in_situ, progress=epoch_progress,
                                       power=power_term_of(params, result.weights, dataset))
        retrained.calibration_sha256 = result.weights.calibration_sha256
        retrained.naive = result.weights.naive
        retrained.provenance = replace(retrained.provenance.over(result.weights.provenance),
                                       stuck_bits=len(result.defects), in_situ_rounds=len(result.estimates))
        result.weights = retrained
        result.trainings.append(training)
        result.program = program_weights(bench.bridge, bench.chip, retrained, progress=progress)
        result.rounds += 1

    def settle() -> None:
        for _ in range(max_rounds - 1):
            if _holds(result.program, result.weights):
                break
            result.defects.add(result.program.stuck)
            retrain()
        result.defects.add(result.program.stuck)

    settle()
    for _ in range(in_situ_rounds):
        rates = bench.bridge.run_batch(result.weights.encoding.encode(dataset.X_train), gate_ms).rates_hz
        result.estimates.append(estimate_from_chip(params, result.weights, result.program.held_codes,
                                                   dataset.X_train, rates, gate_ms * 1e-3))
        retrain(result.estimates[-1])
        settle()
    return result


def _holds(report: ProgramReport, weights: WeightSet) -> bool:
    """The latches compute with the trained values (a stuck sign bit on magnitude 0 is harmless)."""
    return all(np.array_equal(h, c) for h, c in zip(report.held_codes, weights.codes))
