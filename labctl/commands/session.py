"""run, replay, gui: recipes run and recorded, sessions replayed offline, the one-click window."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from labctl.commands import BENCH_HELP, add_command
from labctl.families import demo_parts
from labctl.errors import ConfigError
from labctl.progress import progress_bars

out = Console(highlight=False)


def register(sub) -> None:
    s = add_command(sub, "run", "Run a recipe (characterise, train, program, evaluate) and record the session.",
                    "examples:\n  labctl run recipes/train_and_program.toml --bench bench.toml\n"
                    "  labctl run recipes/iris_cmna777.toml --bench bench.toml --run-dir runs/today")
    s.add_argument("recipe", type=Path, help="recipe file (TOML), e.g. recipes/iris_cmna777.toml")
    s.add_argument("--bench", type=Path, required=True, help=BENCH_HELP)
    s.add_argument("--run-dir", type=Path, default=None,
                   help="run folder (default: the recipe's run_dir, else runs/<recipe>-<time>)")
    s.set_defaults(handler=run)

    s = add_command(sub, "replay", "Replay a recorded session offline against the die's digital twin: "
                                   "re-train, re-evaluate, and show where chip and twin differ.",
                    "examples:\n  labctl replay runs/iris-cmna777-20250101-120000\n"
                    "  labctl replay runs/iris-cmna777-20250101-120000/session.h5")
    s.add_argument("session", type=Path, help="run folder or its session.h5")
    s.set_defaults(handler=replay)

    s = add_command(sub, "gui", "Open the one-click window: bench status, live characterisation, training "
                                "curves, latch map, confusion matrix.",
                    "examples:\n  labctl gui --bench bench.toml\n  labctl gui --simulate CMNA-777 --seed 3")
    s.add_argument("--bench", type=Path, default=None, help=BENCH_HELP)
    s.add_argument("--simulate", choices=demo_parts(), default=None,
                   help="start an embedded simulated device of this part instead of a bench file")
    s.add_argument("--seed", type=int, default=1, help="which simulated die (default 1)")
    s.add_argument("--recipe", type=Path, default=None,
                   help="recipe of the Train and program button (default recipes/train_and_program.toml)")
    s.set_defaults(handler=gui)


def run(args: argparse.Namespace) -> int:
    from labctl.recipes import load_recipe, resolve_run_dir, run_recorded

    loaded = load_recipe(args.recipe)
    run_dir = resolve_run_dir(loaded, args.run_dir)
    out.print(f"[bold]{loaded.name}[/]: run folder {run_dir}")
    with progress_bars(not args.no_progress) as progress:
        result = run_recorded(loaded, args.bench, run_dir, progress=progress)
    from labctl.run_table import accuracy_table

    d = result.description
    table = accuracy_table(result, f"{d.part} {d.serial}: {loaded.name}" if d else loaded.name)
    out.print(table)
    out.print(f"run folder {run_dir} ({result.wall_s:.0f} s); session recorded in {run_dir / 'session.h5'}")
    return 0


def replay(args: argparse.Namespace) -> int:
    from labctl.replay import replay_session

    with progress_bars(not args.no_progress) as progress:
        report = replay_session(args.session, progress=progress)
    out.print(f"[bold]replay[/] of {report.session} ({report.recipe}) against the twin of die {report.serial}")
    weights = Table(title="weights re-trained from the recorded characterisation")
    for column in ("weights", "same codes", "codes differing"):
        weights.add_column(column)
    for w in report.weights:
        weights.add_row(w.name, "yes" if w.same_codes else "[red]NO[/]", f"{w.differing_codes} of {w.total_codes}")
    out.print(weights)
    accuracy = Table(title="on-chip accuracy: recorded chip against the twin")
    for column in ("weights", "samples", "chip", "twin", "same decision", "stuck chip/twin"):
        accuracy.add_column(column, justify="left" if column == "weights" else "right")
    for a in report.accuracy:
        accuracy.add_row(a.name, str(a.n_samples), _pct(a.recorded), _pct(a.twin), _pct(a.agreement),
                         f"{'-' if a.recorded_stuck is None else a.recorded_stuck}/{a.twin_stuck}")
    out.print(accuracy)
    readings = Table(title="recorded readings against the twin (sigma: the expected difference)")
    for column in ("quantity", "n", "recorded", "twin", "rms diff", "sigma", "worst (sigma)"):
        readings.add_column(column, justify="left" if column == "quantity" else "right",
                            no_wrap=column in ("quantity", "worst (sigma)"))
    for c in report.readings:
        flag = "[red]" if c.rms_sigma > 3 else ""
        readings.add_row(c.quantity, str(c.n), f"{c.recorded:.4g} {c.unit}", f"{c.twin:.4g} {c.unit}",
                         f"{c.rms_relative:.1%}", f"{flag}{c.rms_sigma:.1f}", f"{c.worst_sigma:+.1f} {c.worst_at}")
    out.print(readings)
    out.print(f"sigma: {report.sigma_note or 'the expected difference'}; rms above 3 is shown red")
    if not report.reproduced:
        out.print("[red]the re-trained weights differ from the recorded ones[/] (another labctl or torch version?)")
        return 1
    return 0


def gui(args: argparse.Namespace) -> int:
    try:
        from labctl.gui.app import run_app
    except ImportError as exc:
        raise ConfigError(f"the GUI needs PySide6 and pyqtgraph ({exc}): pip install 'labctl[gui]'") from None
    if args.bench is not None and args.simulate is not None:
        raise ConfigError("give either --bench or --simulate, not both")
    return run_app(bench=args.bench, simulate=args.simulate, seed=args.seed, recipe=args.recipe)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
