"""The printed loop the printed-circuit benchmarks share (issue 13): characterise a print run, print and verify designs.

A lab's loop for printed circuits, run through the real driver stack (bench
files, SCPI, the bench's safety checks) on the simulator with a purely virtual
clock (``served=False``: host waits are charged to the clock, so a run repeats
bit for bit):

- :func:`characterise_run`: the run's PNC-TS test-structure sample swept and
  fitted once (``labctl characterise``) into a process calibration;
- :func:`train_and_print`: a design trained (``labctl train``), exported as
  ``labctl export`` does, ``n`` samples of its print job printed in the same
  run (sample seeds 0..n-1, ``labctl sim print``) and each verified as
  ``labctl evaluate --design`` does (the test split classified on the sample,
  supply power measured), recorded as a :class:`DesignResult`.

Used by ``printed_tables.py``, ``printed_pareto.py`` and ``printed_unseen.py``;
the last two share their command-line options here too.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labctl.families.printed import process_calibration
from labctl.families.printed.characterisation import SweepPlan, characterise_process
from labctl.families.printed.commands import SPICE_ROWS
from labctl.families.printed.design import Design
from labctl.families.printed.export import export_design
from labctl.families.printed.process_calibration import ProcessCalibration
from labctl.families.printed.sim.serve import print_sample, start
from labctl.families.printed.training import train_design
from labctl.families.printed.verification import Verification, test_inputs, verify_printed

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DATA = ROOT.parent / "shared" / "data" / "printed"
SETS = ("acuteinflammation", "balancescale", "breastcancerwisc", "cardiotocography3clases", "energyy1", "energyy2",
        "iris", "mammographic", "pendigits", "seeds", "tictactoe", "vertebralcolumn2clases", "vertebralcolumn3clases")
"""The 13 data sets of the printed-circuit papers (``../shared/data/printed/<set>.csv``, fixed splits)."""
HIDDEN = 3
"""Hidden neurons: the papers' topology [inputs, 3, classes]."""


@dataclass(frozen=True)
class Characterised:
    """A print run's PNC-TS sample characterised once: the calibration and what it took."""

    calibration: ProcessCalibration
    path: Path
    process: str
    sample: str
    measured_eps: float
    measured_eps_se: float
    structures: int
    wall_s: float
    bench_s: float


def characterise_run(eps: float, process_seed: int, plan: SweepPlan, work: Path) -> Characterised:
    """Characterise run ``sim-<process_seed>`` (variation ``eps``) from its PNC-TS sample into ``work/process.h5``."""
    started = time.perf_counter()
    with start("PNC-TS", process_seed, variation=eps, served=False) as ts:
        bench_file = ts.write_bench_file(work / "ts" / "ts.toml")
        outcome = characterise_process(bench_file, work / "process.h5", plan=plan, pause=ts.clock.advance)
        bench_s = ts.bench_seconds()
    if outcome.calibration is None:
        raise SystemExit(f"eps {eps:g}: the characterisation produced no process calibration")
    wall_s = time.perf_counter() - started
    print(f"eps {eps:g}: characterised {outcome.sample}: {outcome.structures_fitted} structures fitted, measured eps "
          f"{outcome.eps:.3f} +- {outcome.eps_se:.3f}, {wall_s:.0f} s wall ({bench_s:.0f} s bench)", flush=True)
    path = work / "process.h5"
    return Characterised(process_calibration.read(path), path, outcome.process, outcome.sample, outcome.eps,
                         outcome.eps_se, outcome.structures_fitted, wall_s, bench_s)


@dataclass
class DesignResult:
    """One trained design: what it predicted, and what its ``samples`` printed samples measured (fractions; W)."""

    name: str
    software: float
    predicted_mean: float
    predicted_q05: float
    predicted_q95: float
    predicted_power_w: float
    train_s: float
    printed: list[float] = field(default_factory=list)
    power_w: list[float] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, name: str, design: Design) -> DesignResult:
        p = design.prediction
        return cls(name, p.software_accuracy, p.test_mean, p.test_q05, p.test_q95, p.power_w,
                   design.provenance.train_seconds)

    def record(self, verified: list[Verification]) -> None:
        for v in verified:
            self.printed.append(v.printed_accuracy)
            self.samples.append(v.sample)
            if v.supply_power_w is not None:
                self.power_w.append(v.supply_power_w)

    @property
    def mean(self) -> float:
        return float(np.mean(self.printed))

    @property
    def sd(self) -> float:
        return float(np.std(self.printed, ddof=1)) if len(self.printed) > 1 else 0.0

    @property
    def inside(self) -> bool:
        """The printed mean inside the design's predicted 90 % interval."""
        return self.predicted_q05 <= self.mean <= self.predicted_q95

    @property
    def measured_power_w(self) -> float:
        return float(np.mean(self.power_w)) if self.power_w else float("nan")


