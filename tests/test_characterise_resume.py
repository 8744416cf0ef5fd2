"""Resume: an interrupted characterisation continues without losing or repeating anything.

An interrupted run leaves ``die.partial.h5`` (never ``die.h5``); ``--resume``
continues it and makes ``die.h5`` when the run is complete.
"""

import json
from collections import Counter

import h5py
import numpy as np
import pytest

from labctl.families.cmna.bench import Bench
from labctl.families.cmna.characterisation.characterise import characterise
from labctl.families.cmna.storage import read_raw
from labctl.families.cmna.sim.bench import SimulatedBench


def _stop_after(n_chains: int):
    def progress(stage: str, done: int, total: int) -> None:
        if stage == "chain configurations" and done >= n_chains:
            raise KeyboardInterrupt

    return progress


def test_resume_loses_and_repeats_nothing(tmp_path):
    out = tmp_path / "die.h5"
    with SimulatedBench("CMNA-777", seed=11) as sim:
        bench_file = sim.write_bench_file(tmp_path / "bench.toml")
        with pytest.raises(KeyboardInterrupt):
            with Bench.from_file(bench_file) as bench:
                characterise(bench, out, progress=_stop_after(5))
        # every output is off and the partial file holds what was measured, without fits; no die.h5 yet
        assert not any(sim.channel_of(pad).output_on for pad in ("VDD", "EXT_IN", "MON"))
        partial = tmp_path / "die.partial.h5"
        assert not out.exists()
        before = read_raw(partial)
        with h5py.File(partial) as f:
            assert "calibration" not in f
        done_before = [json.loads(j) for j in before.done["job"]]
        assert sum(j[0].startswith("chain") for j in done_before) == 5
        with Bench.from_file(bench_file) as bench:
            result = characterise(bench, out, resume=True)
    assert not partial.exists()  # it became die.h5
    after = read_raw(out)
    # nothing measured before the interruption is lost
    assert len(after.mon) > len(before.mon)
    assert np.array_equal(after.mon[: len(before.mon)], before.mon)
    # no finished job ran twice, and the plan is complete: 7 chains and 7 negative twins on CMNA-777
    jobs = Counter(j.decode() if isinstance(j, bytes) else j for j in after.done["job"])
    assert max(jobs.values()) == 1
    kinds = Counter(json.loads(j)[0] for j in jobs)
    assert kinds["chain"] == 7 and kinds["chain_negative"] == 7
    assert kinds["ext_sweep"] == 1 and kinds["bias_sweep"] == 1 and kinds["dark"] == 1
    assert kinds["linear_range"] == 3  # every layer's, on a small die
    # and the fits are as good as an uninterrupted run's: within 2 % of what the synapses let be seen
    for l, layer in enumerate(result.params.layers):
        seen = sim.die.truth.seen_a_plus(l)
        assert np.max(np.abs(layer.a_plus / (seen / seen.mean()) - 1)) < 0.02


def test_resume_refuses_another_die(tmp_path):
    from labctl.errors import DataFileError

    out = tmp_path / "die.h5"
    with SimulatedBench("CMNA-777", seed=12) as sim:
        bench_file = sim.write_bench_file(tmp_path / "a.toml")
        with pytest.raises(KeyboardInterrupt):
            with Bench.from_file(bench_file) as bench:
                characterise(bench, out, progress=_stop_after(1))
    with SimulatedBench("CMNA-777", seed=13) as other:
        bench_file = other.write_bench_file(tmp_path / "b.toml")
        with pytest.raises(DataFileError, match="measured on die"):
            with Bench.from_file(bench_file) as bench:
                characterise(bench, out, resume=True)


def test_resume_of_a_large_die_plan_redraws_the_same_probes(tmp_path):
    """Fan-in chains and negative-weight probes (the large-die plan, here on CMNA-777's geometry)."""
    out = tmp_path / "die.h5"
    plan = {"fan_in": (2, 2), "probe_rounds": (2, 3), "probe_negatives": (3, 3), "levels": 4}
    with SimulatedBench("CMNA-777", seed=14) as sim:
        bench_file = sim.write_bench_file(tmp_path / "bench.toml")
        with pytest.raises(KeyboardInterrupt):
            with Bench.from_file(bench_file) as bench:
                characterise(bench, out, setting_overrides=plan, n_configs=4, progress=_stop_after(4))
        before = read_raw(out)
        with Bench.from_file(bench_file) as bench:
            result = characterise(bench, out, resume=True)
    after = read_raw(out)
    assert np.array_equal(after.mon[: len(before.mon)], before.mon)
    jobs = Counter(j.decode() if isinstance(j, bytes) else j for j in after.done["job"])
    assert max(jobs.values()) == 1
    kinds = Counter(json.loads(j)[0] for j in jobs)
    assert kinds["chain"] == 4 and kinds["negative_probe"] == 5 and "chain_negative" not in kinds
    # a probe run before and after the interruption: both fitted, every soma's a-/a+ measured
    for layer in result.params.layers[:-1]:
        assert np.all(np.isfinite(layer.a_minus)) and not np.any(result.flags[0].unmeasured)
