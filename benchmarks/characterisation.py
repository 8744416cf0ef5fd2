"""Characterisation accuracy and cost on simulated dies (issue 5).

For each die and method: configurations used, simulated bench time (gates and
SMU integration, accounted by the simulator's virtual clock as real hardware
would spend them), wall time, and the rms and worst relative error of a+ and
a-/a+ against the simulator's truth after per-layer normalisation. Two
truths are reported: the bare soma gain, and the gain as the synapses let any
per-neuron measurement see it (``DieTruth.seen_a_plus``: soma gain times its
input column's mean synapse gain, one factor for the network's function too).
Method ``serial`` is the baseline the planner is compared with: every neuron
probed alone, one configuration each (:mod:`serial_probing`).
Also the compression onsets found per layer: how many, their rms error against
the truth, and the largest soma input any gain measurement applied; and the
bench time the run estimated before it started.

    python benchmarks/characterisation.py --part CMNA-L --seeds 1 2 3
    python benchmarks/characterisation.py --part CMNA-L --seeds 1 2 3 --methods both --linear-range all
    python benchmarks/characterisation.py --part CMNA-L --seeds 1 2 3 --methods serial
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from labctl.families.cmna.bench import Bench
from labctl.families.cmna.characterisation.characterise import LINEAR_RANGE_CHOICES, Targets, linear_range_overrides
from labctl.families.cmna.sim.bench import SimulatedBench
from labctl.families.cmna.workflow import run_characterisation
from serial_probing import characterise_serially


def errors(params, truth) -> dict[str, float]:
    """rms and worst relative errors of a+ (soma and seen truth) and a-/a+, over all layers."""
    plus_soma, plus_seen, ratio = [], [], []
    for l, layer in enumerate(params.layers):
        soma = truth.a_plus[l] / truth.a_plus[l].mean()
        seen = truth.seen_a_plus(l) / truth.seen_a_plus(l).mean()
        plus_soma.append(layer.a_plus / soma - 1)
        plus_seen.append(layer.a_plus / seen - 1)
        if l < len(params.layers) - 1:
            ratio.append((layer.a_minus / layer.a_plus) / (truth.a_minus[l] / truth.a_plus[l]) - 1)
    out = {"onsets": [_onset_errors(lay.compression_onset_a, truth.compression_onset_a[l])
                      for l, lay in enumerate(params.layers)],
           "max input a": _largest([lay.max_input_a for lay in params.layers if lay.max_input_a is not None])}
    for name, parts in (("a+ soma", plus_soma), ("a+ seen", plus_seen), ("a-/a+", ratio)):
        e = np.concatenate(parts)
        e = e[np.isfinite(e)]
        out[f"{name} rms"] = float(np.sqrt(np.mean(e ** 2)))
        out[f"{name} worst"] = float(np.max(np.abs(e)))
    return out


def _onset_errors(onset: np.ndarray | None, true_onset: np.ndarray) -> tuple[int, float]:
    """(somas with a measured onset, rms relative error of those onsets against the truth)."""
    measured = np.isfinite(onset) if onset is not None else np.zeros(len(true_onset), bool)
    if not measured.any():
        return 0, float("nan")
    return int(measured.sum()), float(np.sqrt(np.mean((onset[measured] / true_onset[measured] - 1) ** 2)))


def _number(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.0f}"


def _onset_text(onsets: list[tuple[int, float]]) -> str:
    return " ".join(f"L{l} {n}" + (f" {rms:.1%}" if n else "") for l, (n, rms) in enumerate(onsets))


def _largest(arrays: list[np.ndarray]) -> float:
    values = np.concatenate(arrays) if arrays else np.zeros(0)
    values = values[np.isfinite(values)]
    return float(values.max()) if len(values) else float("nan")


def run(part: str, seed: int, method: str, targets: Targets | None, linear_range: str | None,
        workdir: Path) -> dict:
    said: list[str] = []
    with SimulatedBench(part, seed) as sim:  # purely virtual time (the default): readings repeat bit for bit
        bench_file = sim.write_bench_file(workdir / f"bench-{seed}.toml")
        start = time.monotonic()
        out = workdir / f"die-{part}-{seed}-{method}.h5"
        if method == "serial":
            with Bench.from_file(bench_file) as bench:
                params, configurations = characterise_serially(bench, out)
        else:
            result = run_characterisation(bench_file, out, method=method, targets=targets,
                                          setting_overrides=linear_range_overrides(linear_range), announce=said.append)
            params, configurations = result.params, result.summary["configurations"]
        wall = time.monotonic() - start
        estimate = next((float(m.group(1)) for m in map(re.compile(r"estimated bench time (\d+) s").search, said)
                         if m), float("nan"))
        return {"part": part, "seed": seed, "method": method, "configurations": configurations,
                "bench_s": sim.clock.accounted_s, "estimated_s": estimate, "wall_s": wall,
                "synapse_spread": sim.die.truth.synapse_spread, **errors(params, sim.die.truth)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", default="CMNA-L", choices=("CMNA-777", "CMNA-L"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--methods", nargs="+", default=["both", "network"])
    ap.add_argument("--target-a-plus", type=float, default=None)
    ap.add_argument("--target-ratio", type=float, default=None)
    ap.add_argument("--max-configs", type=int, default=40)
    ap.add_argument("--linear-range", choices=LINEAR_RANGE_CHOICES, default=None,
                    help="whose compression onsets to measure (default: the die size's)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = ap.parse_args()
    targets = Targets(a_plus=args.target_a_plus, ratio=args.target_ratio, max_configurations=args.max_configs) \
        if args.target_a_plus or args.target_ratio else None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for method in args.methods:
                rows.append(run(args.part, seed, method, targets, args.linear_range, Path(tmp)))
                r = rows[-1]
                print(f"{r['part']:<8} seed {r['seed']:<3} {r['method']:<8} configs {r['configurations']:>3}  "
                      f"bench {r['bench_s']:6.0f} s (est. {_number(r['estimated_s'])})  wall {r['wall_s']:5.1f} s  "
                      f"syn {r['synapse_spread']:.3f}  "
                      f"a+ seen rms {r['a+ seen rms']:.2%} worst {r['a+ seen worst']:.2%}  "
                      f"a+ soma rms {r['a+ soma rms']:.2%} worst {r['a+ soma worst']:.2%}  "
                      f"a-/a+ rms {r['a-/a+ rms']:.2%} worst {r['a-/a+ worst']:.2%}  "
                      f"onsets {_onset_text(r['onsets'])}  max input {r['max input a'] * 1e9:.0f} nA",
                      flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
