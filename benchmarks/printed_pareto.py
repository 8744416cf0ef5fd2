"""Power-aware printed circuits: accuracy against measured power on printed samples, swept over ALPHA (issue 13).

For one simulated print run (``sim-<--process-seed>``, every printed value
times ``1 + U(-eps, eps)``) it runs the printed loop as a lab would, through
the real driver stack (``printed_loop.py``): characterise the run's PNC-TS
test-structure sample once; then per data set (``../shared/data/printed/
<set>.csv``, the authors' fixed splits, topology [inputs, 3, classes]) and per
power weight ALPHA (``labctl train --power-weight ALPHA``: variation-aware,
learnable circuits; loss (1 - ALPHA) hinge + ALPHA P / P_blind) train a
bespoke design, export its print job, print ``--samples`` samples of it (sample
seeds 0..n-1) and verify each (``labctl evaluate --design``): the test split's
accuracy and the supply power (crossbar drivers and cell rails, mean over the
test patterns) measured on every printed sample. ALPHA = 0, the power-blind
design, is always run: it is the reference of the relative figures. A set's
power-blind design is trained once and every ALPHA > 0 continues from it
(``train_designs``, the same designs as separate ``labctl train`` runs), so the
training seconds reported are the set's whole sweep.

Relative figures (per set): a design's accuracy and power are the means over
its printed samples, divided by the power-blind design's. The goal of the
issue (the published Pareto figure, seed 002: 95 % of the accuracy at 50 % of
the power, averaged over the sets) is read off each set's measured front by
this rule: take the measured designs that no other design of the set beats
on both figures (the front: none has lower-or-equal relative power and
higher-or-equal relative accuracy); the set's accuracy at 50 % power is the
front's relative accuracy at relative power 0.5, interpolated linearly
between the two front designs on either side of 0.5 (the front design itself
where one sits at 0.5 or none lies above it). A set whose front has no design
at or below 0.5 has no value: the goal then counts as NOT met. The goal is
met when the mean of the sets' values is at least 0.95. Printed too: the
conservative figure without interpolation (the best measured design at or
below 0.5).

It prints a table per set and alpha, the averaged front and the goal, writes
the section of ``docs/results-printed-pareto.md`` and two plots:
``docs/printed-pareto-<section>.png`` (printed accuracy against measured
supply power, a panel per set, every sample and the mean per alpha) and
``docs/printed-pareto-front-<section>.png`` (accuracy relative to the
power-blind design against power relative to it: every set and the mean per
alpha, next to the published figure).

Usage (long; run it with ``nice``)::

    python benchmarks/printed_pareto.py                                   # 13 sets, 6 alphas, 3 samples, eps 10 %
    python benchmarks/printed_pareto.py --sets iris,seeds --alphas 0,0.3,0.7 --samples 1 --section partial-a
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from printed_loop import (DATA, DOCS, HIDDEN, SETS, DesignResult, add_run_arguments, on_one_run, parse_list,
                          parse_run_arguments, print_design)
from results_sections import write_task_section

from labctl.families.printed.dataset import load_csv
from labctl.families.printed.training import train_designs

RESULTS = DOCS / "results-printed-pareto.md"
ALPHAS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7)
GOAL_POWER = 0.5
GOAL_ACCURACY = 0.95
PUBLISHED_FRONT = ((1.00, 1.00), (0.50, 0.95), (0.40, 0.90), (0.34, 0.85), (0.28, 0.80), (0.23, 0.75), (0.18, 0.70))
"""Seed 002's Pareto figure (``../shared/data/printed/README.md``): (relative power, relative accuracy)."""
HEAD = ("# Printed circuits: the power-aware Pareto front, measured on printed samples\n\n"
        "Written by `benchmarks/printed_pareto.py` (issue 13; the loop is described in `docs/printed.md`, the "
        "contract in `docs/specs/printed-bench.md`; the method and the rule by which the goal is read off the "
        "measured fronts are in the script's `--help`).\n\n"
        "Per data set and power weight ALPHA (`labctl train --power-weight ALPHA`, variation-aware with learnable "
        "circuits) a design is trained, exported, printed on `--samples` samples of one simulated print run and "
        "verified on each: test accuracy and supply power (crossbar drivers and cell rails, mean over the test "
        "patterns) are measured on the printed samples, none is the model's. Relative figures are per set, against "
        "the power-blind design (ALPHA = 0) of the same set and run.\n\n"
        "Goal (issue 13, seed 002's figure): at least 95 % of the power-blind accuracy at 50 % of its power, "
        "averaged over the 13 sets. Rule: per set, the relative accuracy of the measured front (designs no other "
        "design beats on both figures) at relative power 0.5, interpolated linearly between the front designs on "
        "either side of 0.5; a set whose front has no design at or below 0.5 fails the goal.\n\n")


