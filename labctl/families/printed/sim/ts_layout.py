"""The test-structure sample PNC-TS revision A (contract 2.3) and its layout file (2.4).

The drawn layout is deterministic (it is the same for every run); what a run
and a sample make of it is :mod:`.sample`'s business. Spread designs are the
Sobol points after the origin (``scipy.stats.qmc.Sobol(scramble=False)``,
Joe-Kuo direction numbers) mapped onto the printable ranges of 1.4 and 1.5,
resistances on a log scale and dimensions linearly, rounded to the 1 um grid;
NEG points that break a constraint are skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import qmc

from labctl.families.printed.sim.process import RH_NOMINAL_OHM_SQ, RL_NOMINAL_OHM_SQ

LAYOUT_FORMAT = "pnc-ts-layout/1"
LAYOUT_NAME = "PNC-TS-A"
LAYOUT_ID_CODE = 1
BLEED_W_UM, BLEED_L_UM = 50, 10000
WIDTH_LADDER_UM = (50, 100, 250, 400, 500, 1000, 2000)
ACT_RANGES = (("R1", "RH", 250e3, 2.05e6), ("R2", "RH", 6e3, 32e3))
ACT_DIMENSIONS = (("T1", (80, 100), (40, 80)), ("T2", (480, 502), (30, 40)))
NEG_RANGES = (("R1", "RL", 10.0, 500.0), ("R2", "RL", 5.0, 250.0), ("R3", "RH", 10e3, 500e3),
              ("R4", "RH", 8e3, 400e3), ("R5", "RH", 10e3, 500e3))
NEG_DIMENSIONS = (("T", (200, 800), (10, 70)),)


@dataclass(frozen=True)
class DrawnResistor:
    """A resistor as drawn: layer, W and L (um) and its value at nominal R_s (ohm)."""

    layer: str
    w_um: int
    l_um: int
    r_ohm: float


@dataclass(frozen=True)
class Structure:
    """One structure of the layout (2.4): a cell (``resistors`` R1.., ``egts`` T..) or a resistor chain."""

    id: str
    kind: str
    pads: dict[str, object]
    design: str = ""
    resistors: dict[str, DrawnResistor] = field(default_factory=dict)
    egts: dict[str, tuple[int, int]] = field(default_factory=dict)
    chain: tuple[DrawnResistor, ...] = ()


def drawn(layer: str, w_um: int, l_um: int) -> DrawnResistor:
    sheet = RH_NOMINAL_OHM_SQ if layer == "RH" else RL_NOMINAL_OHM_SQ
    return DrawnResistor(layer, int(w_um), int(l_um), sheet * l_um / w_um)


def geometry_for(layer: str, r_ohm: float) -> DrawnResistor:
    """The narrowest ladder width whose length for ``r_ohm`` is printable (1.2: L 50..10000, L/W 0.1..200)."""
    sheet = RH_NOMINAL_OHM_SQ if layer == "RH" else RL_NOMINAL_OHM_SQ
    for w in WIDTH_LADDER_UM:
        length = round(r_ohm * w / sheet)
        if 50 <= length <= 10000 and 0.1 <= length / w <= 200:
            return drawn(layer, w, length)
    raise ValueError(f"{r_ohm} ohm is not printable on {layer}")


def _map_point(point: np.ndarray, ranges: tuple, dimensions: tuple) -> tuple[dict, dict]:
    """One Sobol point -> drawn resistors (log scale) and EGT dimensions (linear, 1 um grid)."""
    resistors, egts, k = {}, {}, 0
    for name, layer, low, high in ranges:
        value = math.exp(math.log(low) + point[k] * (math.log(high) - math.log(low)))
        resistors[name] = geometry_for(layer, value)
        k += 1
    for name, (w_lo, w_hi), (l_lo, l_hi) in dimensions:
        egts[name] = (round(w_lo + point[k] * (w_hi - w_lo)), round(l_lo + point[k + 1] * (l_hi - l_lo)))
        k += 2
    return resistors, egts


def _neg_ok(resistors: dict[str, DrawnResistor], egts: dict) -> bool:
    r = {name: item.r_ohm for name, item in resistors.items()}
    w, length = egts["T"]
    return r["R1"] > r["R2"] and r["R3"] > r["R4"] and r["R1"] / r["R2"] > r["R3"] / r["R4"] and w > length


def spread_designs(kind: str, count: int) -> list[tuple[dict, dict]]:
    """The first ``count`` printable spread designs of ``kind`` (2.3), Sobol order, origin skipped."""
    ranges, dims = (ACT_RANGES, ACT_DIMENSIONS) if kind == "ACT" else (NEG_RANGES, NEG_DIMENSIONS)
    sobol = qmc.Sobol(d=len(ranges) + 2 * len(dims), scramble=False)
    points = sobol.random(256)[1:]
    designs = [_map_point(p, ranges, dims) for p in points]
    if kind == "NEG":
        designs = [d for d in designs if _neg_ok(*d)]
    return designs[:count]


ACT_REF = ({"R1": drawn("RH", 50, 1000), "R2": drawn("RH", 1000, 300)}, {"T1": (90, 60), "T2": (490, 35)})
ACT_B = ({"R1": drawn("RH", 50, 2000), "R2": drawn("RH", 1000, 160)}, {"T1": (100, 40), "T2": (500, 30)})
NEG_REF = ({"R1": drawn("RL", 100, 800), "R2": drawn("RL", 200, 400), "R3": drawn("RH", 50, 200),
            "R4": drawn("RH", 100, 200), "R5": drawn("RH", 100, 200)}, {"T": (500, 40)})
NEG_B = ({"R1": drawn("RL", 50, 800), "R2": drawn("RL", 250, 400), "R3": drawn("RH", 100, 100),
          "R4": drawn("RH", 125, 100), "R5": drawn("RH", 50, 300)}, {"T": (700, 20)})


def _cell(sid: str, kind: str, design: str, parts: tuple[dict, dict], inp: str, out: str, group: int) -> Structure:
    pads = {"IN": inp, "OUT": out, "VDD": f"VDD{group:02d}", "VSS": f"VSS{group:02d}"}
    return Structure(sid, kind, pads, design, dict(parts[0]), dict(parts[1]))


def cell_structures() -> list[Structure]:
    """A01..A18 and N01..N17 with their pads and rail groups (2.3)."""
    cells = []
    act = spread_designs("ACT", 12) + [ACT_REF] * 3 + [ACT_B] * 3
    for k, parts in enumerate(act, start=1):
        design = "spread" if k <= 12 else ("ACT-REF" if k <= 15 else "ACT-B")
        cells.append(_cell(f"A{k:02d}", "ACT", design, parts, "D01", f"S{k:02d}", k))
    neg = spread_designs("NEG", 11) + [NEG_REF] * 3 + [NEG_B] * 3
    for k, parts in enumerate(neg, start=1):
        design = "spread" if k <= 11 else ("NEG-REF" if k <= 14 else "NEG-B")
        cells.append(_cell(f"N{k:02d}", "NEG", design, parts, f"D{k + 1:02d}", f"S{k + 18:02d}", k + 18))
    return cells


def resistor_structures() -> list[Structure]:
    """H1, H2, L, R22, R23 and the ID ladder of code 1 (2.2, 2.3)."""
    return [
        Structure("H1", "RCHAIN", {"DRIVE": "D19", "TAPS": ["S36", "S37", "S38"]},
                  chain=tuple(drawn("RH", w, length) for w, length in ((50, 100), (100, 200), (250, 500), (1000, 2000)))),
        Structure("H2", "RCHAIN", {"DRIVE": "D20", "TAPS": ["S39", "S40", "S41"]},
                  chain=tuple(drawn("RH", 200, 400) for _ in range(4))),
        Structure("L", "RCHAIN", {"DRIVE": "D21", "KELVIN": "S42", "TAPS": ["S43", "S44"]},
                  chain=tuple(drawn("RL", w, length) for w, length in ((50, 200), (250, 1000), (1000, 4000)))),
        Structure("R22", "RES", {"DRIVE": "D22"}, chain=(drawn("RH", 50, 5000),)),
        Structure("R23", "RES", {"DRIVE": "D23"}, chain=(drawn("RH", 2000, 200),)),
        Structure("ID", "ID", {"DRIVE": "D24", "TAPS": ["S45", "S46"]}, chain=id_ladder(LAYOUT_ID_CODE)),
    ]


ID_GEOMETRIES_UM = ((500, 100), (500, 316), (100, 200), (50, 316), (50, 1000))
"""Digit d -> W/L of its RH resistor, 10 kohm * 10^(d/2) (contract 2.2)."""


def id_ladder(code: int) -> tuple[DrawnResistor, ...]:
    """The three ID resistors of ``code`` = 25 d1 + 5 d2 + d3, D24 end first."""
    digits = (code // 25, (code // 5) % 5, code % 5)
    return tuple(drawn("RH", *ID_GEOMETRIES_UM[d]) for d in digits)


def bleed_pads() -> list[str]:
    """The circuit-input pads that carry a bleed on PNC-TS (D01 to D18)."""
    return [f"D{k:02d}" for k in range(1, 19)]


def layout_structures() -> list[Structure]:
    return cell_structures() + resistor_structures()


def _toml_value(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(type(value).__name__)


def _resistor_doc(item: DrawnResistor) -> dict:
    return {"layer": item.layer, "W_um": item.w_um, "L_um": item.l_um, "R_ohm": item.r_ohm}


def _structure_lines(item: Structure) -> list[str]:
    lines = ["[[structure]]", f"id = {_toml_value(item.id)}", f"kind = {_toml_value(item.kind)}"]
    if item.design:
        lines.append(f"design = {_toml_value(item.design)}")
    lines.append(f"pads = {_toml_value(item.pads)}")
    lines += [f"{name} = {_toml_value(_resistor_doc(r))}" for name, r in item.resistors.items()]
    lines += [f"{name} = {_toml_value({'W_um': w, 'L_um': length})}" for name, (w, length) in item.egts.items()]
    if item.chain:
        lines.append("resistors = [" + ", ".join(_toml_value(_resistor_doc(r)) for r in item.chain) + "]")
    return lines + [""]


def layout_toml(process: str, sample: str) -> str:
    """The layout file of 2.4 for ``sample`` printed in ``process``."""
    bleed = {"pads": bleed_pads(), "R_ohm": RH_NOMINAL_OHM_SQ * BLEED_L_UM / BLEED_W_UM,
             "W_um": BLEED_W_UM, "L_um": BLEED_L_UM}
    head = [f"format = {_toml_value(LAYOUT_FORMAT)}", f"layout = {_toml_value(LAYOUT_NAME)}",
            f"id_code = {LAYOUT_ID_CODE}", f"process = {_toml_value(process)}", f"sample = {_toml_value(sample)}",
            'frame = "PF-144"', f"inks = {_toml_value({'RH_ohm_sq': RH_NOMINAL_OHM_SQ, 'RL_ohm_sq': RL_NOMINAL_OHM_SQ})}",
            f"bleed = {_toml_value(bleed)}", ""]
    body = [line for item in layout_structures() for line in _structure_lines(item)]
    return "\n".join(head + body)


def write_layout(path: Path, process: str, sample: str) -> Path:
    path.write_text(layout_toml(process, sample), encoding="utf-8")
    return path
