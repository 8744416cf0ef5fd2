"""SPICE netlist of a design, for ngspice (issue 13; contract 1.3-1.5, 1.7).

The crossbar is resistors; the cells are behavioural voltage sources
(B-sources) with the calibrated tanh transfer at the design's components,
because the cells' transistor-level schematics are not published (contract
1.7). Values are the design's (R = 1/g exactly, the etas the calibration
predicts), so ngspice's operating points equal the model's nominal forward
pass; the drawn geometries (within 0.5 %, print job) are listed as comments.
Like the model, the netlist has no cell output resistance (no loading).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from labctl.errors import ConfigError
from labctl.families.printed.design import Design, DesignLayer
from labctl.families.printed.printable import BIAS_V


def node(net: str) -> str:
    """SPICE node name of a job net: dots become underscores, GND is node 0."""
    return "0" if net == "GND" else net.replace(".", "_")


def _positive(layer: int, index: int) -> str:
    return f"x.{index}" if layer == 1 else f"a.{layer - 1}.{index}"


def _transfer(etas: np.ndarray, net_in: str, sign: str) -> str:
    e1, e2, e3, e4 = (repr(float(v)) for v in etas[:4])
    return f"V = {sign}({e1} + {e2}*tanh((V({node(net_in)}) - {e3})*{e4}))"


def _layer_lines(layer: int, values: DesignLayer) -> list[str]:
    n_in = values.theta.shape[0] - 2
    lines = [f"* layer {layer}: {n_in} inputs, {values.theta.shape[1]} columns"]
    for i in np.flatnonzero(values.neg_present):
        tag, net_in = ("b", "bias") if i == n_in else (str(i), _positive(layer, int(i)))
        lines.append(f"BNEG_{layer}_{tag} {node(f'n.{layer}.{tag}')} 0 {_transfer(values.neg_etas[i], net_in, '-')}")
    for col in range(values.theta.shape[1]):
        z = f"z.{layer}.{col}"
        for row in range(n_in + 2):
            g = float(values.g_s[row, col])
            if g <= 0:
                continue
            negated = bool(values.negated[row, col])
            if row == n_in + 1:
                net = "GND"
            elif row == n_in:
                net = f"n.{layer}.b" if negated else "bias"
            else:
                net = f"n.{layer}.{row}" if negated else _positive(layer, row)
            lines.append(f"RX{layer}_{row}_{col} {node(net)} {node(z)} {1.0 / g!r}")
        lines.append(f"BACT_{layer}_{col} {node(f'a.{layer}.{col}')} 0 {_transfer(values.act_etas[col], z, '')}")
    return lines


def output_nets(design: Design) -> list[str]:
    """The class output nets, in class order."""
    return [f"a.{len(design.layers) - 1}.{j}" for j in range(design.layers[-1])]


def spice_netlist(design: Design, rows: np.ndarray | None = None) -> str:
    """The netlist; with ``rows`` (n, inputs) of input voltages, a control block printing every row's outputs."""
    n_inputs = design.layers[0]
    lines = [f"* labctl printed design, process {design.process}, layers {list(design.layers)}",
             "* cells are behavioural (contract 1.7); values are the design's, geometries in the print job",
             f"Vbias bias 0 DC {BIAS_V!r}"]
    lines += [f"Vx_{i} x_{i} 0 DC 0" for i in range(n_inputs)]
    for layer, values in enumerate(design.layer_values, start=1):
        lines += _layer_lines(layer, values)
    outputs = " ".join(f"v({node(net)})" for net in output_nets(design))
    lines += [".control", "set numdgt=12"]
    for r, row in enumerate(np.zeros((1, n_inputs)) if rows is None else np.atleast_2d(rows)):
        lines += [f"alter vx_{i} dc = {float(v)!r}" for i, v in enumerate(row)]
        lines += ["op", f"echo ROW {r}", f"print {outputs}"]
    lines += [".endc", ".end"]
    return "\n".join(lines) + "\n"


_VALUE = re.compile(r"^v\((\S+)\)\s*=\s*(\S+)", re.IGNORECASE)


def run_ngspice(path: str | Path, n_outputs: int, *, timeout_s: float = 120.0) -> np.ndarray:
    """Run ``ngspice -b`` on a netlist from ``spice_netlist`` with rows; (rows, outputs) output voltages."""
    exe = shutil.which("ngspice")
    if exe is None:
        raise ConfigError("ngspice is not installed (apt-get install ngspice)")
    done = subprocess.run([exe, "-b", str(path)], capture_output=True, text=True, timeout=timeout_s)
    rows: list[list[float]] = []
    for line in done.stdout.splitlines():
        if line.startswith("ROW"):
            rows.append([])
        match = _VALUE.match(line.strip())
        if match and rows:
            rows[-1].append(float(match.group(2)))
    if not rows or any(len(r) != n_outputs for r in rows):
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ConfigError(f"{path}: ngspice gave no usable operating points ({tail[0]})")
    return np.array(rows)
