"""What ``labctl sim serve`` and ``labctl sim print`` start for the printed family (its simulator entry).

The generic commands import this module by name (``PrintedFamily.simulator``,
docs/families.md) only when a simulated bench is asked for; no pipeline
module imports it.

- ``sim serve --part PNC-TS --seed S [--variation EPS]``: a PNC-TS rev A
  sample printed in run ``sim-S`` (contract 2.3, 3.3);
- ``sim print JOB --process-seed S --seed K``: sample ``K`` of a print job
  printed in run ``sim-S`` (3.3: the job's ``process`` must be that run).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from labctl.errors import ConfigError
from labctl.families.printed.sim.bench import SimulatedPrintedBench
from labctl.families.printed.sim.process import draw_run
from labctl.families.printed.sim.served import SampleFile, ServedPrintedBench
from labctl.families.printed.sim.ts_layout import LAYOUT_NAME, layout_toml
from labctl.families.printed.sim.ts_sample import build_ts_sample

PARTS = ("PNC-TS",)
DEFAULT_VARIATION = 0.10
"""eps of a simulated run (contract 1.6: 5 to 10 % typical)."""
LAYOUT_FILE = "pnc-ts-a.toml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The printed family's own ``sim serve`` options."""
    parser.add_argument("--variation", type=float, default=DEFAULT_VARIATION, metavar="EPS",
                        help="printed family: per-component variation eps of the run, a fraction "
                             f"(contract 1.6; default {DEFAULT_VARIATION})")


def serve_options(args: argparse.Namespace) -> dict:
    """The values of the printed family's ``sim serve`` options, as keywords of :func:`start`."""
    return {"variation": args.variation}


def start(part: str, seed: int, *, realtime: bool = False, served: bool = True, variation: float = DEFAULT_VARIATION,
          open_pads: tuple[str, ...] = (), **_) -> ServedPrintedBench:
    """A PNC-TS rev A sample (sample 0) printed in run ``sim-<seed>``; ``open_pads``: needles left up (6.2)."""
    if part != "PNC-TS":
        raise ConfigError(f"the printed simulator serves PNC-TS; a printed network comes from a print job "
                          f"(labctl sim print JOB --process-seed S --seed K), not --part {part}")
    run = draw_run(seed)
    sample = build_ts_sample(run, variation, seed=0, open_pads=open_pads)
    sample_id = f"{run.process_id}/{LAYOUT_NAME}/S0"
    file = SampleFile("test-structures", LAYOUT_FILE, layout_toml(run.process_id, sample_id), run.process_id,
                      sample_id)
    bench = SimulatedPrintedBench(sample, seed, realtime=realtime, served=served)
    return ServedPrintedBench(bench, file, f"simulated PNC-TS {sample_id} (eps {variation:g})")


def start_twin(*args, **kwargs) -> ServedPrintedBench:
    raise ConfigError("the printed family has no digital twin yet")


def print_sample(job_path: str | Path, process_seed: int, sample_seed: int, *, variation: float = DEFAULT_VARIATION,
                 realtime: bool = False, served: bool = True, open_pads: tuple[str, ...] = ()) -> ServedPrintedBench:
    """Sample ``K<sample_seed>`` of the job in ``job_path`` printed in run ``sim-<process_seed>`` (3.3)."""
    from labctl.families.printed.print_job import read_job
    from labctl.families.printed.sim.network import build_network_sample

    run = draw_run(process_seed)
    job = read_job(job_path, process=run.process_id)
    sample = build_network_sample(job, run, variation, sample_seed, open_pads=open_pads)
    sample_id = f"{run.process_id}/{job.job}/K{sample_seed}"
    file = SampleFile("network", Path(job_path).name, Path(job_path).read_text(encoding="utf-8"), run.process_id,
                      sample_id)
    bench = SimulatedPrintedBench(sample, process_seed * 1009 + sample_seed, realtime=realtime, served=served)
    return ServedPrintedBench(bench, file, f"simulated network {sample_id} (eps {variation:g})")


def after_demo(result, run_dir: Path, seed: int, progress=None) -> None:
    """``labctl demo``: print each design the recipe trained in run ``sim-<seed>`` and verify it (module demo)."""
    from labctl.families.printed.sim.demo import print_and_verify

    print_and_verify(result, run_dir, seed, print_sample, progress=progress)


def add_sim_commands(simsub) -> None:
    """``labctl sim print``: print a job in a simulated run and serve the sample until Ctrl-C."""
    p = simsub.add_parser("print", help="print a job (simulated) and serve the printed network until interrupted",
                          description="Print a print job in the simulated run sim-<process-seed> and serve the "
                                      "sample on a simulated bench (loopback TCP) until Ctrl-C.",
                          epilog="example:\n  labctl sim print job/job.toml --process-seed 7 --seed 0 "
                                 "--bench-out printed.toml", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("job", type=Path, help="print job (TOML, contract 3.1)")
    p.add_argument("--process-seed", type=int, required=True, help="the run sim-<S> the job is printed in")
    p.add_argument("--seed", type=int, default=0, help="which sample of the job (K<seed>)")
    p.add_argument("--variation", type=float, default=DEFAULT_VARIATION, metavar="EPS",
                   help=f"per-component variation eps, a fraction (default {DEFAULT_VARIATION})")
    p.add_argument("--bench-out", type=Path, default=Path("printed.toml"), help="where to write the bench file")
    p.add_argument("--truth-out", type=Path, default=None, help="also write the sample's truth (tests only)")
    p.add_argument("--realtime", action="store_true", help="wait out integration times (default: virtual clock)")
    p.set_defaults(handler=_serve_print)


def _serve_print(args: argparse.Namespace) -> int:
    from labctl.commands.simulation import serve_until_interrupted

    sim = print_sample(args.job, args.process_seed, args.seed, variation=args.variation, realtime=args.realtime)
    return serve_until_interrupted(sim, args.bench_out, args.truth_out)
