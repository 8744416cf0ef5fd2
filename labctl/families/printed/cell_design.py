"""Learnable (or fixed) cell components kept inside the printable ranges (contract 1.4, 1.5; seed 000 3.2).

Seed 000 learns circuit components through ratios that satisfy the process
constraints by construction; here every component is a sigmoid into its
range in log space, and NEG's coupled constraints are met by bounding each
component by those drawn before it:

    R3 in [10 k, 500 k];  k34 = R3/R4 in (max(1, R3/400 k), min(R3/8 k, R1/5))
    R1 in [10, 500];      k12 = R1/R2 in (max(k34, R1/250), R1/5)
    R5 in [10 k, 500 k];  W in [200, 800];  L in [10, min(70, W))

so R1 > R2, R3 > R4, R1/R2 > R3/R4 and W > L hold for every parameter value
(the small margin ``_STRICT`` keeps them strict after rounding to the grid).

Given the calibration's measured region (measured_region), every one of these
intervals is narrowed to it as well: the components and R1/R2, R3/R4 stay
within what the map was fitted on, so training never relies on an
extrapolated cell. The narrowing is clamped into the contract's interval, so
the constraints above still hold whatever the region. The region's other
condition, nearness to a fitted structure, is not a box: ``keep_measured``
projects cells back onto it after every optimiser step.

``fixed=True`` holds every cell at ACT-REF / NEG-REF (``--fixed-circuits``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from labctl.families.printed.measured_region import MeasuredRegion
from labctl.families.printed.printable import CELL_COMPONENTS, COMPONENT_RANGES, REFERENCE_DESIGNS

_STRICT = 1.02
"""Constraint margin: bounded ratios stay >= 2 % inside their limits."""


Bounds = tuple[torch.Tensor, torch.Tensor]


def _log_bounds(kind: str, name: str, region: MeasuredRegion | None = None) -> tuple[float, float]:
    """Printable log range of component ``name``, narrowed to ``region`` (clamped into the printable)."""
    r = COMPONENT_RANGES[kind][name]
    lo, hi = math.log(r.low), math.log(r.high)
    if region is None:
        return lo, hi
    a, b = region.log_bounds(name)
    return min(max(a, lo), hi), min(max(b, lo), hi)


def _within(contract: Bounds, measured: Bounds | None) -> Bounds:
    """``measured`` clamped into ``contract``: the contract's constraints always hold, and where the two do
    not overlap the value sits on the contract's edge nearest the measured region."""
    if measured is None:
        return contract
    lo, hi = contract
    a = torch.as_tensor(measured[0], dtype=lo.dtype)
    b = torch.maximum(a, torch.as_tensor(measured[1], dtype=lo.dtype))
    return torch.minimum(torch.maximum(a, lo), hi), torch.minimum(torch.maximum(b, lo), hi)


def _squash(u: torch.Tensor, lo, hi) -> torch.Tensor:
    """exp(lo + (hi - lo) sigmoid(u)) with ``lo``, ``hi`` logs (floats or tensors)."""
    return torch.exp(lo + (hi - lo) * torch.sigmoid(u))


def _unsquash(log_value: torch.Tensor | float, lo, hi) -> float:
    """The parameter u that ``_squash`` maps to exp(``log_value``) (clipped inside the range)."""
    width = max(float(hi) - float(lo), 1e-12)
    s = min(max((float(log_value) - float(lo)) / width, 1e-4), 1 - 1e-4)
    return math.log(s / (1 - s))


def _k34_bounds(log_r3: torch.Tensor, log_r1: torch.Tensor, region: MeasuredRegion | None) -> Bounds:
    """log(R3/R4): R4 in range, R3 > R4, room left for R1/R2 above it (module docstring); in the region."""
    r2, r4 = _log_bounds("NEG", "R2"), _log_bounds("NEG", "R4")
    contract = (torch.clamp(log_r3 - r4[1], min=0.0) + math.log(_STRICT),
                torch.minimum(log_r3 - r4[0], log_r1 - r2[0]) - math.log(_STRICT))
    if region is None:
        return contract
    m2, m4 = _log_bounds("NEG", "R2", region), _log_bounds("NEG", "R4", region)
    k12, k34 = region.log_bounds("R1/R2"), region.log_bounds("R3/R4")
    measured = (torch.clamp(log_r3 - m4[1], min=k34[0]),
                torch.clamp(torch.minimum(log_r3 - m4[0], log_r1 - m2[0]), max=min(k34[1], k12[1])))
    return _within(contract, measured)


def _k12_bounds(log_k34: torch.Tensor, log_r1: torch.Tensor, region: MeasuredRegion | None) -> Bounds:
    """log(R1/R2): R2 in range, R1/R2 > R3/R4; in the region."""
    r2 = _log_bounds("NEG", "R2")
    contract = (torch.maximum(log_k34, log_r1 - r2[1]) + math.log(_STRICT), log_r1 - r2[0])
    if region is None:
        return contract
    m2, k12 = _log_bounds("NEG", "R2", region), region.log_bounds("R1/R2")
    measured = (torch.clamp(torch.maximum(log_k34, log_r1 - m2[1]), min=k12[0]),
                torch.clamp(log_r1 - m2[0], max=k12[1]))
    return _within(contract, measured)


def _length_bounds(log_w: torch.Tensor, region: MeasuredRegion | None) -> Bounds:
    """log L: in range and W > L; in the region."""
    lo, hi = _log_bounds("NEG", "L")
    contract = (torch.full_like(log_w, lo), torch.clamp(log_w - math.log(_STRICT), max=hi))
    return _within(contract, None if region is None else _log_bounds("NEG", "L", region))


