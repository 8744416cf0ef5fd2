"""Characterisation recovers the die it measured, and measures it gently (issue 4, contract section 1).

Three simulated CMNA-777 dies are characterised in-process through the real
drivers. The fits are compared with the simulator's hidden truth as
measurements through the synapses can see it (``DieTruth.seen_a_plus``: the
column-mean unit synapse gain and the soma gain are one factor): within 2 %
for every neuron after per-layer normalisation, with standard errors that
describe the real errors (z-scores of rms 0.4 to 2). The errors against the
bare soma gain are printed for the record.

While it runs, every soma input the die computes is watched: none may reach
the onset of compression (about 300 nA), and no pad may leave its ratings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

import labctl.sim.die as sim_die
from labctl import ratings
from labctl.bench import Bench
from labctl.calibration.characterise import characterise
from labctl.drivers.bridge_protocol import StatusFlag
from labctl.hdf5_store import read_raw
from labctl.sim.bench import SimulatedBench
from labctl.sim.truth import DieTruth

SEEDS = (3, 4, 5)


@dataclass
class Run:
    truth: DieTruth
    result: object
    raw: dict[str, np.ndarray]
    soma_input_peak_a: float
    """Largest soma input (A) of any layer, over everything the die computed during the run."""
    onset_margin: float
    """Largest soma input relative to that soma's own compression onset."""
    damaged: bool
    flags: int


class SomaWatch:
    """Stands in for the die's soma transfer to see every soma input the die computes, in any layer."""

    def __init__(self) -> None:
        self.peak_a = 0.0
        self.margin = 0.0
        self._transfer = sim_die.soma_transfer

    def __call__(self, r_a: np.ndarray, onset_a: np.ndarray) -> np.ndarray:
        self.peak_a = max(self.peak_a, float(np.max(r_a)))
        self.margin = max(self.margin, float(np.max(r_a / onset_a)))
        return self._transfer(r_a, onset_a)


@pytest.fixture(scope="module", params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
def run(request, tmp_path_factory) -> Run:
    out = tmp_path_factory.mktemp(f"die{request.param}") / "die.h5"
    with SimulatedBench("CMNA-777", seed=request.param) as sim, pytest.MonkeyPatch.context() as mp:
        watch = SomaWatch()
        mp.setattr(sim_die, "soma_transfer", watch)
        bench_file = sim.write_bench_file(out.parent / "bench.toml")
        with Bench.from_file(bench_file) as bench:
            result = characterise(bench, out)
        return Run(sim.die.truth, result, read_raw(out), watch.peak_a, watch.margin, sim.die.damaged,
                   sim.die.status()[0])


def test_a_plus_within_two_percent_of_what_the_synapses_let_be_seen(run: Run) -> None:
    worst = 0.0
    for l, layer in enumerate(run.result.params.layers):
        seen = run.truth.seen_a_plus(l)
        seen = seen / seen.mean()
        bare = run.truth.a_plus[l] / run.truth.a_plus[l].mean()
        assert layer.a_plus.mean() == pytest.approx(1.0, abs=1e-9)
        rel = layer.a_plus / seen - 1
        print(f"seed {run.truth.seed} layer {l}: |a+ error| vs seen max {np.max(np.abs(rel)):.2%} "
              f"rms {np.sqrt(np.mean(rel ** 2)):.2%}; vs bare soma gain max "
              f"{np.max(np.abs(layer.a_plus / bare - 1)):.2%} (spread of a+ itself {np.std(seen):.1%})")
        worst = max(worst, float(np.max(np.abs(rel))))
    assert worst < 0.02


def test_a_plus_standard_errors_are_calibrated(run: Run) -> None:
    z = []
    for l, layer in enumerate(run.result.params.layers):
        seen = run.truth.seen_a_plus(l)
        assert np.all(layer.a_plus_std > 0)
        z.append((layer.a_plus - seen / seen.mean()) / layer.a_plus_std)
        print(f"seed {run.truth.seed} layer {l}: z rms {np.sqrt(np.mean(z[-1] ** 2)):.2f}, "
              f"median std {np.median(layer.a_plus_std):.2%}")
    rms = float(np.sqrt(np.mean(np.concatenate(z) ** 2)))
    assert 0.4 < rms < 2.0, rms


def test_every_soma_stayed_in_its_linear_range(run: Run) -> None:
    print(f"seed {run.truth.seed}: largest soma input {run.soma_input_peak_a * 1e9:.0f} nA, "
          f"{run.onset_margin:.0%} of its compression onset")
    assert run.soma_input_peak_a > 150e-9  # nor timid: the fits need signal
    assert run.onset_margin < 1.0
    assert run.soma_input_peak_a < ratings.LINEAR_RANGE_A


def test_the_pads_never_left_their_ratings(run: Run) -> None:
    assert not run.damaged
    assert not run.flags & StatusFlag.OVERSTRESS
    mon = run.raw["mon"]
    assert len(mon) > 1000
    assert mon["current_a"].max() < ratings.MON_MAX_A
    assert 0.0 <= mon["ext_in_a"].min() and mon["ext_in_a"].max() <= ratings.EXT_IN_MAX_A
