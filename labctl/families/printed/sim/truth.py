"""The simulated sample's ground truth as HDF5: only tests and benchmarks read it (docs/families.md).

Layout::

    /                      attrs: process, eps, rh_ohm_sq, rl_ohm_sq, line_width_bias_um, v_t, mu_c, n, lam
    /components            attrs: every printed value by name (ohm; um for ``.W_um``/``.L_um``)
    /cells/<id>            attrs: kind, group, input, output; datasets v_in, v_out, i_vdd, i_vss, i_in, i_gnd
                           (the isolated cell between ideal +-2 V rails, healthy, -1.5..1.5 V; units V and A)
    /damage                attrs: log (what was overstressed, in order)

A cell's curve here is its own (:func:`.transfer.cell_curve`); on the bench
the shunt, the bleed and the DMM add their small effects, which is what a
characterisation measures.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np

from labctl.families.printed.sim.sample import PrintedSample
from labctl.families.printed.sim.transfer import cell_curve

SWEEP_V = np.linspace(-1.5, 1.5, 301)


def save_truth(path: Path, sample: PrintedSample) -> Path:
    """Write the truth of ``sample`` to ``path`` (HDF5, layout in the module docstring)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    run = sample.run
    with h5py.File(path, "w") as f:
        f.attrs.update({"process": run.process_id, "eps": sample.eps, "rh_ohm_sq": run.rh_ohm_sq,
                        "rl_ohm_sq": run.rl_ohm_sq, "line_width_bias_um": run.line_width_bias_um,
                        **dataclasses.asdict(run.material)})
        f.create_group("components").attrs.update(sample.printed)
        cells = f.create_group("cells")
        for cell in sample.cells.values():
            curve = cell_curve(cell.parts, run.material, SWEEP_V)
            g = cells.create_group(cell.id)
            g.attrs.update({"kind": cell.kind, "group": cell.group, "input": cell.ports.inp,
                            "output": cell.ports.out})
            for name in ("v_in", "v_out", "i_vdd", "i_vss", "i_in", "i_gnd"):
                g.create_dataset(name, data=getattr(curve, name))
        f.create_group("damage").attrs["log"] = "\n".join(sample.damage_log)
    return path
