"""Typed records of a print job (contract 3.1): pads, outputs, resistors, cells.

A print job is the netlist of one printed network with every component's
value and geometry and the pad map. These records are what the exporter
builds and what ``print_job.read_job`` returns after the rules of 3.2; the
TOML document is only their edge form (``to_document``).
"""

from __future__ import annotations

from dataclasses import dataclass

from labctl.families.printed.printable import CELL_COMPONENTS

JOB_FORMAT = "pnc-print-job/1"

CELL_RESISTORS: dict[str, tuple[str, ...]] = {"ACT": ("R1", "R2"), "NEG": ("R1", "R2", "R3", "R4", "R5")}
CELL_EGTS: dict[str, dict[str, tuple[str, str]]] = {"ACT": {"T1": ("W1", "L1"), "T2": ("W2", "L2")},
                                                    "NEG": {"T": ("W", "L")}}
"""Per cell type: job key of each EGT -> the (W, L) component names of printable.CELL_COMPONENTS."""


@dataclass(frozen=True)
class ResistorGeometry:
    """A printed resistor (contract 1.2): R = R_s L / W on ``layer``; dimensions in um on the 1 um grid."""

    layer: str
    w_um: int
    l_um: int
    r_ohm: float

    def to_document(self) -> dict:
        return {"layer": self.layer, "W_um": self.w_um, "L_um": self.l_um, "R_ohm": self.r_ohm}


@dataclass(frozen=True)
class EgtGeometry:
    """An EGT's drawn channel width and length (um)."""

    w_um: int
    l_um: int

    def to_document(self) -> dict:
        return {"W_um": self.w_um, "L_um": self.l_um}


@dataclass(frozen=True)
class PadAssignment:
    """One pad of the frame (2.1) and the net it reaches, with its role (3.1)."""

    pad: str
    net: str
    role: str


@dataclass(frozen=True)
class CrossbarResistor:
    """A crossbar weight X<l>.<row>.<column> from row net ``a`` to column node ``b`` (contract 1.3)."""

    id: str
    a: str
    b: str
    geometry: ResistorGeometry

    def to_document(self) -> dict:
        return {"id": self.id, "a": self.a, "b": self.b, **self.geometry.to_document()}


@dataclass(frozen=True)
class JobCell:
    """An ACT or NEG cell: its nets, resistors (R1..) and EGTs (T1, T2 or T)."""

    id: str
    type: str
    net_in: str
    net_out: str
    resistors: dict[str, ResistorGeometry]
    egts: dict[str, EgtGeometry]

    def component_values(self) -> dict[str, float]:
        """Values in printable.CELL_COMPONENTS naming (resistances in ohm, EGT W and L in um)."""
        values = {name: geo.r_ohm for name, geo in self.resistors.items()}
        for key, (w_name, l_name) in CELL_EGTS[self.type].items():
            values[w_name], values[l_name] = float(self.egts[key].w_um), float(self.egts[key].l_um)
        return {name: values[name] for name in CELL_COMPONENTS[self.type]}

    def to_document(self) -> dict:
        doc: dict = {"id": self.id, "type": self.type, "in": self.net_in, "out": self.net_out}
        doc.update({name: geo.to_document() for name, geo in self.resistors.items()})
        doc.update({name: geo.to_document() for name, geo in self.egts.items()})
        return doc


@dataclass(frozen=True)
class PrintJob:
    """One print job (contract 3.1)."""

    process: str
    job: str
    id_code: int
    layers: tuple[int, ...]
    rh_ohm_sq: float
    rl_ohm_sq: float
    pads: tuple[PadAssignment, ...]
    classes: tuple[str, ...]
    resistors: tuple[CrossbarResistor, ...]
    cells: tuple[JobCell, ...]
    format: str = JOB_FORMAT

    def ink_ohm_sq(self, layer: str) -> float:
        return {"RH": self.rh_ohm_sq, "RL": self.rl_ohm_sq}[layer]

    def pad_of(self, net: str) -> str | None:
        return next((p.pad for p in self.pads if p.net == net), None)

    def to_document(self) -> dict:
        """The TOML document of 3.1 (key order as in the contract's example)."""
        return {
            "format": self.format, "process": self.process, "job": self.job, "id_code": self.id_code,
            "layers": list(self.layers), "inks": {"RH_ohm_sq": self.rh_ohm_sq, "RL_ohm_sq": self.rl_ohm_sq},
            "pads": {p.pad: {"net": p.net, "role": p.role} for p in self.pads},
            "outputs": {"classes": list(self.classes)},
            "resistor": [r.to_document() for r in self.resistors],
            "cell": [c.to_document() for c in self.cells],
        }
