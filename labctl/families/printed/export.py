"""Design -> print job, pad map, component table and SPICE netlist (contract section 3; issue 13).

``design_job`` turns a design's printed values into the job of contract 3.1:
crossbar resistors ``X<l>.<row>.<column>`` (rows p<i>, n<i>, b, nb, g) of
R = 1/g, cells ``ACT.<l>.<j>`` and ``NEG.<l>.<i>`` / ``NEG.<l>.b`` with their
components, geometries drawn with the run's measured R_s (geometry), inputs
on D01.., the bias on D23, class outputs on S01.., hidden ACT outputs as
probes on the next S pads. ``export_design`` validates the job with the
printer's rules (print_job, J1-J8) before it writes anything, then writes
the job, a component table (CSV) and a SPICE netlist (spice).
"""

from __future__ import annotations

import csv
import io
import zlib
from pathlib import Path

import numpy as np

from labctl.files import atomic_write_text
from labctl.toml_files import parse_toml
from labctl.families.printed.design import Design, DesignLayer
from labctl.families.printed.geometry import draw_resistor
from labctl.families.printed.job_records import (CELL_EGTS, CELL_RESISTORS, CrossbarResistor, EgtGeometry, JobCell,
                                                 PadAssignment, PrintJob)
from labctl.families.printed.print_job import job_toml, validate_document, write_job
from labctl.families.printed.printable import CELL_COMPONENTS, COMPONENT_RANGES, G_MAX_S, G_MIN_S
from labctl.families.printed.spice import spice_netlist


def positive_line(layer: int, index: int) -> str:
    """The positive row net of input ``index`` of ``layer`` (contract 3.1 net names)."""
    return f"x.{index}" if layer == 1 else f"a.{layer - 1}.{index}"


def _row(layer: int, row: int, n_in: int, negated: bool) -> tuple[str, str]:
    """(row tag of the resistor id, row net) of theta row ``row`` (inputs, bias, GND)."""
    if row == n_in + 1:
        return "g", "GND"
    if row == n_in:
        return ("nb", f"n.{layer}.b") if negated else ("b", "bias")
    return (f"n{row}", f"n.{layer}.{row}") if negated else (f"p{row}", positive_line(layer, row))


def _crossbar(design: Design, layer: int, values: DesignLayer) -> list[CrossbarResistor]:
    out = []
    n_in = values.theta.shape[0] - 2
    for col in range(values.theta.shape[1]):
        for row in range(n_in + 2):
            g = float(values.g_s[row, col])
            if g <= 0:
                continue
            tag, net = _row(layer, row, n_in, bool(values.negated[row, col]))
            item = f"resistor X{layer}.{tag}.{col}"
            r = 1.0 / g
            bounds = (1 / G_MAX_S, 1 / G_MIN_S) if 1 / G_MAX_S <= r <= 1 / G_MIN_S else None
            geo = draw_resistor(r, "RH", design.rh_ohm_sq, bounds=bounds, item=item)
            out.append(CrossbarResistor(f"X{layer}.{tag}.{col}", net, f"z.{layer}.{col}", geo))
    return out


def _cell(design: Design, kind: str, cell_id: str, net_in: str, net_out: str, components: np.ndarray) -> JobCell:
    values = dict(zip(CELL_COMPONENTS[kind], (float(v) for v in components)))
    resistors = {}
    for name in CELL_RESISTORS[kind]:
        rng = COMPONENT_RANGES[kind][name]
        r_s = design.rh_ohm_sq if rng.layer == "RH" else design.rl_ohm_sq
        bounds = (rng.low, rng.high) if rng.contains(values[name]) else None   # else rule J5 names it
        resistors[name] = draw_resistor(values[name], rng.layer, r_s, bounds=bounds, item=f"cell {cell_id} {name}")
    egts = {key: EgtGeometry(int(round(values[w])), int(round(values[l]))) for key, (w, l) in CELL_EGTS[kind].items()}
    return JobCell(cell_id, kind, net_in, net_out, resistors, egts)


def _cells(design: Design, layer: int, values: DesignLayer) -> list[JobCell]:
    n_in = values.theta.shape[0] - 2
    cells = [_cell(design, "ACT", f"ACT.{layer}.{j}", f"z.{layer}.{j}", f"a.{layer}.{j}", comps)
             for j, comps in enumerate(values.act_components)]
    for i in np.flatnonzero(values.neg_present):
        tag, net_in = ("b", "bias") if i == n_in else (str(i), positive_line(layer, int(i)))
        cells.append(_cell(design, "NEG", f"NEG.{layer}.{tag}", net_in, f"n.{layer}.{tag}",
                           values.neg_components[i]))
    return cells