def act_components(u: torch.Tensor, region: MeasuredRegion | None = None) -> torch.Tensor:
    """(..., 6) free parameters -> ACT components (R1, R2, W1, L1, W2, L2) inside contract 1.4's box
    (and inside ``region``, the calibration's measured one, when given)."""
    cols = [_squash(u[..., i], *_log_bounds("ACT", name, region)) for i, name in enumerate(CELL_COMPONENTS["ACT"])]
    return torch.stack(cols, dim=-1)


def neg_components(u: torch.Tensor, region: MeasuredRegion | None = None) -> torch.Tensor:
    """(..., 7) free parameters -> NEG components (R1..R5, W, L) keeping every constraint of contract 1.5
    (and inside ``region`` where the constraints allow)."""
    r3 = _squash(u[..., 2], *_log_bounds("NEG", "R3", region))
    r1 = _squash(u[..., 0], *_log_bounds("NEG", "R1", region))
    k34 = _squash(u[..., 3], *_k34_bounds(torch.log(r3), torch.log(r1), region))
    k12 = _squash(u[..., 1], *_k12_bounds(torch.log(k34), torch.log(r1), region))
    r5 = _squash(u[..., 4], *_log_bounds("NEG", "R5", region))
    w = _squash(u[..., 5], *_log_bounds("NEG", "W", region))
    length = _squash(u[..., 6], *_length_bounds(torch.log(w), region))
    return torch.stack([r1, r1 / k12, r3, r3 / k34, r5, w, length], dim=-1)


def _parameters_of(kind: str, design: dict[str, float], region: MeasuredRegion | None) -> list[float]:
    """Inverse of ``act_components`` / ``neg_components`` at one design."""
    if kind == "NEG":
        return _neg_parameters_of(design, region)
    return [_unsquash(math.log(design[name]), *_log_bounds("ACT", name, region)) for name in CELL_COMPONENTS["ACT"]]


def _initial_parameters(kind: str, n: int, generator: torch.Generator | None,
                        region: MeasuredRegion | None) -> torch.Tensor:
    """Start at the reference design plus a little noise: it is a known working cell (contract 2.3)."""
    base = _parameters_of(kind, REFERENCE_DESIGNS[kind], region)
    noise = 0.3 * torch.randn(n, len(base), generator=generator, dtype=torch.float64)
    return torch.tensor(base, dtype=torch.float64) + noise


def _neg_parameters_of(ref, region: MeasuredRegion | None) -> list[float]:
    """Inverse of ``neg_components`` at one design (used for the NEG-REF starting point)."""
    log = {k: torch.tensor(math.log(v), dtype=torch.float64) for k, v in ref.items()}
    k12, k34 = log["R1"] - log["R2"], log["R3"] - log["R4"]
    return [_unsquash(log["R1"], *_log_bounds("NEG", "R1", region)),
            _unsquash(k12, *_k12_bounds(k34, log["R1"], region)),
            _unsquash(log["R3"], *_log_bounds("NEG", "R3", region)),
            _unsquash(k34, *_k34_bounds(log["R3"], log["R1"], region)),
            _unsquash(log["R5"], *_log_bounds("NEG", "R5", region)),
            _unsquash(log["W"], *_log_bounds("NEG", "W", region)),
            _unsquash(log["L"], *_length_bounds(log["W"], region))]


class CellBank(nn.Module):
    """The components of ``n`` cells of one kind: learnable within the ranges (and ``region``, the measured
    one, when given), or fixed at the reference."""

    def __init__(self, kind: str, n: int, *, fixed: bool, generator: torch.Generator | None = None,
                 region: MeasuredRegion | None = None) -> None:
        super().__init__()
        self.kind, self.n, self.fixed, self.region = kind, n, fixed, region
        if fixed:
            ref = [REFERENCE_DESIGNS[kind][name] for name in CELL_COMPONENTS[kind]]
            self.register_buffer("reference", torch.tensor(ref, dtype=torch.float64).repeat(n, 1))
            self.u = None
        else:
            self.u = nn.Parameter(_initial_parameters(kind, n, generator, region))
            self.keep_measured()

    def components(self) -> torch.Tensor:
        """(n, k) nominal component values (ohm; um for W and L)."""
        if self.fixed:
            return self.reference
        draw = act_components if self.kind == "ACT" else neg_components
        return draw(self.u, self.region)

    @torch.no_grad()
    def keep_measured(self) -> None:
        """Move every learnable cell that left the measured region back to its edge (after each optimiser
        step): the squash keeps the box by construction, this the neighbourhood of the structures."""
        if self.fixed or self.region is None:
            return
        comps = self.components().numpy()
        outside = np.flatnonzero(~self.region.contains(comps))
        self._place(outside, self.region.project(comps[outside]))

    @torch.no_grad()
    def start_at(self, values: torch.Tensor | NDArray) -> None:
        """Move every learnable cell to given (n, k) or (k,) components (then into the measured region)."""
        if self.fixed:
            raise ValueError(f"{self.kind} cells held at the reference cannot be moved")
        values = np.broadcast_to(np.asarray(values, dtype=float), (self.n, len(CELL_COMPONENTS[self.kind])))
        self._place(range(self.n), values)
        self.keep_measured()

    def _place(self, cells, designs: NDArray) -> None:
        """Set the free parameters of ``cells`` so that they draw ``designs`` (one row of components each)."""
        for i, design in zip(cells, designs):
            values = _parameters_of(self.kind, dict(zip(CELL_COMPONENTS[self.kind], design)), self.region)
            self.u[i] = torch.tensor(values, dtype=self.u.dtype)

    def set_components(self, values: torch.Tensor) -> None:
        """Hold the bank at given values (a design read back): fixed from now on."""
        self.fixed, self.u = True, None
        self.register_buffer("reference", torch.as_tensor(values, dtype=torch.float64).reshape(self.n, -1))
