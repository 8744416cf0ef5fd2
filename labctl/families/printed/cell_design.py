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
``fixed=True`` holds every cell at ACT-REF / NEG-REF (``--fixed-circuits``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from labctl.families.printed.printable import CELL_COMPONENTS, COMPONENT_RANGES, REFERENCE_DESIGNS

_STRICT = 1.02
"""Constraint margin: bounded ratios stay >= 2 % inside their limits."""


def _log_bounds(kind: str, name: str) -> tuple[float, float]:
    r = COMPONENT_RANGES[kind][name]
    return math.log(r.low), math.log(r.high)


def _squash(u: torch.Tensor, lo, hi) -> torch.Tensor:
    """exp(lo + (hi - lo) sigmoid(u)) with ``lo``, ``hi`` logs (floats or tensors)."""
    return torch.exp(lo + (hi - lo) * torch.sigmoid(u))


def _unsquash(value: float, lo: float, hi: float) -> float:
    """The parameter u that ``_squash`` maps to ``value`` (clipped inside the range)."""
    s = min(max((math.log(value) - lo) / (hi - lo), 1e-4), 1 - 1e-4)
    return math.log(s / (1 - s))


def act_components(u: torch.Tensor) -> torch.Tensor:
    """(..., 6) free parameters -> ACT components (R1, R2, W1, L1, W2, L2) inside contract 1.4's box."""
    cols = [_squash(u[..., i], *_log_bounds("ACT", name)) for i, name in enumerate(CELL_COMPONENTS["ACT"])]
    return torch.stack(cols, dim=-1)


def neg_components(u: torch.Tensor) -> torch.Tensor:
    """(..., 7) free parameters -> NEG components (R1..R5, W, L) keeping every constraint of contract 1.5."""
    b = {name: _log_bounds("NEG", name) for name in CELL_COMPONENTS["NEG"]}
    r3 = _squash(u[..., 2], *b["R3"])
    r1 = _squash(u[..., 0], *b["R1"])
    log_r3, log_r1 = torch.log(r3), torch.log(r1)
    k34_lo = torch.clamp(log_r3 - b["R4"][1], min=0.0) + math.log(_STRICT)
    k34_hi = torch.minimum(log_r3 - b["R4"][0], log_r1 - b["R2"][0]) - math.log(_STRICT)
    k34 = _squash(u[..., 3], k34_lo, k34_hi)
    k12_lo = torch.maximum(torch.log(k34), log_r1 - b["R2"][1]) + math.log(_STRICT)
    k12 = _squash(u[..., 1], k12_lo, log_r1 - b["R2"][0])
    r5 = _squash(u[..., 4], *b["R5"])
    w = _squash(u[..., 5], *b["W"])
    l_hi = torch.minimum(torch.full_like(w, b["L"][1]), torch.log(w) - math.log(_STRICT))
    length = _squash(u[..., 6], b["L"][0], l_hi)
    return torch.stack([r1, r1 / k12, r3, r3 / k34, r5, w, length], dim=-1)


def _initial_parameters(kind: str, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """Start at the reference design plus a little noise: it is a known working cell (contract 2.3)."""
    ref = REFERENCE_DESIGNS[kind]
    if kind == "ACT":
        base = [_unsquash(ref[name], *_log_bounds("ACT", name)) for name in CELL_COMPONENTS["ACT"]]
    else:
        base = _neg_parameters_of(ref)
    noise = 0.3 * torch.randn(n, len(base), generator=generator, dtype=torch.float64)
    return torch.tensor(base, dtype=torch.float64) + noise


def _neg_parameters_of(ref) -> list[float]:
    """Inverse of ``neg_components`` at one design (used for the NEG-REF starting point)."""
    b = {name: _log_bounds("NEG", name) for name in CELL_COMPONENTS["NEG"]}
    log = {k: math.log(v) for k, v in ref.items()}
    k34_lo = max(log["R3"] - b["R4"][1], 0.0) + math.log(_STRICT)
    k34_hi = min(log["R3"] - b["R4"][0], log["R1"] - b["R2"][0]) - math.log(_STRICT)
    k12_lo = max(log["R3"] - log["R4"], log["R1"] - b["R2"][1]) + math.log(_STRICT)
    l_hi = min(b["L"][1], log["W"] - math.log(_STRICT))
    return [_unsquash(ref["R1"], *b["R1"]), _unsquash(ref["R1"] / ref["R2"], k12_lo, log["R1"] - b["R2"][0]),
            _unsquash(ref["R3"], *b["R3"]), _unsquash(ref["R3"] / ref["R4"], k34_lo, k34_hi),
            _unsquash(ref["R5"], *b["R5"]), _unsquash(ref["W"], *b["W"]), _unsquash(ref["L"], b["L"][0], l_hi)]


class CellBank(nn.Module):
    """The components of ``n`` cells of one kind: learnable within the ranges, or fixed at the reference."""

    def __init__(self, kind: str, n: int, *, fixed: bool, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.kind, self.n, self.fixed = kind, n, fixed
        if fixed:
            ref = [REFERENCE_DESIGNS[kind][name] for name in CELL_COMPONENTS[kind]]
            self.register_buffer("reference", torch.tensor(ref, dtype=torch.float64).repeat(n, 1))
            self.u = None
        else:
            self.u = nn.Parameter(_initial_parameters(kind, n, generator))

    def components(self) -> torch.Tensor:
        """(n, k) nominal component values (ohm; um for W and L)."""
        if self.fixed:
            return self.reference
        return act_components(self.u) if self.kind == "ACT" else neg_components(self.u)

    def set_components(self, values: torch.Tensor) -> None:
        """Hold the bank at given values (a design read back): fixed from now on."""
        self.fixed, self.u = True, None
        self.register_buffer("reference", torch.as_tensor(values, dtype=torch.float64).reshape(self.n, -1))
