"""Characterise one simulated RCS-L die through the bench: bench time per step, and every fit against the truth.

The RCS-L counterpart of the characterisation half of ``benchmarks/ttfs_bench_iris.py``: the die (seed from
argv, default 1) and its instruments are served in-process (:class:`SimulatedTtfsBench`, virtual bench
clock), and the family's own ``characterise_die`` runs the part's plan
(:meth:`CharacterisationPlan.for_part`, contract 7's goal: RCS-L under 30 minutes of bench time). Printed:

- bench seconds and wall seconds per step (from the progress reports: where the bench clock stood when each
  step began), the total, and the plan's estimate (:func:`estimate_bench_seconds`);
- per quantity, every fitted value against the die's hidden truth, compared as the Iris benchmark compares
  them (:func:`ttfs_bench_iris.characterisation_errors`: gains normalised to mean 1, I_LSB times the mean
  gain, bits to w(15) = 15): count, rms error, mean standard error, the fraction within 1 and 2 se
  (calibrated errors: about 68 % and 95 %). Step 5's site currents are compared with the currents the
  sites carried at that write (the simulator's state when step 5 ended: the write residual eps is in both).

Usage (about 25 minutes of wall time on two shared cores; run one at a time)::

    python benchmarks/ttfs_char_rcsl.py [SEED]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from ttfs_bench_iris import UNITS, calibration, characterisation_errors

from labctl.families.ttfs.characterisation.budget import estimate_bench_seconds
from labctl.families.ttfs.characterisation.characterise import characterise_die
from labctl.families.ttfs.characterisation.plan import CharacterisationPlan
from labctl.families.ttfs.sim.bench import SimulatedTtfsBench
from labctl.families.ttfs.sim.die import layer_drive
from labctl.families.ttfs.sim.parts import ROP
from labctl.families.ttfs.sim.synapses import saturation_knee

PART = "RCS-L"
BENCH_GOAL_S = 1800.0  # contract 7: an RCS-L characterisation within 30 minutes of bench time
STEPS = {"MON chain": "1 MON chain", "leakage": "8 leakage and coupling", "DC shape E+": "2 DC shape E+",
         "DC shape E-": "2 DC shape E-", "ladder +": "7 ladder +", "ladder -": "7 ladder -",
         "reversal": "3 reversal", "anchors": "4 anchors", "sites": "5 sites", "fit": "fit (no bench)"}
UNITS = {**UNITS, "site current": ("pA", 1e12)}


def site_truth(truth, state) -> list[np.ndarray]:
    """Each excitatory site's verify-point current (A) in ``state`` (1.6: membrane at V_REST, rails at ROP)."""
    out = []
    for m in range(len(truth.matrices)):
        drive = layer_drive(truth, state, ROP, m + 1)
        xe = truth.v_rest - drive.e_exc
        out.append(saturation_knee(xe, drive.v_k) * (drive.a_exc + drive.lam_exc * xe))
    return out


def main() -> int:
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    starts: dict[str, tuple[float, float]] = {}
    state = {}
    with tempfile.TemporaryDirectory(prefix="ttfs_rcsl_") as tmp, SimulatedTtfsBench(PART, seed=seed) as sim:
        def progress(stage: str, done: int, total: int) -> None:
            starts.setdefault(stage, (sim.bench_seconds, time.perf_counter()))
            if stage == "sites" and done == total:  # step 5's write, before the die is written 0 again
                state["sites"] = sim.die.synapses

        bench_file = sim.write_bench_file(Path(tmp) / "bench.toml")
        wall0 = time.perf_counter()
        result = characterise_die(bench_file, Path(tmp) / "die.h5", progress=progress)
        wall, bench = time.perf_counter() - wall0, sim.bench_seconds
        truth = sim.die.truth
        errors = characterisation_errors(result.params, truth, sim.scope.true_chain(sim.wiring.probe)[0])
        with h5py.File(result.path, "r") as f:
            fitted = [(f[f"fits/site_current_a/matrix_{m}"][()], f[f"fits/site_current_se_a/matrix_{m}"][()])
                      for m in range(len(truth.matrices))]
    current, se = (np.concatenate([x[i].ravel() for x in fitted]) for i in (0, 1))
    true = np.concatenate([t.ravel() for t in site_truth(truth, state["sites"])])
    fired = np.isfinite(current)
    errors["site current"] = {"error": (current - true)[fired].tolist(), "se": se[fired].tolist(),
                              "tolerance": np.full(fired.sum(), np.inf).tolist()}

    print(f"{PART} die seed {seed} ({result.params.serial}): {bench:.0f} s of bench time "
          f"({bench / 60:.1f} min; goal < {BENCH_GOAL_S / 60:.0f} min: {'met' if bench < BENCH_GOAL_S else 'NOT met'}), "
          f"{wall:.0f} s of wall time")
    order = sorted(starts, key=lambda s: starts[s][0] if s != "fit" else np.inf)
    print(f"\n{'step':24s} {'bench s':>9s} {'wall s':>8s}")
    first_bench, first_wall = starts[order[0]]
    print(f"{'0 open, power-up':24s} {first_bench:9.1f} {first_wall - wall0:8.1f}")
    for i, stage in enumerate(order):
        b0, w0 = starts[stage]
        b1, w1 = starts[order[i + 1]] if i + 1 < len(order) else (bench, wall0 + wall)
        if stage == "sites":  # the die written 0 again and powered down, until the fit starts
            b1 = bench
        print(f"{STEPS.get(stage, stage):24s} {max(b1 - b0, 0.0):9.1f} {w1 - w0:8.1f}")
    print(f"{'total':24s} {bench:9.1f} {wall:8.1f}")

    print(f"\n{'quantity':17s} {'n':>7s} {'rms error':>13s} {'mean se':>13s} {'bias':>13s} {'<1 se':>6s} {'<2 se':>6s}")
    for name, entry in errors.items():
        if name.startswith("_") or not entry["error"] or name not in UNITS:
            continue
        c = calibration([entry])
        unit, scale = UNITS[name]
        print(f"{name:17s} {c['n']:7d} {c['rms'] * scale:9.4g} {unit:3s} {c['mean_se'] * scale:9.4g} {unit:3s} "
              f"{c['bias'] * scale:+9.3g} {unit:3s} {100 * c['within_1se']:5.0f}% {100 * c['within_2se']:5.0f}%")
    print(f"\nper layer (layer 1, 2, 3: rms error / mean se / within 2 se)")
    bounds = np.cumsum((0, *result.params.layer_sizes[1:]))
    for name in ("C", "V0", "V_th", "d", "gain", "leak"):
        unit, scale = UNITS[name]
        cells = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            c = calibration([{k: v[lo:hi] for k, v in errors[name].items()}])
            cells.append(f"{c['rms'] * scale:8.3g} / {c['mean_se'] * scale:8.3g} {unit:3s} {100 * c['within_2se']:4.0f}%")
        print(f"{name:6s} " + " | ".join(cells))
    unpaired = errors["_unpaired"]
    print(f"\nwithout a standard error: lambda's site spread {100 * unpaired['lam_site_sd'][0]:.1f} % (truth 5 %), "
          f"write residual half width {100 * unpaired['write_residual_half_width'][0]:.2f} % (truth 2.5 %); "
          f"sites that did not fire in step 5: {int((~fired).sum())}")
    estimate = estimate_bench_seconds(CharacterisationPlan.for_part(PART), tuple(result.params.layer_sizes))
    print(f"the plan's estimate from contract 3.6's timings: {sum(estimate.values()):.0f} s (" +
          ", ".join(f"{step} {s:.0f}" for step, s in estimate.items()) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
