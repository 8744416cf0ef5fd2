"""The printed demo's last stage: print every design the recipe trained and verify the printed sample.

A printed circuit cannot be programmed, so a recipe on a PNC-TS bench ends
with designs. On a real bench the designs go to the printer; in the demo the
simulator prints sample K0 of each (in the same run as the test-structure
sample, as contract 1.6 requires) and the design is verified on it exactly as
``labctl export`` then ``labctl evaluate --design`` would: through the
family's own stage operation, the bench file and SCPI on loopback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from labctl.families.printed.design import Design
from labctl.families.printed.export import export_design
from labctl.families.printed.family import FAMILY
from labctl.families.printed.options import EvaluateOptions
from labctl.families.seam import Progress, StepContext
from labctl.recipes import ProgrammedWeights, RunResult

SAMPLE = 0
"""Which printed sample of each job the demo verifies (K0)."""


def print_and_verify(result: RunResult, run_dir: Path, seed: int, print_sample: Callable, *,
                     progress: Progress | None = None) -> None:
    """Export, print (sample K0 in run ``sim-<seed>`` with ``print_sample``, the simulator's printer) and verify
    each trained design; the outcomes go into ``result.on_chip`` (the run's accuracy table and summary) and
    each design's records into ``run_dir``."""
    for name, trained in result.trained.items():
        design = trained.weights if isinstance(trained.weights, Design) else Design.read(trained.path)
        job_dir = run_dir / f"print-{name}"
        paths = export_design(design, job_dir, job_name=f"demo-{name}")
        with print_sample(paths["job"], seed, SAMPLE, served=False) as printed:
            bench_file = printed.write_bench_file(job_dir / "printed.toml")
            context = StepContext(bench_file, progress, bench_options={"pause": printed.clock.advance})
            outcome = FAMILY.program(trained.path, EvaluateOptions(), context, evaluate=True)
        result.on_chip[name] = ProgrammedWeights(name, outcome)
        FAMILY.write_records(run_dir, name, outcome)
