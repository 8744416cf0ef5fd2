"""What the PNC-1 process can print (contract sections 1.2 to 1.5, 2.3): one home for the ranges.

The calibration map normalises components by these ranges, training keeps
learnable components inside them, the print-job validator (rules J3 to J5)
refuses values outside them and the exporter draws geometries within them.
Values are SI (ohm, S) except EGT and resistor dimensions, which the
contract states in um on a 1 um grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

ACT_COMPONENTS: tuple[str, ...] = ("R1", "R2", "W1", "L1", "W2", "L2")
"""ACT (ptanh) components, contract 1.4: resistors R1, R2; EGT T1 = W1/L1, T2 = W2/L2 (um)."""

NEG_COMPONENTS: tuple[str, ...] = ("R1", "R2", "R3", "R4", "R5", "W", "L")
"""NEG components, contract 1.5: resistors R1..R5; one EGT T = W/L (um)."""

CELL_COMPONENTS: Mapping[str, tuple[str, ...]] = MappingProxyType({"ACT": ACT_COMPONENTS, "NEG": NEG_COMPONENTS})

CELL_KINDS: tuple[str, ...] = ("ACT", "NEG")


@dataclass(frozen=True)
class ComponentRange:
    """Printable range of one cell component (G); ``layer`` is RH/RL for resistors, EGT for W and L."""

    low: float
    high: float
    layer: str
    unit: str

    def contains(self, value: float, rel_tol: float = 1e-9) -> bool:
        return self.low * (1 - rel_tol) <= value <= self.high * (1 + rel_tol)


_ACT_RANGES = {
    "R1": ComponentRange(250e3, 2.05e6, "RH", "ohm"),
    "R2": ComponentRange(6e3, 32e3, "RH", "ohm"),
    "W1": ComponentRange(80.0, 100.0, "EGT", "um"),
    "L1": ComponentRange(40.0, 80.0, "EGT", "um"),
    "W2": ComponentRange(480.0, 502.0, "EGT", "um"),
    "L2": ComponentRange(30.0, 40.0, "EGT", "um"),
}
_NEG_RANGES = {
    "R1": ComponentRange(10.0, 500.0, "RL", "ohm"),
    "R2": ComponentRange(5.0, 250.0, "RL", "ohm"),
    "R3": ComponentRange(10e3, 500e3, "RH", "ohm"),
    "R4": ComponentRange(8e3, 400e3, "RH", "ohm"),
    "R5": ComponentRange(10e3, 500e3, "RH", "ohm"),
    "W": ComponentRange(200.0, 800.0, "EGT", "um"),
    "L": ComponentRange(10.0, 70.0, "EGT", "um"),
}
COMPONENT_RANGES: Mapping[str, Mapping[str, ComponentRange]] = MappingProxyType(
    {"ACT": MappingProxyType(_ACT_RANGES), "NEG": MappingProxyType(_NEG_RANGES)})
"""kind -> component -> printable range (contract 1.4, 1.5)."""

REFERENCE_DESIGNS: Mapping[str, Mapping[str, float]] = MappingProxyType({
    "ACT": MappingProxyType({"R1": 1.0e6, "R2": 15.0e3, "W1": 90.0, "L1": 60.0, "W2": 490.0, "L2": 35.0}),
    "NEG": MappingProxyType({"R1": 200.0, "R2": 50.0, "R3": 200e3, "R4": 100e3, "R5": 100e3,
                             "W": 500.0, "L": 40.0}),
})
"""ACT-REF and NEG-REF (contract 2.3): the circuits of ``--fixed-circuits``."""


def neg_constraints_hold(c: Mapping[str, float]) -> str | None:
    """None when a NEG design keeps contract 1.5's constraints, else the first broken one (text)."""
    if not c["R1"] > c["R2"]:
        return "R1 > R2"
    if not c["R3"] > c["R4"]:
        return "R3 > R4"
    if not c["R1"] / c["R2"] > c["R3"] / c["R4"]:
        return "R1/R2 > R3/R4"
    if not c["W"] > c["L"]:
        return "W > L"
    return None


# -- crossbar (contract 1.3) --------------------------------------------------------------

G_MIN_S = 1e-7
"""Smallest printable crossbar conductance (10 Mohm); a column's smallest |theta| maps here."""
G_MAX_S = 1e-4
"""Largest printable crossbar conductance (10 kohm)."""
THETA_MAX = 10.0
"""Learnable theta is clamped to [-THETA_MAX, THETA_MAX] (authors' code)."""
THETA_PRINT_MIN = 0.01
"""|theta| below this is not printed (no resistor)."""
BIAS_V = 1.0
"""The bias row is held at 1.000 V by the bench (contract 1.3)."""


# -- resistor geometry (contract 1.2) -----------------------------------------------------


@dataclass(frozen=True)
class InkRules:
    """Geometry rules of one resistive layer (contract 1.2)."""

    nominal_ohm_sq: float
    w_um: tuple[float, float]
    l_um: tuple[float, float]
    aspect: tuple[float, float]
    ink_tolerance: float = 0.20


INKS: Mapping[str, InkRules] = MappingProxyType({
    "RH": InkRules(50e3, (50.0, 2000.0), (50.0, 10000.0), (0.1, 200.0)),
    "RL": InkRules(25.0, (50.0, 2000.0), (50.0, 10000.0), (0.1, 200.0)),
})
R_TOLERANCE = 0.005
"""A job's R_ohm must lie within 0.5 % of R_s L / W (rule J3)."""



def crossbar_g_range_s(rh_ohm_sq: float | None) -> tuple[float, float]:
    """(g_lo, g_hi) a run can print on RH: 1e-7 to 1e-4 S (1.3) narrowed by the geometry rules (1.2).

    The longest resistor is 200 squares (aspect <= 200) and the shortest 0.1: at R_s below nominal,
    10 Mohm needs more than 200 squares, so the run's smallest conductance is 1/(200 R_s). A 0.6 %
    margin keeps the drawn value (within 0.5 %, rule J3) inside. None: the contract's range.
    """
    if rh_ohm_sq is None:
        return G_MIN_S, G_MAX_S
    rules = INKS["RH"]
    g_lo = max(G_MIN_S, 1.0 / (rules.aspect[1] * rh_ohm_sq)) * 1.006
    g_hi = min(G_MAX_S, 1.0 / (rules.aspect[0] * rh_ohm_sq)) / 1.006
    return g_lo, g_hi


VDD_V = 2.0
VSS_V = -2.0
"""Cell rails (contract 1.1)."""
