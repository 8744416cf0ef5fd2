"""Adam step sizes of mini-batch TTFS training on Fashion-MNIST, each trained for the same wall time.

The evidence for ``MINIBATCH_LR`` in ``labctl/families/ttfs/training/trainer.py``:
for each pair of step sizes (latent codes in code steps, bias times in 10 ns
codes) DSTD trains 784-256-128-10 codes on a simulated RCS-L die's true
parameters (die-mean lambdas, as a characterisation reports them: no bench,
so that only the optimiser differs) for ``--budget-minutes`` of wall time,
then the model's accuracy at the nominal write is taken on ``--test-samples``
test images drawn with a fixed seed. A table at the end; ``--out`` saves it
with every judgement (each 500 steps) as JSON.

Usage (one pair takes the budget plus about 2 minutes; two runs side by side
share the 2 cores, as the recorded study did)::

    python benchmarks/ttfs_step_sizes.py 0.05,0.5 0.15,1.5 0.5,5 --budget-minutes 12
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from labctl.families.ttfs.sim.bench import SimulatedTtfsBench
from labctl.families.ttfs.sim.truth import parameters_of
from labctl.families.ttfs.tasks import load_task
from labctl.families.ttfs.training import trainer

PART = "RCS-L"


def run(pair: tuple[float, float], params, data, budget_s: float) -> dict:
    """One training at step sizes ``pair``: its test accuracy, steps and judgements."""
    judged: list[tuple[int, float]] = []

    def on_epoch(step: int, total: int, loss: float, accuracy: float) -> None:
        if step % trainer.JUDGE_STEPS == 0:
            judged.append((step, accuracy))
            print(f"  {pair}: step {step}, judged {100 * accuracy:.1f} %", file=sys.stderr, flush=True)

    trainer.MINIBATCH_LR = pair
    start = time.perf_counter()
    trained = trainer.train_ttfs(params, data, method="dstd", time_budget_s=budget_s, on_epoch=on_epoch)
    return {"code_lr": pair[0], "bias_lr": pair[1], "test_accuracy": trained.weights.software_accuracy,
            "steps": len(trained.losses), "wall_s": time.perf_counter() - start, "judged": judged}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs", nargs="+", help="step sizes CODE,BIAS (e.g. 0.5,5)")
    parser.add_argument("--budget-minutes", type=float, default=12.0)
    parser.add_argument("--seed", type=int, default=1, help="the simulated die's seed")
    parser.add_argument("--test-samples", type=int, default=2000)
    parser.add_argument("--out", type=Path, help="save the results as JSON")
    args = parser.parse_args(argv)
    pairs = [tuple(float(v) for v in p.split(",")) for p in args.pairs]
    params = parameters_of(SimulatedTtfsBench(PART, seed=args.seed).die.truth, per_site_lambda=False)
    data = load_task("fashion-mnist")
    keep = np.random.default_rng(0).choice(len(data.y_test), args.test_samples, replace=False)
    data = dataclasses.replace(data, X_test=data.X_test[keep], y_test=data.y_test[keep])
    results = [run(pair, params, data, 60.0 * args.budget_minutes) for pair in pairs]
    print(f"\n{PART} die seed {args.seed}, true parameters, DSTD, {args.budget_minutes:g} min each, "
          f"{args.test_samples} test images")
    print(f"{'code lr':>8s} {'bias lr':>8s} {'steps':>6s} {'judged @500':>12s} {'test %':>7s}")
    for r in results:
        first = f"{100 * r['judged'][0][1]:.1f}" if r["judged"] else "-"
        print(f"{r['code_lr']:8g} {r['bias_lr']:8g} {r['steps']:6d} {first:>12s} {100 * r['test_accuracy']:7.2f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