def train_and_print(name: str, calibration: ProcessCalibration, data, work: Path, job_name: str, eps: float,
                    process_seed: int, samples: int, prefix: str, **train_options) -> DesignResult:
    """Train a design [inputs, HIDDEN, classes] (``train_design`` keywords: power_weight, nominal, ...), print and
    verify ``samples`` samples of it; progress lines start with ``prefix``."""
    return print_design(name, train_design(calibration, data, hidden=HIDDEN, **train_options), work, job_name, eps,
                        process_seed, samples, prefix)


def print_design(name: str, design: Design, work: Path, job_name: str, eps: float, process_seed: int, samples: int,
                 prefix: str) -> DesignResult:
    """Print and verify ``samples`` samples of a trained design; its progress line starts with ``prefix``."""
    result = DesignResult.of(name, design)
    print(f"{prefix}{describe_design(design)}", flush=True)
    result.record(print_and_verify(design, work, job_name, eps, process_seed, samples))
    return result


def on_one_run(args: argparse.Namespace, plan: SweepPlan, sets: list[str], run_set, prefix: str
               ) -> tuple[Characterised, list, float]:
    """Characterise run ``sim-<args.process_seed>`` at ``args.eps`` once, then ``run_set(name, calibration, work)``
    for every set, in a temporary folder: (the characterisation, the sets' results, wall seconds)."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = Path(tmp)
        done = characterise_run(args.eps, args.process_seed, plan, work)
        rows = [run_set(name, done.calibration, work / "sets") for name in sets]
    return done, rows, time.perf_counter() - started


def describe_design(design: Design) -> str:
    """One progress line for a trained design: training time, software and predicted accuracy, predicted power."""
    p = design.prediction
    return (f"trained {design.provenance.train_seconds:.0f} s, software {p.software_accuracy:.1%}, predicted "
            f"{p.test_mean:.1%} ({p.test_q05:.1%} to {p.test_q95:.1%}), {p.power_w * 1e3:.3g} mW")


def print_and_verify(design: Design, work: Path, job_name: str, eps: float, process_seed: int, samples: int,
                     indent: str = "      ") -> list[Verification]:
    """Write the design to ``work/design.h5``, export its print job, print ``samples`` samples (seeds 0..n-1) in
    run ``sim-<process_seed>`` at variation ``eps`` and verify each; one progress line per sample."""
    work.mkdir(parents=True, exist_ok=True)
    design_path = design.write(work / "design.h5")
    paths = export_design(design, work / "job", job_name=job_name[:64],
                          rows=test_inputs(design)[0][:SPICE_ROWS])  # as `labctl export` does
    verified = []
    for k in range(samples):
        with print_sample(paths["job"], process_seed, k, variation=eps, served=False) as printed:
            bench_file = printed.write_bench_file(work / f"K{k}" / "printed.toml")
            v = verify_printed(bench_file, design_path, bench_options={"pause": printed.clock.advance})
        verified.append(v)
        power = "" if v.supply_power_w is None else f", {v.supply_power_w * 1e3:.3g} mW"
        print(f"{indent}{v.sample}: {v.printed_accuracy:.1%}{power}", flush=True)
    return verified


def parse_list(text: str, cast=str) -> list:
    """A comma list of values (empty items ignored)."""
    return [cast(item.strip()) for item in text.split(",") if item.strip()]


def add_run_arguments(parser: argparse.ArgumentParser, sets: str, known: str) -> None:
    """The options of a benchmark on one simulated print run: sets, samples, eps, process seed, plan, no-write."""
    parser.add_argument("--sets", default=sets, help=f"comma list of data sets, of {known} (default: %(default)s)")
    parser.add_argument("--samples", type=int, default=3, help="printed samples per design (sample seeds 0..n-1; "
                                                               "default 3)")
    parser.add_argument("--eps", type=float, default=0.10, help="the run's variation eps, a fraction (default 0.10)")
    parser.add_argument("--process-seed", type=int, default=7, help="print run sim-<seed> (test structures and every "
                                                                    "printed sample; default 7)")
    parser.add_argument("--quick-plan", action="store_true", help="characterise with SweepPlan.quick() instead of "
                                                                  "the reference plan")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")


def parse_run_arguments(parser: argparse.ArgumentParser, known) -> tuple[argparse.Namespace, list[str], SweepPlan]:
    """Parse and check the options of :func:`add_run_arguments`: (args with ``plan_name``, sets, the plan)."""
    args = parser.parse_args()
    sets = parse_list(args.sets)
    unknown = [s for s in sets if s not in known]
    if unknown:
        parser.error(f"unknown sets: {', '.join(unknown)} (known: {', '.join(known)})")
    if args.samples < 1:
        parser.error("--samples must be at least 1")
    plan, args.plan_name = (SweepPlan.quick(), "quick") if args.quick_plan else (SweepPlan.reference(), "reference")
    return args, sets, plan