def _pads(design: Design, with_probes: bool) -> tuple[tuple[PadAssignment, ...], tuple[str, ...]]:
    """Inputs D01.., bias D23, class outputs S01.., hidden ACT outputs as probes after them (2.1, 3.1)."""
    n_layers = len(design.layers) - 1
    classes = tuple(f"a.{n_layers}.{j}" for j in range(design.layers[-1]))
    pads = [PadAssignment(f"D{i + 1:02d}", f"x.{i}", "input") for i in range(design.layers[0])]
    pads.append(PadAssignment("D23", "bias", "bias"))
    pads += [PadAssignment(f"S{j + 1:02d}", net, "output") for j, net in enumerate(classes)]
    if with_probes:
        hidden = [f"a.{l}.{j}" for l in range(1, n_layers) for j in range(design.layers[l])]
        start = len(classes) + 1
        pads += [PadAssignment(f"S{start + k:02d}", net, "probe") for k, net in enumerate(hidden)
                 if start + k <= 44]
    pads += [PadAssignment("VDD01", "VDD", "vdd"), PadAssignment("VSS01", "VSS", "vss")]
    return tuple(pads), classes


def default_id_code(job_name: str) -> int:
    """A job's ID code (25 to 124, contract 2.2) from its name, stable from run to run."""
    return 25 + zlib.crc32(job_name.encode()) % 100


def design_job(design: Design, job_name: str, *, id_code: int | None = None, with_probes: bool = True) -> PrintJob:
    """The print job of ``design`` (records only; ``export_design`` validates and writes it)."""
    resistors, cells = [], []
    for layer, values in enumerate(design.layer_values, start=1):
        resistors += _crossbar(design, layer, values)
        cells += _cells(design, layer, values)
    pads, classes = _pads(design, with_probes)
    return PrintJob(process=design.process, job=job_name,
                    id_code=default_id_code(job_name) if id_code is None else id_code, layers=design.layers,
                    rh_ohm_sq=design.rh_ohm_sq, rl_ohm_sq=design.rl_ohm_sq, pads=pads, classes=classes,
                    resistors=tuple(resistors), cells=tuple(cells))


def component_table(job: PrintJob) -> str:
    """CSV: one row per printed component with its value, unit, layer, geometry and nets."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["item", "component", "layer", "value", "unit", "W_um", "L_um", "net_a", "net_b"])
    for r in job.resistors:
        g = r.geometry
        writer.writerow([r.id, "R", g.layer, repr(g.r_ohm), "ohm", g.w_um, g.l_um, r.a, r.b])
    for c in job.cells:
        for name, g in c.resistors.items():
            writer.writerow([c.id, name, g.layer, repr(g.r_ohm), "ohm", g.w_um, g.l_um, c.net_in, c.net_out])
        for name, t in c.egts.items():
            writer.writerow([c.id, name, "EGT", "", "", t.w_um, t.l_um, c.net_in, c.net_out])
    return buffer.getvalue()


def export_design(design: Design, out_dir: str | Path, *, id_code: int | None = None, job_name: str | None = None,
                  rows: np.ndarray | None = None) -> dict[str, Path]:
    """Write ``job.toml`` (validated first), ``components.csv``, ``pads.csv`` and ``design.cir`` into ``out_dir``.

    ``rows``: input voltages (n, inputs) the SPICE netlist evaluates (an operating point each); without
    them it solves the operating point at all inputs 0 V. Returns name -> path.
    """
    out = Path(out_dir)
    name = job_name or _job_name(out.name or design.process)
    job = design_job(design, name, id_code=id_code)
    where = str(out / "job.toml")
    validate_document(parse_toml(job_toml(job.to_document()), where), where, design.process)  # before any file
    out.mkdir(parents=True, exist_ok=True)
    paths = {"job": write_job(job, out / "job.toml", process=design.process)}
    paths["components"] = atomic_write_text(out / "components.csv", component_table(job))
    pad_lines = ["pad,net,role"] + [f"{p.pad},{p.net},{p.role}" for p in job.pads]
    paths["pads"] = atomic_write_text(out / "pads.csv", "\n".join(pad_lines) + "\n")
    paths["spice"] = atomic_write_text(out / "design.cir", spice_netlist(design, rows))
    return paths


def _job_name(text: str) -> str:
    """A job name of [A-Za-z0-9._-]{1,64} (contract 3.1) from a folder name."""
    cleaned = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in text)[:64]
    return cleaned or "design"
