"""What a trained network's cells were kept within, for the design record (measured_region, cell_design).

The record says so explicitly because a design whose cells left the measured
region predicts from an extrapolated map, and its predicted interval is not
to be trusted (the printed sample of such a design classified 32 % against
94 % predicted).
"""

from __future__ import annotations

import torch

from labctl.families.printed.cell_design import CellBank
from labctl.families.printed.network import PrintedNetwork

__all__ = ["cell_bounds"]


def _inside(bank: CellBank) -> bool:
    """Whether a learnable bank has a measured region and every one of its cells lies in it."""
    if bank.region is None:
        return False
    with torch.no_grad():
        return bool(bank.region.contains(bank.components().numpy()).all())


def cell_bounds(network: PrintedNetwork) -> str:
    """"fixed" (reference cells), "measured" (every learnable cell inside its measured region) or
    "printable" (some cell is bounded only by the printable ranges: no region, or the contract's
    constraints pushed it out)."""
    banks = [bank for layer in network.layers for bank in (layer.act, layer.neg)]
    if all(bank.fixed for bank in banks):
        return "fixed"
    return "measured" if all(bank.fixed or _inside(bank) for bank in banks) else "printable"
