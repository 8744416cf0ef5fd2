"""Characterisation recovers the die it measured, and measures it gently (issue 4, contract section 1).

Three simulated CMNA-777 dies are characterised in-process through the real
drivers. The fits are compared with the simulator's hidden truth as
measurements through the synapses can see it (``DieTruth.seen_a_plus``: the
column-mean unit synapse gain and the soma gain are one factor): within 2 %
for every neuron after per-layer normalisation, with standard errors that
describe the real errors (z-scores of rms 0.4 to 2). The errors against the
bare soma gain are printed for the record.

While it runs, every soma input the die computes is watched: none may reach
its onset of compression (about 300 nA), except the probed layer's in a
linear-range run, which drives it beyond on purpose (layer 0 through EXT_IN,
inside its rating; deeper layers through synapses, their feeders staying
linear) to find it; and no pad may leave its ratings. The onsets found, in
every layer, agree with the truth within their stated errors.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

import labctl.families.cmna.sim.die as sim_die
from labctl.families.cmna import ratings
from labctl.families.cmna.bench import Bench
from labctl.families.cmna.characterisation.characterise import characterise
from labctl.families.cmna.characterisation.probing import Prober
from labctl.families.cmna.programming import StuckBit
from labctl.families.cmna.protocol import StatusFlag
from labctl.families.cmna.storage import RawTables, read_raw
from labctl.families.cmna.sim.bench import SimulatedBench
from labctl.families.cmna.sim.truth import DieTruth
from labctl.families.cmna.sim.twin import stuck_bits_seen

SEEDS = (3, 4, 5)
LARGE_SEED = 2


@dataclass
class Run:
    path: Path
    truth: DieTruth
    result: object
    raw: RawTables
    soma_input_peak_a: float
    """Largest soma input (A) of any layer, over everything the die computed during the run
    except the probed layer's in a linear-range run."""
    onset_margin: float
    """Largest soma input relative to that soma's own compression onset (same)."""
    excursion_a: list[float]
    """Per layer, the largest soma input while a linear-range run probed it."""
    damaged: bool
    flags: int
    bench_s: float


class SomaWatch:
    """Stands in for the die's soma transfer to see every soma input the die computes, in any layer
    (told apart by the truth's onset array the die passes along)."""

    def __init__(self, truth: DieTruth) -> None:
        self.onsets = truth.compression_onset_a
        self.peak_a = 0.0
        self.margin = 0.0
        self.excursion_a = [0.0] * len(self.onsets)
        self.probed_layer: int | None = None
        self._transfer = sim_die.soma_transfer

    def __call__(self, r_a: np.ndarray, onset_a: np.ndarray) -> np.ndarray:
        layer = next((l for l, o in enumerate(self.onsets) if o is onset_a), None)
        if layer is not None and layer == self.probed_layer:
            self.excursion_a[layer] = max(self.excursion_a[layer], float(np.max(r_a)))
        else:
            self.peak_a = max(self.peak_a, float(np.max(r_a)))
            self.margin = max(self.margin, float(np.max(r_a / onset_a)))
        return self._transfer(r_a, onset_a)

    def around_linear_range_run(self, run, layer: int | None = None):
        """Wrap a linear-range run: layer 0's (``linear_range``) or a deeper one's (its layer argument)."""
        def wrapped(prober, config_id, *args):
            self.probed_layer = args[0] if layer is None else layer
            try:
                return run(prober, config_id, *args)
            finally:
                self.probed_layer = None
        return wrapped


def _characterise(part: str, seed: int, out, truth: DieTruth | None = None) -> Run:
    with SimulatedBench(part, seed=seed, truth=truth) as sim, pytest.MonkeyPatch.context() as mp:
        watch = SomaWatch(sim.die.truth)
        mp.setattr(sim_die, "soma_transfer", watch)
        mp.setattr(Prober, "linear_range", watch.around_linear_range_run(Prober.linear_range, layer=0))
        mp.setattr(Prober, "layer_linear_range", watch.around_linear_range_run(Prober.layer_linear_range))
        bench_file = sim.write_bench_file(out.parent / "bench.toml")
        with Bench.from_file(bench_file) as bench:
            result = characterise(bench, out)
        return Run(out, sim.die.truth, result, read_raw(out), watch.peak_a, watch.margin, watch.excursion_a,
                   sim.die.damaged, sim.die.status()[0], sim.clock.now())


