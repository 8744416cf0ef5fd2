"""The live view's gains agree with the final analysis on a large die (fan-in chains).

A simulated CMNA-L die is characterised as cheaply as still runs fan-in chains
(two chain configurations with their negative twins, no linear-range run);
the live estimates of the finished file (:func:`live_characterisation`, what
the window shows as readings arrive) are compared neuron by neuron with the
analysis written to the same file.

Like with like: the analysis stores each layer's gains normalised to mean 1
(``a_plus``, ``a_plus_std``) with the factor back to absolute gain as the
layer's ``scale`` attribute; the live view estimates absolute gains (layer 0:
MON per A of EXT_IN, deeper layers: MON slope over the column's predicted
input, a+ times the column's mean synapse gain, as the analysis measures it).
So ``live`` is compared with ``a_plus * scale`` in units of ``a_plus_std *
scale``, for every neuron both measured (a+ found by one of the analysis'
methods; the final values fill the others in). Rebuilding the chains without
their fan-in, as the live view once did, put the deeper layers' live gains 4
to 5 times too high (hundreds of sigma).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from labctl.families.cmna.bench import Bench
from labctl.families.cmna.characterisation.characterise import characterise
from labctl.families.cmna.live_view import live_characterisation
from labctl.families.cmna.sim.bench import SimulatedBench
from labctl.families.cmna.storage import load_die_parameters, read_raw

SEED = 2
SIGMAS = 3.0


@pytest.fixture(scope="module")
def large_die(tmp_path_factory):
    """A characterised CMNA-L die: two fan-in chain configurations and their twins, no linear range."""
    out = tmp_path_factory.mktemp("live") / "die.h5"
    with SimulatedBench("CMNA-L", seed=SEED) as sim:
        bench_file = sim.write_bench_file(out.parent / "bench.toml")
        with Bench.from_file(bench_file) as bench:
            characterise(bench, out, n_configs=2, setting_overrides={"knee_points": 0, "probe_rounds": ()})
        return out, sim.die.chip


def test_the_run_has_fan_in_chains(large_die):
    path, _ = large_die
    chains = [json.loads(r["params"]) for r in read_raw(path).configs if r["kind"] in (b"chain", "chain")]
    assert len(chains) == 2 and all(max(p["fan_in"]) > 1 for p in chains)


def test_live_gains_agree_with_the_final_analysis(large_die):
    path, chip = large_die
    live = live_characterisation(path, chip)
    final = load_die_parameters(path)
    methods = [load_die_parameters(path, f"methods/{m}") for m in ("mon", "network")]
    for l, (gain, layer) in enumerate(zip(live.gains, final.layers)):
        absolute, std = layer.a_plus * layer.scale, layer.a_plus_std * layer.scale
        # a+ measured by a method (the final file fills the others in with typical values)
        measured = np.any([np.isfinite(m.layers[l].a_plus) for m in methods], axis=0)
        assert measured.sum() >= 0.9 * chip.layer_sizes[l], f"layer {l}: the analysis measured too few neurons"
        assert np.all(np.isfinite(gain[measured])), f"layer {l}: the live view missed neurons the analysis measured"
        z = (gain[measured] - absolute[measured]) / std[measured]
        print(f"CMNA-L seed {SEED} layer {l}: {measured.sum()} neurons, live/final median "
              f"{np.median(gain[measured] / absolute[measured]):.4f}, z rms {np.sqrt(np.mean(z ** 2)):.2f}, "
              f"worst {z[np.argmax(np.abs(z))]:+.2f}")
        worst = int(np.argmax(np.abs(z)))
        assert np.all(np.abs(z) <= SIGMAS), \
            f"layer {l} neuron {np.flatnonzero(measured)[worst]}: live {gain[measured][worst]:.4g}, " \
            f"final {absolute[measured][worst]:.4g} +/- {std[measured][worst]:.2g} ({z[worst]:+.1f} sigma)"
