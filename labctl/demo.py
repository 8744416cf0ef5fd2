"""`labctl demo`: the whole workflow on a simulated device, for a newcomer, in one command.

It starts a simulated bench of the part in-process on loopback and runs the
part's shipped recipe through the recipe runner, exactly as ``labctl run``
would on hardware (characterise, train tailored and naive weights, program,
evaluate on chip), so its ``session.h5`` has every step's window and replays
like any other run. A family whose devices are made rather than programmed
(printed: the recipe ends with designs) finishes in its simulator's
``after_demo``: each design printed and verified on the simulated sample.
Everything goes into one run folder, named at the start and at the end.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from labctl import families
from labctl.families import simulator_of
from labctl.progress import console, progress_bars
from labctl.recipes import part_recipe, run_recorded
from labctl.run_table import accuracy_table


def run_demo(part: str = "CMNA-777", seed: int = 1, dataset: str | None = None, out_dir: Path | None = None,
             show_progress: bool = True) -> dict:
    loaded = part_recipe(part, dataset)
    out_dir = Path(out_dir or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}")
    out_dir.mkdir(parents=True, exist_ok=True)
    datasets = sorted({s.options.dataset for s in loaded.train_steps().values()})
    console.print(f"[bold]labctl demo[/]: simulated {part} (seed {seed}), data set {', '.join(datasets)}; "
                  f"recipe {loaded.name!r}; run folder {out_dir}")
    # a purely virtual clock, so the demo's figures reproduce for its seed (docs/results.md)
    simulator = simulator_of(families.for_part(part))
    with simulator.start(part, seed, served=False) as sim:
        bench_file = sim.write_bench_file(out_dir / "bench.toml")
        with progress_bars(show_progress) as progress:
            result = run_recorded(loaded, bench_file, out_dir, progress=progress)
            after = getattr(simulator, "after_demo", None)  # e.g. printed: print each design, verify the sample
            if after is not None and result.outcome == "completed":
                after(result, out_dir, seed, progress)
        bench_time_s = sim.bench_seconds()
    summary = result.summary() | {"part": part, "seed": seed, "bench_seconds": bench_time_s}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    console.print(accuracy_table(result, f"{part} seed {seed}: {', '.join(datasets)}"))
    console.print(f"run folder: {out_dir}  ({result.wall_s:.0f} s wall, {bench_time_s:.0f} s of bench time; "
                  f"replay with `labctl replay {out_dir}`)")
    return summary

