"""Rules J2 to J8 of the print job (contract 3.2): a job is printed whole or refused.

Checked in rule order on the typed records (J1, the document's form, is
``job_parse``'s); the first broken rule raises ConfigError in one line:
``<file>: <item>: <what> (rule Jn)``, e.g. ``job.toml: resistor X1.p3.1:
R_ohm 5.0e3 is outside the crossbar range 1.0e4 to 1.0e7 ohm (rule J4)``.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import NoReturn

from labctl.errors import ConfigError
from labctl.families.printed.job_records import CrossbarResistor, JobCell, PrintJob, ResistorGeometry
from labctl.families.printed.printable import (COMPONENT_RANGES, G_MAX_S, G_MIN_S, INKS, R_TOLERANCE,
                                               neg_constraints_hold)

MAX_INPUTS, MAX_SENSE, MAX_CELLS = 22, 44, 64
ID_CODES = (25, 124)
_ROW = re.compile(r"(x|a|n)\.(\d+)(?:\.(\d+|b))?")


def refuse(where: str, item: str, what: str, rule: str) -> NoReturn:
    """Raise the one-line refusal of contract 3.2."""
    raise ConfigError(f"{where}: {item}: {what} (rule {rule})")


def sci(x: float) -> str:
    """1.0e4 style (the contract's examples): one decimal in the mantissa, no exponent padding."""
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def check_j2(where: str, job: PrintJob, process: str | None) -> None:
    """J2: the job is for the run it is submitted to; its inks within +-20 % of nominal (1.2)."""
    if process is not None and job.process != process:
        refuse(where, "process", f"{job.process!r} is not the run it is submitted to ({process!r})", "J2")
    for layer in ("RH", "RL"):
        nominal, value = INKS[layer].nominal_ohm_sq, job.ink_ohm_sq(layer)
        if abs(value / nominal - 1) > INKS[layer].ink_tolerance + 1e-12:
            refuse(where, "inks", f"{layer}_ohm_sq {value:g} is outside +-20 % of nominal {nominal:g}", "J2")


def check_geometry(where: str, item: str, geo: ResistorGeometry, job: PrintJob) -> None:
    """J3 for one resistor: layer, W, L, L/W within 1.2, on the 1 um grid, R within 0.5 % of R_s L / W."""
    if geo.layer not in INKS:
        refuse(where, item, f"layer {geo.layer!r} is not RH or RL", "J3")
    rules = INKS[geo.layer]
    for key, value, (low, high) in (("W_um", geo.w_um, rules.w_um), ("L_um", geo.l_um, rules.l_um)):
        if value != round(value):
            refuse(where, item, f"{key} {value:g} is not on the 1 um grid", "J3")
        if not low <= value <= high:
            refuse(where, item, f"{key} {value:g} is outside {low:g} to {high:g} um on {geo.layer}", "J3")
    aspect = geo.l_um / geo.w_um
    if not rules.aspect[0] <= aspect <= rules.aspect[1]:
        refuse(where, item, f"aspect L/W {aspect:g} is outside {rules.aspect[0]:g} to {rules.aspect[1]:g}", "J3")
    drawn = job.ink_ohm_sq(geo.layer) * geo.l_um / geo.w_um
    if abs(geo.r_ohm / drawn - 1) > R_TOLERANCE:
        refuse(where, item, f"R_ohm {geo.r_ohm:g} is not within 0.5 % of R_s L / W = {drawn:g}", "J3")


def check_j3(where: str, job: PrintJob) -> None:
    for r in job.resistors:
        check_geometry(where, f"resistor {r.id}", r.geometry, job)
    for cell in job.cells:
        for name, geo in cell.resistors.items():
            check_geometry(where, f"cell {cell.id} {name}", geo, job)


def row_nets(job: PrintJob, layer: int) -> set[str]:
    """The row nets of crossbar ``layer`` (1-based; contract 1.3)."""
    n_in = job.layers[layer - 1]
    positive = [f"x.{i}" if layer == 1 else f"a.{layer - 1}.{i}" for i in range(n_in)]
    negated = [f"n.{layer}.{i}" for i in range(n_in)]
    return set(positive) | set(negated) | {"bias", f"n.{layer}.b", "GND"}


def column_nodes(job: PrintJob) -> list[tuple[int, str]]:
    """(layer, z net) of every column node."""
    return [(l, f"z.{l}.{j}") for l in range(1, len(job.layers)) for j in range(job.layers[l])]


def _line_of(row: str) -> str:
    """The input a row belongs to: n.1.2 and x.2 (layer 1) share 'x.2'; n.2.1 and a.1.1 share 'a.1.1'."""
    m = _ROW.fullmatch(row)
    if m and m.group(1) == "n":
        layer, index = int(m.group(2)), m.group(3)
        if index == "b":
            return "bias"
        return f"x.{index}" if layer == 1 else f"a.{layer - 1}.{index}"
    return row


def check_j4(where: str, job: PrintJob) -> None:
    """J4: crossbar resistors on RH within 10 kohm to 10 Mohm, row of the column's layer to a column node,
    one per row and column, never both lines of one input on one column."""
    columns = dict((z, l) for l, z in column_nodes(job))
    seen: Counter = Counter()
    lines: set[tuple[str, str]] = set()
    low, high = 1 / G_MAX_S, 1 / G_MIN_S
    for r in job.resistors:
        item = f"resistor {r.id}"
        if r.geometry.layer != "RH":
            refuse(where, item, f"layer {r.geometry.layer} is not RH (crossbar)", "J4")
        if not low * (1 - 1e-9) <= r.geometry.r_ohm <= high * (1 + 1e-9):
            refuse(where, item, f"R_ohm {sci(r.geometry.r_ohm)} is outside the crossbar range {sci(low)} "
                                f"to {sci(high)} ohm", "J4")
        if r.b not in columns:
            refuse(where, item, f"b {r.b!r} is not a column node", "J4")
        if r.a not in row_nets(job, columns[r.b]):
            refuse(where, item, f"a {r.a!r} is not a row of layer {columns[r.b]}", "J4")
        seen[(r.a, r.b)] += 1
        if seen[(r.a, r.b)] > 1:
            refuse(where, item, f"a second resistor from {r.a} to {r.b}", "J4")
        if (_line_of(r.a), r.b) in lines:
            refuse(where, item, f"both the positive and the negated line of {_line_of(r.a)} reach {r.b}", "J4")
        lines.add((_line_of(r.a), r.b))


def check_j5(where: str, job: PrintJob) -> None:
    """J5: every cell component within its printable range (1.4, 1.5) and on its layer; NEG constraints."""
    for cell in job.cells:
        ranges = COMPONENT_RANGES[cell.type]
        for name, geo in cell.resistors.items():
            if geo.layer != ranges[name].layer:
                refuse(where, f"cell {cell.id} {name}", f"layer {geo.layer} is not {ranges[name].layer}", "J5")
        for name, value in cell.component_values().items():
            rng = ranges[name]
            if not rng.contains(value):
                refuse(where, f"cell {cell.id}", f"{name} {value:g} {rng.unit} is outside the printable range "
                                                 f"{rng.low:g} to {rng.high:g} {rng.unit}", "J5")
        if cell.type == "NEG":
            broken = neg_constraints_hold(cell.component_values())
            if broken:
                refuse(where, f"cell {cell.id}", f"breaks the NEG constraint {broken}", "J5")


def _check_cell_nets(where: str, job: PrintJob, cell: JobCell, columns: dict[str, int]) -> None:
    item = f"cell {cell.id}"
    if cell.type == "ACT":
        if cell.net_in not in columns:
            refuse(where, item, f"in {cell.net_in!r} is not a column node", "J6")
        expected = "a" + cell.net_in[1:]
        if cell.net_out != expected:
            refuse(where, item, f"out {cell.net_out!r} is not {expected!r}", "J6")
        return
    m = _ROW.fullmatch(cell.net_out)
    if not m or m.group(1) != "n" or m.group(3) is None or not 1 <= int(m.group(2)) < len(job.layers):
        refuse(where, item, f"out {cell.net_out!r} is not a negated line n.<l>.<i> or n.<l>.b", "J6")
    if cell.net_in != _line_of(cell.net_out) or cell.net_in not in row_nets(job, int(m.group(2))):
        refuse(where, item, f"in {cell.net_in!r} is not the positive line of {cell.net_out}", "J6")
    if not any(r.a == cell.net_out for r in job.resistors):
        refuse(where, item, f"its output {cell.net_out} feeds no resistor", "J6")


def check_j6(where: str, job: PrintJob) -> None:
    """J6: >= 2 layers; each column node has >= 1 resistor and exactly one ACT; NEG inputs and outputs;
    no net driven twice, none undriven."""
    if len(job.layers) < 2:
        refuse(where, "layers", f"{list(job.layers)} has fewer than 2 entries", "J6")
    columns = dict((z, l) for l, z in column_nodes(job))
    acts = Counter(c.net_in for c in job.cells if c.type == "ACT")
    for _, z in column_nodes(job):
        if not any(r.b == z for r in job.resistors):
            refuse(where, f"net {z}", "column node has no resistor", "J6")
        if acts[z] != 1:
            refuse(where, f"net {z}", f"column node drives {acts[z]} ACT cells, not exactly one", "J6")
    for cell in job.cells:
        _check_cell_nets(where, job, cell, columns)
    drivers = Counter([p.net for p in job.pads if p.role in ("input", "bias")] + [c.net_out for c in job.cells]
                      + ["GND"])
    for net, count in drivers.items():
        if count > 1:
            refuse(where, f"net {net}", f"driven {count} times", "J6")
    for net in [r.a for r in job.resistors] + [c.net_in for c in job.cells if c.type == "NEG"]:
        if net not in drivers:
            refuse(where, f"net {net}", "is used but undriven (no pad or cell drives it)", "J6")
