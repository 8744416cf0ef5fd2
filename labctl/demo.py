"""`labctl demo`: the whole workflow on a simulated die, for a newcomer, in one command.

It starts a simulated bench in-process on loopback and then runs exactly the
steps a lab engineer runs on hardware, through the same drivers: characterise,
train tailored and naive weights, program, evaluate on chip. Everything goes
into one run folder, named at the start and at the end.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.table import Table

from labctl.progress import console, progress_bars
from labctl.recipes import part_recipe
from labctl.session import SessionRecorder
from labctl.families.cmna.sim.bench import SimulatedBench
from labctl.families.cmna.workflow import program_and_evaluate, run_characterisation, run_training, write_on_chip_record

DEFAULT_DATASET = {"CMNA-777": "iris", "CMNA-L": "mnist"}


def run_demo(part: str = "CMNA-777", seed: int = 1, dataset: str | None = None, out_dir: Path | None = None,
             show_progress: bool = True) -> dict:
    dataset = dataset or DEFAULT_DATASET[part]
    out_dir = Path(out_dir or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}")
    out_dir.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]labctl demo[/]: simulated {part} (seed {seed}), data set {dataset}; run folder {out_dir}")
    started = time.monotonic()
    timings: dict[str, float] = {}
    recorder = SessionRecorder()
    with SimulatedBench(part, seed) as sim:
        bench_file = out_dir / "bench.toml"
        sim.write_bench_file(bench_file)
        recorder.set_identity(sim.die.chip, {name: emu.IDN for name, emu in sim.emulators.items()}, sim.bench_text)
        with progress_bars(show_progress) as progress:
            t = time.monotonic()
            characterisation = run_characterisation(bench_file, out_dir / "die.h5", progress=progress,
                                                    bench_options=recorder.bench_options())
            timings["characterise_s"] = time.monotonic() - t
            t = time.monotonic()
            announce = console.print
            tailored, _ = run_training(out_dir / "die.h5", dataset, out_dir / "weights_tailored.h5",
                                       announce=announce,
                                       progress=lambda e, n, *_: progress("training", e, n))
            naive, _ = run_training(out_dir / "die.h5", dataset, out_dir / "weights_naive.h5", naive=True)
            timings["train_s"] = time.monotonic() - t
            t = time.monotonic()
            # tailored weights are programmed as a lab would: stuck bits retrained around, one in-situ round
            on_chip = {
                name: program_and_evaluate(bench_file, out_dir / f"weights_{name}.h5", evaluate=True,
                                           calibration=out_dir / "die.h5" if name == "tailored" else None,
                                           progress=progress, bench_options=recorder.bench_options())
                for name in ("naive", "tailored")
            }
            records = [path for name, result in on_chip.items() for path in write_on_chip_record(out_dir, name, result)]
            timings["program_and_evaluate_s"] = time.monotonic() - t
        bench_time_s = sim.clock.now()
    summary = {
        "part": part, "seed": seed, "dataset": dataset, "die_serial": tailored.die_serial,
        "software_accuracy": on_chip["tailored"].weights.software_accuracy,
        "naive_on_chip_accuracy": on_chip["naive"].evaluation.on_chip_accuracy,
        "tailored_on_chip_accuracy": on_chip["tailored"].evaluation.on_chip_accuracy,
        "n_test_samples": on_chip["tailored"].evaluation.n_samples,
        "stuck_bits": len(on_chip["tailored"].program.stuck),
        "characterisation": characterisation.summary,
        "wall_seconds": time.monotonic() - started, "bench_seconds": bench_time_s, **timings,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    # the demo runs the steps of the shipped recipe for its part, so `labctl replay` can repeat them
    recipe = part_recipe(part, dataset)
    recorder.write(out_dir / "session.h5", recipe_text=recipe.text, recipe_name=recipe.recipe.name, outcome="completed",
                   files=[out_dir / "die.h5", out_dir / "weights_tailored.h5", out_dir / "weights_naive.h5",
                          *(r.programmed_file for r in on_chip.values() if r.programmed_file is not None), *records])
    table = Table(title=f"{part} seed {seed}: {dataset}, {summary['n_test_samples']} test samples")
    table.add_column("weights")
    table.add_column("accuracy", justify="right")
    table.add_row("software model (tailored)", f"{summary['software_accuracy']:.1%}")
    table.add_row("naive, on chip", f"{summary['naive_on_chip_accuracy']:.1%}")
    table.add_row("tailored, on chip", f"{summary['tailored_on_chip_accuracy']:.1%}")
    console.print(table)
    console.print(f"run folder: {out_dir}  ({summary['wall_seconds']:.0f} s wall, "
                  f"{bench_time_s:.0f} s of bench time)")
    return summary
