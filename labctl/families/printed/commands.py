"""Commands only the printed family has: ``labctl export`` (a design to a print job and a SPICE netlist).

A printed circuit is not programmed but printed, so between training and
verification stands the print job (contract section 3), which this command
writes after the printer's own rules (J1-J8) have accepted it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from labctl.commands import add_command

SPICE_ROWS = 20
"""Test rows the SPICE netlist evaluates by default: enough to compare with the model at a glance."""


def register(sub) -> None:
    s = add_command(sub, "export", "Printed: write a trained design as a print job (netlist with component values and "
                                   "geometries, pad map), a component table and a SPICE netlist for ngspice.",
                    "examples:\n  labctl export design.h5 --out job/\n"
                    "  labctl export design.h5 --out job/ --id-code 87 --job-name iris-a0.50\n"
                    "then print it (simulated: labctl sim print job/job.toml --process-seed 7 --seed 0 "
                    "--bench-out printed.toml)\nand verify it: labctl evaluate --bench printed.toml --design design.h5")
    s.add_argument("design", type=Path, help="design file (HDF5) from labctl train --calibration process.h5")
    s.add_argument("--out", type=Path, required=True, help="folder for job.toml, components.csv, pads.csv, design.cir")
    s.add_argument("--id-code", type=int, default=None, metavar="N",
                   help="ID code 25..124 printed into the sample's ID ladder (default: derived from the job name)")
    s.add_argument("--job-name", default=None, help="job name, [A-Za-z0-9._-]{1,64} (default: the folder's name)")
    s.add_argument("--spice-rows", type=int, default=SPICE_ROWS, metavar="N",
                   help=f"test rows the SPICE netlist evaluates (default {SPICE_ROWS}; 0: one operating point at "
                        "0 V inputs)")
    s.set_defaults(handler=export)


def export(args: argparse.Namespace) -> int:
    from labctl.families.printed.design import Design
    from labctl.families.printed.export import export_design
    from labctl.families.printed.verification import test_inputs

    design = Design.read(args.design)
    rows = test_inputs(design)[0][:args.spice_rows] if args.spice_rows > 0 else None
    paths = export_design(design, args.out, id_code=args.id_code, job_name=args.job_name, rows=rows)
    print(f"print job for process {design.process} written to {paths['job']}")
    for name in ("components", "pads", "spice"):
        print(f"  {name:<10} {paths[name]}")
    return 0