@dataclass
class SetFront:
    """One set's designs, one per alpha (the first the power-blind one), each printed and verified."""

    name: str
    test_rows: int
    alphas: list[float] = field(default_factory=list)
    points: list[DesignResult] = field(default_factory=list)
    seconds: float = 0.0

    def relative(self) -> list[tuple[float, float]]:
        """(relative power, relative accuracy) of every alpha, against the power-blind design (the first point)."""
        blind = self.points[0]
        return [(p.measured_power_w / blind.measured_power_w, p.mean / blind.mean if blind.mean > 0 else float("nan"))
                for p in self.points]


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (power, accuracy) points no other point beats on both (lower-or-equal power, higher-or-equal
    accuracy), by rising power."""
    front: list[tuple[float, float]] = []
    for x, y in sorted((p for p in points if np.isfinite(p[0]) and np.isfinite(p[1])), key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def accuracy_at(front: list[tuple[float, float]], budget: float) -> tuple[float | None, float | None]:
    """(interpolated, conservative) relative accuracy of a front at relative power ``budget``: linear between the
    front points on either side of it; the best point at or below it. (None, None) if none is at or below it."""
    below = [p for p in front if p[0] <= budget]
    if not below:
        return None, None
    x0, y0 = below[-1]
    above = [p for p in front if p[0] > budget]
    if x0 == budget or not above:
        return y0, y0
    x1, y1 = above[0]
    return y0 + (y1 - y0) * (budget - x0) / (x1 - x0), y0


def run_set(name: str, calibration, alphas: list[float], eps: float, process_seed: int, samples: int,
            data_dir: Path, work: Path) -> SetFront:
    started = time.perf_counter()
    data = load_csv(data_dir / f"{name}.csv")
    row = SetFront(name, int(np.sum(data.split == "test")))
    print(f"  {name} ({row.test_rows} test rows, {len(alphas)} alphas, {samples} sample{'s' * (samples != 1)} each)",
          flush=True)
    designs = train_designs(calibration, data, hidden=HIDDEN, power_weights=alphas)  # one power-blind training
    for alpha, design in zip(alphas, designs):
        row.alphas.append(alpha)
        row.points.append(print_design(f"{alpha:g}", design, work / name / f"a{alpha:g}", f"{name}-a{alpha:g}-e{eps:g}",
                                       eps, process_seed, samples, f"    alpha {alpha:g}: "))
    row.seconds = time.perf_counter() - started
    rel = row.relative()
    print(f"  {name}: " + ", ".join(f"alpha {a:g} {p.mean:.1%} at {p.measured_power_w * 1e3:.3g} mW "
                                    f"({r[0]:.2f}x power)" for a, p, r in zip(row.alphas, row.points, rel))
          + f"; {row.seconds:.0f} s", flush=True)
    return row


def averaged_front(rows: list[SetFront]) -> list[dict]:
    """Per alpha, over sets: mean relative power and accuracy, mean absolute figures, predicted / measured power."""
    out = []
    for k, alpha in enumerate(rows[0].alphas):
        rel = np.array([r.relative()[k] for r in rows])
        pts = [r.points[k] for r in rows]
        out.append({"alpha": alpha, "rel_power": float(np.nanmean(rel[:, 0])),
                    "rel_accuracy": float(np.nanmean(rel[:, 1])), "accuracy": float(np.mean([p.mean for p in pts])),
                    "power_w": float(np.nanmean([p.measured_power_w for p in pts])),
                    "predicted_ratio": float(np.nanmean([p.predicted_power_w / p.measured_power_w for p in pts])),
                    "train_s": float(np.mean([p.train_s for p in pts]))})
    return out


def goal(rows: list[SetFront]) -> dict:
    """Per set the front's relative accuracy at 50 % power (interpolated and conservative); the mean; the verdict."""
    per_set = {}
    for r in rows:
        front = pareto_front(r.relative())
        per_set[r.name] = (front, *accuracy_at(front, GOAL_POWER))
    reached = [v[1] for v in per_set.values() if v[1] is not None]
    conservative = [v[2] for v in per_set.values() if v[2] is not None]
    mean = float(np.mean(reached)) if reached else float("nan")
    met = len(reached) == len(rows) and mean >= GOAL_ACCURACY
    return {"per_set": per_set, "mean": mean, "reached": len(reached),
            "conservative": float(np.mean(conservative)) if conservative else float("nan"), "met": met}