@pytest.fixture(scope="module", params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
def run(request, tmp_path_factory) -> Run:
    return _characterise("CMNA-777", request.param, tmp_path_factory.mktemp(f"die{request.param}") / "die.h5")


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> Run:
    """One CMNA-L die (196-100-50-10): fan-in chains and negative-weight probes (issue 5)."""
    return _characterise("CMNA-L", LARGE_SEED, tmp_path_factory.mktemp("large") / "die.h5")


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
    # every layer's linear-range run goes beyond the onset on purpose; layer 0's not beyond what
    # EXT_IN may source (deeper somas are fed inside the die, where no pad rating applies)
    assert all(ratings.LINEAR_RANGE_A < peak for peak in run.excursion_a)
    assert run.excursion_a[0] <= ratings.EXT_IN_MAX_A


def test_compression_onsets_found_in_every_layer_and_every_input_kept_below_them(run: Run) -> None:
    layers = run.result.params.layers
    lowest = np.nanmin(np.concatenate([layer.compression_onset_a for layer in layers]))
    for l, layer in enumerate(layers):
        onset, std, true = layer.compression_onset_a, layer.compression_onset_a_std, run.truth.compression_onset_a[l]
        measured = np.isfinite(onset)
        # a soma whose gain is too high for MON's rating, or whose onset lies beyond the run, is left out
        assert measured.sum() >= len(onset) // 2
        z = (onset[measured] - true[measured]) / std[measured]
        print(f"seed {run.truth.seed} layer {l}: onsets {np.round(onset * 1e9)} +- {np.round(std * 1e9)} nA, "
              f"true {np.round(true * 1e9)} nA, z rms {np.sqrt(np.mean(z ** 2)):.2f}")
        # deeper onsets carry the MON gain and the feeding synapses' mean gain in their scale (~2.5 %)
        assert np.all(np.abs(onset[measured] / true[measured] - 1) < (0.15 if l == 0 else 0.2))
        assert np.all(np.abs(z) < 4) and np.sqrt(np.mean(z ** 2)) < 2.5  # the errors are honest
        assert layer.compression_onset_a.shape == layer.max_input_a.shape == layer.a_plus.shape
        assert np.nanmax(layer.max_input_a) < lowest


def test_the_contracts_slow_drift_raises_no_alarm(run: Run) -> None:
    drift = run.result.summary["drift"]
    print(f"seed {run.truth.seed}: drift {drift['rate_per_min']:+.3%} +- {drift['rate_std_per_min']:.3%} per minute")
    assert len(drift["factor"]) >= 2 and not drift["flagged"]


def test_drift_beyond_the_contract_is_flagged(tmp_path) -> None:
    """A die whose gains drift 100 times faster than the contract allows (about 5 % per minute)."""
    truth = replace(DieTruth.draw((7, 7, 7), SEEDS[0]), temp_alpha_per_c=0.1, temp_phase_rad=0.0)
    drifting = _characterise("CMNA-777", SEEDS[0], tmp_path / "die.h5", truth)
    drift = drifting.result.summary["drift"]
    print(f"drifting die: {drift['rate_per_min']:+.2%} +- {drift['rate_std_per_min']:.2%} per minute")
    assert drift["flagged"] and drift["rate_per_min"] > 0.02


def test_the_pads_never_left_their_ratings(run: Run) -> None:
    assert not run.damaged
    assert not run.flags & StatusFlag.OVERSTRESS
    mon = run.raw.mon
    assert len(mon) > 1000
    assert mon["current_a"].max() < ratings.MON_MAX_A
    assert 0.0 <= mon["ext_in_a"].min() and mon["ext_in_a"].max() <= ratings.EXT_IN_MAX_A


def _relative_errors(run: Run) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(a+ error, a+ z, a-/a+ error, a-/a+ z) over all layers, against the seen truth."""
    plus, plus_z, ratio, ratio_z = [], [], [], []
    layers = run.result.params.layers
    for l, layer in enumerate(layers):
        seen = run.truth.seen_a_plus(l)
        seen = seen / seen.mean()
        plus.append(layer.a_plus / seen - 1)
        plus_z.append((layer.a_plus - seen) / layer.a_plus_std)
        if l < len(layers) - 1:
            measured, true = layer.a_minus / layer.a_plus, run.truth.a_minus[l] / run.truth.a_plus[l]
            std = measured * np.hypot(layer.a_minus_std / layer.a_minus, layer.a_plus_std / layer.a_plus)
            ratio.append(measured / true - 1)
            ratio_z.append((measured - true) / std)
    return tuple(np.concatenate(v) for v in (plus, plus_z, ratio, ratio_z))


def test_large_die_meets_the_goal_within_budget(large: Run) -> None:
    plus, _, ratio, _ = _relative_errors(large)
    rms = lambda e: float(np.sqrt(np.mean(e ** 2)))
    configs = large.result.summary["configurations"]
    print(f"CMNA-L seed {LARGE_SEED}: {configs} configurations, {large.bench_s:.0f} s; a+ rms {rms(plus):.2%} "
          f"worst {np.max(np.abs(plus)):.2%}; a-/a+ rms {rms(ratio):.2%} worst {np.max(np.abs(ratio)):.2%}")
    assert configs <= 40 and large.bench_s < 300
    assert rms(plus) <= 0.01 and rms(ratio) <= 0.02
    assert not any(np.any(f.unmeasured) for l, f in enumerate(large.result.flags) if l != 3)


def test_large_die_standard_errors_are_calibrated(large: Run) -> None:
    _, plus_z, _, ratio_z = _relative_errors(large)
    for name, z in (("a+", plus_z), ("a-/a+", ratio_z)):
        print(f"CMNA-L {name}: z rms {np.sqrt(np.mean(z ** 2)):.2f}")
        assert 0.5 < np.sqrt(np.mean(z ** 2)) < 2.0


def test_large_die_stayed_in_its_linear_range(large: Run) -> None:
    assert large.onset_margin < 1.0 and large.soma_input_peak_a > 150e-9
    assert large.excursion_a[0] <= ratings.EXT_IN_MAX_A
    assert large.excursion_a[1:] == [0.0] * 3  # deeper layers' runs are opt-in on a large die
    assert not large.result.summary["drift"]["flagged"]
    assert not large.damaged and large.raw.mon["current_a"].max() < ratings.MON_MAX_A


def test_large_die_read_backs_show_only_true_stuck_bits(large: Run) -> None:
    """Every configuration kind's plan is rebuilt from the file (fan-in chains, negative-weight probes),
    so the digital twin takes no programmed weight for a stuck bit."""
    seen = stuck_bits_seen(large.path)
    true = {StuckBit(*b) for b in large.truth.stuck_bits}
    print(f"CMNA-L seed {LARGE_SEED}: {len(seen)} stuck bits seen of {len(true)}")
    assert seen and set(seen) <= true


def test_linear_range_choices() -> None:
    from labctl.families.cmna.characterisation.characterise import linear_range_overrides
    from labctl.families.cmna.characterisation.probing import ProbeSettings
    from labctl.errors import ConfigError

    assert linear_range_overrides(None) == {}  # the die size decides
    assert ProbeSettings.for_geometry((7, 7, 7)).layer_knees and not ProbeSettings.for_geometry((196, 100, 50, 10)).layer_knees
    assert linear_range_overrides("off") == {"knee_points": 0, "layer_knees": False}
    assert linear_range_overrides("input") == {"knee_points": ProbeSettings.knee_points, "layer_knees": False}
    assert linear_range_overrides("all") == {"knee_points": ProbeSettings.knee_points, "layer_knees": True}
    with pytest.raises(ConfigError, match="--linear-range must be one of off, input, all, not 'deep'"):
        linear_range_overrides("deep")