def _pct(x: float | None) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x * 100:.1f}"


def section(rows: list[SetFront], front: list[dict], verdict: dict, done, args, name: str, full: bool,
            command: str, wall_s: float, plots: tuple[Path, Path]) -> str:
    alphas = rows[0].alphas
    n = len(rows)
    title = (("Full run" if full else "PARTIAL run") + f": {n} set{'s' * (n != 1)}, {len(alphas)} alphas, "
             f"{args.samples} printed sample{'s' * (args.samples != 1)} each, eps {args.eps * 100:g} %")
    lines = [f"<!-- task:{name} -->", f"## {title}", "",
             ("**PARTIAL results: not the full benchmark.** " if not full else "")
             + f"Sets: {', '.join(r.name for r in rows)}. Command (`{command}`), {wall_s / 60:.1f} min wall in total.",
             "",
             f"Process {done.process}: PNC-TS sample characterised once ({args.plan_name} plan, {done.structures} "
             f"circuit structures fitted, {done.wall_s:.0f} s wall, {done.bench_s:.0f} s of bench time); measured eps "
             f"{done.measured_eps:.3f} +- {done.measured_eps_se:.3f} (the run's: {args.eps:g}); training and the "
             "designs' predictions use the measured eps.", "",
             "Per set and alpha: printed accuracy % (mean over samples) / measured supply power mW / power relative "
             "to the power-blind design.", "",
             "| set | test rows | " + " | ".join(f"alpha {a:g}" for a in alphas)
             + " | front at 50 % power: interpolated / best measured, % | s |",
             "| --- | ---: |" + " ---: |" * len(alphas) + " ---: | ---: |"]
    for r in rows:
        _, interp, conservative = verdict["per_set"][r.name]
        cells = [f"{_pct(p.mean)} / {p.measured_power_w * 1e3:.3g} / {rel[0]:.2f}"
                 for p, rel in zip(r.points, r.relative())]
        lines.append(f"| {r.name} | {r.test_rows} | " + " | ".join(cells)
                     + f" | {_pct(interp)} / {_pct(conservative)} | {r.seconds:.0f} |")
    lines += ["", "Averaged front (mean over the sets of the per-set figures):", "",
              "| alpha | relative power | relative accuracy % | printed accuracy % | measured power mW | "
              "predicted / measured power | training s, whole sweep (mean) |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for f in front:
        lines.append(f"| {f['alpha']:g} | {f['rel_power']:.3f} | {_pct(f['rel_accuracy'])} | {_pct(f['accuracy'])} | "
                     f"{f['power_w'] * 1e3:.3g} | {f['predicted_ratio']:.3f} | {f['train_s']:.0f} |")
    scope = "" if full else f" (PARTIAL: {n} of {len(SETS)} sets; no verdict on the issue's goal, which is over all 13)"
    reached = verdict["reached"]
    lines += ["", f"![printed accuracy against measured supply power, per set]({plots[0].name})", "",
              f"![accuracy and power relative to the power-blind design]({plots[1].name})", "",
              f"Goal{scope}: at least {GOAL_ACCURACY * 100:g} % of the power-blind accuracy at {GOAL_POWER * 100:g} % "
              f"of its power, averaged over the sets: mean relative accuracy at {GOAL_POWER * 100:g} % power "
              f"{_pct(verdict['mean'])} % over the {reached} of {n} sets whose front reaches {GOAL_POWER * 100:g} % "
              f"(without interpolation: {_pct(verdict['conservative'])} %): "
              f"**{'met' if verdict['met'] else 'NOT met'}**"
              + ("" if reached == n else f" ({n - reached} set{'s' * (n - reached != 1)} with no design at or below "
                                         f"{GOAL_POWER * 100:g} % power)") + ".", "",
              f"Printed accuracy (%) and measured supply power (mW) per sample, K0..K{args.samples - 1}:", "",
              "| set | alpha | printed accuracy | supply power | software % | predicted % | predicted mW |",
              "| --- | ---: | --- | --- | ---: | ---: | ---: |"]
    for r in rows:
        for alpha, p in zip(r.alphas, r.points):
            lines.append(f"| {r.name} | {alpha:g} | {', '.join(_pct(x) for x in p.printed)} | "
                         f"{', '.join(f'{w * 1e3:.3g}' for w in p.power_w)} | {_pct(p.software)} | "
                         f"{_pct(p.predicted_mean)} | {p.predicted_power_w * 1e3:.3g} |")
    lines.append(f"<!-- /task:{name} -->")
    return "\n".join(lines) + "\n"


def plot_sets(rows: list[SetFront], path: Path, eps: float) -> None:
    """A panel per set: printed accuracy (%) against measured supply power (mW), every sample and the mean per
    alpha (labelled)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(rows))
    nrows = int(np.ceil(len(rows) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(max(3.6 * cols, 5.0) + 0.6, 3.0 * nrows + 1.0), dpi=110,
                             squeeze=False)
    for ax, r in zip(axes.flat, rows):
        for k, p in enumerate(r.points):
            ax.plot(np.array(p.power_w) * 1e3, np.array(p.printed) * 100, ".", color="0.6", markersize=5,
                    label="printed sample" if k == 0 else None)
        xs = [p.measured_power_w * 1e3 for p in r.points]
        ys = [p.mean * 100 for p in r.points]
        ax.plot(xs, ys, "-o", color="C0", linewidth=1.5, markersize=4, label="mean per design (labels: alpha)")
        for alpha, x, y in zip(r.alphas, xs, ys):
            ax.annotate(f"{alpha:g}", (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
        ax.set_title(r.name, fontsize=9)
        ax.set_xlabel("measured supply power (mW)", fontsize=8)
        ax.set_ylabel("printed test accuracy (%)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(rows):]:
        ax.set_visible(False)
    axes.flat[0].legend(loc="best", fontsize=7)
    fig.suptitle(f"Power-aware printed designs, eps {eps * 100:g} %: accuracy against power, measured", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_relative(rows: list[SetFront], front: list[dict], path: Path, eps: float) -> None:
    """Accuracy relative to the power-blind design (%) against power relative to it: every set, the mean per alpha
    and seed 002's published figure; the goal marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=120)
    for r in rows:
        rel = r.relative()
        ax.plot([x * 100 for x, _ in rel], [y * 100 for _, y in rel], "-o", color="0.8", markersize=3,
                linewidth=0.8)
    ax.plot([f["rel_power"] * 100 for f in front], [f["rel_accuracy"] * 100 for f in front], "-o", color="C0",
            linewidth=2, label=f"measured, mean over {len(rows)} set{'s' * (len(rows) != 1)} (labels: alpha)")
    for f in front:
        ax.annotate(f"{f['alpha']:g}", (f["rel_power"] * 100, f["rel_accuracy"] * 100), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.plot([x * 100 for x, _ in PUBLISHED_FRONT], [y * 100 for _, y in PUBLISHED_FRONT], "--s", color="C1",
            markersize=3, linewidth=1, label="published (seed 002, in the model)")
    ax.plot([GOAL_POWER * 100], [GOAL_ACCURACY * 100], "*", color="C3", markersize=12,
            label=f"goal: {GOAL_ACCURACY * 100:g} % at {GOAL_POWER * 100:g} % power")
    ax.axvline(GOAL_POWER * 100, color="C3", linewidth=0.6, alpha=0.5)
    ax.set_xlabel("measured supply power relative to the power-blind design (%)")
    ax.set_ylabel("printed accuracy relative to the power-blind design (%)")
    ax.set_title(f"Printed Pareto front, eps {eps * 100:g} % (grey: each set)", fontsize=10)
    ax.margins(y=0.08)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, ",".join(SETS), "the 13 printed sets")
    parser.add_argument("--alphas", default=",".join(f"{a:g}" for a in ALPHAS),
                        help="comma list of power weights in [0, 1); 0 (the power-blind reference) is always added "
                             "(default: %(default)s)")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the data sets (default: %(default)s)")
    parser.add_argument("--section", default=None, help="name of the results section and of the plots (default: "
                                                        "full with all 13 sets, else partial)")
    args, sets, plan = parse_run_arguments(parser, SETS)
    alphas = sorted({0.0, *parse_list(args.alphas, float)})
    if any(not 0.0 <= a < 1.0 for a in alphas):
        parser.error("every alpha must be in [0, 1)")
    full = set(sets) == set(SETS)
    command = "python benchmarks/printed_pareto.py " + " ".join(
        [f"--sets {','.join(sets)}"] * (not full) + [f"--alphas {','.join(f'{a:g}' for a in alphas)}",
                                                     f"--samples {args.samples}", f"--eps {args.eps:g}",
                                                     f"--process-seed {args.process_seed}"]
        + ["--quick-plan"] * args.quick_plan)
    print(f"{len(sets)} set{'s' * (len(sets) != 1)} x {len(alphas)} alphas ({', '.join(f'{a:g}' for a in alphas)}) "
          f"x {args.samples} printed sample{'s' * (args.samples != 1)}, eps {args.eps:g}, run sim-{args.process_seed}",
          flush=True)
    done, rows, wall = on_one_run(args, plan, sets, lambda name, calibration, work: run_set(
        name, calibration, alphas, args.eps, args.process_seed, args.samples, args.data, work), "labctl-pareto-")
    name = args.section or ("full" if full else "partial")
    front = averaged_front(rows)
    verdict = goal(rows)
    plots = (DOCS / f"printed-pareto-{name}.png", DOCS / f"printed-pareto-front-{name}.png")
    text = section(rows, front, verdict, done, args, name, full, command, wall, plots)
    print(text, flush=True)
    if not args.no_write:
        plot_sets(rows, plots[0], args.eps)
        plot_relative(rows, front, plots[1], args.eps)
        write_task_section(RESULTS, HEAD, text, name)
        print(f"wrote section {name} of {RESULTS} and {plots[0].name}, {plots[1].name}")
    print(f"goal (95 % of the power-blind accuracy at 50 % power, mean over {len(rows)} sets): mean "
          f"{_pct(verdict['mean'])} %: {'met' if verdict['met'] else 'NOT met'}"
          + ("" if full else " (PARTIAL: no verdict on the issue)"))


if __name__ == "__main__":
    main()
